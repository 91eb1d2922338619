"""INT8 Q K^T kernel: accuracy against float64, and the quantiser's exact properties."""


def test_int8_accuracy_reported_and_within_bounds(interpreted):
    cases = {k: v for k, v in interpreted.items() if k.startswith("int8_")}
    assert len(cases) >= 8
    for name, r in cases.items():
        assert r["shape_ok"] and r["finite"] and r["nonzero"], (name, r, interpreted["seed"])
        assert r["cosine"] >= 0.999, (name, r, interpreted["seed"])
        assert r["rel_l1"] < 0.03, (name, r, interpreted["seed"])
        # int8 is lossy: it must differ from the exact answer, but only a little
        assert 0 < r["max_rel_err"] < 0.1, (name, r, interpreted["seed"])


def test_quantiser_is_symmetric_per_block_with_half_step_error(interpreted):
    r = interpreted["quantize"]
    assert r["in_range"]  # |q| <= 127; -128 is the poison value, so every element was written
    assert r["scale_err"] < 1e-6  # scale == max|smoothed block| / 127
    assert r["max_dequant_err_in_scales"] <= 0.5 + 1e-5  # round to nearest

"""Flash kernel correctness under the Triton interpreter, against a float64 reference (see interpreted.py)."""


def _cases(results, prefix):
    found = {k[len(prefix):]: v for k, v in results.items() if k.startswith(prefix)}
    assert found, f"no {prefix} results"
    return found


def test_fp32_max_relative_error_below_1e_3(interpreted):
    cases = _cases(interpreted, "flash_fp32_")
    assert {"d64", "d72_cross", "d72_mask", "d40_cross_mask", "d256"} <= set(cases)
    for name, r in cases.items():
        assert r["shape_ok"] and r["finite"] and r["nonzero"], (name, r, interpreted["seed"])
        assert r["max_rel_err"] < 1e-3, (name, r, interpreted["seed"])


def test_fp16_close_to_float64(interpreted):
    cases = _cases(interpreted, "flash_fp16_")
    assert {"d64", "d72_cross_mask", "d128"} <= set(cases)
    for name, r in cases.items():
        assert r["shape_ok"] and r["finite"] and r["nonzero"], (name, r, interpreted["seed"])
        assert r["max_rel_err"] < 5e-3, (name, r, interpreted["seed"])


def test_fully_padded_query_rows_come_out_zero(interpreted):
    for kernel in ("flash", "int8"):
        masked = {k: v for k, v in interpreted.items() if k.startswith(kernel) and k.endswith("mask")}
        assert len(masked) >= 3
        assert all(v["dead_rows_zero"] for v in masked.values()), masked

import itertools

import numpy as np
import pytest
import torch

import accel
from accel.search.bac import bac_schedule, bubbling_union, calibrate, schedule_updates
from accel.search.samplers import shapes_sampler
from tiny import PROMPTS, tiny_pipeline


def brute_force(S, k, maximize=True, force_final=True):
    T = S.shape[0]
    sign = 1 if maximize else -1
    best, arg = -np.inf, None
    last = T - 1 if force_final else T  # a forced final step is its own segment
    for middle in itertools.combinations(range(1, last), k - 2 if force_final else k - 1):
        starts = [0, *middle]
        bounds = starts + [last]
        score = sum(sign * S[a, a:b].sum() for a, b in zip(bounds[:-1], bounds[1:]))
        if force_final:
            score += sign * S[T - 1, T - 1]
        if score > best + 1e-12:
            best, arg = score, [*starts, T - 1] if force_final else starts
    return arg


@pytest.mark.parametrize("seed", range(6))
def test_scheduler_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(4, 9))
    S = rng.random((T, T))
    for k in range(2, T):
        assert schedule_updates(S, k) == brute_force(S, k), (T, k)
        assert schedule_updates(S, k, maximize=False) == brute_force(S, k, maximize=False), (T, k)
    for k in range(1, T):
        assert schedule_updates(S, k, force_final=False) == brute_force(S, k, force_final=False), (T, k)
        assert (schedule_updates(S, k, maximize=False, force_final=False)
                == brute_force(S, k, maximize=False, force_final=False)), (T, k)


def test_scheduler_edges():
    S = np.ones((5, 5))
    assert schedule_updates(S, 5) == [0, 1, 2, 3, 4] and schedule_updates(S, 9) == [0, 1, 2, 3, 4]
    with pytest.raises(accel.PlanError, match="K must be at least 2"):
        schedule_updates(S, 1)


def test_bubbling_union_on_a_hand_built_case():
    layout = accel.Layout("hand", tuple(accel.adapters.BlockLayout(f"b{i}", ("attn", "ff"), ("self_attn", "ff"))
                                        for i in range(3)))
    # cells: b0.attn 0, b0.ff 1, b1.attn 2, b1.ff 3, b2.attn 4, b2.ff 5
    updates = [{0, 9}, {0, 3, 9}, {0, 5, 9}, {0, 6, 9}, {0, 9}, {0, 7, 9}]
    score = np.array([0.1, 0.2, 0.9, 0.3, 0.5, 0.05])  # top 2: b1.attn (block 1), b2.attn (block 2)
    out = bubbling_union(updates, layout, score, top_n=2)
    assert out[2] == {0, 5, 6, 7, 9}  # its own + ff of blocks 1 and 2, not block 0's
    assert out[4] == {0, 7, 9}  # ff of block 2 only
    assert [out[i] for i in (0, 1, 3, 5)] == [updates[i] for i in (0, 1, 3, 5)]


def test_bac_on_the_shapes_dit(tmp_path):
    pipe = tiny_pipeline()
    chunks = [shapes_sampler(pipe, PROMPTS[:2], 8), shapes_sampler(pipe, PROMPTS[2:], 8)]
    stats = calibrate(pipe.transformer, [lambda s=s: _run(s) for s in chunks], 8)
    S = stats.matrices["cosine"]
    assert S.shape == (stats.layout.n_cells, 8, 8)
    np.testing.assert_allclose(np.einsum("ctt->ct", S), 1.0, atol=1e-9)
    assert (stats.error_score > 0).all() and stats.peak_feature_bytes > 0
    for k in (3, 5):
        sched = bac_schedule(stats, k, top_n=2)
        plan = accel.Plan(cache=sched)
        loaded = accel.Plan.load(plan.save(tmp_path / f"bac{k}.json"))
        assert loaded.cache == sched and sched.mask[0].all() and sched.mask[-1].all()
        plain = bac_schedule(stats, k, top_n=0)
        assert (plain.mask.sum(axis=0) == k).all()
        assert (sched.mask >= plain.mask).all()
    # shared schedules: the DP on the summed matrices, identical columns within a group
    shared = bac_schedule(stats, 4, top_n=0, granularity="model", force_final=False)
    steps = np.where(shared.mask[:, 0])[0].tolist()
    assert (shared.mask == shared.mask[:, :1]).all() and len(steps) == 4 and steps[0] == 0
    assert steps == schedule_updates(S.sum(0), 4, force_final=False)
    per_block = bac_schedule(stats, 4, top_n=0, granularity="block").mask
    for cells in stats.layout.block_cells:
        cols = per_block[:, cells]
        assert (cols == cols[:, :1]).all() and cols[:, 0].sum() == 4 and cols[-1, 0]
    with pytest.raises(accel.PlanError, match="granularity"):
        bac_schedule(stats, 4, granularity="layer")
    ramp = bac_schedule(stats, 4, top_n=0, granularity="model", force_final=False, step_weight="ramp")
    weighted = S.sum(0) * (np.arange(8) + 1) / 8
    assert np.where(ramp.mask[:, 0])[0].tolist() == schedule_updates(weighted, 4, force_final=False)
    with pytest.raises(accel.PlanError, match="step weight"):
        bac_schedule(stats, 4, step_weight="late")


def test_ramp_weight_shortens_late_segments():
    lag = np.triu(np.arange(8)[None, :] - np.arange(8)[:, None]).astype(float)  # distance grows with staleness
    assert schedule_updates(lag, 2, maximize=False, force_final=False) == [0, 4]  # balanced halves
    ramp = lag * (np.arange(8) + 1) / 8
    late = schedule_updates(ramp, 2, maximize=False, force_final=False)
    assert late[0] == 0 and late[1] > 4  # the later segment got shorter


def _run(sampler):
    from accel.search.samplers import generate

    return generate(sampler)


def test_run_bac_writes_a_front_over_k(tmp_path):
    from accel.search.bac import run_bac
    from accel.search.front import ParetoFront

    pipe = tiny_pipeline()
    chunks = [shapes_sampler(pipe, PROMPTS[:2], 8), shapes_sampler(pipe, PROMPTS[2:], 8)]
    front, stats = run_bac(chunks, shapes_sampler(pipe, PROMPTS, 8), tmp_path, ks=range(3, 6), top_n=2, log=lambda s: None)
    loaded = ParetoFront.load(tmp_path)
    assert {p.name for p in loaded.points} <= {"bac-k3", "bac-k4", "bac-k5"} and loaded.points
    assert {b["name"] for b in loaded.baselines} >= {"bac-k3-no-union", "fora-2", "fora-5"}
    assert loaded.points[0].plan.produced_by["method"] == "bac"


def test_bac_on_a_torch_decoder_stack():
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
    stack = torch.nn.TransformerDecoder(layer, 3).eval()
    x, memory = torch.randn(2, 8, 16), torch.randn(2, 3, 16)

    def generation():
        h = x
        for _ in range(6):
            h = h - 0.1 * stack(h, memory)

    stats = calibrate(stack, [generation], 6)
    assert stats.layout.family == "torch-nn" and stats.layout.n_cells == 9
    sched = bac_schedule(stats, 3, top_n=2, similarity="l2")
    assert sched.mask[0].all() and sched.mask[-1].all()
    with accel.accelerate(stack, accel.Plan(cache=sched)) as handle:
        generation()
        assert handle.stats().reused.sum() == (~sched.mask).sum()


def test_similarities_are_computed_only_when_asked_and_checked_first():
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
    stack = torch.nn.TransformerDecoder(layer, 2).eval()
    x, memory = torch.randn(1, 4, 16), torch.randn(1, 3, 16)
    calls = []

    def generation():
        calls.append(1)
        h = x
        for _ in range(5):
            h = h - 0.1 * stack(h, memory)

    with pytest.raises(accel.PlanError, match="unknown similarity 'dot'"):
        calibrate(stack, [generation], 5, ["dot"])
    assert calls == []  # refused before anything ran
    stats = calibrate(stack, [generation], 5, ["cosine"])
    assert "wasserstein" not in stats.matrices and stats.error_score.shape == (stats.layout.n_cells,)
    with pytest.raises(accel.PlanError, match="did not compute 'wasserstein'"):
        bac_schedule(stats, 3, similarity="wasserstein")
    full = calibrate(stack, [generation], 5)
    np.testing.assert_array_equal(full.matrices["cosine"], stats.matrices["cosine"])
    assert bac_schedule(full, 3, similarity="wasserstein").mask[0].all()

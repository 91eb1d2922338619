import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import accel
from models import ALL, STEPS
from reference import model_state, reference_loop, same_state

FAMILIES = list(ALL)


def generation(case, steps=STEPS):
    with torch.no_grad():
        return [case.call(case.model, s) for s in range(steps)]


def random_mask(layout, steps=STEPS, seed=0, p=0.5):
    rng = np.random.default_rng(seed)
    mask = rng.random((steps, layout.n_cells)) > p
    mask[0] = True
    return mask


@pytest.mark.parametrize("family", FAMILIES)
def test_full_plan_is_bitwise_exact_and_remove_restores(family):
    case = ALL[family]()
    before = model_state(case.model)
    reference = generation(case)
    layout = accel.layout_of(case.model)
    with accel.accelerate(case.model, accel.Plan(cache=accel.CacheSchedule.full(layout, STEPS))) as handle:
        outs = generation(case)
        stats = handle.stats()
    assert all(torch.equal(a, b) for a, b in zip(reference, outs))
    assert (stats.computed == 1).all() and stats.reused.sum() == 0
    assert same_state(before, model_state(case.model))
    assert all(torch.equal(a, b) for a, b in zip(reference, generation(case)))


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "policy-encoder"])
def test_patched_cells_compute_bitwise_exact(family):
    # every cell hooked (reused once, at the last step): all steps before it are bitwise the unwrapped model's
    case = ALL[family]()
    reference = generation(case)
    layout = accel.layout_of(case.model)
    mask = np.ones((STEPS, layout.n_cells), dtype=bool)
    mask[-1] = False
    with accel.accelerate(case.model, accel.Plan(cache=accel.CacheSchedule(layout, mask))):
        outs = generation(case)
    assert all(torch.equal(a, b) for a, b in zip(reference[:-1], outs[:-1]))
    assert not torch.equal(reference[-1], outs[-1])


@pytest.mark.parametrize("family", FAMILIES)
def test_reuse_plan_equals_reference_loop_and_counts_match(family):
    case = ALL[family]()
    layout = accel.layout_of(case.model)
    mask = random_mask(layout)
    with torch.no_grad():
        expected = reference_loop(case.model, [(s, 0, lambda s=s: case.call(case.model, s)) for s in range(STEPS)], mask)
    with accel.accelerate(case.model, accel.Plan(cache=accel.CacheSchedule(layout, mask))) as handle:
        outs = generation(case)
        stats = handle.stats()
    assert all(torch.equal(a, b) for a, b in zip(expected, outs))
    np.testing.assert_array_equal(stats.computed, mask.astype(int))
    np.testing.assert_array_equal(stats.reused, (~mask).astype(int))
    np.testing.assert_array_equal(stats.calls, np.ones(STEPS))


@pytest.mark.parametrize("family", ["pixart", "flux", "policy"])
def test_counted_flops_match_cost_model(family):
    case = ALL[family]()
    layout = accel.layout_of(case.model)
    mask = random_mask(layout, seed=1)
    plan = accel.Plan(cache=accel.CacheSchedule(layout, mask))
    with accel.accelerate(case.model, plan) as handle:
        counter = FlopCounterMode(display=False)
        with counter:
            generation(case)
        costs = handle.costs()
        stats = handle.stats()
    counted = counter.get_total_flops()
    predicted = costs.schedule(mask, plan.reuse_text_kv)
    assert counted > 0 and abs(counted - predicted) <= 0.01 * counted
    assert stats.flops_computed == predicted
    assert stats.flops_full == costs.full(STEPS)
    assert plan.flop_ratio(costs) == pytest.approx(costs.full(STEPS) / predicted)
    with FlopCounterMode(display=False) as full_counter:
        generation(case)  # unwrapped
    assert full_counter.get_total_flops() == costs.full(STEPS)


def test_cpu_attention_is_counted():
    case = ALL["pixart"]()
    with accel.accelerate(case.model) as handle:
        generation(case, 1)
        costs = handle.costs()
    attn1 = costs.cells[0]
    # attn1 = q, k, v, out projections (4 x 2*B*N*D*D) + attention (2 x 2*B*H*N*N*d): 16 tokens, dim 16
    b, n, d = 2, 16, 16
    assert attn1 == 4 * 2 * b * n * d * d + 2 * 2 * b * n * n * d


def test_text_kv_reuse_is_exact_and_counted():
    case = ALL["pixart"]()
    reference = generation(case)
    with accel.accelerate(case.model) as handle:
        outs = generation(case)
        stats = handle.stats()
    assert all(torch.equal(a, b) for a, b in zip(reference, outs))
    assert stats.text_kv_hits == 3 * 2 * (STEPS - 1)  # 3 cross-attentions x (to_k, to_v) after step 0
    with accel.accelerate(case.model, accel.Plan(reuse_text_kv=False)) as handle:
        generation(case)
        assert handle.stats().text_kv_hits == 0
        assert handle.stats().flop_ratio == 1.0


def test_bare_denoiser_restarts_when_timesteps_go_back_up():
    case = ALL["pixart"]()
    layout = accel.layout_of(case.model)
    plan = accel.Plan(cache=accel.CacheSchedule.every(layout, STEPS, 2))
    with accel.accelerate(case.model, plan) as handle:
        first, second = generation(case), generation(case)
        assert all(torch.equal(a, b) for a, b in zip(first, second))
        np.testing.assert_array_equal(handle.stats().calls, 2 * np.ones(STEPS))


def test_new_generation_for_loops_without_timesteps():
    case = ALL["generic"]()
    layout = accel.layout_of(case.model)
    x = torch.randn(2, 7, 16)
    plan = accel.Plan(cache=accel.CacheSchedule.every(layout, 3, 2))
    with accel.accelerate(case.model, plan) as handle, torch.no_grad():
        a = [case.model(x, torch.full((2,), 500.0)) for _ in range(3)]
        handle.new_generation()
        b = [case.model(x, torch.full((2,), 500.0)) for _ in range(3)]
    # same timestep each call reads as CFG branches, so new_generation() is what separates the runs
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_more_steps_than_planned_raises_before_running():
    case = ALL["pixart"]()
    layout = accel.layout_of(case.model)
    plan = accel.Plan(cache=accel.CacheSchedule.every(layout, 3, 2))
    with accel.accelerate(case.model, plan) as handle:
        generation(case, 3)
        before = handle.stats()
        with pytest.raises(accel.StepOverflowError, match="covers 3 denoising steps"):
            with torch.no_grad():
                case.call(case.model, 3)
        after = handle.stats()
    np.testing.assert_array_equal(before.computed, after.computed)
    np.testing.assert_array_equal(before.calls, after.calls)


def test_attention_plan_composes_with_cache_and_falls_back_with_one_log_line(caplog):
    case = ALL["pixart"]()
    reference = generation(case)
    layout = accel.layout_of(case.model)
    before = model_state(case.model)
    plan = accel.Plan(cache=accel.CacheSchedule.full(layout, STEPS), attention="triton")
    with caplog.at_level("WARNING", logger="accel"):
        with accel.accelerate(case.model, plan) as handle:
            outs = generation(case)
            stats = handle.stats()
    if stats.attention["kernel"] == "sdpa":  # no GPU here: SDPA ran, and one line said why
        assert stats.attention["fallback_reason"]
        assert len([r for r in caplog.records if "SDPA" in r.getMessage()]) == 1
        assert all(torch.equal(a, b) for a, b in zip(reference, outs))
    assert stats.attention["requested"] == "triton"
    assert sum(stats.attention["calls"].values()) == 3 * 2 * STEPS  # 3 blocks x (attn1, attn2) x steps
    assert same_state(before, model_state(case.model))

"""A diffusers-style pipeline: generations are pipeline calls, CFG batched or in separate calls."""

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

import accel
from models import pixart
from reference import hand_cache, model_state, same_state


class TinyPipeline:
    def __init__(self):
        self.transformer = pixart().model
        self.scheduler = FlowMatchEulerDiscreteScheduler()
        g = torch.Generator().manual_seed(0)
        self.noise, self.cond, self.uncond = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 5, 12, generator=g), torch.zeros(2, 5, 12)

    def denoise(self, x, text, t):
        extra = {"resolution": None, "aspect_ratio": None}
        return self.transformer(x, encoder_hidden_states=text, timestep=t.expand(x.shape[0]), added_cond_kwargs=extra,
                                return_dict=False)[0][:, :4]

    @torch.no_grad()
    def __call__(self, num_inference_steps=4, separate_cfg=False, scale=3.0):
        self.scheduler.set_timesteps(num_inference_steps)
        x = self.noise.clone()
        for t in self.scheduler.timesteps:
            if separate_cfg:
                v_u, v_c = self.denoise(x, self.uncond, t), self.denoise(x, self.cond, t)
            else:
                v_u, v_c = self.denoise(torch.cat([x, x]), torch.cat([self.uncond, self.cond]), t).chunk(2)
            x = self.scheduler.step(v_u + scale * (v_c - v_u), t, x).prev_sample
        return x


@pytest.mark.parametrize("separate", [False, True])
def test_pipeline_generations_match_reference_and_reset(separate):
    pipe = TinyPipeline()
    layout = accel.layout_of(pipe.transformer)
    mask = np.random.default_rng(3).random((4, layout.n_cells)) > 0.4
    mask[0] = True
    expected = _reference_pipeline(pipe, mask, separate)
    plan = accel.Plan(cache=accel.CacheSchedule(layout, mask))
    with accel.accelerate(pipe, plan) as handle:
        first = pipe(4, separate_cfg=separate)
        second = pipe(4, separate_cfg=separate)
        stats = handle.stats()
    assert torch.equal(first, expected) and torch.equal(second, expected)
    branches = 2 if separate else 1
    np.testing.assert_array_equal(stats.computed, 2 * branches * mask.astype(int))
    np.testing.assert_array_equal(stats.calls, 2 * branches * np.ones(4))


def _reference_pipeline(pipe, mask, separate):
    """The pipeline run under the hand-written cache, told the step and branch of every denoiser call."""
    calls, original_denoise = {"n": 0}, pipe.denoise
    with hand_cache(pipe.transformer, mask) as now:
        def denoise(x, text, t):
            now["step"], now["branch"] = divmod(calls["n"], 2 if separate else 1)
            calls["n"] += 1
            return original_denoise(x, text, t)

        pipe.denoise = denoise
        try:
            return pipe(4, separate_cfg=separate)
        finally:
            del pipe.denoise


def test_pipeline_step_count_mismatch_is_refused_before_the_denoiser_runs():
    pipe = TinyPipeline()
    layout = accel.layout_of(pipe.transformer)
    plan = accel.Plan(cache=accel.CacheSchedule.every(layout, 4, 2))
    with accel.accelerate(pipe, plan) as handle:
        with pytest.raises(accel.PlanMismatchError, match="made for 4 denoising steps, not 6"):
            pipe(6)
        assert handle.stats().calls.sum() == 0
        pipe(4)  # the handle still works


def test_pipeline_remove_restores_scheduler_and_model():
    pipe = TinyPipeline()
    pipe(4)
    before = model_state(pipe.transformer)
    scheduler_dict = dict(pipe.scheduler.__dict__)
    layout = accel.layout_of(pipe.transformer)
    handle = accel.accelerate(pipe, accel.Plan(cache=accel.CacheSchedule.every(layout, 4, 2)))
    pipe(4)
    handle.remove()
    handle.remove()  # twice is harmless
    assert "set_timesteps" not in pipe.scheduler.__dict__
    assert set(pipe.scheduler.__dict__) == set(scheduler_dict)
    assert same_state(before, model_state(pipe.transformer))

"""Generations of many cache plans on one prompt batch, sharing the steps their plans have in common.

Plans are run in lexicographic order of their (step-major) masks, so a plan shares its first k steps with the
plan before it whenever their first k mask rows agree. After each step the latents and the cache state are kept on
a stack; the next plan resumes from the deepest state its prefix allows. A cache state is a few references to
tensors that are never modified in place, so keeping it costs no copies.

The sampler is the embedded model's: Euler steps on the flow ODE with classifier-free guidance in one batched call,
bitwise the same as ``ShapesPipeline.__call__`` (a test holds it to that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import accel

_ADDED = {"resolution": None, "aspect_ratio": None}


@dataclass
class RolloutStats:
    plans: int = 0
    calls: int = 0  # denoiser calls run
    calls_shared: int = 0  # denoiser calls a plan did not run because an earlier plan ran its prefix


class Rollout:
    def __init__(self, pipe, prompts: list[str], steps: int, seed: int = 0, guidance_scale: float | None = None):
        from accel.calibration.pipeline import image_noise

        self.pipe, self.prompts, self.steps, self.seed = pipe, list(prompts), steps, seed
        self.layout = accel.layout_of(pipe.transformer)
        self.scale = pipe.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        dtype, device = pipe.dtype, pipe.device
        cond = pipe.encode_prompts(self.prompts)
        with torch.no_grad():
            uncond = pipe.text_encoder.encode([""]).to(dtype)
        self.guided = self.scale > 1
        n = len(self.prompts)
        self.text = torch.cat([uncond.expand(n, -1, -1), cond]) if self.guided else cond
        self.noise = torch.stack([image_noise(seed, i) for i in range(n)]).to(device, torch.float32).to(dtype)
        pipe.scheduler.set_timesteps(steps)
        self.timesteps = pipe.scheduler.timesteps.clone()
        self.sigmas = pipe.scheduler.sigmas.clone()
        self.stats = RolloutStats()

    @torch.no_grad()
    def _step(self, x: torch.Tensor, i: int) -> torch.Tensor:
        x_in = torch.cat([x, x]) if self.guided else x
        t = self.timesteps[i]
        v = self.pipe.transformer(hidden_states=x_in, encoder_hidden_states=self.text,
                                  timestep=t.to(x.device, torch.float32).expand(x_in.shape[0]),
                                  added_cond_kwargs=_ADDED, return_dict=False)[0]
        if self.guided:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + self.scale * (v_cond - v_uncond)
        # FlowMatchEulerDiscreteScheduler.step: float32 update, result in the model output's dtype
        dt = self.sigmas[i + 1] - self.sigmas[i]
        return (x.to(torch.float32) + dt * v).to(v.dtype)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() + 1) / 2).clamp(0, 1)

    def run(self, masks: list[np.ndarray], reuse_text_kv: bool = True, share_prefixes: bool = True) -> list[torch.Tensor]:
        """Images (N, 3, H, W) in [0, 1] for each (steps, cells) mask, in the order given."""
        order = sorted(range(len(masks)), key=lambda j: masks[j].tobytes()) if share_prefixes else range(len(masks))
        out: list[torch.Tensor | None] = [None] * len(masks)
        stack: list[tuple[int, torch.Tensor, dict]] = []  # (steps done, latents, cache state) along the last path
        previous = None
        for j in order:
            mask = np.asarray(masks[j], dtype=bool)
            common = _common_rows(previous, mask) if share_prefixes and previous is not None else 0
            while stack and stack[-1][0] > common:
                stack.pop()
            plan = accel.Plan(cache=accel.CacheSchedule(self.layout, mask), reuse_text_kv=reuse_text_kv)
            with accel.accelerate(self.pipe.transformer, plan, store_all=share_prefixes) as handle:
                if stack:
                    done, x, state = stack[-1]
                    handle.restore(state)
                else:
                    done, x = 0, self.noise
                    handle.new_generation()
                for i in range(done, self.steps):
                    x = self._step(x, i)
                    if share_prefixes:
                        stack.append((i + 1, x, handle.snapshot()))
            self.stats.plans += 1
            self.stats.calls += self.steps - done
            self.stats.calls_shared += done
            out[j] = self._images(x)
            previous = mask
        return out


def _common_rows(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading steps two masks agree on."""
    same = (a == b).all(axis=1)
    return int(same.argmin()) if not same.all() else len(same)

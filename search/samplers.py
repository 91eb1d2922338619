"""Samplers the searches run plans with: a fixed batch of prompts and noise, stepped one denoiser call at a time
so that plans can share the steps they have in common (search/rollout.py).

A sampler has ``denoiser`` (the module plans are applied to), ``steps``, ``prompts``, ``start()`` (initial latents),
``step(x, i)`` (one denoiser call and the solver update), ``images(x)`` ((N, C, H, W) in [0, 1], what quality is
measured on) and ``cost_inputs()`` (keyword arguments of one denoiser call, for counting FLOPs).
"""

from __future__ import annotations

from typing import Callable

import torch

_ADDED = {"resolution": None, "aspect_ratio": None}


class FlowEulerSampler:
    """Euler steps on a flow-matching ODE, x <- x + (sigma_{i+1} - sigma_i) v, for any denoiser.

    ``velocity(x, i)`` makes the denoiser call of step i (with CFG and any conditioning the caller needs).
    """

    def __init__(self, denoiser: torch.nn.Module, velocity: Callable[[torch.Tensor, int], torch.Tensor],
                 noise: torch.Tensor, sigmas: torch.Tensor, to_images: Callable[[torch.Tensor], torch.Tensor],
                 cost_inputs: Callable[[], dict], prompts: list[str] | None = None) -> None:
        self.denoiser, self._velocity, self.noise, self.sigmas = denoiser, velocity, noise, sigmas
        self._to_images, self._cost_inputs = to_images, cost_inputs
        self.steps = len(sigmas) - 1
        self.prompts = list(prompts or [])

    def start(self) -> torch.Tensor:
        return self.noise

    @torch.no_grad()
    def step(self, x: torch.Tensor, i: int) -> torch.Tensor:
        v = self._velocity(x, i)
        # as FlowMatchEulerDiscreteScheduler.step: the update in float32, the result in the output's dtype
        return (x.to(torch.float32) + (self.sigmas[i + 1] - self.sigmas[i]) * v).to(v.dtype)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_images(x)

    def cost_inputs(self) -> dict:
        return self._cost_inputs()


def generate(sampler) -> torch.Tensor:
    """One whole generation with ``sampler``: its final latents."""
    x = sampler.start()
    for i in range(sampler.steps):
        x = sampler.step(x, i)
    return x


def shapes_sampler(pipe, prompts: list[str], steps: int, seed: int = 0,
                   guidance_scale: float | None = None) -> FlowEulerSampler:
    """The embedded model's sampler, bitwise the same as ``ShapesPipeline.__call__`` (a test holds it to that)."""
    from accel.calibration.pipeline import image_noise

    scale = pipe.config.guidance_scale if guidance_scale is None else float(guidance_scale)
    guided = scale > 1
    cond = pipe.encode_prompts(list(prompts))
    with torch.no_grad():
        uncond = pipe.text_encoder.encode([""]).to(pipe.dtype)
    n = len(prompts)
    text = torch.cat([uncond.expand(n, -1, -1), cond]) if guided else cond
    noise = torch.stack([image_noise(seed, i) for i in range(n)]).to(pipe.device, torch.float32).to(pipe.dtype)
    pipe.scheduler.set_timesteps(steps)
    timesteps, sigmas = pipe.scheduler.timesteps.clone(), pipe.scheduler.sigmas.clone()

    def call(x_in: torch.Tensor, i: int) -> torch.Tensor:
        t = timesteps[i].to(x_in.device, torch.float32).expand(x_in.shape[0])
        return pipe.transformer(hidden_states=x_in, encoder_hidden_states=text, timestep=t,
                                added_cond_kwargs=_ADDED, return_dict=False)[0]

    def velocity(x: torch.Tensor, i: int) -> torch.Tensor:
        if not guided:
            return call(x, i)
        v_uncond, v_cond = call(torch.cat([x, x]), i).chunk(2)
        return v_uncond + scale * (v_cond - v_uncond)

    def cost_inputs() -> dict:
        x_in = torch.cat([noise, noise]) if guided else noise
        return {"hidden_states": x_in, "encoder_hidden_states": text,
                "timestep": timesteps[0].to(torch.float32).expand(x_in.shape[0]),
                "added_cond_kwargs": _ADDED, "return_dict": False}

    sampler = FlowEulerSampler(pipe.transformer, velocity, noise, sigmas,
                               lambda x: ((x.float() + 1) / 2).clamp(0, 1), cost_inputs, prompts)
    sampler.seed, sampler.scale = seed, scale
    return sampler

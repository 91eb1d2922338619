"""Side-by-side evaluation of acceleration methods on held-out prompts: the core of `accel bench`.

Every method runs on the same pipeline, prompts, seed and step count and is compared with full compute at that
step count: exact FLOP ratio, quality (PSNR/SSIM vs full compute, attribute accuracy, Frechet distance) and, where
asked, a paired wall-clock speed-up (median and spread of alternating runs in this process).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch

import accel
from accel.search.timing import Ratio, paired_ratio


@dataclass
class Method:
    name: str
    family: str  # methods of one family are drawn as one line (a sweep or a front)
    plan: accel.Plan | None = None  # an accel plan, or
    steps: int | None = None  # plain step reduction: the same sampler with fewer steps, or
    apply: Callable | None = None  # a peer: apply(pipe) -> context manager that accelerates it


@dataclass
class Result:
    method: Method
    flop_ratio: float
    metrics: dict
    wall: Ratio | None = None  # full time / method time: median, q1, q3
    images: torch.Tensor | None = field(default=None, repr=False)


def _context(pipe, m: Method):
    if m.plan is not None:
        return accel.accelerate(pipe, m.plan)
    if m.apply is not None:
        return m.apply(pipe)
    return nullcontext()


def _generate(pipe, m: Method, prompts, steps, seed):
    with _context(pipe, m):
        return pipe(prompts, num_inference_steps=m.steps or steps, seed=seed, output_type="pt")


def generation_flops(pipe, prompts, steps, seed, plan: accel.Plan | None = None, run_steps: int | None = None) -> int:
    """Exact FLOPs of the denoiser over one generation (torch's FLOP counter, CPU SDPA registered)."""
    from torch.utils.flop_counter import FlopCounterMode

    import accel.cost  # noqa: F401  (registers the CPU SDPA formula)

    counter = FlopCounterMode(display=False)
    ctx = accel.accelerate(pipe, plan) if plan is not None else nullcontext()
    with ctx, counter:
        pipe(prompts, num_inference_steps=run_steps or steps, seed=seed, output_type="pt")
    return counter.get_total_flops()


def paired_speedup(pipe, base: Method, fast: Method, prompts, steps, seed, pairs: int) -> Ratio:
    """time(base) / time(fast) over alternating runs of exactly these two (median and quartiles)."""
    return paired_ratio(lambda: _generate(pipe, base, prompts, steps, seed),
                        lambda: _generate(pipe, fast, prompts, steps, seed), pairs=pairs, warmup=0)


def paired_wall(pipe, m: Method, prompts, steps, seed, pairs: int) -> Ratio:
    """The wall-clock speed-up of ``m`` over full compute."""
    return paired_speedup(pipe, Method("full", "full"), m, prompts, steps, seed, pairs)


def quality(images, reference, prompts, classifier) -> dict:
    from accel.calibration import metrics as mt

    out = {"psnr": float(mt.psnr(images, reference).clamp(max=100).mean()),
           "ssim": float(mt.ssim(images, reference).mean())}
    if classifier is not None:
        out.update({f"acc_{k}": float(v) for k, v in classifier.attribute_accuracy(images, prompts).items()})
        out["frechet"] = float(mt.frechet_distance(images, classifier=classifier))
    return out


def measured_generation(pipe, m: Method, prompts, steps, seed, full_flops: int) -> tuple[torch.Tensor, float]:
    """One generation with ``m``: its images and its exact FLOP ratio against full compute.

    Plans: the handle's exact per-call FLOP accounting. Fewer steps: every denoiser call costs the same, so the
    ratio is steps / k. Peers skip work dynamically: torch's FLOP counter runs around this same generation.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if m.plan is not None:
        with accel.accelerate(pipe, m.plan) as handle:
            images = pipe(prompts, num_inference_steps=steps, seed=seed, output_type="pt")
            return images, handle.stats().flop_ratio
    if m.steps is not None:
        return pipe(prompts, num_inference_steps=m.steps, seed=seed, output_type="pt"), steps / m.steps
    counter = FlopCounterMode(display=False)
    with _context(pipe, m), counter:
        images = pipe(prompts, num_inference_steps=steps, seed=seed, output_type="pt")
    return images, full_flops / counter.get_total_flops()


def run_methods(pipe, prompts, steps, methods: list[Method], classifier=None, seed: int = 0,
                wall_prompts: list[str] | None = None, wall_pairs: int = 0, wall_for: set[str] | None = None,
                log=print) -> tuple[Result, list[Result]]:
    """(full-compute result, results per method): one generation per method, on the same prompts and seed."""
    reference = _generate(pipe, Method("full", "full"), prompts, steps, seed)
    full_flops = generation_flops(pipe, prompts, steps, seed)
    full = Result(Method("full", "full"), 1.0, quality(reference, reference, prompts, classifier), images=reference)
    results = []
    for k, m in enumerate(methods):
        t0 = time.perf_counter()
        images, ratio = measured_generation(pipe, m, prompts, steps, seed, full_flops)
        r = Result(m, ratio, quality(images, reference, prompts, classifier), images=images)
        if wall_pairs and (wall_for is None or m.name in wall_for):
            r.wall = paired_wall(pipe, m, wall_prompts or prompts, steps, seed, wall_pairs)
        results.append(r)
        log(f"[{k + 1}/{len(methods)}] {m.name:28s} FLOPs {r.flop_ratio:5.2f}x  PSNR {r.metrics['psnr']:5.1f}"
            + (f"  wall {r.wall[0]:.2f}x" if r.wall else "") + f"  ({time.perf_counter() - t0:.0f}s)")
    return full, results


SAME_FLOPS = 1e-3  # FLOP ratios within 0.1% count as equal: the tables print three significant digits


def dominated_by(baseline: Result, candidates: list[Result], metrics: list[str]) -> Result | None:
    """A candidate with at least the baseline's FLOP ratio (to SAME_FLOPS) and equal or better quality on every
    metric. Plans refreshing different mixes of cells (attention, cross-attention and feed-forward cost different
    amounts) land within a few 1e-4 of each other, which no clock can tell apart."""
    from accel.search.front import sense

    for c in sorted(candidates, key=lambda r: r.flop_ratio):
        if c.flop_ratio >= baseline.flop_ratio * (1 - SAME_FLOPS) and all(
                sense(k) * (c.metrics[k] - baseline.metrics[k]) >= -1e-12 for k in metrics):
            return c
    return None

"""Evaluate a plan on a pipeline: generate under the plan, measure quality against full compute and exact cost.

This is the loop every search and the bench run. Full-compute references are generated once per
(model, prompts, seed, steps) and passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

import accel


@dataclass
class Reference:
    """Full-compute images for a prompt set: what every plan is compared with."""

    prompts: list[str]
    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    steps: int
    seed: int


@dataclass
class Evaluation:
    plan: accel.Plan
    images: torch.Tensor
    flop_ratio: float  # full-compute FLOPs / plan FLOPs, exact
    metrics: dict[str, float] = field(default_factory=dict)


def reference(pipe, prompts: list[str], steps: int, seed: int = 0) -> Reference:
    images = pipe(prompts, num_inference_steps=steps, seed=seed, output_type="pt")
    return Reference(list(prompts), images, steps, seed)


def quality(images: torch.Tensor, ref: Reference, classifier=None) -> dict[str, float]:
    """PSNR/SSIM against the reference, and attribute accuracy when a classifier for the prompts is given."""
    from accel.calibration import metrics

    out = {"psnr": float(metrics.psnr(images, ref.images).clamp(max=100).mean()),
           "ssim": float(metrics.ssim(images, ref.images).mean())}
    if classifier is not None:
        acc = classifier.attribute_accuracy(images, ref.prompts)
        out.update({f"acc_{k}": float(v) for k, v in acc.items()})
    return out


def evaluate(pipe, plan: accel.Plan, ref: Reference, classifier=None) -> Evaluation:
    with accel.accelerate(pipe, plan) as handle:
        images = pipe(ref.prompts, num_inference_steps=ref.steps, seed=ref.seed, output_type="pt")
        ratio = handle.stats().flop_ratio
    return Evaluation(plan, images, ratio, quality(images, ref, classifier))

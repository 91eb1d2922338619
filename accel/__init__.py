"""accel: faster diffusion transformers at a quality you choose.

    import accel
    layout = accel.layout_of(pipe.transformer)
    plan = accel.Plan(cache=accel.CacheSchedule.every(layout, steps=20, n=3))
    with accel.accelerate(pipe, plan) as handle:
        images = pipe(prompts, num_inference_steps=20)
        print(handle.stats().summary())
"""

from accel.adapters import ComponentSpec, Layout, Site, bind_blocks, layout_of, register_adapter
from accel.api import Handle, Stats, accelerate
from accel.cache.schedule import CacheSchedule
from accel.errors import (
    AccelError,
    AlreadyAcceleratedError,
    LayoutError,
    PlanError,
    PlanMismatchError,
    PromptError,
    StepOverflowError,
)
from accel.plan import Plan

__all__ = [
    "AccelError", "AlreadyAcceleratedError", "CacheSchedule", "ComponentSpec", "Handle", "Layout", "LayoutError",
    "Plan", "PlanError", "PlanMismatchError", "PromptError", "Site", "Stats", "StepOverflowError", "accelerate",
    "bind_blocks", "layout_of", "register_adapter",
]

"""accel: faster diffusion transformers at a quality you choose."""

from accel.errors import (
    AccelError,
    AlreadyAcceleratedError,
    LayoutError,
    PlanError,
    PlanMismatchError,
    PromptError,
    StepOverflowError,
)

__all__ = [
    "AccelError",
    "AlreadyAcceleratedError",
    "LayoutError",
    "PlanError",
    "PlanMismatchError",
    "PromptError",
    "StepOverflowError",
]

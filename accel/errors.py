"""The errors accel raises. Each says what was wrong, what was expected, and what to do.

Every check that can fail runs before accel changes any model state, so catching an AccelError leaves the
model exactly as it was.
"""


class AccelError(Exception):
    """Base class of every error accel raises on purpose."""


class LayoutError(AccelError):
    """accel cannot map a model onto a cache grid (no blocks, unknown block type, unknown names)."""


class PlanError(AccelError):
    """A plan is malformed, truncated, or internally inconsistent."""


class PlanMismatchError(PlanError):
    """A valid plan was made for another model layout or step count than the one it is applied to."""


class StepOverflowError(AccelError):
    """The denoising loop ran more steps than the plan covers."""


class AlreadyAcceleratedError(AccelError):
    """The model is already wrapped by accel; remove the first handle before wrapping again."""


class PromptError(AccelError):
    """A prompt the embedded model cannot read (empty, or words outside its grammar)."""

"""The step clock: which denoising step and which branch (cond/uncond) a denoiser call belongs to.

Rules, in order, for each call of the wrapped denoiser with timestep t:
- the first call after ``start()`` (a pipeline call, ``Handle.new_generation()``, or a fresh handle) opens a
  generation at step 0;
- a call with the same t as the previous call is another branch of the same step (a pipeline that runs the
  conditional and unconditional passes separately); each branch keeps its own cache;
- a call with a new t is the next step, unless t moves against the direction the generation has taken so far
  (e.g. it goes back up to high noise): that opens a new generation by itself;
- a denoiser without a timestep argument counts every call as a step; call ``new_generation()`` between runs.
Going past the plan's last step raises StepOverflowError before the call runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from accel.errors import StepOverflowError


@dataclass
class StepClock:
    steps: int
    step: int = -1
    branch: int = 0
    t: float | None = None
    direction: int = 0
    open: bool = False  # False until the first call of a generation

    def start(self) -> None:
        """The next call opens a new generation."""
        self.open = False

    def tick(self, t: float | None) -> bool:
        """Advance for one call; True when that call opens a new generation."""
        step, branch, direction = self.step, self.branch, self.direction
        new = not self.open
        if not new and t is not None and self.t is not None and t != self.t and direction:
            new = (t > self.t) != (direction > 0)
        if new:
            step, branch, direction = 0, 0, 0
        elif t is None:
            step, branch = step + 1, 0
        elif t == self.t:
            branch += 1
        else:
            if direction == 0 and self.t is not None:
                direction = 1 if t > self.t else -1
            step, branch = step + 1, 0
        if step >= self.steps:
            raise StepOverflowError(
                f"the plan covers {self.steps} denoising steps, but the loop is running step {step + 1}. "
                f"Run {self.steps} steps, use a plan made for this step count, or call handle.new_generation() "
                "between generations if your loop's timesteps do not show where one ends."
            )
        self.step, self.branch, self.direction, self.t, self.open = step, branch, direction, t, True
        return new

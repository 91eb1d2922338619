"""CacheSchedule: which (step, block, component) cells compute and which reuse their cached output.

The mask is a boolean array of shape (steps, cells), True = compute, False = reuse; cells follow the layout's
block-major order. Step 0 always computes (nothing is cached before it), so a schedule that asks otherwise is
refused rather than silently changed.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from accel.adapters.base import Layout
from accel.errors import LayoutError, PlanError


class CacheSchedule:
    def __init__(self, layout: Layout, mask) -> None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise PlanError(f"a cache mask must be boolean (True = compute), got dtype {mask.dtype}.")
        if mask.ndim != 2 or mask.shape[1] != layout.n_cells:
            raise PlanError(
                f"a cache mask must have shape (steps, {layout.n_cells}) for this layout, got {tuple(mask.shape)}."
            )
        if mask.shape[0] < 1:
            raise PlanError("a cache schedule needs at least one step.")
        if not mask[0].all():
            cells = [f"{b}.{c}" for (b, c), m in zip(layout.cells, mask[0]) if not m][:4]
            raise PlanError(f"step 0 must compute every cell (nothing is cached yet), but it reuses {cells}.")
        self.layout = layout
        self._mask = mask.copy()
        self._mask.flags.writeable = False

    # ---- constructors -------------------------------------------------------------------------------------
    @classmethod
    def full(cls, layout: Layout, steps: int) -> "CacheSchedule":
        """Compute everything at every step (the reference)."""
        return cls(layout, np.ones((_check_steps(steps), layout.n_cells), dtype=bool))

    @classmethod
    def every(cls, layout: Layout, steps: int, n: int, components: Iterable[str] | None = None,
              blocks: Iterable[str] | None = None) -> "CacheSchedule":
        """FORA: recompute every n steps (0, n, 2n, ...) and reuse in between.

        ``components`` / ``blocks`` restrict the caching to those component names (e.g. ("attn1", "ff")) or block
        names; every other cell computes at every step.
        """
        steps = _check_steps(steps)
        if not isinstance(n, int) or n < 1:
            raise PlanError(f"n must be a positive integer (recompute every n steps), got {n!r}.")
        cols = _select(layout, components, blocks)
        mask = np.ones((steps, layout.n_cells), dtype=bool)
        off = np.arange(steps) % n != 0
        mask[np.ix_(off, cols)] = False
        return cls(layout, mask)

    @classmethod
    def stop_after(cls, layout: Layout, steps: int, k: int, components: Iterable[str] = ("attn2",),
                   blocks: Iterable[str] | None = None) -> "CacheSchedule":
        """TGATE-style: compute the chosen components up to step k (exclusive), then reuse their last output."""
        steps = _check_steps(steps)
        if not isinstance(k, int) or not 1 <= k <= steps:
            raise PlanError(f"k must be an integer in [1, {steps}], got {k!r}.")
        cols = _select(layout, components, blocks)
        mask = np.ones((steps, layout.n_cells), dtype=bool)
        mask[np.ix_(np.arange(steps) >= k, cols)] = False
        return cls(layout, mask)

    @classmethod
    def from_cells(cls, layout: Layout, steps: int, reuse: dict[int, dict[str, Iterable[str]]]) -> "CacheSchedule":
        """Full compute except the listed cells: ``{step: {block: [component, ...]}}`` reuse."""
        mask = np.ones((_check_steps(steps), layout.n_cells), dtype=bool)
        for step, blocks in reuse.items():
            if not 0 <= int(step) < steps:
                raise PlanError(f"step {step} is outside [0, {steps}).")
            for block, comps in blocks.items():
                for comp in comps:
                    mask[int(step), layout.cell_index(block, comp)] = False
        return cls(layout, mask)

    # ---- views --------------------------------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray:
        """The (steps, cells) boolean mask, read-only."""
        return self._mask

    @property
    def steps(self) -> int:
        return self._mask.shape[0]

    @property
    def reuse_fraction(self) -> float:
        return float(1.0 - self._mask.mean())

    def computes(self, step: int, block: str, component: str) -> bool:
        return bool(self._mask[step, self.layout.cell_index(block, component)])

    def key(self) -> bytes:
        """A compact identity of the mask (for de-duplication)."""
        return np.packbits(self._mask).tobytes() + self.steps.to_bytes(4, "little")

    def __eq__(self, other) -> bool:
        return (isinstance(other, CacheSchedule) and self.layout == other.layout
                and np.array_equal(self._mask, other._mask))

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"CacheSchedule({self.steps} steps x {self.layout.n_cells} cells, {self.reuse_fraction:.0%} reused)"

    # ---- JSON ---------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """{step: {block: {component: compute?}}}: readable and diffable, ECAD's published format."""
        out = {}
        for s in range(self.steps):
            row, i = {}, 0
            for b in self.layout.blocks:
                row[b.name] = {c: bool(self._mask[s, i + j]) for j, c in enumerate(b.components)}
                i += len(b.components)
            out[str(s)] = row
        return out

    @classmethod
    def from_json(cls, layout: Layout, data: dict) -> "CacheSchedule":
        if not isinstance(data, dict) or not data:
            raise PlanError("a cache schedule must be a non-empty object {step: {block: {component: bool}}}.")
        try:
            steps = sorted(int(s) for s in data)
        except ValueError as e:
            raise PlanError(f"schedule steps must be integers, got {list(data)[:5]}.") from e
        if steps != list(range(len(steps))):
            missing = sorted(set(range(max(steps) + 1)) - set(steps))
            raise PlanError(f"schedule steps must run 0, 1, 2, ... with none missing; missing {missing[:5]}, "
                            f"got {len(steps)} steps ending at {max(steps)}.")
        mask = np.ones((len(steps), layout.n_cells), dtype=bool)
        expected = {b.name: set(b.components) for b in layout.blocks}
        for s in steps:
            row = data[str(s)] if str(s) in data else data[s]
            if not isinstance(row, dict) or set(row) != set(expected):
                got = set(row) if isinstance(row, dict) else row
                missing, extra = sorted(set(expected) - set(got or ())), sorted(set(got or ()) - set(expected))
                raise PlanError(f"step {s} of the schedule does not cover this layout's blocks "
                                f"(missing {missing[:4]}, unknown {extra[:4]}).")
            for block, comps in row.items():
                if not isinstance(comps, dict) or set(comps) != expected[block]:
                    raise PlanError(f"step {s}, block {block!r}: expected components {sorted(expected[block])}, "
                                    f"got {sorted(comps) if isinstance(comps, dict) else comps!r}.")
                for comp, value in comps.items():
                    if not isinstance(value, bool):
                        raise PlanError(f"step {s}, {block}.{comp}: expected true/false, got {value!r}.")
                    mask[s, layout.cell_index(block, comp)] = value
        return cls(layout, mask)


def _check_steps(steps) -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise PlanError(f"steps must be a positive integer, got {steps!r}.")
    return steps


def _select(layout: Layout, components, blocks) -> np.ndarray:
    comps = None if components is None else set(components)
    blks = None if blocks is None else set(blocks)
    known_c = {c for b in layout.blocks for c in b.components}
    known_b = {b.name for b in layout.blocks}
    if comps is not None and not comps <= known_c:
        raise LayoutError(f"unknown component(s) {sorted(comps - known_c)}; this layout has {sorted(known_c)}.")
    if blks is not None and not blks <= known_b:
        raise LayoutError(f"unknown block(s) {sorted(blks - known_b)[:4]}; see accel.layout_of(model).")
    return np.array([(comps is None or c in comps) and (blks is None or b in blks) for b, c in layout.cells])

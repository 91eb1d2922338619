"""Variation for cache plans: ECAD's 4-point crossover, plus a mutation that moves and a repair that keeps
the constraints. Genomes are masks flattened step-major (True = compute), as in ECAD.

ECAD's pymoo BitflipMutation(prob=0.05) gates whole individuals, so ~5% of children change by ~1 bit: the search
then lives on crossover alone. Here every child is mutated: independent bit flips at ``bit_rate`` per bit, and
with probability ``structure_rate`` one structured move: three set a whole region to compute or to reuse,
- a step: every cell at one step;
- a block: every component of one block over a run of steps;
- a component column: one component (e.g. every block's ff) at one step;
and one moves work in time at equal cost: a step swaps its row with the next step's. Plans whose cells refresh
together at a few steps are the strong ones on a trained DiT, and where those steps fall matters as much as
how many there are (measured on the embedded model: 5 refresh steps at 0, 3, 7, 13, 17 give 34.6 dB against
33.8 dB at FORA's 0, 4, 8, 12, 16).
The repair makes step 0 compute everything and, if a plan is full compute, turns one random cell to reuse.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.core.repair import Repair

from accel.adapters.base import Layout
from accel.cache.schedule import CacheSchedule


class Grid:
    """Shape and structure of the genome for one layout and step count."""

    def __init__(self, layout: Layout, steps: int) -> None:
        self.layout, self.steps, self.cells = layout, steps, layout.n_cells
        self.blocks = [np.array(cells) for cells in layout.block_cells]
        names = [c for _, c in layout.cells]
        self.columns = [np.array([j for j, n in enumerate(names) if n == c]) for c in dict.fromkeys(names)]

    @property
    def length(self) -> int:
        return self.steps * self.cells

    def masks(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=bool).reshape(len(X), self.steps, self.cells)


class CacheMutation(Mutation):
    def __init__(self, grid: Grid, bit_rate: float | None = None, structure_rate: float = 0.5) -> None:
        super().__init__(prob=1.0)
        self.grid = grid
        self.bit_rate = bit_rate if bit_rate is not None else 2.0 / grid.length
        self.structure_rate = structure_rate

    def _do(self, problem, X, random_state=None, **kwargs):
        rng = random_state if random_state is not None else np.random.default_rng()
        masks = self.grid.masks(X).copy()
        flip = rng.random(masks.shape) < self.bit_rate
        masks[flip] = ~masks[flip]
        for m in masks:
            if rng.random() < self.structure_rate:
                self._move(m, rng)
        return masks.reshape(len(X), -1)

    def _move(self, mask: np.ndarray, rng) -> None:
        g = self.grid
        value = bool(rng.random() < 0.5)
        kind = rng.integers(4)
        step = int(rng.integers(1, g.steps)) if g.steps > 1 else 0
        if kind == 3:
            if step + 1 < g.steps:
                mask[[step, step + 1]] = mask[[step + 1, step]]
        elif kind == 0:
            mask[step, :] = value
        elif kind == 1:
            block = g.blocks[int(rng.integers(len(g.blocks)))]
            end = int(rng.integers(step, g.steps)) + 1
            mask[step:end, block[0]:block[-1] + 1] = value
        else:
            mask[step, g.columns[int(rng.integers(len(g.columns)))]] = value


class CacheRepair(Repair):
    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.grid = grid

    def _do(self, problem, X, random_state=None, **kwargs):
        rng = random_state if random_state is not None else np.random.default_rng()
        masks = self.grid.masks(X).copy()
        masks[:, 0, :] = True
        for m in masks:
            if m.all() and self.grid.steps > 1:
                m[int(rng.integers(1, self.grid.steps)), int(rng.integers(self.grid.cells))] = False
        return masks.reshape(len(X), -1)


WARP = 0.3  # chosen on the embedded model's calibration prompts: at 5 refresh steps 34.6 dB vs 33.8 at warp 0


def warped_steps(steps: int, k: int, warp: float = WARP) -> list[int]:
    """k refresh steps whose segments are shorter at both ends of the trajectory than in the middle: step
    round(T w(i/k)) for i < k, with w(u) = u - warp sin(2 pi u) / (2 pi) (warp 0 is FORA's even spacing; fewer
    than k steps where two round to the same one).
    The first and the last few steps shape the image most: the layout at high noise, fine detail at low."""
    u = np.arange(k) / k
    w = u - warp * np.sin(2 * np.pi * u) / (2 * np.pi)
    return sorted({min(steps - 1, int(round(steps * x))) for x in w})



def heuristic_seeds(layout: Layout, steps: int) -> dict[str, CacheSchedule]:
    """The heuristic plans ECAD seeds with, named: FORA every-n, FORA with warped refresh steps, per-component
    every-n, attention-only every-n, and TGATE-style cross-attention stops."""
    seeds: dict[str, CacheSchedule] = {}
    for n in (2, 3, 4, 5, 7, 10):
        if n < steps:
            seeds[f"fora-{n}"] = CacheSchedule.every(layout, steps, n)
    for n in (2, 3, 4, 5):  # as many refresh steps as FORA every-n, placed by warped_steps
        k = -(-steps // n)
        if 2 < k < steps:
            mask = np.zeros((steps, layout.n_cells), dtype=bool)
            mask[warped_steps(steps, k)] = True
            seeds[f"warped-{k}"] = CacheSchedule(layout, mask)
    components = list(dict.fromkeys(c for _, c in layout.cells))
    roles = dict(zip((c for _, c in layout.cells), layout.roles))
    for comp in components:
        for n in (2, 4):
            if n < steps:
                seeds[f"{comp}-every-{n}"] = CacheSchedule.every(layout, steps, n, components=[comp])
    attn = [c for c in components if "attn" in roles[c]]
    if attn:
        for n in (2, 3, 5):
            if n < steps:
                seeds[f"attn-every-{n}"] = CacheSchedule.every(layout, steps, n, components=attn)
    cross = [c for c in components if roles[c] == "cross_attn"]
    if cross:
        for frac in (0.25, 0.5, 0.75):
            k = max(1, int(round(frac * steps)))
            seeds[f"cross-stop-{k}"] = CacheSchedule.stop_after(layout, steps, k, components=cross)
    return seeds

"""accelerate(target, plan) -> Handle: the one call.

``target`` is a diffusers-style pipeline (anything with a ``transformer`` module and a ``scheduler``) or a bare
denoiser module. For a pipeline, each pipeline call is one generation: accel hooks ``scheduler.set_timesteps``,
which every diffusers pipeline calls first, and refuses a step count the plan was not made for before the
denoiser runs. For a bare denoiser the step clock (accel.cache.clock) tells generations apart.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from accel.adapters import Binding, Layout, bind
from accel.cache.engine import CacheEngine
from accel.cost import CellCosts, measure
from accel.errors import AccelError, AlreadyAcceleratedError
from accel.patch import Patch, shadow
from accel.plan import Plan

MAX_UNPLANNED_STEPS = 4096
_ACTIVE: "weakref.WeakKeyDictionary[torch.nn.Module, Handle]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Stats:
    """What a handle ran: counts per (step, cell), summed over branches and generations, and the FLOPs."""

    layout: Layout
    computed: np.ndarray  # (steps, cells) int
    reused: np.ndarray  # (steps, cells) int
    calls: np.ndarray  # (steps,) denoiser calls per step
    text_kv_hits: int
    flops_computed: int | None  # None until the denoiser ran once
    flops_full: int | None
    attention: dict  # the attention kernel in use ("kernel"), and per kernel how many calls ran ("calls")

    @property
    def flop_ratio(self) -> float | None:
        return None if not self.flops_computed else self.flops_full / self.flops_computed

    def per_cell(self) -> dict[str, dict[str, int]]:
        return {f"{b}.{c}": {"computed": int(self.computed[:, i].sum()), "reused": int(self.reused[:, i].sum())}
                for i, (b, c) in enumerate(self.layout.cells)}

    def summary(self) -> str:
        total = self.computed.sum() + self.reused.sum()
        ratio = f", {self.flop_ratio:.2f}x fewer FLOPs" if self.flop_ratio else ""
        return (f"{int(self.calls.sum())} denoiser calls; {int(self.reused.sum())}/{int(total)} cell evaluations "
                f"reused{ratio}; attention: {self.attention['kernel']}")


class Handle:
    """A running plan on a model. ``remove()`` (or leaving ``with``) restores the model exactly."""

    def __init__(self, model: torch.nn.Module, binding: Binding, plan: Plan, engine: CacheEngine,
                 patches: list[Patch], attention=None) -> None:
        self.model, self.binding, self.plan, self._engine, self._patches = model, binding, plan, engine, patches
        self._attention = attention  # accel.kernels' AttentionInstall, when the plan picks a kernel
        self._costs: CellCosts | None = None
        self.removed = False

    @property
    def layout(self) -> Layout:
        return self.binding.layout

    def snapshot(self) -> dict:
        """The generation's cache state now (see CacheEngine.snapshot)."""
        return self._engine.snapshot()

    def restore(self, state: dict) -> None:
        self._engine.restore(state)

    def new_generation(self) -> None:
        """Start a new generation at the next denoiser call (caches are emptied then)."""
        self._engine.clock.start()

    def costs(self) -> CellCosts | None:
        """Per-cell FLOPs for the input shapes of this handle's first denoiser call (measured once, on demand)."""
        if self._costs is None and self._engine.first_inputs is not None:
            args, kwargs = self._engine.first_inputs
            counts = dict(self._attention.counts) if self._attention is not None else None
            with self._engine.bypassed():
                self._costs = measure(self.model, *args, binding=self.binding, **kwargs)
            if counts is not None:  # the measuring call is not part of what the plan ran
                self._attention.counts.update(counts)
        return self._costs

    def stats(self) -> Stats:
        computed, reused = self._engine.counts()
        calls = self._engine.calls.copy()
        kv = self._engine.text_kv
        costs = self.costs()
        flops_computed = flops_full = None
        if costs is not None:
            cells, kv_flops = np.array(costs.cells), np.array(costs.text_kv)
            flops_full = int(calls.sum()) * costs.full_call
            flops_computed = int(calls.sum()) * costs.other + int((computed * cells).sum())
            n_proj = [max(len(s.text_kv), 1) for s in self.binding.sites]
            if kv is None:
                flops_computed += int((computed * kv_flops).sum())
            else:
                flops_computed += sum(kv_flops[i] * m // n_proj[i] for i, m in kv.misses.items())
        attention = self._attention.stats() if self._attention is not None else {"kernel": "sdpa"}
        return Stats(self.layout, computed, reused, calls, sum(kv.hits.values()) if kv else 0,
                     flops_computed, flops_full, attention)

    def remove(self) -> None:
        """Undo everything accel did to the model (and pipeline). Safe to call twice."""
        if self.removed:
            return
        self._engine.remove()
        if self._attention is not None:
            self._attention.remove()
        for patch in reversed(self._patches):
            patch.undo()
        _ACTIVE.pop(self.model, None)
        self.removed = True

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "removed" if self.removed else "active"
        return f"<accel.Handle {state} on {type(self.model).__name__}: {self._engine.mask.shape[0]} steps, {self.layout!r}>"


def accelerate(target, plan: Plan | None = None, *, store_all: bool = False, observer=None) -> Handle:
    """Run ``plan`` on ``target`` (a pipeline or a denoiser) until the handle is removed.

    ``store_all`` keeps every computed output in the cache (not only those the plan reuses later), so that the
    handle's state can continue under another plan with the same prefix (searches use this to share work).
    ``observer(step, branch, cell, output)`` is called with every component output the model computes
    (calibration runs use it to measure how outputs change across steps).
    """
    plan = plan if plan is not None else Plan()
    if not isinstance(plan, Plan):
        raise AccelError(f"accelerate(target, plan) takes an accel.Plan, got {type(plan).__name__}.")
    pipeline, model = _split(target)
    if model in _ACTIVE:
        raise AlreadyAcceleratedError(
            f"this {type(model).__name__} is already accelerated ({_ACTIVE[model]!r}); call remove() on that "
            "handle (or leave its `with` block) before wrapping it again."
        )
    binding = bind(model)
    mask = plan.mask_for(binding.layout)
    if mask is None:  # no cache schedule: compute everything, still count steps (up to any sane loop length)
        mask = np.ones((MAX_UNPLANNED_STEPS, binding.layout.n_cells), dtype=bool)
    engine = CacheEngine(model, binding, mask, plan.reuse_text_kv, store_all, observer)
    attention = None
    if plan.attention != "sdpa":
        from accel.kernels import install  # validates before it changes anything; falls back to SDPA with one log line

        attention = install(model, plan.attention)
    patches: list[Patch] = []
    scheduler = getattr(pipeline, "scheduler", None) if pipeline is not None else None
    if scheduler is not None and hasattr(scheduler, "set_timesteps"):
        patches.append(shadow(scheduler, "set_timesteps", _generation_start(engine, plan, scheduler)))
    engine.install()
    handle = Handle(model, binding, plan, engine, patches, attention)
    _ACTIVE[model] = handle
    return handle


def _generation_start(engine: CacheEngine, plan: Plan, scheduler):
    def wrap(original):
        def set_timesteps(*args, **kwargs):
            out = original(*args, **kwargs)
            if plan.steps is not None:
                plan.mask_for(engine.binding.layout, len(scheduler.timesteps))
            engine.clock.start()
            return out
        return set_timesteps
    return wrap


def _split(target) -> tuple[object | None, torch.nn.Module]:
    if isinstance(target, torch.nn.Module):
        return None, target
    denoiser = getattr(target, "transformer", None)
    if isinstance(denoiser, torch.nn.Module):
        return target, denoiser
    raise AccelError(
        f"accelerate() needs a denoiser module or a pipeline with a `transformer` module; got "
        f"{type(target).__name__}. For a pipeline whose denoiser lives elsewhere, pass that module."
    )

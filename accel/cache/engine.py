"""The caching engine: per (branch, cell) slots and the compute-or-reuse decision, installed by shadowing the
forward of each component a schedule ever reuses.

Cells that a schedule computes at every step are not patched at all (they cost nothing extra); their counts in
``stats`` come from the clock. A reuse cell returns the component's cached raw output from the last step that
computed it, so gates, shifts and the residual add still follow the current timestep. An empty slot computes.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

import numpy as np
import torch

from accel.adapters import Binding
from accel.cache.clock import StepClock
from accel.cache.text_kv import TextKVCache
from accel.patch import Patch, shadow

TIMESTEP_NAMES = ("timestep", "timesteps", "t", "time", "sigma")


class CacheEngine:
    def __init__(self, model: torch.nn.Module, binding: Binding, mask: np.ndarray, reuse_text_kv: bool,
                 store_all: bool = False, observer=None) -> None:
        self.model, self.binding = model, binding
        self.mask = np.asarray(mask, dtype=bool)
        steps, n = self.mask.shape
        # store a computed output only when a later step of that cell will reuse it, unless the state may be
        # handed to another schedule (snapshot/restore), which may reuse where this one does not
        later_reuse = np.zeros_like(self.mask)
        later_reuse[:-1] = np.flip(np.logical_or.accumulate(np.flip(~self.mask[1:], 0), 0), 0)
        self.store = np.ones_like(self.mask) if store_all else later_reuse
        # observer(step, branch, cell, output) sees every computed output (calibration runs use it)
        self.observer = observer
        self.hooked = np.ones(n, dtype=bool) if store_all or observer else ~self.mask.all(axis=0)
        self.clock = StepClock(steps)
        self.slots: dict[int, list] = {}
        self.text_kv = TextKVCache() if reuse_text_kv else None
        self.bypass = False  # True while measuring costs: everything computes, nothing is counted
        self.computed = np.zeros((steps, n), dtype=np.int64)
        self.reused = np.zeros((steps, n), dtype=np.int64)
        self.calls = np.zeros(steps, dtype=np.int64)
        self.first_inputs = None  # (args, kwargs) of the first call, for measuring costs on demand
        self._patches: list[Patch] = []
        self._hooks: list = []
        self._t_name, self._t_pos = _timestep_parameter(model)

    # ---- install / remove ----------------------------------------------------------------------------------
    def install(self) -> None:
        for i, site in enumerate(self.binding.sites):
            if self.hooked[i]:
                self._patches.append(shadow(site.owner, site.attr, self._cell(i)))
            if self.text_kv is not None:
                for proj in site.text_kv:
                    self._patches.append(shadow(proj, "forward", self.text_kv.wrapper(i)))
        for module in self.binding.fastpath_guards:
            if any(self.hooked[i] for i, s in enumerate(self.binding.sites) if s.owner is module):
                self._hooks.append(module.register_forward_pre_hook(_no_op))
        self._hooks.append(self.model.register_forward_pre_hook(self._before_call, with_kwargs=True))

    def remove(self) -> None:
        for hook in reversed(self._hooks):
            hook.remove()
        for patch in reversed(self._patches):
            patch.undo()
        self._hooks, self._patches, self.slots = [], [], {}
        if self.text_kv is not None:
            self.text_kv.clear()

    # ---- per call ------------------------------------------------------------------------------------------
    def _before_call(self, module, args, kwargs):
        if self.bypass:
            return None
        if self.clock.tick(self._timestep(args, kwargs)):
            self.slots = {}
            if self.text_kv is not None:
                self.text_kv.clear()
        if self.first_inputs is None:
            self.first_inputs = _detached_copy((args, kwargs))
        self.calls[self.clock.step] += 1
        return None

    def _timestep(self, args, kwargs) -> float | None:
        if self._t_name is None:
            return None
        t = kwargs.get(self._t_name)
        if t is None and self._t_pos is not None and self._t_pos < len(args):
            t = args[self._t_pos]
        if t is None:
            return None
        if isinstance(t, torch.Tensor):
            return float(t.reshape(-1)[0]) if t.numel() else None
        return float(t)

    def _cell(self, i: int):
        mask, store, computed, reused = self.mask[:, i], self.store[:, i], self.computed[:, i], self.reused[:, i]

        def wrap(original):
            def run(*args, **kwargs):
                if self.bypass:
                    return original(*args, **kwargs)
                step, slots = self.clock.step, self.slots.get(self.clock.branch)
                if slots is None:
                    slots = self.slots[self.clock.branch] = [None] * len(self.binding.sites)
                if mask[step] or slots[i] is None:
                    out = original(*args, **kwargs)
                    if store[step]:
                        slots[i] = out
                    computed[step] += 1
                    if self.observer is not None:
                        self.observer(step, self.clock.branch, i, out)
                    return out
                reused[step] += 1
                return slots[i]
            return run
        return wrap

    # ---- views ---------------------------------------------------------------------------------------------
    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(computed, reused) per (step, cell), summed over branches and generations."""
        computed = self.computed.copy()
        computed[:, ~self.hooked] = self.calls[:, None]
        return computed, self.reused.copy()

    def snapshot(self) -> dict:
        """The generation's state after the current step: cheap (tensors are shared, never copied).

        Cached outputs are never modified in place, so a snapshot stays valid while the generation goes on.
        """
        clock = self.clock
        return {"slots": {b: list(v) for b, v in self.slots.items()},
                "clock": (clock.step, clock.branch, clock.t, clock.direction, clock.open),
                "text_kv": {k: list(v) for k, v in self.text_kv.entries.items()} if self.text_kv else None}

    def restore(self, state: dict) -> None:
        """Continue a generation from ``snapshot()`` (possibly taken under another schedule with the same prefix)."""
        self.slots = {b: list(v) for b, v in state["slots"].items()}
        c = self.clock
        c.step, c.branch, c.t, c.direction, c.open = state["clock"]
        if self.text_kv is not None and state["text_kv"] is not None:
            self.text_kv.entries = {k: list(v) for k, v in state["text_kv"].items()}

    @contextmanager
    def bypassed(self):
        self.bypass, before = True, self.bypass
        if self.text_kv is not None:
            self.text_kv.enabled = False
        try:
            yield
        finally:
            self.bypass = before
            if self.text_kv is not None:
                self.text_kv.enabled = not before


def _no_op(module, args):
    return None


def _timestep_parameter(model: torch.nn.Module) -> tuple[str | None, int | None]:
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None, None
    for name in TIMESTEP_NAMES:
        for pos, p in enumerate(params):
            if p.name == name:
                positional = p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                return name, pos if positional else None
    return None, None


def _detached_copy(tree):
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, (list, tuple)):
        return type(tree)(_detached_copy(x) for x in tree)
    if isinstance(tree, dict):
        return {k: _detached_copy(v) for k, v in tree.items()}
    return tree

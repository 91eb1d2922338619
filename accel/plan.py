"""Plan: what accel does to a model, as one versioned, human-readable JSON document.

    {"accel_plan": 1,
     "model": {"family": "pixart", "layout_fingerprint": "...", "name": "builtin:shapes"},
     "steps": 20,
     "layout": {...},                          # the grid the schedule is keyed by
     "cache": {"reuse_text_kv": true, "schedule": {"0": {"transformer_blocks.0": {"attn1": true, ...}}}},
     "attention": "sdpa",
     "produced_by": {...}, "metrics": {...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accel.adapters.base import Layout
from accel.cache.schedule import CacheSchedule
from accel.errors import PlanError, PlanMismatchError

SCHEMA_VERSION = 1
ATTENTION_KERNELS = ("sdpa", "triton", "triton-int8")


@dataclass
class Plan:
    cache: CacheSchedule | None = None  # None: compute everything
    reuse_text_kv: bool = True  # reuse cross-attention K/V of the text states within a generation (exact)
    attention: str = "sdpa"  # which attention kernel runs: one of ATTENTION_KERNELS
    model_name: str | None = None  # e.g. "builtin:shapes" or a diffusers id; informative
    produced_by: dict = field(default_factory=dict)  # method, settings, seed, date...
    metrics: dict = field(default_factory=dict)  # what was measured for this plan (quality, FLOP ratio, ...)

    def __post_init__(self) -> None:
        if self.cache is not None and not isinstance(self.cache, CacheSchedule):
            raise PlanError(f"Plan(cache=...) takes an accel.CacheSchedule, got {type(self.cache).__name__}.")
        if self.attention not in ATTENTION_KERNELS:
            raise PlanError(f"attention must be one of {ATTENTION_KERNELS}, got {self.attention!r}.")
        if not isinstance(self.reuse_text_kv, bool):
            raise PlanError(f"reuse_text_kv must be true or false, got {self.reuse_text_kv!r}.")

    @property
    def steps(self) -> int | None:
        return None if self.cache is None else self.cache.steps

    @property
    def layout(self) -> Layout | None:
        return None if self.cache is None else self.cache.layout

    def mask_for(self, layout: Layout, steps: int | None = None) -> np.ndarray | None:
        """The compute mask to run on ``layout``; a PlanMismatchError when the plan was made for another grid."""
        if self.cache is None:
            return None
        if self.cache.layout != layout:
            raise PlanMismatchError(_layout_difference(self.cache.layout, layout))
        if steps is not None and steps != self.cache.steps:
            raise PlanMismatchError(
                f"this plan was made for {self.cache.steps} denoising steps, not {steps}. "
                f"Run {self.cache.steps} steps or use a plan made for {steps}."
            )
        return self.cache.mask

    def flop_ratio(self, costs) -> float:
        """Full-compute FLOPs over this plan's, for the model and input shapes ``costs`` (accel.cost) measured."""
        if self.cache is None:
            raise PlanError("a plan without a cache schedule has no step count; its FLOP ratio is 1 per step.")
        if costs.layout_fingerprint != self.cache.layout.fingerprint:
            raise PlanMismatchError("these costs were measured on another model layout than this plan's.")
        return costs.ratio(self.cache.mask, self.reuse_text_kv)

    # ---- JSON ---------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        data = {"accel_plan": SCHEMA_VERSION}
        layout = self.layout
        data["model"] = {"family": layout.family if layout else None,
                         "layout_fingerprint": layout.fingerprint if layout else None, "name": self.model_name}
        data["steps"] = self.steps
        data["layout"] = layout.to_json() if layout else None
        data["cache"] = {"reuse_text_kv": self.reuse_text_kv,
                         "schedule": self.cache.to_json() if self.cache else None}
        data["attention"] = self.attention
        data["produced_by"] = self.produced_by
        data["metrics"] = self.metrics
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        if not isinstance(data, dict) or "accel_plan" not in data:
            raise PlanError("not an accel plan: the top-level object has no 'accel_plan' version field.")
        if data["accel_plan"] != SCHEMA_VERSION:
            raise PlanError(f"plan schema version {data['accel_plan']!r} is not supported (this accel reads "
                            f"version {SCHEMA_VERSION}); re-create the plan with this version.")
        for key in ("model", "steps", "layout", "cache", "attention"):
            if key not in data:
                raise PlanError(f"the plan has no {key!r} field; the file is incomplete.")
        cache_data = data["cache"]
        if not isinstance(cache_data, dict) or "schedule" not in cache_data:
            raise PlanError("the plan's 'cache' field must be an object with a 'schedule'.")
        cache = None
        if cache_data["schedule"] is not None:
            if not isinstance(data["layout"], dict):
                raise PlanError("a plan with a cache schedule needs its 'layout'.")
            try:
                layout = Layout.from_json(data["layout"])
            except (KeyError, TypeError, AttributeError) as e:
                raise PlanError(f"the plan's 'layout' is malformed ({e!r}).") from e
            cache = CacheSchedule.from_json(layout, cache_data["schedule"])
            if data["steps"] != cache.steps:
                raise PlanError(f"the plan says {data['steps']} steps but its schedule has {cache.steps}.")
            fingerprint = (data["model"] or {}).get("layout_fingerprint")
            if fingerprint not in (None, layout.fingerprint):
                raise PlanError("the plan's layout does not match its recorded fingerprint; the file was edited "
                                "inconsistently.")
        return cls(cache=cache, reuse_text_kv=cache_data.get("reuse_text_kv", True), attention=data["attention"],
                   model_name=(data["model"] or {}).get("name"), produced_by=data.get("produced_by") or {},
                   metrics=data.get("metrics") or {})

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        tmp.replace(path)  # never leave a half-written plan behind
        return path

    @classmethod
    def load(cls, path) -> "Plan":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise PlanError(f"cannot read plan file {path}: {e.strerror}.") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PlanError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); the file may be truncated. "
                            "Re-save the plan.") from e
        return cls.from_json(data)


def _layout_difference(plan_layout: Layout, model_layout: Layout) -> str:
    head = (f"this plan was made for another model layout ({plan_layout.family}, {len(plan_layout.blocks)} blocks, "
            f"{plan_layout.n_cells} cells) than the model's ({model_layout.family}, {len(model_layout.blocks)} blocks, "
            f"{model_layout.n_cells} cells)")
    plan_cells, model_cells = plan_layout.cells, model_layout.cells
    for a, b in zip(plan_cells, model_cells):
        if a != b:
            return f"{head}: first difference at plan cell {'.'.join(a)} vs model cell {'.'.join(b)}."
    return f"{head}. Make a plan for this model: accel.layout_of(model) shows its grid."

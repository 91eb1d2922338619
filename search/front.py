"""Pareto fronts of plans: extraction, the front folder (plans, front.json, front.png), and picking a plan.

A front folder:
    front.json         model, steps, objectives and their senses, one entry per point (its plan file and metrics),
                       and the heuristic baselines measured on the same prompts
    plans/*.json       one accel plan per front point, with its measured metrics inside
    front.png          quality vs speed-up, front and baselines on the same axes
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accel.errors import AccelError
from accel.plan import Plan

FRONT_VERSION = 1
# Metrics where larger is better; every other objective (e.g. "frechet") is minimised.
MAXIMISED = ("flop_ratio", "wall_ratio", "psnr", "ssim", "acc_shape", "acc_colour", "acc_size", "acc_position",
             "acc_background", "acc_prompt")


def sense(metric: str) -> int:
    """+1 where larger is better, -1 where smaller is."""
    return 1 if metric in MAXIMISED else -1


def non_dominated(values: np.ndarray, senses: list[int]) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (n, k) that no other row dominates (after applying senses)."""
    v = np.asarray(values, dtype=float) * np.asarray(senses, dtype=float)  # now: larger is better everywhere
    n = v.shape[0]
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        ge = (v >= v[i]).all(axis=1)
        gt = (v > v[i]).any(axis=1)
        if (ge & gt).any():
            keep[i] = False
    # identical rows: keep the first only
    _, first = np.unique(v, axis=0, return_index=True)
    unique = np.zeros(n, dtype=bool)
    unique[first] = True
    return keep & unique


@dataclass
class FrontPoint:
    plan: Plan
    metrics: dict[str, float]
    name: str = ""


@dataclass
class ParetoFront:
    model: str
    steps: int
    objectives: list[str]  # e.g. ["flop_ratio", "psnr"]; the first quality objective is the default for pick()
    points: list[FrontPoint]
    baselines: list[dict] = field(default_factory=list)  # {"name", "metrics"} of heuristic plans
    produced_by: dict = field(default_factory=dict)

    @classmethod
    def from_evaluations(cls, evaluations: list[FrontPoint], objectives: list[str], **kw) -> "ParetoFront":
        values = np.array([[p.metrics[o] for o in objectives] for p in evaluations])
        keep = non_dominated(values, [sense(o) for o in objectives]) if len(evaluations) else np.zeros(0, bool)
        points = sorted((p for p, k in zip(evaluations, keep) if k), key=lambda p: p.metrics["flop_ratio"])
        return cls(objectives=objectives, points=points, **kw)

    @property
    def quality_metric(self) -> str:
        return next(o for o in self.objectives if o not in ("flop_ratio", "wall_ratio"))

    # ---- picking ------------------------------------------------------------------------------------------
    def pick(self, min_speedup: float | None = None, min_quality: float | dict | None = None,
             metric: str | None = None) -> Plan:
        """The plan to run: the best quality at >= min_speedup (FLOP ratio), or the fastest at >= min_quality
        (on ``metric``, default the front's first quality objective; a dict sets several), or both."""
        if min_speedup is None and min_quality is None:
            raise AccelError("pick() needs min_speedup=..., min_quality=... or both.")
        if not self.points:
            raise AccelError("this front has no points.")
        metric = metric or self.quality_metric
        floors = dict(min_quality) if isinstance(min_quality, dict) else (
            {metric: min_quality} if min_quality is not None else {})
        for m in floors:
            if m not in self.points[0].metrics:
                raise AccelError(f"unknown metric {m!r}; this front measured {sorted(self.points[0].metrics)}.")
        ok = [p for p in self.points
              if (min_speedup is None or p.metrics["flop_ratio"] >= min_speedup)
              and all(sense(m) * (p.metrics[m] - v) >= 0 for m, v in floors.items())]
        if not ok:
            raise AccelError(self._closest(min_speedup, floors))
        if min_quality is None:
            best = max(ok, key=lambda p: sense(metric) * p.metrics[metric])
        else:
            best = max(ok, key=lambda p: p.metrics["flop_ratio"])
        return best.plan

    def _closest(self, min_speedup, floors) -> str:
        def shortfall(p):
            s = 0.0 if min_speedup is None else max(0.0, min_speedup - p.metrics["flop_ratio"]) / min_speedup
            for m, v in floors.items():
                s += max(0.0, sense(m) * (v - p.metrics[m])) / (abs(v) or 1.0)
            return s
        p = min(self.points, key=shortfall)
        asked = ([f"speed-up >= {min_speedup}"] if min_speedup is not None else []) + \
                [f"{m} {'>=' if sense(m) > 0 else '<='} {v}" for m, v in floors.items()]
        have = ", ".join(f"{m} {p.metrics[m]:.4g}" for m in ["flop_ratio", *floors] if m in p.metrics)
        return (f"no point of this front has {' and '.join(asked)}; the closest is {p.name or 'a point'} with {have}. "
                "Relax the request or search longer.")

    # ---- folder -------------------------------------------------------------------------------------------
    def save(self, folder) -> Path:
        folder = Path(folder)
        (folder / "plans").mkdir(parents=True, exist_ok=True)
        entries = []
        for i, p in enumerate(self.points):
            p.name = p.name or f"point{i:02d}_{p.metrics['flop_ratio']:.2f}x"
            p.plan.metrics = dict(p.metrics)
            p.plan.save(folder / "plans" / f"{p.name}.json")
            entries.append({"name": p.name, "plan": f"plans/{p.name}.json", "metrics": p.metrics})
        data = {"accel_front": FRONT_VERSION, "model": self.model, "steps": self.steps, "objectives": self.objectives,
                "senses": {o: sense(o) for o in self.objectives}, "points": entries, "baselines": self.baselines,
                "produced_by": self.produced_by}
        tmp = folder / "front.json.tmp"
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(folder / "front.json")
        self.plot(folder / "front.png")
        return folder

    @classmethod
    def load(cls, folder) -> "ParetoFront":
        folder = Path(folder)
        path = folder / "front.json" if folder.is_dir() else folder
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise AccelError(f"cannot read a front from {path}: {e}. A front folder holds front.json and plans/.") from e
        if data.get("accel_front") != FRONT_VERSION:
            raise AccelError(f"{path} is not an accel front (version {FRONT_VERSION}).")
        points = [FrontPoint(Plan.load(path.parent / e["plan"]), e["metrics"], e["name"]) for e in data["points"]]
        return cls(model=data["model"], steps=data["steps"], objectives=data["objectives"], points=points,
                   baselines=data.get("baselines", []), produced_by=data.get("produced_by", {}))

    def plot(self, path, metric: str | None = None) -> Path:
        from accel.search.plots import speedup_plot

        metric = metric or self.quality_metric
        series = {"accel front": [(p.metrics["flop_ratio"], p.metrics[metric]) for p in self.points]}
        for b in self.baselines:
            series.setdefault(b.get("family", b["name"]), []).append((b["metrics"]["flop_ratio"], b["metrics"][metric]))
        return speedup_plot(series, path, metric, f"{self.model}, {self.steps} steps")

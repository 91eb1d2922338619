"""Paired, alternating wall-clock timing: the only speed comparison that means something on a busy machine."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Ratio:
    median: float
    q1: float
    q3: float
    pairs: int

    def __iter__(self):  # (median, q1, q3), as tables print them
        return iter((self.median, self.q1, self.q3))

    def __getitem__(self, i: int) -> float:
        return (self.median, self.q1, self.q3)[i]

    def __str__(self) -> str:
        return f"{self.median:.3f} (IQR {self.q1:.3f}-{self.q3:.3f}, {self.pairs} pairs)"


def paired_ratio(baseline: Callable[[], object], candidate: Callable[[], object], pairs: int = 20,
                 warmup: int = 2) -> Ratio:
    """Median of baseline_time / candidate_time over pairs run back to back, alternating which goes first."""
    for _ in range(warmup):
        baseline(), candidate()
    ratios = []
    for i in range(pairs):
        order = (baseline, candidate) if i % 2 == 0 else (candidate, baseline)
        times = {}
        for fn in order:
            start = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - start
        ratios.append(times[baseline] / times[candidate])
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    return Ratio(float(med), float(q1), float(q3), pairs)

"""Generations of many cache plans with one sampler, sharing the steps their plans have in common.

Plans are run in lexicographic order of their (step-major) masks, so a plan shares its first k steps with the
plan before it whenever their first k mask rows agree. After each step the latents and the cache state are kept on
a stack; the next plan resumes from the deepest state its prefix allows. A cache state is a few references to
tensors that are never modified in place, so keeping it costs no copies. The runtime keeps every computed output
while sharing (``store_all``), because the next plan may reuse a cell this one never reuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import accel


@dataclass
class RolloutStats:
    plans: int = 0
    calls: int = 0  # denoiser calls run
    calls_shared: int = 0  # denoiser calls a plan did not run because an earlier plan ran its prefix


class Rollout:
    def __init__(self, sampler) -> None:
        self.sampler = sampler
        self.layout = accel.layout_of(sampler.denoiser)
        self.stats = RolloutStats()

    def run(self, masks: list[np.ndarray], reuse_text_kv: bool = True, share_prefixes: bool = True) -> list[torch.Tensor]:
        """Images for each (steps, cells) mask, in the order given."""
        s = self.sampler
        order = sorted(range(len(masks)), key=lambda j: masks[j].tobytes()) if share_prefixes else range(len(masks))
        out: list[torch.Tensor | None] = [None] * len(masks)
        stack: list[tuple[int, torch.Tensor, dict]] = []  # (steps done, latents, cache state) along the last path
        previous = None
        for j in order:
            mask = np.asarray(masks[j], dtype=bool)
            common = _common_rows(previous, mask) if share_prefixes and previous is not None else 0
            while stack and stack[-1][0] > common:
                stack.pop()
            plan = accel.Plan(cache=accel.CacheSchedule(self.layout, mask), reuse_text_kv=reuse_text_kv)
            with accel.accelerate(s.denoiser, plan, store_all=share_prefixes) as handle:
                if stack:
                    done, x, state = stack[-1]
                    handle.restore(state)
                else:
                    done, x = 0, s.start()
                    handle.new_generation()
                for i in range(done, s.steps):
                    x = s.step(x, i)
                    if share_prefixes:
                        stack.append((i + 1, x, handle.snapshot()))
            self.stats.plans += 1
            self.stats.calls += s.steps - done
            self.stats.calls_shared += done
            out[j] = s.images(x)
            previous = mask
        return out


def _common_rows(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading steps two masks agree on."""
    same = (a == b).all(axis=1)
    return int(same.argmin()) if not same.all() else len(same)

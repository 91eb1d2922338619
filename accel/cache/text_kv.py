"""Lossless reuse of cross-attention key/value projections of the text states.

Within a generation the text embeddings do not change, so ``to_k(text)`` and ``to_v(text)`` give the same result
at every step. The projection's forward is shadowed: when its input equals (torch.equal) an input seen earlier in
this generation, the stored output is returned; otherwise it computes. Equality is checked, never assumed, so
this is exact by construction; the check costs one comparison of the text states, far below the projection.
"""

from __future__ import annotations

import torch


class TextKVCache:
    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity  # distinct text inputs kept per projection (one per CFG branch is typical)
        self.entries: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.enabled = True  # False while costs are measured: every projection computes
        self.misses: dict[int, int] = {}  # projection calls that computed, per cell
        self.hits: dict[int, int] = {}  # projection calls answered from the cache, per cell

    def clear(self) -> None:
        self.entries = {}

    def wrapper(self, cell: int):
        """A ``shadow`` factory for one projection of ``cell``."""
        def wrap(original):
            key = id(getattr(original, "__self__", original))  # the projection module: stable across handles

            def run(x, *args, **kwargs):
                if not self.enabled or args or kwargs or not isinstance(x, torch.Tensor):
                    return original(x, *args, **kwargs)
                return self._lookup(key, cell, original, x)
            return run
        return wrap

    def _lookup(self, key, cell, original, x):
        entries = self.entries.setdefault(key, [])
        for seen, out in entries:
            if seen.shape == x.shape and seen.dtype == x.dtype and torch.equal(seen, x):
                self.hits[cell] = self.hits.get(cell, 0) + 1
                return out
        out = original(x)
        self.misses[cell] = self.misses.get(cell, 0) + 1
        entries.append((x.detach().clone(), out))
        del entries[:-self.capacity]
        return out

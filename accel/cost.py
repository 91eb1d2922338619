"""Exact, deterministic FLOP costs per cache cell.

One forward of the model under a FLOP-counting dispatch mode attributes every counted op to the cell whose
component is running (or to "other": embeddings, norms, adaLN modulation, the final layer). A plan's cost is then
arithmetic: per step, "other" plus the cells it computes, plus the text key/value projections once per generation
when they are reused. torch's formulas are used as they are; CPU SDPA, which torch counts as 0, gets the same
formula as the GPU SDPA kernels.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

from accel.adapters import Binding, bind
from accel.patch import shadow

_aten = torch.ops.aten


def _register_cpu_sdpa() -> None:
    op = getattr(_aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(op)
    def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


_register_cpu_sdpa()


class FlopMeter(TorchDispatchMode):
    """Counts FLOPs with torch's formulas into the bucket named by ``current``."""

    def __init__(self) -> None:
        super().__init__()
        self.current = "other"
        self.flops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_counter.flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops[self.current] = self.flops.get(self.current, 0) + int(formula(*args, **kwargs, out_val=out))
        return out


@dataclass(frozen=True)
class CellCosts:
    """FLOPs of one denoiser call, split by cell. Valid for the input shapes they were measured with."""

    layout_fingerprint: str
    cells: tuple[int, ...]  # per cell, without its text key/value projections
    text_kv: tuple[int, ...]  # per cell, the text key/value projections (0 for cells without)
    other: int  # everything outside the cells

    @property
    def full_call(self) -> int:
        return self.other + sum(self.cells) + sum(self.text_kv)

    def full(self, steps: int) -> int:
        """FLOPs of an unaccelerated generation of ``steps`` calls."""
        return steps * self.full_call

    def schedule(self, mask: np.ndarray, reuse_text_kv: bool = True) -> int:
        """FLOPs of one generation run with a (steps, cells) compute mask."""
        mask = np.asarray(mask, dtype=np.int64)
        cells, kv = np.array(self.cells, dtype=np.int64), np.array(self.text_kv, dtype=np.int64)
        total = mask.shape[0] * self.other + int((mask * cells).sum())
        # step 0 computes every cell; with reuse the projections are computed there only
        total += int(kv.sum()) if reuse_text_kv else int((mask * kv).sum())
        return total

    def ratio(self, mask: np.ndarray, reuse_text_kv: bool = True) -> float:
        """Full-compute FLOPs divided by the schedule's: the exact speed-up in work."""
        return self.full(mask.shape[0]) / self.schedule(mask, reuse_text_kv)


def measure(model: torch.nn.Module, *args, binding: Binding | None = None, **kwargs) -> CellCosts:
    """Run ``model(*args, **kwargs)`` once, counting FLOPs per cell. The model is left as it was."""
    binding = binding or bind(model)
    meter = FlopMeter()

    def attribute(bucket):
        def wrap(original):
            def run(*a, **k):
                outer, meter.current = meter.current, bucket
                try:
                    return original(*a, **k)
                finally:
                    meter.current = outer
            return run
        return wrap

    with ExitStack() as stack:
        for i, site in enumerate(binding.sites):
            stack.callback(shadow(site.owner, site.attr, attribute(f"cell:{i}")).undo)
            for proj in site.text_kv:
                stack.callback(shadow(proj, "forward", attribute(f"kv:{i}")).undo)
        with torch.no_grad(), meter:
            model(*args, **kwargs)
    n = binding.layout.n_cells
    return CellCosts(
        layout_fingerprint=binding.layout.fingerprint,
        cells=tuple(meter.flops.get(f"cell:{i}", 0) for i in range(n)),
        text_kv=tuple(meter.flops.get(f"kv:{i}", 0) for i in range(n)),
        other=meter.flops.get("other", 0),
    )

"""accel's attention kernels (Triton) and the diffusers attention processor that plugs them in.

Nothing here imports Triton until a kernel is called, so `import accel.kernels` works where Triton is missing;
`available()` says whether the kernels can run.

    from accel.kernels import flash_attention, int8_attention, available
    out = flash_attention(q, k, v)            # q, k, v: (batch, heads, tokens, head_dim), like torch SDPA
"""

from __future__ import annotations

import torch

from accel.kernels.validation import KernelInputError, KernelUnavailableError, available, interpreting

KINDS = ("triton", "triton-int8", "sdpa")


def _precheck(q, k, v, key_padding_mask, name: str) -> None:
    # Checked before Triton is imported: a bad call or a machine without a runtime never touches Triton.
    from accel.kernels.validation import check_inputs, require_runtime

    check_inputs(q, k, v, key_padding_mask, name)
    require_runtime(q, name)


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    key_padding_mask: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """Triton flash-attention forward; see accel.kernels.flash.flash_attention."""
    _precheck(q, k, v, key_padding_mask, "flash_attention")
    from accel.kernels.flash import flash_attention as run

    return run(q, k, v, key_padding_mask=key_padding_mask, scale=scale)


def int8_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_padding_mask: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """SageAttention-style INT8 Q K^T attention; see accel.kernels.int8.int8_attention."""
    _precheck(q, k, v, key_padding_mask, "int8_attention")
    from accel.kernels.int8 import int8_attention as run

    return run(q, k, v, key_padding_mask=key_padding_mask, scale=scale)


def install(model, kind: str):
    """Route every diffusers Attention module of `model` through `kind`; see accel.kernels.processor.install."""
    from accel.kernels.processor import install as run

    return run(model, kind)


__all__ = ["KINDS", "KernelInputError", "KernelUnavailableError", "available", "flash_attention", "install",
           "int8_attention", "interpreting"]

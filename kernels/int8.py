"""SageAttention-style attention: INT8 Q K^T, fp16/bf16 P V.

1. Smooth K: subtract its mean over tokens (per batch and head). Every score in a query row shifts by the same
   q . mean(k), which softmax ignores, so this is exact; it removes the channel offsets that DiT keys share and
   that would otherwise waste the int8 range.
2. Quantise per block: Q in blocks of Q_BLOCK tokens (with softmax scale and log2(e) folded in), K in blocks of
   K_BLOCK tokens, each block symmetric int8 with scale max|x| / 127 (round half away from zero).
3. The flash kernel (flash.py, QUANT=True) does int8 x int8 -> int32 Q K^T, rescales by q_scale * k_scale,
   runs the base-2 online softmax in fp32 and multiplies P (in V's half dtype) by V with fp32 accumulation.

fp32 inputs are accepted; V is then cast to fp16 for the P V product, as SageAttention does.
Accuracy is reported against an fp32 reference by `accuracy` (cosine similarity and relative L1).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from accel.kernels.flash import LOG2E, key_bias, launch
from accel.kernels.validation import check_inputs, require_runtime

Q_BLOCK = 64
K_BLOCK = 64


def _quantize(X, Mean, Out, Scale,
              stride_xb, stride_xh, stride_xm, stride_xd,
              stride_mb, stride_mh, stride_md,
              H, L, n_blk, mult,
              HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, HAS_MEAN: tl.constexpr, BLOCK: tl.constexpr):
    pid_blk = tl.program_id(0)
    pid_bh = tl.program_id(1)
    off_b = (pid_bh // H).to(tl.int64)
    off_h = (pid_bh % H).to(tl.int64)
    offs_m = pid_blk * BLOCK + tl.arange(0, BLOCK)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    ok = (offs_m < L)[:, None] & d_ok[None, :]
    x = tl.load(X + off_b * stride_xb + off_h * stride_xh + offs_m[:, None] * stride_xm + offs_d[None, :] * stride_xd,
                mask=ok, other=0.0).to(tl.float32)
    if HAS_MEAN:
        mu = tl.load(Mean + off_b * stride_mb + off_h * stride_mh + offs_d * stride_md, mask=d_ok, other=0.0)
        x = tl.where(ok, x - mu[None, :], 0.0)
    x = x * mult
    amax = tl.max(tl.max(tl.abs(x), 1), 0)
    scale = tl.maximum(amax, 1.0e-30) / 127.0
    r = x / scale
    r = r + tl.where(r >= 0.0, 0.5, -0.5)
    # Output is contiguous (batch * heads, tokens, head_dim).
    base = pid_bh.to(tl.int64) * L * HEAD_DIM
    tl.store(Out + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], r.to(tl.int32).to(tl.int8), mask=ok)
    tl.store(Scale + pid_bh * n_blk + pid_blk, scale)


_QUANT: dict[bool, object] = {}


def _quant_kernel(interpret: bool):
    if interpret not in _QUANT:
        _QUANT[interpret] = triton.jit(_quantize)
    return _QUANT[interpret]


def quantize(x: torch.Tensor, block: int, mult: float, smooth: bool):
    """Per-block symmetric int8 of x (batch, heads, tokens, d); returns (int8 tensor, scales (b*h, blocks))."""
    b, h, n, d = x.shape
    n_blk = triton.cdiv(n, block)
    out = torch.empty((b, h, n, d), dtype=torch.int8, device=x.device)
    scales = torch.empty((b * h, n_blk), dtype=torch.float32, device=x.device)
    mean = x.float().mean(dim=2) if smooth else scales  # (b, h, d); scales stands in when unused
    mstr = mean.stride() if smooth else (0, 0, 0)
    block_d = max(16, triton.next_power_of_2(d))
    _quant_kernel(x.device.type == "cpu")[(n_blk, b * h)](
        x, mean, out, scales, *x.stride(), *mstr, h, n, n_blk, float(mult),
        HEAD_DIM=d, BLOCK_D=block_d, HAS_MEAN=smooth, BLOCK=block, num_warps=4)
    return out, scales


def int8_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_padding_mask: torch.Tensor | None = None, scale: float | None = None,
                   tune: bool = True) -> torch.Tensor:
    """Attention with INT8 Q K^T (K smoothed, per-block scales) and half-precision P V.

    Same contract as flash_attention: (batch, heads, tokens, head_dim) tensors, optional bool key_padding_mask
    (batch, key_tokens) with True = attend, scale defaulting to 1/sqrt(true head dim); output in q's dtype.
    """
    check_inputs(q, k, v, key_padding_mask, "int8_attention")
    require_runtime(q, "int8_attention")
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    return attention(q, k, v, key_bias(key_padding_mask, q), scale, tune=tune)


def attention(q, k, v, bias, scale: float, tune: bool = True) -> torch.Tensor:
    """Unchecked entry (the processor's): bias is None or fp32 (batch, heads, keys) in base-2 units."""
    qi, qs = quantize(q, Q_BLOCK, scale * LOG2E, smooth=False)
    ki, ks = quantize(k, K_BLOCK, 1.0, smooth=True)
    vv = v if v.dtype != torch.float32 else v.to(torch.float16)
    return launch(q, k, vv, bias, scale, quant=(qi, ki, qs, ks, Q_BLOCK, K_BLOCK), tune=tune)


def accuracy(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Cosine similarity and relative L1 (sum|out - ref| / sum|ref|) of out against a reference, in fp64."""
    a, r = out.double().flatten(), ref.double().flatten()
    cos = torch.nn.functional.cosine_similarity(a, r, dim=0).item()
    rel_l1 = ((a - r).abs().sum() / r.abs().sum().clamp_min(1e-300)).item()
    return {"cosine": cos, "rel_l1": rel_l1}


__all__ = ["K_BLOCK", "Q_BLOCK", "accuracy", "attention", "int8_attention", "quantize"]

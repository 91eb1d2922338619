"""Flash-attention forward in Triton (FlashAttention-2 style, online softmax in base 2).

One kernel serves both public kernels: `flash_attention` (fp16/bf16/fp32 Q K^T) and, with QUANT set,
`int8_attention` (int8 Q K^T with per-block scales, see int8.py). Each program owns BLOCK_M query rows of one
(batch, head) and streams over the keys in BLOCK_N tiles, keeping a running max and sum so the softmax never needs
the full score row.

Head dims that are not powers of two are split into a power-of-two part DA and a tail DB (72 -> 64 + 32,
160 -> 128 + 32), so 72 costs 96 columns instead of 128, with masked loads and stores. That holds for fp32 and
int8 operands; fp16/bf16 operands are zero-padded on the host to the next power of two (see `launch` for why).
Scores are always scaled by the true head dim.

The Triton objects are built lazily, per mode: `triton.jit` decides at decoration time whether a kernel is
compiled or interpreted (TRITON_INTERPRET), so building on first use keeps that choice with the caller and
lets interpreted tests and compiled GPU code live in one process.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from accel.kernels.validation import check_inputs, require_runtime

LOG2E = 1.4426950408889634


def _attn_fwd(Q, K, V, O, Bias, QS, KS,
              stride_qb, stride_qh, stride_qm, stride_qd,
              stride_kb, stride_kh, stride_kn, stride_kd,
              stride_vb, stride_vh, stride_vn, stride_vd,
              stride_ob, stride_oh, stride_om, stride_od,
              stride_bb, stride_bh, stride_bn,
              H, LQ, LK, qk_scale, n_qblk, n_kblk,
              HEAD_DIM: tl.constexpr, DA: tl.constexpr, DB: tl.constexpr,
              HAS_BIAS: tl.constexpr, QUANT: tl.constexpr, QB: tl.constexpr, KB: tl.constexpr,
              IEEE: tl.constexpr, MASK_N: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    off_b = (pid_bh // H).to(tl.int64)
    off_h = (pid_bh % H).to(tl.int64)
    q_ptr = Q + off_b * stride_qb + off_h * stride_qh
    k_ptr = K + off_b * stride_kb + off_h * stride_kh
    v_ptr = V + off_b * stride_vb + off_h * stride_vh
    o_ptr = O + off_b * stride_ob + off_h * stride_oh

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n0 = tl.arange(0, BLOCK_N)
    offs_a = tl.arange(0, DA)
    row_ok = offs_m < LQ
    da_ok = offs_a < HEAD_DIM
    qa = tl.load(q_ptr + offs_m[:, None] * stride_qm + offs_a[None, :] * stride_qd,
                 mask=row_ok[:, None] & da_ok[None, :], other=0)
    acc_a = tl.zeros([BLOCK_M, DA], dtype=tl.float32)
    if DB > 0:
        offs_b = DA + tl.arange(0, DB)
        db_ok = offs_b < HEAD_DIM
        qb = tl.load(q_ptr + offs_m[:, None] * stride_qm + offs_b[None, :] * stride_qd,
                     mask=row_ok[:, None] & db_ok[None, :], other=0)
        acc_b = tl.zeros([BLOCK_M, DB], dtype=tl.float32)
    if QUANT:
        # Per-block Q scales (the softmax scale and log2(e) are folded in by the quantiser).
        qs = tl.load(QS + pid_bh * n_qblk + offs_m // QB, mask=row_ok, other=0.0)
    # A finite start keeps exp2(m_old - m_new) defined when a whole tile is masked to -inf.
    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - 1.0e30
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)

    for start_n in range(0, LK, BLOCK_N):
        offs_n = start_n + offs_n0
        col_ok = offs_n < LK
        # K is loaded in its (tokens, dim) layout and transposed for the dot, like V's load.
        ka = tl.trans(tl.load(k_ptr + offs_n[:, None] * stride_kn + offs_a[None, :] * stride_kd,
                              mask=col_ok[:, None] & da_ok[None, :], other=0))
        if IEEE:
            qk = tl.dot(qa, ka, input_precision="ieee")
        else:
            qk = tl.dot(qa, ka)
        if DB > 0:
            kb = tl.trans(tl.load(k_ptr + offs_n[:, None] * stride_kn + offs_b[None, :] * stride_kd,
                                  mask=col_ok[:, None] & db_ok[None, :], other=0))
            if IEEE:
                qk += tl.dot(qb, kb, input_precision="ieee")
            else:
                qk += tl.dot(qb, kb)
        if QUANT:
            ks = tl.load(KS + pid_bh * n_kblk + offs_n // KB, mask=col_ok, other=0.0)
            qk = qk.to(tl.float32) * (qs[:, None] * ks[None, :])
        else:
            qk = qk * qk_scale
        if HAS_BIAS:
            bias = tl.load(Bias + off_b * stride_bb + off_h * stride_bh + offs_n * stride_bn, mask=col_ok, other=0.0)
            qk = qk + bias[None, :]
        if MASK_N:
            qk = tl.where(col_ok[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        m_i = m_new
        va = tl.load(v_ptr + offs_n[:, None] * stride_vn + offs_a[None, :] * stride_vd,
                     mask=col_ok[:, None] & da_ok[None, :], other=0)
        if IEEE:
            acc_a = acc_a * alpha[:, None] + tl.dot(p.to(va.dtype), va, input_precision="ieee")
        else:
            acc_a = acc_a * alpha[:, None] + tl.dot(p.to(va.dtype), va)
        if DB > 0:
            vb = tl.load(v_ptr + offs_n[:, None] * stride_vn + offs_b[None, :] * stride_vd,
                         mask=col_ok[:, None] & db_ok[None, :], other=0)
            if IEEE:
                acc_b = acc_b * alpha[:, None] + tl.dot(p.to(vb.dtype), vb, input_precision="ieee")
            else:
                acc_b = acc_b * alpha[:, None] + tl.dot(p.to(vb.dtype), vb)

    # Rows whose keys are all masked have l_i == 0: they get zeros, not NaN (FlashAttention-2's rule).
    inv_l = tl.where(l_i > 0.0, 1.0 / tl.where(l_i > 0.0, l_i, 1.0), 0.0)
    tl.store(o_ptr + offs_m[:, None] * stride_om + offs_a[None, :] * stride_od,
             (acc_a * inv_l[:, None]).to(O.dtype.element_ty), mask=row_ok[:, None] & da_ok[None, :])
    if DB > 0:
        tl.store(o_ptr + offs_m[:, None] * stride_om + offs_b[None, :] * stride_od,
                 (acc_b * inv_l[:, None]).to(O.dtype.element_ty), mask=row_ok[:, None] & db_ok[None, :])


# Kept small on purpose: every config is compiled per head dim, and the benchmark must finish in about a minute.
_CONFIGS = [(bm, bn, w, s) for bm, bn, w, s in (
    (64, 64, 4, 3), (64, 128, 4, 2), (128, 32, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2), (128, 64, 4, 2))]


def _prune(configs, named_args, **kwargs):
    width = _arg(named_args, kwargs, "DA") + _arg(named_args, kwargs, "DB")
    if width <= 128:
        return configs
    # Wide heads: big tiles overflow shared memory; keep the ones that fit.
    kept = [c for c in configs if c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 128 * 64 and c.num_stages <= 2]
    return kept or configs[:1]


def _arg(named_args, kwargs, key):
    # Where constexprs land differs between Triton versions (named_args in 3.x, kwargs in some).
    return named_args[key] if key in named_args else kwargs[key]


_KERNELS: dict[tuple[bool, bool], object] = {}


def _kernel(interpret: bool, tune: bool):
    """The Triton kernel for this mode: autotuned on the GPU (unless tune=False), plain in the interpreter."""
    key = (interpret, tune and not interpret)
    if key not in _KERNELS:
        jitted = triton.jit(_attn_fwd)
        if not key[1]:
            _KERNELS[key] = jitted
        else:
            configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
                       for bm, bn, w, s in _CONFIGS]
            # MASK_N follows the tuned BLOCK_N, so it is derived per config rather than passed in.
            masked = triton.heuristics({"MASK_N": lambda a: a["LK"] % a["BLOCK_N"] != 0})(jitted)
            tuned = triton.autotune(configs, key=["LQ", "LK", "HEAD_DIM", "HAS_BIAS", "QUANT", "IEEE"],
                                    prune_configs_by={"early_config_prune": _prune})(masked)
            _KERNELS[key] = tuned
    return _KERNELS[key]


def split_head_dim(d: int, min_block: int) -> tuple[int, int]:
    """Power-of-two main part and padded tail (0 when none) that cover head dim d; main >= min_block, tail >= 32."""
    da = max(min_block, 1 << (d.bit_length() - 1))
    rest = d - da
    db = 0 if rest <= 0 else max(32, triton.next_power_of_2(rest))
    return da, db


def key_bias(key_padding_mask: torch.Tensor | None, q: torch.Tensor) -> torch.Tensor | None:
    """A (batch, heads, keys) fp32 additive bias in base-2 units from a bool mask (True = attend)."""
    if key_padding_mask is None:
        return None
    b, h = q.shape[:2]
    bias = torch.zeros(key_padding_mask.shape, dtype=torch.float32, device=q.device)
    bias.masked_fill_(~key_padding_mask, float("-inf"))
    return bias[:, None, :].expand(b, h, bias.shape[-1])


def launch(q, k, v, bias, scale, quant=None, tune=True):
    """Run the kernel. bias: None or fp32 (batch, heads, keys) in base-2 units (broadcast strides allowed).

    quant: None, or (q_int8, k_int8, q_scales, k_scales, q_block, k_block) from int8.py; then q and k are
    the int8 tensors and `scale` is already folded into q_scales. tune=False skips autotuning (one fixed tile)
    for quick checks that should not pay for compiling every config.
    """
    b, h, lq, d = q.shape
    lk = k.shape[2]
    interpret = q.device.type == "cpu"
    if quant is None:
        da, db = split_head_dim(d, 16)
        width = max(16, triton.next_power_of_2(d))
        if v.dtype != torch.float32 and width != d:
            # On Hopper with Triton 3.6, fp16/bf16 Q K^T gave wrong results and then illegal addresses both with a
            # masked head dim and with a split one (64 + 32); only unmasked power-of-two widths were right. So
            # half precision zero-pads to the next power of two on the host (a copy, and 128 columns for 72).
            out = launch(*(torch.nn.functional.pad(x, (0, width - d)) for x in (q, k, v)), bias, scale, tune=tune)
            return out[..., :d]
        qq, kk, qs, ks, qb_, kb_ = q, k, None, None, 1, 1
    else:
        qq, kk, qs, ks, qb_, kb_ = quant
        da, db = split_head_dim(d, 32)  # int8 MMA needs K >= 32
    out = torch.empty((b, h, lq, d), dtype=q.dtype, device=q.device)
    dummy = out  # stands in for absent pointers; never read
    has_bias = bias is not None
    bstr = bias.stride() if has_bias else (0, 0, 0)
    args = [qq, kk, v, out, bias if has_bias else dummy, qs if qs is not None else dummy,
            ks if ks is not None else dummy,
            *qq.stride(), *kk.stride(), *v.stride(), *out.stride(), *bstr,
            h, lq, lk, float(scale) * LOG2E,
            qs.shape[-1] if qs is not None else 1, ks.shape[-1] if ks is not None else 1]
    meta = dict(HEAD_DIM=d, DA=da, DB=db, HAS_BIAS=has_bias, QUANT=quant is not None, QB=qb_, KB=kb_,
                IEEE=v.dtype == torch.float32)
    kernel = _kernel(interpret, tune)
    if interpret or not tune:
        bm, bn, extra = (16, 16, {}) if interpret else (64, 64, {"num_warps": 4, "num_stages": 2})
        kernel[(triton.cdiv(lq, bm), b * h)](*args, **meta, MASK_N=lk % bn != 0, BLOCK_M=bm, BLOCK_N=bn, **extra)
    else:
        kernel[lambda meta_: (triton.cdiv(lq, meta_["BLOCK_M"]), b * h)](*args, **meta)
    return out


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    key_padding_mask: torch.Tensor | None = None, scale: float | None = None,
                    tune: bool = True) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v for (batch, heads, tokens, head_dim) tensors, like torch SDPA.

    key_padding_mask: optional bool (batch, key_tokens), True where a key is attended (SDPA's bool convention);
    query rows with no attended key come out as zeros. scale defaults to 1/sqrt(true head dim).
    Lq and Lk may differ (cross-attention). Output has q's dtype and shape.
    """
    check_inputs(q, k, v, key_padding_mask, "flash_attention")
    require_runtime(q, "flash_attention")
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    return launch(q, k, v, key_bias(key_padding_mask, q), scale, tune=tune)

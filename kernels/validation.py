"""Input checks and runtime availability for the attention kernels.

Every check here runs before any kernel launch, so a bad call never leaves a half-written output behind.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from accel.errors import AccelError

MAX_HEAD_DIM = 256
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


class KernelInputError(AccelError):
    """Tensors handed to an accel attention kernel have the wrong rank, shape, dtype or device."""


class KernelUnavailableError(AccelError):
    """No Triton runtime can run the kernel here (no GPU, and the Triton interpreter is not enabled)."""


def interpreting() -> bool:
    """True when TRITON_INTERPRET=1 asks Triton to run kernels with numpy on the CPU."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def available(device: torch.device | str | None = None) -> tuple[bool, str]:
    """Whether the Triton kernels can run for tensors on `device` (default: the GPU if any, else the CPU).

    Returns (ok, reason); the reason is a sentence fit for a log line either way.
    """
    if importlib.util.find_spec("triton") is None:
        return False, "triton is not installed"
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = torch.device(device).type
    if kind == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA GPU is visible to torch"
        return True, f"Triton runs on {torch.cuda.get_device_name()}"
    if kind == "cpu":
        if interpreting():
            return True, "Triton runs in its CPU interpreter (TRITON_INTERPRET=1; slow, for tests)"
        return False, "no CUDA GPU is visible and TRITON_INTERPRET=1 is not set"
    return False, f"Triton kernels do not run on {kind} tensors"


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None,
                 name: str) -> None:
    """Raise KernelInputError unless q, k, v (and the mask) form a valid (batch, heads, tokens, head_dim) call."""
    for label, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise KernelInputError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}.")
        if t.dim() != 4:
            raise KernelInputError(
                f"{name}: {label} has rank {t.dim()} (shape {tuple(t.shape)}); expected rank 4 laid out as "
                "(batch, heads, tokens, head_dim) like torch SDPA. Reshape before calling.")
        if t.dtype not in SUPPORTED_DTYPES:
            raise KernelInputError(
                f"{name}: {label} has dtype {t.dtype}; expected one of float16, bfloat16, float32. Cast first.")
    if not (q.dtype == k.dtype == v.dtype):
        raise KernelInputError(f"{name}: q, k, v dtypes differ ({q.dtype}, {k.dtype}, {v.dtype}); cast them to one.")
    if not (q.device == k.device == v.device):
        raise KernelInputError(f"{name}: q, k, v live on different devices ({q.device}, {k.device}, {v.device}).")
    bq, hq, _, dq = q.shape
    bk, hk, lk, dk = k.shape
    bv, hv, lv, dv = v.shape
    if not (bq == bk == bv):
        raise KernelInputError(f"{name}: batch sizes differ (q {bq}, k {bk}, v {bv}); they must match.")
    if not (hq == hk == hv):
        raise KernelInputError(
            f"{name}: head counts differ (q {hq}, k {hk}, v {hv}); expected equal heads (no grouped-query attention).")
    if lk != lv:
        raise KernelInputError(f"{name}: k has {lk} tokens but v has {lv}; keys and values must pair up.")
    if not (dq == dk == dv):
        raise KernelInputError(f"{name}: head dims differ (q {dq}, k {dk}, v {dv}); they must be equal.")
    if dq > MAX_HEAD_DIM or dq < 1:
        raise KernelInputError(f"{name}: head dim {dq} is outside 1..{MAX_HEAD_DIM}; use torch SDPA for it.")
    if min(q.shape[2], lk) < 1 or bq < 1 or hq < 1:
        raise KernelInputError(f"{name}: empty input (q {tuple(q.shape)}, k {tuple(k.shape)}).")
    if key_padding_mask is not None:
        m = key_padding_mask
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or tuple(m.shape) != (bq, lk):
            got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, torch.Tensor) else type(m).__name__
            raise KernelInputError(
                f"{name}: key_padding_mask must be a bool tensor of shape (batch, key_tokens) = ({bq}, {lk}) with "
                f"True for keys to attend and False for padding; got {got}.")
        if m.device != q.device:
            raise KernelInputError(f"{name}: key_padding_mask is on {m.device} but q is on {q.device}.")


def require_runtime(q: torch.Tensor, name: str) -> None:
    """Raise KernelUnavailableError when no Triton runtime can run a kernel on q's device."""
    ok, why = available(q.device)
    if not ok:
        raise KernelUnavailableError(f"{name}: cannot run: {why}. Use torch SDPA (Plan(attention='sdpa')) here.")

"""Plug accel's attention kernels into diffusers models.

Design: wrap, don't re-implement. Each diffusers attention module keeps its own processor (AttnProcessor2_0 for
PixArt/DiT self- and cross-attention, JointAttnProcessor2_0 for SD3, FluxAttnProcessor for FLUX with its rotary
embeddings, ...), so q, k, v, masks, norms and rotary embeddings are computed exactly as diffusers computes them.
`install` sets a thin wrapper as the processor; while the wrapper runs the original, a context variable marks
"this thread is inside an accel-routed attention call", and a dispatcher placed at
torch.nn.functional.scaled_dot_product_attention (where all of those processors, and diffusers' native attention
backend, look the function up at call time) sends such calls to the chosen kernel. Calls outside a wrapper, in
other threads, or with arguments the kernels do not cover (dropout, causal masks, per-query masks, grouped-query
heads, autograd) go to the original SDPA unchanged and are counted as "sdpa".

The wrapper advertises the wrapped processor's call signature, because diffusers drops keyword arguments a
processor's signature does not name (FLUX's image_rotary_emb, for one).

If the kernels cannot run here (no GPU and no TRITON_INTERPRET=1), the install falls back to SDPA and logs one line
on the "accel" logger. `AttentionInstall.stats()` says which kernel was asked for, which ran, and how often.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import threading
from dataclasses import dataclass, field

import torch

from accel.kernels.validation import KernelInputError, available

KINDS = ("triton", "triton-int8", "sdpa")
LOG2E = 1.4426950408889634
log = logging.getLogger("accel")

_ACTIVE: contextvars.ContextVar["AttentionInstall | None"] = contextvars.ContextVar("accel_attention", default=None)
_LOCK = threading.Lock()
_PATCH = {"users": 0, "original": None}


@dataclass
class AttentionInstall:
    """What `install` did: the kernel asked for, the one in use, why they differ, and per-kernel call counts."""

    requested: str
    kernel: str
    fallback_reason: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    _originals: list = field(default_factory=list, repr=False)
    _removed: bool = field(default=False, repr=False)

    def stats(self) -> dict:
        return {"requested": self.requested, "kernel": self.kernel, "fallback_reason": self.fallback_reason,
                "calls": dict(self.counts)}

    def remove(self) -> None:
        """Put every original processor object back and release the SDPA dispatcher (idempotent)."""
        if self._removed:
            return
        for module, original, wrapper in self._originals:
            if module.processor is wrapper:
                module.set_processor(original)
            else:
                log.warning("accel attention: %s's processor was replaced after install; left as is",
                            type(module).__name__)
        self._originals.clear()
        self._removed = True
        _release()

    __call__ = remove


class _RoutedProcessor:
    """Runs the wrapped diffusers processor with its SDPA calls routed to an accel kernel."""

    def __init__(self, inner, record: AttentionInstall):
        self.inner = inner
        self.record = record

    def _run(self, *args, **kwargs):
        token = _ACTIVE.set(self.record)
        try:
            return self.inner(*args, **kwargs)
        finally:
            _ACTIVE.reset(token)

    def __getattr__(self, name):  # processors carry attributes diffusers reads (e.g. _attention_backend)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


_WRAPPER_TYPES: dict[type, type] = {}


def _wrapper_type(inner) -> type:
    cls = type(inner)
    if cls not in _WRAPPER_TYPES:
        def __call__(self, *args, **kwargs):
            return self._run(*args, **kwargs)
        __call__.__signature__ = inspect.signature(cls.__call__)
        _WRAPPER_TYPES[cls] = type(f"Accel{cls.__name__}", (_RoutedProcessor,), {"__call__": __call__})
    return _WRAPPER_TYPES[cls]


def _attention_modules(model) -> list:
    if not isinstance(model, torch.nn.Module):  # a pipeline: its denoiser
        model = getattr(model, "transformer", None) or getattr(model, "unet", None)
    if not isinstance(model, torch.nn.Module):
        raise KernelInputError("install: expected a torch module or a diffusers pipeline with a transformer; "
                               f"got {type(model).__name__}.")
    return [m for m in model.modules() if hasattr(m, "set_processor") and getattr(m, "processor", None) is not None]


def _device_of(model) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def install(model, kind: str) -> AttentionInstall:
    """Route the attention of every diffusers attention module in `model` through `kind`.

    kind: "triton" (flash kernel), "triton-int8" (INT8 Q K^T) or "sdpa" (torch's own; only counted).
    Returns an AttentionInstall; call .remove() to restore the original processor objects.
    """
    if kind not in KINDS:
        raise KernelInputError(f"install: unknown attention kind {kind!r}; expected one of {', '.join(KINDS)}.")
    modules = _attention_modules(model)
    if not modules:
        raise KernelInputError(f"install: {type(model).__name__} has no diffusers attention modules to route.")
    record = AttentionInstall(requested=kind, kernel=kind)
    if kind != "sdpa":
        ok, why = available(_device_of(modules[0]))
        if not ok:
            record.kernel, record.fallback_reason = "sdpa", why
            log.warning("accel attention: %s kernels cannot run (%s); using torch SDPA instead.", kind, why)
    for m in modules:
        wrapper = _wrapper_type(m.processor)(m.processor, record)
        record._originals.append((m, m.processor, wrapper))
        m.set_processor(wrapper)
    _acquire()
    return record


def _acquire() -> None:
    with _LOCK:
        if _PATCH["users"] == 0:
            _PATCH["original"] = torch.nn.functional.scaled_dot_product_attention
            torch.nn.functional.scaled_dot_product_attention = _dispatch
        _PATCH["users"] += 1


def _release() -> None:
    with _LOCK:
        _PATCH["users"] -= 1
        if _PATCH["users"] == 0:
            if torch.nn.functional.scaled_dot_product_attention is _dispatch:
                torch.nn.functional.scaled_dot_product_attention = _PATCH["original"]
            _PATCH["original"] = None


def _key_bias(mask, b: int, h: int, lk: int):
    """A (batch, heads, keys) base-2 bias from an SDPA attn_mask that varies only over keys, else False."""
    if mask is None:
        return None
    if mask.dim() < 2 or mask.shape[-1] != lk or mask.shape[-2] != 1:
        return False
    m = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape)) if mask.dim() < 4 else mask
    if m.dim() != 4 or m.shape[0] not in (1, b) or m.shape[1] not in (1, h):
        return False
    m = m[:, :, 0, :]
    if m.dtype == torch.bool:
        bias = torch.zeros(m.shape, dtype=torch.float32, device=m.device).masked_fill_(~m, float("-inf"))
    else:
        bias = m.float() * LOG2E
    return bias.expand(b, h, lk)


def _dispatch(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
              **kwargs):
    original = _PATCH["original"] or torch._C._nn.scaled_dot_product_attention
    record = _ACTIVE.get()
    if record is None:
        return original(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                        scale=scale, enable_gqa=enable_gqa, **kwargs)
    bias = False
    if (record.kernel != "sdpa" and not kwargs and dropout_p == 0.0 and not is_causal
            and query.dim() == 4 and key.dim() == 4 and value.dim() == 4
            and query.shape[:2] == key.shape[:2] == value.shape[:2] and key.shape[2] == value.shape[2]
            and query.shape[-1] == key.shape[-1] == value.shape[-1] <= 256
            and query.dtype == key.dtype == value.dtype
            and query.dtype in (torch.float16, torch.bfloat16, torch.float32)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value)))
            and available(query.device)[0]):
        b, h, _, d = query.shape
        bias = _key_bias(attn_mask, b, h, key.shape[2])
    if bias is False:
        record.counts["sdpa"] += 1
        return original(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                        scale=scale, enable_gqa=enable_gqa, **kwargs)
    scale = 1.0 / (query.shape[-1] ** 0.5) if scale is None else float(scale)
    if record.kernel == "triton-int8":
        from accel.kernels.int8 import attention
        out = attention(query, key, value, bias, scale)
    else:
        from accel.kernels.flash import launch
        out = launch(query, key, value, bias, scale)
    record.counts[record.kernel] += 1
    return out

"""Interpreted kernel checks, run as a script in a child process with TRITON_INTERPRET=1.

Triton decides at import whether it interprets, so the checks live in their own process: nothing leaks into the
rest of the test session. Prints one JSON object: case name -> measured numbers. Inputs are fresh random each
run (the seed is printed in the result for reproduction); kernel outputs are allocated poisoned (NaN, or -128 for
int8, a value the quantiser never writes) so any element a kernel forgets to write shows up.
"""

import json
import math
import os
import sys
import time
from contextlib import contextmanager

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"

import torch  # noqa: E402

from accel.kernels import flash_attention, install, int8_attention  # noqa: E402
from accel.kernels.int8 import Q_BLOCK, accuracy, quantize  # noqa: E402


@contextmanager
def poisoned_outputs():
    real = torch.empty

    def empty(*args, **kwargs):
        t = real(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t.fill_(-128)

    torch.empty = empty
    try:
        yield
    finally:
        torch.empty = real


def reference(q, k, v, mask=None):
    q, k, v = (x.double() for x in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
    return torch.softmax(s, -1).nan_to_num(0.0) @ v


def inputs(b, h, lq, lk, d, dtype, masked):
    q, k, v = (torch.randn(b, h, n, d).to(dtype) for n in (lq, lk, lk))
    k = k + 0.5  # keys share an offset, as DiT keys do; smoothing must remove it
    mask = None
    if masked:
        mask = torch.rand(b, lk) > 0.4
        mask[:, 0] = True
        mask[-1, :] = False  # a batch row with every key padded: its outputs must be zeros
        mask[-1, lk // 2] = True if b == 1 else False
    return q, k, v, mask


KERNEL_CASES = {  # name: (batch, heads, Lq, Lk, head_dim, dtype, masked)
    "fp32_d64": (2, 2, 32, 32, 64, torch.float32, False),
    "fp32_d72_cross": (1, 2, 40, 24, 72, torch.float32, False),
    "fp32_d72_mask": (2, 2, 17, 33, 72, torch.float32, True),
    "fp32_d40_cross_mask": (2, 2, 24, 37, 40, torch.float32, True),
    "fp32_d256": (1, 1, 18, 20, 256, torch.float32, False),
    "fp16_d64": (2, 2, 32, 32, 64, torch.float16, False),
    "fp16_d72_cross_mask": (2, 2, 33, 19, 72, torch.float16, True),
    "fp16_d128": (1, 2, 16, 40, 128, torch.float16, False),
}


def kernel_cases(out):
    for name, (b, h, lq, lk, d, dt, masked) in KERNEL_CASES.items():
        q, k, v, mask = inputs(b, h, lq, lk, d, dt, masked)
        ref = reference(q, k, v, mask)
        for label, fn in (("flash", flash_attention), ("int8", int8_attention)):
            with poisoned_outputs():
                o = fn(q, k, v, key_padding_mask=mask)
            od = o.double()
            res = {"shape_ok": list(o.shape) == list(q.shape) and o.dtype == q.dtype,
                   "finite": bool(torch.isfinite(od).all()), "nonzero": bool(od.abs().sum() > 0),
                   "max_rel_err": ((od - ref).abs().max() / ref.abs().max()).item(),
                   **accuracy(o, ref)}
            if mask is not None:
                dead = ~mask.any(-1)
                res["dead_rows_zero"] = bool((od[dead] == 0).all()) if dead.any() else True
            out[f"{label}_{name}"] = res


def quant_case(out):
    x = torch.randn(2, 2, 150, 72) * 3 + 1
    with poisoned_outputs():
        qi, sc = quantize(x, Q_BLOCK, 0.5, smooth=True)
    xs = (x - x.mean(dim=2, keepdim=True)) * 0.5
    blocks = torch.nn.functional.pad(xs, (0, 0, 0, -150 % Q_BLOCK)).reshape(2, 2, -1, Q_BLOCK, 72)
    want = blocks.abs().amax((-1, -2)).reshape(4, -1) / 127
    deq = qi.float().reshape(2, 2, 150, 72) * sc.reshape(2, 2, -1).repeat_interleave(Q_BLOCK, -1)[..., :150, None]
    out["quantize"] = {"in_range": bool(qi.abs().max() <= 127), "scale_err": (sc - want).abs().max().item(),
                       "max_dequant_err_in_scales": ((deq - xs).abs() / sc.reshape(2, 2, -1).repeat_interleave(
                           Q_BLOCK, -1)[..., :150, None]).max().item()}


def processor_cases(out):
    from diffusers.models.attention_processor import Attention, JointAttnProcessor2_0
    from diffusers.models.transformers.transformer_flux import FluxAttention, FluxAttnProcessor

    def run(module, call, kind):
        base = call()
        originals = [m.processor for m in module.modules() if hasattr(m, "set_processor")]
        handle = install(module, kind)
        routed = call()
        stats = handle.stats()
        handle.remove()
        restored = [m.processor for m in module.modules() if hasattr(m, "set_processor")]
        after = call()
        return {"max_abs_err": (routed.double() - base.double()).abs().max().item(),
                "scale": base.abs().max().item(), "calls": stats["calls"], "kernel": stats["kernel"],
                "restored": all(a is b for a, b in zip(originals, restored)) and len(originals) == len(restored),
                "bitwise_after_remove": bool(torch.equal(after, base))}

    torch.manual_seed(int(time.time_ns() % 2**31))
    self_attn = Attention(query_dim=48, heads=2, dim_head=24).eval()
    x = torch.randn(2, 20, 48)
    cross = Attention(query_dim=48, cross_attention_dim=32, heads=2, dim_head=24).eval()
    ctx = torch.randn(2, 9, 32)
    enc_mask = torch.ones(2, 9)
    enc_mask[1, 5:] = 0
    bias = ((1 - enc_mask) * -10000.0)[:, None, :]  # what PixArt hands its cross-attention
    joint = Attention(query_dim=48, heads=2, dim_head=24, added_kv_proj_dim=48, context_pre_only=False,
                      out_dim=48, processor=JointAttnProcessor2_0()).eval()
    jctx = torch.randn(2, 7, 48)
    flux = FluxAttention(query_dim=48, heads=2, dim_head=24, added_kv_proj_dim=48, processor=FluxAttnProcessor()).eval()
    rot = torch.randn(27, 12)
    rope = (rot.cos().repeat_interleave(2, -1), rot.sin().repeat_interleave(2, -1))
    with torch.no_grad():
        for kind in ("triton", "triton-int8"):
            out[f"proc_self_{kind}"] = run(self_attn, lambda: self_attn(x), kind)
            out[f"proc_cross_mask_{kind}"] = run(
                cross, lambda: cross(x, encoder_hidden_states=ctx, attention_mask=bias), kind)
            out[f"proc_sd3_joint_{kind}"] = run(
                joint, lambda: torch.cat(joint(x, encoder_hidden_states=jctx), 1), kind)
            out[f"proc_flux_{kind}"] = run(
                flux, lambda: torch.cat(flux(x, encoder_hidden_states=jctx, image_rotary_emb=rope), 1), kind)


if __name__ == "__main__":
    seed = int(time.time_ns() % 2**31)
    torch.manual_seed(seed)
    results = {"seed": seed}
    parts = sys.argv[1:] or ["kernels", "quantize", "processor"]
    if "kernels" in parts:
        kernel_cases(results)
    if "quantize" in parts:
        quant_case(results)
    if "processor" in parts:
        processor_cases(results)
    print("RESULTS " + json.dumps(results))

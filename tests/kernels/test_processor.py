"""The diffusers processor: routing, exact restore, counts, and the SDPA fallback."""

import logging

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from accel.kernels import KernelInputError, install


def test_routes_pixart_sd3_flux_attention_through_the_kernels(interpreted):
    for kind in ("triton", "triton-int8"):
        for block in ("self", "cross_mask", "sd3_joint", "flux"):
            r = interpreted[f"proc_{block}_{kind}"]
            assert r["kernel"] == kind and r["calls"][kind] >= 1 and r["calls"]["sdpa"] == 0, (block, r)
            tol = 1e-5 if kind == "triton" else 0.02
            assert r["max_abs_err"] <= tol * max(r["scale"], 1e-6), (block, kind, r)
            assert r["restored"] and r["bitwise_after_remove"], (block, kind, r)


def test_fallback_without_runtime_logs_once_and_is_bitwise_sdpa(monkeypatch, caplog):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: no fallback to test")
    attn = Attention(query_dim=32, heads=2, dim_head=16).eval()
    original, sdpa = attn.processor, torch.nn.functional.scaled_dot_product_attention
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        base = attn(x)
        with caplog.at_level(logging.INFO, logger="accel"):
            handle = install(attn, "triton")
            routed = attn(x)
            attn(x)
        handle.remove()
    lines = [r for r in caplog.records if r.name == "accel"]
    assert len(lines) == 1 and "SDPA" in lines[0].getMessage() and "triton" in lines[0].getMessage()
    assert torch.equal(routed, base)
    assert handle.stats() == {"requested": "triton", "kernel": "sdpa", "fallback_reason": handle.fallback_reason,
                              "calls": {"triton": 0, "triton-int8": 0, "sdpa": 2}}
    assert attn.processor is original
    assert torch.nn.functional.scaled_dot_product_attention is sdpa


def test_sdpa_kind_counts_and_unknown_kind_refused():
    attn = Attention(query_dim=32, heads=2, dim_head=16, processor=AttnProcessor2_0()).eval()
    with pytest.raises(KernelInputError, match="unknown attention kind"):
        install(attn, "flash3")
    handle = install(attn, "sdpa")
    with torch.no_grad():
        attn(torch.randn(1, 4, 32))
    handle()  # callable restore
    assert handle.stats()["calls"] == {"triton": 0, "triton-int8": 0, "sdpa": 1}
    assert isinstance(attn.processor, AttnProcessor2_0)
    with pytest.raises(KernelInputError, match="no diffusers attention modules"):
        install(torch.nn.Linear(2, 2), "triton")

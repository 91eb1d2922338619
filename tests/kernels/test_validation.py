"""Bad input is refused with a clear AccelError before any kernel launch (these run without Triton)."""

import pytest
import torch

from accel.errors import AccelError
from accel.kernels import KernelInputError, KernelUnavailableError, available, flash_attention, int8_attention

KERNELS = [flash_attention, int8_attention]


def qkv(b=1, h=2, lq=8, lk=8, d=16, dtype=torch.float32):
    return (torch.randn(b, h, lq, d, dtype=dtype), torch.randn(b, h, lk, d, dtype=dtype),
            torch.randn(b, h, lk, d, dtype=dtype))


@pytest.mark.parametrize("fn", KERNELS)
@pytest.mark.parametrize("bad, words", [
    (lambda: (torch.randn(2, 8, 16), *qkv()[1:]), "rank 3"),
    (lambda: (qkv(h=2)[0], *qkv(h=3)[1:]), "head counts differ"),
    (lambda: qkv(d=264), "head dim 264"),
    (lambda: qkv(dtype=torch.float64), "float64"),
    (lambda: (qkv()[0], qkv(d=32)[1], qkv()[2]), "head dims differ"),
    (lambda: (qkv()[0], qkv(lk=8)[1], qkv(lk=9)[2]), "keys and values"),
    (lambda: (qkv(b=1)[0], *qkv(b=2)[1:]), "batch sizes differ"),
])
def test_bad_shapes_and_dtypes(fn, bad, words):
    q, k, v = bad()
    with pytest.raises(KernelInputError, match=words) as e:
        fn(q, k, v)
    assert isinstance(e.value, AccelError)


@pytest.mark.parametrize("fn", KERNELS)
def test_bad_mask(fn):
    q, k, v = qkv(b=2, lk=8)
    for mask in (torch.ones(2, 7, dtype=torch.bool), torch.ones(2, 8), torch.ones(1, 8, dtype=torch.bool)):
        with pytest.raises(KernelInputError, match="key_padding_mask"):
            fn(q, k, v, key_padding_mask=mask)


def test_no_runtime_on_cpu_without_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    ok, why = available("cpu")
    assert not ok and "TRITON_INTERPRET" in why
    with pytest.raises(KernelUnavailableError, match="SDPA"):
        flash_attention(*qkv())
    assert issubclass(KernelUnavailableError, AccelError)

"""Adapter for stacks of torch.nn.TransformerEncoderLayer / TransformerDecoderLayer (diffusion-policy style).

Their residual branches are methods, not modules: ``_sa_block`` (self-attention), ``_mha_block`` (cross-attention
to the memory) and ``_ff_block`` (feed-forward). Each returns the branch output before the residual add.
The encoder layer has a fused inference fast path that skips those methods; torch takes the slow path whenever a
forward pre-hook is attached, so patched encoder layers get a no-op pre-hook while accel holds them.
"""

from __future__ import annotations

from torch import nn

from accel.adapters.base import Binding, ComponentSpec, Site, bind_blocks

_BRANCHES = (("self_attn", "_sa_block", "self_attn"), ("cross_attn", "_mha_block", "cross_attn"), ("ff", "_ff_block", "ff"))


def torch_transformer_layers(model: nn.Module) -> Binding | None:
    layer_types = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    layers = [(path or "layer", m) for path, m in model.named_modules() if isinstance(m, layer_types)]
    if not layers:
        return None
    blocks = []
    for path, layer in layers:
        specs = [ComponentSpec(name, role, Site(layer, method)) for name, method, role in _BRANCHES if hasattr(layer, method)]
        blocks.append((path, specs))
    guards = [layer for _, layer in layers if isinstance(layer, nn.TransformerEncoderLayer)]
    return bind_blocks("torch-nn", blocks, guards)

"""Adapters for diffusers transformers, and the generic fallback for models built the diffusers way.

Each component is a sub-module whose forward returns the raw branch output, before the adaLN gate and the
residual add; that is exactly what accel caches (ECAD's convention), so gates and shifts are recomputed from the
current timestep on every step.
"""

from __future__ import annotations

from torch import nn

from accel.adapters.base import Binding, ComponentSpec, Site, bind_blocks

# Block lists the generic fallback looks for, and what a child of a block is called when it is a residual branch.
BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks", "blocks", "layers", "double_blocks", "single_blocks")
COMPONENT_ROLES = {
    "attn1": "self_attn",
    "attn2": "cross_attn",
    "attn": "self_attn",
    "self_attn": "self_attn",
    "cross_attn": "cross_attn",
    "ff": "ff",
    "mlp": "ff",
    "ff_context": "context_ff",
    "proj_mlp": "mlp_in",
    "proj_out": "mlp_out",
}


def _text_kv(attn: nn.Module) -> tuple[nn.Module, ...]:
    """The key/value projections of a cross-attention module, whose input (the text states) is fixed per generation."""
    if getattr(attn, "is_cross_attention", False) and hasattr(attn, "to_k") and hasattr(attn, "to_v"):
        return (attn.to_k, attn.to_v)
    return ()


def _spec(block: nn.Module, name: str, role: str) -> ComponentSpec | None:
    module = getattr(block, name, None)
    if not isinstance(module, nn.Module):
        return None
    kv = _text_kv(module) if role == "cross_attn" else ()
    return ComponentSpec(name, role, Site(module, "forward", kv))


def _blocks(model: nn.Module, list_name: str, roles: dict[str, str]) -> list[tuple[str, list[ComponentSpec]]]:
    out = []
    for i, block in enumerate(getattr(model, list_name, None) or []):
        specs = [s for name, role in roles.items() if (s := _spec(block, name, role)) is not None]
        out.append((f"{list_name}.{i}", specs))
    return out


def basic_blocks(model: nn.Module, family: str) -> Binding:
    """PixArt and DiT: BasicTransformerBlock with attn1 (self), attn2 (cross, when present) and ff."""
    return bind_blocks(family, _blocks(model, "transformer_blocks", {"attn1": "self_attn", "attn2": "cross_attn", "ff": "ff"}))


def sd3(model: nn.Module) -> Binding:
    """SD3 JointTransformerBlock: joint attention (both streams), SD3.5's extra self-attention, ff, ff_context."""
    roles = {"attn": "joint_attn", "attn2": "self_attn", "ff": "ff", "ff_context": "context_ff"}
    return bind_blocks("sd3", _blocks(model, "transformer_blocks", roles))


def flux(model: nn.Module) -> Binding:
    """FLUX: double blocks (attn over both streams, ff, ff_context) then single blocks (attn, proj_mlp, proj_out)."""
    double = _blocks(model, "transformer_blocks", {"attn": "joint_attn", "ff": "ff", "ff_context": "context_ff"})
    single = _blocks(model, "single_transformer_blocks", {"attn": "self_attn", "proj_mlp": "mlp_in", "proj_out": "mlp_out"})
    return bind_blocks("flux", double + single)


def generic(model: nn.Module) -> Binding | None:
    """Any model keeping blocks in nn.ModuleLists with diffusers-style names; None when it finds no such list."""
    blocks = []
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and path.rsplit(".", 1)[-1] in BLOCK_LISTS:
            for i, block in enumerate(module):
                specs = []
                for name, role in COMPONENT_ROLES.items():
                    if name == "attn" and getattr(getattr(block, name, None), "added_kv_proj_dim", None):
                        role = "joint_attn"
                    if (spec := _spec(block, name, role)) is not None:
                        specs.append(spec)
                blocks.append((f"{path}.{i}", specs))
    if not any(specs for _, specs in blocks):
        return None
    return bind_blocks("generic", blocks)

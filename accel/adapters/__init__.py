"""Model knowledge: which blocks and components a model has, found by the first adapter that claims it.

Register your own in a few lines::

    def my_adapter(model):                       # return None to pass the model on
        blocks = [(f"stages.{i}", [ComponentSpec("mixer", "self_attn", Site(stage.mixer)),
                                   ComponentSpec("mlp", "ff", Site(stage.mlp))])
                  for i, stage in enumerate(model.stages)]
        return bind_blocks("my-family", blocks)

    accel.register_adapter(my_adapter, model_class=MyModel)   # or without model_class: tried on every model

A component's forward (or the method a Site names) must return the branch's raw output, before any gate and the
residual add, so that returning a cached value stands in for it exactly.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from accel.adapters import diffusers as _diffusers
from accel.adapters import torch_nn as _torch_nn
from accel.adapters.base import ROLES, Binding, BlockLayout, ComponentSpec, Layout, Site, bind_blocks
from accel.errors import LayoutError

Adapter = Callable[[nn.Module], "Binding | None"]

# (class name or None for any model, adapter). Tried newest first, so a user's registration wins.
_REGISTRY: list[tuple[str | None, Adapter]] = [
    (None, _diffusers.generic),
    (None, _torch_nn.torch_transformer_layers),
    ("FluxTransformer2DModel", _diffusers.flux),
    ("SD3Transformer2DModel", _diffusers.sd3),
    ("DiTTransformer2DModel", lambda m: _diffusers.basic_blocks(m, "dit")),
    ("PixArtTransformer2DModel", lambda m: _diffusers.basic_blocks(m, "pixart")),
]


def register_adapter(adapter: Adapter, model_class: type | str | None = None) -> None:
    """Teach accel a model family. ``adapter(model)`` returns a Binding (see ``bind_blocks``) or None."""
    name = model_class if isinstance(model_class, str) or model_class is None else model_class.__name__
    _REGISTRY.append((name, adapter))


def bind(model: nn.Module) -> Binding:
    """The live binding of ``model``'s cache grid; a clear LayoutError when no adapter can map it."""
    if not isinstance(model, nn.Module):
        raise LayoutError(f"expected a torch.nn.Module (a DiT denoiser), got {type(model).__name__}.")
    class_names = {cls.__name__ for cls in type(model).__mro__}
    for class_name, adapter in reversed(_REGISTRY):
        if class_name is None or class_name in class_names:
            binding = adapter(model)
            if binding is not None:
                return binding
    lists = [f"{path} ({len(m)} x {type(m[0]).__name__ if len(m) else '-'})"
             for path, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    found = ", ".join(lists) if lists else "no nn.ModuleList at all"
    raise LayoutError(
        f"accel cannot find the blocks of {type(model).__name__}: found {found}. It looks for nn.ModuleLists named "
        f"{', '.join(_diffusers.BLOCK_LISTS)} whose blocks have children named {', '.join(_diffusers.COMPONENT_ROLES)}, "
        "and for torch.nn.Transformer*Layer stacks. Register an adapter for this model: "
        "accel.register_adapter(fn, model_class=...) (see accel.adapters)."
    )


def layout_of(model: nn.Module) -> Layout:
    """The cache grid of ``model``: its ordered blocks and, per block, its cacheable components."""
    return bind(model).layout


__all__ = ["ROLES", "Binding", "BlockLayout", "ComponentSpec", "Layout", "Site", "bind", "bind_blocks",
           "layout_of", "register_adapter"]

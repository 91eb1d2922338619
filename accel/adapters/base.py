"""The cache grid of a model: its blocks, and per block the residual branches ("components") accel can cache.

A ``Layout`` is names only (it travels in plan files). A ``Binding`` ties those names to the live objects whose
method accel shadows to compute or reuse a component: the component module's ``forward``, or for torch.nn
transformer layers a branch method such as ``_ff_block``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import torch

from accel.errors import LayoutError

# What a component does; searches and BAC's Bubbling Union reason about roles, never about names.
ROLES = ("self_attn", "cross_attn", "joint_attn", "ff", "context_ff", "mlp_in", "mlp_out")


@dataclass(frozen=True)
class BlockLayout:
    name: str  # the block's module path in the model, e.g. "transformer_blocks.3"
    components: tuple[str, ...]  # e.g. ("attn1", "attn2", "ff")
    roles: tuple[str, ...]  # one of ROLES per component


@dataclass(frozen=True)
class Layout:
    """The ordered cache grid. A cell is (block name, component name); cells are ordered block-major."""

    family: str  # adapter that produced it, e.g. "pixart", "flux", "torch-nn", "generic"
    blocks: tuple[BlockLayout, ...]

    @property
    def cells(self) -> list[tuple[str, str]]:
        return [(b.name, c) for b in self.blocks for c in b.components]

    @property
    def roles(self) -> list[str]:
        return [r for b in self.blocks for r in b.roles]

    @property
    def n_cells(self) -> int:
        return sum(len(b.components) for b in self.blocks)

    @property
    def block_cells(self) -> list[list[int]]:
        """The cell indices of each block, in order."""
        out, i = [], 0
        for b in self.blocks:
            out.append(list(range(i, i + len(b.components))))
            i += len(b.components)
        return out

    def cell_index(self, block: str, component: str) -> int:
        index = self._index()
        if (block, component) not in index:
            blocks = {b.name: b.components for b in self.blocks}
            if block not in blocks:
                raise LayoutError(
                    f"unknown block {block!r}; this layout's blocks are {_preview(list(blocks))}. "
                    "Use accel.layout_of(model) to see the grid a plan must be written for."
                )
            raise LayoutError(
                f"block {block!r} has no component {component!r}; it has {list(blocks[block])}."
            )
        return index[(block, component)]

    def _index(self) -> dict[tuple[str, str], int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {cell: i for i, cell in enumerate(self.cells)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    @property
    def fingerprint(self) -> str:
        """A short hash of the grid (names and order): plans carry it so a mismatch is caught at once."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {
            "family": self.family,
            "blocks": [{"name": b.name, "components": dict(zip(b.components, b.roles))} for b in self.blocks],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Layout":
        blocks = tuple(
            BlockLayout(b["name"], tuple(b["components"]), tuple(b["components"].values())) for b in data["blocks"]
        )
        return cls(family=data["family"], blocks=blocks)

    def describe(self) -> str:
        lines = [f"{self.family}: {len(self.blocks)} blocks, {self.n_cells} cells"]
        for b in self.blocks:
            lines.append(f"  {b.name}: " + ", ".join(f"{c} ({r})" for c, r in zip(b.components, b.roles)))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Layout({self.family!r}, {len(self.blocks)} blocks, {self.n_cells} cells)"


@dataclass
class Site:
    """Where a component is computed: calling ``getattr(owner, attr)`` computes its raw branch output."""

    owner: Any
    attr: str = "forward"
    # Sub-modules whose forward projects the (constant) text states to keys and values: reusable across steps.
    text_kv: tuple[torch.nn.Module, ...] = ()


@dataclass
class Binding:
    """A layout bound to a live model: one Site per cell, in layout order."""

    layout: Layout
    sites: list[Site]
    # Modules that need a no-op forward pre-hook while patched (it turns off fused fast paths that would
    # bypass the patched branch methods, e.g. torch.nn.TransformerEncoderLayer's).
    fastpath_guards: list[torch.nn.Module] = field(default_factory=list)


@dataclass(frozen=True)
class ComponentSpec:
    """What an adapter reports per component."""

    name: str
    role: str
    site: Site


def bind_blocks(family: str, blocks: list[tuple[str, list[ComponentSpec]]], guards=()) -> Binding:
    """Build a Binding from adapter output, refusing an empty grid with a message that says what to do."""
    blocks = [(name, comps) for name, comps in blocks if comps]
    if not blocks:
        raise LayoutError(f"the {family} adapter found no cacheable components.")
    layout = Layout(
        family=family,
        blocks=tuple(BlockLayout(name, tuple(c.name for c in comps), tuple(c.role for c in comps)) for name, comps in blocks),
    )
    for _, comps in blocks:
        for c in comps:
            if c.role not in ROLES:
                raise LayoutError(f"component {c.name!r} has role {c.role!r}; roles are {ROLES}.")
    sites = [c.site for _, comps in blocks for c in comps]
    return Binding(layout=layout, sites=sites, fastpath_guards=list(guards))


def _preview(names: list[str], n: int = 6) -> str:
    if len(names) <= n:
        return str(names)
    return str(names[:n])[:-1] + f", ... ({len(names)} in all)]"

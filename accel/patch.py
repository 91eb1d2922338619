"""Instance-level method overrides that can be undone exactly.

accel changes a model only by shadowing bound methods (a module's ``forward``, a layer's ``_ff_block``) with an
instance attribute, and by adding forward pre-hooks. Undoing a patch deletes the instance attribute (or puts back
the one that was there), so the object's ``__dict__`` is exactly what it was before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

_MISSING = object()


@dataclass
class Patch:
    """One shadowed method: ``owner.<attr>`` now calls ``replacement``; ``original`` is the bound method it hid."""

    owner: Any
    attr: str
    original: Callable
    previous: Any  # what owner.__dict__ held under attr before (usually nothing)

    def undo(self) -> None:
        if self.previous is _MISSING:
            self.owner.__dict__.pop(self.attr, None)
        else:
            self.owner.__dict__[self.attr] = self.previous


def shadow(owner: Any, attr: str, make_replacement: Callable[[Callable], Callable]) -> Patch:
    """Shadow ``owner.<attr>`` with ``make_replacement(original_bound_method)`` and return the undo record."""
    original = getattr(owner, attr)
    previous = owner.__dict__.get(attr, _MISSING)
    # object.__setattr__ skips nn.Module.__setattr__, which would refuse nothing here but is slower and
    # registers nothing we need.
    object.__setattr__(owner, attr, make_replacement(original))
    return Patch(owner, attr, original, previous)

"""Nested mappings as configs use them (a shared leaf, like ``errors``)."""

from __future__ import annotations

import copy
from typing import Any


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge into a new mapping: mappings merge key by key, anything else in
    ``update`` replaces; nothing of ``base`` or ``update`` is shared with the result."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

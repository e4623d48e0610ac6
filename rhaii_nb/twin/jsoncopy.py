"""A deep copy for JSON-shaped data (dicts, lists, scalars), several times cheaper than ``copy.deepcopy``.

The store hands out copies of its objects on every read and write; ``copy.deepcopy`` spends most of
its time on the memo and dispatch it needs for arbitrary objects, which JSON values never need.
"""

from __future__ import annotations

import copy
from typing import Any

_SCALARS = (str, int, float, bool, type(None))


def clone(value: Any) -> Any:
    """A deep copy of ``value``; anything that is not a dict, list or scalar goes to ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _SCALARS else clone(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _SCALARS else clone(item) for item in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)

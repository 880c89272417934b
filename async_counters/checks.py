"""The type checks every option shares: an int is an int, a number is an int or a float, and a
``bool`` is neither (``True`` would otherwise pass as 1, silently).

Range checks stay with each option, where the message can say what the range means.

>>> whole(3, "shards")
3
>>> whole(True, "shards")
Traceback (most recent call last):
TypeError: shards must be an int, not bool
"""

from __future__ import annotations

__all__ = ["number", "whole"]


def whole(value: object, name: str, *, what: str = "an int") -> int:
    """``value`` if it is an int (not a bool); else `TypeError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")
    return value


def number(value: object, name: str, *, what: str = "a number") -> float:
    """``value`` if it is an int or a float (not a bool); else `TypeError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")
    return value

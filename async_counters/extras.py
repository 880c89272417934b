"""Which extra installs which module, so that a missing one is reported as what to install.

    async-counters bench: needs hdrhistogram, not installed: pip install 'async-counters[bench]'

The command line checks a subcommand's modules with `missing` (no import: moto and matplotlib are
slow to import) and words the message with `install_hint`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Final, NamedTuple

__all__ = ["EXTRAS", "Extra", "install_hint", "missing", "needed_for"]


class Extra(NamedTuple):
    """The extra that installs a module, and the distribution that holds it."""

    extra: str
    distribution: str


#: Top-level module -> the extra (and PyPI distribution) that brings it.
EXTRAS: Final[dict[str, Extra]] = {
    "moto": Extra("local", "moto"),
    "hdrh": Extra("bench", "hdrhistogram"),
    "rich": Extra("bench", "rich"),
    "matplotlib": Extra("bench", "matplotlib"),
    "uvloop": Extra("bench", "uvloop"),
    "starlette": Extra("web", "starlette"),
    "uvicorn": Extra("web", "uvicorn"),
    "limits": Extra("limits", "limits"),
}


def missing(modules: Iterable[str]) -> list[str]:
    """The modules of ``modules`` that cannot be imported here."""
    absent = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(module)
    return absent


def needed_for(error: ImportError, default: str | None = None) -> Extra | None:
    """The extra whose absence ``error`` shows (``default``'s for a module of its own deps)."""
    name = (error.name or "").partition(".")[0]
    if name in EXTRAS:
        return EXTRAS[name]
    return None if default is None else Extra(default, name or "a dependency")


def install_hint(modules: Iterable[str]) -> str:
    """``needs hdrhistogram and rich, not installed: pip install 'async-counters[bench]'``."""
    found = [EXTRAS[m] for m in modules if m in EXTRAS]
    extras = sorted({extra.extra for extra in found})
    names = list(dict.fromkeys(extra.distribution for extra in found))
    listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
    command = " ".join(f"'async-counters[{extra}]'" for extra in extras)
    return f"needs {listed}, not installed: pip install {command}"

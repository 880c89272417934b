"""Makes the modules named in ``$ASYNC_COUNTERS_TEST_UNINSTALLED`` unimportable, as if their
distributions were not installed: a test puts this directory on ``PYTHONPATH`` to run the real
CLI as a core-only install sees it (Python imports ``sitecustomize`` at startup)."""

from __future__ import annotations

import os
import sys
from importlib.abc import MetaPathFinder

_BLOCKED = frozenset(filter(None, os.environ.get("ASYNC_COUNTERS_TEST_UNINSTALLED", "").split(",")))


class _NotInstalled(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname.partition(".")[0] in _BLOCKED:
            # What the import system raises for a module that is not installed.
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


if _BLOCKED:
    sys.meta_path.insert(0, _NotInstalled())

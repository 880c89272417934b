"""The default aiobotocore session, built once per event loop and configuration, not per pool.

A botocore session costs about 7 ms of CPU to build (it registers some 2,500 event handlers), more
than everything else a pool does to open and close. A process that opens a pool per request, per
job or per writer would spend most of its time there. `default_session` gives every pool opened
without a ``session`` the same session while nothing it reads has changed: the ``AWS_*``
environment variables, ``HOME``, and the size and modification time of the shared config and
credentials files. A change to any of them gives a fresh session, so what a pool sees is what a
new session would see; credentials a session resolved (and refreshes) are shared, as botocore's
and boto3's default sessions share them. Sessions are kept per event loop, since refreshable
credentials hold locks of the loop they were first used on.

Memory: at most `KEPT` sessions.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections import OrderedDict
from typing import Any

__all__ = ["KEPT", "default_session"]

#: Sessions kept at most (one per loop and configuration; the oldest goes first).
KEPT = 4

_sessions: OrderedDict[tuple[int, tuple[Any, ...]], tuple[weakref.ref[Any], Any]] = OrderedDict()


def _file_state(variable: str, default: str) -> tuple[str, int, int] | None:
    path = os.path.expanduser(os.environ.get(variable) or default)
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return path, stat.st_mtime_ns, stat.st_size


def _configuration() -> tuple[Any, ...]:
    """What a new botocore session would read: the environment it uses, its files' states."""
    environ = os.environ
    variables = tuple(
        sorted((name, value) for name, value in environ.items() if name.startswith("AWS_"))
    )
    return (
        variables,
        environ.get("HOME"),
        environ.get("USERPROFILE"),
        _file_state("AWS_CONFIG_FILE", "~/.aws/config"),
        _file_state("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
    )


def default_session() -> Any:
    """aiobotocore's ``get_session()``, shared while the loop and the configuration are the same."""
    from aiobotocore.session import get_session

    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        return get_session()
    key = (id(loop), _configuration())
    kept = _sessions.get(key)
    if kept is not None and kept[0]() is loop:
        _sessions.move_to_end(key)
        return kept[1]
    session = get_session()
    _sessions[key] = (weakref.ref(loop), session)
    _sessions.move_to_end(key)
    while len(_sessions) > KEPT:
        _sessions.popitem(last=False)
    return session

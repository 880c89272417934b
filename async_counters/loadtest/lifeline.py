"""A worker's tie to its parent: when the parent is gone, however it went, the worker goes too.

Two ties, either enough on its own:

- on Linux, ``PR_SET_PDEATHSIG``: the kernel sends the worker SIGKILL the moment its parent
  dies (SIGKILL, a CI timeout, a closed terminal), nothing to watch;
- everywhere, the worker's standard input is a pipe whose other end only the parent holds: the
  system closes it when the parent ends, and the worker's reader sees the end of input at once.

And a clock of its own: `Watchdog` ends the process at its hard deadline even when the parent is
alive but stuck, or the worker's own event loop is.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Final

__all__ = ["EXIT_ORPHANED", "EXIT_OVERDUE", "PARENT_ENV", "Watchdog", "die_with_parent"]

#: The parent's process id, set by the parent in each worker's environment.
PARENT_ENV: Final = "ASYNC_COUNTERS_BENCH_PARENT"
#: Exit status of a worker whose parent went away.
EXIT_ORPHANED: Final = 70
#: Exit status of a worker that was still running at its hard deadline.
EXIT_OVERDUE: Final = 71
#: How long the watchdog lets the last words take before it ends the process.
LAST_WORDS_TIMEOUT: Final = 0.5
_PR_SET_PDEATHSIG: Final = 1


def die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux), then make sure the
    parent named in `PARENT_ENV` has not died already (before the request was made)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    expected = os.environ.get(PARENT_ENV)
    if expected and expected.isdigit() and os.getppid() != int(expected):
        os._exit(EXIT_ORPHANED)


class Watchdog:
    """Ends the process with `EXIT_OVERDUE` after `arm`'s seconds unless disarmed.

    A thread, not a task: it fires even when the event loop is blocked. ``last_words`` (tell
    the parent why) gets `LAST_WORDS_TIMEOUT` in a thread of its own: a parent that reads
    nothing, so that the write blocks, cannot keep the process alive.
    """

    def __init__(self, last_words: Callable[[], None] | None = None) -> None:
        self._disarmed = threading.Event()
        self._last_words = last_words
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> None:
        def watch() -> None:
            if self._disarmed.wait(max(0.0, seconds)):
                return
            if self._last_words is not None:
                speaker = threading.Thread(target=self._speak, name="bench-last-words", daemon=True)
                speaker.start()
                speaker.join(LAST_WORDS_TIMEOUT)
            os._exit(EXIT_OVERDUE)

        self._thread = threading.Thread(target=watch, name="bench-watchdog", daemon=True)
        self._thread.start()

    def _speak(self) -> None:
        assert self._last_words is not None
        with contextlib.suppress(Exception):
            self._last_words()

    def disarm(self) -> None:
        self._disarmed.set()

"""What the local servers' parents share: reading the first line a child process prints."""

from __future__ import annotations

import threading
from typing import IO

__all__ = ["read_line"]


def read_line(stream: IO[str], timeout: float) -> str:
    """One line from a child's stdout, stripped; ``""`` if none came within ``timeout`` seconds."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else ""

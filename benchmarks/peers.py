"""The peers the project is measured against, installed apart from it.

aioboto3 pins an older aiobotocore than the project's, so peers live in their own virtual
environment (``.venv-peers`` at the repository root), created on first use with pip, by package
name, as this machine's pip is configured.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / ".venv-peers"
PEER_PACKAGES = ("aioboto3>=13", "aiodynamo>=24", "uvloop>=0.19")


def peer_python(packages: tuple[str, ...] = PEER_PACKAGES, where: Path = PEERS_VENV) -> Path:
    """The Python of the peers' environment, created (and ``packages`` installed) if missing."""
    python = where / "bin" / "python"
    marker = where / ".installed"
    wanted = " ".join(sorted(packages))
    if not python.exists():
        venv.create(where, with_pip=True)
    if not marker.exists() or marker.read_text() != wanted:
        print(f"installing peers into {where}: {wanted}", file=sys.stderr)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *packages],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        marker.write_text(wanted)
    return python

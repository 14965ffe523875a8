"""Private files: the data directory 0700, databases and caches 0600.

Call these wherever DATA_DIR, a database or a cache is created; they also tighten
files and directories that already exist with looser modes (an older install).
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str) -> Path:
    """Create ``path`` (and missing parents) owner-only, or tighten it if it exists."""
    p = Path(path)
    missing = [d for d in (p, *p.parents) if not d.exists()]
    for d in reversed(missing):  # parents this call creates are private too
        d.mkdir(mode=DIR_MODE, exist_ok=True)
    os.chmod(p, DIR_MODE)
    return p


def private_file(path: Path | str) -> Path:
    """Create ``path`` empty if missing, owner-only (0600); tighten it if it exists.
    SQLite keeps the mode of its main file for the -wal and -shm files it makes, so
    call this before the first connect; existing side files are tightened too."""
    p = Path(path)
    private_dir(p.parent)
    fd = os.open(p, os.O_CREAT | os.O_RDWR, FILE_MODE)
    os.close(fd)
    for f in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm"), p.with_name(p.name + "-journal")):
        if f.exists():
            os.chmod(f, FILE_MODE)
    return p

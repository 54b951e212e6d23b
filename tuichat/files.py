"""Files only their owner may read: the history database (every private message, the password
hashes), TLS keys, known hosts, the server log. Made so whatever the umask."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create the directory `path` (and its parents) with mode 0700 for the last one; a
    directory that exists already keeps its mode (the operator chose it)."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is cut by the umask, and then only on the last one


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600, or set an existing one's mode to 0600."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
    finally:
        os.close(descriptor)


def tighten(path: Path) -> None:
    """Mode 0600 for `path` if it exists (SQLite's -wal and -shm files)."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o600)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` (in a 0700 directory if it has to make one), mode 0600."""
    private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)

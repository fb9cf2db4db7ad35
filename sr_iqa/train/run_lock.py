"""One writer per run folder: a training holds an advisory lock on ``<experiments_root>/.<name>.lock`` from its
start to its end, so that a second training under the same name (a rerun, a second `ablate`, a mistyped
command on another node of the same file system) stops at once with the holder's name instead of both writing
the same checkpoints. The operating system drops the lock when its process ends, killed or not: no stale lock."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from sr_iqa.errors import RunFolderError

# Locks this process holds, by path: a second Trainer of one process (tests, a resume in the same process) takes
# the lock it already has instead of refusing itself.
_HELD: dict[Path, int] = {}


def lock_path(experiments_root: Path, name: str) -> Path:
    return experiments_root / f".{name}.lock"


def acquire(experiments_root: Path, name: str) -> Path:
    """Take the run's lock, creating ``experiments_root``; a run folder that another process writes, or an
    experiments root that cannot be written, is a ``RunFolderError`` naming it."""
    path = lock_path(experiments_root, name).absolute()
    if path in _HELD:
        return path
    try:
        experiments_root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunFolderError(f"cannot write to path.experiments_root {experiments_root} ({error.strerror}); set it "
                             "to a folder you can write") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"
        os.close(descriptor)
        raise RunFolderError(f"{experiments_root / name} is being written by another training ({holder}); wait "
                             "for it to end, or choose another name") from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}, since "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    _HELD[path] = descriptor
    return path


def release(path: Path) -> None:
    descriptor = _HELD.pop(path, None)
    if descriptor is not None:
        os.close(descriptor)  # closing drops the lock; the file stays (removing it would race a new holder)

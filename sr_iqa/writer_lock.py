"""One writer at a time: an advisory lock (a POSIX record lock, ``fcntl.lockf``) on a small file, holding the
writer's pid, host and start.

A training holds ``<experiments_root>/.<name>.lock`` from its first write to its end, ``sr-iqa score`` holds
``<cache>.lock`` while it writes the cache, and ``sr-iqa eval`` holds ``.<out>.lock`` beside its ``--out``: a second
training under the same name (a rerun, a second `ablate`, a command on another node of the same file system), a
second scoring job on the same cache or a second evaluation into the same folder stops at once with the holder's
name, instead of both writing the same files. The operating system drops the lock when its process
ends, killed or not: there is no stale lock to remove.

Why a record lock and not ``flock``: a ``flock`` belongs to the open file, which every forked child (a DataLoader
worker, a scoring worker) shares, so a SIGKILLed job's workers kept its lock for as long as they lived. A record
lock belongs to the process that took it; children do not inherit it. Its one trap: closing *any* descriptor of
the lock file in the holding process drops it, so sr_iqa opens the file only here, once per holder."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from sr_iqa.errors import RunFolderError

# Locks this process holds, by path: a second Trainer in one process (tests, an in-process resume) takes the
# lock it already has instead of refusing itself.
_HELD: dict[Path, int] = {}


def acquire(lock_file: Path, resource: str, what: str, setting: str = "the folder") -> Path:
    """Take the lock on ``lock_file`` (creating its folder) for writing ``resource``; held by another process,
    or in a folder that cannot be written, it is a ``RunFolderError`` naming the holder (``what`` says what it
    is doing: "training", "scoring job"; ``setting`` names the option that chose the folder)."""
    path = lock_file.absolute()
    if path in _HELD:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if path.is_symlink():
            raise RunFolderError(f"{path} is a symbolic link; a lock is never taken through one (it would write "
                                 "where the link points): remove it") from None
        raise RunFolderError(f"cannot write to {path.parent} ({error.strerror}); set {setting} to a folder you can "
                             "write") from None
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EAGAIN):
            os.close(descriptor)
            raise RunFolderError(f"cannot lock {path} ({error.strerror}); set {setting} to a folder on a file "
                                 "system that supports locks") from None
        holder = os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"
        os.close(descriptor)
        raise RunFolderError(f"{resource} is being written by another {what} ({holder}); wait for it to end, or "
                             "choose another name") from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}, since "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    _HELD[path] = descriptor
    return path


def holder(lock_file: Path) -> str | None:
    """Who holds ``lock_file`` now (its pid, host and start), or None: a test lock, taken and dropped at once."""
    path = lock_file.absolute()
    if path in _HELD:
        return f"pid {os.getpid()}, this process"
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return None  # no lock file: never held
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"
    finally:
        os.close(descriptor)  # drops the test lock when it was taken
    return None


def release(path: Path | None) -> None:
    descriptor = _HELD.pop(path, None) if path is not None else None
    if descriptor is not None:
        os.close(descriptor)  # closing drops the lock; the file stays (removing it would race a new holder)


def file_lock(path: Path) -> Path:
    """The lock of a file's writers (a score cache): beside it, named from its resolved path, so that a second
    spelling of it (a symlinked name) waits for the same lock instead of writing beside the first writer."""
    resolved = path.resolve()
    return resolved.parent / f"{resolved.name}.lock"


def run_lock_file(run_folder: Path) -> Path:
    """A training's lock: beside its run folder (so that taking it creates nothing inside), named from the folder's
    resolved path, so that two spellings of one folder share one lock."""
    folder = run_folder.resolve()
    return folder.parent / f".{folder.name}.lock"

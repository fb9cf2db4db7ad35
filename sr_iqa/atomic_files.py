"""Files that appear whole or not at all: written under a name of the writing process's own, then renamed.

A killed run, eval or install leaves the previous file or none, never half of one; processes that write the
same file together (ranks, benchmark workers) each rename a complete file into place. The ``.partial`` names
start with a dot, and ``remove_partial_files`` clears those of killed writers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from sr_iqa.errors import OutputPathError

PARTIAL_SUFFIX = ".partial"


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def _check_parent_is_a_folder(path: Path) -> None:
    """The nearest existing folder above ``path`` is a folder, not a file (mkdir would end in a traceback)."""
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputPathError(f"{path}: {parent} is a file, not a folder; give an output path under a folder")


def check_output_file(path: Path) -> None:
    """Refuse, in one line, an output path that is not a plain file's place: a folder, a device node, a FIFO or
    socket (renaming over ``/dev/null`` would replace the device), or one under a file."""
    if path.is_symlink() or not path.exists():
        _check_parent_is_a_folder(path)
        return
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; give a file name (e.g. {path / 'out'}{path.suffix})")
    if not path.is_file():
        raise OutputPathError(f"{path} is not a plain file (a device, FIFO or socket); refusing to replace it; "
                              "give a file name")


def check_output_folder(path: Path, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse, in one line, an output folder that is a file (or lies under one), or that is one of the ``inputs``
    folders or holds one of the ``inputs`` files (written images would replace the images read)."""
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path} is a file, not a folder; give a folder for the output")
    _check_parent_is_a_folder(path)
    resolved = path.resolve()
    for source in inputs:
        source = source.resolve()
        if resolved == source or (source.is_file() and resolved == source.parent):
            raise OutputPathError(f"{path} would write over the inputs ({source}); give another output folder")


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yields the partial path to write; on leaving the block it replaces ``path`` (or is removed on an error).
    A symlink at ``path`` is replaced by the file, never written through."""
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    partial.unlink(missing_ok=True)  # a link planted under the partial name would be written through
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    with replaced_atomically(path) as partial:
        partial.write_bytes(data)


def write_text_atomically(path: Path, text: str) -> None:
    write_bytes_atomically(path, text.encode())


def write_with(path: Path, write: Callable[[Path], object]) -> None:
    """``write(partial)`` (a library's own save function), then the rename."""
    with replaced_atomically(path) as partial:
        write(partial)


def open_appending(path: Path):
    """``path`` opened for appending text, created if missing, never through a symbolic link planted at its name (a
    shared folder would let one user append to another's file): a link is one ``OutputPathError``."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if path.is_symlink():
            raise OutputPathError(f"{path} is a symbolic link; sr_iqa never writes through one: remove it") from None
        raise OutputPathError(f"cannot open {path} for writing ({error.strerror})") from None
    return os.fdopen(descriptor, "a", encoding="utf-8")


def remove_partial_files(folder: Path) -> list[Path]:
    """The ``.partial`` files of killed writers in ``folder`` (not below it), removed; returns them."""
    leftovers = sorted(folder.glob(f".*{PARTIAL_SUFFIX}")) if folder.is_dir() else []
    for leftover in leftovers:
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
    return leftovers

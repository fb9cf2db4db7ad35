"""Files that appear whole or not at all: written under a name of the writing process's own, then renamed.

A killed run, eval or install leaves the previous file or none, never half of one; processes that write the
same file together (ranks, benchmark workers) each rename a complete file into place. The ``.partial`` names
start with a dot, and ``remove_partial_files`` clears those of killed writers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yields the partial path to write; on leaving the block it replaces ``path`` (or is removed on an error)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
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


def remove_partial_files(folder: Path) -> list[Path]:
    """The ``.partial`` files of killed writers in ``folder`` (not below it), removed; returns them."""
    leftovers = sorted(folder.glob(f".*{PARTIAL_SUFFIX}")) if folder.is_dir() else []
    for leftover in leftovers:
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
    return leftovers

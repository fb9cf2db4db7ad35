"""Writes never go through a symbolic link planted at an output's name, never replace what is not a plain file,
and locks are keyed by the file, not by its spelling (issue 37, families 17 and 18). The commands' one-line
refusals are cases of tests/broken_inputs.py ("output paths")."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from sr_iqa import writer_lock
from sr_iqa.atomic_files import check_output_file, check_output_folder, open_appending, write_text_atomically
from sr_iqa.data.image_io import read_rgb_tensor, write_rgb
from sr_iqa.errors import OutputPathError, RunFolderError
from sr_iqa.evaluate.tables import folder_name
from sr_iqa.log_buffer import RunLogFile


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """Another user's file, which a link planted in a shared folder points at."""
    path = tmp_path / "other_user" / "precious.txt"
    path.parent.mkdir()
    path.write_text("mine\n")
    return path


def test_an_image_written_where_a_link_was_planted_replaces_the_link_not_its_target(tmp_path: Path, victim: Path):
    out = tmp_path / "sr" / "img1.png"
    out.parent.mkdir()
    out.symlink_to(victim)
    image = np.full((8, 8, 3), 200, dtype=np.uint8)
    write_rgb(out, image)
    assert victim.read_text() == "mine\n"
    assert not out.is_symlink() and float(read_rgb_tensor(out).mean()) == pytest.approx(200 / 255)
    assert not list(out.parent.glob(".*partial"))


def test_the_training_log_and_the_locks_refuse_a_planted_link(tmp_path: Path, victim: Path):
    log_path = tmp_path / "train.log"
    log_path.symlink_to(victim)
    with pytest.raises(OutputPathError, match="train.log is a symbolic link"):
        open_appending(log_path)
    with pytest.raises(OutputPathError, match="symbolic link"):
        RunLogFile(log_path)
    lock = tmp_path / ".run.lock"
    lock.symlink_to(victim)
    with pytest.raises(RunFolderError, match=r"\.run\.lock is a symbolic link"):
        writer_lock.acquire(lock, "run", "training")
    assert victim.read_text() == "mine\n"
    plain = RunLogFile(tmp_path / "plain.log")  # without a link: an ordinary appending log
    plain.emit(logging.LogRecord("sr_iqa", logging.INFO, __file__, 1, "hello", None, None))
    plain.close()
    assert (tmp_path / "plain.log").read_text() == "hello\n"


def test_a_symlinked_spelling_of_a_score_cache_shares_its_lock(tmp_path: Path):
    cache = tmp_path / "scores.db"
    cache.write_bytes(b"")
    (tmp_path / "alias.db").symlink_to(cache)
    assert writer_lock.file_lock(tmp_path / "alias.db") == writer_lock.file_lock(cache) == tmp_path / "scores.db.lock"


def test_outputs_that_are_not_a_plain_files_place_are_refused(tmp_path: Path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="not a plain file"):
        write_text_atomically(fifo, "rows\n")
    assert fifo.exists() and not fifo.is_file()  # still the FIFO: nothing renamed over it
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_file(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output_file(tmp_path / "file" / "out.csv")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(OutputPathError, match="would write over the inputs"):
        check_output_folder(tmp_path, (tmp_path / "file",))  # the folder that holds an input file
    check_output_folder(tmp_path / "new" / "folder", (tmp_path / "file",))  # somewhere else: fine


def test_a_method_named_dots_saves_inside_the_output_folder():
    assert folder_name("..") == "__" and folder_name(".") == "_"
    assert folder_name("RRDB AMO+FT") == "RRDB_AMO+FT" and folder_name("v1.2") == "v1.2"

"""The score cache: one SQLite file of IQA scores keyed by image content, metric and region.

A score's key is (content hash, metric key, x, y, w, h); the full image is the region
(0, 0, width, height). Keys are unique, and rows are written with INSERT OR IGNORE in small
committed batches, so a killed scoring job loses at most one batch and a rerun never
duplicates. Paths map to content hashes in a second table, refreshed when a file's size or
mtime changes: editing an image invalidates its scores, renaming it does not.

One process writes a cache file at a time (rollback journal, no WAL: WAL needs shared memory, which
processes on different nodes of a network file system do not share). Under ``accelerate launch`` the
other ranks write their rows into spool files of their own beside it (``<cache>.spool-rank<k>``),
which the main process merges; readers (training, ``agree``, ``export``) open the file read-only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sr_iqa.atomic_files import write_with
from sr_iqa.data.image_io import read_size
from sr_iqa.errors import DataError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    content_hash TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    content_hash TEXT NOT NULL, metric TEXT NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
    w INTEGER NOT NULL, h INTEGER NOT NULL, score REAL, lower_better INTEGER NOT NULL,
    PRIMARY KEY (content_hash, metric, x, y, w, h));
"""
# A NULL score is a region the metric could not score (NIQE on a flat crop): stored, so that it is not planned
# again, and read back as NaN. Caches written before that had `score REAL NOT NULL`, where SQLite turned a NaN
# into NULL and INSERT OR IGNORE dropped the row without a word; they are migrated once.
_NULLABLE_SCORES = """
ALTER TABLE scores RENAME TO scores_not_null;
CREATE TABLE scores (
    content_hash TEXT NOT NULL, metric TEXT NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
    w INTEGER NOT NULL, h INTEGER NOT NULL, score REAL, lower_better INTEGER NOT NULL,
    PRIMARY KEY (content_hash, metric, x, y, w, h));
INSERT INTO scores SELECT * FROM scores_not_null;
DROP TABLE scores_not_null;
"""


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    content_hash: str
    width: int
    height: int

    @property
    def full(self) -> Region:
        return Region(0, 0, self.width, self.height)


ScoreRow = tuple[str, str, int, int, int, int, float, bool]  # hash, metric key, x, y, w, h, score, lower_better


def metric_key(name: str, options: dict[str, Any] | None = None) -> str:
    """The metric's name, plus the options that change its values (e.g. ``pretrained_model_path``)."""
    return name if not options else f"{name} {json.dumps(options, sort_keys=True)}"


def grid_regions(width: int, height: int, size: int, stride: int) -> list[Region]:
    """Every ``size`` x ``size`` box on a ``stride`` grid that fits in the image."""
    return [Region(x, y, size, size) for y in range(0, height - size + 1, stride)
            for x in range(0, width - size + 1, stride)]


def _file_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_NULL_MARK = 1e308  # a NULL (unscorable) score in bulk reads: no IQA metric comes near it
# One row per image and grid: its scores row by row, float64, NaN where not scorable; only complete grids.
_GRIDS = """
CREATE TABLE IF NOT EXISTS grids (
    content_hash TEXT NOT NULL, metric TEXT NOT NULL, size INTEGER NOT NULL, stride INTEGER NOT NULL,
    columns INTEGER NOT NULL, rows INTEGER NOT NULL, scores BLOB NOT NULL,
    PRIMARY KEY (content_hash, metric, size, stride));
"""


# What a cache file may hold: these tables with these columns (name, declared type, NOT NULL, primary-key
# position), their primary keys' indexes, and nothing else. A trigger or a view would run or answer in place of
# sr_iqa's own statements: a planted cache once rewrote every new score and steered SMA training with exit 0.
_COLUMNS = {
    "images": [("path", "TEXT", 0, 1), ("size", "INTEGER", 1, 0), ("mtime_ns", "INTEGER", 1, 0),
               ("content_hash", "TEXT", 1, 0), ("width", "INTEGER", 1, 0), ("height", "INTEGER", 1, 0)],
    "scores": [("content_hash", "TEXT", 1, 1), ("metric", "TEXT", 1, 2), ("x", "INTEGER", 1, 3),
               ("y", "INTEGER", 1, 4), ("w", "INTEGER", 1, 5), ("h", "INTEGER", 1, 6), ("score", "REAL", 0, 0),
               ("lower_better", "INTEGER", 1, 0)],
    "grids": [("content_hash", "TEXT", 1, 1), ("metric", "TEXT", 1, 2), ("size", "INTEGER", 1, 3),
              ("stride", "INTEGER", 1, 4), ("columns", "INTEGER", 1, 0), ("rows", "INTEGER", 1, 0),
              ("scores", "BLOB", 1, 0)],
}
# Rows whose values sr_iqa never writes (SQLite keeps any type in any column): each a statement that finds one.
_BAD_ROWS = {
    "images": "SELECT path FROM {db}.images WHERE typeof(path) != 'text' OR typeof(content_hash) != 'text' "
              "OR typeof(size) || typeof(mtime_ns) || typeof(width) || typeof(height) "
              "!= 'integerintegerintegerinteger' "
              "OR width < 1 OR height < 1 LIMIT 1",
    "scores": "SELECT metric FROM {db}.scores WHERE typeof(content_hash) != 'text' OR typeof(metric) != 'text' "
              "OR typeof(x) || typeof(y) || typeof(w) || typeof(h) != 'integerintegerintegerinteger' "
              "OR typeof(score) NOT IN ('real', 'null') OR abs(score) > 1e300 OR typeof(lower_better) != 'integer' "
              "OR x < 0 OR y < 0 OR w < 1 OR h < 1 LIMIT 1",
    "grids": "SELECT metric FROM {db}.grids WHERE typeof(scores) != 'blob' OR typeof(columns) != 'integer' "
             "OR typeof(rows) != 'integer' OR columns < 1 OR rows < 1 OR length(scores) != 8 * columns * rows "
             "LIMIT 1",
}


def not_ours(path: Path, what: str) -> DataError:
    """The one line for a cache file that holds what sr_iqa never writes."""
    return DataError(f"{path}: not a score cache written by sr_iqa ({what}); it holds only the tables "
                     f"{', '.join(_COLUMNS)}. Score again into a new file with `sr-iqa score`")


WRONG_KIND = "has a row sr_iqa never writes (values of the wrong kind)"


def verify_schema(db: sqlite3.Connection, path: Path, schema: str = "main", creating: bool = False,
                  scan_scores: bool = True) -> None:
    """Refuse, in one line naming ``path``, a file that holds anything but sr_iqa's tables (triggers, views,
    other tables or indexes), other columns, or values of the wrong kind. Old caches (``score`` NOT NULL, no
    ``grids`` yet) pass; they are migrated when opened for writing. ``creating``: missing tables are made next.
    ``scan_scores``: also scan every score row (1.5 s at HGGT's 2.6M scores); readers skip it and check the
    rows they read instead (``ScoreCache.read_only``)."""
    for kind, name, table in db.execute(f"SELECT type, name, tbl_name FROM {schema}.sqlite_master"):
        ours = name in _COLUMNS if kind == "table" else (
            kind == "index" and name == f"sqlite_autoindex_{table}_1" and table in _COLUMNS)
        if not ours:
            raise not_ours(path, f"it holds {kind} '{name}'")
    for table, expected in _COLUMNS.items():
        columns = [tuple(row[1:4]) + (row[5],) for row in db.execute(f"PRAGMA {schema}.table_info({table})")]
        if not columns and (creating or table == "grids"):
            continue
        if table == "scores":  # `score REAL NOT NULL` before NaN scores were kept
            columns = [column[:2] + (0,) + column[3:] if column[0] == "score" else column for column in columns]
        if columns != expected:
            raise not_ours(path, f"table '{table}' has columns {[column[0] for column in columns] or 'none'}")
        if table == "scores" and not scan_scores:
            continue
        bad = db.execute(_BAD_ROWS[table].format(db=schema)).fetchone()
        if bad is not None:
            raise not_ours(path, f"table '{table}' {WRONG_KIND}, at {bad[0]!r}")


def _checked_score(path: Path, score: object) -> float:
    """A score row's value as read: a finite float, or NaN for NULL (a region the metric could not score)."""
    if score is None:
        return math.nan
    if not isinstance(score, float) or not math.isfinite(score):
        raise not_ours(path, f"table 'scores' {WRONG_KIND}, a score of {score!r}")
    return score


def spool_path(cache: Path, rank: int) -> Path:
    """Where process ``rank`` writes its rows while the main process alone writes ``cache``."""
    return cache.with_name(f"{cache.name}.spool-rank{rank}")


class ScoreCache:
    """A cache file, opened for writing (creating it, one process at a time) or ``read_only`` (many readers, also
    on a read-only mount: no schema change, nothing written; image records of changed files are computed and
    kept in ``unsaved`` for a writer to store)."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.unsaved: dict[str, tuple] = {}  # read-only: path -> images row computed here
        if read_only:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no score cache there")
            self.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=120)
            try:
                self.db.execute("SELECT 1 FROM scores LIMIT 1").fetchall()
                verify_schema(self.db, path, scan_scores=False)  # the score rows are checked as they are read
            except sqlite3.Error as error:
                raise DataError(f"{path}: not a score cache ({error}); give a cache written by `sr-iqa score`") \
                    from None
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=120)
            if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "delete":  # caches before this were WAL
                self.db.execute("PRAGMA journal_mode=DELETE")
            self.db.execute("PRAGMA synchronous=NORMAL")  # safe against a killed process; commits stay cheap
            verify_schema(self.db, path, creating=True)  # before any statement of ours could fire what it holds
            # IMMEDIATE: the write lock is taken (waiting for it) before the first read, so that processes creating
            # one new cache together queue up instead of one failing with "database is locked".
            self.db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
            if any(column[1] == "score" and column[3] for column in self.db.execute("PRAGMA table_info(scores)")):
                self.db.executescript(f"BEGIN IMMEDIATE; {_NULLABLE_SCORES} COMMIT;")
            self.db.commit()
        except (sqlite3.Error, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise DataError(f"{path}: cannot be opened as a score cache ({reason}); give --cache a new file name "
                            "or a cache written by `sr-iqa score`") from None

    def close(self) -> None:
        self.db.close()

    def record(self, path: Path) -> ImageRecord:
        """The image's content hash and size, re-hashed only when its size or mtime changed."""
        stat = path.stat()
        row = self.db.execute("SELECT size, mtime_ns, content_hash, width, height FROM images WHERE path = ?",
                              (str(path),)).fetchone()
        if row is not None and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return ImageRecord(path, row[2], row[3], row[4])
        height, width = read_size(path)
        record = ImageRecord(path, _file_hash(path), width, height)
        values = (str(path), stat.st_size, stat.st_mtime_ns, record.content_hash, width, height)
        if self.read_only:
            self.unsaved[str(path)] = values
        else:
            self.store_images([values])
        return record

    def records(self, paths: Sequence[Path]) -> list[ImageRecord]:
        """``record`` for many images: the images table read once, one stat per file, hashing only changed ones."""
        known = {row[0]: row for row in self.db.execute(
            "SELECT path, size, mtime_ns, content_hash, width, height FROM images")}
        records = []
        for path in paths:
            row = known.get(str(path))
            stat = path.stat()
            if row is not None and row[1] == stat.st_size and row[2] == stat.st_mtime_ns:
                records.append(ImageRecord(path, row[3], row[4], row[5]))
            else:
                records.append(self.record(path))
        return records

    def grid_scores(self, metric: str, records: Sequence[ImageRecord], size: int,
                    stride: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Every record's scores on the ``size``:``stride`` grid in one flat float64 array (NaN: not scorable),
        with a mask of the boxes the cache has, and each record's offset into them (its boxes row by row).

        Complete grids come from the ``grids`` table (one packed row per image, written after scoring by
        ``store_grids``); the others from the score rows, joined inside SQLite and read into arrays in chunks.
        Either way no Python object per score: millions of scores load in about a second or two."""
        offsets, shapes, total = [], [], 0
        for record in records:
            shape = (max(0, (record.height - size) // stride + 1), max(0, (record.width - size) // stride + 1))
            offsets.append(total)
            shapes.append(shape)
            total += shape[0] * shape[1]
        values, present = np.full(total, np.nan), np.zeros(total, dtype=bool)
        self._fill_wanted(records, offsets, shapes)
        if self._has_table("grids"):
            for base, count, packed in self.db.execute(
                    "SELECT wanted.base, wanted.rows * wanted.columns, grids.scores FROM temp.wanted JOIN grids "
                    "ON grids.content_hash = wanted.content_hash AND grids.metric = ? AND grids.size = ? "
                    "AND grids.stride = ? AND grids.rows = wanted.rows AND grids.columns = wanted.columns",
                    (metric, size, stride)):
                values[base:base + count] = np.frombuffer(packed, dtype=np.float64)
                present[base:base + count] = True
        if np.isinf(values).any():  # a score sr_iqa never writes (NaN is a region the metric could not score)
            raise not_ours(self.path, f"table 'grids' {WRONG_KIND}, an infinite score")
        starts = np.asarray(offsets, dtype=np.int64)
        if not present[starts[np.asarray([s[0] * s[1] for s in shapes]) > 0]].all():
            self._grid_rows_into(values, present, metric, size, stride)
        self.db.execute("DELETE FROM temp.wanted")
        return values, present, offsets

    def _fill_wanted(self, records: Sequence[ImageRecord], offsets: Sequence[int],
                     shapes: Sequence[tuple[int, int]]) -> None:
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (content_hash TEXT, base INTEGER, columns INTEGER, "
                        "rows INTEGER)")
        self.db.execute("DELETE FROM temp.wanted")
        self.db.executemany("INSERT INTO temp.wanted VALUES (?, ?, ?, ?)", [
            (record.content_hash, offset, columns, rows)
            for record, offset, (rows, columns) in zip(records, offsets, shapes, strict=True)])

    def _grid_rows_into(self, values: np.ndarray, present: np.ndarray, metric: str, size: int, stride: int) -> None:
        """The wanted images' grid boxes from the score rows (images without a packed grid)."""
        cursor = self.db.execute(
            f"SELECT wanted.base + (scores.y / ?) * wanted.columns + scores.x / ?, IFNULL(scores.score, {_NULL_MARK}) "
            "FROM temp.wanted JOIN scores ON scores.content_hash = wanted.content_hash AND scores.metric = ? "
            "AND scores.w = ? AND scores.h = ? WHERE scores.x % ? = 0 AND scores.y % ? = 0 "
            "AND scores.x / ? < wanted.columns AND scores.y / ? < wanted.rows",
            (stride, stride, metric, size, size, stride, stride, stride, stride))
        while chunk := cursor.fetchmany(1 << 16):  # in chunks: no list of millions of tuples at once
            try:
                found = np.array(chunk, dtype=np.float64)
            except (ValueError, TypeError):
                raise not_ours(self.path, f"table 'scores' {WRONG_KIND}") from None
            if np.isinf(found).any():
                raise not_ours(self.path, f"table 'scores' {WRONG_KIND}, an infinite score")
            index = found[:, 0].astype(np.int64)
            values[index] = np.where(found[:, 1] == _NULL_MARK, np.nan, found[:, 1])
            present[index] = True

    def store_grids(self, metric: str, records: Sequence[ImageRecord], size: int, stride: int) -> int:
        """Pack every complete ``size``:``stride`` grid of ``records`` into one row per image (what training
        reads). A score never changes for a content hash, so a packed grid stays valid. Returns how many."""
        self.db.executescript(_GRIDS)
        values, present, offsets = self.grid_scores(metric, records, size, stride)
        ends = [*offsets[1:], len(values)]
        rows = []
        for record, start, end in zip(records, offsets, ends, strict=True):
            if end > start and present[start:end].all():  # images smaller than the box have no grid
                rows.append((record.content_hash, metric, size, stride, (record.width - size) // stride + 1,
                             (record.height - size) // stride + 1, values[start:end].tobytes()))
        self.db.executemany("INSERT OR REPLACE INTO grids VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self.db.commit()
        return len(rows)

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (name,)).fetchone() is not None

    def store_images(self, rows: Iterable[tuple]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?)", list(rows))
        self.db.commit()

    def merge(self, other: Path) -> None:
        """Take in another cache file's images and scores (a spool); scores already here win."""
        self.db.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            verify_schema(self.db, other, "other")  # a planted spool file is a cache like any other
            self.db.execute("INSERT OR REPLACE INTO images SELECT * FROM other.images")
            self.db.execute("INSERT OR IGNORE INTO scores SELECT * FROM other.scores")
            self.db.commit()
        finally:
            self.db.execute("DETACH DATABASE other")

    def merge_spools(self) -> int:
        """Merge and delete every spool file beside this cache (a killed run's too); the number merged."""
        pattern = re.compile(re.escape(self.path.name) + r"\.spool-rank\d+")
        spools = sorted(p for p in self.path.parent.iterdir() if pattern.fullmatch(p.name))
        for spool in spools:
            self.merge(spool)  # a spool's leftover journal (a killed writer) is rolled back by SQLite on attach
            spool.unlink()
            spool.with_name(spool.name + "-journal").unlink(missing_ok=True)
        return len(spools)

    def present(self, content_hash: str, metric: str) -> set[Region]:
        rows = self.db.execute("SELECT x, y, w, h FROM scores WHERE content_hash = ? AND metric = ?",
                               (content_hash, metric))
        return {Region(*row) for row in rows}

    def put(self, rows: Sequence[ScoreRow]) -> None:
        """Store rows; a NaN score (the metric could not score the region) is kept as NULL."""
        self.db.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [(h, m, x, y, w, hh, None if math.isnan(s) else float(s), int(lb))
                             for h, m, x, y, w, hh, s, lb in rows])
        self.db.commit()

    def metrics(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT DISTINCT metric FROM scores ORDER BY metric")]

    def lower_better(self, metric: str) -> bool:
        row = self.db.execute("SELECT lower_better FROM scores WHERE metric = ? LIMIT 1", (metric,)).fetchone()
        return bool(row[0]) if row else False

    def scores(self, metric: str, hashes: Iterable[str]) -> dict[str, dict[Region, float]]:
        """Content hash -> region -> score, for one metric; loaded once, then plain dicts (picklable for workers)."""
        wanted = set(hashes)
        table: dict[str, dict[Region, float]] = {h: {} for h in wanted}
        for content_hash, x, y, w, h, score in self.db.execute(
                "SELECT content_hash, x, y, w, h, score FROM scores WHERE metric = ?", (metric,)):
            if content_hash in wanted:
                table[content_hash][Region(x, y, w, h)] = _checked_score(self.path, score)
        return table

    def export_csv(self, out: Path) -> int:
        """One row per (path, score): ``image,metric,x,y,w,h,score,lower_better``. Returns the number of rows."""
        rows = self.db.execute(
            "SELECT images.path, scores.metric, x, y, w, h, score, lower_better FROM scores "
            "JOIN images ON images.content_hash = scores.content_hash ORDER BY images.path, scores.metric, y, x, h, w")
        out.parent.mkdir(parents=True, exist_ok=True)
        count = 0

        def write(partial: Path) -> None:  # whole or not at all: a row sr_iqa never writes stops it
            nonlocal count
            with open(partial, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["image", "metric", "x", "y", "w", "h", "score", "lower_better"])
                for path, metric, x, y, w, h, score, lower_better in rows:
                    writer.writerow([path, metric, x, y, w, h, repr(_checked_score(self.path, score)),
                                     str(bool(lower_better)).lower()])
                    count += 1

        write_with(out, write)
        return count

"""The GTs' no-reference scores of an evaluation (the Gold Standard's input) taken from the score cache.

Every evaluation of a test set scores the same GTs with the same metrics; ``sr-iqa score`` and earlier
evaluations have those scores in the cache already (same content hash, same metric key, i.e. same
``iqa.metric_options``). Only whole images are reused: a GT that the evaluation cuts to a multiple of the scale
(no fixed LR) is another image and is scored. What is missing is scored and written back, by the main process
under the cache's writer lock, so the next evaluation of the set (another seed, another method) reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from sr_iqa import writer_lock
from sr_iqa.data.groups import Group
from sr_iqa.errors import RunFolderError
from sr_iqa.iqa.score_cache import ImageRecord, Region, ScoreCache, metric_key

log = logging.getLogger("sr_iqa.eval")
GtScores = list[dict[str, float]]  # per GT of a group: metric -> score


class CachedGtScores:
    """The cache's scores of the GTs of this process's groups, read once (read-only: any rank may read), and the
    rows to write back."""

    def __init__(self, path: Path, names: Sequence[str], metric_options: Mapping[str, dict],
                 lower_better: Mapping[str, bool], groups: Sequence[Group]) -> None:
        self.path = path
        self.keys = {name: metric_key(name, metric_options.get(name)) for name in names}
        self.lower_better = dict(lower_better)
        self._records: dict[Path, ImageRecord] = {}
        self._tables: dict[str, dict[str, dict[Region, float]]] = {}
        if path.is_file():  # one read of the images table and one of each metric's scores
            reader = ScoreCache(path, read_only=True)
            records = reader.records([gt.path for group in groups for gt in group.gts])
            self._records = {record.path: record for record in records}
            hashes = {record.content_hash for record in records}
            self._tables = {key: reader.scores(key, hashes) for key in self.keys.values()}
            reader.close()

    def lookup(self, group: Group, height: int, width: int) -> GtScores:
        """Per GT, the cached scores of whole images of this size (metrics not cached are absent)."""
        found: GtScores = []
        for gt in group.gts:
            record = self._records.get(gt.path)
            scores = {}
            if record is not None and (record.height, record.width) == (height, width):
                for name, key in self.keys.items():
                    value = self._tables[key][record.content_hash].get(record.full)
                    if value is not None:
                        scores[name] = value
            found.append(scores)
        return found

    def store(self, groups: Sequence[Group], sizes: Sequence[tuple[int, int]], gt_scores: Sequence[GtScores]) -> int:
        """Write the whole-image scores the cache lacks (main process, all groups gathered); the rows added.
        Another writer holding the cache leaves it as it is (said in one line)."""
        try:
            lock = writer_lock.acquire(writer_lock.file_lock(self.path), str(self.path), "writer", "--cache")
        except RunFolderError as busy:
            log.info("GT scores not written to the score cache: %s", busy)
            return 0
        try:
            cache = ScoreCache(self.path)
            records = iter(cache.records([gt.path for group in groups for gt in group.gts]))  # one table read
            rows = []
            for group, (height, width), scores in zip(groups, sizes, gt_scores, strict=True):
                for record, values in zip([next(records) for _ in group.gts], scores, strict=True):
                    if (record.height, record.width) == (height, width):
                        region = record.full
                        rows += [(record.content_hash, self.keys[name], region.x, region.y, region.w, region.h,
                                  value, self.lower_better[name]) for name, value in values.items()
                                 if name in self.keys]
            before = cache.db.total_changes
            cache.put(rows)  # INSERT OR IGNORE: rows already there stay
            written = cache.db.total_changes - before
            cache.close()
        finally:
            writer_lock.release(lock)
        return written

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
    """Lookups for this process's groups (read-only: any rank may read), and the rows to write back."""

    def __init__(self, path: Path, names: Sequence[str], metric_options: Mapping[str, dict],
                 lower_better: Mapping[str, bool]) -> None:
        self.path = path
        self.keys = {name: metric_key(name, metric_options.get(name)) for name in names}
        self.lower_better = dict(lower_better)
        self._tables: dict[str, dict[str, dict[Region, float]]] = {}
        self._reader = ScoreCache(path, read_only=True) if path.is_file() else None

    def _records(self, group: Group) -> list[ImageRecord] | None:
        return self._reader.records([gt.path for gt in group.gts]) if self._reader is not None else None

    def lookup(self, group: Group, height: int, width: int) -> GtScores:
        """Per GT, the cached scores of whole images of this size (metrics not cached are absent)."""
        records = self._records(group)
        if records is None:
            return [{} for _ in group.gts]
        found: GtScores = []
        for record in records:
            scores = {}
            if (record.height, record.width) == (height, width):
                for name, key in self.keys.items():
                    table = self._tables.setdefault(key, {})
                    if record.content_hash not in table:  # one query per metric and image, only when asked
                        table |= self._reader.scores(key, [record.content_hash])
                    value = table[record.content_hash].get(record.full)
                    if value is not None:
                        scores[name] = value
            found.append(scores)
        return found

    def store(self, groups: Sequence[Group], sizes: Sequence[tuple[int, int]], gt_scores: Sequence[GtScores]) -> int:
        """Write the whole-image scores the cache lacks (main process, all groups gathered); the rows added.
        Another writer holding the cache leaves it as it is (said in one line)."""
        try:
            lock = writer_lock.acquire(Path(f"{self.path}.lock"), str(self.path), "writer", "--cache")
        except RunFolderError as busy:
            log.info("GT scores not written to the score cache: %s", busy)
            return 0
        try:
            cache = ScoreCache(self.path)
            rows = []
            for group, (height, width), scores in zip(groups, sizes, gt_scores, strict=True):
                for record, values in zip(cache.records([gt.path for gt in group.gts]), scores, strict=True):
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

"""W&B's offline run file (``run-<id>.wandb``) read back: LevelDB's log format (32 KiB blocks of 7-byte-headed
chunks) after W&B's 7-byte file header, each record one ``wandb_internal_pb2.Record``. wandb 0.31 has no Python
reader of its own any more (its core is Go)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes) -> Iterator[bytes]:
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            position += left
            continue
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


def run_records(path: Path) -> tuple[list[dict[str, object]], dict[str, object]]:
    """(the history rows, the config) of one offline run file."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    history, config = [], {}
    for raw in _chunks(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
        elif kind == "config":
            config.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                           for item in record.config.update})
    return history, config

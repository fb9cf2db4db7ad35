"""JSON parsed from files a user passes, with the failure every caller already handles.

Python's parser recurses once per nesting level: a label file or manifest line 200,000 levels deep ends in a
``RecursionError``, which no caller expects. Here it is a ``json.JSONDecodeError`` like any other bad JSON, as are
a number too long to convert and a file that is not a plain one (a FIFO would block, a link to /dev/zero never
ends).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any


class UnreadableJson(json.JSONDecodeError):
    """Bad JSON that is not a syntax error at a place: said in words alone, without json's line and column."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self) -> tuple:  # errors cross processes (main_process): rebuilt from the reason alone
        return UnreadableJson, (self.reason,)


def parse_json(text: str | bytes) -> Any:
    """``json.loads``; nesting too deep to parse is a ``json.JSONDecodeError`` (a ``ValueError``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise UnreadableJson("nested deeper than the parser allows") from None
    except UnicodeDecodeError:
        raise UnreadableJson("not UTF-8 text") from None
    except json.JSONDecodeError:
        raise
    except ValueError as error:  # an integer of more digits than int() converts
        raise UnreadableJson(str(error).split(";")[0]) from None


MAX_JSON_FILE_BYTES = 64 << 20  # far above any label file, manifest or record sr_iqa reads


def read_json_file(path: Path, max_bytes: int = MAX_JSON_FILE_BYTES) -> Any:
    """``parse_json`` of a file's text. What is not a plain file (a FIFO would block, a link to /dev/zero never
    ends, a folder), is larger than ``max_bytes``, is not UTF-8 or holds a number Python will not convert (over
    4300 digits) is a ``json.JSONDecodeError`` saying so; a missing file is ``FileNotFoundError``."""
    return parse_json(read_plain_file(path, max_bytes))


def read_plain_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a plain file of at most ``max_bytes``; else ``json.JSONDecodeError`` naming what it is."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    try:
        kind = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(kind):
            what = "a folder" if stat.S_ISDIR(kind) else "a FIFO" if stat.S_ISFIFO(kind) else "a device or socket"
            raise UnreadableJson(f"{what}, not a plain file")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise UnreadableJson(f"larger than {max_bytes} bytes")
    return data

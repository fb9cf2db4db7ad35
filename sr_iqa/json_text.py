"""JSON parsed from files a user passes, with the failure every caller already handles.

Python's parser recurses once per nesting level: a label file or manifest line 200,000 levels deep ends in a
``RecursionError``, which no caller expects. Here it is a ``json.JSONDecodeError`` like any other bad JSON.
"""

from __future__ import annotations

import json
from typing import Any


def parse_json(text: str | bytes) -> Any:
    """``json.loads``; nesting too deep to parse is a ``json.JSONDecodeError`` (a ``ValueError``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested deeper than the parser allows", "", 0) from None

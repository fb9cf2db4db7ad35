"""Names a user gives that become one file or folder name (a run's ``name``, a manifest group's ``name``)."""

from __future__ import annotations

NAME_BYTES = 200  # below the 255-byte limit of common file systems, leaving room for "_<iteration>.png"


def is_plain_name(name: object) -> bool:
    """One path component that every file system here takes: no folders, no '.' or '..', printable (no NUL or
    control characters), at most ``NAME_BYTES`` bytes in UTF-8."""
    return (isinstance(name, str) and name not in ("", ".", "..") and not any(char in name for char in "/\\")
            and name.isprintable() and len(name.encode("utf-8", "surrogatepass")) <= NAME_BYTES)

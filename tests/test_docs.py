"""The documentation against the code: every option key in docs/options.md exists in the schema and every schema key
is documented; the README stays a short entry page whose links resolve."""

from __future__ import annotations

import dataclasses
import re
import typing

from conftest import REPO

from sr_iqa.config.schema import Options


def _schema_keys(schema: type, prefix: str = "") -> dict[str, object]:
    """Dotted key -> annotation, for every leaf of the option schema (nested dataclasses expanded)."""
    keys: dict[str, object] = {}
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        annotation = hints[field.name]
        nested = None if typing.get_origin(annotation) is dict else next(  # dict of blocks: one row (extra_val)
            (a for a in (annotation, *typing.get_args(annotation)) if dataclasses.is_dataclass(a)), None)
        if nested is not None:
            keys[prefix + field.name] = nested  # a block: documented as a whole or key by key
            keys |= _schema_keys(nested, f"{prefix}{field.name}.")
        else:
            keys[prefix + field.name] = annotation
    return keys


def _documented_keys(text: str) -> set[str]:
    """First-column keys of the reference table; `a.b`, `c` means a.b and a.c; <split> is train and val."""
    keys = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        parent = ""
        for key in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if "." in key:
                parent = key.rsplit(".", 1)[0] + "."
            keys.add(key if "." in key else parent + key)
    return {k.replace("<split>", split) for k in keys for split in ("train", "val")}


def test_the_option_reference_and_the_schema_name_the_same_keys():
    schema = _schema_keys(Options)
    documented = _documented_keys((REPO / "docs" / "options.md").read_text())
    undocumented = sorted(k for k in schema if k not in documented and not dataclasses.is_dataclass(schema[k]))
    assert not undocumented, f"schema keys missing from docs/options.md: {undocumented}"
    # A documented key is in the schema, or is a key inside a {type: ...} block (a dict the schema passes on).
    unknown = sorted(k for k in documented if k not in schema and k.rsplit(".", 1)[0] not in schema)
    assert not unknown, f"docs/options.md documents keys the schema does not have: {unknown}"


def test_the_readme_is_an_entry_page_whose_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert readme.startswith("# sr_iqa\n\n```bash\nmake demo") and "\nmake test" in readme.split("```")[1]
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("http"):
            assert (REPO / target).exists(), f"README links to {target}, which is missing"
    assert (REPO / "LICENSE").is_file()
    assert "arXiv:2504.18524" in readme and "Human Guided Ground-Truth Generation" in readme


def test_the_docs_links_and_images_resolve():
    for page in sorted((REPO / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http", "mailto:")):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which is missing"

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


def test_the_dependency_floors_are_the_versions_the_floors_venv_ran():
    """pyproject's lower bounds and the pins docs/development.md says the whole suite passed with, the same numbers:
    a floor changed in one place alone would claim a run that never happened."""
    import tomllib

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(re.match(r"([a-z-]+)>=([\d.]+)", dep).groups() for dep in dependencies if ">=" in dep)
    text = " ".join((REPO / "docs" / "development.md").read_text().split())
    pinned = text[text.index("Dependency floors:"):].split("How they were found")[0]
    for name, floor in floors.items():
        if name in ("torch", "torchvision", "setuptools"):  # torch: the second environment; setuptools: a cap's partner
            continue
        ran = re.search(rf"\b{name} ([\d.]+)", pinned)
        assert ran, f"docs/development.md does not say which {name} the floors venv ran"
        assert _release(floor) == _release(ran.group(1)), (name, floor, ran.group(1))


def _release(version: str) -> tuple[int, ...]:
    """2.4 and 2.4.0 as the same release."""
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)

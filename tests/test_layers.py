"""Layers only point down: every import of every sr_iqa module (at the top or inside a function) against the layer
table of docs/architecture.md, which is therefore the table the code obeys."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO


def layer_table(architecture: str) -> dict[str, int]:
    """Module prefix -> layer, from the first fenced block after "## Layers" (rows: number, name, prefixes)."""
    block = architecture.split("## Layers", 1)[1].split("```", 2)[1]
    table: dict[str, int] = {}
    layer = None
    for line in block.splitlines():
        row = re.match(r"\s+(\d+)\s+\S+(?:, \S+)?\s+(.*)$", line)
        if row:
            layer, rest = int(row.group(1)), row.group(2)
        elif layer is not None and line.strip():
            rest = line
        else:
            continue
        table |= {prefix: layer for prefix in re.findall(r"sr_iqa[\w.]*", rest)}
    return table


def layer_of(module: str, table: dict[str, int]) -> int | None:
    matches = [p for p in table if module == p or module.startswith(p + ".")]
    return table[max(matches, key=len)] if matches else None


def imports_of(source: str, package: str) -> set[str]:
    """The sr_iqa modules a module's source imports, anywhere in it (relative imports resolved from ``package``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("sr_iqa")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("sr_iqa"):
                found.add(base)
                # `from sr_iqa.train import checkpoints` imports the module sr_iqa.train.checkpoints
                found |= {f"{base}.{alias.name}" for alias in node.names
                          if (REPO / Path(*f"{base}.{alias.name}".split("."))).with_suffix(".py").exists()}
    return found


def upward_imports(modules: dict[str, str], table: dict[str, int]) -> list[str]:
    problems = []
    for module, source in modules.items():
        mine = layer_of(module, table)
        if mine is None:
            problems.append(f"{module}: in no layer of docs/architecture.md")
            continue
        package = module if module.endswith("__init__") else module.rpartition(".")[0]
        for imported in sorted(imports_of(source, package)):
            theirs = layer_of(imported, table)
            if theirs is not None and theirs > mine:
                problems.append(f"{module} (layer {mine}) imports {imported} (layer {theirs})")
    return problems


def _sr_iqa_modules() -> dict[str, str]:
    modules = {}
    for path in sorted((REPO / "sr_iqa").rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path.read_text()
    return modules


def test_no_module_imports_a_higher_layer():
    table = layer_table((REPO / "docs" / "architecture.md").read_text())
    assert table["sr_iqa.cli"] > table["sr_iqa.train"] > table["sr_iqa.config"] == 1
    assert upward_imports(_sr_iqa_modules(), table) == []


def test_the_check_sees_an_upward_import_inside_a_function():
    table = {"sr_iqa": 0, "sr_iqa.config": 1, "sr_iqa.train": 7}
    lowest = "def check():\n    from sr_iqa.train.trainer import Trainer\n"
    assert upward_imports({"sr_iqa.config.loader": lowest}, table) == [
        "sr_iqa.config.loader (layer 1) imports sr_iqa.train.trainer (layer 7)"]
    assert upward_imports({"sr_iqa.train.trainer": "import sr_iqa.config.loader\n"}, table) == []
    assert upward_imports({"sr_iqa.extra": ""}, {"sr_iqa.config": 1}) == [
        "sr_iqa.extra: in no layer of docs/architecture.md"]

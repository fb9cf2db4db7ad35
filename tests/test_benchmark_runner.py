"""benchmarks/run.py's bookkeeping: which targets count on which machine, and rewriting only its own table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from measurement import Measurement, Target  # noqa: E402
from run import missed_targets, write_section  # noqa: E402


def _row(ratio: float, target: Target | None) -> Measurement:
    return Measurement("what", "baseline", "ours", ratio, target)


@pytest.mark.parametrize(("ratio", "target", "met"), [
    (5.0, Target("cpu", at_least=5), True), (4.99, Target("cpu", at_least=5), False),
    (1.05, Target("cpu", at_most=1.05), True), (1.051, Target("cpu", at_most=1.05), False),
])
def test_target_bounds_are_inclusive(ratio: float, target: Target, met: bool):
    assert target.met(ratio) is met


def test_only_targets_of_this_machine_kind_can_fail_the_run():
    rows = [_row(1.0, Target("cpu", at_least=3)), _row(1.0, Target("gpu", at_least=2)), _row(0.1, None),
            _row(4.0, Target("cpu", at_least=3))]
    assert missed_targets(rows, "cpu") == [rows[0]]
    assert missed_targets(rows, "gpu") == [rows[1]]
    assert "not this machine" in rows[1].verdict("cpu") and "MISSED" in rows[0].verdict("cpu")


def test_a_table_replaces_only_its_own_section(tmp_path: Path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n<!-- run.py:cpu:start -->\nold cpu\n<!-- run.py:cpu:end -->\n\n"
                       "<!-- run.py:gpu:start -->\nold gpu\n<!-- run.py:gpu:end -->\n\n## Notes by hand\nkept\n")
    write_section(results, "cpu", "new cpu table")
    text = results.read_text()
    assert "new cpu table" in text and "old cpu" not in text
    assert "old gpu" in text and text.endswith("## Notes by hand\nkept\n")
    write_section(results, "cpu", "newer")
    assert results.read_text().count("run.py:cpu:start") == 1 and "new cpu table" not in results.read_text()


def test_a_missing_section_is_appended(tmp_path: Path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nprose\n")
    write_section(results, "gpu", "gpu table")
    text = results.read_text()
    assert text.startswith("# Results\n\nprose\n") and "<!-- run.py:gpu:start -->\ngpu table\n" in text

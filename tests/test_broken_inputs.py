"""Every case of the broken-input set (tests/broken_inputs.py) ends in one clear line: no traceback, no silent
success, no payload run, nothing written. `python tests/broken_inputs.py` prints the same cases' counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from broken_inputs import CASES, Bench, Case, run


def test_the_set_is_large_and_covers_every_family():
    families = {case.family for case in CASES}
    assert len(CASES) >= 200 and len({(case.family, case.name) for case in CASES}) == len(CASES)
    assert {"score caches", "packed stores", "weight files", "run names", "non-finite values", "data",
            "manifests"} <= families


@pytest.mark.parametrize("case", CASES, ids=[f"{case.family}: {case.name}" for case in CASES])
def test_a_broken_input_is_one_clear_line(case: Case, tmp_path: Path):
    outcome = run(case, Bench(tmp_path))
    assert outcome.kind == "clear", f"{outcome.kind} (exit {outcome.code}):\n{outcome.output[-3000:]}"

"""``sr-iqa ablate``: run the planned steps that are not finished, then aggregate and report.

A step is finished when its proof file exists (the final training state, or the eval's
``summary.json``); an unfinished training step is simply launched again and resumes from its
newest state. Interrupting and rerunning therefore never repeats finished work.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from sr_iqa.ablation.aggregate import aggregate
from sr_iqa.ablation.plan import load_ablation, plan
from sr_iqa.errors import SrIqaError

log = logging.getLogger("sr_iqa.ablate")


def _launch_here(command: list[str]) -> list[str]:
    """A planned ``accelerate launch ...`` run through this Python's accelerate: no ``accelerate`` script on PATH
    or beside the interpreter is needed (a ``pip install --target`` has none)."""
    return [sys.executable, "-m", "accelerate.commands.launch", *command[2:]]


def run_ablation(path: Path, dry_run: bool = False) -> int:
    options = load_ablation(path)
    steps, methods = plan(options, Path())  # option-file paths as written, relative to here
    root = Path(options.experiments_root) / options.name
    if dry_run:
        for step in steps:
            status = "done" if step.done_when.exists() else "to run"
            print(f"# {step.run} {step.kind} ({status})\n{step.shell()}")
        return 0
    root.mkdir(parents=True, exist_ok=True)
    for number, step in enumerate(steps, start=1):
        if step.done_when.exists():
            log.info("[%d/%d] %s %s: done, skipped", number, len(steps), step.run, step.kind)
            continue
        log.info("[%d/%d] %s %s: %s", number, len(steps), step.run, step.kind, step.shell())
        if subprocess.run(_launch_here(step.command)).returncode != 0:
            raise SrIqaError(f"{step.run} {step.kind} failed; fix the cause and rerun `sr-iqa ablate -opt {path}` "
                             f"(finished steps are skipped, training resumes): {step.shell()}")
    record = aggregate(methods, root, options.plot_metric, options.dataset, options.report_images)
    from sr_iqa.report.html import write_report

    report = write_report(root)
    print(f"{record['caption']}\n\n{record['table']}\n\nwrote {root / 'ablation_table.md'}, {report}")
    return 0

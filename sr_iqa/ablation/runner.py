"""``sr-iqa ablate``: run the planned steps that are not finished, then aggregate and report.

A step is finished when its proof file exists (the final training state, or the eval's
``summary.json``); an unfinished training step is simply launched again and resumes from its
newest state. Interrupting and rerunning therefore never repeats finished work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sr_iqa.ablation.aggregate import aggregate
from sr_iqa.ablation.plan import load_ablation, plan
from sr_iqa.errors import SrIqaError

log = logging.getLogger("sr_iqa.ablate")


def _launch_here(command: list[str]) -> list[str]:
    """A planned ``accelerate launch ...`` run through this Python's accelerate: no ``accelerate`` script on PATH
    or beside the interpreter is needed (a ``pip install --target`` has none)."""
    return [sys.executable, "-m", "accelerate.commands.launch", *command[2:]]


def _finished(proof: Path) -> bool:
    """A step's proof exists and, for an eval's summary.json, reads (one written by an older version could be
    half a file): a damaged proof means the step runs again, not a traceback in every rerun."""
    if not proof.exists():
        return False
    if proof.suffix == ".json":
        try:
            json.loads(proof.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("%s is damaged; its step runs again", proof)
            return False
    return True


FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GROUP_EXIT_SECONDS = 300  # what a training is given to save its state and exit after a forwarded signal


def _run_step(command: list[str]) -> int:
    """Run one step in its own process group and wait for the whole group. A signal to the runner (Ctrl-C, a
    scheduler's SIGTERM, a closed terminal) goes to every process of the step (the launcher and the training it
    started), and the runner ends only once they have: no training is left running as an orphan to meet a rerun
    in the same folder. A training saves its state on Ctrl-C; a rerun resumes it."""
    child = subprocess.Popen(command, start_new_session=True)
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        code = child.wait()
        _wait_for_group(child.pid)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise SrIqaError(f"interrupted ({signal.Signals(received[0]).name}); the step's processes have ended; rerun "
                         "the same command to continue (finished steps are skipped, training resumes)")
    return code


def _wait_for_group(group: int) -> None:
    """Until no process of ``group`` is left (a launcher can exit before the training it started); those still
    there after GROUP_EXIT_SECONDS are killed."""
    deadline = time.monotonic() + GROUP_EXIT_SECONDS
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            return
        time.sleep(0.2)


def run_ablation(path: Path, dry_run: bool = False) -> int:
    options = load_ablation(path)
    steps, methods = plan(options, Path())  # option-file paths as written, relative to here
    root = Path(options.experiments_root) / options.name
    if dry_run:
        for step in steps:
            status = "done" if _finished(step.done_when) else "to run"
            print(f"# {step.run} {step.kind} ({status})\n{step.shell()}")
        return 0
    root.mkdir(parents=True, exist_ok=True)
    for number, step in enumerate(steps, start=1):
        if _finished(step.done_when):
            log.info("[%d/%d] %s %s: done, skipped", number, len(steps), step.run, step.kind)
            continue
        log.info("[%d/%d] %s %s: %s", number, len(steps), step.run, step.kind, step.shell())
        if _run_step(_launch_here(step.command)) != 0:
            raise SrIqaError(f"{step.run} {step.kind} failed; fix the cause and rerun `sr-iqa ablate -opt {path}` "
                             f"(finished steps are skipped, training resumes): {step.shell()}")
    record = aggregate(methods, root, options.plot_metric, options.dataset, options.report_images)
    from sr_iqa.report.html import write_report

    report = write_report(root)
    print(f"{record['caption']}\n\n{record['table']}\n\nwrote {root / 'ablation_table.md'}, {report}")
    return 0

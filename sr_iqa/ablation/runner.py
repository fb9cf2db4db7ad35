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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sr_iqa.ablation.ablation_page import write_ablation_page
from sr_iqa.ablation.aggregate import aggregate
from sr_iqa.ablation.plan import AblationOptions, AblationRow, load_ablation, plan
from sr_iqa.atomic_files import write_text_atomically
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


CommandLine = Callable[[list[str]], int]  # sr-iqa's entry point: arguments after `sr-iqa` -> exit status


def run_in_process(command: list[str], entry: CommandLine) -> int:
    """A planned step run by the CLI entry point in this process (``launch.in_process``). Accelerate keeps one
    precision per process, so its state is forgotten after each step (the device is kept)."""
    from accelerate.state import AcceleratorState

    try:
        return entry(command[command.index("sr_iqa") + 1:])
    finally:
        AcceleratorState._reset_state(reset_partial_state=False)


def run_ablation(path: Path, dry_run: bool = False, entry: CommandLine | None = None) -> int:
    """``entry``: the CLI's entry point, for ``launch.in_process`` (passed down so that this layer does not
    import the CLI above it)."""
    options = load_ablation(path)
    finished = execute(options, f"sr-iqa ablate -opt {path}", dry_run, entry)
    if finished is not None:
        record = finished.record
        from sr_iqa.report.html import write_report

        root = Path(options.experiments_root) / options.name
        report = write_report(root)
        written = [root / "ablation_table.md", report]
        if options.results is not None:
            written.append(write_ablation_page(options, path, record, finished.step_seconds, root))
        print(f"{record['caption']}\n\n{record['table']}\n\nwrote " + ", ".join(map(str, written)))
    return 0


@dataclass(frozen=True)
class FinishedAblation:
    record: dict  # what ablation.json holds
    methods: list[AblationRow]  # the table's rows before averaging over seeds
    step_seconds: dict[str, float]  # "<run> <kind>" -> seconds the step took (over every invocation)


STEP_SECONDS = "step_seconds.json"  # in the ablation's folder


def execute(options: AblationOptions, rerun: str, dry_run: bool = False,
            entry: CommandLine | None = None) -> FinishedAblation | None:
    """Run the unfinished steps of the plan in order, then aggregate (None with ``dry_run``, which prints the
    steps). ``rerun``: the command that continues after a failure."""
    steps, methods = plan(options, Path())  # option-file paths as written, relative to here
    root = Path(options.experiments_root) / options.name
    if dry_run:
        for step in steps:
            status = "done" if _finished(step.done_when) else "to run"
            print(f"# {step.run} {step.kind} ({status})\n{step.shell()}")
        return None
    if options.launch.in_process and options.launch.num_processes != 1:
        raise SrIqaError("launch.in_process runs every step in this one process: set launch.num_processes: 1 "
                         "(or in_process: false)")
    if options.launch.in_process and entry is None:
        raise SrIqaError("launch.in_process needs the CLI's entry point (execute(..., entry=sr_iqa.cli.main))")
    root.mkdir(parents=True, exist_ok=True)
    seconds_file = root / STEP_SECONDS
    step_seconds = _read_step_seconds(seconds_file)
    for number, step in enumerate(steps, start=1):
        if _finished(step.done_when):
            log.info("[%d/%d] %s %s: done, skipped", number, len(steps), step.run, step.kind)
            continue
        log.info("[%d/%d] %s %s: %s", number, len(steps), step.run, step.kind, step.shell())
        started = time.monotonic()
        code = (run_in_process(step.command, entry) if options.launch.in_process
                else _run_step(_launch_here(step.command)))
        if code == 130:
            raise SrIqaError(f"interrupted; rerun `{rerun}` to continue (finished steps are skipped, training "
                             "resumes)")
        if code != 0:
            raise SrIqaError(f"{step.run} {step.kind} failed; fix the cause and rerun `{rerun}` "
                             f"(finished steps are skipped, training resumes): {step.shell()}")
        key = f"{step.run} {step.kind}"
        step_seconds[key] = step_seconds.get(key, 0.0) + time.monotonic() - started  # a resumed step adds up
        write_text_atomically(seconds_file, json.dumps(step_seconds, indent=1) + "\n")
    record = aggregate(methods, root, options.plot_metric, options.dataset, options.report_images)
    return FinishedAblation(record, methods, step_seconds)


def _read_step_seconds(path: Path) -> dict[str, float]:
    """What earlier invocations recorded; an unreadable file only loses timings, never work."""
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}

"""``sr-iqa experiment``: the paper's orderings measured on data that can be had anywhere, one command per preset.

A preset file (``experiment_options``) is an ablation, run by the ablation runner (an interrupted experiment resumes
and skips finished steps), plus the multi-GT set it builds from the photos scikit-image ships (held-out photos never
trained on), the score cache the samplers read, the pretrained networks, Q and its monitors. At the end it writes
its section of ``experiments/RESULTS.md`` (tables, claims, plot).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from sr_iqa.ablation.experiment_options import load_experiment
from sr_iqa.ablation.findings import analyse
from sr_iqa.ablation.prepared_data import data_overrides, prepare_data
from sr_iqa.ablation.results_page import write_results
from sr_iqa.ablation.runner import CommandLine, execute


def run_experiment(path: Path, dry_run: bool = False, entry: CommandLine | None = None) -> Path | None:
    """Prepare the data, run (or resume) the ablation, analyse it and write the results section; its path.
    ``entry``: the CLI's entry point, which runs the steps in this process (``launch.in_process``)."""
    experiment = load_experiment(path)
    started = time.time()
    ablation = experiment.ablation
    prepared = None
    if not dry_run:
        prepared = prepare_data(experiment)
        references = {f"{arch} untrained": str(file) for arch, file in prepared.untrained.items()}
        ablation = replace(ablation, references={**ablation.references, **references})
        if prepared.probe is not None:
            ablation = replace(ablation, stage2_overrides=[
                *ablation.stage2_overrides, f"train.iqa_opt.loss_weight={prepared.probe.loss_weight:.6g}"])
    ablation = replace(ablation, overrides=[*data_overrides(experiment.settings), *ablation.overrides])
    command = f"sr-iqa experiment -opt {path}"
    finished = execute(ablation, command, dry_run, entry)
    if finished is None or prepared is None:
        return None
    findings = analyse(finished.methods, experiment.settings, list(ablation.archs), prepared.gate)
    return write_results(experiment, ablation, findings, finished.step_seconds, started, prepared)

"""``sr-iqa experiment``: the paper's orderings measured on data that can be had anywhere, one command per preset.

A preset file (``experiment_options``) is an ablation, run by the ablation runner (an interrupted experiment resumes
and skips finished steps), plus the multi-GT set it builds from the photos scikit-image ships (held-out photos never
trained on), the score cache the samplers read, the pretrained networks, Q and its monitors. At the end it writes
its section of ``experiments/RESULTS.md`` (tables, claims, plot).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from sr_iqa.ablation.experiment_options import ExperimentSettings, load_experiment
from sr_iqa.ablation.findings import analyse
from sr_iqa.ablation.results_page import write_results
from sr_iqa.ablation.runner import CommandLine, execute

log = logging.getLogger("sr_iqa.experiment")


def data_overrides(settings: ExperimentSettings) -> list[str]:
    """The option overrides that point every training at the experiment's data set and score cache."""
    from sr_iqa.data.demo_set import DemoSetPaths

    return DemoSetPaths(Path(settings.data.root)).option_overrides()


def prepare_data(settings: ExperimentSettings) -> None:
    """Install the pretrained networks, build the multi-GT set and score it; each is reused when complete."""
    from sr_iqa.data.demo_set import DemoSetSpec, build_demo_set
    from sr_iqa.iqa.scorer import Grid, score_data_set
    from sr_iqa.pretrained.install import install

    if settings.pretrained:
        install(settings.pretrained, say=log.info)
    data = settings.data
    paths = build_demo_set(Path(data.root), DemoSetSpec(
        crop_size=data.crop_size, train_crops_per_photo=data.train_crops_per_photo,
        test_crop_size=data.test_crop_size, test_crops_per_photo=data.test_crops_per_photo))
    score_data_set(paths.root, data.score_metric, paths.root / "scores.db", Grid.parse(data.score_grid))


def run_experiment(path: Path, dry_run: bool = False, entry: CommandLine | None = None) -> Path | None:
    """Prepare the data, run (or resume) the ablation, analyse it and write the results section; its path.
    ``entry``: the CLI's entry point, which runs the steps in this process (``launch.in_process``)."""
    experiment = load_experiment(path)
    started = time.time()
    if not dry_run:
        prepare_data(experiment.settings)
    ablation = replace(experiment.ablation,
                       overrides=[*data_overrides(experiment.settings), *experiment.ablation.overrides])
    command = f"sr-iqa experiment -opt {path}"
    finished = execute(ablation, command, dry_run, entry)
    if finished is None:
        return None
    findings = analyse(finished.methods, experiment.settings, list(ablation.archs))
    return write_results(experiment, ablation, findings, finished.step_seconds, started)

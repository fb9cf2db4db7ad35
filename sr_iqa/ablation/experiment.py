"""``sr-iqa experiment``: the paper's orderings measured on data that can be had anywhere, one command per preset.

A preset file (``experiment_options``) is an ablation, run by the ablation runner (an interrupted experiment resumes
and skips finished steps), plus the multi-GT set it builds from the photos scikit-image ships (held-out photos never
trained on), the score cache the samplers read, the pretrained networks, Q and its monitors. At the end it writes
its section of ``experiments/RESULTS.md`` (the gate, tables, control, claims, plot). What is fixed before any run
(the gate, the control's labels, the untrained networks, lambda_Q) is ``prepared_data``; iteration counts from a
time budget are ``time_budget``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from sr_iqa.ablation.claims import declared_claims
from sr_iqa.ablation.experiment_options import Experiment, load_experiment
from sr_iqa.ablation.findings import analyse, claim_differences, tiled_q_of_folder
from sr_iqa.ablation.plan import SAMPLER_NAMES, AblationOptions, plan
from sr_iqa.ablation.power import POWER_FILE, PowerPlan, plan_seeds, read_plan
from sr_iqa.ablation.prepared_data import data_overrides, prepare_data, probe_stage1_model
from sr_iqa.ablation.results_page import write_results
from sr_iqa.ablation.runner import CommandLine, execute, run_in_process
from sr_iqa.ablation.time_budget import measure_and_plan
from sr_iqa.ablation.validity_gate import q_device
from sr_iqa.errors import OptionsError
from sr_iqa.evaluate.run_eval import LR_FOLDER
from sr_iqa.iqa.metrics import create_metric

log = logging.getLogger("sr_iqa.experiment")


def run_experiment(path: Path, dry_run: bool = False, entry: CommandLine | None = None) -> Path | None:
    """Prepare the data, fix the iteration counts when the file sets a time budget, run (or resume) the ablation in
    two phases (stage 1 with the references, then stage 2), writing the results section after each, so that a run
    stopped by a time limit still leaves its stage-1 tables; the results file's path.
    ``entry``: the CLI's entry point, which runs the steps in this process (``launch.in_process``)."""
    experiment = load_experiment(path)
    settings = experiment.settings
    started, clock = time.time(), time.monotonic()
    command = f"sr-iqa experiment -opt {path}"
    ablation = replace(experiment.ablation,
                       overrides=[*data_overrides(settings), *experiment.ablation.overrides])
    if dry_run:
        execute(ablation, command, dry_run=True)
        return None
    prepared = prepare_data(experiment)
    references = {f"{arch} untrained": str(file) for arch, file in prepared.untrained.items()}
    ablation = replace(ablation, references={**ablation.references, **references})
    if settings.time_budget is not None:
        ablation = _within_budget(ablation, experiment, clock, entry)
    if settings.power is not None:
        power = _seeds_from_pilot(ablation, experiment, command, entry)
        if power is None:
            return None
        ablation, prepared = replace(ablation, seeds=power.seeds), replace(prepared, power=power)
    results = None
    first = _stage1_only(ablation)
    for phase in [first, ablation] if first != ablation else [ablation]:
        if phase is ablation and first != ablation and settings.stage2_q_share is not None:
            prepared = replace(prepared, probe=probe_stage1_model(experiment, prepared, first_stage2_base(ablation)))
            log.info(prepared.probe.line(settings.q))
            phase = ablation = replace(ablation, stage2_overrides=[
                *ablation.stage2_overrides, f"train.iqa_opt.loss_weight={prepared.probe.loss_weight:.6g}"])
        finished = execute(phase, command, False, entry)
        if finished is None:
            return None
        findings = analyse(finished.methods, settings, list(phase.archs), prepared.gate)
        results = write_results(experiment, phase, findings, finished.step_seconds, started, prepared)
        log.info("wrote %s (%s)", results, "stage 1" if phase is not ablation else "every step")
    return results


def _seeds_from_pilot(ablation: AblationOptions, experiment: Experiment, command: str,
                      entry: CommandLine | None) -> PowerPlan | None:
    """Run (or reuse) the pilot of the control claim's two arms, and the seeds its spread asks for, printed before
    the runs that use them and recorded in the ablation's folder (``power.json``) so that a rerun keeps them."""
    settings = experiment.settings
    options, claim = settings.power, declared_claims(settings.claims).control
    record = Path(ablation.experiments_root) / ablation.name / POWER_FILE
    recorded = read_plan(record)
    if recorded is not None and recorded.claim == claim.text and recorded.pilot_seeds == options.pilot_seeds:
        log.info(recorded.line())
        return recorded
    pilot = _arms_only(ablation, {claim.better, claim.worse}, options.pilot_seeds)
    finished = execute(pilot, command, False, entry)
    if finished is None:
        return None
    arch = next(iter(ablation.archs))
    differences = claim_differences(finished.methods, settings, claim, arch) or []
    power = plan_seeds(options, claim.text, claim.measure, differences)
    power.save(record)
    log.info(power.line())
    return power


def _arms_only(ablation: AblationOptions, arms: set[str], seeds: list[int]) -> AblationOptions:
    """Stage 1 of the named methods alone (sampler names or stage-1 variants), at these seeds, no references."""
    archs = {name: replace(files, stage2=None, finetunes={},
                           variants={v: block for v, block in files.variants.items() if v in arms})
             for name, files in ablation.archs.items()}
    samplers = [s for s in ablation.samplers if SAMPLER_NAMES.get(s, s) in arms]
    return replace(ablation, archs=archs, samplers=samplers, seeds=list(seeds), references={})


def first_stage2_base(ablation: AblationOptions) -> Path:
    """The stage-1 run the first stage-2 step starts from (its ``path.pretrain_network_g``): what lambda_Q is
    probed on, after stage 1 and before any stage 2."""
    steps, _ = plan(ablation, Path())
    command = next(step.command for step in steps if step.kind == "stage2")
    return Path(next(a for a in command if a.startswith("path.pretrain_network_g=")).split("=", 1)[1])


def _stage1_only(ablation: AblationOptions) -> AblationOptions:
    archs = {name: replace(files, stage2=None, finetunes={}) for name, files in ablation.archs.items()}
    return replace(ablation, archs=archs) if archs != ablation.archs else ablation


def _within_budget(ablation: AblationOptions, experiment: Experiment, started: float, entry: CommandLine | None
                   ) -> AblationOptions:
    """The ablation with the iteration counts the time budget allows at the rates measured here, counting what was
    spent since ``started`` (``time.monotonic()``) and the analysis' Q of each evaluation's images."""
    if not ablation.launch.in_process or entry is None:
        raise OptionsError("experiment.time_budget measures its rates in this process: set ablation.launch."
                           "in_process: true")
    settings = experiment.settings

    def analyse_images(saved: Path) -> None:  # only when the plan is measured, not when a recorded one is read
        metric = create_metric(settings.q, q_device())
        for folder in sorted(saved.iterdir()):
            if folder.is_dir() and folder.name != LR_FOLDER:
                tiled_q_of_folder(metric, folder, settings.q_tiles)

    steps, _ = plan(ablation, Path())
    folder = Path(ablation.experiments_root) / ablation.name
    time_plan = measure_and_plan(settings.time_budget, steps, folder, lambda command: run_in_process(command, entry),
                                 say=log.info, started=started, analyse_images=analyse_images)
    return replace(ablation, stage1_overrides=[*ablation.stage1_overrides, *time_plan.stage1_overrides()],
                   stage2_overrides=[*ablation.stage2_overrides, *time_plan.stage2_overrides()])

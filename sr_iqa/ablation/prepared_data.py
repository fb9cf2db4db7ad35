"""What an experiment fixes before any run: the multi-GT set built and gated, the positive control's labels, the
score cache and the untrained networks (reference rows); after stage 1, lambda_Q from the gradient-norm probe on the
model stage 2 starts from. Each part is reused when complete, so a rerun changes none of them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sr_iqa.ablation.experiment_options import Experiment, ExperimentSettings
from sr_iqa.ablation.lambda_probe import LambdaProbe, probe_lambda, read_or_probe
from sr_iqa.ablation.positive_control import write_control_labels
from sr_iqa.ablation.power import PowerPlan
from sr_iqa.ablation.validity_gate import GateReport, GateRule, q_device, run_gate
from sr_iqa.errors import OptionsError
from sr_iqa.iqa.scorer import Grid

if TYPE_CHECKING:
    from sr_iqa.data.demo_set import DemoSetPaths  # skimage and the builder load only when a set is built

log = logging.getLogger("sr_iqa.experiment")


def data_overrides(settings: ExperimentSettings) -> list[str]:
    """The option overrides that point every training at the experiment's data set and score cache."""
    from sr_iqa.data.demo_set import DemoSetPaths

    return DemoSetPaths(Path(settings.data.root)).option_overrides()


@dataclass(frozen=True)
class PreparedData:
    """What the experiment fixes before the runs: the gate's records and the untrained networks (reference rows);
    then the seeds (a power pilot) and, after stage 1, the lambda_Q probe (None when the option files' lambda_Q is
    kept)."""

    gate: GateReport
    untrained: dict[str, Path]  # arch -> its stage-1 network before training
    control_groups: int  # training groups in which the positive control has a Positive
    paths: DemoSetPaths
    power: PowerPlan | None = None  # the seeds a pilot asked for (experiment.power)
    probe: LambdaProbe | None = None


def prepare_data(experiment: Experiment) -> PreparedData:
    """Install the pretrained networks, build the multi-GT set, gate it, write the control's labels, score it and
    save the untrained networks; each is reused when complete."""
    from sr_iqa.data.demo_set import DemoSetSpec, build_demo_set
    from sr_iqa.iqa.metrics import create_metric
    from sr_iqa.iqa.scorer import score_data_set
    from sr_iqa.pretrained.install import install

    settings = experiment.settings
    if settings.pretrained:
        install(settings.pretrained, say=log.info)
    data = settings.data
    spec = DemoSetSpec(crop_size=data.crop_size, train_crops_per_photo=data.train_crops_per_photo,
                       test_crop_size=data.test_crop_size, test_crops_per_photo=data.test_crops_per_photo,
                       train_photos=tuple(data.train_photos), test_photos=tuple(data.test_photos))
    paths = build_demo_set(Path(data.root), spec)
    gate = settings.gate
    rule = GateRule(gate.q_min, gate.q_max, gate.margin, gate.min_headroom)
    report = run_gate(paths, create_metric(settings.q, q_device()), settings.q, rule, settings.q_tiles, spec.scale,
                      spec.seed, say=log.info)
    _, control_groups = write_control_labels(report, paths.train_labels)
    score_data_set(paths.root, data.score_metric, paths.score_cache, Grid.parse(data.score_grid))
    untrained = {arch: save_untrained(Path(files.stage1), _stage1_overrides(experiment),
                                      paths.root / f"untrained_{arch}.safetensors")
                 for arch, files in experiment.ablation.archs.items()}
    return PreparedData(report, untrained, control_groups, paths)


def _stage1_overrides(experiment: Experiment) -> list[str]:
    ablation = experiment.ablation
    return [*data_overrides(experiment.settings), *ablation.overrides, *ablation.stage1_overrides]


def save_untrained(stage1_file: Path, overrides: list[str], out: Path) -> Path:
    """The generator a stage-1 run starts from (its pretrained weights loaded as training loads them), as a file
    that ``eval`` reads: the untrained reference row."""
    from sr_iqa.checked_options import load_options
    from sr_iqa.models.generators import build_generator, generator_scale
    from sr_iqa.models.weight_files import generator_metadata, load_network_weights
    from sr_iqa.tensor_files import save_weights

    if out.is_file():
        return out
    options = load_options(stage1_file, overrides)
    block = dict(options.network_g)
    torch.manual_seed(options.manual_seed)  # what is not pretrained starts as seed 0's run would
    net = build_generator(block, generator_scale(block), str(stage1_file))
    if options.path.pretrain_network_g:
        load_network_weights(net, options.path.pretrain_network_g, options.path.strict_load_g,
                             options.path.param_key_g)
    save_weights(net, out, generator_metadata(block))
    return out


def probe_stage1_model(experiment: Experiment, prepared: PreparedData, stage1_model: Path) -> LambdaProbe:
    """The probe on stage 2's option file (the first finetune of the first arch), the model it starts from and the
    kept training originals."""
    files = next(iter(experiment.ablation.archs.values()))
    finetune = next(iter(files.finetunes.values())).file if files.finetunes else files.stage2
    if finetune is None:
        raise OptionsError(f"{experiment.source}: experiment.stage2_q_share is set but no arch has a stage 2")
    overrides = [*data_overrides(experiment.settings), *experiment.ablation.overrides,
                 *experiment.ablation.stage2_overrides]
    paths = prepared.paths
    originals = [paths.train_images / "original" / f"{r.group}.png" for r in prepared.gate.kept("train")]
    share = experiment.settings.stage2_q_share
    crop = Grid.parse(experiment.settings.q_tiles).size
    return read_or_probe(paths.root, share, stage1_model, lambda: probe_lambda(
        Path(finetune), overrides, stage1_model, originals, share, crop))

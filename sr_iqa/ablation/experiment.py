"""``sr-iqa experiment``: the paper's orderings measured on data that can be had anywhere, one command per preset.

A preset file is an ablation (``ablation:``, run by the ablation runner, so an interrupted experiment resumes and
skips finished steps) plus what the experiment adds (``experiment:``): the multi-GT set it builds from the photos
scikit-image ships (held-out photos never trained on), the score cache the samplers read, the pretrained networks,
Q and its monitors. At the end it writes its section of ``experiments/RESULTS.md`` (tables, claims, plot).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import MissingMandatoryValue, ValidationError

from sr_iqa.ablation.plan import AblationOptions, ablation_from_config
from sr_iqa.config.loader import check_keys, raise_option_problems, read_yaml
from sr_iqa.errors import OptionsError

log = logging.getLogger("sr_iqa.experiment")
PRESETS_DIR = Path("options") / "experiment"


@dataclass
class ExperimentData:
    """The multi-GT set built by ``sr_iqa.data.demo_set`` (its fields), and the score cache the samplers read."""

    root: str = MISSING
    crop_size: int = 128  # training groups
    train_crops_per_photo: int = 6
    test_crop_size: int = 192  # held-out groups, from photos never trained on
    test_crops_per_photo: int = 6
    score_metric: str = "niqe"  # scored into <root>/scores.db: every GT, and the AMO grid below
    score_grid: str = "96:32"  # crop size:stride of the AMO grid (sr-iqa score --grid)


@dataclass
class ExperimentSettings:
    preset: str = MISSING  # the section of the results file this experiment writes
    data: ExperimentData = field(default_factory=ExperimentData)
    pretrained: list[str] = field(default_factory=list)  # installed first (sr-iqa weights install)
    q: str = "niqe"  # the Q the samplers and stage 2 use; the claims compare it
    monitors: list[str] = field(default_factory=lambda: ["piqe"])  # NR metrics never trained on (gaming gap)
    distortion: list[str] = field(default_factory=lambda: ["psnr", "ssim", "vgg_dist"])  # against the original
    results: str = "experiments/RESULTS.md"
    design: str = ""  # why the sizes are what they are, written into the results


@dataclass(frozen=True)
class Experiment:
    settings: ExperimentSettings
    ablation: AblationOptions
    source: Path


def load_experiment(path: Path) -> Experiment:
    user = read_yaml(path)
    problems = check_keys(user, _FileSchema, "", str(path))
    block = user.get("experiment")
    problems += check_keys(block, ExperimentSettings, "experiment.", str(path))
    problems += check_keys((block or {}).get("data"), ExperimentData, "experiment.data.", str(path))
    raise_option_problems(problems)
    if "ablation" not in user:
        raise OptionsError(f"{path}: required key 'ablation' is missing (the grid the experiment runs)")
    try:
        settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ExperimentSettings), block or {}))
    except MissingMandatoryValue as error:
        raise OptionsError(f"{path}: required key 'experiment.{error.full_key}' is missing") from None
    except ValidationError as error:
        raise OptionsError(f"{path}: 'experiment.{error.full_key}' has the wrong type: "
                           f"{str(error.msg).splitlines()[0]}") from None
    ablation = ablation_from_config(user.ablation, str(path), "ablation.")
    missing = [m for m in [settings.q, *settings.monitors, *settings.distortion] if m not in ablation.metrics]
    if missing:
        raise OptionsError(f"{path}: 'ablation.metrics' lacks {', '.join(missing)} (named in 'experiment'); add them")
    if ablation.dataset != settings.data.root:
        raise OptionsError(f"{path}: 'ablation.dataset' ({ablation.dataset}) is not 'experiment.data.root' "
                           f"({settings.data.root}); the held-out groups are the built set's test split")
    return Experiment(settings, ablation, path)


@dataclass
class _FileSchema:
    experiment: ExperimentSettings = field(default_factory=ExperimentSettings)
    ablation: dict = field(default_factory=dict)


def preset_file(preset: str) -> Path:
    path = PRESETS_DIR / f"{preset}.yml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS_DIR.glob("*.yml")) if PRESETS_DIR.is_dir() else []
        raise OptionsError(f"no preset '{preset}' at {path}" + (f"; presets: {', '.join(known)}" if known else
                                                                 "; run from the root of an sr_iqa clone"))
    return path


def data_overrides(settings: ExperimentSettings) -> list[str]:
    """The option overrides that point every training at the experiment's data set and score cache."""
    from sr_iqa.data.demo_set import DemoSetPaths
    from sr_iqa.demo import demo_data_overrides

    return demo_data_overrides(DemoSetPaths(Path(settings.data.root)))


def prepare_data(settings: ExperimentSettings) -> None:
    """Install the pretrained networks, build the multi-GT set and score it; each is reused when complete."""
    from sr_iqa.data.check import discover_splits
    from sr_iqa.data.demo_set import DemoSetSpec, build_demo_set
    from sr_iqa.iqa.scorer import Grid, gt_entries, run_scoring
    from sr_iqa.pretrained.install import install

    if settings.pretrained:
        install(settings.pretrained, say=log.info)
    data = settings.data
    paths = build_demo_set(Path(data.root), DemoSetSpec(
        crop_size=data.crop_size, train_crops_per_photo=data.train_crops_per_photo,
        test_crop_size=data.test_crop_size, test_crops_per_photo=data.test_crops_per_photo))
    size, _, stride = data.score_grid.partition(":")
    groups = [group for index in discover_splits(paths.root).values() for group in index.groups]
    run_scoring(gt_entries(groups), [data.score_metric], paths.root / "scores.db", Grid(int(size), int(stride)),
                batch_size=None, num_workers=2, device_name=None, weights_dir=None)


def run_experiment(path: Path, dry_run: bool = False) -> Path | None:
    """Prepare the data, run (or resume) the ablation, analyse it and write the results section; its path."""
    from dataclasses import replace

    from sr_iqa.ablation.findings import analyse
    from sr_iqa.ablation.results_page import write_results
    from sr_iqa.ablation.runner import execute

    experiment = load_experiment(path)
    started = time.time()
    if not dry_run:
        prepare_data(experiment.settings)
    ablation = replace(experiment.ablation,
                       overrides=[*data_overrides(experiment.settings), *experiment.ablation.overrides])
    command = f"sr-iqa experiment -opt {path}"
    finished = execute(ablation, command, dry_run)
    if finished is None:
        return None
    findings = analyse(finished.methods, experiment.settings, list(ablation.archs))
    return write_results(experiment, ablation, findings, finished.step_seconds, started)

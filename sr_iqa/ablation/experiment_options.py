"""An experiment file: an ablation (``ablation:``) plus what the experiment adds (``experiment:``), checked like
option files; see ``experiment`` for what runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from sr_iqa.ablation.plan import AblationOptions, ablation_from_config
from sr_iqa.config.loader import check_keys, raise_option_problems, read_yaml, typed
from sr_iqa.errors import OptionsError

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
    settings = typed(ExperimentSettings, block, str(path), "experiment.")
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

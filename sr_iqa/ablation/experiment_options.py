"""An experiment file: an ablation (``ablation:``) plus what the experiment adds (``experiment:``), checked like
option files; see ``experiment`` for what runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, DictConfig

from sr_iqa.ablation.plan import AblationOptions, ablation_from_config
from sr_iqa.ablation.power import PowerOptions
from sr_iqa.ablation.time_budget import TimeBudgetOptions
from sr_iqa.config.loader import check_keys, raise_option_problems, read_yaml, typed
from sr_iqa.data.demo_set import PHOTO_NUMBERS, TEST_PHOTOS, TRAIN_PHOTOS
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
    score_metric: str = "niqe"  # scored into <root>/scores.db: every GT, and the AMO grid below (evaluations add
    # the GT scores of their NR metrics there too: ablation.score_cache)
    score_grid: str = "96:32"  # crop size:stride of the AMO grid (sr-iqa score --grid)
    train_photos: list[str] = field(default_factory=lambda: list(TRAIN_PHOTOS))  # sr_iqa.data.demo_set's names
    test_photos: list[str] = field(default_factory=lambda: list(TEST_PHOTOS))  # held out, never trained on


@dataclass
class GateOptions:
    """The validity gate's rule (``validity_gate``), fixed before the first run: a group is kept when Q of its
    original lies in [q_min, q_max] and beats its bicubic x4's by at least ``margin``."""

    q_min: float = 0.0
    q_max: float = 12.0
    margin: float = 0.0
    min_headroom: float | None = None  # held-out groups: the best GT must beat the original by this much in Q


@dataclass
class ClaimOptions:
    """A claim declared before the runs: ``better`` above ``worse`` (method names without the arch: a sampler's
    name such as UPos, a stage-1 variant, AMO+FT) on ``measure`` ("Q", a monitor, "<metric> vs original")."""

    text: str = MISSING
    better: str = MISSING
    worse: str = MISSING
    measure: str = "Q"
    paper: str = "none"  # the paper's figures behind it, if any
    sampler_claim: bool = True  # a primary claim read only when the control passed


@dataclass
class ClaimsOptions:
    """The experiment's claims; without this block, the built-in ones (``claims.BUILT_IN``)."""

    control: ClaimOptions | None = None  # decided first, on its 95% interval against the minimum effect
    primary: list[ClaimOptions] = field(default_factory=list)  # one-sided paired t-tests, Holm over the family
    fine: list[ClaimOptions] = field(default_factory=list)  # differences printed without verdicts


@dataclass
class ExperimentSettings:
    preset: str = MISSING  # the section of the results file this experiment writes
    data: ExperimentData = field(default_factory=ExperimentData)
    pretrained: list[str] = field(default_factory=list)  # installed first (sr-iqa weights install)
    q: str = "niqe"  # the Q the samplers and stage 2 use; the claims compare it
    monitors: list[str] = field(default_factory=lambda: ["piqe"])  # NR metrics never trained on (gaming gap)
    distortion: list[str] = field(default_factory=lambda: ["psnr", "ssim", "vgg_dist"])  # against the original
    q_tiles: str = "96:96"  # Q everywhere (gate, evaluation): the mean over the size:stride tiles of an image
    gate: GateOptions = field(default_factory=GateOptions)
    # stage 2's lambda_Q from a gradient-norm probe (lambda_probe): the Q term's pull on the SR image as this share
    # of the fidelity terms'; null keeps the option files' train.iqa_opt.loss_weight
    stage2_q_share: float | None = None
    # the smallest difference a primary claim must exceed to be "reproduced", per measure ("Q", "noise per Q gain")
    min_effects: dict[str, float] = field(default_factory=lambda: {"Q": 0.1})
    # iteration counts set from a budget of seconds at rates measured before the first step (a GPU loan)
    time_budget: TimeBudgetOptions | None = None
    claims: ClaimsOptions | None = None  # declared before the runs; null: the built-in control and claims
    # a pilot of the control's two arms sets the number of seeds (needs claims.control); null: ablation.seeds
    power: PowerOptions | None = None
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
    problems += check_keys((block or {}).get("gate"), GateOptions, "experiment.gate.", str(path))
    problems += check_keys((block or {}).get("time_budget"), TimeBudgetOptions, "experiment.time_budget.", str(path))
    problems += _claim_key_problems((block or {}).get("claims"), str(path))
    problems += check_keys((block or {}).get("power"), PowerOptions, "experiment.power.", str(path))
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
    unknown = [p for p in [*settings.data.train_photos, *settings.data.test_photos] if p not in PHOTO_NUMBERS]
    if unknown:
        raise OptionsError(f"{path}: no photo named {', '.join(unknown)} in experiment.data; photos: "
                           f"{', '.join(PHOTO_NUMBERS)}")
    problems = _value_problems(settings, str(path)) + _claim_name_problems(settings, ablation, str(path))
    if problems:
        raise_option_problems(problems)
    shared = sorted(set(settings.data.train_photos) & set(settings.data.test_photos))
    if shared:
        raise OptionsError(f"{path}: experiment.data trains on the held-out photos {', '.join(shared)}; a photo "
                           "is in train_photos or in test_photos, not both")
    if ablation.score_cache is None:  # every evaluation shares the set's cache: its GTs are scored once
        from sr_iqa.data.demo_set import DemoSetPaths

        ablation.score_cache = str(DemoSetPaths(Path(settings.data.root)).score_cache)
    return Experiment(settings, ablation, path)


def _claim_key_problems(block: object, path: str) -> list[str]:
    if block is None:
        return []
    problems = check_keys(block, ClaimsOptions, "experiment.claims.", path)
    if isinstance(block.get("control"), DictConfig):
        problems += check_keys(block.control, ClaimOptions, "experiment.claims.control.", path)
    for family in ("primary", "fine"):
        for i, claim in enumerate(block.get(family) or []):
            problems += check_keys(claim, ClaimOptions, f"experiment.claims.{family}[{i}].", path)
    return problems


def _claim_name_problems(settings: ExperimentSettings, ablation: AblationOptions, path: str) -> list[str]:
    """Each declared claim compares methods this experiment runs, on a measure it takes."""
    from sr_iqa.ablation.claims import STAGE2_MEASURES
    from sr_iqa.ablation.plan import SAMPLER_NAMES

    if settings.claims is None:
        return []
    methods = {"Gold Standard"} | {SAMPLER_NAMES[s] for s in ablation.samplers if s in SAMPLER_NAMES}
    for arch in ablation.archs.values():
        methods |= set(arch.variants)
        for name, finetune in arch.finetunes.items():
            methods |= {f"{SAMPLER_NAMES.get(s, s)}+{name}" for s in (finetune.samplers or ablation.samplers)}
    measures = {"Q", *settings.monitors, *(f"{name} vs original" for name in settings.distortion), *STAGE2_MEASURES}
    claims = settings.claims
    named = [("control", claims.control)] if claims.control is not None else []
    named += [(f"primary[{i}]", c) for i, c in enumerate(claims.primary)]
    named += [(f"fine[{i}]", c) for i, c in enumerate(claims.fine)]
    problems = []
    for where, claim in named:
        unknown = [name for name in (claim.better, claim.worse) if name not in methods]
        if unknown:
            problems.append(f"{path}: 'experiment.claims.{where}' names {', '.join(unknown)}, which this experiment "
                            f"does not run; methods: {', '.join(sorted(methods))}")
        if claim.measure not in measures:
            problems.append(f"{path}: 'experiment.claims.{where}.measure' is '{claim.measure}'; measures: "
                            f"{', '.join(sorted(measures))}")
    return problems


def _value_problems(settings: ExperimentSettings, path: str) -> list[str]:
    """Values the key checks cannot see: grids, ranges, the budget."""
    from sr_iqa.iqa.scorer import Grid

    problems = []
    grids = {"experiment.q_tiles": settings.q_tiles, "experiment.data.score_grid": settings.data.score_grid}
    for key, text in grids.items():
        try:
            Grid.parse(text)
        except ValueError:
            problems.append(f"{path}: '{key}' is '{text}'; expected SIZE:STRIDE with positive integers, e.g. 96:96")
    if not settings.gate.q_min <= settings.gate.q_max:
        problems.append(f"{path}: 'experiment.gate.q_min' ({settings.gate.q_min}) is above 'q_max' "
                        f"({settings.gate.q_max}); no group could be kept")
    if settings.stage2_q_share is not None and not settings.stage2_q_share > 0:
        problems.append(f"{path}: 'experiment.stage2_q_share' must be above 0 (or null to keep the option files' "
                        f"lambda_Q), got {settings.stage2_q_share}")
    power = settings.power
    if power is not None:
        if settings.claims is None or settings.claims.control is None:
            problems.append(f"{path}: 'experiment.power' runs a pilot of the control's two arms: declare "
                            "'experiment.claims.control'")
        if not (power.effect > 0 and 0 < power.target < 1 and 2 <= len(power.pilot_seeds) <= power.min_seeds
                <= power.max_seeds):
            problems.append(f"{path}: 'experiment.power' needs effect > 0, 0 < target < 1 and 2 <= len(pilot_seeds) "
                            "<= min_seeds <= max_seeds")
    budget = settings.time_budget
    if budget is not None:
        if not budget.seconds > 0:
            problems.append(f"{path}: 'experiment.time_budget.seconds' must be above 0, got {budget.seconds}")
        if budget.probe_iterations < 1 or budget.min_iterations < 1:
            problems.append(f"{path}: 'experiment.time_budget.probe_iterations' and 'min_iterations' must be at "
                            "least 1")
        if not 0 < budget.stage2_fraction <= 1:
            problems.append(f"{path}: 'experiment.time_budget.stage2_fraction' must lie in (0, 1], got "
                            f"{budget.stage2_fraction}")
    return problems


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

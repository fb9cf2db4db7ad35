"""The ablation grid (archs x samplers x seeds, then optional stage 2) as a list of exact commands.

Every step is one ``accelerate launch -m sr_iqa ...`` command, so ``--dry-run`` can hand the same
commands to a cluster scheduler. A step knows the file that proves it finished; the runner skips
finished steps and reruns the others, which resume (``path.resume_state=auto``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, DictConfig

from sr_iqa.checked_options import load_options
from sr_iqa.config.loader import check_keys, raise_option_problems, read_yaml, typed  # the same strict checks
from sr_iqa.errors import OptionsError
from sr_iqa.models.lora import strength_row_name

REFERENCE_RUN = "reference_"  # run folders of the reference rows: reference_0, reference_1, ...
BICUBIC_REFERENCE = "bicubic"  # a reference row's "checkpoint" for bicubic interpolation (eval --bicubic)
SAMPLER_NAMES = {"original": "Original", "rand": "Rand", "upos": "UPos", "sma": "SMA", "smp": "SMP", "amo": "AMO"}


@dataclass
class FinetuneOptions:
    """One stage-2 variant: its option file (``{sampler}`` allowed), the samplers whose model it fine-tunes
    (default: all) and overrides that make it this variant (``lora.enabled=false`` for full fine-tuning)."""

    file: str = MISSING
    samplers: list[str] | None = None
    overrides: list[str] = field(default_factory=list)
    # LoRA variants: the adapter evaluated at each strength (eval --lora-strength), one row each, drawn as a curve
    # in the perception-distortion plot; empty: at 1, as trained
    lora_strengths: list[float] = field(default_factory=list)


@dataclass
class Stage1Variant:
    """A stage-1 run beside the samplers' runs: a sampler with overrides that make it this variant (the
    experiment's positive control: UPos on labels that agree with Q)."""

    sampler: str = MISSING
    overrides: list[str] = field(default_factory=list)


@dataclass
class ArchOptions:
    """Option files may contain ``{sampler}`` (one file per sampler, used as written); without it the file's
    ``sampler.type`` is overridden and its sampler block supplies metric / cache / tau."""

    stage1: str = MISSING  # stage-1 option file
    stage2: str | None = None  # stage-2 option file, or none
    stage2_samplers: list[str] | None = None  # the samplers whose model gets stage 2 (default: all)
    # More stage-2 variants of one stage-1 model, by name (the label's suffix: "RRDB UPos+FT_HP"); each its own run.
    finetunes: dict[str, FinetuneOptions] = field(default_factory=dict)
    # Stage-1 runs beside the samplers', by name (the label: "RRDB Control"); a finetune's ``samplers`` may name them.
    variants: dict[str, Stage1Variant] = field(default_factory=dict)


@dataclass
class LaunchOptions:
    num_processes: int = 1
    extra_args: list[str] = field(default_factory=list)  # e.g. [--multi_gpu] or [--num_machines, "2", ...]
    # Run every step inside the runner's process (one process only): no interpreter and library start-up per
    # step, which dominates a grid of many short CPU runs. The same commands are still what --dry-run prints.
    in_process: bool = False


@dataclass
class AblationOptions:
    name: str = MISSING
    experiments_root: str = "experiments"  # runs go to <experiments_root>/<name>/<run>
    dataset: str = MISSING  # the evaluation data set root (sr-iqa eval --dataset)
    archs: dict[str, ArchOptions] = field(default_factory=dict)
    samplers: list[str] = field(default_factory=lambda: ["upos", "amo"])
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)  # option overrides for every training run
    stage1_overrides: list[str] = field(default_factory=list)  # ... then these for stage 1
    stage2_overrides: list[str] = field(default_factory=list)  # ... and these for stage 2
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim", "lpips", "stlpips", "dists", "musiq",
                                                       "nima", "qalign", "topiq_nr"])
    # Label -> checkpoint evaluated once as a reference row (a file, a run folder, or pretrained:<name> such as
    # pretrained:realesrgan-x4plus); not trained, so not averaged over seeds.
    references: dict[str, str] = field(default_factory=dict)
    # Every evaluation reads the GTs' NR scores from this score cache and adds the ones it lacks (eval --cache), so
    # the GTs are scored once for all runs and seeds; null: each evaluation scores them itself.
    score_cache: str | None = None
    plot_metric: str = "musiq"  # the NR metric of the perception-distortion plot
    # A Markdown page (e.g. experiments/RESULTS.md) that gets this ablation's section: how it ran, ``design``, the
    # table with intervals and the plot (copied beside the page, under results/); null: ablation_table.md only
    results: str | None = None
    design: str | None = None  # the design, as fixed before the runs, printed in the section
    report_images: int = 4  # test images shown in the visual report
    launch: LaunchOptions = field(default_factory=LaunchOptions)


def load_ablation(path: Path) -> AblationOptions:
    return ablation_from_config(read_yaml(path), str(path))  # a missing file or bad YAML: one message


def ablation_from_config(user: DictConfig, path: str, prefix: str = "") -> AblationOptions:
    """Checked options from a parsed file (``prefix``: where the block sits in it, for the messages)."""
    problems = check_keys(user, AblationOptions, prefix, path)
    for arch, block in (user.get("archs") or {}).items():
        problems += check_keys(block, ArchOptions, f"{prefix}archs.{arch}.", path)
        for variant, finetune in ((block or {}).get("finetunes") or {}).items():
            problems += check_keys(finetune, FinetuneOptions, f"{prefix}archs.{arch}.finetunes.{variant}.", path)
        for variant, stage1 in ((block or {}).get("variants") or {}).items():
            problems += check_keys(stage1, Stage1Variant, f"{prefix}archs.{arch}.variants.{variant}.", path)
    raise_option_problems(problems)
    options = typed(AblationOptions, user, path, prefix)
    if not options.archs:
        raise OptionsError(f"{path}: '{prefix}archs' is empty; name at least one arch with its stage1 option file")
    return options


@dataclass(frozen=True)
class Step:
    """One command of the ablation and the file whose presence means it is done."""

    run: str
    kind: str  # "stage1", "stage2" or "eval"
    command: list[str]
    done_when: Path

    def shell(self) -> str:
        return shlex.join(self.command)


@dataclass(frozen=True)
class AblationRow:
    """One row of the ablation table before averaging over seeds."""

    label: str  # e.g. "RRDB AMO" or "RRDB AMO+FT"
    seed: int
    evaluation: Path  # the eval folder holding summary.json
    base: str | None = None  # a stage-2 row: the label of the stage-1 model it fine-tunes (same seed)


def _launch(options: AblationOptions, *arguments: str) -> list[str]:
    return ["accelerate", "launch", "--num_processes", str(options.launch.num_processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", *options.launch.extra_args, "-m", "sr_iqa",
            *arguments]


def _final_state(run: Path, total_iter: int) -> Path:
    return run / "training_states" / str(total_iter)


def _option_file(base: Path, pattern: str, sampler: str) -> tuple[Path, list[str]]:
    """The file for this sampler, and the override that sets the sampler when the file is shared."""
    if "{sampler}" in pattern:
        return base / pattern.format(sampler=sampler), []
    return base / pattern, [f"sampler.type={sampler}"]


def plan(options: AblationOptions, base: Path) -> tuple[list[Step], list[AblationRow]]:
    """All steps in order (stage 1, its eval, stage 2, its eval per grid point) and the table's methods.
    Option files are loaded here, so a typo in any of them stops the plan before anything runs."""
    root = Path(options.experiments_root) / options.name
    steps, methods = [], []
    for number, (label, checkpoint) in enumerate(options.references.items()):
        run = root / f"{REFERENCE_RUN}{number}"
        steps.append(_eval_step(options, run.name, label, checkpoint, None, run))
        methods.append(AblationRow(label, options.seeds[0], run / "eval"))
    for seed in options.seeds:  # seeds outermost: a grid stopped part way holds every arm at the same seeds
        for arch, files in options.archs.items():
            runs = [(sampler, sampler, SAMPLER_NAMES.get(sampler, sampler), []) for sampler in options.samplers]
            runs += [(variant.sampler, _slug(name), name, variant.overrides)
                     for name, variant in files.variants.items()]
            for sampler, key, name, variant_overrides in runs:
                run_name = f"{arch}_{key}_s{seed}"
                shared = [f"path.experiments_root={root}", "path.resume_state=auto", f"manual_seed={seed}",
                          *options.overrides, *variant_overrides]
                stage1_file, sampler_override = _option_file(base, files.stage1, sampler)
                stage1_overrides = [f"name={run_name}", *sampler_override, *shared, *options.stage1_overrides]
                stage1 = load_options(stage1_file, stage1_overrides)
                run = root / run_name
                label = f"{arch} {name}"
                steps.append(Step(run_name, "stage1", _launch(options, "train", "-opt", str(stage1_file),
                                                              *stage1_overrides),
                                  _final_state(run, stage1.train.total_iter)))
                steps.append(_eval_step(options, run_name, label, run, None))
                methods.append(AblationRow(label, seed, run / "eval"))
                for variant, finetune in _finetunes(files).items():
                    if finetune.samplers is not None and key not in finetune.samplers:
                        continue
                    stage2_steps, swept = _stage2_steps(options, base, finetune, sampler, run, shared, label, variant)
                    steps += stage2_steps
                    evaluation = root / f"{run_name}_{_slug(variant)}" / "eval"
                    methods += [AblationRow(row, seed, evaluation, base=label)
                                for row in _stage2_rows(f"{label}+{variant}", swept)]
    return steps, methods


def _finetunes(files: ArchOptions) -> dict[str, FinetuneOptions]:
    """The arch's stage-2 variants; ``stage2`` is the variant named FT."""
    variants = {} if files.stage2 is None else {"FT": FinetuneOptions(files.stage2, files.stage2_samplers)}
    return variants | files.finetunes


def _slug(variant: str) -> str:
    """A variant's run-folder suffix: FT -> ft, "full FT" -> full_ft."""
    return re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")


def _stage2_rows(label: str, strengths: list[float]) -> list[str]:
    return [strength_row_name(label, strength) for strength in strengths] if strengths else [label]


def _stage2_steps(options: AblationOptions, base: Path, finetune: FinetuneOptions, sampler: str, stage1_run: Path,
                  shared: list[str], base_label: str, variant: str) -> tuple[list[Step], list[float]]:
    """The stage-2 training of one variant on a stage-1 model, and the evaluation of its result (the adapter
    merged into the stage-1 model with LoRA, at each of ``lora_strengths``; the run's own generator without);
    and the strengths swept (none without an adapter)."""
    stage2_file, sampler_override = _option_file(base, finetune.file, sampler)
    ft_name = f"{stage1_run.name}_{_slug(variant)}"
    overrides = [f"name={ft_name}", *sampler_override, f"path.pretrain_network_g={stage1_run}", *shared,
                 *options.stage2_overrides, *finetune.overrides]
    stage2 = load_options(stage2_file, overrides)
    if stage2.network_d is not None:  # a variant that keeps the GAN term continues stage 1's discriminator
        overrides.insert(overrides.index(f"path.pretrain_network_g={stage1_run}") + 1,
                         f"path.pretrain_network_d={stage1_run}")
    ft_run = stage1_run.parent / ft_name
    stem = "lora_ema" if stage2.train.ema_decay > 0 else "lora"
    adapter = None
    if stage2.lora is not None and stage2.lora.enabled:
        adapter = ft_run / "models" / f"{stem}_{stage2.train.total_iter}.safetensors"
    strengths = list(finetune.lora_strengths) if adapter is not None else []
    return [Step(ft_name, "stage2", _launch(options, "train", "-opt", str(stage2_file), *overrides),
                 _final_state(ft_run, stage2.train.total_iter)),
            _eval_step(options, ft_name, f"{base_label}+{variant}", stage1_run if adapter is not None else ft_run,
                       adapter, ft_run, strengths)], strengths


def _eval_step(options: AblationOptions, run_name: str, label: str, checkpoint: Path | str, adapter: Path | None,
               run: Path | None = None, strengths: Sequence[float] = ()) -> Step:
    run = run or checkpoint
    adapter_arguments = ["--adapter", str(adapter)] if adapter is not None else []
    if strengths:
        adapter_arguments += ["--lora-strength", *(f"{strength:g}" for strength in strengths)]
    source = ["--bicubic", label] if str(checkpoint) == BICUBIC_REFERENCE else ["--checkpoint", str(checkpoint),
                                                                                "--name", label]
    arguments = ["eval", "--dataset", options.dataset, *source, *adapter_arguments,
                 "--metrics", *options.metrics, "--out", str(run / "eval"),
                 "--save-sr", str(run / "eval" / "sr"),
                 *(["--cache", options.score_cache] if options.score_cache is not None else [])]
    return Step(run_name, "eval", _launch(options, *arguments), run / "eval" / "summary.json")

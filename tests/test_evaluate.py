"""`sr-iqa eval`: FR against the Positive GTs, NR on SR, the Gold Standard, the output files."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyiqa
import pytest
import torch
from conftest import block_network, run_cli
from hggt_tree import VOTES, write_hggt_split

from sr_iqa.cli import main
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD, distance_to_gold, gold_standard
from sr_iqa.iqa.metrics import create_metric


def test_gold_standard_takes_the_best_gt_per_group_in_each_direction():
    # Two groups of three GTs; "q" is higher-better, "d" lower-better.
    groups = [
        [{"q": 1.0, "d": 5.0}, {"q": 3.0, "d": 2.0}, {"q": 2.0, "d": 4.0}],
        [{"q": 7.0, "d": 1.0}, {"q": 5.0, "d": 3.0}, {"q": math.nan, "d": 0.5}],  # a NaN GT is ignored
    ]
    gold = gold_standard(groups, {"q": False, "d": True})
    assert gold == {"q": pytest.approx((3.0 + 7.0) / 2), "d": pytest.approx((2.0 + 0.5) / 2)}
    distance = distance_to_gold({"q": 4.0, "d": 2.0}, gold, {"q": False, "d": True})
    assert distance == {"q": pytest.approx(1.0), "d": pytest.approx(0.75)}  # positive: worse than the best GT


@pytest.fixture
def mini_test_split(tmp_path: Path) -> Path:
    """An HGGT test split of 96-pixel noise images (NIQE needs 96 pixels) with fixed x4 LR images."""
    root = tmp_path / "hggt"
    images, labels = root / "Test" / "GT" / "Test-mini" / "images", root / "Test" / "GT" / "Test-mini" / "labels"
    write_hggt_split(images, labels, VOTES, size=96)
    lr = root / "Test" / "Blind_Degradation_Benchmark_LQ" / "Test-mini" / "Blind_LR"
    lr.mkdir(parents=True)
    from PIL import Image

    for original in (images / "original").glob("*.png"):
        with Image.open(original) as image:
            image.resize((24, 24), Image.BICUBIC).save(lr / original.name)
    return root


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_sr_dir_equal_to_the_originals(tmp_path: Path, mini_test_split: Path, capsys: pytest.CaptureFixture):
    originals = mini_test_split / "Test" / "GT" / "Test-mini" / "images" / "original"
    sr_dir = tmp_path / "sr"
    shutil.copytree(originals, sr_dir)
    out = tmp_path / "out"
    assert main(["eval", "--dataset", str(mini_test_split), "--sr-dir", f"copy={sr_dir}", "--metrics", "psnr", "niqe",
                 "--out", str(out)]) == 0
    rows = _read_csv(out / "per_image.csv")
    assert len(rows) == 3 and {row["method"] for row in rows} == {"copy"}
    niqe = create_metric("niqe")
    for row in rows:
        assert float(row["psnr_vs_original"]) == pytest.approx(80.0)  # pyiqa's cap: 10 log10(1 / 1e-8)
        expected = niqe(read_rgb_tensor(originals / f"{row['image']}.png")[None]).item()
        assert float(row["niqe"]) == pytest.approx(expected, rel=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["rows"]) == ["copy", GOLD_STANDARD]
    assert "psnr" not in summary["rows"][GOLD_STANDARD]  # FR metrics have no Gold Standard
    with (out / "summary.csv").open() as handle:
        assert next(csv.reader(handle)) == ["method", "psnr", "niqe"]  # named exactly as the pyiqa metrics
    assert (out / "summary.md").read_text().count("Gold Standard") >= 2
    assert "| copy |" in capsys.readouterr().out


def test_bicubic_gives_a_row_of_the_lr_upscaled_by_bicubic_interpolation(tmp_path: Path, mini_test_split: Path):
    out = tmp_path / "out"
    assert main(["eval", "--dataset", str(mini_test_split), "--bicubic", "--metrics", "psnr", "--out", str(out)]) == 0
    rows = _read_csv(out / "per_image.csv")
    assert {row["method"] for row in rows} == {"Bicubic"} and len(rows) == 3
    psnr = create_metric("psnr")
    split = mini_test_split / "Test"
    for row in rows:
        lr = read_rgb_tensor(split / "Blind_Degradation_Benchmark_LQ" / "Test-mini" / "Blind_LR" /
                             f"{row['image']}.png")
        upscaled = torch.nn.functional.interpolate(lr[None], scale_factor=4, mode="bicubic").clamp(0, 1)
        original = read_rgb_tensor(split / "GT" / "Test-mini" / "images" / "original" / f"{row['image']}.png")
        assert float(row["psnr_vs_original"]) == pytest.approx(psnr(upscaled, original[None]).item(), rel=1e-5)
    for blank in ("", "  "):  # was: no Bicubic row and no word
        result = run_cli("eval", "--dataset", str(mini_test_split), "--bicubic", blank, "--out", str(tmp_path / "b"))
        assert result.returncode == 2 and "--bicubic: a row name must be printable and not blank" in result.stderr
    assert not (tmp_path / "b").exists()


def test_fr_metrics_average_over_the_positive_gts_and_the_gold_standard_over_all_gts(tmp_path: Path,
                                                                                    mini_test_split: Path):
    images = mini_test_split / "Test" / "GT" / "Test-mini" / "images"
    sr_dir = tmp_path / "sr"
    shutil.copytree(images / "04", sr_dir)  # some other method's output: the 04 GTs, renamed
    for path in sr_dir.iterdir():
        path.rename(sr_dir / path.name.replace("_04", ""))
    out = tmp_path / "out"
    assert main(["eval", "--dataset", str(mini_test_split), "--sr-dir", str(sr_dir), "--metrics", "psnr", "niqe",
                 "--out", str(out)]) == 0
    psnr, niqe = pyiqa.create_metric("psnr", device="cpu"), create_metric("niqe")
    # Majority labels of 01..04 (tests/hggt_tree.py): img1 P P N S; img2 Similar Similar N P; img3 none Positive.
    positives = {"img1-0-0": ["01", "02"], "img2-0-0": ["04"], "img3-0-0": []}
    rows = {row["image"]: row for row in _read_csv(out / "per_image.csv")}
    for group, slots in positives.items():
        sr = read_rgb_tensor(sr_dir / f"{group}.png")[None]
        references = [images / slot / f"{group}_{slot}.png" for slot in slots] or [images / "original" / f"{group}.png"]
        expected = sum(psnr(sr, read_rgb_tensor(r)[None]).item() for r in references) / len(references)
        assert float(rows[group]["psnr"]) == pytest.approx(min(expected, 80.0), rel=1e-5)
        assert int(rows[group]["positive_gts"]) == len(slots)
    gold = json.loads((out / "summary.json").read_text())["rows"][GOLD_STANDARD]["niqe"]
    best = [min(niqe(read_rgb_tensor(path)[None]).item()
                for path in [images / "original" / f"{g}.png", *(images / s / f"{g}_{s}.png" for s in
                                                                  ("01", "02", "03", "04"))])
            for g in positives]
    assert gold == pytest.approx(sum(best) / len(best), rel=1e-5)


def test_checkpoint_and_missing_weights(tmp_path: Path, mini_test_split: Path,
                                                     capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    # MUSIQ's weights made absent here, whatever this machine has: an empty torch hub and no way out to the network.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for proxy in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sr_iqa.models.generators import build_generator
    from sr_iqa.models.weight_files import generator_metadata
    from sr_iqa.tensor_files import save_weights

    block = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4,
             "scale": 4}
    torch.manual_seed(1)
    save_weights(build_generator(block, 4), tmp_path / "g.safetensors", generator_metadata(block))
    out = tmp_path / "out"
    args = ["eval", "--dataset", str(mini_test_split), "--checkpoint", str(tmp_path / "g.safetensors"),
            "--name", "tiny", "--metrics", "psnr", "musiq", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "musiq" in summary["skipped"] and "musiq_koniq" in summary["skipped"]["musiq"]
    assert "musiq" not in summary["rows"]["tiny"] and math.isfinite(summary["rows"]["tiny"]["psnr"])
    assert main([*args, "--strict"]) == 2
    assert "musiq_koniq" in capsys.readouterr().err


def test_eval_without_metrics_computes_what_runs_offline_and_names_the_rest(
        tmp_path: Path, mini_test_split: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """Offline with an empty torch hub: PSNR, SSIM, NIQE and PIQE give the table and a Gold Standard row (it was
    dashes, exit 0), each of HGGT's metrics is named with the file it lacks, and nothing counts as skipped. A MUSIQ
    weight file (random weights under the released name) where --weights-dir points joins the defaults."""
    from pyiqa.archs.musiq_arch import MUSIQ

    block_network(monkeypatch, tmp_path / "torch")
    sr_dir = tmp_path / "sr"
    shutil.copytree(mini_test_split / "Test" / "GT" / "Test-mini" / "images" / "original", sr_dir)
    arguments = ["eval", "--dataset", str(mini_test_split), "--sr-dir", f"copy={sr_dir}"]
    with caplog.at_level(logging.INFO, logger="sr_iqa"):
        assert main([*arguments, "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {"psnr", "ssim", "niqe", "piqe"} <= set(summary["rows"]["copy"]) and not summary["skipped"]
    assert all(math.isfinite(summary["rows"][GOLD_STANDARD][name]) for name in ("niqe", "piqe"))
    left_out = next(record.getMessage() for record in caplog.records
                    if "left out of the defaults" in record.getMessage())
    assert "musiq (musiq_koniq_ckpt-e95806b9.pth in" in left_out
    assert all(f"{name} (" in left_out for name in ("lpips", "stlpips", "dists", "nima", "qalign", "topiq_nr"))
    assert "musiq" not in summary["rows"]["copy"]
    (tmp_path / "w").mkdir()
    torch.save(MUSIQ(pretrained=False, num_class=1).state_dict(), tmp_path / "w" / "musiq_koniq_ckpt-e95806b9.pth")
    assert main([*arguments, "--weights-dir", str(tmp_path / "w"), "--out", str(tmp_path / "out2")]) == 0
    rows = json.loads((tmp_path / "out2" / "summary.json").read_text())["rows"]
    assert math.isfinite(rows["copy"]["musiq"]) and math.isfinite(rows[GOLD_STANDARD]["musiq"])


@pytest.mark.skipif(importlib.util.find_spec("icecream") is not None, reason="needs a machine without icecream")
def test_a_metric_whose_package_is_missing_is_skipped_in_one_line(tmp_path: Path, mini_test_split: Path,
                                                                  capsys: pytest.CaptureFixture):
    """pyiqa's qalign imports `icecream` when built; here it is absent: one line says so, the rest runs."""
    sr_dir = tmp_path / "sr"
    shutil.copytree(mini_test_split / "Test" / "GT" / "Test-mini" / "images" / "original", sr_dir)
    out = tmp_path / "out"
    assert main(["eval", "--dataset", str(mini_test_split), "--sr-dir", f"copy={sr_dir}", "--metrics", "psnr",
                 "qalign", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "needs the Python package 'icecream'" in summary["skipped"]["qalign"]
    assert set(summary["rows"]["copy"]) == {"psnr"}
    assert main(["weights", "check", "qalign", "psnr"]) == 1
    printed = capsys.readouterr().out
    assert "qalign: cannot run here: metric 'qalign' needs the Python package 'icecream'" in printed
    assert "psnr: ready offline" in printed


def test_an_unreachable_hub_fails_at_once_without_retries(tmp_path: Path):
    """NIMA's backbone comes from the Hugging Face hub through timm; with the hub unreachable the metric is
    unavailable in one line, instead of after huggingface_hub's five retries per file."""
    code = ("from sr_iqa.iqa.metrics import create_metric\n"
            "from sr_iqa.errors import WeightsUnavailableError\n"
            "try:\n    create_metric('nima')\n"
            "except WeightsUnavailableError as error:\n    print('UNAVAILABLE', error)\n")
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
           "TORCH_HOME": str(tmp_path / "torch"), "http_proxy": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9"}
    env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert "UNAVAILABLE" in result.stdout, result.stderr[-2000:]
    assert "Retrying" not in result.stdout + result.stderr


def test_summary_json_comes_last_and_whole_and_leftovers_go(tmp_path: Path, mini_test_split: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    """summary.json proves to the ablation runner that an evaluation finished: an eval that dies while writing
    the other files leaves none, and a rerun clears the `.partial` files of one killed mid-write."""
    import sr_iqa.evaluate.run_eval as run_eval_module

    originals = mini_test_split / "Test" / "GT" / "Test-mini" / "images" / "original"
    out = tmp_path / "out"
    argv = ["eval", "--dataset", str(mini_test_split), "--sr-dir", f"copy={originals}", "--metrics", "psnr", "--out",
            str(out)]

    def dies(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as a kill between the tables and gt_scores.csv

    with monkeypatch.context() as patch:
        patch.setattr(run_eval_module, "write_gt_scores", dies)
        assert main(argv) == 130
    assert (out / "summary.csv").is_file() and not (out / "summary.json").exists()
    leftover = out / f".summary.json.{os.getpid() + 1}.partial"
    leftover.write_text('{"rows": {')  # a writer killed inside the write
    assert main(argv) == 0
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert rows["copy"]["psnr"] == pytest.approx(float(_read_csv(out / "summary.csv")[0]["psnr"]))
    assert (out / "gt_scores.csv").is_file() and not list(out.glob(".*.partial"))


def test_eval_reads_the_gt_scores_the_cache_holds_and_adds_the_others(tmp_path: Path, mini_test_split: Path,
                                                                      monkeypatch: pytest.MonkeyPatch, capsys):
    """`score` put NIQE of every GT in the cache; eval scores the GTs with PIQE only (and adds those), the next
    eval scores no GT at all; the Gold Standard's inputs equal an eval without the cache."""
    from sr_iqa.evaluate.metric_set import MetricSet
    from sr_iqa.iqa.score_cache import ScoreCache

    cache = tmp_path / "scores.db"
    assert main(["score", "--dataset", str(mini_test_split), "--metric", "niqe", "--cache", str(cache),
                 "--num-workers", "0"]) == 0
    originals = mini_test_split / "Test" / "GT" / "Test-mini" / "images" / "original"
    gt_calls: list[tuple[str, ...]] = []  # metrics scored on a group's GTs (a batch of all its GTs, no references)
    real_score_batch = MetricSet.score_batch

    def counting(self, images, references, name="image", with_no_reference=True, only=None):
        if references is None and len(images) > 1:
            gt_calls.append(tuple(only if only is not None else self.names))
        return real_score_batch(self, images, references, name, with_no_reference, only)

    monkeypatch.setattr(MetricSet, "score_batch", counting)
    arguments = ["eval", "--dataset", str(mini_test_split), "--sr-dir", f"copy={originals}", "--metrics", "psnr",
                 "niqe", "piqe"]
    assert main([*arguments, "--out", str(tmp_path / "plain")]) == 0
    assert gt_calls == [("niqe", "piqe")] * 3
    gt_calls.clear()
    capsys.readouterr()
    assert main([*arguments, "--cache", str(cache), "--out", str(tmp_path / "first")]) == 0
    assert gt_calls == [("piqe",)] * 3  # NIQE came from the cache
    said = capsys.readouterr().err
    gts = len(_read_csv(tmp_path / "plain" / "gt_scores.csv"))  # one row per GT
    assert f"GT scores: {gts} of {2 * gts} from {cache}, {gts} scored here ({gts} written to it)" in said
    reader = ScoreCache(cache, read_only=True)
    assert set(reader.metrics()) == {"niqe", "piqe"}
    gt_calls.clear()
    assert main([*arguments, "--cache", str(cache), "--out", str(tmp_path / "second")]) == 0
    assert gt_calls == []
    plain, first, second = (_read_csv(tmp_path / run / "gt_scores.csv") for run in ("plain", "first", "second"))
    for row_plain, row_first, row_second in zip(plain, first, second, strict=True):
        for metric in ("niqe", "piqe"):
            assert float(row_first[metric]) == pytest.approx(float(row_plain[metric]), rel=1e-5)
            assert row_second[metric] == row_first[metric]


def test_a_second_evaluation_into_the_same_out_stops_naming_the_first(tmp_path: Path, mini_test_split: Path,
                                                                      capsys: pytest.CaptureFixture):
    """One writer per --out: a live evaluation (here a process holding its lock) makes a second one stop before it
    scores anything, with the holder's pid; once the holder is gone the same command runs."""
    import signal

    from sr_iqa.writer_lock import run_lock_file

    originals = mini_test_split / "Test" / "GT" / "Test-mini" / "images" / "original"
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from pathlib import Path; from sr_iqa import writer_lock\n"
        f"writer_lock.acquire(Path('{run_lock_file(out)}'), 'out', 'evaluation'); print('held', flush=True); "
        "time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    arguments = ["eval", "--dataset", str(mini_test_split), "--sr-dir", f"copy={originals}", "--metrics", "psnr",
                 "--out", str(out)]
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(arguments) == 2
        error = capsys.readouterr().err
        assert f"{out.resolve()} is being written by another evaluation (pid {holder.pid} on" in error
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(arguments) == 0 and (out / "summary.json").is_file()

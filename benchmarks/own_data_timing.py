"""How long each step of docs/your-own-data.md takes on the demo's photos, measured as a user runs them (a fresh
process each): photos -> `data build` (the default enhancers, Real-ESRGAN x4plus among them) -> `label auto` ->
`data check` -> `agree` -> `score` (the crop grid cached AMO reads) -> a short `train`. The annotators' time on the
page is theirs; `--screenshot FILE` saves the page as docs/images shows it (Playwright, Debian's chromium).

    .venv/bin/python benchmarks/own_data_timing.py [--work DIR] [--screenshot docs/images/label_page.png]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from demo_timing import print_times, timed

from sr_iqa.data.demo_set import TEST_PHOTOS, TRAIN_PHOTOS, load_photo
from sr_iqa.data.image_io import write_rgb

REPO = Path(__file__).resolve().parents[1]


def photo_folders(work: Path) -> tuple[Path, Path]:
    """The demo's training photos and its held-out photos, as a user's two folders of PNG files."""
    folders = (work / "photos", work / "held_out_photos")
    for folder, names in zip(folders, (TRAIN_PHOTOS, TEST_PHOTOS), strict=True):
        folder.mkdir(parents=True)
        for name in names:
            write_rgb(folder / f"{name}.png", load_photo(name))
    return folders


def steps(work: Path, photos: Path, held_out: Path) -> list[tuple[str, list[str]]]:
    root, cache = work / "mine", work / "mine" / "scores.db"
    sr_iqa = [sys.executable, "-m", "sr_iqa"]
    held_out_set = root / "Test" / "GT" / "held-out"
    train = [f"datasets.train.dataroot_gt={root}/Train/images/own", f"datasets.train.dataroot_label={root}/Train/"
             "labels/own", f"datasets.val.dataroot_gt={held_out_set}/images", f"datasets.val.dataroot_label="
             f"{held_out_set}/labels", "datasets.val.dataroot_lq=null", f"sampler.cache={cache}",
             f"path.experiments_root={work}/runs", "train.total_iter=40"]
    return [
        ("`weights install realesrgan-x4plus`", sr_iqa + ["weights", "install", "realesrgan-x4plus", "vgg19-caffe"]),
        ("`data build`, training photos (256-px patches)",
         sr_iqa + ["data", "build", "--photos", str(photos), "--out", str(root), "--patch-size", "256"]),
        ("`data build`, held-out photos", sr_iqa + ["data", "build", "--photos", str(held_out), "--out", str(root),
                                                    "--patch-size", "256", "--set", "held-out", "--held-out"]),
        ("`label auto --metric niqe --margin 0.5`", sr_iqa + ["label", "auto", str(root), "--metric", "niqe",
                                                              "--margin", "0.5", "--cache", str(cache)]),
        ("`data check`", sr_iqa + ["data", "check", str(root)]),
        ("`agree`", sr_iqa + ["agree", "--dataset", str(root), "--cache", str(cache)]),
        ("`score --grid 96:32` (cached AMO's crops)", sr_iqa + ["score", "--dataset", str(root), "--metric", "niqe",
                                                                "--grid", "96:32", "--cache", str(cache)]),
        ("`train`, the demo's stage 1 for 40 iterations", sr_iqa + ["train", "-opt",
                                                                     "options/demo/train_rrdb_demo.yml", *train]),
    ]


def screenshot(root: Path, out: Path) -> None:
    """The page of annotator A on the set, one group labelled, zoomed in once."""
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen([sys.executable, "-m", "sr_iqa", "label", "serve", str(root), "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = re.search(r"localhost:(\d+)/", server.stdout.readline()).group(1)
        with sync_playwright() as playwright:
            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1200, "height": 680})
            page.goto(f"http://127.0.0.1:{port}/?annotator=A")
            page.wait_for_function("document.getElementById('original-image').style.transform !== ''")
            for key in ("p", "s", "n"):
                page.keyboard.press(key)
            page.keyboard.press("+")
            page.wait_for_timeout(300)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/sr_iqa_own_data"))
    parser.add_argument("--screenshot", type=Path, help="save the labelling page here")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    photos, held_out = photo_folders(args.work)
    rows = []
    for what, command in steps(args.work, photos, held_out):
        seconds, load = timed(command, REPO)
        rows.append((what, f"{seconds:.0f} s (load {load:.1f})"))
    if args.screenshot is not None:
        screenshot(args.work / "mine", args.screenshot)
    print_times(rows, "benchmarks/own_data_timing.py")


if __name__ == "__main__":
    main()

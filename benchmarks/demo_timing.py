"""How long a new user waits, measured: `make demo`'s `sr-iqa demo` from nothing but the installed networks (a
fresh data set and run folders), then the same command again (the saved table), the venv's size on disk and,
with --install, a fresh venv's install time. Prints the README's timing table with the machine and its load
average beside each figure (a loaded machine is slower: the table says what it was measured under).

    .venv/bin/python benchmarks/demo_timing.py [--work /tmp/sr_iqa_demo_timing] [--install]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from measurement import machine_description, today

REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, the 1-minute load average when it ended) of a command that must succeed."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, os.getloadavg()[0]


def folder_gib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink()) / 2**30


def demo_rows(work: Path) -> list[tuple[str, str]]:
    """The demo twice in ``work``: the first trains and evaluates, the second prints the saved table."""
    demo = [sys.executable, "-m", "sr_iqa", "demo", "--dataset-root", str(work / "demo_set"),
            f"path.experiments_root={work / 'runs'}"]
    rows = []
    for what in ("`make demo`, first run (data set, stage 1, both stage-2 runs, evaluation)",
                 "`make demo` again (nothing changed: the saved table)"):
        seconds, load = timed(demo, REPO)
        rows.append((what, f"{seconds:.0f} s (load {load:.1f})"))
    return rows


def install_row(work: Path) -> tuple[str, str]:
    """A fresh venv with `pip install -e .` as the Makefile does (torch from pip's cache or the index)."""
    venv = work / "venv"
    seconds, load = timed([sys.executable, "-m", "venv", str(venv)], REPO)
    more, load = timed([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(REPO)], REPO)
    size = folder_gib(venv)
    return "install (`make demo`'s venv, fresh)", f"{seconds + more:.0f} s (load {load:.1f}), {size:.1f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/sr_iqa_demo_timing"))
    parser.add_argument("--install", action="store_true", help="also time a fresh venv's install")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows = [install_row(args.work)] if args.install else []
    rows.append(("this venv on disk", f"{folder_gib(Path(sys.prefix)):.1f} GiB ({sys.prefix})"))
    rows += demo_rows(args.work)
    print_times(rows, "benchmarks/demo_timing.py")


def print_times(rows: list[tuple[str, str]], script: str) -> None:
    """The rows as the Markdown table the docs quote, under the line that says where and when they were measured."""
    print(f"Measured by `{script}` on {today()}: {machine_description()}\n")
    print("| Step | Time |\n|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")


if __name__ == "__main__":
    main()

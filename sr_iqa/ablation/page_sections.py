"""What every section of a results page (``experiments/RESULTS.md``) says about how it was made: the machine, the
versions, the time of its steps; and the section's own place in the page, between markers naming it, so that a
rerun replaces its section and leaves the others (and the authors' reading outside the markers) as they are."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from sr_iqa.atomic_files import write_text_atomically

PACKAGES = ("sr_iqa", "torch", "basicsr", "pyiqa", "peft", "accelerate")
HEADER = """# Experiments: the paper's orderings measured with sr_iqa

Each section between `<!-- begin ... -->` and `<!-- end ... -->` is written by `sr-iqa experiment` or by
`sr-iqa ablate` with `results:` set (a rerun replaces it); the text outside the markers is the authors' reading.
"""


def replace_section(path: Path, name: str, section: str) -> None:
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = path.read_text() if path.is_file() else HEADER
    block = f"{begin}\n{section.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + f"\n\n{block}\n"
    write_text_atomically(path, text)


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    gpu = f"; GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "; no GPU"
    return f"{cpu}, {os.cpu_count()} cores{gpu}; {platform.system()} {platform.release()}"


def versions_line() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        found.append(f"commit {commit}")
    except (OSError, subprocess.SubprocessError):
        pass
    return f"Python {platform.python_version()}, " + ", ".join(found)


def overrides_code(overrides: list[str]) -> str:
    return f"`{' '.join(overrides)}`" if overrides else "none"


def step_minutes(step_seconds: dict[str, float], kind: str) -> float:
    return sum(seconds for key, seconds in step_seconds.items() if key.endswith(f" {kind}")) / 60



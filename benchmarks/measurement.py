"""What every benchmark returns: one row of RESULTS.md, a ratio measured side by side in one run, and
the target it is held to on the machine kind it applies to."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import date
from importlib.metadata import version
from pathlib import Path

import torch

from sr_iqa.data.demo_set import DemoSetPaths


@dataclass(frozen=True)
class Target:
    machine: str  # "cpu" or "gpu": where the target applies
    at_least: float | None = None
    at_most: float | None = None

    def met(self, ratio: float) -> bool:
        return (self.at_least is None or ratio >= self.at_least) and (self.at_most is None or ratio <= self.at_most)

    def __str__(self) -> str:
        return f"at least {self.at_least:g}x" if self.at_least is not None else f"at most {self.at_most:g}x"


@dataclass(frozen=True)
class Measurement:
    what: str
    baseline: str  # what it is compared with, and its figure
    ours: str
    ratio: float  # read as the target reads it (speed-up, or time relative to the baseline)
    target: Target | None = None  # None: reported, not held to a number
    settings: str = ""

    def verdict(self, machine: str) -> str:
        if self.target is None:
            return "(no target)"
        if self.target.machine != machine:
            return f"{self.target} on {self.target.machine.upper()} (not this machine)"
        return f"{self.target}: {'met' if self.target.met(self.ratio) else 'MISSED'}"


def machine_kind() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def machine_description() -> str:
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    text = f"{os.cpu_count()} CPUs ({cpu}), {memory:.0f} GiB, {platform.system()}"
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        text = f"{properties.name} ({properties.total_memory / 2**30:.0f} GiB), " + text
    else:
        text += ", no GPU"
    return text


def versions() -> str:
    packages = ("torch", "basicsr", "pyiqa", "accelerate", "peft")
    return f"Python {platform.python_version()}, " + ", ".join(f"{name} {version(name)}" for name in packages)


def today() -> str:
    return date.today().isoformat()


def print_rows(rows: list[Measurement]) -> None:
    for row in rows:
        print(f"{row.what}: {row.baseline}; {row.ours}; ratio {row.ratio:.2f}x ({row.target or 'no target'})")


def benchmark_demo_set() -> DemoSetPaths:
    """The demo set the CPU benchmarks read: 42 groups of 128x128 (210 GTs), the same for every benchmark and
    independent of the demo's own sizes (its held-out images are larger)."""
    import tempfile

    from sr_iqa.data.demo_set import DemoSetSpec, build_demo_set

    spec = DemoSetSpec(crop_size=128, train_crops_per_photo=6, test_crops_per_photo=4, test_crop_size=128)
    return build_demo_set(Path(tempfile.gettempdir()) / "sr_iqa_bench_demo", spec)

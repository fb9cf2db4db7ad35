"""The GPU kit, proven here before any GPU time is spent: the wheelhouse holds pure-Python wheels of what the
GPU image lacks, installs without an index into a stand-in of that image (torch and the rest taken from this
environment, nothing else visible), and the user path of gpu_check.sh (demo set, scores, stage 1 with cached
AMO, a LoRA stage, eval of both, through `accelerate launch`) runs there on the CPU."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.package_index  # builds its wheelhouse with pip download; deselect offline

sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_image import build_image_env  # noqa: E402
from wheelhouse import LIMIT_MIB, MISSING_FROM_IMAGE, build  # noqa: E402


def _offline_env(**extra: str) -> dict[str, str]:
    """This environment without any pip configuration (this machine's points at local indexes and wheel folders,
    in files and PIP_* variables) and without an index: only the wheelhouse can serve pip."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PIP_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", **extra}


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory, pretrained_wheels: list[Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gpu_kit")
    build(root / "wheelhouse", given=pretrained_wheels)
    return {"root": root, "wheelhouse": root / "wheelhouse", "python": build_image_env(root / "image")}


def _distribution(wheel: Path) -> str:
    return wheel.name.split("-")[0].replace("_", "-").lower()


def test_the_wheelhouse_holds_one_pure_wheel_per_missing_package_within_the_limit(kit):
    wheels = sorted(kit["wheelhouse"].glob("*.whl"))
    assert sorted(map(_distribution, wheels)) == sorted(MISSING_FROM_IMAGE)
    assert all(wheel.name.endswith("-none-any.whl") and "-py3" in wheel.name for wheel in wheels)
    weights = sorted((kit["wheelhouse"] / "weights").glob("*.whl"))  # the gpu preset's slim weight wheels
    assert len(weights) == 3
    assert sum(wheel.stat().st_size for wheel in [*wheels, *weights]) < LIMIT_MIB * 2**20
    manifest = (kit["wheelhouse"] / "MANIFEST.txt").read_text().splitlines()
    listed = {line.split()[0]: line.split()[2] for line in manifest if not line.startswith("#")}
    assert listed == {wheel.relative_to(kit["wheelhouse"]).as_posix():
                      "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest() for wheel in [*wheels, *weights]}


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=_offline_env())


def test_the_image_stand_in_has_torch_but_not_what_the_wheelhouse_brings(kit):
    probe = ("import importlib.util as u, json; "
             "print(json.dumps({m: u.find_spec(m) is not None for m in "
             "['torch', 'torchvision', 'accelerate', 'peft', 'basicsr', 'pyiqa', 'omegaconf', 'lpips', 'sr_iqa']}))")
    found = json.loads(_run(kit["python"], "-c", probe, cwd=kit["root"]).stdout)
    assert found == {"torch": True, "torchvision": True, "accelerate": True, "peft": True, "basicsr": False,
                     "pyiqa": False, "omegaconf": False, "lpips": False, "sr_iqa": False}


def test_installed_offline_into_the_image_stand_in_the_user_path_runs(kit):
    site = kit["root"] / "site"
    install = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_install.sh"), str(kit["wheelhouse"]), str(site)],
                             capture_output=True, text=True, timeout=600, env=_offline_env(PY=str(kit["python"])))
    assert install.returncode == 0, install.stderr[-3000:]
    assert f"import from {site}" in install.stdout
    # The README's commands in the stand-in: 4 stage-1 and 2 stage-2 iterations are enough to pass every file
    # check of the script (checkpoints, adapter, validation record, both eval summaries).
    work = kit["root"] / "user_path"
    small = "--crop-size 96 --train-crops-per-photo 2 --test-crop-size 96 --test-crops-per-photo 1"
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_user_path.sh"), str(work), "4", "2"],
                            capture_output=True, text=True, timeout=900,
                            env=_offline_env(PY=str(kit["python"]), PYTHONPATH=str(site), DEMO_ARGS=small))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "== " in result.stdout and result.stdout.rstrip().endswith("done")
    for stage, name in (("stage1", "AMO (stage 1)"), ("stage2", "AMO + LoRA FT")):
        rows = json.loads((work / f"eval_{stage}" / "summary.json").read_text())["rows"]
        assert set(rows) == {name, "Gold Standard"}
        assert set(rows[name]) == {"psnr", "ssim", "niqe", "piqe"}
        assert all(math.isfinite(value) for value in rows[name].values())

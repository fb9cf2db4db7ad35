"""Write the wheelhouse: the wheels of every package sr_iqa needs that the GPU machine's image lacks.

The lent GPU machines have no network. Their image holds torch, torchvision, accelerate, peft, timm,
scikit-image and the rest of ``gpu_image.IMAGE_PACKAGES``, but not basicsr, pyiqa, omegaconf or lpips;
those travel with the working tree as wheels, and ``gpu_install.sh`` installs them there with
``pip install --no-index --no-deps``. Each wheel is the version installed in the environment that runs
this script (the one the tests ran with), pure Python (``py3-none-any``, so it installs on the image's
Python 3.12 as on 3.11 here), built from the sdist where the index has no wheel (basicsr). A recent
setuptools comes along as the build backend of sr_iqa's own offline install.

No weight file is needed by the GPU check: its benchmarks initialise VGG19 and MUSIQ at random
(the step costs the same), and NIQE's parameters ship inside pyiqa. ``MANIFEST.txt`` says so.

    python benchmarks/wheelhouse.py [--out wheelhouse]      (make wheelhouse)
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Distribution name -> why sr_iqa needs it on the image. Found by installing sr_iqa into a copy of the image
# (gpu_image.py) and running the suite there: nothing else is imported on any path the GPU check runs.
MISSING_FROM_IMAGE = {
    "basicsr": "generators, discriminator, losses, degradations",
    "pyiqa": "every IQA metric",
    "omegaconf": "option files and overrides (2.4 carries its own antlr4 runtime)",
    "lpips": "the LPIPS perceptual loss",
    "setuptools": "build backend for installing sr_iqa itself without network",
}
# Any setuptools new enough to build a wheel without the `wheel` package (70.1), whatever this environment has.
BUILD_BACKEND = "setuptools>=70.1"
LIMIT_MIB = 60  # what travels with the working tree is 64 MiB in all
PURE_TAGS = ("-py3-none-any.whl", "-py2.py3-none-any.whl")


def build(out: Path) -> list[Path]:
    """pip wheel each pinned distribution into ``out`` (a downloaded wheel, else one built from the sdist with
    this environment's setuptools: basicsr's sdist asks for torch as a build requirement, which an isolated
    build would download), then check that every wheel is pure and that all fit the limit."""
    out.mkdir(parents=True, exist_ok=True)
    pins = [BUILD_BACKEND if name == "setuptools" else f"{name}=={version(name)}" for name in MISSING_FROM_IMAGE]
    for stale in out.glob("*.whl"):
        stale.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), *pins], check=True)
    wheels = sorted(out.glob("*.whl"))
    impure = [wheel.name for wheel in wheels if not wheel.name.endswith(PURE_TAGS)]
    if impure:
        raise SystemExit(f"wheelhouse: not pure-Python, would not install on the image's Python: {impure}")
    if len(wheels) != len(pins):
        raise SystemExit(f"wheelhouse: expected {len(pins)} wheels for {pins}, found {[w.name for w in wheels]}")
    total = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    if total > LIMIT_MIB:
        raise SystemExit(f"wheelhouse: {total:.1f} MiB of wheels, over the {LIMIT_MIB} MiB limit")
    _write_manifest(out, wheels, total)
    return wheels


def _write_manifest(out: Path, wheels: list[Path], total_mib: float) -> None:
    lines = [f"# sr_iqa wheelhouse for the GPU image: {len(wheels)} wheels, {total_mib:.1f} MiB",
             "# install: bash benchmarks/gpu_install.sh (pip install --no-index --no-deps)",
             "# weights: none needed by benchmarks/gpu_check.sh (VGG19 and MUSIQ random-initialised, NIQE ships "
             "with pyiqa)"]
    for wheel in wheels:
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{wheel.name}  {wheel.stat().st_size}  sha256:{digest}")
    (out / "MANIFEST.txt").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "wheelhouse")
    args = parser.parse_args()
    wheels = build(args.out)
    print((args.out / "MANIFEST.txt").read_text(), end="")
    print(f"wrote {len(wheels)} wheels to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

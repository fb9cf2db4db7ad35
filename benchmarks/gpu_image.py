"""A stand-in for the GPU machine's Python, built here: a fresh virtual environment that sees only the
packages the GPU image has, taken from an existing environment (torch included, as "the system's").

The lent GPU machines run an image whose Python packages are listed below (read off such a machine on
2026-11-17, the device tool's KINDS.md). A test installs the wheelhouse into this stand-in exactly as
``gpu_check.sh`` does on the machine, so that a wheel missing from the wheelhouse shows up here, before any
GPU time is spent. Each image package (and what it depends on here) is linked into one folder that a
``.pth`` file puts on the new environment's path; everything else of the source environment stays invisible.

    python benchmarks/gpu_image.py DEST    (prints DEST's python)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
from importlib.metadata import Distribution, distributions
from pathlib import Path

from packaging.requirements import Requirement

# As printed there (pip list names), one string: the list is long and changes only with the image.
_IMAGE_PACKAGE_NAMES = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
"""
IMAGE_PACKAGES = tuple(_IMAGE_PACKAGE_NAMES.split())


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_distributions(site: Path) -> list[Distribution]:
    """The image's packages as installed in ``site``, with everything they require here (a package's
    dependencies can have other names in other versions; the image has whatever its own versions need)."""
    installed = {_normalized(dist.metadata["Name"]): dist for dist in distributions(path=[str(site)])}
    wanted, seen = [name for name in map(_normalized, IMAGE_PACKAGES) if name in installed], set()
    while wanted:
        name = wanted.pop()
        if name in seen or name not in installed:
            continue
        seen.add(name)
        for text in installed[name].requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(_normalized(requirement.name))
    return [installed[name] for name in sorted(seen)]


def build_image_env(dest: Path) -> Path:
    """Create ``dest`` (a venv) that imports the image's packages from this environment and nothing else."""
    site = Path(sysconfig.get_paths()["purelib"])
    packages = dest / "image-site-packages"
    packages.mkdir(parents=True)
    for top in sorted({Path(str(file)).parts[0] for dist in image_distributions(site) for file in dist.files or []}):
        if top != ".." and (site / top).exists():
            os.symlink(site / top, packages / top)
    base_python = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base_python), "-m", "venv", "--without-pip", str(dest / "venv")], check=True)
    python = dest / "venv" / "bin" / "python"
    venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    (Path(venv_site) / "gpu_image.pth").write_text(f"{packages}\n")
    return python


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    print(build_image_env(parser.parse_args().dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())

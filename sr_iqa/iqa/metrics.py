"""pyiqa metrics, created so that they work offline where an offline form exists.

NIQE needs the pristine-model parameters. pyiqa would download them; basicsr ships the
same parameters (``basicsr/metrics/niqe_pris_params.npz``), so we convert those once into
the ``.mat`` that pyiqa's NIQE reads through ``pretrained_model_path``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pyiqa
import scipy.io
import torch

from sr_iqa.errors import WeightsUnavailableError

NIQE_METRICS = ("niqe",)


def cache_dir() -> Path:
    """``$SR_IQA_CACHE``, else ``$XDG_CACHE_HOME/sr_iqa``, else ``~/.cache/sr_iqa``."""
    if "SR_IQA_CACHE" in os.environ:
        return Path(os.environ["SR_IQA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sr_iqa"


def niqe_parameters_from_basicsr() -> Path:
    """Path of a pyiqa-readable NIQE parameter file converted from the one basicsr ships."""
    target = cache_dir() / "niqe_pris_params_basicsr.mat"
    if target.is_file():
        return target
    spec = importlib.util.find_spec("basicsr")
    source = Path(spec.origin).parent / "metrics" / "niqe_pris_params.npz"
    params = np.load(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    scipy.io.savemat(partial, {"mu_prisparam": params["mu_pris_param"], "cov_prisparam": params["cov_pris_param"]})
    partial.replace(target)
    return target


def create_metric(name: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A pyiqa inference metric; ``metric.lower_better`` tells its direction."""
    kwargs = {}
    if name in NIQE_METRICS:
        kwargs["pretrained_model_path"] = str(niqe_parameters_from_basicsr())
    try:
        return pyiqa.create_metric(name, device=torch.device(device), **kwargs)
    except (URLError, ConnectionError, TimeoutError) as error:
        hub = Path(torch.hub.get_dir()) / "pyiqa"
        raise WeightsUnavailableError(
            f"metric '{name}': its weights are not on disk and cannot be downloaded ({error}); "
            f"copy them into {hub} and run again"
        ) from None

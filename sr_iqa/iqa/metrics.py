"""pyiqa metrics, created so that they work offline where an offline form exists.

NIQE needs the pristine-model parameters. pyiqa would download them; basicsr ships the
same parameters (``basicsr/metrics/niqe_pris_params.npz``), so we convert those once into
the ``.mat`` that pyiqa's NIQE reads through ``pretrained_model_path``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyiqa
import scipy.io
import torch

from sr_iqa.basicsr_metric_names import HGGT_NAMES, basicsr_setting
from sr_iqa.config.suggest import did_you_mean
from sr_iqa.errors import MetricUnavailableError, OptionsError, WeightsUnavailableError
from sr_iqa.iqa.hggt_metrics import create_basicsr_metric
from sr_iqa.iqa.weights import weight_lookup
from sr_iqa.user_cache import cache_dir

NIQE_METRICS = ("niqe",)


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


def _metric_kwargs(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    kwargs = dict(options or {})
    if name in NIQE_METRICS and "pretrained_model_path" not in kwargs:
        kwargs["pretrained_model_path"] = str(niqe_parameters_from_basicsr())
    return kwargs


VGG_DISTANCE = "vgg_dist"  # sr_iqa's own: HGGT's perceptual loss as a distance, with the installed Caffe VGG19
BRISQUE_PACKAGE = "brisque_pkg"  # the brisque package's BRISQUE (its SVR, installed), in torch: a judge
# sr_iqa's own metrics and the pretrained network each needs installed (``sr-iqa weights install <network>``).
INSTALLED_NETWORK_METRICS = {VGG_DISTANCE: "vgg19-caffe", BRISQUE_PACKAGE: "brisque-svr"}
LOCAL_METRICS = (*HGGT_NAMES, *INSTALLED_NETWORK_METRICS)  # and bsr_<psnr|ssim>_<rgb|y>_crop<N>


def _installed_network_metric(name: str, device: torch.device | str) -> torch.nn.Module:
    if name == VGG_DISTANCE:
        from sr_iqa.iqa.vgg_distance import VGGFeatureDistance

        return VGGFeatureDistance().to(device)
    from sr_iqa.iqa.brisque_svr import BrisqueSVR
    from sr_iqa.pretrained.install import pretrained_file

    model = torch.load(pretrained_file(INSTALLED_NETWORK_METRICS[name]), map_location="cpu", weights_only=True)
    return BrisqueSVR(model).to(device)


def _check_name(name: str) -> None:
    if name not in LOCAL_METRICS and basicsr_setting(name) is None and name not in pyiqa.list_models():
        raise OptionsError(f"unknown metric '{name}'; {did_you_mean(name, [*pyiqa.list_models(), *LOCAL_METRICS])}")


def create_metric(name: str, device: torch.device | str = "cpu", as_loss: bool = False,
                  weights_dir: Path | None = None, options: dict[str, Any] | None = None) -> torch.nn.Module:
    """A pyiqa metric; ``metric.lower_better`` tells its direction.

    Weights come from pyiqa's cache, else ``weights_dir``, else a download; ``options`` (pyiqa kwargs such as
    ``pretrained_model_path``) come last and win. A weight that cannot be had raises WeightsUnavailableError.
    """
    _check_name(name)
    if basicsr_setting(name) is not None:  # basicsr's functions as BasicSR and HGGT call them; nothing to load
        return create_basicsr_metric(name)
    if name in INSTALLED_NETWORK_METRICS:
        return _installed_network_metric(name, device)
    given_path = (options or {}).get("pretrained_model_path")
    if given_path and not Path(given_path).is_file():
        raise WeightsUnavailableError(f"metric '{name}': pretrained_model_path {given_path} is not a file; "
                                      f"fix iqa.metric_options.{name}.pretrained_model_path")
    with weight_lookup(f"metric '{name}'", weights_dir), _missing_package_named(name):
        return pyiqa.create_metric(name, as_loss=as_loss, device=torch.device(device),
                                   **_metric_kwargs(name, options))


@contextlib.contextmanager
def _missing_package_named(name: str) -> Iterator[None]:
    """Some pyiqa metrics import optional packages when built (qalign: icecream); say which one, in one line."""
    try:
        yield
    except ImportError as error:
        package = error.name or str(error)
        raise MetricUnavailableError(f"metric '{name}' needs the Python package '{package}', which is not "
                                     f"installed here (pip install {package})") from None


def missing_weights(name: str, weights_dir: Path | None = None,
                    options: dict[str, Any] | None = None) -> list[tuple[str, Path]]:
    """(file name, folder to put it in) for each weight file the metric would need to download; [] when ready.
    A package the metric needs and lacks raises MetricUnavailableError."""
    _check_name(name)
    if basicsr_setting(name) is not None:
        return []
    if name in INSTALLED_NETWORK_METRICS:
        from sr_iqa.pretrained.catalog import catalog_entry
        from sr_iqa.pretrained.install import installed_network, pretrained_dir

        network = INSTALLED_NETWORK_METRICS[name]
        return [] if installed_network(network) else [
            (f"{catalog_entry(network).file_name}: sr-iqa weights install {network}", pretrained_dir())]
    with weight_lookup(f"metric '{name}'", weights_dir, probe=True) as request, _missing_package_named(name):
        pyiqa.create_metric(name, device=torch.device("cpu"), **_metric_kwargs(name, options))
    return request.missing


def is_full_reference(metric: torch.nn.Module) -> bool:
    """pyiqa's FR metrics take (image, reference); NR metrics take the image alone."""
    return getattr(metric, "metric_mode", "NR") == "FR"


def score_each(metric: torch.nn.Module, images: torch.Tensor,
               references: torch.Tensor | None = None) -> tuple[torch.Tensor, str | None]:
    """Per-image scores of a batch (float, keeping gradients), NaN for an image the metric cannot score, and
    the first failure's reason. One call for the batch; image by image only when the batch as a whole fails
    (NIQE's pinv fails for the whole batch when one crop is flat)."""
    inputs = (images,) if references is None else (images, references)
    try:
        scores = metric(*inputs).float().reshape(-1)
        if len(scores) == len(images):
            return scores, None
    except (RuntimeError, ValueError):
        pass
    scores, reason = [], None
    for i in range(len(images)):
        try:
            scores.append(metric(*(t[i:i + 1] for t in inputs)).float().reshape(()))
        except (RuntimeError, ValueError) as error:
            reason = reason or str(error).splitlines()[0][:120]
            scores.append(images.new_tensor(float("nan"), dtype=torch.float32))
    return torch.stack(scores), reason


class FrozenMetricLoss(torch.nn.Module):
    """A pyiqa metric used inside a loss: frozen, always in eval mode, gradients flow to its input.

    MUSIQ builds its multi-scale input only in eval mode, so ``train()`` from a parent module must not
    reach the metric. Keep it out of ``accelerator.prepare``: it has nothing to synchronise.
    """

    def __init__(self, name: str, device: torch.device | str = "cpu", weights_dir: Path | None = None,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__()
        # Per-image values ("none"): the caller averages, and can leave out an image the metric cannot score.
        self.metric = create_metric(name, device, as_loss=True, weights_dir=weights_dir,
                                    options={**(options or {}), "loss_reduction": "none"})
        self.metric.requires_grad_(False)
        self.metric.eval()
        self.lower_better = bool(self.metric.lower_better)

    def train(self, mode: bool = True) -> FrozenMetricLoss:
        return super().train(False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.metric(image)


# Why a metric's gradient is zero where the reason is known (shown with the stop).
ZERO_GRADIENT_REASONS = {
    "piqe": "pyiqa's PIQE rounds its input to 0-255 levels (torch.round) before scoring, so its gradient is exactly "
            "zero",
}


def probe_image(size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A natural photo's crop (scikit-image's astronaut, her face and shoulder) as the gradient probe's input."""
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255
    top, left = 40, 160
    crop = photo[:, top:top + size, left:left + size]
    if crop.shape[-1] < size or crop.shape[-2] < size:
        crop = torch.nn.functional.interpolate(photo[None], size=(size, size), mode="bicubic", align_corners=False)[0]
    return crop.clamp(0, 1)[None].to(device)


def require_gradient(metric: torch.nn.Module, name: str, size: int, key: str,
                     device: torch.device | str = "cpu") -> None:
    """Stop before training when a Q term cannot move the weights: one probe image through the loss form, and its
    gradient with respect to the image must be finite and non-zero (``key``: the option that names the metric)."""
    image = probe_image(max(size, 96), device).requires_grad_(True)
    scores, reason = score_each(metric, image)
    if not torch.isfinite(scores).all():
        raise OptionsError(f"{key}: {name} cannot score the gradient probe (a {image.shape[-1]}-px photo crop): "
                           f"{reason or 'not a finite score'}; a Q term must score natural crops")
    gradient = torch.autograd.grad(scores.sum(), image, allow_unused=True)[0] if scores.requires_grad else None
    if gradient is None or not torch.isfinite(gradient).all() or not gradient.abs().max() > 0:
        found = "none" if gradient is None else ("not finite" if not torch.isfinite(gradient).all() else "zero")
        why = ZERO_GRADIENT_REASONS.get(name, "its score does not depend differentiably on the image")
        raise OptionsError(f"{key}: {name} cannot be a Q term: its gradient with respect to the image is {found} "
                           f"({why}); use it as a monitor (val.metrics) or a judge, and a differentiable metric "
                           "(e.g. niqe) as Q")

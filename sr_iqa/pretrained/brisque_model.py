"""The ``brisque`` package's default model as tensors: its libsvm text file and its feature ranges.

``normalize.pickle`` is read with an unpickler that builds no objects but dicts, lists and numbers, so a planted
file cannot run code; ``svm.txt`` is libsvm's plain-text model (one support vector per line, ``index:value``).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping

import torch

from sr_iqa.errors import DataError

BRISQUE_MEMBERS = ("brisque/models/svm.txt", "brisque/models/normalize.pickle")
FEATURES = 36


class _DataOnlyUnpickler(pickle.Unpickler):
    """Plain containers and numbers only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"refers to {module}.{name}; a feature-range file holds numbers only")


def feature_ranges(data: bytes, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        ranges = _DataOnlyUnpickler(io.BytesIO(data)).load()
        low, high = (torch.tensor([float(v) for v in ranges[key]], dtype=torch.float64) for key in ("min_", "max_"))
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{source}: normalize.pickle is not the package's feature ranges ({error}); refused, nothing "
                        "in it was run") from None
    if low.shape != (FEATURES,) or high.shape != (FEATURES,) or not (high > low).all():
        raise DataError(f"{source}: normalize.pickle holds {low.numel()} and {high.numel()} ranges, not {FEATURES} "
                        "increasing ones")
    return low, high


def _header(lines: list[str], source: str) -> dict[str, str]:
    header = {}
    for line in lines:
        if line.strip() == "SV":
            break
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise DataError(f"{source}: svm.txt is not an epsilon-SVR with an RBF kernel ({header.get('svm_type')}, "
                        f"{header.get('kernel_type')})")
    return header


def support_vectors(text: str, source: str) -> dict[str, torch.Tensor]:
    lines = text.splitlines()
    header = _header(lines, source)
    rows = lines[lines.index("SV") + 1:]
    rows = [row for row in rows if row.strip()]
    if len(rows) != int(header["total_sv"]):
        raise DataError(f"{source}: svm.txt lists {len(rows)} support vectors, its header {header['total_sv']}")
    coefficients, vectors = [], torch.zeros(len(rows), FEATURES, dtype=torch.float64)
    for i, row in enumerate(rows):
        coefficient, *entries = row.split()
        coefficients.append(float(coefficient))
        for entry in entries:
            index, value = entry.split(":")
            vectors[i, int(index) - 1] = float(value)
    return {"support_vectors": vectors, "coefficients": torch.tensor(coefficients, dtype=torch.float64),
            "rho": torch.tensor(float(header["rho"]), dtype=torch.float64),
            "gamma": torch.tensor(float(header["gamma"]), dtype=torch.float64)}


def brisque_model(members: Mapping[str, bytes], source: str) -> dict[str, torch.Tensor]:
    """The catalog's converter: svm.txt + normalize.pickle -> the tensors ``BrisqueSVR`` takes."""
    svm, ranges = (members[member] for member in BRISQUE_MEMBERS)
    try:
        model = support_vectors(svm.decode(), source)
    except (UnicodeDecodeError, ValueError, IndexError) as error:
        raise DataError(f"{source}: svm.txt is not a libsvm model file ({error})") from None
    model["feature_min"], model["feature_max"] = feature_ranges(ranges, source)
    return model

"""Where metric weights come from, and one clear message when they cannot be had.

pyiqa (and torchvision, for the VGG/AlexNet backbones of LPIPS, DISTS, ...) fetch weights
through ``download_url_to_file`` into their caches. While a metric is created we wrap that
one function: a file found in ``weights_dir`` is copied into the cache; otherwise the real
download runs, and when it fails the error names the metric, the file and the folders to put
it in. ``probe`` mode downloads nothing and only records what is missing (``weights check``).

pyiqa loads its weight files with ``torch.load(..., weights_only=False)``, so a planted file would
run code. Within the block every ``torch.load`` is ``weights_only=True`` (tensors, numbers and numpy
arrays only), and a file from ``weights_dir`` is checked the same way before it is copied into the
shared cache, where it would otherwise be trusted on later runs.
"""

from __future__ import annotations

import contextlib
import functools
import io
import pickle
import shutil
import socket
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.errors
import pyiqa.utils.download_util as pyiqa_download
import torch
import torch.hub
from accelerate.utils.other import TORCH_SAFE_GLOBALS

from sr_iqa.atomic_files import write_with
from sr_iqa.config.schema import IqaOptions
from sr_iqa.errors import WeightsUnavailableError, first_line


@dataclass
class WeightRequest:
    """What a metric asked for while being created."""

    missing: list[tuple[str, Path]] = field(default_factory=list)  # (file name, folder to put it in)


WEIGHTS_ONLY_REFUSAL = "Weights only load failed"  # torch's words when weights_only=True meets other objects
# Data files pyiqa reads without unpickling: MATLAB v5 (scipy.io.loadmat) and v7.3 (HDF5) parameter files.
MAT_PREFIXES = (b"MATLAB 5.0 MAT-file", b"\x89HDF\r\n\x1a\n")
NUMPY_PREFIX = b"\x93NUMPY"


def _not_a_weight_file(user: str, path: object, why: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(f"{user}: {path} is not a weight file ({why}); refused, nothing in it was run. "
                                   "Use the weights file the metric publishes")


def _refusal(user: str, path: object, error: BaseException) -> WeightsUnavailableError:
    lines = str(error).splitlines()
    found = next((line.strip() for line in lines if "GLOBAL" in line), "")
    if not found:  # torch's reader stopped at an opcode it does not take: not a checkpoint it reads as tensors
        unsupported = next((line.strip() for line in lines if "Unsupported" in line), "")
        return _not_a_weight_file(user, path, f"not a checkpoint of tensors and numbers: {unsupported}")
    return WeightsUnavailableError(
        f"{user}: {path} holds pickled objects other than tensors and numbers, which could run code when loaded; "
        f"refused ({found}). Use the weights file the metric publishes")


def tensors_only_load(user: str, real_load: Callable) -> Callable:
    """``torch.load`` with ``weights_only=True`` (numpy arrays allowed), one line naming ``user`` when refused."""

    def load(f: object, *args: object, **kwargs: object) -> object:
        kwargs["weights_only"] = True
        try:
            with torch.serialization.safe_globals(TORCH_SAFE_GLOBALS):
                return real_load(f, *args, **kwargs)
        except pickle.UnpicklingError as error:
            if WEIGHTS_ONLY_REFUSAL in str(error):
                raise _refusal(user, f, error) from None
            raise

    return load


def _numpy_without_objects(path: Path) -> bool:
    """Whether ``path`` is a NumPy ``.npy``/``.npz`` file that loads without unpickling (no object arrays)."""
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                for name in loaded.files:
                    loaded[name]
        return True
    except (ValueError, OSError, zipfile.BadZipFile):
        return False


def check_tensors_only(user: str, path: Path) -> None:
    """Refuse a weight file unless it is data that loads without running code: a MAT file, a NumPy file without
    object arrays, or a torch checkpoint of tensors and numbers (``weights_only=True``). A bare pickle is a
    checkpoint to ``torch.load``'s legacy reader, which pyiqa calls with ``weights_only=False``."""
    with open(path, "rb") as handle:
        head = handle.read(32)
    if head.startswith(MAT_PREFIXES):
        return
    if (head.startswith(NUMPY_PREFIX) or path.suffix in (".npy", ".npz")) and _numpy_without_objects(path):
        return
    try:
        tensors_only_load(user, torch.load)(path, map_location="cpu")
    except WeightsUnavailableError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever torch says, the file is not a weight file it reads
        raise _not_a_weight_file(user, path, "neither a torch checkpoint of tensors, a MAT file nor a NumPy file: "
                                 f"{type(error).__name__}: {first_line(error)}") from None


class _ProbeStop(Exception):
    """Raised inside the probe to stop a creation that would download."""


WEIGHTS_FOLDER_ADVICE = "or point --weights-dir / iqa.weights_dir at a folder holding it"


def _weights_message(user: str, file_name: str, cache_file: Path, weights_dir: Path | None, reason: str,
                     advice: str) -> str:
    where = f"{cache_file.parent}" + (f" or {weights_dir}" if weights_dir else "")
    return (f"{user}: weight file {file_name} is not on disk and cannot be downloaded ({reason}); "
            f"put it in {where} ({advice})")


@contextlib.contextmanager
def weight_lookup(user: str, weights_dir: Path | None = None, probe: bool = False,
                  advice: str = WEIGHTS_FOLDER_ADVICE) -> Iterator[WeightRequest]:
    """Within the block, weight downloads look in ``weights_dir`` first and fail with a message naming ``user``
    (``metric 'musiq'``, ``train.perceptual_opt``), the file and the folder, and ``advice`` (what else fixes it)."""
    request = WeightRequest()
    weights_dir = Path(weights_dir) if weights_dir is not None else None
    real_download: Callable = pyiqa_download.download_url_to_file

    def fetch(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        file_name = Path(urlparse(url).path).name
        cache_file = Path(dst)
        if weights_dir is not None and (weights_dir / file_name).is_file():
            check_tensors_only(user, weights_dir / file_name)  # before it reaches the shared cache
            write_with(cache_file, lambda partial: shutil.copyfile(weights_dir / file_name, partial))
            return
        if probe:
            request.missing.append((file_name, cache_file.parent))
            raise _ProbeStop
        if not network_reaches(url):  # fail now, not after a download's retries and time-outs
            raise WeightsUnavailableError(_weights_message(user, file_name, cache_file, weights_dir,
                                                           f"no network connection to {urlparse(url).hostname}",
                                                           advice))
        try:
            with _stall_limit(DOWNLOAD_STALL_SECONDS):
                real_download(url, dst, hash_prefix, progress=progress)
        except Exception as error:  # noqa: BLE001 - any failure to fetch means the same to the user
            raise WeightsUnavailableError(
                _weights_message(user, file_name, cache_file, weights_dir, f"{type(error).__name__}: {error}", advice)
            ) from None

    with contextlib.ExitStack() as stack:
        stack.enter_context(swapped_attribute(torch, "load", tensors_only_load(user, torch.load)))
        for module in (pyiqa_download, torch.hub):
            stack.enter_context(swapped_attribute(module, "download_url_to_file", fetch))
        # Backbones that timm fetches from the Hugging Face hub: its cache only, when probing or when the hub cannot
        # be reached (huggingface_hub would otherwise retry each file for about 45 s before giving up).
        if probe or not network_reaches(huggingface_hub.constants.ENDPOINT):
            stack.enter_context(swapped_attribute(huggingface_hub.constants, "HF_HUB_OFFLINE", True))
        if probe:
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))  # pyiqa announces "Downloading"
        try:
            yield request
        except _ProbeStop:
            pass
        except huggingface_hub.errors.LocalEntryNotFoundError:
            hub_cache = Path(huggingface_hub.constants.HF_HUB_CACHE)
            if probe:
                request.missing.append(("a backbone from the Hugging Face hub", hub_cache))
            else:
                raise WeightsUnavailableError(
                    f"{user}: a backbone it loads from the Hugging Face hub is not in {hub_cache} and "
                    "cannot be downloaded; run it once where the hub is reachable and copy that cache here"
                ) from None


# A download that receives nothing for this long fails (torch.hub and pyiqa open their URLs without a time-out:
# behind a firewall that accepts the connection and then drops the packets, they waited for ever on a GPU machine).
DOWNLOAD_STALL_SECONDS = 60.0


@contextlib.contextmanager
def _stall_limit(seconds: float) -> Iterator[None]:
    """Within the block, a socket read or connect that waits ``seconds`` raises ``TimeoutError`` (urllib's
    ``urlopen`` without ``timeout`` uses this process-wide default)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


@functools.cache
def _connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False


def network_reaches(url: str) -> bool:
    """Whether a connection to ``url``'s host (or to the proxy that serves it) opens within 3 s; asked once per
    host and process."""
    parsed = urlparse(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    if parsed.hostname is None:
        return False
    return _connects(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))


@contextlib.contextmanager
def swapped_attribute(module: object, name: str, replacement: object) -> Iterator[None]:
    """``module.name`` is ``replacement`` within the block."""
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def weights_folder(flag: str | Path | None, iqa: IqaOptions | None) -> Path | None:
    """Where metric weight files are looked for: the command's --weights-dir, else the option file's
    ``iqa.weights_dir``, else nowhere but pyiqa's cache."""
    chosen = flag if flag is not None else (iqa.weights_dir if iqa is not None else None)
    return Path(chosen) if chosen else None


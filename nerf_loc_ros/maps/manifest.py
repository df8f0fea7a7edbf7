"""Map manifests (DESIGN.md section 3): versioned YAML listing every component file with its sha256.

Loading validates before anything is parsed: a missing manifest or component, a size or checksum
mismatch (truncated or tampered files) or a newer format version raises :class:`MapError` naming the
file. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import yaml

__all__ = ["MapError", "FORMAT_VERSION", "MANIFEST", "sha256_file", "read_manifest", "write_manifest", "atomic_dir"]

#: Version of the on-disk map format this code writes and the newest it reads.
FORMAT_VERSION = 1
MANIFEST = "manifest.yaml"


class MapError(ValueError):
    """A map directory is missing, incomplete, corrupt or from a newer format; the message names the file."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: Path, content: dict, components: list[str]) -> dict:
    """Write ``manifest.yaml`` into ``directory`` with ``content`` plus version, time and component checksums."""
    directory = Path(directory)
    comps = {}
    for name in components:
        p = directory / name
        comps[name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **content,
        "components": comps,
    }
    (directory / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return manifest


def read_versioned_yaml(path: Path, kind: str) -> dict:
    """A YAML mapping with a supported ``format_version`` (map manifests, global-map indices).

    Raises:
        MapError: invalid YAML, not a mapping with an integer ``format_version >= 1``, or a newer version.
    """
    try:
        content = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise MapError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(content, dict) or "format_version" not in content:
        raise MapError(f"{path}: not a {kind} (no format_version)")
    version = content["format_version"]
    if not isinstance(version, int) or version < 1:
        raise MapError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise MapError(
            f"{path}: {kind} format version {version} is newer than this nerf_loc_ros supports ({FORMAT_VERSION}); "
            "update nerf_loc_ros"
        )
    return content


def read_manifest(directory: Path, required: tuple[str, ...] = ()) -> dict:
    """Read and validate ``manifest.yaml`` of a map directory; checks every listed component's size and sha256.

    Args:
        directory: the map directory.
        required: component file names that must be listed.
    Raises:
        MapError: with the offending path and the problem.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MapError(f"{directory}: map directory not found")
    path = directory / MANIFEST
    if not path.is_file():
        raise MapError(f"{path}: missing; {directory} is not a nerf_loc_ros map")
    manifest = read_versioned_yaml(path, "map manifest")
    comps = manifest.get("components") or {}
    for name in required:
        if name not in comps:
            raise MapError(f"{path}: component {name} is not listed")
    for name, info in comps.items():
        p = directory / name
        if not p.is_file():
            raise MapError(f"{p}: component listed in the manifest is missing")
        size = p.stat().st_size
        if size != info.get("bytes"):
            raise MapError(f"{p}: size {size} bytes, manifest says {info.get('bytes')} (truncated or replaced)")
        if sha256_file(p) != info.get("sha256"):
            raise MapError(f"{p}: sha256 does not match the manifest (corrupt or modified)")
    return manifest


@contextmanager
def atomic_dir(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``target`` (rename), on error it is removed.

    The previous ``target`` (if any, and ``overwrite``) stays intact until the new one is complete.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists (pass overwrite=True / --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

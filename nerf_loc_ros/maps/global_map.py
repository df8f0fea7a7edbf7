"""A global map: submap directories and where each sits in the global frame (DESIGN.md section 3).

```
global_dir/
  submaps.yaml      format_version, frame_id, and per submap: id, directory, T_global_submap (4x4, row-major),
                    registration quality (method, status, fitness, inliers, ...), source map name, time added
  <id>/             each submap: a complete map directory (manifest.yaml, field.safetensors, ...)
```
The first submap defines the global frame (``T_global_submap = I``). Adding a submap writes a complete new global
directory next to the old one and renames it into place (:func:`~nerf_loc_ros.maps.manifest.atomic_dir`), so a
failed or interrupted merge leaves the previous global map intact. Submap files are hard-linked when the file
system allows (map files are never modified in place), copied otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

from ..geometry import is_rigid
from .manifest import FORMAT_VERSION, MapError, atomic_dir, read_manifest, read_versioned_yaml

__all__ = ["SUBMAPS_FILE", "Submap", "GlobalMap", "create_global_map", "load_global_map", "add_submap"]

SUBMAPS_FILE = "submaps.yaml"
_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # becomes a TF frame name suffix (submap_<id>)


@dataclass
class Submap:
    """One submap: ``id``, its directory, ``T_global_submap [4 x 4]`` and how it was registered."""

    id: str
    path: Path
    T_global_submap: np.ndarray
    registration: dict = field(default_factory=dict)
    source: str = ""
    added: str = ""


@dataclass
class GlobalMap:
    """Submaps in one global frame ``frame_id``, loaded from (or to be saved as) ``path``."""

    path: Path
    frame_id: str
    submaps: list[Submap]

    def submap(self, submap_id: str) -> Submap:
        for s in self.submaps:
            if s.id == submap_id:
                return s
        raise KeyError(f"no submap '{submap_id}' in {self.path}")


def _link_or_copy_tree(src: Path, dst: Path) -> None:
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)


def _write_global_map(path: Path, frame_id: str, submaps: list[Submap], overwrite: bool) -> GlobalMap:
    """Write validated ``submaps`` (their directories anywhere) as the global map at ``path``, atomically."""
    entries = [{"id": s.id, "directory": s.id, "T_global_submap": np.asarray(s.T_global_submap, float).tolist(),
                "registration": s.registration, "source": s.source, "added": s.added} for s in submaps]
    content = {"format_version": FORMAT_VERSION, "frame_id": frame_id, "submaps": entries}
    try:  # before anything is written
        index = yaml.safe_dump(content, sort_keys=False)
    except yaml.YAMLError as exc:
        raise ValueError(f"registration info must hold plain numbers, strings, lists and dicts: {exc}") from exc
    with atomic_dir(path, overwrite=overwrite) as tmp:
        for s in submaps:
            _link_or_copy_tree(s.path, tmp / s.id)
        (tmp / SUBMAPS_FILE).write_text(index)
    return GlobalMap(path, frame_id, [replace(s, path=path / s.id) for s in submaps])


def _new_submap(submap_dir: Path, submap_id: str, T: np.ndarray, registration: dict) -> Submap:
    if not _ID.match(submap_id):
        raise ValueError(f"submap id '{submap_id}': use 1-64 letters, digits or underscores (it names a TF frame)")
    T = np.asarray(T, np.float64)
    if not is_rigid(T):
        raise ValueError(f"T_global_submap of '{submap_id}' is not a finite rigid 4x4 transform")
    manifest = read_manifest(submap_dir)  # a broken submap is rejected before anything is written
    return Submap(submap_id, Path(submap_dir), T, dict(registration), str(manifest.get("name", "")),
                  datetime.now(timezone.utc).isoformat(timespec="seconds"))


def create_global_map(path: Path, first_submap: Path, submap_id: str = "0", frame_id: str = "map",
                      overwrite: bool = False) -> GlobalMap:
    """Start a global map at ``path`` from one map directory, which defines the global frame."""
    sub = _new_submap(Path(first_submap), submap_id, np.eye(4), {"method": "reference", "status": "OK"})
    return _write_global_map(Path(path), frame_id, [sub], overwrite)


def load_global_map(path: Path) -> GlobalMap:
    """Read and validate ``submaps.yaml`` and every submap's manifest; raises :class:`MapError` naming the file."""
    path = Path(path)
    index = path / SUBMAPS_FILE
    if not index.is_file():
        raise MapError(f"{index}: missing; {path} is not a global map")
    content = read_versioned_yaml(index, "global map index")
    if not isinstance(content.get("submaps"), list):
        raise MapError(f"{index}: not a submap index (no 'submaps' list)")
    submaps, seen = [], set()
    for k, e in enumerate(content["submaps"]):
        try:
            sid, directory = str(e["id"]), str(e["directory"])
            T = np.asarray(e["T_global_submap"], np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise MapError(f"{index}: submap entry {k} is malformed ({exc})") from exc
        if sid in seen or not _ID.match(sid) or Path(directory).name != directory:
            raise MapError(f"{index}: submap entry {k} has a duplicate or invalid id/directory ('{sid}')")
        if not is_rigid(T):
            raise MapError(f"{index}: T_global_submap of '{sid}' is not a finite rigid 4x4 transform")
        read_manifest(path / directory)
        seen.add(sid)
        submaps.append(Submap(sid, path / directory, T, dict(e.get("registration") or {}), str(e.get("source", "")),
                              str(e.get("added", ""))))
    if not submaps:
        raise MapError(f"{index}: no submaps")
    return GlobalMap(path, str(content.get("frame_id", "map")), submaps)


def add_submap(path: Path, submap_dir: Path, T_global_submap: np.ndarray, registration: dict,
               submap_id: str | None = None) -> GlobalMap:
    """Add a registered submap to the global map at ``path`` atomically; returns the new global map.

    ``registration``: what the merge knows of the alignment (method, status, fitness, inliers, ...), stored as
    given (YAML-safe values only). The previous global map stays untouched if anything fails.
    """
    current = load_global_map(path)
    taken = {s.id for s in current.submaps}
    if submap_id is None:
        submap_id = str(next(k for k in range(len(taken) + 1) if str(k) not in taken))
    if submap_id in taken:
        raise ValueError(f"{path}: a submap '{submap_id}' exists already")
    sub = _new_submap(Path(submap_dir), submap_id, T_global_submap, registration)
    return _write_global_map(Path(path), current.frame_id, current.submaps + [sub], overwrite=True)

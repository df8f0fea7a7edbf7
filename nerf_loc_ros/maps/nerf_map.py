"""``NerfMap``: a trained NeRF plus metadata, saved as a map directory (DESIGN.md section 3).

```
map_dir/
  manifest.yaml       format_version, name, frame_id, created, units, scene box, configs, training summary,
                      components with sha256
  field.safetensors   field weights (feature planes float16, MLPs float32)
  occupancy.npz       packed occupancy and camera-visibility bits (allow_pickle=False)
  cameras.npz         the training cameras: T_world_cam, K, image sizes (optional; maps before it lack it)
```
Later stages add components (keyframes, encoder) through ``extra_components``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..nerf import FieldConfig, NerfModel, OccupancyConfig, RenderConfig, SceneBox
from .manifest import MapError, atomic_dir, read_manifest, write_manifest

__all__ = ["MapCameras", "NerfMap", "save_map", "load_map", "map_info", "occupied_points"]

log = logging.getLogger(__name__)

FIELD_FILE = "field.safetensors"
OCCUPANCY_FILE = "occupancy.npz"
CAMERAS_FILE = "cameras.npz"


@dataclass
class MapCameras:
    """The cameras a map was trained from: ``T_world_cam [N x 4 x 4]`` (camera-to-world, OpenCV axes, map
    frame), ``K [N x 3 x 3]`` and ``sizes [N x 2]`` (width, height in pixels)."""

    T_world_cam: np.ndarray
    K: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.T_world_cam)

    @classmethod
    def of(cls, data) -> "MapCameras":
        """The cameras of a :class:`~nerf_loc_ros.datasets.PosedImages`."""
        return cls(np.asarray(data.T_world_cam, np.float64), np.asarray(data.K, np.float64),
                   np.array([data.size(i) for i in range(len(data))], np.int64).reshape(-1, 2))

    def save(self, path: Path) -> None:
        np.savez(path, T_world_cam=self.T_world_cam, K=self.K, sizes=self.sizes)

    @classmethod
    def load(cls, path: Path) -> "MapCameras":
        with np.load(path, allow_pickle=False) as z:
            T, K, sizes = (np.asarray(z[k]) for k in ("T_world_cam", "K", "sizes"))
        n = len(T)
        if T.shape != (n, 4, 4) or K.shape != (n, 3, 3) or sizes.shape != (n, 2):
            raise ValueError(f"shapes {T.shape}, {K.shape}, {sizes.shape} do not describe {n} cameras")
        if not (np.isfinite(T).all() and np.isfinite(K).all() and (sizes > 0).all()):
            raise ValueError("non-finite pose or intrinsics, or an empty image size")
        return cls(T.astype(np.float64), K.astype(np.float64), sizes.astype(np.int64))


@dataclass
class NerfMap:
    """A NeRF map: the model (world frame ``frame_id``, OpenCV cameras) and what made it."""

    model: NerfModel
    name: str = "map"
    frame_id: str = "map"
    units: str = "m"
    training: dict = field(default_factory=dict)
    source: str = ""
    manifest: dict = field(default_factory=dict)  #: as loaded (empty for a map not yet saved)
    path: Path | None = None
    cameras: MapCameras | None = None  #: training cameras (None for maps saved without them)


def _field_tensors(model: NerfModel) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in model.field.state_dict().items():
        v = v.detach().cpu().contiguous()
        out[k] = v.half() if k.startswith("encoding.") else v.float()
    return out


def save_map(
    nerf_map: NerfMap, path: Path, overwrite: bool = False,
    extra_components: dict[str, Callable[[Path], None]] | None = None, extra_content: dict | None = None,
) -> Path:
    """Write ``nerf_map`` to directory ``path`` atomically (temp dir + rename); returns ``path``.

    Args:
        extra_components: file name -> writer called with the file path (e.g. keyframes.npz).
        extra_content: additional manifest entries.
    """
    path = Path(path)
    model = nerf_map.model
    with atomic_dir(path, overwrite=overwrite) as tmp:
        save_file(_field_tensors(model), str(tmp / FIELD_FILE))
        np.savez_compressed(tmp / OCCUPANCY_FILE, **model.occupancy.state(with_density=False))
        names = [FIELD_FILE, OCCUPANCY_FILE]
        if nerf_map.cameras is not None:
            nerf_map.cameras.save(tmp / CAMERAS_FILE)
            names.append(CAMERAS_FILE)
        for name, writer in (extra_components or {}).items():
            writer(tmp / name)
            names.append(name)
        content = {
            "name": nerf_map.name,
            "frame_id": nerf_map.frame_id,
            "units": nerf_map.units,
            "source": nerf_map.source,
            "scene_box": model.box.to_dict(),
            "field": model.field.config.to_dict(),
            "occupancy": {"resolution": model.occupancy.resolution},
            "render": model.render_config.to_dict(),
            "training": nerf_map.training,
            **(extra_content or {}),
        }
        nerf_map.manifest = write_manifest(tmp, content, names)
    nerf_map.path = path
    log.info("saved map %s (%.2f MB)", path, map_bytes(path) / 1e6)
    return path


def map_bytes(path: Path) -> int:
    """Total size of the files in a map directory (bytes)."""
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())


def load_map(path: Path, device: str | torch.device = "cpu") -> NerfMap:
    """Load and validate a map directory; raises :class:`MapError` with the file and problem on bad input."""
    path = Path(path)
    manifest = read_manifest(path, required=(FIELD_FILE, OCCUPANCY_FILE))
    try:
        box = SceneBox.from_dict(manifest["scene_box"])
        fcfg = FieldConfig.from_dict(manifest["field"])
        rcfg = RenderConfig.from_dict(manifest.get("render", {}))
        ocfg = OccupancyConfig(resolution=int(manifest["occupancy"]["resolution"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MapError(f"{path / 'manifest.yaml'}: invalid or missing entry ({exc})") from exc
    model = NerfModel.create(box, fcfg, ocfg, rcfg, device=device)
    try:
        tensors = load_file(str(path / FIELD_FILE), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise MapError(f"{path / FIELD_FILE}: cannot read weights ({exc})") from exc
    expected = model.field.state_dict()
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise MapError(f"{path / FIELD_FILE}: missing tensors {missing[:5]}")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise MapError(f"{path / FIELD_FILE}: tensor {k} has shape {tuple(tensors[k].shape)}, config needs {tuple(v.shape)}")
    model.field.load_state_dict({k: tensors[k].float() for k in expected})
    model.field.eval()
    try:
        with np.load(path / OCCUPANCY_FILE, allow_pickle=False) as z:
            model.occupancy.load_state(dict(z))
    except (ValueError, KeyError, OSError) as exc:
        raise MapError(f"{path / OCCUPANCY_FILE}: invalid occupancy grid ({exc})") from exc
    cameras = None
    if CAMERAS_FILE in manifest["components"]:
        try:
            cameras = MapCameras.load(path / CAMERAS_FILE)
        except (ValueError, KeyError, OSError) as exc:
            raise MapError(f"{path / CAMERAS_FILE}: invalid training cameras ({exc})") from exc
    return NerfMap(
        model=model,
        name=str(manifest.get("name", path.name)),
        frame_id=str(manifest.get("frame_id", "map")),
        units=str(manifest.get("units", "m")),
        training=dict(manifest.get("training") or {}),
        source=str(manifest.get("source", "")),
        manifest=manifest,
        path=path,
        cameras=cameras,
    )


def map_info(path: Path) -> dict:
    """A JSON-able summary of a map directory (validated manifest, sizes, occupancy)."""
    manifest = read_manifest(path)
    info = {k: manifest[k] for k in ("name", "frame_id", "units", "format_version", "created", "source") if k in manifest}
    info["scene_box"] = manifest.get("scene_box")
    info["training"] = manifest.get("training")
    info["components"] = {k: v["bytes"] for k, v in manifest["components"].items()}
    info["bytes"] = map_bytes(path)
    return info


def occupied_points(nerf_map: NerfMap, max_points: int = 200_000, seed: int = 0) -> np.ndarray:
    """World-frame centres ``[N x 3]`` of the occupied occupancy cells (at most ``max_points``, random subset).

    Cells of a contracted scene's outer shell map to far-away points; those beyond 4x the inner box are dropped.
    """
    model = nerf_map.model
    idx = torch.nonzero(model.occupancy.occupied.reshape(-1))[:, 0]
    if len(idx) > max_points:
        g = torch.Generator().manual_seed(seed)
        idx = idx[torch.randperm(len(idx), generator=g)[:max_points]]
    u = model.occupancy.cell_centres(idx).clamp(-0.999, 0.999)
    x = model.box.from_grid(u).cpu().numpy()
    if model.box.contract:
        c, h = np.asarray(model.box.centre), np.asarray(model.box.half_size)
        x = x[np.all(np.abs(x - c) <= 4 * h, axis=1)]
    return x.astype(np.float32)

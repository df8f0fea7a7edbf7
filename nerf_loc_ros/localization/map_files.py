"""A localization map: the NeRF map plus ``keyframes.npz`` and ``encoder.safetensors`` (DESIGN.md section 3).

``build_localization_map`` is what ``nerf-loc map build`` runs: train the NeRF, cache keyframes, train the
encoder, save everything atomically in one directory.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..datasets import PosedImages
from ..maps import MapError, NerfMap, build_map, load_map, read_manifest, save_map
from ..nerf import TrainConfig
from .backbone import BackboneConfig, XFeatBackbone
from .encoder import EncoderConfig, SceneEncoder
from .keyframes import KEYFRAMES_FILE, KeyframeDB
from .mapping import MappingConfig, build_keyframe_db
from .training import EncoderTrainConfig, train_encoder

__all__ = ["LocalizationMap", "load_localization_map", "save_localization_map", "add_localization",
           "build_localization_map", "ENCODER_FILE"]

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder.safetensors"


@dataclass
class LocalizationMap:
    """Everything a :class:`~nerf_loc_ros.localization.Localizer` needs (map frame = ``nerf_map.frame_id``)."""

    nerf_map: NerfMap
    keyframes: KeyframeDB
    encoder: SceneEncoder
    backbone_config: BackboneConfig

    @property
    def frame_id(self) -> str:
        return self.nerf_map.frame_id


def save_localization_map(loc_map: LocalizationMap, path: Path, overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write the NeRF map with the keyframe database and encoder, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in loc_map.encoder.state_dict().items()}
    content = {"localization": {
        "backbone": {"name": "xfeat", **asdict(loc_map.backbone_config)},
        "encoder": loc_map.encoder.config.to_dict(),
        "keyframes": len(loc_map.keyframes),
        "points": loc_map.keyframes.num_points,
        **(extra or {}),
    }}
    components = {KEYFRAMES_FILE: loc_map.keyframes.save, ENCODER_FILE: lambda p: save_file(state, str(p))}
    return save_map(loc_map.nerf_map, path, overwrite=overwrite, extra_components=components, extra_content=content)


def load_localization_map(path: Path, device: str | torch.device = "cpu") -> LocalizationMap:
    """Load a map directory that has localization components; :class:`MapError` names what is wrong."""
    path = Path(path)
    manifest = read_manifest(path)
    if KEYFRAMES_FILE not in manifest.get("components", {}) or "localization" not in manifest:
        raise MapError(f"{path}: map has no localization data (keyframes, encoder); rebuild it with "
                       "`nerf-loc map build` or add it with `nerf-loc map localize-prep`")
    nerf_map = load_map(path, device=device)
    loc = nerf_map.manifest["localization"]
    try:
        enc_cfg = EncoderConfig.from_dict(loc["encoder"])
        bb = {k: v for k, v in loc["backbone"].items() if k != "name"}
        backbone_cfg = BackboneConfig(**bb)
    except (KeyError, TypeError) as exc:
        raise MapError(f"{path / 'manifest.yaml'}: invalid localization entry ({exc})") from exc
    keyframes = KeyframeDB.load(path / KEYFRAMES_FILE)
    encoder = SceneEncoder(enc_cfg)
    try:
        tensors = load_file(str(path / ENCODER_FILE), device=str(device))
        encoder.load_state_dict(tensors)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise MapError(f"{path / ENCODER_FILE}: cannot load the encoder ({exc})") from exc
    if keyframes.point_descriptors.shape[1] != enc_cfg.descriptor_dim:
        raise MapError(f"{path / KEYFRAMES_FILE}: point descriptors do not match the encoder")
    return LocalizationMap(nerf_map, keyframes, encoder.to(device).eval(), backbone_cfg)


def add_localization(
    nerf_map: NerfMap, data: PosedImages, mapping: MappingConfig | None = None,
    encoder_config: EncoderConfig | None = None, train: EncoderTrainConfig | None = None,
    backbone_config: BackboneConfig | None = None, progress: bool = True,
) -> tuple[LocalizationMap, dict]:
    """Keyframe caches + encoder training for a trained NeRF map; returns the map and a summary."""
    device = nerf_map.model.device
    t0 = time.perf_counter()
    backbone = XFeatBackbone(backbone_config).to(device)
    db, views = build_keyframe_db(nerf_map.model, data, backbone, mapping, progress=progress)
    t_cache = time.perf_counter() - t0
    enc_cfg = encoder_config or EncoderConfig(nerf_feature_dim=nerf_map.model.field.config.feature_dim)
    encoder = SceneEncoder(enc_cfg).to(device)
    summary = train_encoder(encoder, db, views, nerf_map.model.box, train, progress=progress)
    summary = {"cache_seconds": round(t_cache, 1), "encoder_training": summary}
    return LocalizationMap(nerf_map, db, encoder, backbone.config), summary


def build_localization_map(
    data: PosedImages, out: Path | None, nerf_config: TrainConfig | None = None, device: str = "cpu",
    mapping: MappingConfig | None = None, encoder_train: EncoderTrainConfig | None = None,
    name: str | None = None, overwrite: bool = False, checkpoint_dir: Path | None = None, progress: bool = True,
) -> tuple[LocalizationMap, dict]:
    """Train the NeRF on ``data``, add keyframe caches and the encoder, save to ``out`` (unless None)."""
    t0 = time.perf_counter()
    nerf_map = build_map(data, None, nerf_config, device=device, name=name or (Path(out).name if out else "map"),
                         checkpoint_dir=checkpoint_dir)
    t_nerf = time.perf_counter() - t0
    try:
        loc_map, summary = add_localization(nerf_map, data, mapping, train=encoder_train, progress=progress)
    except ValueError as exc:  # keep the trained NeRF: it is the expensive part
        if out is None:
            raise
        save_map(nerf_map, Path(out), overwrite=overwrite)
        raise ValueError(f"localization data could not be built ({exc}); the NeRF map was saved to {out}: add "
                         f"localization later with `nerf-loc map add-localization --map {out} --data ...`") from exc
    summary = {"nerf_seconds": round(t_nerf, 1), **summary, "total_seconds": round(time.perf_counter() - t0, 1)}
    if out is not None:
        save_localization_map(loc_map, Path(out), overwrite=overwrite, extra=summary)
    return loc_map, summary

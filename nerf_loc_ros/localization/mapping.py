"""Mapping-time caches: keyframe selection, NeRF surface points + features at keyframe keypoints, retrieval.

For every mapping image the backbone detects keypoints; the NeRF renders the expected surface point and
embedding along each keypoint's ray (DESIGN.md section 4: ``X = sum w_i x_i``, ``F = sum w_i f_i``).
Keyframes contribute their points to the map (points closer than a voxel are merged into one, so a surface
spot seen by several keyframes is one candidate, not several); every image becomes a training view of the
encoder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..datasets import PosedImages
from ..nerf import NerfModel
from ..nerf.rays import pixel_rays
from .backbone import ImageFeatures, XFeatBackbone
from .fine import sample_patches
from .keyframes import KeyframeDB, select_keyframes
from .retrieval import learn_codebook, vlad

__all__ = ["MappingConfig", "TrainingView", "build_keyframe_db", "merge_observations", "render_keypoints",
           "sharp_surface"]

log = logging.getLogger(__name__)


@dataclass
class MappingConfig:
    """Keyframe database settings.

    Attributes:
        max_keyframes: keyframes chosen by farthest-pose sampling (all images when there are fewer).
        max_train_images: images used to train the encoder (evenly subsampled beyond this).
        retrieval_clusters: size of the VLAD vocabulary.
        min_opacity: a keypoint ray must be at least this opaque to give a surface point.
        merge_voxel: keyframe observations in one voxel of this fraction of the scene-box diagonal become one point
            at their mean; 0 (default) keeps one point per observation. On redkitchen (2026-12-01) 0.003 gave
            1.14 cm / 0.306 deg and 0 gave 0.73 cm / 0.270 deg with the one-to-many refinement, for a map of
            36 instead of 15 MB.
        max_depth_spread: a keypoint ray whose surface depth spreads (std) more than this fraction of its depth
            (silhouettes, mixed pixels) gives no point (relaxed to 2.5x the image's median spread in fuzzy scenes).
        patch_size: side (pixels, odd) of the grey-level patch kept around each point's keyframe keypoint for the
            localizer's fine level (:mod:`.fine`); 0 keeps none. 9 adds 81 bytes per point.
    """

    max_keyframes: int = 150
    max_train_images: int = 300
    retrieval_clusters: int = 32
    min_opacity: float = 0.9
    merge_voxel: float = 0.0
    max_depth_spread: float = 0.02
    patch_size: int = 9


@dataclass
class TrainingView:
    """One mapping image, ready for encoder training (features stay on the backbone's device)."""

    index: int
    T_world_cam: np.ndarray
    K: np.ndarray
    features: ImageFeatures
    depth: np.ndarray  #: ``[N]`` NeRF z-depth at the keypoints (NaN where the ray is not opaque)
    points: np.ndarray  #: ``[N x 3]`` NeRF surface points at the keypoints (world frame)
    nerf_features: np.ndarray  #: ``[N x F]`` NeRF embeddings at those points
    keyframe: int | None = None  #: index in the keyframe database when this image is a keyframe


@torch.no_grad()
def render_keypoints(model: NerfModel, K: np.ndarray, T_world_cam: np.ndarray, uv: np.ndarray) -> dict[str, np.ndarray]:
    """Render the rays through pixels ``uv [N x 2]`` (pixel-centre convention) of a camera.

    Returns ``depth [N]`` (z-depth), ``opacity [N]``, ``point [N x 3]`` (world), ``feature [N x F]`` and
    ``depth_std [N]`` (standard deviation of the surface depth along the ray; large on mixed pixels).
    """
    dev = model.device
    u = torch.as_tensor(uv[:, 0], dtype=torch.float64)
    v = torch.as_tensor(uv[:, 1], dtype=torch.float64)
    o, d = pixel_rays(torch.as_tensor(K), torch.as_tensor(T_world_cam), u, v)
    o, d = o.float().to(dev), d.float().to(dev)
    parts: dict[str, list[torch.Tensor]] = {}
    model.field.eval()
    for oc, dc in zip(torch.split(o, model.render_config.chunk_rays), torch.split(d, model.render_config.chunk_rays)):
        r = model.render_rays(oc, dc, with_features=True, with_samples=True)
        # spread of the surface along the ray: large on silhouettes and other mixed pixels
        dev_t = r["sample_t"] - r["depth"][r["sample_ray"]]
        var = torch.zeros_like(r["depth"]).index_add_(0, r["sample_ray"], r["sample_weight"] * dev_t ** 2)
        r["depth_std"] = (var / r["opacity"].clamp_min(1e-6)).sqrt()
        for k in ("depth", "opacity", "point", "feature", "depth_std"):
            parts.setdefault(k, []).append(r[k])
    if not parts:
        f = model.field.config.feature_dim
        return {"depth": np.zeros(0, np.float32), "opacity": np.zeros(0, np.float32), "depth_std": np.zeros(0, np.float32),
                "point": np.zeros((0, 3), np.float32), "feature": np.zeros((0, f), np.float32)}
    return {k: torch.cat(v).cpu().numpy() for k, v in parts.items()}


def sharp_surface(r: dict[str, np.ndarray], max_spread: float) -> np.ndarray:
    """Rays whose surface depth spread is at most ``max_spread`` of their depth, or, in fuzzy reconstructions
    (few views, forward-facing scenes), at most 2.5x the image's median relative spread: silhouettes and mixed
    pixels go, the bulk of a fuzzy but usable surface stays."""
    rel = r["depth_std"] / np.maximum(r["depth"], 1e-9)
    limit = max(max_spread, 2.5 * float(np.median(rel))) if len(rel) else max_spread
    return rel <= limit


def _training_indices(n: int, cap: int) -> np.ndarray:
    return np.arange(n) if n <= cap else np.unique(np.linspace(0, n - 1, cap).round().astype(int))


def merge_observations(xyz: np.ndarray, features: np.ndarray, voxel: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map points from keyframe observations ``xyz [O x 3]`` (world frame) with NeRF ``features [O x F]``.

    ``voxel > 0`` (world units): observations in one grid cell become one point at their mean position and feature,
    numbered by first observation; ``voxel == 0``: one point per observation. Returns ``(obs_point [O], points
    [P x 3], point_features [P x F])``.
    """
    if voxel < 0:
        raise ValueError(f"merge voxel must be >= 0, got {voxel}")
    if voxel == 0:
        return np.arange(len(xyz)), xyz, features
    keys = np.floor(xyz / voxel).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    obs_point = rank[inverse.reshape(-1)]
    n_obs = np.bincount(obs_point, minlength=len(first))[:, None].astype(np.float64)
    points = np.zeros((len(first), 3))
    np.add.at(points, obs_point, xyz)
    feats = np.zeros((len(first), features.shape[1]))
    np.add.at(feats, obs_point, features)
    return obs_point, points / n_obs, feats / n_obs


def build_keyframe_db(
    model: NerfModel, data: PosedImages, backbone: XFeatBackbone, config: MappingConfig | None = None,
    progress: bool = True,
) -> tuple[KeyframeDB, list[TrainingView]]:
    """Detect, render and cache; returns the database (point descriptors still zero) and the training views."""
    cfg = config or MappingConfig()
    if cfg.patch_size < 0 or (cfg.patch_size and cfg.patch_size % 2 == 0):
        raise ValueError(f"patch_size must be 0 or odd, got {cfg.patch_size}")
    extent = data.extent() or float(np.linalg.norm(model.box.half_size) * 2)
    kf_idx = select_keyframes(data.T_world_cam, cfg.max_keyframes, length_scale=extent / 10)
    train_idx = np.union1d(_training_indices(len(data), cfg.max_train_images), kf_idx)
    voxel = cfg.merge_voxel * float(np.linalg.norm(model.box.half_size) * 2)

    views: list[TrainingView] = []
    keyframe_set = set(kf_idx.tolist())
    kf_patches: dict[int, torch.Tensor] = {}  # patches around every keypoint of each keyframe image
    for i in tqdm(train_idx, desc="keyframe caches", unit="img", disable=not progress):
        feats = backbone(data.images[i])
        if cfg.patch_size and int(i) in keyframe_set:
            patch = sample_patches(feats.grey, feats.keypoints, cfg.patch_size)
            kf_patches[int(i)] = patch.round().clamp(0, 255).to(torch.uint8)
        feats.grey = None  # the views stay in memory for encoder training, which needs no image
        r = render_keypoints(model, data.K[i], data.T_world_cam[i], feats.keypoints)
        ok = (r["opacity"] >= cfg.min_opacity) & np.isfinite(r["depth"]) & (r["depth"] > 0)
        ok &= sharp_surface(r, cfg.max_depth_spread)
        depth = np.where(ok, r["depth"], np.nan).astype(np.float32)
        views.append(TrainingView(int(i), data.T_world_cam[i], data.K[i], feats, depth,
                                  r["point"].astype(np.float32), r["feature"].astype(np.float32)))

    # map points from the keyframes: by default every keyframe observation is its own point (merge_voxel = 0); the
    # localizer's one-to-many guided matching then gives a query keypoint one point per keyframe that saw it, and
    # PnP averages their depth errors. merge_voxel > 0: observations in one voxel become one point at their mean.
    by_index = {v.index: v for v in views}
    pts, fts, uvs, patches, obs_ptr = [], [], [], [], [0]
    for kf, k in enumerate(kf_idx):
        v = by_index[int(k)]
        v.keyframe = kf
        valid = np.flatnonzero(np.isfinite(v.depth))
        pts.append(v.points[valid].astype(np.float64))
        fts.append(v.nerf_features[valid].astype(np.float64))
        uvs.append(v.features.keypoints[valid])
        if cfg.patch_size:
            patches.append(kf_patches[int(k)][valid])
        obs_ptr.append(obs_ptr[-1] + len(valid))
    obs_xyz = np.concatenate(pts) if pts else np.zeros((0, 3))
    if len(obs_xyz) == 0:
        raise ValueError("no keyframe keypoint hit an opaque, sharp NeRF surface: the NeRF is not trained enough "
                         "(train longer) or the scene is not covered by the keyframes")
    obs_point, points, feats_list = merge_observations(obs_xyz, np.concatenate(fts), voxel)
    obs_uv = np.concatenate(uvs)
    point_patches = np.zeros((0, 0, 0), np.uint8)
    if patches:  # each point keeps the patch of its first observation (points are numbered by first observation)
        _, first = np.unique(obs_point, return_index=True)
        point_patches = torch.cat(patches).numpy()[first]

    kf_desc = [by_index[int(k)].features.descriptors.cpu().numpy() for k in kf_idx]
    codebook = learn_codebook(np.concatenate(kf_desc), cfg.retrieval_clusters)
    global_desc = np.stack([vlad(d, codebook) for d in kf_desc])
    f_dim = model.field.config.feature_dim
    db = KeyframeDB(
        T_world_cam=data.T_world_cam[kf_idx].copy(), K=data.K[kf_idx].copy(),
        size=np.array([data.size(int(k)) for k in kf_idx], np.int32),
        names=np.array([data.names[int(k)] for k in kf_idx], dtype=str),
        global_desc=global_desc.astype(np.float32), codebook=codebook,
        points=np.array(points, np.float32).reshape(-1, 3),
        point_features=np.array(feats_list, np.float32).reshape(-1, f_dim),
        point_descriptors=np.zeros((len(points), 0), np.float16),
        obs_ptr=np.array(obs_ptr, np.int64), obs_point=np.array(obs_point, np.int32),
        obs_uv=np.array(obs_uv, np.float32).reshape(-1, 2), point_patches=point_patches,
    )
    log.info("keyframe database: %d keyframes, %d points from %d observations, %d training views",
             len(db), db.num_points, len(db.obs_point), len(views))
    return db, views

"""``GlobalLocalizer``: relocalization against a global map of merged submaps (DESIGN.md sections 3 and 5).

Each submap keeps its own scene encoder and keyframes (in its own frame); what they share is the frozen backbone,
so a query runs the backbone once and then the per-map stages of the submaps most likely to contain it:

* with a prior (``T_global_cam``): the submaps ordered by the distance from the prior to their nearest keyframe
  (in the global frame); the prior enters each submap's localizer in that submap's frame;
* without: the submaps ordered by their best VLAD retrieval similarity (each under its own codebook).

The first OK result wins (at most ``max_submaps`` tries); otherwise the one with the most inliers is returned.
Poses, covariances and matched 3D points come back in the global frame: ``T_global_cam = T_global_submap @
T_submap_cam``. Same call as :class:`~.localizer.Localizer`, so :class:`~.session.LocalizationSession`, the ROS
node and ``nerf-loc replay`` use either.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..geometry import invert_pose, transform_points
from ..maps import GlobalMap, load_global_map
from .localizer import LocalizationResult, Localizer, LocalizerConfig
from .map_files import load_localization_map
from .retrieval import top_k

__all__ = ["GlobalLocalizer", "load_localizer"]


def _to_global(res: LocalizationResult, T: np.ndarray, submap_id: str) -> LocalizationResult:
    """``res`` (a submap's frame) expressed in the global frame through ``T = T_global_submap``."""
    R6 = np.zeros((6, 6))
    R6[:3, :3] = R6[3:, 3:] = T[:3, :3]
    out = replace(res, submap=submap_id)
    if res.T_world_cam is not None:
        out.T_world_cam = T @ res.T_world_cam
        out.covariance = R6 @ res.covariance @ R6.T
    if len(res.matches_3d):
        out.matches_3d = transform_points(T, res.matches_3d)
    return out


class GlobalLocalizer:
    """Localize images against every submap of a global map (see the module docstring)."""

    def __init__(self, global_map: GlobalMap | Path, config: LocalizerConfig | None = None, max_submaps: int = 2,
                 device: str = "cpu"):
        self.global_map = global_map if isinstance(global_map, GlobalMap) else load_global_map(global_map)
        self.config = config or LocalizerConfig(device=device)
        self.max_submaps = max(1, int(max_submaps))
        self.localizers = [Localizer(load_localization_map(s.path, device=self.config.device), self.config)
                           for s in self.global_map.submaps]
        first = self.localizers[0].map.backbone_config
        for sub, loc in zip(self.global_map.submaps[1:], self.localizers[1:]):
            if loc.map.backbone_config != first:
                raise ValueError(f"submap {sub.id} was built with another backbone ({loc.map.backbone_config}) than "
                                 f"submap {self.global_map.submaps[0].id} ({first}); rebuild it")
        self._T = [np.asarray(s.T_global_submap, np.float64) for s in self.global_map.submaps]
        self._T_inv = [invert_pose(T) for T in self._T]
        #: keyframe centres of each submap in the global frame (the prior picks the submap by them, every frame)
        self._centres = [transform_points(T, loc.keyframe_centres()) for loc, T in zip(self.localizers, self._T)]

    @property
    def frame_id(self) -> str:
        """The global frame the poses are in."""
        return self.global_map.frame_id

    @property
    def units(self) -> str:
        """Units of the global frame (the first submap's)."""
        return self.localizers[0].units

    def keyframe_centres(self) -> np.ndarray:
        """Keyframe camera centres ``[N x 3]`` of all submaps in the global frame."""
        return np.concatenate(self._centres)

    def keyframe_names(self, res: LocalizationResult) -> list[str]:
        """``<submap id>/<keyframe name>`` of the keyframes a result used."""
        for sub, loc in zip(self.global_map.submaps, self.localizers):
            if sub.id == res.submap:
                return [f"{sub.id}/{n}" for n in loc.keyframe_names(res)]
        return []

    def summary(self) -> str:
        """One line for logs: submaps, keyframes and points."""
        return (f"{len(self.localizers)} submaps, {sum(len(loc.db) for loc in self.localizers)} keyframes, "
                f"{sum(loc.db.num_points for loc in self.localizers)} points")

    def _order(self, feats, prior: np.ndarray | None) -> list[int]:
        if prior is not None:
            dist = [float(np.min(np.linalg.norm(c - prior[:3, 3], axis=1))) for c in self._centres]
            return list(np.argsort(dist))
        sims = [float(top_k(loc.global_descriptor(feats), loc.db.global_desc, 1)[1][0]) for loc in self.localizers]
        return list(np.argsort(sims)[::-1])

    def localize(self, image: np.ndarray, K: np.ndarray, prior: np.ndarray | None = None) -> LocalizationResult:
        """Localize an ``[H x W x 3]`` uint8 RGB image; ``prior``: optional ``T_global_cam`` guess. The result's
        pose is in the global frame and ``submap`` names the submap that localized it."""
        first = self.localizers[0]  # all submaps share its backbone
        with first.query_scope():
            feats, K, t_start, timings = first.run_backbone(image, K, prior)
            h, w = image.shape[:2]
            best = None
            for i in self._order(feats, prior)[: self.max_submaps]:
                local_prior = None if prior is None else self._T_inv[i] @ prior
                res = self.localizers[i].localize_features(feats, (w, h), K, local_prior, t_start, timings)
                res = _to_global(res, self._T[i], self.global_map.submaps[i].id)
                if best is None or res.ok and not best.ok or (res.ok == best.ok and res.num_inliers > best.num_inliers):
                    best = res
                if res.ok:
                    break
            assert best is not None
            best.timings_ms["total"] = (time.perf_counter() - t_start) * 1e3
            return best


def load_localizer(path: Path, config: LocalizerConfig | None = None) -> Localizer | GlobalLocalizer:
    """The localizer of a map directory: a :class:`GlobalLocalizer` for a global map (``submaps.yaml``), else a
    :class:`Localizer` of the localization map. Raises :class:`~nerf_loc_ros.maps.MapError` (a ``ValueError``)
    naming what is wrong."""
    from ..maps import SUBMAPS_FILE

    config = config or LocalizerConfig()
    if (Path(path) / SUBMAPS_FILE).is_file():
        return GlobalLocalizer(Path(path), config)
    return Localizer(load_localization_map(path, device=config.device), config)

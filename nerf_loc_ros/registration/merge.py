"""Merging a new NeRF submap into a global map: the one core call of ``nerf-loc merge`` and the map-merge node.

The submap is registered against every submap already in the global map (each sampled once from its own NeRF);
the best OK registration (most inliers) gives ``T_global_submap = T_global_target @ T_target_source``. Nothing is
written unless the result is OK (or ``force`` accepts an AMBIGUOUS one); the global map is then rewritten
atomically by :func:`~nerf_loc_ros.maps.add_submap`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..maps import GlobalMap, add_submap, load_global_map, load_map
from .result import RegistrationResult, RegistrationStatus

__all__ = ["MergeOutcome", "merge_submap", "register_against_global"]

log = logging.getLogger(__name__)


@dataclass
class MergeOutcome:
    """The registration that decided the merge, against which submap, the implied ``T_global_submap`` (None without
    an estimate) and the new global map (None when nothing was merged)."""

    result: RegistrationResult
    target_id: str | None
    T_global_submap: np.ndarray | None
    global_map: GlobalMap | None

    @property
    def merged(self) -> bool:
        return self.global_map is not None


def register_against_global(global_path: Path, submap_path: Path, registrar,
                            init_T_global_submap: np.ndarray | None = None
                            ) -> tuple[RegistrationResult, str, np.ndarray | None]:
    """Register the map at ``submap_path`` against every submap of the global map; returns the best result (OK
    before AMBIGUOUS before FAILED, then most inliers), the id of the submap it was registered against and the
    implied ``T_global_submap`` (None without an estimate). Writes nothing.

    ``registrar``: anything with ``register_maps(source_map, target_map, init) -> RegistrationResult``
    (:class:`~.desc.DescRegistrar`, :class:`~.fpfh.FPFHRegistrar`). ``init_T_global_submap``: an optional guess
    of the submap's pose in the global frame (e.g. from odometry)."""
    gmap = load_global_map(global_path)
    source = load_map(submap_path)
    best = None
    for sub in gmap.submaps:
        init = None
        if init_T_global_submap is not None:
            init = np.linalg.inv(sub.T_global_submap) @ np.asarray(init_T_global_submap, np.float64)
        res = registrar.register_maps(source, load_map(sub.path), init)
        log.info("submap %s vs %s: %s, %d inliers %s", Path(submap_path).name, sub.id, res.status.value,
                 res.inliers, res.reason)
        rank = (res.status == RegistrationStatus.OK, res.status == RegistrationStatus.AMBIGUOUS, res.inliers)
        if best is None or rank > best[0]:
            best = (rank, res, sub)
    assert best is not None  # a global map has at least one submap
    _, res, sub = best
    T = None if res.T_target_source is None else sub.T_global_submap @ res.T_target_source
    return res, sub.id, T


def merge_submap(global_path: Path, submap_path: Path, registrar, init_T_global_submap: np.ndarray | None = None,
                 force: bool = False, submap_id: str | None = None) -> MergeOutcome:
    """Register the map at ``submap_path`` against the global map at ``global_path``
    (:func:`register_against_global`) and add it when the registration is OK (or AMBIGUOUS with ``force``)."""
    res, target_id, T = register_against_global(global_path, submap_path, registrar, init_T_global_submap)
    accept = res.ok or (force and res.status == RegistrationStatus.AMBIGUOUS)
    if not accept or T is None:
        return MergeOutcome(res, target_id, T, None)
    registration = {
        "method": type(registrar).__name__, "status": res.status.value, "against": target_id,
        "fitness": float(res.fitness), "inliers": int(res.inliers), "correspondences": int(res.correspondences),
        "inlier_rmse": float(res.inlier_rmse), "confidence": float(res.confidence),
        "free_space_violation": float(res.free_space_violation), "grey_correlation": float(res.grey_correlation),
        "forced": bool(force and not res.ok),
    }
    new = add_submap(global_path, Path(submap_path), T, registration, submap_id)
    return MergeOutcome(res, target_id, T, new)

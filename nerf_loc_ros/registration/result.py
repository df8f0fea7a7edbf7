"""What a registration returns, and how it is scored against ground truth (DESIGN.md section 7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from ..geometry import pose_errors

__all__ = ["RegistrationStatus", "RegistrationResult", "registration_errors", "cloud_extent"]


class RegistrationStatus(str, Enum):
    """Outcome of one registration."""

    OK = "OK"
    AMBIGUOUS = "AMBIGUOUS"  #: several distinct transforms have similar support: do not merge
    FAILED = "FAILED"


@dataclass
class RegistrationResult:
    """``T_target_source``: ``[4 x 4]`` rigid transform taking source-map points into the target map frame
    (None when FAILED); ``fitness``: share of source points with a target point within the inlier distance
    after alignment; ``inlier_rmse`` (map units); ``correspondences`` / ``inliers``: counts of the final
    estimation stage; ``timings_ms`` per stage; ``reason`` when not OK. ``confidence``, ``hypotheses`` and the
    estimated errors are filled by registrars that know them (DeSC, rendered views), ``free_space_violation`` and
    ``grey_correlation`` by the rendered-view registrar (:mod:`.visibility`)."""

    status: RegistrationStatus
    T_target_source: np.ndarray | None = None
    fitness: float = 0.0
    inlier_rmse: float = float("nan")
    correspondences: int = 0
    inliers: int = 0
    confidence: float = 0.0  #: 1 - (support of the best distinct alternative) / (best support); 1 without one
    hypotheses: int = 0  #: distinct transforms with at least the ambiguity ratio of the best support (incl. it)
    estimated_rre_deg: float = float("nan")  #: rough 1-sigma rotation uncertainty from the inlier residuals
    estimated_rte: float = float("nan")  #: rough 1-sigma translation uncertainty (map units)
    free_space_violation: float = float("nan")  #: share of surface comparisons in the other map's free space
    grey_correlation: float = float("nan")  #: correlation of the two maps' grey levels where their surfaces agree
    reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == RegistrationStatus.OK


def cloud_extent(points: np.ndarray) -> float:
    """Scene extent for relative errors: the diagonal of the 1-99 percentile box of ``points [N x 3]``."""
    lo, hi = np.percentile(np.asarray(points, np.float64), [1, 99], axis=0)
    return float(np.linalg.norm(hi - lo))


def registration_errors(T_est: np.ndarray | None, T_gt: np.ndarray, extent: float) -> tuple[float, float]:
    """Relative rotation error (deg) and relative translation error as a fraction of ``extent``
    (``inf, inf`` for a missing estimate)."""
    if T_est is None:
        return float("inf"), float("inf")
    rot, trans = pose_errors(np.asarray(T_est)[None], np.asarray(T_gt)[None])
    return float(rot[0]), float(trans[0]) / max(extent, 1e-12)

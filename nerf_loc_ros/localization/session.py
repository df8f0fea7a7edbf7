"""``LocalizationSession``: the per-frame logic shared by the live ROS node and the offline replay.

It owns what happens between frames: stamps must increase (an out-of-order frame is skipped with a reason),
a recent confident pose is the prior of the next frame (tracking), and when tracking fails the frame is
retried with retrieval (relocalization). ``/initialpose`` sets the prior explicitly. Each call is exactly
one :meth:`Localizer.localize` (or two when tracking is lost), so replay and node produce the same poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import invert_pose
from .localizer import LocalizationResult, Localizer, Status

__all__ = ["SessionConfig", "LocalizationSession", "FrameOutcome", "map_to_odom"]


def map_to_odom(T_map_cam: np.ndarray, T_odom_cam: np.ndarray) -> np.ndarray:
    """``T_map_odom`` such that ``T_map_odom @ T_odom_cam == T_map_cam``: the edge a localizer publishes on TF
    (REP-105), from its camera pose in the map and the odometry chain to the camera at the image stamp."""
    return T_map_cam @ invert_pose(T_odom_cam)


@dataclass
class SessionConfig:
    """Tracking settings.

    Attributes:
        use_prior: use the previous confident pose as the prior of the next frame.
        max_prior_age_s: a prior older than this (seconds of stamp time) is not used.
    """

    use_prior: bool = True
    max_prior_age_s: float = 2.0


@dataclass
class FrameOutcome:
    """What the session did with one frame: ``result`` is None when the frame was skipped (``skipped`` says why)."""

    stamp_ns: int
    result: LocalizationResult | None
    skipped: str = ""
    used_prior: bool = False


class LocalizationSession:
    """Stateful wrapper around a :class:`Localizer` for a stream of frames (one camera)."""

    def __init__(self, localizer: Localizer, config: SessionConfig | None = None):
        self.localizer = localizer
        self.config = config or SessionConfig()
        self.last_stamp_ns: int | None = None
        self._prior: np.ndarray | None = None
        self._prior_stamp_ns: int | None = None

    def set_prior(self, T_world_cam: np.ndarray, stamp_ns: int | None = None) -> None:
        """Set a pose prior (e.g. from ``/initialpose``); valid for ``max_prior_age_s`` from ``stamp_ns``."""
        T = np.asarray(T_world_cam, np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise ValueError("prior must be a finite 4x4 pose")
        self._prior = T
        self._prior_stamp_ns = stamp_ns

    def reset(self) -> None:
        """Forget the prior and the last stamp (next frame relocalizes from scratch)."""
        self._prior = None
        self._prior_stamp_ns = None
        self.last_stamp_ns = None

    def _current_prior(self, stamp_ns: int) -> np.ndarray | None:
        if not self.config.use_prior or self._prior is None:
            return None
        if self._prior_stamp_ns is not None and (stamp_ns - self._prior_stamp_ns) * 1e-9 > self.config.max_prior_age_s:
            return None
        return self._prior

    def process(self, image: np.ndarray, K: np.ndarray, stamp_ns: int) -> FrameOutcome:
        """Localize one frame with header stamp ``stamp_ns`` (int nanoseconds)."""
        if self.last_stamp_ns is not None and stamp_ns <= self.last_stamp_ns:
            return FrameOutcome(stamp_ns, None, skipped=f"stamp {stamp_ns} not after previous {self.last_stamp_ns}")
        if not np.isfinite(np.asarray(K, np.float64)).all():
            return FrameOutcome(stamp_ns, None, skipped="intrinsics contain NaN or inf")
        self.last_stamp_ns = stamp_ns
        prior = self._current_prior(stamp_ns)
        result = self.localizer.localize(image, K, prior=prior)
        used_prior = prior is not None
        if used_prior and result.status != Status.OK:
            retry = self.localizer.localize(image, K)  # tracking lost: relocalize with retrieval
            for k, v in result.timings_ms.items():
                retry.timings_ms[k] = retry.timings_ms.get(k, 0.0) + v
            result, used_prior = retry, False
        if result.status == Status.OK:
            self._prior, self._prior_stamp_ns = result.T_world_cam, stamp_ns
        return FrameOutcome(stamp_ns, result, used_prior=used_prior)

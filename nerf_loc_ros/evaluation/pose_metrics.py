"""Localization metrics (DESIGN.md section 7): pose errors, recall at thresholds, latency percentiles.

A frame that returns no pose counts as an infinite error (it is never recalled; medians include it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..geometry import pose_errors

__all__ = ["FrameRecord", "recall_thresholds", "summarize_localization", "primary_threshold", "json_safe"]


@dataclass
class FrameRecord:
    """One localized frame: estimate (None when no pose), ground truth, status and per-stage timings (ms)."""

    name: str
    T_est: np.ndarray | None
    T_gt: np.ndarray | None
    status: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    num_inliers: int = 0
    stamp_ns: int = 0

    def errors(self) -> tuple[float, float]:
        """(rotation error in degrees, translation error in map units); inf when there is no estimate."""
        if self.T_est is None or self.T_gt is None:
            return float("inf"), float("inf")
        r, t = pose_errors(self.T_est[None], self.T_gt[None])
        return float(r[0]), float(t[0])


def recall_thresholds(metric: bool, extent: float) -> dict[str, tuple[float, float]]:
    """Named (translation, rotation-degrees) thresholds.

    Metric scenes: ``5cm5deg`` (the 7-Scenes / DSAC* protocol), ``2cm2deg``, ``10cm5deg``. Scenes of arbitrary
    scale: fractions of the scene ``extent`` (camera-centre bounding-box diagonal): ``1pct1deg``, ``2pct2deg``,
    ``5pct5deg``.
    """
    if metric:
        return {"5cm5deg": (0.05, 5.0), "2cm2deg": (0.02, 2.0), "10cm5deg": (0.10, 5.0)}
    return {"2pct2deg": (0.02 * extent, 2.0), "1pct1deg": (0.01 * extent, 1.0), "5pct5deg": (0.05 * extent, 5.0)}


def primary_threshold(thresholds: dict[str, tuple[float, float]]) -> str:
    """The headline threshold name (the first one)."""
    return next(iter(thresholds))


def _p(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarize_localization(records: list[FrameRecord], thresholds: dict[str, tuple[float, float]],
                           warmup: int = 1) -> dict:
    """Metrics over frames with ground truth.

    Returns ``median_rot_deg``, ``median_trans``, ``recall`` (name -> fraction), ``failed_fraction`` (no pose),
    ``ok_fraction``, ``ok_gross_error_fraction`` (frames reported OK whose error exceeds 10x the primary
    threshold, over the OK frames), ``latency_ms_p50``/``p95`` and ``stage_ms_p50`` (first ``warmup`` frames
    excluded from timings), ``frames``.
    """
    recs = [r for r in records if r.T_gt is not None]
    errs = np.array([r.errors() for r in recs]).reshape(-1, 2)
    rot, trans = errs[:, 0], errs[:, 1]
    recall = {name: float(np.mean((trans < t) & (rot < a))) if len(recs) else 0.0
              for name, (t, a) in thresholds.items()}
    t_main, a_main = thresholds[primary_threshold(thresholds)]
    ok = np.array([r.status == "OK" for r in recs], bool)
    gross = (trans > 10 * t_main) | (rot > 10 * a_main)
    timed = records[warmup:] if len(records) > warmup else records
    total = [r.timings_ms["total"] for r in timed if "total" in r.timings_ms]
    stages = sorted({k for r in timed for k in r.timings_ms if k != "total"})
    return {
        "frames": len(recs),
        "median_rot_deg": float(np.median(rot)) if len(recs) else None,
        "median_trans": float(np.median(trans)) if len(recs) else None,
        "recall": recall,
        "failed_fraction": float(np.mean([r.T_est is None for r in recs])) if recs else None,
        "ok_fraction": float(ok.mean()) if len(recs) else None,
        "ok_gross_error_fraction": float(gross[ok].mean()) if ok.any() else 0.0,
        "latency_ms_p50": _p(total, 50),
        "latency_ms_p95": _p(total, 95),
        "stage_ms_p50": {s: _p([r.timings_ms[s] for r in timed if s in r.timings_ms], 50) for s in stages},
    }


def json_safe(x):
    """``x`` with non-finite floats replaced by None (strict JSON has no inf/NaN), recursively."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x

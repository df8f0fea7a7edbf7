"""Localization metrics and plots: recall at thresholds, failures as infinite errors, gross-error share, latency."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nerf_loc_ros.evaluation.plots import plot_error_cdf, plot_per_frame, plot_trajectory
from nerf_loc_ros.evaluation.pose_metrics import FrameRecord, recall_thresholds, summarize_localization
from nerf_loc_ros.geometry import make_pose


def _perturbed(T, trans, rot_deg, axis=(0, 0, 1)):
    R = Rotation.from_rotvec(np.radians(rot_deg) * np.asarray(axis, float)).as_matrix()
    out = T.copy()
    out[:3, :3] = R @ T[:3, :3]
    out[:3, 3] += [trans, 0, 0]
    return out


@pytest.fixture()
def records():
    rng = np.random.default_rng(0)
    gts = [make_pose(Rotation.random(random_state=i).as_matrix(), rng.normal(size=3)) for i in range(10)]
    errs = [(0.01, 1.0), (0.03, 3.0), (0.04, 6.0), (0.2, 1.0), (0.001, 0.1), (0.015, 1.5), (0.5, 60.0),
            (0.009, 0.5), (None, None), (0.06, 1.0)]
    recs = []
    for i, (gt, (t, r)) in enumerate(zip(gts, errs)):
        est = None if t is None else _perturbed(gt, t, r)
        status = "FAILED" if est is None else ("LOW_CONFIDENCE" if i == 3 else "OK")
        recs.append(FrameRecord(f"f{i}", est, gt, status, {"total": 10.0 * (i + 1), "matching": float(i)}))
    return recs


def test_recall_medians_and_failures(records):
    s = summarize_localization(records, recall_thresholds(True, 0.0), warmup=0)
    assert s["frames"] == 10
    # (5 cm, 5 deg): frames 0, 1, 4, 5, 7 -> 5 of 10 (the failed frame counts as a miss)
    assert s["recall"]["5cm5deg"] == pytest.approx(0.5)
    assert s["recall"]["2cm2deg"] == pytest.approx(0.4)  # 0, 4, 5, 7
    assert s["recall"]["10cm5deg"] == pytest.approx(0.6)  # + 9
    assert s["failed_fraction"] == pytest.approx(0.1)
    assert s["median_trans"] == pytest.approx(0.035, abs=1e-6)  # failure = +inf sorts last
    # OK frames: all but 3 (low confidence) and 8 (failed); gross (> 50 cm or 50 deg): frame 6 -> 1 of 8
    assert s["ok_fraction"] == pytest.approx(0.8)
    assert s["ok_gross_error_fraction"] == pytest.approx(1 / 8)
    assert s["latency_ms_p50"] == pytest.approx(55.0) and s["stage_ms_p50"]["matching"] == pytest.approx(4.5)
    warm = summarize_localization(records, recall_thresholds(True, 0.0), warmup=2)
    assert warm["latency_ms_p50"] == pytest.approx(65.0)  # the first two frames are not timed


def test_scale_relative_thresholds():
    th = recall_thresholds(False, 4.0)
    assert th["2pct2deg"] == (pytest.approx(0.08), 2.0) and list(th)[0] == "2pct2deg"


def test_plots_are_written(records, tmp_path):
    for path in (plot_error_cdf({"a": records, "b": records[:5]}, tmp_path / "cdf.png"),
                 plot_trajectory(records, tmp_path / "traj.png"), plot_per_frame(records, tmp_path / "per.png")):
        assert path.stat().st_size > 5000

"""``nerf-loc replay``: run a bag through the localizer exactly as the live node does, score it, plot it.

Frames come through the same message conversions as the node (:func:`nerf_loc_ros.datasets.bag.load_bag`),
each one through :meth:`LocalizationSession.process` (the node's per-frame call). Written to ``out``:

- ``results_bag/``: ``<pose_topic>`` (``geometry_msgs/PoseStamped``, camera optical frame in the map frame)
  and ``/tf`` ``map -> odom`` (from the estimate and the bag's ``odom -> optical`` chain at the image stamp,
  as the node publishes it) or ``map -> <camera frame>`` when the bag has no odom frame;
- ``metrics.json``: :func:`summarize_localization` plus status counts and skipped frames;
- ``trajectory.png`` (top view, ground truth vs estimate), ``error_cdf.png``, ``per_frame.png``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..bags.reader import load_tf_buffer
from ..bags.tf_buffer import TFError
from ..datasets.bag import load_bag
from .plots import plot_error_cdf, plot_per_frame, plot_trajectory
from .pose_metrics import FrameRecord, json_safe, recall_thresholds, summarize_localization

__all__ = ["run_replay", "records_from_streams", "write_replay_report"]

log = logging.getLogger(__name__)


def run_replay(
    map_path: Path, bag: Path, image_topic: str | None, out: Path, camera_info_topic: str | None = None,
    gt_topic: str | None = None, gt_tf: tuple[str, str | None] | None = None, odom_frame: str = "odom",
    pose_topic: str = "/nerf_localizer/pose", use_prior: bool = True, device: str = "cpu",
    max_frames: int | None = None, progress: bool = True,
) -> dict:
    """Replay ``bag`` against the map at ``map_path``; returns the metrics dict (also ``out/metrics.json``)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ..conversions import MessageTypes, make_pose_stamped, make_tf_message, make_transform_stamped
    from ..localization import LocalizerConfig, load_localizer
    from ..localization.session import LocalizationSession, SessionConfig, map_to_odom

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    localizer = load_localizer(map_path, LocalizerConfig(device=device))
    frames = load_bag(bag, image_topic=image_topic, camera_info_topic=camera_info_topic, gt_topic=gt_topic,
                      gt_tf=gt_tf, max_frames=max_frames)
    has_gt = frames.extras.get("has_gt", True)
    tf = load_tf_buffer(bag)
    cam_frame = frames.extras.get("camera_frame") or "camera_optical_frame"
    session = LocalizationSession(localizer, SessionConfig(use_prior=use_prior))
    map_frame = localizer.frame_id

    types = MessageTypes.from_rosbags()
    records: list[FrameRecord] = []
    skipped: list[dict] = []
    statuses: Counter = Counter()
    tf_failures = 0
    results_bag = out / "results_bag"
    if results_bag.exists():
        import shutil

        shutil.rmtree(results_bag)
    with Writer(results_bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        c_pose = writer.add_connection(pose_topic, "geometry_msgs/msg/PoseStamped", typestore=types.typestore)
        c_tf = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=types.typestore)
        # arrival order, as a live node sees them (the loader sorts by stamp; the session skips late frames)
        order = np.argsort(frames.extras.get("recv_ns", frames.timestamps_ns), kind="stable")
        for i in tqdm(order, desc="replay", unit="frame", disable=not progress):
            stamp = int(frames.timestamps_ns[i])
            outcome = session.process(frames.images[i], frames.K[i], stamp)
            if outcome.result is None:
                skipped.append({"stamp_ns": stamp, "reason": outcome.skipped})
                continue
            res = outcome.result
            statuses[res.status.value] += 1
            records.append(FrameRecord(frames.names[i], res.T_world_cam, frames.T_world_cam[i] if has_gt else None,
                                       res.status.value, res.timings_ms, res.num_inliers, stamp))
            if res.T_world_cam is None or not res.ok:
                continue
            writer.write(c_pose, stamp, types.serialize(make_pose_stamped(res.T_world_cam, map_frame, stamp, types)))
            try:
                T_odom_cam = tf.lookup(odom_frame, cam_frame, stamp)
                edge = make_transform_stamped(map_to_odom(res.T_world_cam, T_odom_cam), map_frame, odom_frame,
                                              stamp, types)
            except TFError:
                tf_failures += 1
                edge = make_transform_stamped(res.T_world_cam, map_frame, cam_frame, stamp, types)
            writer.write(c_tf, stamp, types.serialize(make_tf_message([edge], types)))

    extra = dict(bag=str(bag), map=str(map_path), status_counts=dict(statuses), skipped=skipped,
                 odom_lookup_failures=tf_failures, units=localizer.units)
    if not has_gt:
        metrics = json_safe({"frames": len(records), **extra})
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics
    metrics = write_replay_report(records, out, localizer.units == "m", _extent(localizer.keyframe_centres()), extra)
    return metrics


def _extent(c: np.ndarray) -> float:
    return float(np.linalg.norm(c.max(0) - c.min(0))) if len(c) > 1 else 1.0



def records_from_streams(statuses: dict[int, tuple[str, dict[str, float]]], poses: dict[int, np.ndarray],
                         gts: dict[int, np.ndarray]) -> list[FrameRecord]:
    """Join per-stamp streams of a live run into frame records (stamps in int ns, poses 4x4 in one frame).

    ``statuses``: stamp -> (state name, timings ms); ``poses``: stamp -> estimated pose (published only when OK);
    ``gts``: stamp -> ground-truth pose. Frames are the stamps that have a status, in time order.
    """
    return [FrameRecord(str(t), poses.get(t), gts.get(t), state, timings, 0, t)
            for t, (state, timings) in sorted(statuses.items())]


def write_replay_report(records: list[FrameRecord], out: Path, metric: bool, extent: float, extra: dict) -> dict:
    """``metrics.json`` and the three plots for frame records; returns the metrics dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    thresholds = recall_thresholds(metric, extent)
    metrics = summarize_localization(records, thresholds)
    metrics.update(extra, thresholds={k: {"trans": t, "rot_deg": a} for k, (t, a) in thresholds.items()})
    unit = "m" if metric else "scene units"
    if any(r.T_gt is not None for r in records):
        plot_trajectory(records, out / "trajectory.png")
        plot_error_cdf({"nerf": records}, out / "error_cdf.png", unit)
        plot_per_frame(records, out / "per_frame.png", unit)
    metrics = json_safe(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics

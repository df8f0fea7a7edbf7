"""``replay_eval_node``: scores a live localizer against ground truth during ``ros2 bag play`` (replay.launch.py).

Subscribes the localizer's ``~/status`` (every processed frame, with latencies) and ``~/pose`` (published on OK
frames; pose of ``base_frame`` or of the camera), and the ground-truth topic (PoseStamped of the camera optical
frame), and counts the ``map_frame -> tf_child_frame`` transforms on ``/tf`` so the report says whether TF was
published for every localized frame. When no status arrived for ``idle_timeout`` seconds (steady clock) after
the first one (the bag ended), it writes the same ``metrics.json`` and plots as ``nerf-loc replay`` to ``out_dir``
and exits.
"""

from __future__ import annotations

import time

import numpy as np
import rclpy
import rclpy.executors
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time

from ..conversions import pose_msg_to_matrix, stamp_to_ns, transform_msg_to_matrix
from ..evaluation.replay import records_from_streams, write_replay_report

STATES = {0: "OK", 1: "LOW_CONFIDENCE", 2: "FAILED", 3: "NO_MAP"}


class ReplayEvalNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("nerf_replay_eval", **kwargs)
        params = {
            "status_topic": ("/nerf_localizer/status", "LocalizationStatus topic of the localizer"),
            "pose_topic": ("/nerf_localizer/pose", "PoseWithCovarianceStamped topic of the localizer"),
            "gt_topic": ("/ground_truth/pose", "ground truth PoseStamped of the camera optical frame"),
            "camera_frame": ("camera_optical_frame", "camera optical frame (the ground truth's body)"),
            "base_frame": ("base_link", "frame whose pose the localizer publishes"),
            "out_dir": ("replay_eval", "where metrics.json and the plots are written"),
            "metric": (True, "poses in metres (5cm5deg thresholds); false: scale-relative thresholds"),
            "scene_extent": (1.0, "scene extent for scale-relative thresholds (map units)"),
            "map_frame": ("map", "parent frame of the localizer's TF edge"),
            "tf_child_frame": ("odom", "child frame of the localizer's TF edge (odom, or the base/camera frame)"),
            "transform_tolerance": (0.1, "the localizer's transform_tolerance: TF stamp = image stamp + this"),
            "idle_timeout": (5.0, "seconds without a status after which the report is written"),
        }
        for name, (default, desc) in params.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=desc))
        from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
        from tf2_msgs.msg import TFMessage
        from tf2_ros import Buffer, TransformListener

        from nerf_loc_ros.msg import LocalizationStatus

        self.tf_buffer = Buffer()
        self.tf_listener = TransformListener(self.tf_buffer, self)
        self.statuses: dict[int, tuple[str, dict[str, float]]] = {}
        self.body_poses: list[tuple[int, np.ndarray]] = []
        self.gts: dict[int, np.ndarray] = {}
        self.tf_stamps: set[int] = set()
        self._last_status = None
        self.done = False
        self.create_subscription(LocalizationStatus, self.p("status_topic"), self._on_status, 100)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(PoseWithCovarianceStamped, self.p("pose_topic"), self._on_pose, reliable)
        self.create_subscription(PoseStamped, self.p("gt_topic"), self._on_gt, 100)
        self.create_subscription(TFMessage, "/tf", self._on_tf, 100)
        # a steady clock: with use_sim_time the node clock stops with the bag's /clock, exactly when this must fire
        self.create_timer(0.5, self._check_idle, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def p(self, name: str):
        return self.get_parameter(name).value

    def _on_status(self, msg) -> None:
        timings = dict(zip(msg.stage_names, (float(v) for v in msg.stage_latency_ms)))
        timings["total"] = float(msg.total_latency_ms)
        self.statuses[stamp_to_ns(msg.header.stamp)] = (STATES.get(msg.state, str(msg.state)), timings)
        self._last_status = time.monotonic()

    def _on_pose(self, msg) -> None:
        self.body_poses.append((stamp_to_ns(msg.header.stamp), pose_msg_to_matrix(msg.pose.pose)))

    def _on_gt(self, msg) -> None:
        self.gts[stamp_to_ns(msg.header.stamp)] = pose_msg_to_matrix(msg.pose)

    def _on_tf(self, msg) -> None:
        for t in msg.transforms:
            if t.header.frame_id == self.p("map_frame") and t.child_frame_id == self.p("tf_child_frame"):
                self.tf_stamps.add(stamp_to_ns(t.header.stamp) - int(round(self.p("transform_tolerance") * 1e9)))

    def _check_idle(self) -> None:
        if self.done or self._last_status is None or time.monotonic() - self._last_status < self.p("idle_timeout"):
            return
        self.write_report()
        self.done = True

    def write_report(self) -> dict:
        """Join the streams (pose of the base frame -> camera via TF) and write metrics.json + plots."""
        cam = self.p("camera_frame")
        poses = {}
        for stamp, T_map_body in self.body_poses:
            T_body_cam = np.eye(4)
            try:  # the localizer publishes the base pose; the ground truth is the camera's
                tf = self.tf_buffer.lookup_transform(self.p("base_frame"), cam, Time(nanoseconds=stamp),
                                                     Duration(seconds=0.1))
                T_body_cam = transform_msg_to_matrix(tf.transform)
            except Exception:  # noqa: BLE001 - no base frame: the pose already is the camera's
                pass
            poses[stamp] = T_map_body @ T_body_cam
        records = records_from_streams(self.statuses, poses, self.gts)
        ok_stamps = {stamp for stamp, (state, _) in self.statuses.items() if state == "OK"}
        extra = {"source": "replay_eval_node", "frames_with_gt": sum(r.T_gt is not None for r in records),
                 "ok_frames": len(ok_stamps), "ok_frames_with_tf": len(ok_stamps & self.tf_stamps),
                 "tf_edge": f"{self.p('map_frame')} -> {self.p('tf_child_frame')}"}
        m = write_replay_report(records, self.p("out_dir"), self.p("metric"), self.p("scene_extent"), extra)
        self.get_logger().info(
            f"{len(records)} frames: recall {m['recall']}, median {m['median_trans']} / {m['median_rot_deg']} deg, "
            f"p50 {m['latency_ms_p50']} ms; TF {extra['tf_edge']} on {extra['ok_frames_with_tf']} of "
            f"{extra['ok_frames']} OK frames -> {self.p('out_dir')}/metrics.json")
        return m


def main(args=None) -> None:
    """``ros2 run nerf_loc_ros replay_eval_node``; exits after writing the report."""
    rclpy.init(args=args)
    node = None
    try:
        node = ReplayEvalNode()
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.2)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        if node is not None and not node.done and node.statuses:
            node.write_report()
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()

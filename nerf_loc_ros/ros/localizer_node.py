"""``localizer_node``: camera images in, the robot's pose in the map out (TF ``map -> odom``, ``~/pose``).

Thin by design (DESIGN.md section 6): messages are converted by :mod:`nerf_loc_ros.conversions`, each frame is
one :meth:`LocalizationSession.process` call (the same call ``nerf-loc replay`` makes), the rest is ROS plumbing.

Subscriptions: ``image`` (sensor_msgs/Image, or ``image/compressed`` with ``compressed:=true``) + ``camera_info``
through an ``ApproximateTimeSynchronizer``; ``initialpose`` (PoseWithCovarianceStamped of ``base_frame``, or of
the camera when ``base_frame`` is empty). Publications: TF ``map_frame -> odom_frame`` (or ``map_frame ->
base_frame``/camera frame when ``odom_frame`` is empty), ``~/pose`` (reliable, transient local, depth 1),
``~/status``, ``~/debug/matches``, ``~/path``, ``/diagnostics``. Services: ``~/relocalize`` (std_srvs/Trigger),
``~/load_map`` (nerf_loc_ros/srv/LoadMap). Localization runs on a worker thread; a new frame replaces one that
has not been processed yet, so nothing queues up.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time

from ..conversions import (
    CameraFrameConverter,
    ConversionError,
    MessageTypes,
    make_pose_with_covariance_stamped,
    make_transform_stamped,
    pose_msg_to_matrix,
    rgb_to_image_msg,
    stamp_to_ns,
    transform_msg_to_matrix,
)
from ..geometry import invert_pose
from ..localization import LocalizerConfig, Status, load_localizer
from ..localization.debug import draw_matches
from ..localization.session import LocalizationSession, SessionConfig, map_to_odom
from ..maps import MapError
from .messages import diagnostics_message, path_message, status_message
from .spin import run_node

#: name -> (default, description, range or choices)
PARAMETERS = {
    "map_path": ("", "map directory built by `nerf-loc map build` (empty: wait for ~/load_map)", None),
    "map_frame": ("map", "frame of the map (REP-105)", None),
    "odom_frame": ("odom", "odometry frame; empty: publish map -> base_frame (or camera) directly", None),
    "base_frame": ("base_link", "robot base frame (initialpose and the no-odom TF edge); empty: the camera frame",
                   None),
    "publish_tf": (True, "publish the map -> odom (or map -> base) transform", None),
    "transform_tolerance": (0.1, "seconds added to the stamp of the published transform", (0.0, 10.0)),
    "tf_timeout": (0.05, "seconds to wait for the odom -> camera transform at the image stamp", (0.0, 5.0)),
    "image_qos": ("sensor_data", "QoS of the image and camera_info subscriptions", ("sensor_data", "reliable")),
    "compressed": (False, "subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image", None),
    "sync_queue_size": (10, "ApproximateTimeSynchronizer queue size", (1, 100)),
    "sync_slop": (0.02, "ApproximateTimeSynchronizer slop in seconds", (0.0, 1.0)),
    "use_prior": (True, "use the last confident pose as the prior of the next frame (tracking)", None),
    "max_prior_age": (2.0, "seconds after which a prior is not used", (0.0, 3600.0)),
    "refine": (False, "guided re-matching pass before the fine level (about 8 ms; rarely needed)", None),
    "fine": (True, "fine level: keyframe patches tracked into the image (maps built with patches)", None),
    "publish_pose_when_lost": (False, "publish ~/pose with a large covariance when a frame is not OK", None),
    "lost_covariance": (1e3, "variance used on each axis when publishing while lost", (0.0, 1e9)),
    "publish_debug_image": (True, "publish ~/debug/matches (only computed when someone subscribes)", None),
    "path_length": (1000, "poses kept in ~/path", (1, 100000)),
    "device": ("cpu", "torch device", ("cpu", "cuda")),
    "warn_throttle": (5.0, "seconds between repeated warnings of one kind", (0.0, 3600.0)),
}


def _descriptor(name: str, description: str, rng) -> ParameterDescriptor:
    d = ParameterDescriptor(name=name, description=description)
    if isinstance(rng, tuple) and len(rng) == 2 and all(isinstance(v, (int, float)) for v in rng):
        if all(isinstance(v, int) for v in rng):
            d.integer_range = [IntegerRange(from_value=rng[0], to_value=rng[1], step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)]
    elif isinstance(rng, tuple):
        d.additional_constraints = "one of: " + ", ".join(rng)
    return d


def check_parameter(name: str, value) -> str:
    """Empty string when ``value`` is acceptable for parameter ``name``, else the reason (for the set callback)."""
    if name not in PARAMETERS:
        return ""
    default, _, rng = PARAMETERS[name]
    if isinstance(default, bool) != isinstance(value, bool):
        return f"{name} must be a bool"
    if isinstance(rng, tuple) and all(isinstance(v, str) for v in rng) and value not in rng:
        return f"{name} must be one of {list(rng)}, got '{value}'"
    if isinstance(rng, tuple) and all(isinstance(v, (int, float)) for v in rng):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not (rng[0] <= value <= rng[1]):
            return f"{name} must be a number in [{rng[0]}, {rng[1]}], got {value!r}"
    return ""


class LocalizerNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("nerf_localizer", **kwargs)
        for name, (default, description, rng) in PARAMETERS.items():
            self.declare_parameter(name, default, _descriptor(name, description, rng))
        bad = [msg for name in PARAMETERS if (msg := check_parameter(name, self.p(name)))]
        if bad:
            raise ValueError("invalid parameters: " + "; ".join(bad))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.types = MessageTypes.from_rclpy()
        self.convert = CameraFrameConverter(undistort=True)
        self._lock = threading.Lock()
        self._pending = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_warn: dict[str, float] = {}
        self._path: deque = deque(maxlen=self.p("path_length"))
        self._stats = {"frames": 0, "ok": 0, "failed": 0, "skipped": 0, "dropped": 0, "last_state": "NO_MAP",
                       "last_latency_ms": 0.0}
        self.session: LocalizationSession | None = None
        self._camera_frame = ""  # frame of the last image (for initialpose -> camera prior)

        from tf2_ros import Buffer, TransformBroadcaster, TransformListener

        self.tf_buffer = Buffer()
        self.tf_listener = TransformListener(self.tf_buffer, self)
        self.tf_broadcaster = TransformBroadcaster(self)
        self._make_interfaces()
        if self.p("map_path"):
            ok, message = self.load_map(self.p("map_path"))
            if ok:
                self.get_logger().info(message)
            else:
                self.get_logger().error(message)
        self._worker = threading.Thread(target=self._work, name="localizer", daemon=True)
        self._worker.start()
        self.create_timer(1.0, self._publish_diagnostics)

    # ------------------------------------------------------------------ setup
    def p(self, name: str):
        return self.get_parameter(name).value

    def _on_set_parameters(self, params) -> SetParametersResult:
        for prm in params:
            reason = check_parameter(prm.name, prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _make_interfaces(self) -> None:
        import message_filters
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from nav_msgs.msg import Path
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from std_srvs.srv import Trigger

        from nerf_loc_ros.msg import LocalizationStatus
        from nerf_loc_ros.srv import LoadMap

        if self.p("image_qos") == "sensor_data":
            cam_qos = qos_profile_sensor_data
        else:
            cam_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        compressed = self.p("compressed")
        image_sub = message_filters.Subscriber(self, CompressedImage if compressed else Image,
                                               "image/compressed" if compressed else "image", qos_profile=cam_qos)
        info_sub = message_filters.Subscriber(self, CameraInfo, "camera_info", qos_profile=cam_qos)
        self.sync = message_filters.ApproximateTimeSynchronizer(
            [image_sub, info_sub], queue_size=self.p("sync_queue_size"), slop=self.p("sync_slop"))
        self.sync.registerCallback(self._on_frame)
        self._subs = (image_sub, info_sub)
        self.create_subscription(PoseWithCovarianceStamped, "initialpose", self._on_initial_pose, 10)
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, "~/pose", latched)
        self.status_pub = self.create_publisher(LocalizationStatus, "~/status", 10)
        self.debug_pub = self.create_publisher(Image, "~/debug/matches", qos_profile_sensor_data)
        self.path_pub = self.create_publisher(Path, "~/path", latched)
        from diagnostic_msgs.msg import DiagnosticArray

        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/relocalize", self._on_relocalize)
        self.create_service(LoadMap, "~/load_map", self._on_load_map)

    # ------------------------------------------------------------------ map
    def load_map(self, path: str) -> tuple[bool, str]:
        """Load a map and start a fresh session; the previous map stays when loading fails."""
        cfg = LocalizerConfig(refine=self.p("refine"), fine=self.p("fine"), device=self.p("device"))
        try:
            localizer = load_localizer(path, cfg)
        except (MapError, OSError, ValueError) as exc:
            return False, f"cannot load map '{path}': {exc}"
        session = LocalizationSession(localizer, SessionConfig(self.p("use_prior"), self.p("max_prior_age")))
        with self._lock:
            self.session = session
        if localizer.frame_id != self.p("map_frame"):
            self.get_logger().warn(f"map frame in the map file is '{localizer.frame_id}', publishing in "
                                   f"'{self.p('map_frame')}'")
        return True, f"loaded map '{path}': {localizer.summary()}"

    def _on_load_map(self, request, response):
        response.success, response.message = self.load_map(request.map_path)
        return response

    def _on_relocalize(self, request, response):
        with self._lock:
            if self.session is None:
                response.success, response.message = False, "no map loaded"
                return response
            self.session.reset()
        response.success, response.message = True, "prior cleared: the next frame relocalizes by retrieval"
        return response

    # ------------------------------------------------------------------ callbacks
    def _warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warn.get(kind, -1e9) >= self.p("warn_throttle"):
            self._last_warn[kind] = now
            self.get_logger().warn(message)

    def _on_frame(self, image_msg, info_msg) -> None:
        with self._lock:
            if self._pending is not None:
                self._stats["dropped"] += 1  # the worker is busy: the newest frame wins
            self._pending = (image_msg, info_msg)
        self._wake.set()

    def _on_initial_pose(self, msg) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        try:
            T_frame_body = pose_msg_to_matrix(msg.pose.pose)
            T_map_frame = self._lookup(self.p("map_frame"), msg.header.frame_id, stamp)
            body = self.p("base_frame")
            cam = self._camera_frame
            T_body_cam = self._lookup(body, cam, stamp) if body and cam else np.eye(4)
        except Exception as exc:  # noqa: BLE001 - any TF failure: reject the prior with a reason
            self._warn("initialpose", f"initialpose ignored: {exc}")
            return
        with self._lock:
            if self.session is not None:
                self.session.set_prior(T_map_frame @ T_frame_body @ T_body_cam, stamp or None)
        self.get_logger().info("initial pose set: the next frame uses keyframes near it")

    def _lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        if target == source:
            return np.eye(4)
        tf = self.tf_buffer.lookup_transform(target, source, Time(nanoseconds=int(stamp_ns)),
                                             timeout=Duration(seconds=self.p("tf_timeout")))
        return transform_msg_to_matrix(tf.transform)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(timeout=0.2):
                continue
            with self._lock:
                item, self._pending = self._pending, None
                self._wake.clear()
                session = self.session
            if item is None:
                continue
            try:
                self._process(session, *item)
            except Exception as exc:  # noqa: BLE001 - never let one frame kill the node
                self._warn("frame", f"frame skipped: {type(exc).__name__}: {exc}")

    def _process(self, session: LocalizationSession | None, image_msg, info_msg) -> None:
        stamp = stamp_to_ns(image_msg.header.stamp)
        cam_frame = image_msg.header.frame_id.lstrip("/")
        self._camera_frame = cam_frame
        map_frame = self.p("map_frame")
        if session is None:
            self.status_pub.publish(status_message(self.types, None, stamp, map_frame))
            self._warn("no_map", "no map loaded: call ~/load_map or set map_path")
            return
        try:
            rgb, K = self.convert(image_msg, info_msg)
        except ConversionError as exc:
            self._stats["skipped"] += 1
            self._warn("convert", f"frame at {stamp} skipped: {exc}")
            return
        outcome = session.process(rgb, K, stamp)
        self._stats["frames"] += 1
        if outcome.result is None:
            self._stats["skipped"] += 1
            self._warn("order", f"frame skipped: {outcome.skipped}")
            return
        res = outcome.result
        self._stats["last_state"] = res.status.value
        self._stats["last_latency_ms"] = res.timings_ms.get("total", 0.0)
        names = session.localizer.keyframe_names(res)
        self.status_pub.publish(status_message(self.types, res, stamp, map_frame, names, outcome.used_prior))
        if self.p("publish_debug_image") and self.debug_pub.get_subscription_count() > 0:
            self.debug_pub.publish(rgb_to_image_msg(draw_matches(rgb, res, K), "rgb8", stamp, cam_frame, self.types))
        if res.status != Status.OK:
            self._stats["failed"] += 1
            if self.p("publish_pose_when_lost"):
                T = res.T_world_cam if res.T_world_cam is not None else np.eye(4)
                cov = np.eye(6) * self.p("lost_covariance")
                self.pose_pub.publish(make_pose_with_covariance_stamped(T, cov, map_frame, stamp, self.types))
            return
        self._stats["ok"] += 1
        self._publish_pose(res.T_world_cam, res.covariance, stamp, cam_frame)

    def _publish_pose(self, T_map_cam: np.ndarray, cov: np.ndarray, stamp: int, cam_frame: str) -> None:
        map_frame, odom, base = self.p("map_frame"), self.p("odom_frame"), self.p("base_frame")
        body = base or cam_frame
        try:
            T_body_cam = self._lookup(body, cam_frame, stamp)
        except Exception as exc:  # noqa: BLE001 - tf2 raises several exception types
            self._warn("tf_body", f"no TF {body} -> {cam_frame} at {stamp}: {exc}; publishing the camera pose")
            body, T_body_cam = cam_frame, np.eye(4)
        T_map_body = T_map_cam @ invert_pose(T_body_cam)
        # covariance of the camera pose, as the body pose (same rotation block; translation lever arm ignored)
        self.pose_pub.publish(make_pose_with_covariance_stamped(T_map_body, cov, map_frame, stamp, self.types))
        self._path.append((stamp, T_map_body))
        self.path_pub.publish(path_message(self.types, list(self._path), map_frame))
        if not self.p("publish_tf"):
            return
        tf_stamp = stamp + int(self.p("transform_tolerance") * 1e9)
        if odom:
            try:
                T_odom_cam = self._lookup(odom, cam_frame, stamp)
            except Exception as exc:  # noqa: BLE001
                self._warn("tf_odom", f"no TF {odom} -> {cam_frame} at {stamp}: {exc}; map -> {odom} not published")
                return
            edge = make_transform_stamped(map_to_odom(T_map_cam, T_odom_cam), map_frame, odom, tf_stamp, self.types)
        else:
            edge = make_transform_stamped(T_map_body, map_frame, body, tf_stamp, self.types)
        self.tf_broadcaster.sendTransform(edge)

    def _publish_diagnostics(self) -> None:
        s = dict(self._stats)
        level = 0 if s["last_state"] == "OK" else (2 if s["last_state"] == "NO_MAP" else 1)
        msg = diagnostics_message(self.types, self.get_clock().now().nanoseconds, "nerf_localizer: localization",
                                  self.get_fully_qualified_name(), level, s["last_state"], s)
        self.diag_pub.publish(msg)

    def destroy_node(self):
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=2.0)
        return super().destroy_node()


def main(args=None) -> None:
    """``ros2 run nerf_loc_ros localizer_node``."""
    run_node(LocalizerNode, args)


if __name__ == "__main__":
    main()

"""The localizer and map server nodes in a real ROS 2 graph (rclpy, tf2, message_filters), DDS on loopback.

A helper node plays the procedural second session as a robot would (image + camera_info, TF odom -> base_link
-> camera_optical_frame); the localizer must publish ``~/pose`` and TF ``map -> odom`` that match the truth.
Skipped where ROS 2 is not installed (the ROS-free suite covers the logic with rosbags message classes).
"""

from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source a ROS 2 installation")
pytest.importorskip("tf2_ros", reason="needs ROS 2 tf2_ros")
pytest.importorskip("message_filters", reason="needs ROS 2 message_filters")
pytest.importorskip("nerf_loc_ros.msg", reason="needs the package built by colcon (generated messages)")

from nerf_loc_ros.bags.writer import DEFAULT_T_BASE_CAMERA, DEFAULT_T_MAP_ODOM  # noqa: E402
from nerf_loc_ros.conversions import (  # noqa: E402
    K_core_to_ros,
    MessageTypes,
    intrinsics_to_camera_info,
    make_transform_stamped,
    pose_msg_to_matrix,
    rgb_to_image_msg,
    transform_msg_to_matrix,
)
from nerf_loc_ros.geometry import invert_pose, pose_errors, ros_body_from_optical  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _spin(executor, stop):
    from rclpy.executors import ExternalShutdownException

    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
    except ExternalShutdownException:  # rclpy.shutdown() at the end of a test
        pass


def test_localizer_node_publishes_pose_and_map_to_odom(procedural_loc_map, ros_loopback):
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from tf2_ros import Buffer, StaticTransformBroadcaster, TransformBroadcaster, TransformListener

    from nerf_loc_ros.msg import LocalizationStatus
    from nerf_loc_ros.ros.localizer_node import LocalizerNode
    from nerf_loc_ros.ros.map_server_node import MapServerNode

    path, _, query = procedural_loc_map
    rclpy.init()
    stop = threading.Event()
    try:
        types = MessageTypes.from_rclpy()
        loc = LocalizerNode(parameter_overrides=[Parameter("map_path", value=str(path)),
                                                 Parameter("image_qos", value="reliable")])
        server = MapServerNode(parameter_overrides=[Parameter("map_path", value=str(path))])
        helper = rclpy.create_node("nerf_loc_test_helper")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        img_pub = helper.create_publisher(Image, "image", reliable)
        info_pub = helper.create_publisher(CameraInfo, "camera_info", reliable)
        tf_pub, static_pub = TransformBroadcaster(helper), StaticTransformBroadcaster(helper)
        buf = Buffer()
        TransformListener(buf, helper)
        poses, statuses = [], []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        helper.create_subscription(PoseWithCovarianceStamped, "/nerf_localizer/pose", poses.append, latched)
        helper.create_subscription(LocalizationStatus, "/nerf_localizer/status", statuses.append, 10)
        clouds = []
        helper.create_subscription(PointCloud2, "/nerf_map_server/cloud", clouds.append, latched)
        executor = MultiThreadedExecutor(num_threads=3)
        for n in (loc, server, helper):
            executor.add_node(n)
        threading.Thread(target=_spin, args=(executor, stop), daemon=True).start()

        T_base_optical = DEFAULT_T_BASE_CAMERA @ ros_body_from_optical()
        t0 = helper.get_clock().now().nanoseconds
        static_pub.sendTransform([
            make_transform_stamped(DEFAULT_T_BASE_CAMERA, "base_link", "camera_link", t0, types),
            make_transform_stamped(ros_body_from_optical(), "camera_link", "camera_optical_frame", t0, types)])
        frames = list(range(0, len(query), max(1, len(query) // 6)))[:6]
        for k, i in enumerate(frames):
            stamp = t0 + (k + 1) * 500_000_000
            T_odom_base = invert_pose(DEFAULT_T_MAP_ODOM) @ query.T_world_cam[i] @ invert_pose(T_base_optical)
            tf_pub.sendTransform(make_transform_stamped(T_odom_base, "odom", "base_link", stamp, types))
            h, w = query.images[i].shape[:2]
            info_pub.publish(intrinsics_to_camera_info(K_core_to_ros(query.K[i]), w, h, None, "plumb_bob", stamp,
                                                       "camera_optical_frame", types))
            img_pub.publish(rgb_to_image_msg(query.images[i], "rgb8", stamp, "camera_optical_frame", types))
            deadline = time.monotonic() + 30
            while len(statuses) <= k and time.monotonic() < deadline:
                time.sleep(0.05)
        assert len(statuses) == len(frames), f"{len(statuses)} statuses for {len(frames)} frames"
        ok = [s for s in statuses if s.state == 0]
        assert len(ok) >= len(frames) // 2, [(s.state, s.reason) for s in statuses]
        deadline = time.monotonic() + 5
        while len(poses) < len(ok) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(poses) == len(ok)
        # ~/pose is the base_link pose in map; TF map -> odom closes the chain to the true offset
        last = poses[-1]
        stamp = last.header.stamp.sec * 1_000_000_000 + last.header.stamp.nanosec
        i = frames[(stamp - t0) // 500_000_000 - 1]
        T_gt_base = query.T_world_cam[i] @ invert_pose(T_base_optical)
        rot, trans = pose_errors(pose_msg_to_matrix(last.pose.pose)[None], T_gt_base[None])
        assert rot[0] < 5 and trans[0] < 0.1
        assert len(last.pose.covariance) == 36 and last.pose.covariance[0] > 0
        tf = buf.lookup_transform("map", "odom", rclpy.time.Time())
        rot, trans = pose_errors(transform_msg_to_matrix(tf.transform)[None], DEFAULT_T_MAP_ODOM[None])
        assert rot[0] < 5 and trans[0] < 0.1
        assert clouds and clouds[-1].width > 100 and clouds[-1].header.frame_id == "map"  # latched map cloud
    finally:
        stop.set()
        rclpy.shutdown()


def test_replay_eval_node_scores_when_the_sim_clock_stops(tmp_path, ros_loopback):
    """replay.launch.py's evaluator: fed sim time, statuses, poses, ground truth and TF like a replay, it must write
    metrics.json after the bag (and so /clock) stops, counting the TF edge of every OK frame."""
    import json

    import numpy as np
    from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from tf2_msgs.msg import TFMessage

    from nerf_loc_ros.conversions import make_pose_stamped, make_pose_with_covariance_stamped
    from nerf_loc_ros.msg import LocalizationStatus
    from nerf_loc_ros.ros.replay_eval_node import ReplayEvalNode

    rclpy.init()
    stop = threading.Event()
    try:
        types = MessageTypes.from_rclpy()
        node = ReplayEvalNode(parameter_overrides=[
            Parameter("use_sim_time", value=True), Parameter("out_dir", value=str(tmp_path / "eval")),
            Parameter("idle_timeout", value=1.0), Parameter("base_frame", value="camera_optical_frame")])
        helper = rclpy.create_node("nerf_loc_eval_helper")
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        clock_pub = helper.create_publisher(Clock, "/clock", 10)
        status_pub = helper.create_publisher(LocalizationStatus, "/nerf_localizer/status", 100)
        pose_pub = helper.create_publisher(PoseWithCovarianceStamped, "/nerf_localizer/pose", reliable)
        gt_pub = helper.create_publisher(PoseStamped, "/ground_truth/pose", 100)
        tf_pub = helper.create_publisher(TFMessage, "/tf", 100)
        executor = SingleThreadedExecutor()
        for n in (node, helper):
            executor.add_node(n)
        threading.Thread(target=_spin, args=(executor, stop), daemon=True).start()
        deadline = time.monotonic() + 10
        while status_pub.get_subscription_count() == 0 or pose_pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline, "the evaluator did not subscribe"
            time.sleep(0.05)
        t0 = 1_700_000_000 * 10**9
        for k in range(6):
            stamp = t0 + k * 100_000_000
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = divmod(stamp, 10**9)
            clock_pub.publish(clock)
            T = np.eye(4)
            T[:3, 3] = [0.1 * k, 0.0, 1.0]
            gt_pub.publish(make_pose_stamped(T, "map", stamp, types))
            status = LocalizationStatus()
            status.header.stamp.sec, status.header.stamp.nanosec = divmod(stamp, 10**9)
            status.state = 0 if k < 5 else 2  # the last frame fails
            status.stage_names, status.stage_latency_ms, status.total_latency_ms = ["match"], [10.0], 20.0
            status_pub.publish(status)
            if k < 4:  # OK frames 0-3 publish pose + TF; frame 4 is OK without a TF
                T_est = T.copy()
                T_est[0, 3] += 0.01
                pose_pub.publish(make_pose_with_covariance_stamped(T_est, np.eye(6) * 1e-4, "map", stamp, types))
                tf_pub.publish(TFMessage(transforms=[make_transform_stamped(np.eye(4), "map", "odom",
                                                                            stamp + 100_000_000, types)]))
            time.sleep(0.1)
        deadline = time.monotonic() + 10  # /clock has stopped: the report must still come
        while not node.done and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node.done, "no report after the clock stopped"
        metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
        assert metrics["frames"] == 6 and metrics["ok_frames"] == 5 and metrics["ok_frames_with_tf"] == 4
        assert metrics["recall"]["5cm5deg"] == pytest.approx(4 / 6)
        assert metrics["median_trans"] == pytest.approx(0.01, abs=1e-6)
        assert (tmp_path / "eval" / "trajectory.png").stat().st_size > 0
    finally:
        stop.set()
        rclpy.shutdown()


def test_map_merge_node_creates_registers_and_publishes(procedural_loc_map, tmp_path, ros_loopback):
    """The merge service in a real graph: the first submap creates the global map (static TF, latched cloud); a
    dry run registers a second request in the worker thread while the executor keeps serving, publishes
    ~/registration_result and leaves the global map as it was."""
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2
    from tf2_ros import Buffer, TransformListener

    from nerf_loc_ros.maps import load_global_map
    from nerf_loc_ros.msg import RegistrationResult
    from nerf_loc_ros.ros.map_merge_node import MapMergeNode
    from nerf_loc_ros.srv import MergeSubmap

    path = procedural_loc_map[0]
    gpath = tmp_path / "global"
    rclpy.init()
    stop = threading.Event()
    try:
        node = MapMergeNode(parameter_overrides=[Parameter("global_map", value=str(gpath))])
        helper = rclpy.create_node("nerf_merge_test_helper")
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        results, clouds = [], []
        helper.create_subscription(RegistrationResult, "/nerf_map_merge/registration_result", results.append, latched)
        helper.create_subscription(PointCloud2, "/nerf_map_merge/cloud", clouds.append, latched)
        buf = Buffer()
        TransformListener(buf, helper)
        client = helper.create_client(MergeSubmap, "/nerf_map_merge/merge_submap")
        # the node spins as `ros2 run` spins it: a single-threaded executor blocking in wait without a timeout
        node_executor = SingleThreadedExecutor()
        node_executor.add_node(node)

        def spin_node():
            try:
                node_executor.spin()
            except ExternalShutdownException:
                pass

        threading.Thread(target=spin_node, daemon=True).start()
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(helper)
        threading.Thread(target=_spin, args=(executor, stop), daemon=True).start()
        assert client.wait_for_service(timeout_sec=10)

        def call(**fields):
            req = MergeSubmap.Request(**{"submap_path": str(path), **fields})
            fut = client.call_async(req)
            deadline = time.monotonic() + 120
            while not fut.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert fut.done(), "merge service did not answer"
            return fut.result()

        first = call()
        assert first.success and "created" in first.message
        assert [s.id for s in load_global_map(gpath).submaps] == ["0"]
        deadline = time.monotonic() + 5
        while not buf.can_transform("map", "submap_0", rclpy.time.Time()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert buf.can_transform("map", "submap_0", rclpy.time.Time())
        assert clouds and clouds[-1].width > 100 and clouds[-1].header.frame_id == "map"
        before = (gpath / "submaps.yaml").read_bytes()
        dry = call(dry_run=True)
        assert dry.result.header.frame_id == "map" and dry.result.state in (2, 1, 3)  # FAILED/AMBIGUOUS/REGISTERED
        deadline = time.monotonic() + 5
        while not results and time.monotonic() < deadline:
            time.sleep(0.05)
        assert results and results[-1].state == dry.result.state
        assert (gpath / "submaps.yaml").read_bytes() == before  # a dry run writes nothing
        bad = call(submap_path=str(tmp_path / "missing"))
        assert not bad.success and "cannot merge" in bad.message
    finally:
        stop.set()
        rclpy.shutdown()

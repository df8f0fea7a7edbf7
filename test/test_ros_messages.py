"""Message builders of the ROS layer with real ROS 2 message classes (rosbags), serialised to CDR and back;
the frame conversion shared by the bag loader and the live node; the map-to-odom edge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from nerf_loc_ros.conversions import (
    CameraFrameConverter,
    MessageTypes,
    UnusableCameraInfoError,
    intrinsics_to_camera_info,
    K_core_to_ros,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
)
from nerf_loc_ros.geometry import make_pose
from nerf_loc_ros.localization import LocalizationResult, Status
from nerf_loc_ros.localization.debug import draw_matches
from nerf_loc_ros.localization.session import map_to_odom
from nerf_loc_ros.ros.messages import (
    diagnostics_message,
    keyframe_markers,
    path_message,
    pointcloud2_message,
    register_package_messages,
    status_message,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def types():
    ts = register_package_messages(get_typestore(Stores.ROS2_HUMBLE), REPO / "msg")
    return MessageTypes.from_rosbags(ts)


def _roundtrip(types, msg):
    name = msg.__msgtype__
    return types.typestore.deserialize_cdr(types.serialize(msg), name)


def _result(status=Status.OK):
    rng = np.random.default_rng(0)
    return LocalizationResult(
        status, reason="" if status == Status.OK else "12 inliers < 15", T_world_cam=np.eye(4),
        covariance=np.diag([0.01, 0.04, 0.01, 1e-4, 1e-4, 4e-4]), num_keypoints=50, num_matches=40, num_inliers=30,
        reproj_error=0.8, keyframes=[2, 5], timings_ms={"backbone": 30.0, "matching": 12.5, "total": 48.0},
        keypoints=rng.uniform(0, 60, (50, 2)), matches_2d=rng.uniform(0, 60, (40, 2)),
        matches_3d=rng.normal(size=(40, 3)) + [0, 0, 5], inliers=np.arange(40) < 30,
    )


def test_status_message_fields(types):
    msg = _roundtrip(types, status_message(types, _result(), 1_500_000_000, "map", ["kf2", "kf5"], used_prior=True))
    assert msg.state == 0 and msg.reason == "" and msg.num_inliers == 30 and msg.num_matches == 40
    assert msg.header.frame_id == "map" and msg.header.stamp.sec == 1 and msg.header.stamp.nanosec == 500_000_000
    assert list(msg.stage_names) == ["backbone", "matching"] and msg.total_latency_ms == pytest.approx(48.0)
    assert np.allclose(msg.stage_latency_ms, [30.0, 12.5])
    assert msg.position_stddev_m == pytest.approx(0.2) and msg.orientation_stddev_rad == pytest.approx(0.02)
    assert list(msg.retrieval_candidates) == ["kf2", "kf5"] and msg.used_prior
    failed = _result(Status.FAILED)
    failed.T_world_cam = None
    m = _roundtrip(types, status_message(types, failed, 1, "map"))
    assert m.state == 2 and "inliers" in m.reason and m.position_stddev_m == 0.0
    none = _roundtrip(types, status_message(types, None, 1, "map"))
    assert none.state == 3 and none.reason == "no map loaded"


def test_pointcloud_markers_path_diagnostics(types):
    xyz = np.random.default_rng(1).normal(size=(100, 3)).astype(np.float32)
    rgb = np.random.default_rng(2).integers(0, 256, (100, 3)).astype(np.uint8)
    pc = _roundtrip(types, pointcloud2_message(types, xyz, "map", 5, rgb))
    assert pc.width == 100 and pc.point_step == 16 and [f.name for f in pc.fields] == ["x", "y", "z", "rgb"]
    rec = np.frombuffer(bytes(pc.data), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    assert np.array_equal(np.c_[rec["x"], rec["y"], rec["z"]], xyz)
    assert np.array_equal(rec["rgb"] >> 16, rgb[:, 0]) and np.array_equal(rec["rgb"] & 255, rgb[:, 2])

    T = np.repeat(np.eye(4)[None], 2, 0)
    T[1, :3, 3] = [1, 0, 0]
    K = np.repeat(np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]])[None], 2, 0)
    ma = _roundtrip(types, keyframe_markers(types, T, K, np.array([[100, 80], [100, 80]]), "map", 5, 0.5))
    pts = np.array([[p.x, p.y, p.z] for p in ma.markers[0].points])
    assert len(pts) == 2 * 16 and ma.markers[0].type == 5
    assert np.allclose(pts[0], [0, 0, 0]) and np.allclose(pts[1], [-0.25, -0.2, 0.5])  # corner (0, 0) at depth 0.5

    path = _roundtrip(types, path_message(types, [(1, np.eye(4)), (2, make_pose(np.eye(3), [1, 2, 3]))], "map"))
    assert len(path.poses) == 2 and path.poses[1].pose.position.z == 3 and path.header.stamp.nanosec == 2
    diag = _roundtrip(types, diagnostics_message(types, 7, "loc", "node", 1, "LOW_CONFIDENCE", {"frames": 3}))
    assert diag.status[0].level == 1 and diag.status[0].values[0].key == "frames"


def test_camera_frame_converter_raw_compressed_and_bad_info(types):
    rgb = np.random.default_rng(3).integers(0, 256, (40, 60, 3)).astype(np.uint8)
    K_core = np.array([[50.0, 0, 30], [0, 50.0, 20], [0, 0, 1]])
    info = intrinsics_to_camera_info(K_core_to_ros(K_core), 60, 40, None, "plumb_bob", 0, "cam", types)
    conv = CameraFrameConverter()
    for msg in (rgb_to_image_msg(rgb, "bgr8", 0, "cam", types), rgb_to_image_msg(rgb, "rgb8", 0, "cam", types)):
        out, K = conv(msg, info)
        assert np.array_equal(out, rgb) and np.allclose(K, K_core)
    out, _ = conv(rgb_to_compressed_msg(rgb, "png", 0, "cam", types), info)
    assert np.array_equal(out, rgb)
    wrong = intrinsics_to_camera_info(K_core_to_ros(K_core), 64, 40, None, "plumb_bob", 0, "cam", types)
    with pytest.raises(UnusableCameraInfoError, match="60x40"):
        conv(rgb_to_image_msg(rgb, "rgb8", 0, "cam", types), wrong)
    dist = intrinsics_to_camera_info(K_core_to_ros(K_core), 60, 40, np.array([0.1, 0, 0, 0, 0]), "plumb_bob", 0,
                                     "cam", types)
    with pytest.raises(UnusableCameraInfoError, match="pinhole"):
        CameraFrameConverter(undistort=False)(rgb_to_image_msg(rgb, "rgb8", 0, "cam", types), dist)
    undist, K2 = conv(rgb_to_image_msg(rgb, "rgb8", 0, "cam", types), dist)
    assert undist.shape == rgb.shape and not np.array_equal(undist, rgb) and np.allclose(K2, K_core)


def test_map_to_odom_closes_the_chain():
    rng = np.random.default_rng(4)
    T_map_odom = make_pose(Rotation.from_euler("z", 30, degrees=True).as_matrix(), [1.5, -0.75, 0])
    T_odom_cam = make_pose(Rotation.random(random_state=1).as_matrix(), rng.normal(size=3))
    assert np.allclose(map_to_odom(T_map_odom @ T_odom_cam, T_odom_cam), T_map_odom)


def test_debug_image_marks_inliers():
    img = np.zeros((60, 80, 3), np.uint8)
    res = _result()
    res.matches_3d = np.c_[res.matches_2d - [40, 30], np.full(40, 100.0)]  # in front of an identity camera
    out = draw_matches(img, res, np.array([[100.0, 0, 40], [0, 100, 30], [0, 0, 1]]))
    assert out.shape == img.shape and (out[..., 1] > 150).sum() > 50 and (out[..., 0] > 150).sum() > 5
    assert not img.any()  # input untouched


def test_registration_result_and_submap_transforms(types):
    from nerf_loc_ros.conversions import transform_msg_to_matrix
    from nerf_loc_ros.maps import GlobalMap, Submap
    from nerf_loc_ros.registration import RegistrationResult, RegistrationStatus
    from nerf_loc_ros.ros.messages import REGISTRATION_STATES, registration_result_message, submap_transforms

    T = make_pose(Rotation.from_euler("z", 30, degrees=True).as_matrix(), [1.0, -2.0, 0.5])
    res = RegistrationResult(RegistrationStatus.OK, np.eye(4), fitness=0.7, inlier_rmse=0.01, correspondences=300,
                             inliers=120, confidence=0.9, hypotheses=1, estimated_rre_deg=0.2, estimated_rte=0.004,
                             timings_ms={"total": 2500.0})
    msg = _roundtrip(types, registration_result_message(types, res, T, "3", True, "map", 5_000_000_000))
    assert msg.state == REGISTRATION_STATES["MERGED"] and msg.submap_id == "3" and msg.header.frame_id == "map"
    assert np.allclose(transform_msg_to_matrix(msg.transform), T) and msg.num_inliers == 120
    assert not msg.ambiguous and abs(msg.seconds - 2.5) < 1e-6 and abs(msg.confidence - 0.9) < 1e-6
    registered = registration_result_message(types, res, T, "", False, "map", 0)
    assert registered.state == REGISTRATION_STATES["REGISTERED"]  # OK but not written (dry run)
    amb = RegistrationResult(RegistrationStatus.AMBIGUOUS, np.eye(4), reason="a distinct transform has 95 %")
    msg = _roundtrip(types, registration_result_message(types, amb, T, "", False, "map", 0))
    assert msg.state == REGISTRATION_STATES["AMBIGUOUS"] and msg.ambiguous and "distinct" in msg.reason
    failed = RegistrationResult(RegistrationStatus.FAILED, reason="3 inliers")  # NaN rmse -> 0, no transform -> I
    msg = _roundtrip(types, registration_result_message(types, failed, None, "", False, "map", 0))
    assert msg.state == REGISTRATION_STATES["FAILED"] and msg.inlier_rmse_m == 0.0
    gmap = GlobalMap(Path("global"), "map", [Submap("0", Path("global/0"), np.eye(4)), Submap("1", Path("global/1"), T)])
    tfs = [_roundtrip(types, m) for m in submap_transforms(types, gmap, "map", 7)]
    assert [t.child_frame_id for t in tfs] == ["submap_0", "submap_1"] and tfs[1].header.frame_id == "map"
    assert np.allclose(transform_msg_to_matrix(tfs[1].transform), T)

"""Unit tests of the conventions module (SE(3), quaternions in ROS order, axes, pinhole camera)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nerf_loc_ros.geometry import (
    NonRigidPoseError,
    PinholeCamera,
    check_rigid,
    invert_pose,
    llff_to_opencv_pose,
    make_pose,
    opencv_to_opengl_pose,
    opengl_to_opencv_pose,
    pose_errors,
    pose_from_translation_quaternion,
    pose_to_translation_quaternion,
    ros_body_from_optical,
    rotation_error_deg,
    transform_points,
)

rng = np.random.default_rng(0)


def random_pose():
    return make_pose(Rotation.random(random_state=rng).as_matrix(), rng.normal(size=3))


def test_invert_and_compose():
    T_ab, T_bc = random_pose(), random_pose()
    X_c = rng.normal(size=(10, 3))
    X_a = transform_points(T_ab @ T_bc, X_c)
    np.testing.assert_allclose(transform_points(T_ab, transform_points(T_bc, X_c)), X_a, atol=1e-12)
    np.testing.assert_allclose(transform_points(invert_pose(T_ab @ T_bc), X_a), X_c, atol=1e-12)
    batch = np.stack([T_ab, T_bc])
    np.testing.assert_allclose(invert_pose(batch) @ batch, np.broadcast_to(np.eye(4), (2, 4, 4)), atol=1e-12)


def test_ros_quaternion_order_is_xyzw():
    # yaw of +90 deg about z: (x, y, z, w) = (0, 0, sin 45, cos 45) maps x-axis onto y-axis
    T = pose_from_translation_quaternion([1, 2, 3], [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    t, q = pose_to_translation_quaternion(T)
    np.testing.assert_allclose(t, [1, 2, 3])
    np.testing.assert_allclose(q, [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)], atol=1e-12)


def test_quaternion_roundtrip_and_normalisation():
    for _ in range(20):
        T = random_pose()
        t, q = pose_to_translation_quaternion(T)
        assert q[3] >= 0
        np.testing.assert_allclose(pose_from_translation_quaternion(t, 3.0 * q), T, atol=1e-12)
    with pytest.raises(ValueError, match="quaternion"):
        pose_from_translation_quaternion([0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(ValueError):
        pose_from_translation_quaternion([0, np.nan, 0], [0, 0, 0, 1])


def test_check_rigid_rejects_bad_matrices():
    T = random_pose()
    np.testing.assert_allclose(check_rigid(T), T, atol=1e-12)
    np.testing.assert_allclose(check_rigid(T[:3]), T, atol=1e-12)
    bad_scale = T.copy()
    bad_scale[:3, :3] *= 1.1
    reflect = T @ np.diag([1, 1, -1, 1])
    nan = T.copy()
    nan[0, 3] = np.nan
    for bad, msg in [(bad_scale, "not a rigid"), (reflect, "det"), (nan, "NaN"), (np.eye(3), "4x4")]:
        with pytest.raises(NonRigidPoseError, match=msg):
            check_rigid(bad, what="test pose")


def test_rotation_error_metric():
    R = Rotation.random(random_state=rng)
    d = Rotation.from_rotvec([0, np.radians(3.0), 0])
    T_gt = make_pose(R.as_matrix(), [0, 0, 0])
    T_est = make_pose((d * R).as_matrix(), [0.03, 0.04, 0])
    r, t = pose_errors(T_est, T_gt)
    assert r == pytest.approx(3.0, abs=1e-9) and t == pytest.approx(0.05, abs=1e-12)
    assert rotation_error_deg(T_gt, T_gt) == pytest.approx(0.0, abs=1e-6)


def test_opengl_opencv_axes():
    T_cv = random_pose()
    T_gl = opencv_to_opengl_pose(T_cv)
    # OpenGL camera looks along -z, OpenCV along +z: both give the same world viewing direction
    np.testing.assert_allclose(-T_gl[:3, 2], T_cv[:3, 2], atol=1e-12)
    np.testing.assert_allclose(-T_gl[:3, 1], T_cv[:3, 1], atol=1e-12)  # y up vs y down
    np.testing.assert_allclose(opengl_to_opencv_pose(T_gl), T_cv, atol=1e-12)


def test_llff_axes():
    R_cv = Rotation.random(random_state=rng).as_matrix()
    t = rng.normal(size=3)
    # LLFF columns [down, right, back] = [y_cv, x_cv, -z_cv]
    P = np.concatenate([np.stack([R_cv[:, 1], R_cv[:, 0], -R_cv[:, 2]], axis=1), t[:, None]], axis=1)
    np.testing.assert_allclose(llff_to_opencv_pose(P), make_pose(R_cv, t), atol=1e-12)


def test_ros_body_from_optical():
    T = ros_body_from_optical()
    # optical z (forward) is body x, optical x (right) is body -y, optical y (down) is body -z
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [1, 0, 0])
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, -1, 0])
    np.testing.assert_allclose(T[:3, :3] @ [0, 1, 0], [0, 0, -1])
    assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)


def test_pinhole_project_unproject_roundtrip():
    cam = PinholeCamera(500.0, 480.0, 320.0, 240.0, 640, 480)
    X = np.column_stack([rng.uniform(-1, 1, 50), rng.uniform(-1, 1, 50), rng.uniform(0.5, 5, 50)])
    uv, z = cam.project(X)
    np.testing.assert_allclose(cam.unproject(uv, z), X, atol=1e-12)
    uv_bad, _ = cam.project(np.array([[0.0, 0.0, -1.0]]))
    assert np.isnan(uv_bad).all()
    # the principal point of a centred camera is the image centre: pixel centres are at +0.5
    grid = cam.pixel_grid()
    assert grid.shape == (480, 640, 2) and grid[0, 0].tolist() == [0.5, 0.5]
    assert cam.in_image(np.array([[0.0, 0.0], [639.99, 479.99], [640.0, 10.0], [np.nan, 1.0]])).tolist() == [
        True, True, False, False]
    s = cam.scaled(0.5)
    assert (s.width, s.height, s.fx, s.cx) == (320, 240, 250.0, 160.0)


def test_depth_to_points():
    cam = PinholeCamera(100.0, 100.0, 2.0, 1.5, 4, 3)
    depth = np.full((3, 4), 2.0, np.float32)
    depth[0, 0] = 0.0
    depth[1, 1] = np.nan
    pts, uv = cam.depth_to_points(depth)
    assert len(pts) == 10
    np.testing.assert_allclose(pts[:, 2], 2.0)
    uv_back, _ = cam.project(pts)
    np.testing.assert_allclose(uv_back, uv + 0.5, atol=1e-12)

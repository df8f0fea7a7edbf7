"""TransformBuffer: chained lookups, interpolation, static frames, extrapolation and tree errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nerf_loc_ros.bags import (
    ConnectivityError,
    ExtrapolationError,
    TFTreeError,
    TransformBuffer,
    UnknownFrameError,
)
from nerf_loc_ros.conversions import MessageTypes, make_tf_message, make_transform_stamped
from nerf_loc_ros.geometry import invert_pose, make_pose, ros_body_from_optical, rotation_error_deg

S = 1_000_000_000


def yaw(deg: float, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    return make_pose(Rotation.from_euler("z", deg, degrees=True).as_matrix(), t)


@pytest.fixture
def tree() -> TransformBuffer:
    """map -> odom (static), odom -> base (dynamic, 2 samples), base -> cam -> optical (static)."""
    buf = TransformBuffer()
    buf.add(yaw(30, [1, 2, 0]), "map", "odom", static=True)
    buf.add(yaw(0, [0, 0, 0]), "odom", "base_link", 10 * S)
    buf.add(yaw(90, [2, 0, 0]), "odom", "base_link", 12 * S)
    buf.add(make_pose(np.eye(3), [0.1, 0, 0.2]), "base_link", "camera_link", static=True)
    buf.add(ros_body_from_optical(), "camera_link", "optical", static=True)
    return buf


def test_chain_at_sample_is_exact_product(tree):
    T = tree.lookup("map", "optical", 12 * S)
    expected = yaw(30, [1, 2, 0]) @ yaw(90, [2, 0, 0]) @ make_pose(np.eye(3), [0.1, 0, 0.2]) @ ros_body_from_optical()
    np.testing.assert_allclose(T, expected, atol=1e-12)
    # the inverse direction and a lookup between two branches of the tree
    np.testing.assert_allclose(tree.lookup("optical", "map", 12 * S), invert_pose(expected), atol=1e-12)
    T_cam_odom = invert_pose(make_pose(np.eye(3), [0.1, 0, 0.2]))
    np.testing.assert_allclose(tree.lookup("camera_link", "odom", 10 * S), T_cam_odom, atol=1e-12)
    np.testing.assert_array_equal(tree.lookup("odom", "odom", 0), np.eye(4))


def test_interpolation_linear_translation_slerp_rotation(tree):
    T = tree.lookup("odom", "base_link", 11 * S)
    np.testing.assert_allclose(T[:3, 3], [1, 0, 0], atol=1e-12)
    assert rotation_error_deg(T, yaw(45)) < 1e-9
    T = tree.lookup("odom", "base_link", 10 * S + S // 2)
    np.testing.assert_allclose(T[:3, 3], [0.5, 0, 0], atol=1e-12)
    assert rotation_error_deg(T, yaw(22.5)) < 1e-9


def test_static_frames_valid_at_any_time(tree):
    for t in (0, 5 * S, 10**18):
        np.testing.assert_allclose(tree.lookup("map", "odom", t), yaw(30, [1, 2, 0]), atol=1e-12)
    assert tree.is_static("optical") and not tree.is_static("base_link")
    assert tree.time_range("base_link") == (10 * S, 12 * S) and tree.time_range("odom") is None


def test_extrapolation_errors_and_tolerance(tree):
    with pytest.raises(ExtrapolationError, match="before the first"):
        tree.lookup("map", "optical", 9 * S)
    with pytest.raises(ExtrapolationError, match="after the last"):
        tree.lookup("map", "optical", 13 * S, tolerance_ns=S // 2)
    T = tree.lookup("odom", "base_link", 12 * S + S // 10, tolerance_ns=S // 5)  # clamped to the last sample
    np.testing.assert_allclose(T, yaw(90, [2, 0, 0]), atol=1e-12)
    assert not tree.can_transform("map", "optical", 20 * S)
    assert tree.can_transform("map", "optical", 11 * S)
    buf = TransformBuffer(default_tolerance_ns=S)
    buf.add(yaw(10), "a", "b", 5 * S)
    np.testing.assert_allclose(buf.lookup("a", "b", 5 * S + S // 2), yaw(10), atol=1e-12)


def test_latest_common_time(tree):
    tree.add(yaw(0, [5, 0, 0]), "map", "other", 11 * S)
    assert tree.latest_common_time("other", "optical") == 11 * S
    np.testing.assert_allclose(tree.lookup("odom", "base_link")[:3, 3], [2, 0, 0], atol=1e-12)  # latest


def test_max_gap_disables_interpolation():
    buf = TransformBuffer(max_gap_ns=S)
    buf.add(yaw(0, [0, 0, 0]), "w", "gt", 0)
    buf.add(yaw(0, [3, 0, 0]), "w", "gt", 3 * S)
    with pytest.raises(ExtrapolationError, match="gap"):
        buf.lookup("w", "gt", S + S // 2)
    np.testing.assert_allclose(buf.lookup("w", "gt", 2 * S + 9 * S // 10, tolerance_ns=S // 5)[:3, 3], [3, 0, 0])


def test_unknown_and_disconnected_frames_and_tree_errors(tree):
    with pytest.raises(UnknownFrameError, match="nowhere"):
        tree.lookup("map", "nowhere", 11 * S)
    tree.add(np.eye(4), "island", "rock", static=True)
    with pytest.raises(ConnectivityError, match="not connected"):
        tree.lookup("map", "rock", 11 * S)
    with pytest.raises(TFTreeError, match="already has parent"):
        tree.add(np.eye(4), "map", "base_link", 10 * S)
    with pytest.raises(TFTreeError, match="both static and dynamic"):
        tree.add(np.eye(4), "odom", "base_link", 0, static=True)
    with pytest.raises(TFTreeError, match="cycle"):
        tree.add(np.eye(4), "optical", "map", static=True)
    with pytest.raises(ValueError):
        tree.add(np.diag([1.0, 1, 2, 1]), "a", "b", 0)
    assert tree.frames() == sorted(["map", "odom", "base_link", "camera_link", "optical", "island", "rock"])
    assert "odom -> base_link (2 samples" in tree.describe()


def test_add_tf_messages_and_leading_slash():
    types = MessageTypes.from_rosbags()
    msg = make_tf_message(
        [make_transform_stamped(yaw(10, [1, 0, 0]), "/odom", "base_link", 5, types),
         make_transform_stamped(yaw(20, [2, 0, 0]), "odom", "/base_link", 7, types)],
        types,
    )
    buf = TransformBuffer()
    assert buf.add_tf_message(msg) == 2
    assert buf.parent("base_link") == "odom"
    np.testing.assert_allclose(buf.lookup("/odom", "base_link", 6)[:3, 3], [1.5, 0, 0], atol=1e-12)
    assert rotation_error_deg(buf.lookup("odom", "base_link", 6), yaw(15)) < 1e-9

"""ROS message <-> numpy conversions, with real rosbags message classes (ROS 2 Humble definitions)
and real CompressedImage / CameraInfo messages from the Ubiquity Robotics bags."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nerf_loc_ros.conversions import (
    K_core_to_ros,
    K_ros_to_core,
    MalformedMessageError,
    MessageTypes,
    UnsupportedEncodingError,
    UnusableCameraInfoError,
    camera_info_to_intrinsics,
    compressed_depth_msg_to_metres,
    compressed_msg_to_rgb,
    covariance_from_msg,
    depth_msg_to_metres,
    depth_to_image_msg,
    image_msg_to_rgb,
    intrinsics_to_camera_info,
    make_odometry,
    make_pose_stamped,
    make_pose_with_covariance_stamped,
    make_transform_stamped,
    ns_to_stamp,
    parse_compressed_format,
    pose_msg_to_matrix,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
    stamp_to_ns,
    stamped_pose_msg_to_matrix,
    transform_msg_to_matrix,
)
from nerf_loc_ros.geometry import make_pose
from nerf_loc_ros.geometry.undistort import UnsupportedDistortionError, Undistorter, undistort_image, undistort_points

TYPES = MessageTypes.from_rosbags()
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (7, 5, 3), dtype=np.uint8)  # odd sizes catch stride bugs


def cdr_roundtrip(msg):
    """Serialise with the real ROS 2 message definition and decode again."""
    name = msg.__msgtype__
    return TYPES.typestore.deserialize_cdr(TYPES.serialize(msg), name)


# ---------------------------------------------------------------------- raw images
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("pad", [0, 7])
def test_colour_encodings_roundtrip(encoding, pad):
    channels = 4 if "a" in encoding else 3
    step = None if pad == 0 else 5 * channels + pad
    msg = cdr_roundtrip(rgb_to_image_msg(RGB, encoding, 123, "cam", TYPES, step=step))
    assert msg.encoding == encoding and msg.step == (step or 5 * channels) and msg.header.frame_id == "cam"
    out = image_msg_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (7, 5, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_channel_order_is_what_the_encoding_says():
    msg = rgb_to_image_msg(RGB, "bgr8", types=TYPES)
    raw = np.asarray(msg.data).reshape(7, 5, 3)
    np.testing.assert_array_equal(raw[..., 0], RGB[..., 2])
    msg = rgb_to_image_msg(RGB, "bgra8", types=TYPES)
    raw = np.asarray(msg.data).reshape(7, 5, 4)
    np.testing.assert_array_equal(raw[..., 2], RGB[..., 0])
    assert np.all(raw[..., 3] == 255)


@pytest.mark.parametrize("pad", [0, 3])
def test_mono8_roundtrip_replicates_grey(pad):
    grey = RNG.integers(0, 256, (6, 9), dtype=np.uint8)
    msg = cdr_roundtrip(rgb_to_image_msg(grey, "mono8", types=TYPES, step=9 + pad))
    out = image_msg_to_rgb(msg)
    assert out.shape == (6, 9, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)
    # colour input: OpenCV's RGB->grey, which is exact on grey pixels
    np.testing.assert_array_equal(image_msg_to_rgb(rgb_to_image_msg(out, "mono8", types=TYPES)), out)


def test_last_row_without_padding_is_accepted():
    msg = rgb_to_image_msg(RGB, "rgb8", types=TYPES, step=20)
    msg.data = msg.data[: 20 * 6 + 15]  # some drivers do not pad the last row
    np.testing.assert_array_equal(image_msg_to_rgb(msg), RGB)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_roundtrip(encoding):
    mm = RNG.integers(0, 9000, (8, 6)).astype(np.uint16)
    mm[0, :3] = 0
    depth = mm.astype(np.float32) / np.float32(1000.0)
    msg = cdr_roundtrip(depth_to_image_msg(depth, encoding, 5, "cam", TYPES))
    assert msg.encoding == encoding and msg.is_bigendian == 0
    out = depth_msg_to_metres(msg)
    assert out.dtype == np.float32 and out.shape == (8, 6)
    np.testing.assert_array_equal(out, depth)  # bit-exact for both encodings
    if encoding == "32FC1":
        raw = np.frombuffer(np.asarray(msg.data).tobytes(), "<f4").reshape(8, 6)
        assert np.isnan(raw[0, 0])  # invalid written as NaN (REP 118), read back as 0


def test_depth_invalid_values_and_big_endian():
    d = np.array([[np.nan, -1.0, np.inf], [0.5, 1.25, 70.0]])
    out = depth_msg_to_metres(depth_to_image_msg(d, "32FC1", types=TYPES))
    np.testing.assert_array_equal(out, np.array([[0, 0, 0], [0.5, 1.25, 70.0]], np.float32))
    out16 = depth_msg_to_metres(depth_to_image_msg(d, "16UC1", types=TYPES))  # 70 m does not fit: invalid
    np.testing.assert_array_equal(out16, np.array([[0, 0, 0], [0.5, 1.25, 0]], np.float32))
    mm = np.array([[1, 258, 65535]], dtype=np.uint16)
    msg = depth_to_image_msg(mm / 1000.0, "16UC1", types=TYPES)
    msg.is_bigendian = 1
    msg.data = TYPES.uint8_array(mm.astype(">u2"))
    np.testing.assert_array_equal(depth_msg_to_metres(msg), mm.astype(np.float32) / np.float32(1000.0))


def test_rclpy_flavour_arrays_are_read_too():
    """rclpy messages carry array.array('B'): the same converters read them."""
    rclpy_like = MessageTypes(lambda name: TYPES.typestore.types[name], flavour="rclpy")
    msg = rgb_to_image_msg(RGB, "bgr8", types=rclpy_like, step=17)
    assert type(msg.data).__name__ == "array"
    np.testing.assert_array_equal(image_msg_to_rgb(msg), RGB)
    K = np.array([[100.0, 0, 2], [0, 100, 3], [0, 0, 1]])
    info = intrinsics_to_camera_info(K, 4, 6, types=rclpy_like)
    assert isinstance(info.k, list)
    assert camera_info_to_intrinsics(info).size == (4, 6)


def test_core_does_not_import_ros():
    # a fresh interpreter: other test modules (the rclpy node tests) may have imported ROS in this one
    code = ("import sys, nerf_loc_ros.conversions, nerf_loc_ros.datasets, nerf_loc_ros.localization, "
            "nerf_loc_ros.evaluation.replay, nerf_loc_ros.ros.messages, nerf_loc_ros.cli.main; "
            "bad = [m for m in ('rclpy', 'cv_bridge', 'tf2_ros', 'message_filters', 'sensor_msgs') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------------- compressed
def test_png_roundtrip_is_exact_and_jpeg_is_close():
    img = cv2.GaussianBlur(RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8), (7, 7), 2)
    png = cdr_roundtrip(rgb_to_compressed_msg(img, "png", 9, "cam", TYPES))
    assert png.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_msg_to_rgb(png), img)
    jpg = cdr_roundtrip(rgb_to_compressed_msg(img, "jpeg", types=TYPES, jpeg_quality=95))
    assert jpg.format == "rgb8; jpeg compressed bgr8" and bytes(jpg.data[:3]) == b"\xff\xd8\xff"
    out = compressed_msg_to_rgb(jpg)
    assert out.shape == img.shape and np.abs(out.astype(int) - img).mean() < 3.0
    jpg.format = "jpg"  # ROS 1 style
    np.testing.assert_array_equal(compressed_msg_to_rgb(jpg), out)


def test_compressed_formats_parsed():
    assert parse_compressed_format("jpeg") == ("jpeg", None)
    assert parse_compressed_format("JPG") == ("jpeg", None)
    assert parse_compressed_format("rgb8; jpeg compressed bgr8") == ("jpeg", "rgb8")
    assert parse_compressed_format("16UC1; compressedDepth") == ("compressedDepth", "16UC1")
    assert parse_compressed_format("32FC1; compressedDepth png") == ("compressedDepth", "32FC1")
    assert parse_compressed_format("") == ("", None)
    for bad in ("h264", "rgb8; theora", "16UC1; compressedDepth rvl"):
        with pytest.raises(UnsupportedEncodingError):
            parse_compressed_format(bad)


def compressed_depth_msg(fmt: str, png: np.ndarray, quant=(0.0, 0.0)):
    """A compressedDepth message as image_transport writes it: 12-byte header (format, quantA, quantB) + PNG."""
    header = np.frombuffer(np.array([0], "<i4").tobytes() + np.array(quant, "<f4").tobytes(), np.uint8)
    data = TYPES.uint8_array(np.concatenate([header, png.reshape(-1)]))
    return TYPES.make("sensor_msgs/msg/CompressedImage", header=TYPES.header(0, "d"), format=fmt, data=data)


def test_compressed_depth_16uc1_and_32fc1():
    mm = RNG.integers(0, 5000, (10, 12)).astype(np.uint16)
    msg = compressed_depth_msg("16UC1; compressedDepth", cv2.imencode(".png", mm)[1])
    expected = mm.astype(np.float32) / np.float32(1000)
    np.testing.assert_array_equal(compressed_depth_msg_to_metres(cdr_roundtrip(msg)), expected)
    with pytest.raises(UnsupportedEncodingError, match="compressed_depth_msg_to_metres"):
        compressed_msg_to_rgb(msg)
    # 32FC1: inverse-depth quantisation of image_transport's compressedDepth codec
    depth_max, q = 10.0, 100.0
    a = q * (q + 1.0)
    b = 1.0 - a / depth_max
    d = np.array([[1.0, 2.0, 0.0], [4.0, 5.5, 9.0]], np.float32)
    inv = np.where(d > 0, np.round(a / np.where(d > 0, d, 1) + b), 0).astype(np.uint16)
    msg = compressed_depth_msg("32FC1; compressedDepth png", cv2.imencode(".png", inv)[1], (a, b))
    out = compressed_depth_msg_to_metres(msg)
    assert out[0, 2] == 0 and np.allclose(out, d, atol=0.01)


# ---------------------------------------------------------------------- bad input
def test_bad_raw_images_raise_clear_errors():
    msg = rgb_to_image_msg(RGB, "rgb8", types=TYPES)
    msg.encoding = "yuv422"
    with pytest.raises(UnsupportedEncodingError, match="yuv422"):
        image_msg_to_rgb(msg)
    msg.encoding = "16UC1"
    with pytest.raises(UnsupportedEncodingError, match="depth_msg_to_metres"):
        image_msg_to_rgb(msg)
    msg = rgb_to_image_msg(RGB, "rgb8", types=TYPES)
    msg.data = msg.data[:-10]
    with pytest.raises(MalformedMessageError, match="truncated"):
        image_msg_to_rgb(msg)
    msg = rgb_to_image_msg(RGB, "rgb8", types=TYPES)
    msg.data = np.concatenate([msg.data, np.zeros(3, np.uint8)])
    with pytest.raises(MalformedMessageError, match="expected 105"):
        image_msg_to_rgb(msg)
    msg = rgb_to_image_msg(RGB, "rgb8", types=TYPES)
    msg.step = 14
    with pytest.raises(MalformedMessageError, match="step 14"):
        image_msg_to_rgb(msg)
    msg.height = 0
    with pytest.raises(MalformedMessageError):
        image_msg_to_rgb(msg)
    with pytest.raises(UnsupportedEncodingError):
        rgb_to_image_msg(RGB, "bayer_rggb8", types=TYPES)
    with pytest.raises(UnsupportedEncodingError, match="mono16"):
        depth_msg_to_metres(TYPES.make("sensor_msgs/msg/Image", header=TYPES.header(0, ""), height=1, width=1,
                                       encoding="mono16", is_bigendian=0, step=2, data=TYPES.uint8_array(b"\0\0")))
    with pytest.raises(ValueError):
        rgb_to_image_msg(RGB[..., 0], "rgb8", types=TYPES)


def test_corrupt_compressed_images_raise(ubiquity_jpeg):
    msg = rgb_to_compressed_msg(RGB, "jpeg", types=TYPES)
    msg.data = ubiquity_jpeg[: len(ubiquity_jpeg) // 2]
    with pytest.raises(MalformedMessageError, match="corrupt or truncated"):
        compressed_msg_to_rgb(msg)
    msg.data = np.frombuffer(b"definitely not an image" * 4, np.uint8)
    with pytest.raises(MalformedMessageError, match="neither JPEG nor PNG"):
        compressed_msg_to_rgb(msg)
    msg.data = np.zeros(0, np.uint8)
    with pytest.raises(MalformedMessageError, match="no data"):
        compressed_msg_to_rgb(msg)
    msg.data, msg.format = ubiquity_jpeg, "h264"
    with pytest.raises(UnsupportedEncodingError, match="h264"):
        compressed_msg_to_rgb(msg)


def test_unusable_camera_info_raises():
    info = intrinsics_to_camera_info(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), 640, 480, types=TYPES)
    info.k = np.zeros(9)
    with pytest.raises(UnusableCameraInfoError, match="all-zero K"):
        camera_info_to_intrinsics(info)
    info = intrinsics_to_camera_info(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), 640, 480, types=TYPES)
    info.width = 0
    with pytest.raises(UnusableCameraInfoError, match="size 0x480"):
        camera_info_to_intrinsics(info)
    info.width, info.k = 640, np.array([-5.0, 0, 320, 0, 500, 240, 0, 0, 1])
    with pytest.raises(UnusableCameraInfoError, match="pinhole"):
        camera_info_to_intrinsics(info)


# ---------------------------------------------------------------------- camera info
def test_camera_info_roundtrip_and_binning_roi():
    K = np.array([[525.5, 0, 319.25], [0, 524.0, 239.75], [0, 0, 1]])
    D = np.array([0.1, -0.2, 0.001, 0.002, 0.03])
    info = cdr_roundtrip(intrinsics_to_camera_info(K, 640, 480, D, "plumb_bob", 77, "cam", TYPES))
    K2, size, model, D2 = camera_info_to_intrinsics(info)
    np.testing.assert_array_equal(K2, K)
    np.testing.assert_array_equal(D2, D)
    assert size == (640, 480) and model == "plumb_bob" and stamp_to_ns(info.header.stamp) == 77
    np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4)[:, :3], K)
    info.binning_x = info.binning_y = 2
    Kb, sizeb, _, _ = camera_info_to_intrinsics(info)
    assert sizeb == (320, 240) and np.allclose(Kb[:2], K[:2] / 2)
    assert camera_info_to_intrinsics(intrinsics_to_camera_info(K, 640, 480, types=TYPES)).D.tolist() == [0.0] * 5
    np.testing.assert_array_equal(K_core_to_ros(K_ros_to_core(K)), K)
    assert K_ros_to_core(K)[0, 2] == K[0, 2] + 0.5


# ---------------------------------------------------------------------- stamps and poses
def test_stamps():
    for ns in (0, 1, 1_700_000_000_123_456_789, -1, -1_500_000_001):
        st = ns_to_stamp(ns, TYPES)
        assert 0 <= st.nanosec < 1_000_000_000 and stamp_to_ns(st) == ns
    assert stamp_to_ns(SimpleNamespace(secs=3, nsecs=5)) == 3_000_000_005  # ROS 1 / genpy
    assert stamp_to_ns(SimpleNamespace(nanoseconds=42)) == 42  # rclpy.time.Time
    with pytest.raises(ValueError):
        ns_to_stamp(2**31 * 1_000_000_000, TYPES)
    with pytest.raises(MalformedMessageError):
        stamp_to_ns(SimpleNamespace(seconds=1))


def test_poses_roundtrip_and_quaternion_order():
    T = make_pose(Rotation.from_euler("xyz", [0.3, -1.1, 2.5]).as_matrix(), [1.0, -2.0, 0.5])
    tf = cdr_roundtrip(make_transform_stamped(T, "map", "odom", 1_000, TYPES))
    assert tf.header.frame_id == "map" and tf.child_frame_id == "odom"
    np.testing.assert_allclose(transform_msg_to_matrix(tf), T, atol=1e-12)
    np.testing.assert_allclose(transform_msg_to_matrix(tf.transform), T, atol=1e-12)
    yaw90 = make_pose(Rotation.from_euler("z", 90, degrees=True).as_matrix(), [0, 0, 0])
    q = make_pose_stamped(yaw90, "map", 0, TYPES).pose.orientation
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)  # x, y, z, w
    cov = np.diag([0.01, 0.02, 0.03, 0.001, 0.002, 0.003])
    pwc = cdr_roundtrip(make_pose_with_covariance_stamped(T, cov, "map", 5, TYPES))
    sp = stamped_pose_msg_to_matrix(pwc)
    np.testing.assert_allclose(sp.T, T, atol=1e-12)
    np.testing.assert_array_equal(sp.covariance, cov)
    assert (sp.stamp_ns, sp.frame_id, sp.child_frame_id) == (5, "map", None)
    odom = cdr_roundtrip(make_odometry(T, "odom", "base_link", 6, pose_cov=cov, twist=np.arange(6.0), types=TYPES))
    sp = stamped_pose_msg_to_matrix(odom)
    np.testing.assert_allclose(sp.T, T, atol=1e-12)
    assert sp.child_frame_id == "base_link" and odom.twist.twist.angular.z == 5.0
    np.testing.assert_array_equal(covariance_from_msg(odom), cov)
    np.testing.assert_allclose(pose_msg_to_matrix(odom), T, atol=1e-12)
    with pytest.raises(ValueError):
        make_pose_stamped(np.diag([2.0, 1, 1, 1]), "map", 0, TYPES)  # not rigid


# ---------------------------------------------------------------------- real data + undistortion
@pytest.fixture(scope="module")
def ubiquity_msgs(shared_data):
    from nerf_loc_ros.bags import BagReader

    path = shared_data / "ubiquity_raspicam_bags" / "ros1" / "aruco_images.bag"
    if not path.exists():
        pytest.skip(f"{path} missing")
    with BagReader(path) as bag:
        msgs = {m.msgtype: m.msg for m in bag.messages()}
    return msgs["sensor_msgs/msg/CompressedImage"], msgs["sensor_msgs/msg/CameraInfo"]


@pytest.fixture(scope="module")
def ubiquity_jpeg(ubiquity_msgs):
    return np.asarray(ubiquity_msgs[0].data)


def test_real_jpeg_and_ros1_camera_info_undistort(ubiquity_msgs):
    img_msg, info_msg = ubiquity_msgs
    assert hasattr(info_msg, "K") and not hasattr(info_msg, "k")  # ROS 1 field names
    rgb = compressed_msg_to_rgb(img_msg)
    assert rgb.shape == (960, 1280, 3) and rgb.dtype == np.uint8
    intr = camera_info_to_intrinsics(info_msg)
    assert intr.size == (1280, 960) and intr.distortion_model == "plumb_bob" and intr.has_distortion
    np.testing.assert_allclose(intr.D, [0.157006, -0.286270, -0.0000560, 0.001586, 0], atol=1e-6)
    np.testing.assert_allclose(intr.K[0], [1014.343103, 0, 637.246371], atol=1e-5)
    und, K_new = undistort_image(rgb, intr.K, intr.D, intr.distortion_model)
    assert und.shape == rgb.shape and und.dtype == np.uint8
    np.testing.assert_array_equal(K_new, intr.K)
    diff = np.abs(und.astype(int) - rgb).mean()
    assert diff > 2.0  # the lens distortion is visible
    und0, K0 = undistort_image(rgb, intr.K, intr.D, intr.distortion_model, alpha=0.0)
    assert und0.shape == rgb.shape and not np.allclose(K0, intr.K)


def test_undistortion_models_and_points():
    K = np.array([[300.0, 0, 159.5], [0, 300.0, 119.5], [0, 0, 1]])
    img = RNG.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    same, K2 = undistort_image(img, K, np.zeros(5), "plumb_bob")
    assert same is img and np.array_equal(K2, K)
    same, _ = undistort_image(img, K, [], "")
    assert same is img
    with pytest.raises(UnsupportedDistortionError, match="unified"):
        undistort_image(img, K, [0.1, 0, 0, 0, 0], "unified")
    with pytest.raises(UnsupportedDistortionError, match="coefficients"):
        undistort_image(img, K, [0.1, 0.0, 0.0], "plumb_bob")
    # points: distort with OpenCV's model, undistort back
    X = np.stack(np.meshgrid(np.linspace(-0.4, 0.4, 5), np.linspace(-0.3, 0.3, 5)), -1).reshape(-1, 2)
    X3 = np.hstack([X, np.ones((len(X), 1))])
    pin = X * 300.0 + [159.5, 119.5]
    for model, D in (("plumb_bob", [0.1, -0.05, 0.001, -0.002, 0.01]),
                     ("rational_polynomial", [0.1, -0.05, 0.001, -0.002, 0.01, 0.02, 0.0, 0.0]),
                     ("equidistant", [0.05, -0.01, 0.002, 0.0])):
        D = np.array(D)
        if model == "equidistant":
            dist = cv2.fisheye.distortPoints(X.reshape(-1, 1, 2), K, D).reshape(-1, 2)
        else:
            dist = cv2.projectPoints(X3, np.zeros(3), np.zeros(3), K, D)[0].reshape(-1, 2)
        np.testing.assert_allclose(undistort_points(dist, K, D, model), pin, atol=1e-3)
        und = Undistorter(K, D, model, (320, 240))
        out = und(img)
        assert out.shape == img.shape and not np.array_equal(out, img)
        depth = np.ones((240, 320), np.float32)
        assert und(depth, cv2.INTER_NEAREST).dtype == np.float32

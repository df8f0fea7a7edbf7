"""Bag reading (ROS 1 / sqlite3 / MCAP), the bag dataset loader, and the bag writer on real data."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from nerf_loc_ros.bags import (
    DEFAULT_T_BASE_CAMERA,
    DEFAULT_T_MAP_ODOM,
    BagError,
    BagReader,
    bag_info,
    load_tf_buffer,
    read_bag_custom_data,
    write_bag,
)
from nerf_loc_ros.conversions import (
    MessageTypes,
    camera_info_to_intrinsics,
    compressed_msg_to_rgb,
    intrinsics_to_camera_info,
    make_odometry,
    make_pose_stamped,
    make_tf_message,
    make_transform_stamped,
    rgb_to_image_msg,
    stamp_to_ns,
    stamped_pose_msg_to_matrix,
)
from nerf_loc_ros.datasets.bag import load_bag
from nerf_loc_ros.datasets.posed_images import DatasetError, PosedImages
from nerf_loc_ros.geometry import invert_pose, make_pose, pose_errors, ros_body_from_optical

UBIQUITY = {  # name -> (image topic as recorded, camera_info topic, #camera_info, (width, height))
    "aruco_images": ("/raspicam_node/image/compressed", "/raspicam_node/camera_info", 15, (1280, 960)),
    "aruco_marker": ("/raspicam_node/image/compressed", "/raspicam_node/camera_info", 1, (1280, 720)),
    "fiducial_board_611": (
        "raspicam_node/camera/image/compressed",  # recorded without the leading slash
        "/raspicam_node/camera/camera_info",
        32,
        (1280, 720),
    ),
}
T0 = 1_600_000_000 * 1_000_000_000


def ubiquity_forms(root: Path, name: str) -> dict[str, Path]:
    d = root / "ubiquity_raspicam_bags"
    return {
        "rosbag1": d / "ros1" / f"{name}.bag",
        "sqlite3": d / "ros2_sqlite3" / name,
        "mcap": d / "ros2_mcap" / name,
        "bare_db3": d / "ros2_sqlite3" / name / f"{name}.db3",
        "bare_mcap": d / "ros2_mcap" / name / f"{name}.mcap",
    }


@pytest.fixture(scope="module")
def ubiquity(shared_data):
    if not (shared_data / "ubiquity_raspicam_bags").is_dir():
        pytest.skip("ubiquity_raspicam_bags missing from the shared data")
    return shared_data


def load_sevenscenes(root: Path, n: int) -> PosedImages:
    """Tiny local loader: the first ``n`` 7-Scenes map frames as PosedImages (depth in metres)."""
    names = (root / "map.txt").read_text().split()[:n]
    K = np.loadtxt(root / "camera-intrinsics.txt")
    images, depths, poses, stamps = [], [], [], []
    for name in names:
        base = root / "frames" / name
        images.append(np.array(Image.open(f"{base}.color.png").convert("RGB")))
        mm = np.array(Image.open(f"{base}.depth.png")).astype(np.uint16)
        depths.append(mm.astype(np.float32) / np.float32(1000.0))
        poses.append(np.loadtxt(f"{base}.pose.txt"))  # camera-to-world, OpenCV axes, metres
        stamps.append(T0 + int(name.split("-")[1]) * 33_333_333)  # Kinect at ~30 Hz
    return PosedImages(images, np.stack([K] * n), np.stack(poses), names, np.array(stamps), depths, source=str(root))


@pytest.fixture(scope="module")
def sevenscenes(shared_data) -> PosedImages:
    root = shared_data / "sevenscenes_redkitchen"
    if not root.is_dir():
        pytest.skip("sevenscenes_redkitchen missing from the shared data")
    return load_sevenscenes(root, 5)


@pytest.fixture(scope="module")
def written(sevenscenes, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bags")
    return {s: write_bag(sevenscenes, out / f"redkitchen_{s}", storage=s) for s in ("mcap", "sqlite3")}


# ---------------------------------------------------------------------- reading real bags
def _digest(path: Path) -> list[tuple]:
    rows = []
    with BagReader(path) as bag:
        for m in bag.messages():
            stamp = stamp_to_ns(m.msg.header.stamp)
            if hasattr(m.msg, "format"):
                payload = (m.msg.format, hashlib.md5(np.asarray(m.msg.data).tobytes()).hexdigest())
            else:
                K, size, model, D = camera_info_to_intrinsics(m.msg)
                payload = (tuple(K.ravel()), size, model, tuple(D))
            rows.append(("/" + m.topic.lstrip("/"), m.msgtype, m.recv_ns, stamp, m.msg.header.frame_id, payload))
    return rows


@pytest.mark.parametrize("name", sorted(UBIQUITY))
def test_ubiquity_bags_identical_in_all_storage_forms(ubiquity, name):
    forms = ubiquity_forms(ubiquity, name)
    digests = {form: _digest(p) for form, p in forms.items()}
    ref = digests["rosbag1"]
    image_topic, info_topic, n_info, size = UBIQUITY[name]
    assert len(ref) == n_info + 1
    for form, rows in digests.items():
        assert rows == ref, f"{form} differs from the ROS 1 original"
    info = bag_info(forms["mcap"])
    assert info["storage"] == "mcap" and info["message_count"] == n_info + 1
    assert info["topics"][image_topic] == {"type": "sensor_msgs/msg/CompressedImage", "count": 1}
    assert info["topics"][info_topic] == {"type": "sensor_msgs/msg/CameraInfo", "count": n_info}
    assert bag_info(forms["rosbag1"])["storage"] == "rosbag1" and bag_info(forms["bare_db3"])["storage"] == "sqlite3"
    assert info["end_ns"] == max(r[2] for r in ref) and info["start_ns"] == min(r[2] for r in ref)
    with BagReader(forms["sqlite3"]) as bag:
        img = next(m.msg for m in bag.messages([image_topic.lstrip("/")]))  # topic found without its slash too
    assert compressed_msg_to_rgb(img).shape == (size[1], size[0], 3)


def test_load_bag_real_compressed_images(ubiquity):
    forms = ubiquity_forms(ubiquity, "aruco_images")
    loaded = [load_bag(forms[f], "/raspicam_node/image/compressed") for f in ("rosbag1", "mcap", "bare_db3")]
    for p in loaded:
        assert len(p) == 1 and p.images[0].shape == (960, 1280, 3)
        assert p.extras["has_gt"] is False and p.extras["undistorted"] is True
        assert p.extras["distortion"]["model"] == "plumb_bob"
        np.testing.assert_array_equal(p.T_world_cam[0], np.eye(4))
        assert p.timestamps_ns[0] == 1491682360314066469  # header stamp, not the receive time
        np.testing.assert_array_equal(p.images[0], loaded[0].images[0])
        np.testing.assert_array_equal(p.K, loaded[0].K)
    assert loaded[0].K[0, 0, 2] == pytest.approx(637.2463708 + 0.5)  # core pixel-centre convention
    with pytest.raises(DatasetError, match="pinhole-only"):
        load_bag(forms["mcap"], "/raspicam_node/image/compressed", undistort=False)


def test_bag_errors(ubiquity, tmp_path):
    forms = ubiquity_forms(ubiquity, "aruco_marker")
    with pytest.raises(BagError, match="does not exist"):
        bag_info(tmp_path / "nope.mcap")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(BagError, match="not a bag"):
        bag_info(tmp_path / "notes.txt")
    with pytest.raises(BagError, match="no topic '/camera/image_raw'.*image topics"):
        load_bag(forms["mcap"], "/camera/image_raw")
    with pytest.raises(BagError, match="no ground-truth topic"):
        load_bag(forms["mcap"], "/raspicam_node/image/compressed", gt_topic="/gt")
    with pytest.raises(DatasetError, match="does not exist in the TF tree"):
        load_bag(forms["mcap"], "/raspicam_node/image/compressed", gt_tf=("map", None))


# ---------------------------------------------------------------------- writing
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_reads_back_bit_exact(sevenscenes, written, storage):
    path = written[storage]
    info = bag_info(path)
    assert info["storage"] == storage
    n = len(sevenscenes)
    assert {t: v["count"] for t, v in info["topics"].items()} == {
        "/camera/image_raw": n, "/camera/camera_info": n, "/camera/depth/image_raw": n,
        "/ground_truth/pose": n, "/odom": n, "/tf": n, "/tf_static": 1,
    }
    p = load_bag(path, "/camera/image_raw", gt_topic="/ground_truth/pose", depth_topic="/camera/depth/image_raw")
    assert len(p) == n and p.frame_id == "map" and p.extras["has_gt"] and not p.extras["undistorted"]
    for i in range(n):
        np.testing.assert_array_equal(p.images[i], sevenscenes.images[i])
        np.testing.assert_array_equal(p.depths[i], sevenscenes.depths[i])
    np.testing.assert_array_equal(p.K, sevenscenes.K)
    np.testing.assert_allclose(p.T_world_cam, sevenscenes.T_world_cam, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(p.timestamps_ns, sevenscenes.timestamps_ns)
    auto = load_bag(path, gt_topic="/ground_truth/pose", max_frames=2)  # the only colour image topic
    assert auto.extras["image_topic"] == "/camera/image_raw" and len(auto) == 2
    from nerf_loc_ros.datasets import load_dataset  # the registry routes bag paths to load_bag

    via_registry = load_dataset(f"{path}:gt_topic=/ground_truth/pose")
    np.testing.assert_allclose(via_registry.T_world_cam, sevenscenes.T_world_cam, atol=1e-9, rtol=0)
    with BagReader(path) as bag:
        info_msg = next(m.msg for m in bag.messages(["/camera/camera_info"]))
    assert info_msg.header.frame_id == "camera_optical_frame" and info_msg.k[2] == 159.5  # ROS convention
    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == storage
    topics = [t["topic_metadata"] for t in meta["topics_with_message_count"]]
    qos = {t["name"]: yaml.safe_load(t["offered_qos_profiles"])[0] for t in topics}
    assert qos["/tf_static"]["durability"] == 1 and qos["/tf_static"]["reliability"] == 1  # transient_local, reliable


def test_written_tf_tree_and_gt_are_consistent(sevenscenes, written):
    path = written["mcap"]
    custom = read_bag_custom_data(path)
    T_map_odom = np.array(custom["T_map_odom"])
    np.testing.assert_array_equal(T_map_odom, DEFAULT_T_MAP_ODOM)
    tf = load_tf_buffer(path)
    np.testing.assert_allclose(tf.lookup("base_link", "camera_link", 0), DEFAULT_T_BASE_CAMERA, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("camera_link", "camera_optical_frame", 0), ros_body_from_optical(), atol=1e-12)
    assert tf.parent("base_link") == "odom" and tf.parent("odom") is None
    with BagReader(path) as bag:
        gt = [stamped_pose_msg_to_matrix(m.msg) for m in bag.messages(["/ground_truth/pose"])]
        odom = [stamped_pose_msg_to_matrix(m.msg) for m in bag.messages(["/odom"])]
    for g, o, T_true in zip(gt, odom, sevenscenes.T_world_cam):
        T_chain = T_map_odom @ tf.lookup("odom", "camera_optical_frame", g.stamp_ns)
        np.testing.assert_allclose(T_chain, g.T, atol=1e-9)
        np.testing.assert_allclose(g.T, T_true, atol=1e-9)
        assert g.frame_id == "map" and (o.frame_id, o.child_frame_id) == ("odom", "base_link")
        np.testing.assert_allclose(o.T, tf.lookup("odom", "base_link", g.stamp_ns), atol=1e-12)
    p = load_bag(path, "/camera/image_raw", gt_tf=("odom", None))
    assert p.frame_id == "odom" and p.extras["gt_source"] == "tf:odom->camera_optical_frame"
    np.testing.assert_allclose(p.T_world_cam, invert_pose(T_map_odom) @ sevenscenes.T_world_cam, atol=1e-9)


def test_odometry_drift(sevenscenes, tmp_path):
    path = write_bag(sevenscenes, tmp_path / "drift", odom_drift=(0.01, 0.005), seed=3, depth_topic=None)
    tf = load_tf_buffer(path)
    p = load_bag(path, "/camera/image_raw", gt_topic="/ground_truth/pose")
    np.testing.assert_allclose(p.T_world_cam, sevenscenes.T_world_cam, atol=1e-9)  # GT unaffected
    chain = np.stack([DEFAULT_T_MAP_ODOM @ tf.lookup("odom", "camera_optical_frame", t) for t in p.timestamps_ns])
    rot, trans = pose_errors(chain, p.T_world_cam)
    assert rot[0] < 1e-6 and trans[0] < 1e-9 and trans[-1] > 1e-3
    assert p.depths is None and read_bag_custom_data(path)["odom_drift"] == [0.01, 0.005]


@pytest.mark.parametrize("encoding,storage", [("png", "sqlite3"), ("jpeg", "mcap"), ("bgr8", "mcap")])
def test_written_encodings(sevenscenes, tmp_path, encoding, storage):
    two = sevenscenes.subset([0, 1])
    path = write_bag(two, tmp_path / "b", storage=storage, encoding=encoding, gt_topic=None, odom_topic=None)
    topic = "/camera/image_raw/compressed" if encoding in ("png", "jpeg") else "/camera/image_raw"
    p = load_bag(path, topic)
    assert p.extras["has_gt"] is False and p.frame_id == "camera_optical_frame"
    for a, b in zip(p.images, two.images):
        if encoding == "jpeg":
            assert np.abs(a.astype(int) - b).mean() < 3.0
        else:
            np.testing.assert_array_equal(a, b)


def test_writer_refuses_to_clobber(sevenscenes, tmp_path):
    one = sevenscenes.subset([0])
    path = write_bag(one, tmp_path / "x", depth_topic=None)
    with pytest.raises(BagError, match="exists already"):
        write_bag(one, path)
    write_bag(one, path, overwrite=True, storage="sqlite3")
    assert bag_info(path)["storage"] == "sqlite3"
    (tmp_path / "plain").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 directory"):
        write_bag(one, tmp_path / "plain", overwrite=True)
    with pytest.raises(ValueError, match="storage"):
        write_bag(one, tmp_path / "y", storage="bag")
    assert not list(tmp_path.glob(".*partial*"))


# ---------------------------------------------------------------------- loader pairing rules
def _handmade_bag(path: Path, gt: str) -> tuple[np.ndarray, np.ndarray]:
    """Images at t = 1, 3, 2 (out of order), 6 s; GT at 0 and 4 s (t = 6 has none); returns GT poses."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    types = MessageTypes.from_rosbags()
    S = 1_000_000_000
    K = np.array([[50.0, 0, 3.5], [0, 50, 2.5], [0, 0, 1]])
    G = [make_pose(np.eye(3), [0, 0, 0]), make_pose(np.eye(3), [4, 0, 0])]
    T_base_cam = make_pose(np.eye(3), [0, 0.5, 0]) @ ros_body_from_optical()
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        def conn(topic, typ):
            return w.add_connection(topic, typ, typestore=types.typestore)

        c_img = conn("/cam/image", "sensor_msgs/msg/Image")
        c_info = conn("/cam/camera_info", "sensor_msgs/msg/CameraInfo")
        c_gt = conn("/gt", "nav_msgs/msg/Odometry" if gt == "odom" else "geometry_msgs/msg/PoseStamped")
        c_static = conn("/tf_static", "tf2_msgs/msg/TFMessage")
        static = make_tf_message([make_transform_stamped(T_base_cam, "base_link", "cam", T0, types)], types)
        w.write(c_static, T0, types.serialize(static))
        w.write(c_info, T0, types.serialize(intrinsics_to_camera_info(K, 8, 6, None, "plumb_bob", T0, "cam", types)))
        for k, T in zip((0, 4), G):
            if gt == "odom":
                msg = make_odometry(T, "world", "base_link", T0 + k * S, types=types)
            else:
                msg = make_pose_stamped(T, "world", T0 + k * S, types)
            w.write(c_gt, T0 + k * S, types.serialize(msg))
        for idx, k in enumerate((1, 3, 2, 6)):  # received in this order
            img = np.full((6, 8, 3), 10 * k, np.uint8)
            w.write(c_img, T0 + 10 * S + idx, types.serialize(rgb_to_image_msg(img, "rgb8", T0 + k * S, "cam", types)))
    return np.array(G), T_base_cam


@pytest.mark.parametrize("gt", ["pose", "odom"])
def test_load_bag_interpolates_gt_sorts_and_drops(tmp_path, gt, caplog):
    G, T_base_cam = _handmade_bag(tmp_path / "h", gt)
    p = load_bag(tmp_path / "h", "/cam/image", gt_topic="/gt", gt_max_gap_ns=5_000_000_000)
    assert [int(im[0, 0, 0]) for im in p.images] == [10, 20, 30]  # sorted by stamp, t = 6 s dropped
    assert p.extras["dropped_no_gt"] == 1 and p.extras["out_of_order"] == 1 and p.frame_id == "world"
    assert "without ground truth" in caplog.text and "sorted" in caplog.text
    for k, T in zip((1, 2, 3), p.T_world_cam):
        expected = make_pose(np.eye(3), [k, 0, 0])
        if gt == "odom":  # the Odometry pose is base_link's; the camera is attached by /tf_static
            expected = expected @ T_base_cam
        np.testing.assert_allclose(T, expected, atol=1e-12)


def test_load_bag_without_any_gt_match_raises(tmp_path):
    _handmade_bag(tmp_path / "h", "pose")
    with pytest.raises(DatasetError, match="no frame had ground truth"):
        load_bag(tmp_path / "h", "/cam/image", gt_topic="/gt", gt_max_gap_ns=1_000_000_000)
    p = load_bag(tmp_path / "h", "/cam/image", gt_topic="/gt", max_frames=1, gt_max_gap_ns=5_000_000_000)
    assert len(p) == 1 and p.timestamps_ns[0] == T0 + 1_000_000_000


# ---------------------------------------------------------------------- CLI
def _cli(argv: list[str]) -> int:
    from nerf_loc_ros.cli import bag as bag_cli

    parser = argparse.ArgumentParser(prog="nerf-loc")
    bag_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_bag_info_and_make(ubiquity, sevenscenes, tmp_path, capsys, monkeypatch):
    assert _cli(["bag", "info", str(ubiquity_forms(ubiquity, "aruco_images")["mcap"])]) == 0
    out = capsys.readouterr().out
    assert "sensor_msgs/msg/CameraInfo" in out and "15" in out and "0.856 s" in out
    from nerf_loc_ros.cli import bag as bag_cli

    monkeypatch.setattr(bag_cli, "_load_dataset", lambda spec, split: sevenscenes)
    out_bag = tmp_path / "cli_bag"
    rc = _cli(["bag", "make", "--data", "7scenes", "--out", str(out_bag), "--format", "sqlite3",
               "--compressed", "png", "--max-frames", "2", "--odom-drift", "0.01", "0.5"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "/camera/image_raw/compressed" in out and "sqlite3" in out
    info = bag_info(out_bag)
    assert info["topics"]["/camera/image_raw/compressed"]["count"] == 2
    assert read_bag_custom_data(out_bag)["odom_drift"][1] == pytest.approx(np.radians(0.5))

"""Dataset loaders on the real data, and bad input failing with errors that name the file and problem."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from nerf_loc_ros.datasets import (
    DatasetError,
    PosedImages,
    detect_layout,
    load_colmap,
    load_dataset,
    load_llff,
    load_sevenscenes,
    load_transforms_json,
    load_tum,
    read_cameras,
    read_images,
)
from nerf_loc_ros.geometry import invert_pose, pose_to_translation_quaternion


# ----------------------------------------------------------------------------- real data
def test_lego_splits_and_background(lego_dir):
    train = load_dataset(str(lego_dir))
    test = load_dataset("lego", split="test")
    assert len(train) == 100 and len(test) == 100
    assert train.names[0] == "r_0" and test.names[1] == "r_2"
    assert train.images[0].shape == (200, 200, 3) and train.images[0].dtype == np.uint8
    np.testing.assert_allclose(train.K[0], [[277.7777, 0, 100], [0, 277.7777, 100], [0, 0, 1]], atol=1e-3)
    assert not train.metric and train.depths is None
    # white background by default, black on request (corner pixels are background)
    assert train.images[0][0, 0].tolist() == [255, 255, 255]
    black = load_dataset("lego:background=black:max_frames=2")
    assert len(black) == 2 and black.images[0][0, 0].tolist() == [0, 0, 0]
    # the same pixel inside the object is unchanged by the background choice
    opaque = np.asarray(Image.open(lego_dir / "train" / "r_0.png"))[..., 3] == 255
    np.testing.assert_array_equal(black.images[0][opaque], train.images[0][opaque])


def test_fern_holdout_split(fern_dir):
    test = load_dataset(str(fern_dir), split="test@8")
    train = load_dataset(str(fern_dir), split="train@8")
    assert test.names == ["IMG_4026", "IMG_4034", "IMG_4042"]
    assert len(train) == 17 and not set(train.names) & set(test.names)
    assert test.extras["near_far"].shape == (20, 2)


def test_sevenscenes_splits(redkitchen_dir):
    q = load_sevenscenes(redkitchen_dir, split="query", max_frames=3)
    assert q.names == ["frame-000002", "frame-000012", "frame-000022"]
    assert q.depths[0].dtype == np.float32 and 0.3 < np.median(q.depths[0][q.depths[0] > 0]) < 5.0
    assert q.timestamps_ns[1] - q.timestamps_ns[0] == pytest.approx(10 / 30 * 1e9, abs=1)
    late = load_dataset(str(redkitchen_dir), split="query>=700")
    assert len(late) == 30 and all(int(n[-6:]) >= 700 for n in late.names)
    with pytest.raises(ValueError, match="split"):
        load_sevenscenes(redkitchen_dir, split="sideways")


def test_layout_detection(shared_data):
    assert detect_layout(shared_data / "nerf_synthetic_lego") == "transforms"
    assert detect_layout(shared_data / "llff_fern") == "llff"
    assert detect_layout(shared_data / "sevenscenes_redkitchen") == "sevenscenes"
    assert detect_layout(shared_data / "ubiquity_raspicam_bags" / "ros2_mcap" / "aruco_marker") == "bag"
    assert detect_layout(shared_data / "ubiquity_raspicam_bags" / "ros1" / "aruco_marker.bag") == "bag"
    with pytest.raises(DatasetError, match="layout"):
        detect_layout(shared_data)
    with pytest.raises(ValueError, match="unknown dataset option"):
        load_dataset("fern:colour=blue")


def test_fern_colmap_cameras_bin(fern_dir):
    cams = read_cameras(fern_dir / "sparse" / "0")
    (cam,) = cams.values()
    assert cam.model == "SIMPLE_RADIAL" and (cam.width, cam.height) == (4032, 3024)
    K, D = cam.pinhole()
    assert K[0, 0] == pytest.approx(3260.526, abs=1e-2) and D[0] == pytest.approx(0.01975, abs=1e-4)


# ------------------------------------------------------ COLMAP / TUM written from real data
def _write_colmap_text(model_dir, posed, model="SIMPLE_RADIAL", k=0.0):
    model_dir.mkdir(parents=True)
    w, h = posed.size(0)
    f, cx, cy = posed.K[0, 0, 0], posed.K[0, 0, 2], posed.K[0, 1, 2]
    params = {"SIMPLE_RADIAL": f"{f} {cx} {cy} {k}", "OPENCV_FISHEYE": f"{f} {f} {cx} {cy} 0.1 0 0 0"}[model]
    (model_dir / "cameras.txt").write_text(f"# comment\n1 {model} {w} {h} {params}\n")
    lines = ["# images"]
    for i, name in enumerate(posed.names):
        t, q = pose_to_translation_quaternion(invert_pose(posed.T_world_cam[i]))
        lines.append(f"{i + 1} {q[3]} {q[0]} {q[1]} {q[2]} {t[0]} {t[1]} {t[2]} 1 {name}.png")
        lines.append("")
    (model_dir / "images.txt").write_text("\n".join(lines) + "\n")
    (model_dir / "points3D.txt").write_text("1 0.5 0.25 2.0 255 0 0 0.5 1 0\n")


def test_colmap_text_model_roundtrip(tmp_path, redkitchen_dir):
    posed = load_sevenscenes(redkitchen_dir, split="map", with_depth=False, max_frames=4)
    images = tmp_path / "scene" / "images"
    images.mkdir(parents=True)
    for rgb, name in zip(posed.images, posed.names):
        Image.fromarray(rgb).save(images / f"{name}.png")
    _write_colmap_text(tmp_path / "scene" / "sparse" / "0", posed)
    assert detect_layout(tmp_path / "scene") == "colmap"
    loaded = load_colmap(tmp_path / "scene")
    assert loaded.names == posed.names
    np.testing.assert_allclose(loaded.T_world_cam, posed.T_world_cam, atol=1e-9)
    np.testing.assert_array_equal(loaded.images[2], posed.images[2])
    assert len(read_images(tmp_path / "scene" / "sparse" / "0")) == 4


def test_colmap_distortion_undistorts_or_rejects(tmp_path, redkitchen_dir):
    posed = load_sevenscenes(redkitchen_dir, split="map", with_depth=False, max_frames=1)
    (tmp_path / "images").mkdir()
    Image.fromarray(posed.images[0]).save(tmp_path / "images" / f"{posed.names[0]}.png")
    _write_colmap_text(tmp_path / "radial", posed, k=0.2)
    undist = load_colmap(tmp_path / "radial", images_dir=tmp_path / "images")
    assert undist.images[0].shape == posed.images[0].shape
    assert np.abs(undist.images[0].astype(int) - posed.images[0]).mean() > 3  # really resampled
    _write_colmap_text(tmp_path / "fisheye", posed, model="OPENCV_FISHEYE")
    with pytest.raises(DatasetError, match="OPENCV_FISHEYE is not supported"):
        load_colmap(tmp_path / "fisheye", images_dir=tmp_path / "images")


def test_tum_layout_from_real_frames(tmp_path, redkitchen_dir):
    posed = load_sevenscenes(redkitchen_dir, split="map", max_frames=5)
    root = tmp_path / "rgbd_dataset_freiburg3_kitchen"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb_lines, depth_lines, gt_lines = [], [], []
    for i in range(len(posed)):
        t = 1305031102.0 + i * 0.1
        Image.fromarray(posed.images[i]).save(root / "rgb" / f"{t:.6f}.png")
        Image.fromarray(np.round(posed.depths[i] * 5000).astype(np.uint16)).save(root / "depth" / f"{t + 0.01:.6f}.png")
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.01:.6f} depth/{t + 0.01:.6f}.png")
        tr, q = pose_to_translation_quaternion(posed.T_world_cam[i])
        gt_lines.append(f"{t - 0.004:.4f} " + " ".join(f"{v:.9f}" for v in [*tr, *q]))
    for name, lines in [("rgb.txt", rgb_lines), ("depth.txt", depth_lines), ("groundtruth.txt", gt_lines)]:
        (root / name).write_text("# TUM\n" + "\n".join(lines) + "\n")
    K = posed.K[0]
    tum = load_tum(root, K=K)
    assert len(tum) == 5 and detect_layout(root) == "tum"
    np.testing.assert_allclose(tum.T_world_cam, posed.T_world_cam, atol=1e-6)
    np.testing.assert_array_equal(tum.images[3], posed.images[3])
    np.testing.assert_allclose(tum.depths[3], posed.depths[3], atol=1e-3)
    # without K the freiburg3 calibration is taken from the folder name (640x480 nominal)
    assert load_tum(root, with_depth=False).K[0, 0, 0] == pytest.approx(535.4)
    assert load_tum(root, with_depth=False).K[0, 0, 2] == pytest.approx(320.1 + 0.5)  # OpenCV -> core pixel centres
    # a trajectory with a NaN is reported with file and line
    (root / "groundtruth.txt").write_text(gt_lines[0] + "\n1305031102.5 0 0 nan 0 0 0 1\n")
    with pytest.raises(DatasetError, match=r"groundtruth.txt:2"):
        load_tum(root, K=K)


# ------------------------------------------------------------------------------ bad input
@pytest.fixture()
def lego_copy(tmp_path, lego_dir):
    dst = tmp_path / "lego"
    (dst / "train").mkdir(parents=True)
    meta = json.loads((lego_dir / "transforms_train.json").read_text())
    meta["frames"] = meta["frames"][:3]
    for fr in meta["frames"]:
        shutil.copy(lego_dir / (fr["file_path"] + ".png"), dst / (fr["file_path"] + ".png"))
    (dst / "transforms_train.json").write_text(json.dumps(meta))
    return dst, meta


def test_bad_transforms_json(lego_copy):
    dst, meta = lego_copy
    assert len(load_transforms_json(dst, split="train")) == 3

    def write(m):
        (dst / "transforms_train.json").write_text(json.dumps(m))

    bad = json.loads(json.dumps(meta))
    bad["frames"][1]["transform_matrix"][0][3] = float("nan")
    write(bad)
    with pytest.raises(DatasetError, match=r"transforms_train.json.*r_1.*NaN"):
        load_transforms_json(dst, split="train")
    bad = json.loads(json.dumps(meta))
    bad["frames"][2]["transform_matrix"] = (np.array(bad["frames"][2]["transform_matrix"]) @ np.diag([2, 2, 2, 1])).tolist()
    write(bad)
    with pytest.raises(DatasetError, match=r"r_2.*not a rigid"):
        load_transforms_json(dst, split="train")
    bad = json.loads(json.dumps(meta))
    bad.update(camera_model="OPENCV_FISHEYE", fl_x=100, fl_y=100, cx=100, cy=100)
    write(bad)
    with pytest.raises(DatasetError, match="OPENCV_FISHEYE is not supported"):
        load_transforms_json(dst, split="train")
    write(meta)
    (dst / "train" / "r_1.png").unlink()
    with pytest.raises(DatasetError, match=r"train/r_1.*not found"):
        load_transforms_json(dst, split="train")
    (dst / "transforms_train.json").write_text("{ not json")
    with pytest.raises(DatasetError, match="cannot parse JSON"):
        load_transforms_json(dst, split="train")


def test_truncated_image_names_the_file(lego_copy):
    dst, _ = lego_copy
    png = dst / "train" / "r_2.png"
    png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"r_2.png: cannot decode image"):
        load_transforms_json(dst, split="train")


def test_llff_count_mismatch_and_bad_file(tmp_path, fern_dir):
    dst = tmp_path / "fern"
    shutil.copytree(fern_dir / "images_8", dst / "images_8")
    shutil.copy(fern_dir / "poses_bounds.npy", dst / "poses_bounds.npy")
    assert len(load_llff(dst)) == 20
    next((dst / "images_8").iterdir()).unlink()
    with pytest.raises(DatasetError, match=r"poses_bounds.npy: 20 poses but 19 images"):
        load_llff(dst)
    (dst / "poses_bounds.npy").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="poses_bounds.npy: cannot read"):
        load_llff(dst)


def test_sevenscenes_bad_pose_file(tmp_path, redkitchen_dir):
    dst = tmp_path / "kitchen" / "frames"
    dst.mkdir(parents=True)
    for suffix in ("color.png", "depth.png", "pose.txt"):
        shutil.copy(redkitchen_dir / "frames" / f"frame-000000.{suffix}", dst / f"frame-000000.{suffix}")
    assert len(load_sevenscenes(dst.parent)) == 1
    (dst / "frame-000000.pose.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    with pytest.raises(DatasetError, match=r"frame-000000.pose.txt: .*4x4"):
        load_sevenscenes(dst.parent)
    (dst / "frame-000000.pose.txt").write_text("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(DatasetError, match=r"frame-000000.pose.txt: not a rigid"):
        load_sevenscenes(dst.parent)
    (dst / "frame-000000.pose.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    (dst / "frame-000000.depth.png").unlink()
    with pytest.raises(DatasetError, match=r"frame-000000.depth.png: image file not found"):
        load_sevenscenes(dst.parent)


def test_posed_images_validation():
    img = np.zeros((4, 5, 3), np.uint8)
    ok = dict(images=[img], K=np.eye(3)[None], T_world_cam=np.eye(4)[None], names=["a"], timestamps_ns=[0])
    assert len(PosedImages(**ok)) == 1
    with pytest.raises(DatasetError, match="counts differ"):
        PosedImages(**{**ok, "names": ["a", "b"]})
    with pytest.raises(DatasetError, match="uint8"):
        PosedImages(**{**ok, "images": [img.astype(np.float32)]})
    with pytest.raises(DatasetError, match="pinhole"):
        PosedImages(**{**ok, "K": -np.eye(3)[None]})
    with pytest.raises(DatasetError, match="depth of 'a'"):
        PosedImages(**ok, depths=[np.zeros((2, 2), np.float32)])


def test_alias_is_not_shadowed_by_an_unrelated_local_directory(lego_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lego").mkdir()  # e.g. a benchmark output folder called lego
    assert len(load_dataset("lego", "test", max_frames=2)) == 2

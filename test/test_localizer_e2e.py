"""End to end on a small procedural scene: build a localization map, localize the second session, replay a bag.

The map (conftest ``procedural_loc_map``) is built once per test session.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nerf_loc_ros.bags import write_bag
from nerf_loc_ros.cli.main import main
from nerf_loc_ros.geometry import pose_errors
from nerf_loc_ros.localization import (
    Localizer,
    Status,
    load_localization_map,
)
from nerf_loc_ros.localization.session import LocalizationSession
from nerf_loc_ros.maps import MapError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(procedural_loc_map):
    return procedural_loc_map


def test_map_files_and_relocalization(built):
    path, mapping, query = built
    loc_map = load_localization_map(path)
    assert loc_map.keyframes.num_points > 500 and len(loc_map.keyframes) == len(mapping)
    assert loc_map.keyframes.point_descriptors.shape[1] == loc_map.encoder.config.descriptor_dim
    assert loc_map.keyframes.has_patches and loc_map.keyframes.point_patches.shape[1:] == (9, 9)
    loc = Localizer(loc_map)
    idx = np.linspace(0, len(query) - 1, 8).round().astype(int)
    good = fine = 0
    for i in idx:
        res = loc.localize(query.images[i], query.K[i])
        assert set(res.timings_ms) >= {"backbone", "retrieval", "matching", "pnp", "total"}
        fine += "fine_inliers" in res.stages and res.num_inliers == res.stages["fine_inliers"]
        if res.status == Status.FAILED:
            assert res.T_world_cam is None and res.reason
            continue
        rot, trans = pose_errors(res.T_world_cam[None], query.T_world_cam[i][None])
        good += bool(rot[0] < 5 and trans[0] < 0.1)
        if res.status == Status.OK:  # a confident pose is never grossly wrong
            assert rot[0] < 20 and trans[0] < 0.5, (rot, trans)
        assert np.all(np.linalg.eigvalsh(res.covariance) > 0)
    assert good >= 5, good
    assert fine >= 5, fine  # the fine level (keyframe patches) gives the final pose of most frames


def test_localizer_input_errors(built):
    path, _, query = built
    loc = Localizer(load_localization_map(path))
    with pytest.raises(ValueError, match="uint8"):
        loc.localize(query.images[0].astype(np.float32), query.K[0])
    with pytest.raises(ValueError):
        loc.localize(query.images[0], np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="prior"):
        loc.localize(query.images[0], query.K[0], prior=np.full((4, 4), np.nan))


def test_session_tracks_and_skips_out_of_order(built):
    path, _, query = built
    session = LocalizationSession(Localizer(load_localization_map(path)))
    first = session.process(query.images[0], query.K[0], 1_000_000_000)
    assert first.result is not None and not first.used_prior
    late = session.process(query.images[1], query.K[1], 999_000_000)
    assert late.result is None and "not after" in late.skipped
    nxt = session.process(query.images[1], query.K[1], 1_100_000_000)
    if first.result.ok:
        assert nxt.used_prior or nxt.result.status != Status.OK


def test_missing_localization_components_are_reported(built, tmp_path):
    path, _, _ = built
    from nerf_loc_ros.maps import load_map, save_map

    plain = save_map(load_map(path), tmp_path / "plain")
    with pytest.raises(MapError, match="no localization data"):
        load_localization_map(plain)
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(path, broken)
    (broken / "encoder.safetensors").write_bytes(b"junk")
    with pytest.raises(MapError, match="encoder.safetensors"):
        load_localization_map(broken)


def test_replay_and_localize_cli(built, tmp_path, capsys):
    path, _, query = built
    bag = write_bag(query.subset(range(12)), tmp_path / "bag", storage="mcap")
    out = tmp_path / "replay"
    assert main(["replay", "--map", str(path), "--bag", str(bag), "--image-topic", "/camera/image_raw",
                 "--gt-topic", "/ground_truth/pose", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 12 and sum(metrics["status_counts"].values()) == 12
    assert metrics["latency_ms_p50"] > 0 and "2cm2deg" in metrics["recall"]
    for png in ("trajectory.png", "error_cdf.png", "per_frame.png"):
        assert (out / png).stat().st_size > 5000
    from nerf_loc_ros.bags import bag_info

    topics = bag_info(out / "results_bag")["topics"]
    ok = metrics["status_counts"].get("OK", 0)
    assert topics.get("/nerf_localizer/pose", {}).get("count", 0) == ok
    # map -> odom published on every OK frame (the bag has odom -> base_link -> optical)
    assert topics.get("/tf", {}).get("count", 0) == ok and metrics["odom_lookup_failures"] == 0

    from PIL import Image

    img = tmp_path / "q.png"
    Image.fromarray(query.images[3]).save(img)
    capsys.readouterr()
    code = main(["localize", "--map", str(path), "--image", str(img), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] in ("OK", "LOW_CONFIDENCE", "FAILED")
    assert (code == 0) == ("T_world_cam" in printed)
    if printed["status"] == "OK":
        rot, trans = pose_errors(np.array(printed["T_world_cam"])[None], query.T_world_cam[3][None])
        assert rot[0] < 5 and trans[0] < 0.1
    # the fine level runs by default (a pose to start from); --no-fine skips it, --refine adds the guided pass
    if "T_world_cam" in printed:
        assert "fine" in printed["timings_ms"] and "refine" not in printed["timings_ms"]
    main(["localize", "--map", str(path), "--image", str(img), "--json", "--no-fine", "--refine"])
    stages = json.loads(capsys.readouterr().out)["timings_ms"]
    assert "fine" not in stages and ("refine" in stages) == ("T_world_cam" in printed)
    # the text output names the frame and units of the map
    code_text = main(["localize", "--map", str(path), "--image", str(img)])
    text = capsys.readouterr().out
    assert code_text == code and "inliers of" in text
    if printed["status"] == "OK":
        assert "T_world_cam (map, OpenCV camera axes)" in text and " m, " in text


def test_global_localizer_over_two_submaps(built, tmp_path):
    """A global map holding the map twice, the copy under a rigid transform: the prior picks the submap, and the
    pose, covariance and 3D matches come back in the global frame."""
    from scipy.spatial.transform import Rotation

    from nerf_loc_ros.localization import GlobalLocalizer, load_localizer
    from nerf_loc_ros.maps import add_submap, create_global_map

    path, _, query = built
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("zyx", [70, 10, -5], degrees=True).as_matrix()
    T[:3, 3] = [20.0, -4.0, 1.0]  # far from the original: the two copies do not overlap in the global frame
    create_global_map(tmp_path / "g", path)
    add_submap(tmp_path / "g", path, T, {"method": "test"})
    loc = load_localizer(tmp_path / "g")
    assert isinstance(loc, GlobalLocalizer) and "2 submaps" in loc.summary()
    i = len(query) // 3
    gt = query.T_world_cam[i]
    plain = load_localizer(path).localize(query.images[i], query.K[i], prior=gt)
    for sub_id, T_g in (("0", np.eye(4)), ("1", T)):
        res = loc.localize(query.images[i], query.K[i], prior=T_g @ gt)
        assert res.status == Status.OK and res.submap == sub_id, (res.status, res.reason, res.submap)
        rot, trans = pose_errors(res.T_world_cam[None], (T_g @ gt)[None])
        assert rot[0] < 2 and trans[0] < 0.05, (rot, trans)
        assert np.allclose(res.covariance[:3, :3], T_g[:3, :3] @ plain.covariance[:3, :3] @ T_g[:3, :3].T,
                           rtol=0.2, atol=1e-9)
        assert np.allclose(np.linalg.eigvalsh(res.covariance), np.linalg.eigvalsh(plain.covariance), rtol=0.2)
        back = (res.matches_3d - T_g[:3, 3]) @ T_g[:3, :3]  # matched points in the submap frame
        assert np.median(np.linalg.norm(back - gt[:3, 3], axis=1)) < 10  # in the room, not 20 m away
        assert all(n.startswith(f"{sub_id}/") for n in loc.keyframe_names(res)) and loc.keyframe_names(res)
    # without a prior, retrieval still finds a submap and the pose is consistent with that submap's transform
    res = loc.localize(query.images[i], query.K[i])
    T_g = np.eye(4) if res.submap == "0" else T
    assert res.ok and pose_errors(res.T_world_cam[None], (T_g @ gt)[None])[1][0] < 0.05
    assert len(loc.keyframe_centres()) == 2 * len(load_localizer(path).keyframe_centres())

"""Registration inputs: point clouds sampled from NeRF maps (occupancy surface shell + density), superpoints."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from nerf_loc_ros.maps import load_map
from nerf_loc_ros.nerf import FieldConfig, NerfModel, OccupancyConfig, SceneBox
from nerf_loc_ros.nerf.scene_box import depth_points
from nerf_loc_ros.registration import SamplingConfig, farthest_point_sampling, sample_nerf_points


def test_sampling_an_untrained_map_is_a_clear_error():
    from nerf_loc_ros.datasets import load_dataset
    from nerf_loc_ros.maps import MapCameras

    data = load_dataset("procedural:seed=5:frames=4:size=64x48", "mapping")
    lo, hi = data.extras["scene_bounds"]
    model = NerfModel.create(SceneBox(tuple(lo), tuple(hi)),
                             FieldConfig(resolutions=(16,), channels=(4,), feature_dim=8, hidden_dim=16,
                                         color_hidden_dim=16), OccupancyConfig(resolution=16))
    with torch.no_grad():  # an empty field: no density anywhere
        for p in model.field.parameters():
            p.zero_()
    with pytest.raises(ValueError, match="surface"):
        sample_nerf_points(model, MapCameras.of(data))


def test_farthest_point_sampling_spreads_over_the_cloud():
    rng = np.random.default_rng(0)
    cluster = rng.normal(0, 0.01, (500, 3))
    far = np.array([[5.0, 0, 0], [-5.0, 0, 0], [0, 5.0, 0]])
    pts = np.concatenate([cluster, far])
    idx = farthest_point_sampling(pts, 4, seed=1)
    assert len(set(idx.tolist())) == 4 and {500, 501, 502} <= set(idx.tolist())
    assert len(farthest_point_sampling(pts, 10_000)) == len(pts)


def test_sampled_points_lie_on_the_true_surface(procedural_loc_map):
    path, mapping, _ = procedural_loc_map
    nerf_map = load_map(path)
    model = nerf_map.model
    assert nerf_map.cameras is not None and len(nerf_map.cameras) == len(mapping)  # stored with the map
    assert np.allclose(nerf_map.cameras.T_world_cam, mapping.T_world_cam)
    cloud = sample_nerf_points(model, nerf_map.cameras, SamplingConfig(max_points=6000, seed=3))
    assert 2000 <= len(cloud) <= 6000
    assert cloud.features.shape == (len(cloud), model.field.config.feature_dim)
    assert np.isfinite(cloud.points).all() and np.isfinite(cloud.features).all()
    assert (cloud.colors >= 0).all() and (cloud.colors <= 1).all() and (cloud.density > 0).all()
    # distance to the surface the depth cameras measured (the procedural scene's ground truth)
    gt = depth_points(mapping, per_image=4000, seed=0)
    d, _ = cKDTree(gt).query(cloud.points)
    diag = model.box.diagonal
    assert np.median(d) < 0.005 * diag, np.median(d) / diag
    assert np.percentile(d, 90) < 0.02 * diag, np.percentile(d, 90) / diag
    # and it covers the measured surface, not one corner of it
    back, _ = cKDTree(cloud.points).query(gt[:: max(1, len(gt) // 5000)])
    assert np.median(back) < 0.01 * diag, np.median(back) / diag
    # normals point to the free space the cameras saw: up on the floor, down on whatever is above every camera
    floor = cloud.points[:, 2] < 0.05
    above = cloud.points[:, 2] > mapping.T_world_cam[:, 2, 3].max() + 0.3
    assert floor.sum() > 50 and above.sum() > 50
    assert (cloud.normals[floor, 2] > 0).mean() > 0.95 and (cloud.normals[above, 2] < 0).mean() > 0.95
    # rigid transform and subset keep the attributes with their points
    T = np.eye(4)
    T[:3, :3] = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    T[:3, 3] = [1.0, 2.0, 3.0]
    moved = cloud.transformed(T).subset(np.arange(10))
    assert np.allclose(moved.points, cloud.points[:10] @ T[:3, :3].T + T[:3, 3], atol=1e-5)
    assert np.array_equal(moved.features, cloud.features[:10])


def test_fpfh_baseline_registers_two_samplings_of_a_nerf(procedural_loc_map):
    """Two independent samplings of one NeRF, one under a known rigid motion, must register accurately.

    (Partial crops of this near-symmetric room are ambiguous for geometry alone: the 180-degree flip fits more
    points than the truth, which is what DeSC's texture features and the ambiguity check are for.)"""
    pytest.importorskip("open3d", reason="the FPFH baseline needs Open3D (pip install open3d-cpu)")
    from scipy.spatial.transform import Rotation

    from nerf_loc_ros.registration import FPFHRegistrar, RegistrationStatus, cloud_extent, registration_errors

    nerf_map = load_map(procedural_loc_map[0])
    target = sample_nerf_points(nerf_map.model, nerf_map.cameras, SamplingConfig(max_points=15000, seed=1))
    source = sample_nerf_points(nerf_map.model, nerf_map.cameras, SamplingConfig(max_points=15000, seed=2))
    T_gt = np.eye(4)  # T_target_source: the source map lives in a frame rotated and shifted from the target's
    T_gt[:3, :3] = Rotation.from_rotvec(np.deg2rad(40.0) * np.array([0.2, 0.3, 1.0]) / np.linalg.norm(
        [0.2, 0.3, 1.0])).as_matrix()
    T_gt[:3, 3] = [0.7, -0.4, 0.2]
    source = source.transformed(np.linalg.inv(T_gt))
    res = FPFHRegistrar().register(source, target)
    assert res.status == RegistrationStatus.OK, res.reason
    extent = cloud_extent(target.points)
    rre, rte = registration_errors(res.T_target_source, T_gt, extent)
    assert rre < 1.0 and rte < 0.01, (rre, rte)
    assert res.fitness > 0.8 and {"features", "ransac", "icp", "total"} <= set(res.timings_ms)
    # with a good initial guess RANSAC is skipped and ICP converges to the same answer
    near = T_gt.copy()
    near[:3, 3] += [0.05, -0.03, 0.0]
    res2 = FPFHRegistrar().register(source, target, init=near)
    assert "ransac" not in res2.timings_ms
    assert registration_errors(res2.T_target_source, T_gt, extent)[1] < 0.005
    # clouds that do not overlap at all do not register
    shift = np.eye(4)
    shift[0, 3] = 100.0 * extent
    far = source.transformed(shift)
    assert FPFHRegistrar().register(far, target, init=np.eye(4)).status == RegistrationStatus.FAILED


def test_view_splits_reach_the_requested_overlap():
    """Two contiguous runs of the procedural mapping session at 30 / 50 / 80 % surface overlap."""
    from nerf_loc_ros.datasets import load_dataset
    from nerf_loc_ros.registration import points_seen_by_views, split_views_for_overlap

    data = load_dataset("procedural:seed=5:frames=40:size=96x72", "mapping")
    pts = depth_points(data, per_image=500, seed=0)
    vis = points_seen_by_views(pts, data.T_world_cam, data.K, [data.size(i) for i in range(len(data))])
    assert vis.any(0).mean() > 0.99  # every depth point is seen by the camera that measured it
    splits = {}
    for target in (0.3, 0.5, 0.8):
        s = split_views_for_overlap(vis, target)
        assert abs(s.overlap - target) < 0.08, (target, s.overlap)
        assert s.a[0] == 0 and s.b[-1] == len(data) - 1 and len(s.a) >= 3 and len(s.b) >= 3
        assert np.all(np.diff(s.a) == 1) and np.all(np.diff(s.b) == 1)
        splits[target] = s
    assert len(splits[0.3].a) <= len(splits[0.8].a)  # more overlap needs longer runs
    with pytest.raises(ValueError, match="overlap"):
        split_views_for_overlap(vis, 1.2)


def test_object_centric_captures_split_into_a_sweep_with_hidden_far_sides():
    """Cameras on a hemisphere around a sphere of surface points, in random order: without normals every camera
    sees every point (the overlap of any two subsets is 1); with outward normals a camera sees the half facing
    it, and the runs of the sweep order lie on opposite sides with the requested overlap."""
    from nerf_loc_ros.datasets.procedural.trajectories import look_pose
    from nerf_loc_ros.registration import points_seen_by_views, split_views_for_overlap, sweep_order

    rng = np.random.default_rng(4)
    az, el = rng.uniform(-np.pi, np.pi, 60), rng.uniform(0.2, 1.2, 60)
    centres = 4.0 * np.c_[np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)]
    T = np.stack([look_pose(c, a + np.pi, -e) for c, a, e in zip(centres, az, el)])  # looking at the origin
    K = np.repeat(np.array([[[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]]]), 60, 0)
    normals = rng.normal(size=(3000, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    points = 0.5 * normals
    sizes = [(100, 100)] * 60
    assert points_seen_by_views(points, T, K, sizes).all()
    vis = points_seen_by_views(points, T, K, sizes, normals=normals)
    assert 0.3 < vis.mean() < 0.5  # the facing half, minus the grazing rim
    order = sweep_order(T)
    assert sorted(order.tolist()) == list(range(60))
    first, last = centres[order[0]], centres[order[-1]]
    assert np.degrees(np.arccos(first[:2] @ last[:2] / np.linalg.norm(first[:2]) / np.linalg.norm(last[:2]))) > 150
    split = split_views_for_overlap(vis[order], 0.8)
    assert abs(split.overlap - 0.8) < 0.05
    a, b = centres[order[split.a]].mean(0), centres[order[split.b]].mean(0)
    assert a[:2] @ b[:2] < 0  # the two runs are on opposite sides


def test_surfaces_seen_edge_on_are_not_seen():
    """A camera at the origin looking down +z at points on its optical axis whose normals turn away from the ray
    by 0-89 deg: with normals all of them face it; with ``max_incidence_deg=75`` only those turned by less than
    75 deg are seen (normals of any length)."""
    from nerf_loc_ros.registration import points_seen_by_views

    angles = np.arange(0, 90)
    theta = np.deg2rad(angles)
    normals = 3.0 * np.c_[np.sin(theta), np.zeros_like(theta), -np.cos(theta)]  # towards the camera at 0 deg
    points = np.c_[np.zeros((90, 2)), np.full(90, 5.0)]
    T = np.eye(4)[None]
    K = np.array([[[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]]])
    assert points_seen_by_views(points, T, K, [(100, 100)], normals=normals).all()
    seen = points_seen_by_views(points, T, K, [(100, 100)], normals=normals, max_incidence_deg=75)[0]
    assert np.array_equal(seen, angles < 75)
    assert not points_seen_by_views(points, T, K, [(100, 100)], normals=-normals).any()  # the back side


def test_moved_capture_sees_the_moved_scene():
    from nerf_loc_ros.datasets import load_dataset
    from nerf_loc_ros.geometry import is_rigid
    from nerf_loc_ros.registration.pairs import move_cameras, random_rigid_transform

    rng = np.random.default_rng(4)
    T = random_rigid_transform(rng, max_angle_deg=90, max_translation=2.0)
    assert is_rigid(T) and np.linalg.norm(T[:3, 3]) <= 2.0
    data = load_dataset("procedural:seed=5:frames=6:size=64x48", "mapping")
    moved = move_cameras(data, T)
    before, after = depth_points(data, per_image=50, seed=0), depth_points(moved, per_image=50, seed=0)
    assert np.allclose(after, before @ T[:3, :3].T + T[:3, 3], atol=1e-6)
    assert np.array_equal(data.T_world_cam.shape, moved.T_world_cam.shape)


def test_register_and_merge_cli(procedural_loc_map, tmp_path, capsys):
    """`nerf-loc register` / `merge` on real map files: the map registered against itself is the identity and
    merges; a registration that fails leaves the global map byte-identical."""
    pytest.importorskip("open3d", reason="the FPFH baseline needs Open3D (pip install open3d-cpu)")
    import json

    from nerf_loc_ros.cli.main import main
    from nerf_loc_ros.maps import load_global_map
    from nerf_loc_ros.registration import DescConfig, DescNetwork

    path = procedural_loc_map[0]
    assert main(["-q", "register", "--source", str(path), "--target", str(path), "--method", "fpfh",
                 "--json", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["status"] == "OK" and np.allclose(doc["T_target_source"], np.eye(4), atol=0.02)
    assert doc["timings_ms"]["sampling"] > 0  # sampling both maps is part of the time
    g = tmp_path / "global"
    assert main(["-q", "merge", "--global", str(g), "--submap", str(path), "--create"]) == 0
    # a registration that FAILS (here: an inlier bar no pair can reach) writes nothing
    from nerf_loc_ros.registration import DescRegistrar, DescRegistrarConfig, MatchConfig, merge_submap

    strict = DescRegistrar(DescNetwork(DescConfig(d_model=32, fine_dim=16, level0_dims=(8, 16), tex_dim=16, blocks=1)),
                           DescRegistrarConfig(match=MatchConfig(min_inliers=10**6)))
    before, listing = (g / "submaps.yaml").read_bytes(), sorted(p.name for p in g.parent.iterdir())
    out = merge_submap(g, path, strict)
    assert not out.merged and out.result.status.value == "FAILED" and "inlier" in out.result.reason
    assert (g / "submaps.yaml").read_bytes() == before and sorted(p.name for p in g.parent.iterdir()) == listing
    capsys.readouterr()
    assert main(["-q", "merge", "--global", str(g), "--submap", str(path), "--method", "fpfh"]) == 0
    assert "as submap 1" in capsys.readouterr().out
    gmap = load_global_map(g)
    assert [s.id for s in gmap.submaps] == ["0", "1"] and np.allclose(gmap.submaps[1].T_global_submap, np.eye(4),
                                                                      atol=0.02)
    assert gmap.submaps[1].registration["status"] == "OK" and gmap.submaps[1].registration["against"] == "0"


def test_group_ransac_finds_each_groups_transform_among_outliers():
    from scipy.spatial.transform import Rotation

    from nerf_loc_ros.registration.estimation import Correspondences, group_ransac_hypotheses

    rng = np.random.default_rng(3)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("zyx", [100, -20, 35], degrees=True).as_matrix()
    T[:3, 3] = [1.0, -2.0, 0.5]
    src = rng.uniform(-1, 1, (100, 3))
    tgt = src @ T[:3, :3].T + T[:3, 3] + rng.normal(0, 0.002, (100, 3))
    tgt[40:] = rng.uniform(-3, 3, (60, 3))  # 60 % outliers
    group = np.r_[np.zeros(100, int), np.ones(5, int)]  # group 1: too few matches to propose anything
    src, tgt = np.r_[src, rng.uniform(-1, 1, (5, 3))], np.r_[tgt, rng.uniform(-1, 1, (5, 3))]
    corr = Correspondences(torch.tensor(src, dtype=torch.float32), torch.tensor(tgt, dtype=torch.float32),
                           torch.ones(len(src)), torch.tensor(group))
    hyps = group_ransac_hypotheses(corr, radius=0.01, iterations=300, min_matches=8,
                                   generator=torch.Generator().manual_seed(0))
    assert hyps.shape == (1, 4, 4)
    assert np.allclose(hyps[0].numpy(), T, atol=5e-3)


def test_refine_hypotheses_pulls_a_rough_fit_onto_all_its_inliers():
    """A hypothesis 4 degrees off (a fit on one view pair's small patch) misses most inliers at the final radius;
    the shrinking schedule collects them and lands on the true transform."""
    from scipy.spatial.transform import Rotation

    from nerf_loc_ros.registration.estimation import Correspondences, refine_hypotheses

    rng = np.random.default_rng(5)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("zyx", [40, 10, -25], degrees=True).as_matrix()
    T[:3, 3] = [0.3, 0.2, -1.0]
    src = rng.uniform(-5, 5, (400, 3))
    tgt = src @ T[:3, :3].T + T[:3, 3] + rng.normal(0, 0.02, (400, 3))
    tgt[150:] = rng.uniform(-8, 8, (250, 3))  # 62 % outliers
    corr = Correspondences(torch.tensor(src, dtype=torch.float32), torch.tensor(tgt, dtype=torch.float32),
                           torch.ones(400), torch.zeros(400, dtype=torch.long))
    centre = T[:3, :3] @ [4.0, 4.0, 4.0] + T[:3, 3]  # the rough fit is right at a patch in one corner
    turn = np.eye(4)
    turn[:3, :3] = Rotation.from_euler("z", 4, degrees=True).as_matrix()
    turn[:3, 3] = centre - turn[:3, :3] @ centre
    Ts = torch.tensor(np.stack([turn @ T, np.eye(4)]), dtype=torch.float32)
    radius = 0.1
    one = refine_hypotheses(Ts, corr, [radius] * 4)
    out = refine_hypotheses(Ts, corr, [4 * radius, 3 * radius, 2 * radius, radius])
    assert rotation_error(one[0].numpy(), T) > 3.0  # passes at the final radius stay where they started
    assert rotation_error(out[0].numpy(), T) < 0.2 and np.linalg.norm(out[0, :3, 3].numpy() - T[:3, 3]) < 0.02
    assert refine_hypotheses(Ts[:0], corr, [radius]).shape == (0, 4, 4)


def _keypoint_views(points: np.ndarray, descriptors: np.ndarray):
    """Keypoints as one rendered view (only points and descriptors matter to guided matching)."""
    from nerf_loc_ros.registration import DepthView
    from nerf_loc_ros.registration.views import ViewPoints

    view = DepthView(np.eye(3), np.eye(4), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
    return [ViewPoints(torch.tensor(descriptors, dtype=torch.float32), points.astype(np.float32), view)]


def test_guided_matching_finds_the_partners_a_near_transform_points_to():
    """Keypoints on two surfaces of a room, descriptors noisy copies (cosine ~0.8) plus unrelated keypoints: under
    the true transform every kept match is a true partner within the radius, one to one, above the cosine;
    guided RANSAC from a proposal 6 degrees / 0.25 m off lands on the truth, and so does the polish from 1 degree
    off."""
    from scipy.spatial.transform import Rotation

    from nerf_loc_ros.registration import ViewRegistrarConfig
    from nerf_loc_ros.registration.views import GuidedMatcher

    rng = np.random.default_rng(11)
    n = 1500
    floor = np.c_[rng.uniform(-4, 4, (n, 2)), np.zeros(n)]
    wall = np.c_[rng.uniform(-4, 4, n), np.full(n, 4.0), rng.uniform(0, 3, n)]
    src = np.r_[floor, wall]
    base = rng.normal(size=(len(src), 64))

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("zyx", [70, 5, -10], degrees=True).as_matrix()
    T[:3, 3] = [1.0, -0.5, 0.2]
    tgt = src @ T[:3, :3].T + T[:3, 3] + rng.normal(0, 0.01, src.shape)
    extra = rng.uniform(-4, 4, (1000, 3)) @ T[:3, :3].T + T[:3, 3]  # target keypoints without a partner
    source = _keypoint_views(src, unit(base + 0.5 * rng.normal(size=base.shape)))
    target = _keypoint_views(np.r_[tgt, extra], unit(np.r_[base + 0.5 * rng.normal(size=base.shape),
                                                          rng.normal(size=(1000, 64))]))
    matcher = GuidedMatcher(source, target)
    i, j, cos = matcher.match(torch.tensor(T, dtype=torch.float32), 0.1, 0.6, 16)
    assert len(i) > 0.9 * len(src) and (i == j).all() and (cos >= 0.6).all()
    assert len(torch.unique(j)) == len(j)
    i, _, _ = matcher.match(torch.tensor(T, dtype=torch.float32), 0.1, 0.95, 16)
    assert len(i) == 0  # nothing that similar
    cfg = ViewRegistrarConfig()
    voxel = 0.05
    centre = T[:3, :3] @ [0.0, 2.0, 0.0] + T[:3, 3]
    off = np.eye(4)
    off[:3, :3] = Rotation.from_euler("z", 6, degrees=True).as_matrix()
    off[:3, 3] = centre - off[:3, :3] @ centre + [0.1, 0.1, 0.0]
    start = torch.tensor(np.stack([off @ T]), dtype=torch.float32)
    refined, pooled = matcher.refine(start, cfg, voxel, torch.Generator().manual_seed(0))
    assert rotation_error(start[0].numpy(), T) > 5.0
    assert rotation_error(refined[0].numpy(), T) < 0.3, rotation_error(refined[0].numpy(), T)
    assert np.linalg.norm(refined[0, :3, 3].numpy() - T[:3, 3]) < 0.03
    moved = pooled.src @ refined[0, :3, :3].T + refined[0, :3, 3]
    assert ((moved - pooled.tgt).norm(dim=1) < 1.5 * voxel).sum() > 0.8 * len(src)
    assert len(torch.unique(pooled.group)) == len(pooled.src)  # each match its own group
    near = np.eye(4)  # the polish: re-fits on fresh guided matches at shrinking radii, from 1 degree off
    near[:3, :3] = Rotation.from_euler("x", 1, degrees=True).as_matrix()
    near[:3, 3] = centre - near[:3, :3] @ centre
    polished = matcher.polish(torch.tensor(near @ T, dtype=torch.float32), [0.1, 0.075, 0.05], 0.5, 64)
    assert rotation_error(polished.numpy(), T) < 0.2, rotation_error(polished.numpy(), T)
    assert torch.equal(matcher.polish(start[0], [1e-6], 0.5, 64), start[0])  # nothing found: unchanged


def rotation_error(Ta: np.ndarray, Tb: np.ndarray) -> float:
    from nerf_loc_ros.geometry import rotation_error_deg

    return float(rotation_error_deg(Ta, Tb))


def test_hypotheses_far_below_the_best_grey_correlation_are_dropped():
    """A look-alike transform with the most inliers but grey levels correlating far below a well-supported rival's
    is dropped; the rival, hypotheses near its correlation and the inconsistent ones keep their verdicts; a rival
    without enough inliers sets no bar."""
    from nerf_loc_ros.registration import keep_best_correlated

    ok = torch.tensor([True, True, True, True, False])
    gc = torch.tensor([0.60, 0.95, 0.85, 0.99, 1.0])
    inliers = torch.tensor([1200, 450, 300, 80, 2000])
    kept = keep_best_correlated(ok, gc, inliers, 150, 0.15)
    assert kept.tolist() == [False, True, True, True, False]
    few = torch.tensor([1200, 100, 100, 80, 2000])  # only the look-alike has the inliers: it is the bar itself
    assert keep_best_correlated(ok, gc, few, 150, 0.15).tolist() == ok.tolist()
    assert keep_best_correlated(ok, gc, torch.zeros(5), 150, 0.15).tolist() == ok.tolist()


def test_distinct_first_order_puts_one_of_each_transform_before_repeats():
    """Ranked hypotheses: three near-copies of a half turn, then the identity, a near-copy of it and a quarter turn:
    the order takes the half turn, the identity and the quarter turn first, then the near-copies in rank order."""
    from scipy.spatial.transform import Rotation

    from nerf_loc_ros.registration import MatchConfig, distinct_first_order

    def T(deg: float, shift: float = 0.0) -> np.ndarray:
        M = np.eye(4)
        M[:3, :3] = Rotation.from_euler("z", deg, degrees=True).as_matrix()
        M[0, 3] = shift
        return M

    Ts = torch.tensor(np.stack([T(180), T(179), T(181, 0.01), T(0), T(1), T(90)]), dtype=torch.float32)
    assert distinct_first_order(Ts, 0.05, MatchConfig()).tolist() == [0, 3, 5, 1, 2, 4]


def test_smoothed_grey_levels_still_correlate_under_a_transform_two_pixels_off():
    """A wall with a fine random texture: moved by 2 px (0.16 m at 4 m) its raw grey levels correlate with the
    view's below 0.55 (the gate on raw grey levels), smoothed by the registrar's 2 px they stay above its gate (a
    transform a few pixels off, which guided matching then refines, is kept); the mirrored texture correlates at
    neither."""
    from scipy.ndimage import gaussian_filter

    from nerf_loc_ros.registration import ViewRegistrarConfig
    from nerf_loc_ros.registration.visibility import (
        DepthView,
        SurfacePoints,
        depth_surface_points,
        smoothed_grey,
        visibility_check,
    )

    cfg = ViewRegistrarConfig()
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    rgb = gaussian_filter(np.random.default_rng(0).uniform(0, 1, (48, 64, 3)), (1, 1, 0))
    none = SurfacePoints(np.zeros((0, 3)), np.zeros(0))
    off = np.eye(4)
    off[0, 3] = 2 * 4.0 / 50.0  # 2 px sideways at 4 m
    for sigma in (0.0, cfg.grey_sigma_px):
        view = DepthView(K, np.eye(4), np.full((48, 64), 4.0, np.float32), smoothed_grey(rgb, sigma))
        wall = depth_surface_points([view], stride=2)
        r_true, r_off = visibility_check(np.stack([np.eye(4), off]), wall, none, [view], [view]).grey_correlation
        mirrored = SurfacePoints(wall.points, smoothed_grey(rgb[:, ::-1], sigma)[1::2, 1::2].ravel())
        r_mirror = visibility_check(np.eye(4), mirrored, none, [view], [view]).grey_correlation[0]
        assert r_true > 0.999 and abs(r_mirror) < 0.3, (sigma, r_true, r_mirror)
        if sigma == 0:
            assert r_off < 0.55, r_off
        else:
            assert r_off > cfg.min_grey_correlation, r_off
    assert smoothed_grey(rgb, 0).dtype == np.float32 and np.allclose(smoothed_grey(rgb, 0), rgb.mean(-1))


def test_visibility_check_counts_agreement_free_space_violations_and_grey_correlation():
    """A textured wall 4 m in front of a camera: points on it agree, points 1 m in front of it violate free space,
    points behind it or outside the image give no evidence; both directions are pooled; grey levels correlate
    where the same texture meets itself (also under an exposure change), not where it meets its mirror image."""
    from nerf_loc_ros.registration.visibility import DepthView, SurfacePoints, depth_surface_points, visibility_check

    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    texture = np.random.default_rng(0).uniform(0.1, 0.9, (48, 64)).astype(np.float32)
    view = DepthView(K, np.eye(4), np.full((48, 64), 4.0, np.float32), texture)
    wall = depth_surface_points([view], stride=4)
    assert wall.points.shape == (12 * 16, 3) and np.allclose(wall.points[:, 2], 4.0)
    assert np.allclose(wall.grey, texture[2::4, 2::4].ravel())
    none = SurfacePoints(np.zeros((0, 3)), np.zeros(0))
    shift = np.eye(4)
    shift[2, 3] = -1.0  # T_target_source moving the source wall 1 m towards the camera
    check = visibility_check(np.stack([np.eye(4), shift]), wall, none, [view], [view])
    assert check.agree.tolist() == [len(wall.points), 0] and check.violate[0] == 0
    assert len(wall.points) / 2 < check.violate[1] < len(wall.points)  # the moved wall's rim leaves the image
    assert check.violation_ratio[0] == 0.0 and check.violation_ratio[1] == 1.0
    assert check.grey_correlation[0] > 0.999 and np.isnan(check.grey_correlation[1])  # nothing agrees
    for scale, agree, violate in ((0.75, 0, len(wall.points)), (1.5, 0, 0)):  # same rays, in front / behind
        c = visibility_check(np.eye(4), SurfacePoints(wall.points * scale, wall.grey), none, [view], [view])
        assert (int(c.agree[0]), int(c.violate[0])) == (agree, violate)
    outside = visibility_check(np.eye(4), SurfacePoints(wall.points + [100.0, 0, 0], wall.grey), none, [view], [view])
    assert outside.compared[0] == 0
    darker = SurfacePoints(wall.points, 0.5 * wall.grey + 0.1)  # exposure change: gain and offset
    assert visibility_check(np.eye(4), darker, none, [view], [view]).grey_correlation[0] > 0.999
    mirrored = SurfacePoints(wall.points, wall.grey.reshape(12, 16)[:, ::-1].ravel().copy())
    assert abs(visibility_check(np.eye(4), mirrored, none, [view], [view]).grey_correlation[0]) < 0.3
    pooled = visibility_check(np.eye(4), wall, SurfacePoints(wall.points * 0.75, wall.grey), [view], [view])
    assert (int(pooled.agree[0]), int(pooled.violate[0])) == (len(wall.points), len(wall.points))
    transparent = DepthView(K, np.eye(4), np.full((48, 64), np.nan, np.float32), texture)
    empty = visibility_check(np.eye(4), wall, none, [view], [transparent])
    assert empty.compared[0] == 0 and empty.violation_ratio[0] == 1.0  # nothing compared: unverified
    assert np.allclose(depth_surface_points([view.moved(shift)], 4).points, wall.points + [0, 0, -1.0])


def test_surface_on_a_seen_through_pixel_violates_free_space_up_to_the_farthest_surface_shown():
    """An object in the left half of a view, background (seen through) in the right half: the other map's points
    on the background's rays violate free space while nearer than the object's farthest depth; without the
    ``free`` mask, or beyond that depth, they give no evidence."""
    from nerf_loc_ros.registration.visibility import DepthView, SurfacePoints, visibility_check

    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    depth = np.full((48, 64), np.nan, np.float32)
    depth[:, :32] = np.linspace(3.0, 5.0, 32, dtype=np.float32)  # farthest surface shown: 5
    free = np.zeros((48, 64), bool)
    free[:, 36:] = True  # a silhouette band of unreliable pixels in between
    grey = np.full((48, 64), 0.5, np.float32)
    r, c = np.mgrid[4:48:8, 40:64:8]
    rays = np.stack([(c.ravel() + 0.5 - 32) / 50.0, (r.ravel() + 0.5 - 24) / 50.0, np.ones(r.size)], 1)
    none = SurfacePoints(np.zeros((0, 3)), np.zeros(0))
    for z, violate in ((4.0, r.size), (6.0, 0)):
        pts = SurfacePoints(rays * z, np.full(r.size, 0.5))
        assert visibility_check(np.eye(4), pts, none, [], [DepthView(K, np.eye(4), depth, grey, free)]
                                ).violate[0] == violate
        assert visibility_check(np.eye(4), pts, none, [], [DepthView(K, np.eye(4), depth, grey)]).compared[0] == 0


def test_view_registrar_recovers_a_rigid_motion_between_rendered_views(procedural_loc_map):
    """Real renders of a NeRF map at two resolutions (different keypoints), the source's points expressed in a
    moved frame: the view registrar finds the motion (AMBIGUOUS when an initial guess is far from it); with
    scrambled descriptors it never reports a wrong transform OK, and with scrambled grey levels as well it reports
    nothing OK."""
    from scipy.spatial.transform import Rotation

    from nerf_loc_ros.registration import (
        RegistrationStatus,
        ViewRegistrar,
        ViewRegistrarConfig,
        registration_errors,
        render_view_points,
    )
    from nerf_loc_ros.registration.views import ViewPoints

    nerf_map = load_map(procedural_loc_map[0])
    reg = ViewRegistrar(ViewRegistrarConfig(views=6))
    T_gt = np.eye(4)  # T_target_source
    T_gt[:3, :3] = Rotation.from_rotvec(np.deg2rad(120.0) * np.array([0.3, -0.2, 1.0]) / np.linalg.norm(
        [0.3, -0.2, 1.0])).as_matrix()
    T_gt[:3, 3] = [2.0, -1.0, 0.4]
    inv = np.linalg.inv(T_gt)
    target = render_view_points(nerf_map, reg.backbone, ViewRegistrarConfig(views=6, max_side=192))
    source = [v.moved(inv) for v in render_view_points(nerf_map, reg.backbone, ViewRegistrarConfig(views=6,
                                                                                                    max_side=144))]
    assert all(len(v.points) > 50 for v in source + target)
    res = reg.register_views(source, target)
    assert res.status == RegistrationStatus.OK, res.reason
    extent = cloud_extent_of(target)
    rre, rte = registration_errors(res.T_target_source, T_gt, extent)
    assert rre < 1.0 and rte < 0.01, (rre, rte)
    assert res.inliers >= 100 and {"matching", "estimation", "total"} <= set(res.timings_ms)
    assert res.free_space_violation < reg.config.max_violation
    # with only each view's 8 strongest keypoints it fails; allowed a retry with more (same renders), it registers
    few = ViewRegistrarConfig(views=6, max_keypoints=8, retry_keypoints=0)
    assert ViewRegistrar(few, reg.backbone).register_views(source, target).status == RegistrationStatus.FAILED
    retried = ViewRegistrar(replace(few, retry_keypoints=1024), reg.backbone).register_views(source, target)
    assert retried.status == RegistrationStatus.OK and retried.timings_ms["first_attempt"] > 0, retried.reason
    assert registration_errors(retried.T_target_source, T_gt, extent)[0] < 1.0
    # a guess near the truth keeps it OK; a guess the evidence contradicts (90 degrees off) makes it AMBIGUOUS
    assert reg.register_views(source, target, init=T_gt).status == RegistrationStatus.OK
    guess = T_gt.copy()
    guess[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix() @ T_gt[:3, :3]
    contradicted = reg.register_views(source, target, init=guess)
    assert contradicted.status == RegistrationStatus.AMBIGUOUS and "initial guess" in contradicted.reason
    assert registration_errors(contradicted.T_target_source, T_gt, extent)[0] < 1.0  # still the registrar's answer
    # the free-space check on the real renders: the truth passes, the truth turned by 90 degrees does not
    from nerf_loc_ros.registration.visibility import depth_surface_points, visibility_check

    turned = T_gt.copy()
    turned[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix() @ T_gt[:3, :3]
    surfaces = [depth_surface_points([v.view for v in vs], 4) for vs in (source, target)]
    check = visibility_check(np.stack([T_gt, turned]), *surfaces, [v.view for v in source],
                             [v.view for v in target])
    assert check.violation_ratio[0] < 0.05 and check.violation_ratio[1] > 0.2, check.violation_ratio
    assert check.grey_correlation[0] > 0.9 and res.grey_correlation > 0.9, (check.grey_correlation, res)
    g = torch.Generator().manual_seed(0)
    scrambled = [ViewPoints(v.descriptors[torch.randperm(len(v.points), generator=g)], v.points, v.view)
                 for v in source]
    bad = reg.register_views(scrambled, target)
    # the descriptors carry nothing now, but the consistency check (rendered depth and grey levels) still does: it
    # may find the truth among the random matches' proposals (chance inliers: a few % of the matches), never
    # report a wrong transform OK
    if bad.status == RegistrationStatus.OK:
        bad_rre, bad_rte = registration_errors(bad.T_target_source, T_gt, extent)
        assert bad_rre < 2.0 and bad_rte < 0.02, (bad_rre, bad_rte, bad.inliers, bad.correspondences)
    # with the grey levels shuffled too, nothing but the geometry is left: never OK
    from nerf_loc_ros.registration import DepthView

    blind = [ViewPoints(v.descriptors, v.points, DepthView(v.view.K, v.view.T_world_cam, v.view.depth,
                                                           rng_grey.permuted(v.view.grey, axis=None)))
             for v, rng_grey in zip(scrambled, [np.random.default_rng(i) for i in range(len(scrambled))])]
    assert reg.register_views(blind, target).status != RegistrationStatus.OK
    with pytest.raises(TypeError, match="register_maps"):
        reg.register(None, None)
    first = reg.views(nerf_map)  # rendered once per map file, then remembered
    assert reg.views(load_map(procedural_loc_map[0])) is first and len(first) == 6


def cloud_extent_of(views) -> float:
    from nerf_loc_ros.registration import cloud_extent

    return cloud_extent(np.concatenate([v.points for v in views]))


def test_register_cli_with_rendered_views(procedural_loc_map, tmp_path):
    """`nerf-loc register` (rendered views, the default method): a map against itself is the identity (its views
    rendered once, the second map load hits the registrar's cache) and passes the consistency check; an unknown
    method name is a clear error."""
    import json

    from nerf_loc_ros.cli.main import main
    from nerf_loc_ros.registration import make_registrar

    path = procedural_loc_map[0]
    assert main(["-q", "register", "--source", str(path), "--target", str(path), "--json", str(tmp_path / "r.json")]
                ) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["status"] == "OK" and np.allclose(doc["T_target_source"], np.eye(4), atol=0.01)
    assert doc["inliers"] >= 100 and doc["timings_ms"]["render"] > 0
    assert doc["free_space_violation"] < 0.05 and doc["grey_correlation"] > 0.9, doc
    with pytest.raises(ValueError, match="desc, fpfh, views"):
        make_registrar("nope")


def test_register_benchmark_on_map_pairs(procedural_loc_map, tmp_path):
    """`bench register` on a pair scene whose two submaps are real NeRF maps (one map, identity motion): every
    method gets a row, the view registrar finds the identity and its time does not count cloud sampling."""
    import yaml

    from nerf_loc_ros.evaluation.register_bench import format_register_table, run_register_benchmark

    scene = tmp_path / "scene"
    nerf_map = load_map(procedural_loc_map[0])
    cloud = sample_nerf_points(nerf_map.model, nerf_map.cameras, SamplingConfig(max_points=3000))
    subs = []
    for name in ("a", "b"):
        (scene / name).mkdir(parents=True)
        (scene / name / "map").symlink_to(procedural_loc_map[0], target_is_directory=True)
        cloud.save(scene / name / "cloud.npz")  # marks the submap finished; the benchmark samples afresh
        subs.append({"name": name, "views": list(range(10)), "T_world_submap": np.eye(4).tolist()})
    (scene / "scene.yaml").write_text(yaml.safe_dump({
        "format_version": 1, "source": "procedural", "seed": 0, "submaps": subs, "overlaps": [[1.0, 1.0], [1.0, 1.0]],
        "eval_pairs": {"80": [0, 1]}}))
    result = run_register_benchmark([scene], methods=("views", "desc"), json_path=tmp_path / "r.json",
                                    progress=False)
    rows = {r["method"]: r for r in result["pairs"]}
    assert set(rows) == {"views", "desc"} and (tmp_path / "r.json").is_file()
    assert rows["views"]["recalled"] and rows["views"]["rre_deg"] < 1.0, rows["views"]
    assert rows["views"]["sampling_seconds"] is None and rows["desc"]["sampling_seconds"] > 0
    assert result["methods"]["views"]["80"]["recall"] == 1.0
    assert "views" in format_register_table(result)

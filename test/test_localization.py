"""Localization building blocks on real data: backbone conventions, retrieval, matching, PnP, covariance,
keyframe database files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nerf_loc_ros.datasets import load_dataset, read_points3D
from nerf_loc_ros.geometry import pose_errors
from nerf_loc_ros.localization import (
    BackboneConfig,
    KeyframeDB,
    XFeatBackbone,
    dual_softmax,
    match_descriptors,
    pose_covariance,
    pose_distance,
    refine_pnp,
    select_keyframes,
    solve_pnp,
)
from nerf_loc_ros.localization.pose import project
from nerf_loc_ros.localization.retrieval import learn_codebook, top_k, vlad
from nerf_loc_ros.maps import MapError


@pytest.fixture(scope="module")
def backbone():
    return XFeatBackbone()


@pytest.fixture(scope="module")
def fern_points(fern_dir):
    xyz, _, _ = read_points3D(fern_dir / "sparse" / "0")
    return xyz


def test_backbone_keypoints_follow_the_pixel_convention(backbone, redkitchen_dir):
    img = load_dataset(str(redkitchen_dir), "map").images[0]  # 320 x 240, upsampled to 512 x 384 by default
    f = backbone(img)
    h, w = img.shape[:2]
    assert 200 < len(f.keypoints) <= backbone.config.max_keypoints
    assert np.all(np.diff(f.scores) <= 0)
    assert f.keypoints.min() >= 0 and f.keypoints[:, 0].max() <= w and f.keypoints[:, 1].max() <= h
    assert f.descriptors.shape == (len(f.keypoints), 64)
    # without upsampling, shifting the content by 32 px (a multiple of the backbone stride, so the same
    # resampling) shifts the keypoints by exactly 32 px
    native = XFeatBackbone(BackboneConfig(min_side=0))
    f = native(img)
    g = native(np.ascontiguousarray(img[:, 32:]))
    a, b = f.keypoints - [32, 0], g.keypoints
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    interior = (a[:, 0] > 40) & (a[:, 0] < w - 72)
    close = d[interior].min(1)
    assert np.mean(close < 0.01) > 0.7  # most keypoints are re-detected at exactly the shifted position


def test_keypoint_nms_equals_max_pooling(backbone, redkitchen_dir):
    # the sparse local-maximum test gives exactly the peaks of a full max-pool NMS on a real heatmap
    img = load_dataset(str(redkitchen_dir), "map").images[3]
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        heat = backbone._keypoint_heatmap(backbone.net(x)[1])
    for radius, threshold in ((2, 0.05), (1, 0.01), (4, 0.2)):
        pooled = torch.nn.functional.max_pool2d(heat, 2 * radius + 1, stride=1, padding=radius)
        expected = ((heat == pooled) & (heat > threshold))[0, 0]
        ys, xs = backbone._local_maxima(heat[0, 0], radius, threshold)
        got = torch.zeros_like(expected)
        got[ys, xs] = True
        assert expected.sum() > 50 and torch.equal(got, expected)


def test_backbone_rejects_bad_images(backbone):
    with pytest.raises(ValueError, match="uint8"):
        backbone(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="too small"):
        backbone(np.zeros((16, 64, 3), np.uint8))


def test_retrieval_finds_nearby_views(backbone, lego_dir):
    train = load_dataset(str(lego_dir), "train")
    test = load_dataset(str(lego_dir), "test").subset(range(0, 100, 10))
    train_desc = [backbone(im).descriptors.numpy() for im in train.images]
    codebook = learn_codebook(np.concatenate(train_desc), 16)
    db = np.stack([vlad(d, codebook) for d in train_desc])
    angles = []
    for i in range(len(test)):
        idx, sim = top_k(vlad(backbone(test.images[i]).descriptors.numpy(), codebook), db, 1)
        assert sim[0] <= 1.0 + 1e-5
        ang = pose_distance(test.T_world_cam[i], train.T_world_cam[idx], 1e9, 1.0)[0]  # rotation only, degrees
        angles.append(ang)
    # lego train views are spread over a hemisphere (nearest neighbour ~10-20 deg away); retrieval must find a close one
    assert np.median(angles) < 35, angles


def test_dual_softmax_recovers_a_permutation():
    g = torch.Generator().manual_seed(0)
    d3 = torch.nn.functional.normalize(torch.randn(300, 32, generator=g), dim=1)
    perm = torch.randperm(300, generator=g)[:200]
    d2 = torch.nn.functional.normalize(d3[perm] + 0.1 * torch.randn(200, 32, generator=g), dim=1)
    d2 = torch.cat([d2, torch.nn.functional.normalize(torch.randn(50, 32, generator=g), dim=1)])  # 50 unmatched
    prob = dual_softmax(d2, d3, 0.05)
    assert prob.sum(1).max() <= 1 + 1e-5 and prob.sum(0).max() <= 1 + 1e-5
    # the log-sum-exp matcher finds exactly the mutual nearest neighbours of the full probability matrix
    i2, i3, conf = match_descriptors(d2, d3, 0.05, 0.2)
    j, i_back = prob.argmax(1), prob.argmax(0)
    mnn = (i_back[j] == torch.arange(250)) & (prob.max(1).values > 0.2)
    assert torch.equal(i2, torch.nonzero(mnn)[:, 0]) and torch.allclose(conf, prob.max(1).values[mnn], rtol=1e-4)
    assert len(i2) >= 190
    correct = (i2 < 200) & (i3 == perm[i2.clamp(max=199)])
    assert correct.float().mean() > 0.98
    assert (i2 >= 200).sum() <= 8  # few of the 50 random descriptors pass the threshold
    # a temperature so low that whole rows underflow in the one-exponential log-sum-exp: the exact fallback
    prob = dual_softmax(d2, d3, 0.004)
    i2, _, conf = match_descriptors(d2, d3, 0.004, 0.2)
    j, i_back = prob.argmax(1), prob.argmax(0)
    mnn = (i_back[j] == torch.arange(250)) & (prob.max(1).values > 0.2)
    assert torch.equal(i2, torch.nonzero(mnn)[:, 0]) and torch.allclose(conf, prob.max(1).values[mnn], rtol=1e-3)


def test_sparse_matching_equals_dense_and_can_be_one_to_many():
    from nerf_loc_ros.localization.matching import match_descriptors_sparse

    g = torch.Generator().manual_seed(1)
    d3 = torch.nn.functional.normalize(torch.randn(120, 32, generator=g), dim=1)
    d3 = torch.cat([d3, torch.nn.functional.normalize(d3[:40] + 0.05 * torch.randn(40, 32, generator=g), dim=1)])
    d2 = torch.nn.functional.normalize(d3[:100] + 0.1 * torch.randn(100, 32, generator=g), dim=1)
    pair_2d = torch.arange(100).repeat_interleave(160)  # every pair: the sparse matcher must equal the dense one
    pair_3d = torch.arange(160).repeat(100)
    prob = dual_softmax(d2, d3, 0.05)
    i2, i3, _ = match_descriptors_sparse(d2, d3, pair_2d, pair_3d, 0.05, 0.1)
    j2, j3, _ = match_descriptors(d2, d3, 0.05, 0.1)
    assert torch.equal(i2, j2) and torch.equal(i3, j3)
    # one-to-many: every point takes its most probable keypoint; the 40 near-copies (points 120-159, the same surface
    # points cached from another keyframe) go to the same keypoints as their originals
    i2, i3, conf = match_descriptors_sparse(d2, d3, pair_2d, pair_3d, 0.05, 0.1, mutual=False)
    best = prob.argmax(0)
    keep = prob.max(0).values > 0.1
    assert torch.equal(i3, torch.nonzero(keep)[:, 0]) and torch.equal(i2, best[keep])
    assert torch.allclose(conf, prob.max(0).values[keep], rtol=1e-4)
    copies = i3 >= 120
    assert copies.sum() >= 30 and torch.equal(i2[copies], i3[copies] - 120)
    assert len(i2) > len(j2) + 25


def test_merge_observations_by_voxel():
    from nerf_loc_ros.localization.mapping import merge_observations

    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 1, (500, 3))
    feats = rng.normal(size=(500, 4))
    obs_point, points, pf = merge_observations(xyz, feats, 0.0)
    assert np.array_equal(obs_point, np.arange(500)) and np.array_equal(points, xyz)  # 0: one point per observation
    obs_point, points, pf = merge_observations(xyz, feats, 0.25)
    cells = np.floor(xyz / 0.25).astype(int)
    for p in range(len(points)):  # a point is the mean of exactly the observations of its cell
        members = obs_point == p
        assert (cells[members] == cells[members][0]).all()
        assert np.allclose(points[p], xyz[members].mean(0)) and np.allclose(pf[p], feats[members].mean(0))
    assert len(points) == len(np.unique(cells, axis=0))
    first_seen = [obs_point[0]] + [p for k, p in enumerate(obs_point[1:], 1) if p not in obs_point[:k]]
    assert first_seen == list(range(len(points)))  # numbered by first observation
    with pytest.raises(ValueError, match=">= 0"):
        merge_observations(xyz, feats, -1.0)


def _fern_view(fern_dir, fern_points, i: int, n: int):
    """Fern view ``i``: ``(data, K, T_world_cam, (w, h), X [n x 3], uv [n x 2])`` of its first ``n`` visible points."""
    data = load_dataset(str(fern_dir))
    K, T = data.K[i], data.T_world_cam[i]
    w, h = data.size(i)
    uv, z = project(K, T, fern_points)
    vis = (z > 0) & (uv[:, 0] > 0) & (uv[:, 0] < w) & (uv[:, 1] > 0) & (uv[:, 1] < h)
    return data, K, T, (w, h), fern_points[vis][:n], uv[vis][:n]


def test_pnp_on_real_fern_geometry(fern_dir, fern_points):
    data, K, T, (w, h), X, uv = _fern_view(fern_dir, fern_points, 3, 800)
    rng = np.random.default_rng(0)
    uv = uv + rng.normal(0, 0.5, uv.shape)
    outliers = rng.random(len(uv)) < 0.4
    uv[outliers] = rng.uniform([0, 0], [w, h], (outliers.sum(), 2))
    res = solve_pnp(uv, X, K, (w, h))
    rot, trans = pose_errors(res.T_world_cam[None], T[None])
    assert rot[0] < 0.2 and trans[0] < 0.01 * data.extent() + 1e-3
    assert np.mean(res.inliers[~outliers]) > 0.95 and np.mean(res.inliers[outliers]) < 0.05
    assert res.reproj_error < 1.5
    # too few correspondences: no pose, no exception
    assert solve_pnp(uv[:3], X[:3], K, (w, h)).T_world_cam is None


def test_refine_pnp_from_a_close_guess(fern_dir, fern_points):
    # guided-pass refinement: from a pose 0.5 deg / 1 % of the extent off, with 20 % gross outliers, back to the
    # truth without RANSAC; the outliers are left out of the inliers
    data, K, T, (w, h), X, uv = _fern_view(fern_dir, fern_points, 4, 600)
    rng = np.random.default_rng(3)
    uv = uv + rng.normal(0, 0.5, uv.shape)
    outliers = rng.random(len(uv)) < 0.2
    uv[outliers] += rng.uniform(4, 30, (outliers.sum(), 2)) * rng.choice([-1, 1], (outliers.sum(), 2))
    guess = T.copy()
    guess[:3, :3] = Rotation.from_rotvec(np.radians([0.3, -0.4, 0.2])).as_matrix() @ T[:3, :3]
    guess[:3, 3] += 0.01 * data.extent() * np.array([0.6, -0.8, 0.0])
    res = refine_pnp(uv, X, K, (w, h), guess, 2.0)
    rot, trans = pose_errors(res.T_world_cam[None], T[None])
    rot0, trans0 = pose_errors(guess[None], T[None])
    assert rot[0] < 0.1 * rot0[0] and trans[0] < 0.1 * trans0[0]
    assert np.mean(res.inliers[~outliers]) > 0.95 and np.mean(res.inliers[outliers]) < 0.05
    assert refine_pnp(uv[:3], X[:3], K, (w, h), guess, 2.0).T_world_cam is None


def test_narrow_guided_pairs_filter_the_wider_ones(fern_dir, fern_points):
    # a narrower guided pass filters the previous pass's pairs instead of searching all points again: the same pairs
    # as a fresh search whenever the pose moved by less than the difference of the radii
    from nerf_loc_ros.localization import Localizer

    _, K, T, (w, h), X, uv = _fern_view(fern_dir, fern_points, 2, 3000)
    keypoints = uv[::3] + np.random.default_rng(5).normal(0, 2.0, uv[::3].shape)
    moved = T.copy()
    moved[:3, :3] = Rotation.from_rotvec(np.radians([0.05, 0.0, -0.05])).as_matrix() @ T[:3, :3]
    shift = np.abs(project(K, moved, X)[0] - project(K, T, X)[0]).max()
    assert 0.2 < shift < 2.0  # pixels
    wide = Localizer._near_pairs(keypoints, X, K, (w, h), T, 8.0)
    assert len(wide[0]) > 2 * len(keypoints)
    direct = Localizer._near_pairs(keypoints, X, K, (w, h), moved, 3.0)
    filtered = Localizer._near_pairs(keypoints, X, K, (w, h), moved, 3.0, wider=wide)
    assert len(direct[0]) > len(keypoints)
    assert set(zip(*map(np.ndarray.tolist, filtered))) == set(zip(*map(np.ndarray.tolist, direct)))


def test_gating_needs_pose_independent_support_after_guided_passes(fern_dir, fern_points):
    from nerf_loc_ros.localization import LocalizationResult, LocalizerConfig, Status
    from nerf_loc_ros.localization.localizer import gate_result

    _, K, _, (w, h), X, uv = _fern_view(fern_dir, fern_points, 2, 300)
    pnp = solve_pnp(uv, X, K, (w, h))
    cfg = LocalizerConfig()

    def gate(stages):
        res = LocalizationResult(Status.FAILED, num_matches=len(uv), matches_2d=uv, matches_3d=X,
                                 inliers=pnp.inliers, num_inliers=pnp.num_inliers, reproj_error=pnp.reproj_error,
                                 stages=stages)
        gate_result(res, pnp.T_world_cam, K, cfg)
        return res

    assert gate({}).status == Status.OK  # no guided pass (e.g. the SIFT baseline): the final support decides
    strong = {"first_matches": 250, "first_inliers": 120, "refine_matches": 300, "refine_inliers": 290}
    assert gate(strong).status == Status.OK
    weak = dict(strong, first_inliers=19)  # 300 guided inliers around a pose only 19 unguided matches carry
    res = gate(weak)
    assert res.status == Status.LOW_CONFIDENCE and res.reason.startswith("first pass: 19 inliers")
    assert res.T_world_cam is not None  # still reported, with its covariance, for a tracker to use or not
    assert gate(dict(strong, first_matches=600)).status == Status.OK  # a low first-pass ratio alone is allowed


def test_covariance_predicts_the_spread_of_pnp_estimates(fern_dir, fern_points):
    _, K, T, (w, h), X, uv0 = _fern_view(fern_dir, fern_points, 5, 150)
    sigma = 1.0
    cov = pose_covariance(K, T, uv0, X, sigma_px=sigma)
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
    rng = np.random.default_rng(1)
    est = []
    for _ in range(60):
        r = solve_pnp(uv0 + rng.normal(0, sigma, uv0.shape), X, K, (w, h))
        est.append(r.T_world_cam[:3, 3] - T[:3, 3])
    emp = np.std(np.array(est), axis=0)
    pred = np.sqrt(np.diag(cov)[:3])
    assert np.all(emp < 2.0 * pred) and np.all(emp > 0.5 * pred), (emp, pred)
    # more matches -> smaller covariance
    assert np.trace(pose_covariance(K, T, uv0[:40], X[:40], sigma_px=sigma)[:3, :3]) > np.trace(cov[:3, :3])


def test_select_keyframes_spreads_poses(redkitchen_dir):
    data = load_dataset(str(redkitchen_dir), "map")
    idx = select_keyframes(data.T_world_cam, 20, data.extent() / 10)
    assert len(idx) == 20 and len(np.unique(idx)) == 20
    d = pose_distance(data.T_world_cam, data.T_world_cam[idx], data.extent() / 10)
    evenly = np.linspace(0, len(data) - 1, 20).round().astype(int)
    d_even = pose_distance(data.T_world_cam, data.T_world_cam[evenly], data.extent() / 10)
    assert d.min(1).max() <= d_even.min(1).max()  # farthest sampling covers the worst-covered pose better
    assert np.array_equal(select_keyframes(data.T_world_cam[:5], 20, 1.0), np.arange(5))


def _db(k=3, p=10):
    rng = np.random.default_rng(0)
    T = np.repeat(np.eye(4)[None], k, 0)
    T[:, 0, 3] = np.arange(k)
    counts = np.array([4, 3, 5])[:k]
    return KeyframeDB(
        T_world_cam=T, K=np.repeat(np.eye(3)[None], k, 0), size=np.full((k, 2), 64), names=np.array(["a", "b", "c"][:k]),
        global_desc=rng.normal(size=(k, 8)).astype(np.float32), codebook=rng.normal(size=(2, 4)).astype(np.float32),
        points=rng.normal(size=(p, 3)).astype(np.float32), point_features=rng.normal(size=(p, 5)).astype(np.float16),
        point_descriptors=rng.normal(size=(p, 6)).astype(np.float16),
        obs_ptr=np.concatenate([[0], np.cumsum(counts)]), obs_point=rng.integers(0, p, counts.sum()).astype(np.int32),
        obs_uv=rng.uniform(0, 64, (counts.sum(), 2)).astype(np.float32),
    )


def test_keyframe_db_round_trip_and_validation(tmp_path):
    db = _db()
    db.save(tmp_path / "keyframes.npz")
    back = KeyframeDB.load(tmp_path / "keyframes.npz")
    assert np.array_equal(back.obs_point, db.obs_point) and list(back.names) == ["a", "b", "c"]
    assert np.array_equal(back.observed_points([0, 2]), np.unique(np.concatenate(
        [db.obs_point[0:4], db.obs_point[7:12]])))
    assert back.nearest_keyframes(db.T_world_cam[2], 1)[0] == 2
    assert back.nearest_keyframes(db.T_world_cam[2], 1, exclude=2)[0] == 1
    bad = _db()
    bad.obs_point[0] = 99
    bad.save(tmp_path / "bad.npz")
    with pytest.raises(MapError, match="out of range"):
        KeyframeDB.load(tmp_path / "bad.npz")
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "keyframes.npz").read_bytes()[:100])
    with pytest.raises(MapError, match="cannot read"):
        KeyframeDB.load(tmp_path / "trunc.npz")


def test_keyframe_db_fine_patches_are_optional(tmp_path):
    db = _db()
    assert not db.has_patches
    db.point_patches = np.random.default_rng(1).integers(0, 256, (db.num_points, 9, 9), dtype=np.uint8)
    db.save(tmp_path / "keyframes.npz")
    back = KeyframeDB.load(tmp_path / "keyframes.npz")
    assert back.has_patches and np.array_equal(back.point_patches, db.point_patches)
    # a map written before the fine level has no patches: it loads, and the localizer skips its fine level
    with np.load(tmp_path / "keyframes.npz", allow_pickle=False) as z:
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if k != "point_patches"})
    assert not KeyframeDB.load(tmp_path / "old.npz").has_patches
    db.point_patches = db.point_patches[:-1]
    db.save(tmp_path / "bad.npz")
    with pytest.raises(MapError, match="point_patches"):
        KeyframeDB.load(tmp_path / "bad.npz")

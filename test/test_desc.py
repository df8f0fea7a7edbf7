"""DeSC: preparation, network invariance, ground truth and losses, estimation, weights, training with resume,
pair scenes on disk. Clouds here come from the procedural scene's depth cameras (real geometry and colours, no
NeRF), so these tests stay fast; clouds sampled from real NeRF maps are tested in test_registration.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from nerf_loc_ros.datasets import load_dataset
from nerf_loc_ros.registration import (
    DescConfig,
    DescNetwork,
    DescRegistrar,
    MatchConfig,
    NerfPointCloud,
    PrepareConfig,
    load_desc_weights,
    load_pair_scene,
    pair_voxel_size,
    prepare_cloud,
    random_rigid_transform,
    save_desc_weights,
    weighted_kabsch,
)
from nerf_loc_ros.geometry import rotation_error_deg
from nerf_loc_ros.registration.estimation import Correspondences, estimate_transform, icp_point_to_plane
from nerf_loc_ros.registration.losses import LossConfig, desc_losses, pair_truth

SMALL_PREP = PrepareConfig(max_fine=1200, num_super=96, max_dense=6000)


def depth_cloud(data, per_image: int = 400, seed: int = 0) -> NerfPointCloud:
    """Surface points of a capture from its depth maps, with the pixel colours and the direction back to the
    camera as normal (what NeRF sampling gives, without a NeRF)."""
    rng = np.random.default_rng(seed)
    pts, cols, nrm = [], [], []
    for i in range(len(data)):
        d = data.depths[i]
        v, u = np.nonzero(np.isfinite(d) & (d > 0))
        k = rng.choice(len(u), size=min(per_image, len(u)), replace=False)
        u, v = u[k], v[k]
        z = d[v, u].astype(np.float64)
        rays = np.stack([u + 0.5, v + 0.5, np.ones_like(z)], 1) @ np.linalg.inv(data.K[i]).T
        Xc = rays * z[:, None]
        T = data.T_world_cam[i]
        X = Xc @ T[:3, :3].T + T[:3, 3]
        pts.append(X)
        cols.append(data.images[i][v, u, :3] / 255.0)
        nrm.append(-(rays / np.linalg.norm(rays, axis=1, keepdims=True)) @ T[:3, :3].T)
    P = np.concatenate(pts).astype(np.float32)
    return NerfPointCloud(P, rng.normal(size=(len(P), 8)).astype(np.float32), np.concatenate(cols).astype(np.float32),
                          np.full(len(P), 50.0, np.float32), np.concatenate(nrm).astype(np.float32))


@pytest.fixture(scope="module")
def room_pair():
    """Two overlapping halves of the procedural mapping session as clouds, the source moved rigidly:
    ``(source, target, T_target_source)``."""
    data = load_dataset("procedural:seed=3:frames=24:size=96x72", "mapping")
    target = depth_cloud(data.subset(range(0, 16)), seed=1)
    source_world = depth_cloud(data.subset(range(8, 24)), seed=2)
    T_src_world = random_rigid_transform(np.random.default_rng(5), 120.0, 2.0)
    return source_world.transformed(T_src_world), target, np.linalg.inv(T_src_world)


def test_cloud_files_round_trip_and_reject_bad_content(room_pair, tmp_path):
    cloud = room_pair[1]
    cloud.save(tmp_path / "c.npz")
    back = NerfPointCloud.load(tmp_path / "c.npz")
    assert np.array_equal(back.points, cloud.points) and np.array_equal(back.normals, cloud.normals)
    np.savez(tmp_path / "missing.npz", points=cloud.points)
    with pytest.raises(ValueError, match="missing"):
        NerfPointCloud.load(tmp_path / "missing.npz")
    bad = {k: getattr(cloud, k).copy() for k in ("points", "features", "colors", "density", "normals")}
    bad["density"][3] = np.nan
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(ValueError, match="non-finite"):
        NerfPointCloud.load(tmp_path / "nan.npz")


def test_prepared_levels_are_consistent(room_pair):
    src, tgt, _ = room_pair
    voxel = pair_voxel_size(src, tgt, SMALL_PREP)
    pc = prepare_cloud(tgt, voxel, SMALL_PREP)
    M = len(pc.fine_xyz)
    assert 96 <= M <= 1200 and pc.super_idx.shape == (96,) and len(set(pc.super_idx.tolist())) == 96
    assert pc.patch_fine.shape == (96, SMALL_PREP.k_patch_fine) and int(pc.patch_fine.max()) < M
    assert torch.allclose(pc.fine_normal.norm(dim=1), torch.ones(M), atol=1e-4)
    # PCA normals keep the free-space side: on the floor (z ~ 0, room frame) they point up
    floor = pc.fine_xyz[:, 2] < 0.05
    assert floor.sum() > 10 and (pc.fine_normal[floor, 2] > 0).float().mean() > 0.9
    with pytest.raises(ValueError, match="superpoints"):
        prepare_cloud(tgt.subset(np.arange(50)), voxel, SMALL_PREP)


def test_network_is_invariant_to_rigid_motions(room_pair):
    src, tgt, _ = room_pair
    voxel = pair_voxel_size(src, tgt, SMALL_PREP)
    ps, pt = prepare_cloud(src, voxel, SMALL_PREP), prepare_cloud(tgt, voxel, SMALL_PREP)
    torch.manual_seed(0)
    net = DescNetwork(DescConfig(d_model=32, fine_dim=16, level0_dims=(8, 16), tex_dim=16, blocks=1)).eval()
    with torch.no_grad():
        out = net(ps, pt)
        T = random_rigid_transform(np.random.default_rng(1), 180.0, 10.0)
        moved = net(ps.transformed(T), pt.transformed(np.linalg.inv(T)))
    assert out["super_src"].shape == (96, 32) and out["fine_tgt"].shape == (len(pt.fine_xyz), 16)
    for k in out:
        assert torch.allclose(out[k], moved[k], atol=1e-4), k


def test_ground_truth_overlap_and_losses(room_pair):
    src, tgt, T = room_pair
    voxel = pair_voxel_size(src, tgt, SMALL_PREP)
    ps, pt = prepare_cloud(src, voxel, SMALL_PREP), prepare_cloud(tgt, voxel, SMALL_PREP)
    truth = pair_truth(ps, pt, T)
    wrong = pair_truth(ps, pt, np.eye(4))  # the source is far from the target in its own frame
    assert (truth.fine_match >= 0).float().mean() > 0.2 and truth.overlap.max() > 0.5
    assert (wrong.overlap > 0.1).sum() < 0.1 * (truth.overlap > 0.1).sum()
    net = DescNetwork(DescConfig(d_model=32, fine_dim=16, level0_dims=(8, 16), tex_dim=16, blocks=1))
    losses = desc_losses(net(ps, pt), ps, pt, truth, LossConfig(fine_pairs=16))
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses["fine"]) > 0
    losses["total"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad
               and p.grad is not None)
    assert net.dsam.lhtw_gain.grad is not None


def test_weighted_kabsch_and_distinct_hypotheses():
    rng = np.random.default_rng(0)
    T1 = torch.as_tensor(random_rigid_transform(rng, 90, 2.0), dtype=torch.float32)
    T2 = torch.as_tensor(random_rigid_transform(rng, 90, 2.0), dtype=torch.float32)
    src = torch.as_tensor(rng.uniform(-1, 1, (80, 3)), dtype=torch.float32)
    tgt = src @ T1[:3, :3].T + T1[:3, 3]
    tgt[60:] = torch.as_tensor(rng.uniform(-1, 1, (20, 3)), dtype=torch.float32)  # outliers
    w = torch.ones(80)
    w[60:] = 0
    assert torch.allclose(weighted_kabsch(src, tgt, w), T1, atol=1e-4)
    # groups of 10 correspondences: 4 groups agree on T1, k groups on T2
    for k, ambiguous in ((1, False), (4, True)):
        s = src[: 10 * (4 + k)]
        t = torch.cat([s[:40] @ T1[:3, :3].T + T1[:3, 3], s[40:] @ T2[:3, :3].T + T2[:3, 3]])
        corr = Correspondences(s, t, torch.ones(len(s)), torch.arange(len(s)) // 10)
        no_coarse = Correspondences(s[:0], t[:0], torch.ones(0), torch.zeros(0, dtype=torch.long))
        est = estimate_transform(corr, no_coarse, 0.01, 0.05, MatchConfig())
        best, runner = est.best, est.runner_up
        assert runner is not None
        assert (runner.support >= 0.8 * best.support) == ambiguous
        assert est.plausible == (2 if ambiguous else 1) and (est.confidence < 0.2) == ambiguous
        if not ambiguous:
            assert torch.allclose(best.T, T1, atol=1e-3) and best.inliers == 40  # no coarse matches here
            assert est.residual_rms < 1e-4 and est.error_estimates()[1] < 1e-4
    # coarse matches alone (superpoint centres, 30 % outliers): RANSAC over triplets finds the transform
    c_src = torch.as_tensor(rng.uniform(-3, 3, (40, 3)), dtype=torch.float32)
    c_tgt = c_src @ T1[:3, :3].T + T1[:3, 3] + 0.01 * torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    c_tgt[28:] = torch.as_tensor(rng.uniform(-3, 3, (12, 3)), dtype=torch.float32)
    coarse = Correspondences(c_src, c_tgt, torch.ones(40), torch.arange(40))
    est = estimate_transform(no_coarse, coarse, 0.01, 0.1, MatchConfig(), torch.Generator().manual_seed(1))
    assert rotation_error_deg(est.best.T.numpy(), T1.numpy()) < 2.0 and (est.best.T[:3, 3] - T1[:3, 3]).norm() < 0.1


def test_prefer_chooses_among_variants_of_the_best_supported_transform():
    """``estimate_transform(prefer=...)``: of the hypotheses within 3 deg of the best-supported one (not distinct)
    with enough of its support, the preferred one is refined; a distinct transform is never picked by preference,
    and a variant with too little support is not either."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)
    T1 = torch.as_tensor(random_rigid_transform(rng, 90, 2.0), dtype=torch.float32)
    T1b = T1.clone()  # a variant of T1: turned by 3 deg about the origin
    Rz = torch.as_tensor(Rotation.from_euler("z", 3, degrees=True).as_matrix(), dtype=torch.float32)
    T1b[:3, :3] = Rz @ T1[:3, :3]
    T2 = torch.as_tensor(random_rigid_transform(rng, 90, 2.0), dtype=torch.float32)
    src = torch.as_tensor(rng.uniform(-1, 1, (115, 3)), dtype=torch.float32)
    tgt = torch.cat([src[:50] @ T1[:3, :3].T + T1[:3, 3], src[50:95] @ T1b[:3, :3].T + T1b[:3, 3],
                     src[95:] @ T2[:3, :3].T + T2[:3, 3]])
    corr = Correspondences(src, tgt, torch.ones(115), torch.arange(115))
    none = Correspondences.empty()
    Ts = torch.stack([T1, T1b, T2])
    scores = {0: 0.5, 1: 0.9, 2: 1.0}  # T2 scores best but is distinct

    def prefer(H: torch.Tensor) -> torch.Tensor:
        return torch.tensor([max(scores[i] for i in range(3) if torch.allclose(h, Ts[i])) for h in H])

    cfg = MatchConfig(ransac_iterations=0)
    assert torch.allclose(estimate_transform(corr, none, 0.01, 0.0, cfg, hypotheses=Ts).best.T, T1, atol=1e-3)
    est = estimate_transform(corr, none, 0.01, 0.0, cfg, hypotheses=Ts, prefer=prefer, prefer_ratio=0.8)
    assert rotation_error_deg(est.best.T.numpy(), T1b.numpy()) < 0.5 < 2.0 < rotation_error_deg(est.best.T.numpy(),
                                                                                                  T1.numpy())
    strict = estimate_transform(corr, none, 0.01, 0.0, cfg, hypotheses=Ts, prefer=prefer, prefer_ratio=0.95)
    assert torch.allclose(strict.best.T, T1, atol=1e-3)  # 45 of 50 is below 95 % of the support


def test_icp_refines_a_small_offset(room_pair):
    _, tgt, _ = room_pair
    pc = prepare_cloud(tgt, pair_voxel_size(tgt, tgt, SMALL_PREP), SMALL_PREP)
    P, N = pc.fine_xyz.double().numpy(), pc.fine_normal.double().numpy()
    off = np.eye(4)
    off[:3, :3] = torch.as_tensor(random_rigid_transform(np.random.default_rng(2), 3, 0)[:3, :3]).numpy()
    off[:3, 3] = [0.04, -0.03, 0.02]
    T, fitness, rmse = icp_point_to_plane(P, P, N, off, max_distance=0.3)
    assert np.abs(T - np.eye(4)).max() < 1e-3 and fitness > 0.99 and rmse < 1e-3


def test_weights_round_trip_and_bad_files(tmp_path):
    net = DescNetwork(DescConfig(d_model=32, fine_dim=16, level0_dims=(8, 16), tex_dim=16, blocks=1))
    save_desc_weights(net, tmp_path / "w.safetensors", {"note": "test"})
    back, meta = load_desc_weights(tmp_path / "w.safetensors")
    assert meta == {"note": "test"} and back.config == net.config
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not DeSC weights"):
        load_desc_weights(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="train-desc"):
        load_desc_weights(tmp_path / "absent.safetensors")


def _write_scene(directory, data, pieces, seed):
    """A pair scene on disk whose submap clouds come from depth (what make_pair_scene writes, minus the NeRFs)."""
    rng = np.random.default_rng(seed)
    subs, seen = [], []
    for name, views in pieces.items():
        T_sub_world = random_rigid_transform(rng, 180.0, 2.0)
        (directory / name).mkdir(parents=True)
        depth_cloud(data.subset(views), seed=seed).transformed(T_sub_world).save(directory / name / "cloud.npz")
        subs.append({"name": name, "views": list(views), "T_world_submap": np.linalg.inv(T_sub_world).tolist()})
        seen.append(set(views))
    ov = [[len(a & b) / min(len(a), len(b)) for b in seen] for a in seen]
    doc = {"format_version": 1, "source": "procedural depth", "seed": seed, "submaps": subs, "overlaps": ov,
           "eval_pairs": {"50": [0, 1]}}
    (directory / "scene.yaml").write_text(yaml.safe_dump(doc))


def test_training_resumes_and_writes_usable_weights(tmp_path):
    from nerf_loc_ros.registration.trainer import DescTrainConfig, train_desc, write_trained_weights

    data = load_dataset("procedural:seed=4:frames=20:size=80x60", "mapping")
    _write_scene(tmp_path / "scene", data, {"a": range(0, 12), "b": range(6, 20)}, seed=0)
    scene = load_pair_scene(tmp_path / "scene")
    assert len(scene.training_pairs()) == 2 and set(scene.evaluation_pairs()) == {"50"}
    cfg = DescTrainConfig(steps=3, checkpoint_every=2, threads=1,
                          network=DescConfig(d_model=32, fine_dim=16, level0_dims=(8, 16), tex_dim=16, blocks=1),
                          prepare=SMALL_PREP, loss=LossConfig(fine_pairs=8))
    _, first = train_desc([tmp_path / "scene"], tmp_path / "ckpt", cfg, progress=False)
    assert first["steps"] == 3 and (tmp_path / "ckpt" / "checkpoint.safetensors").is_file()
    cfg.steps = 5
    net, second = train_desc([tmp_path / "scene"], tmp_path / "ckpt", cfg, progress=False)
    history = yaml.safe_load((tmp_path / "ckpt" / "checkpoint.json").read_text())["history"]
    assert second["steps"] == 5 and len(history) == 5  # resumed at 3, not restarted
    path, card = write_trained_weights(net, second, tmp_path / "ckpt", [tmp_path / "scene"])
    assert "Held-out scenes: scene" in card and (tmp_path / "ckpt" / "MODEL_CARD.md").is_file()
    reg = DescRegistrar(path)
    assert reg.metadata["heldout"]["methods"]["desc"]["50"]["pairs"] == 1
    with pytest.raises(ValueError, match="another network config"):
        train_desc([tmp_path / "scene"], tmp_path / "ckpt", DescTrainConfig(steps=6), progress=False)


def test_pair_scene_validation(tmp_path):
    data = load_dataset("procedural:seed=4:frames=12:size=64x48", "mapping")
    _write_scene(tmp_path / "s", data, {"a": range(0, 8), "b": range(4, 12)}, seed=1)
    doc = yaml.safe_load((tmp_path / "s" / "scene.yaml").read_text())
    doc["submaps"][1]["T_world_submap"][0][0] = 3.0
    (tmp_path / "s" / "scene.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="not a rigid"):
        load_pair_scene(tmp_path / "s")
    doc["submaps"][1]["T_world_submap"] = np.eye(4).tolist()
    doc["eval_pairs"] = {"50": [0, 7]}
    (tmp_path / "s" / "scene.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="out of range"):
        load_pair_scene(tmp_path / "s")

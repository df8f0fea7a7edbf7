"""The procedural scene: deterministic, exact depth, view-consistent, sensible trajectories, rich textures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nerf_loc_ros.datasets import load_dataset
from nerf_loc_ros.datasets.procedural import (
    EPOCH_NS,
    ProceduralScene,
    ProceduralSceneConfig,
    intrinsics,
    look_pose,
    make_session,
    mapping_trajectory,
    query_trajectory,
    render_views,
)
from nerf_loc_ros.geometry import PinholeCamera, invert_pose, is_rigid, transform_points
from nerf_loc_ros.geometry.se3 import rotation_error_deg


@pytest.fixture(scope="module")
def scene0() -> ProceduralScene:
    return ProceduralScene(ProceduralSceneConfig(seed=0))


def _layout(scene: ProceduralScene) -> list:
    return [(type(o).__name__, np.round(np.concatenate(o.aabb()), 4).tolist()) for o in scene.objects]


def _backproject(depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = depth.shape
    cam = PinholeCamera.from_K(K, w, h)
    X, uv = cam.depth_to_points(depth)
    return transform_points(T_world_cam, X), uv


# ----------------------------------------------------------------------------- determinism, layout
def test_same_seed_identical_different_seed_different():
    a = make_session(seed=3, n_frames=3, width=80, height=60)
    b = make_session(seed=3, n_frames=3, width=80, height=60)
    c = make_session(seed=4, n_frames=3, width=80, height=60)
    for x, y, dx, dy in zip(a.images, b.images, a.depths, b.depths):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(dx, dy)
    np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)
    assert all(not np.array_equal(x, y) for x, y in zip(a.images, c.images))
    s3, s4 = (ProceduralScene(ProceduralSceneConfig(seed=s)) for s in (3, 4))
    assert _layout(s3) != _layout(s4)


def test_layouts_vary_and_use_every_primitive():
    scenes = [ProceduralScene(ProceduralSceneConfig(seed=s)) for s in range(8)]
    layouts = [_layout(s) for s in scenes]
    assert len({str(lay) for lay in layouts}) == len(layouts)
    for s in scenes:
        assert 5 <= len(s.object_names) <= 8
        lo, hi = s.bounds()
        np.testing.assert_allclose(hi - lo, [6.0, 5.0, 3.0])
        for o in s.objects:  # every object inside the room
            olo, ohi = o.aabb()
            assert np.all(olo >= lo - 1e-6) and np.all(ohi <= hi + 1e-6)
    kinds = {type(o).__name__ for s in scenes for o in s.objects}
    assert kinds == {"Box", "Sphere", "Cylinder"}
    yaws = np.array([o.yaw for s in scenes for o in s.objects if type(o).__name__ == "Box"])
    assert np.any(np.abs(np.sin(2 * yaws)) > 0.2)  # some boxes are rotated, not axis-aligned


# ----------------------------------------------------------------------------- depth
def test_depth_of_a_wall_straight_ahead_is_exact():
    scene = ProceduralScene(ProceduralSceneConfig(seed=0, num_objects=0))
    K = intrinsics(80, 60, 65.0)
    T = look_pose(np.array([1.25, 2.5, 1.5]), np.pi, 0.0)  # looking along -x at the wall x = 0
    rgb, depth = scene.render(T, K, 80, 60)
    assert depth.dtype == np.float32 and rgb.dtype == np.uint8 and rgb.shape == (60, 80, 3)
    np.testing.assert_allclose(depth, 1.25, atol=2e-6)  # z-depth, not ray length
    T = look_pose(np.array([3.0, 2.5, 1.0]), 0.3, -np.pi / 2 + 1e-9)  # looking straight down at the floor
    np.testing.assert_allclose(scene.render(T, K, 80, 60)[1], 1.0, atol=2e-6)


def test_backprojected_depth_lies_on_the_surfaces(scene0):
    K = intrinsics(160, 120, 65.0)
    for T in mapping_trajectory(scene0, 8)[::3]:
        _, depth = scene0.render(T, K, 160, 120)
        X, _ = _backproject(depth, K, T)
        # the analytic signed distance (independent of the ray caster) is zero on every surface
        assert np.abs(scene0.clearance(X)).max() < 2e-4


def test_depth_reprojects_into_a_neighbouring_frame():
    posed = make_session(seed=1, n_frames=60, width=160, height=120, workers=1)
    i, j = 20, 22
    X, _ = _backproject(posed.depths[i], posed.K[i], posed.T_world_cam[i])
    cam = posed.camera(j)
    uv, z = cam.project(transform_points(invert_pose(posed.T_world_cam[j]), X))
    ok = cam.in_image(uv) & (uv[:, 0] > 1) & (uv[:, 1] > 1) & (uv[:, 0] < cam.width - 1) & (uv[:, 1] < cam.height - 1)
    assert ok.mean() > 0.6
    dj = posed.depths[j]
    x, y = uv[ok, 0] - 0.5, uv[ok, 1] - 0.5  # pixel centres at +0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    quad = np.stack([dj[y0, x0], dj[y0, x0 + 1], dj[y0 + 1, x0], dj[y0 + 1, x0 + 1]])
    interp = (quad[0] * (1 - fx) + quad[1] * fx) * (1 - fy) + (quad[2] * (1 - fx) + quad[3] * fx) * fy
    smooth = quad.max(0) - quad.min(0) < 0.05  # not across an occlusion boundary
    err = np.abs(interp - z[ok])[smooth]
    assert np.median(err) < 1e-3 and np.mean(err < 2e-3) > 0.9


def test_culling_never_changes_the_nearest_hit():
    """render() and raycast() cull primitives by their bounds; the hits must equal a brute-force test."""
    scene = ProceduralScene(ProceduralSceneConfig(seed=4))
    K = intrinsics(96, 72, 65.0)
    u, v = np.meshgrid((np.arange(96) + 0.5 - K[0, 2]) / K[0, 0], (np.arange(72) + 0.5 - K[1, 2]) / K[1, 1])
    d_cam = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    for T in np.concatenate([mapping_trajectory(scene, 6), query_trajectory(scene, 6)]):
        d = (d_cam @ T[:3, :3].T).astype(np.float32)
        comp = tuple(np.ascontiguousarray(d[:, k]) for k in range(3))
        t_all, pid_all = scene._raycast(T[:3, 3], comp, lambda *bounds: np.arange(len(d)))
        t_cone, pid_cone = scene.raycast(T[:3, 3], d)
        _, depth = scene.render(T, K, 96, 72)
        np.testing.assert_array_equal(pid_cone, pid_all)
        np.testing.assert_allclose(t_cone, t_all, atol=1e-5)
        np.testing.assert_allclose(depth.ravel(), t_all, atol=1e-4)


# ----------------------------------------------------------------------------- appearance
def test_shading_is_view_independent():
    """A surface point has the same colour seen from two cameras (needed for a NeRF)."""
    posed = make_session(seed=2, n_frames=60, width=160, height=120, workers=1)
    i, j = 10, 12
    X, uv_i = _backproject(posed.depths[i], posed.K[i], posed.T_world_cam[i])
    cam = posed.camera(j)
    uv, z = cam.project(transform_points(invert_pose(posed.T_world_cam[j]), X))
    ok = cam.in_image(uv)
    px = np.floor(uv[ok]).astype(int)
    visible = np.abs(posed.depths[j][px[:, 1], px[:, 0]] - z[ok]) < 0.01
    ci = posed.images[i][uv_i[ok][visible, 1], uv_i[ok][visible, 0]].astype(int)
    cj = posed.images[j][px[visible, 1], px[visible, 0]].astype(int)
    assert visible.sum() > 5000
    assert np.median(np.abs(ci - cj)) <= 6  # same texture and shading; nearest-pixel sampling differs slightly


def test_textures_are_rich_distinctive_and_well_exposed(scene0):
    K = intrinsics(320, 240, 65.0)
    poses = np.concatenate([mapping_trajectory(scene0, 80)[[10, 12, 50]], query_trajectory(scene0, 80)[[30, 31, 70]]])
    images, depths = zip(*(scene0.render(T, K, 320, 240) for T in poses))
    sift = cv2.SIFT_create()
    feats = []
    for img in images:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        feats.append(sift.detectAndCompute(grey, None))
        assert len(feats[-1][0]) > 300
        gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
        assert (np.hypot(gx, gy) > 40).mean() > 0.15  # textured almost everywhere, not flat paint
        assert (img >= 250).mean() < 0.01 and (img <= 5).mean() < 0.01  # not saturated
        assert 60 < img.mean() < 190
    # distinctive (not repetitive): SIFT ratio-test matches between nearby views are geometrically right
    cam = PinholeCamera.from_K(K, 320, 240)
    for i, j in ((0, 1), (3, 4)):
        (ki, di), (kj, dj) = feats[i], feats[j]
        pairs = [m for m, n in cv2.BFMatcher().knnMatch(di, dj, k=2) if m.distance < 0.75 * n.distance]
        pi = np.array([ki[m.queryIdx].pt for m in pairs])
        pj = np.array([kj[m.trainIdx].pt for m in pairs])
        z = depths[i][pi[:, 1].astype(int), pi[:, 0].astype(int)]
        Xw = transform_points(poses[i], cam.unproject(pi, z))
        proj, zj = cam.project(transform_points(invert_pose(poses[j]), Xw))
        vis = cam.in_image(proj)  # the ground-truth point is in view j and not occluded there
        px = np.floor(proj[vis]).astype(int)
        vis[vis] = np.abs(depths[j][px[:, 1], px[:, 0]] - zj[vis]) < 0.03
        assert vis.sum() > 100
        assert np.mean(np.linalg.norm(proj - pj, axis=1)[vis] < 3.0) > 0.85


def test_surface_points(scene0):
    rng = np.random.default_rng(0)
    p, n, col = scene0.surface_points(3000, rng)
    assert p.shape == (3000, 3) and n.shape == (3000, 3) and col.shape == (3000, 3) and col.dtype == np.uint8
    assert np.abs(scene0.clearance(p)).max() < 1e-4  # on a surface
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    assert scene0.clearance(p + 0.003 * n).min() > 0  # the normal points into free space (visible side) ...
    assert np.mean(scene0.clearance(p + 0.01 * n) > 0) > 0.99  # ... (except in narrow contact gaps)
    lo, hi = scene0.bounds()
    on_room = np.isclose(p, lo, atol=1e-5).any(1) | np.isclose(p, hi, atol=1e-5).any(1)
    assert 0.05 < (~on_room).mean() < 0.6  # objects and room surfaces both sampled
    assert np.isclose(p[:, 2], 0).sum() > 100 and col.std() > 20


# ----------------------------------------------------------------------------- trajectories
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_cameras_inside_room_clear_of_objects_and_smooth(seed):
    scene = ProceduralScene(ProceduralSceneConfig(seed=seed))
    lo, hi = scene.bounds()
    for traj in (mapping_trajectory(scene, 300), query_trajectory(scene, 300)):
        assert all(is_rigid(T) for T in traj)
        C = traj[:, :3, 3]
        assert np.all(C > lo + 0.5) and np.all(C < hi - 0.5)
        assert scene.clearance(C).min() >= 0.5  # >= 0.5 m from every surface, never inside an object
        assert np.linalg.norm(np.diff(C, axis=0), axis=1).max() < 0.05  # small steps at 10 Hz
        assert rotation_error_deg(traj[1:, :3, :3], traj[:-1, :3, :3]).max() < 6.0
        # OpenCV axes, no roll: image x horizontal, image y pointing down
        assert np.abs(traj[:, 2, 0]).max() < 1e-9 and np.all(traj[:, 2, 1] < -0.9)
        assert 1.0 < C[:, 2].min() and C[:, 2].max() < 1.7


@pytest.mark.parametrize("seed", [0, 7])
def test_query_differs_from_mapping_but_is_covered(seed):
    scene = ProceduralScene(ProceduralSceneConfig(seed=seed))
    m, q = mapping_trajectory(scene, 300), query_trajectory(scene, 300)
    D = np.linalg.norm(q[:, None, :3, 3] - m[None, :, :3, 3], axis=2)
    assert D.min(1).mean() > 0.2  # a different path ...
    assert D.min(1).max() < 1.0  # ... within reach of the mapped viewpoints
    assert abs(q[:, 2, 3].mean() - m[:, 2, 3].mean()) > 0.1  # another height
    angle = np.degrees(np.arccos(np.clip(q[:, :3, 2] @ m[:, :3, 2].T, -1, 1)))
    assert np.where(D < 1.0, angle, 180.0).min(1).max() < 30.0  # every query view direction was mapped nearby
    # opposite direction of travel round the room centre (angular momentum about +z)
    c = (scene.bounds()[0] + scene.bounds()[1]) / 2

    def spin(traj):
        r, v = traj[:-1, :2, 3] - c[:2], np.diff(traj[:, :2, 3], axis=0)
        return np.sign(np.mean(r[:, 0] * v[:, 1] - r[:, 1] * v[:, 0]))

    assert spin(m) == -spin(q)


def test_look_pose_axes():
    T = look_pose(np.array([1.0, 2.0, 1.5]), 0.0, 0.0)  # looking along world +x
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0], atol=1e-12)  # optical axis z
    np.testing.assert_allclose(T[:3, 0], [0, -1, 0], atol=1e-12)  # image x to the right
    np.testing.assert_allclose(T[:3, 1], [0, 0, -1], atol=1e-12)  # image y down
    np.testing.assert_allclose(T[:3, 3], [1.0, 2.0, 1.5])


# ----------------------------------------------------------------------------- session metadata
def test_make_session_metadata():
    posed = make_session(seed=5, session="mapping", n_frames=4, width=64, height=48, fov_deg=60.0)
    assert len(posed) == 4 and posed.names == [f"mapping_{i:04d}" for i in range(4)]
    assert posed.timestamps_ns.dtype == np.int64 and posed.timestamps_ns[0] == EPOCH_NS == 1_700_000_000 * 10**9
    assert np.all(np.diff(posed.timestamps_ns) == 100_000_000)
    assert posed.frame_id == "map" and posed.metric and posed.source == "procedural:seed=5:mapping"
    np.testing.assert_allclose(posed.K[0, 0, 0], 32 / np.tan(np.radians(30)))
    assert all(d.dtype == np.float32 and d.shape == (48, 64) and d.min() > 0.3 for d in posed.depths)
    q = load_dataset("procedural:seed=5:frames=2:size=32x24", split="query")  # the registry route
    assert q.names[0] == "query_0000" and q.source == "procedural:seed=5:query" and q.images[0].shape == (24, 32, 3)
    assert not np.allclose(q.T_world_cam[0], posed.T_world_cam[0])
    with pytest.raises(ValueError):
        make_session(session="third")


def test_parallel_rendering_is_identical():
    scene = ProceduralScene(ProceduralSceneConfig(seed=6))
    poses, K = query_trajectory(scene, 6), intrinsics(48, 36)
    serial = render_views(scene.config, poses, K, 48, 36, workers=1)
    parallel = render_views(scene.config, poses, K, 48, 36, workers=2)
    assert len(parallel) == 6
    for (a, da), (b, db) in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(da, db)

"""Conventions pinned on real data (issue: foundation, point 3).

- LLFF fern: COLMAP points3D projected with the converted poses land inside the images (>= 95 %).
- 7-Scenes: one frame's depth reprojected into a neighbouring frame agrees (median < 2 cm).
- Lego: every camera looks at the origin.
"""

import numpy as np

from nerf_loc_ros.datasets import load_dataset, read_points3D
from nerf_loc_ros.geometry import PinholeCamera, invert_pose, transform_points


def test_fern_colmap_points_project_inside_images(fern_dir):
    posed = load_dataset(str(fern_dir))
    xyz, _, _ = read_points3D(fern_dir / "sparse" / "0")
    assert len(xyz) == 10091
    fractions = []
    for i in range(len(posed)):
        cam = posed.camera(i)
        X_cam = transform_points(invert_pose(posed.T_world_cam[i]), xyz)
        uv, z = cam.project(X_cam)
        fractions.append(np.mean(cam.in_image(uv) & (z > 0)))
    assert min(fractions) >= 0.95, fractions
    # and a wrong convention (e.g. OpenGL axes taken as OpenCV) puts the points behind the camera
    flipped = posed.T_world_cam[0] @ np.diag([1.0, -1.0, -1.0, 1.0])
    uv, z = posed.camera(0).project(transform_points(invert_pose(flipped), xyz))
    assert np.mean(posed.camera(0).in_image(uv) & (z > 0)) < 0.05


def _reprojection_error(posed, i, j):
    """Median |z_pred - z_observed| (metres) of frame i's depth moved into frame j, and the overlap."""
    cam_i, cam_j = posed.camera(i), posed.camera(j)
    X_i, _ = cam_i.depth_to_points(posed.depths[i])
    X_j = transform_points(invert_pose(posed.T_world_cam[j]) @ posed.T_world_cam[i], X_i)
    uv, z = cam_j.project(X_j)
    ok = cam_j.in_image(uv) & (z > 0)
    z_obs = posed.depths[j][uv[ok, 1].astype(int), uv[ok, 0].astype(int)]
    valid = z_obs > 0
    return float(np.median(np.abs(z[ok][valid] - z_obs[valid]))), valid.sum() / len(X_i)


def test_sevenscenes_depth_reprojects_into_neighbour(redkitchen_dir):
    posed = load_dataset(str(redkitchen_dir), split="all")
    for a, b in [("frame-000000", "frame-000010"), ("frame-000500", "frame-000512"), ("frame-000300", "frame-000352")]:
        pair = posed.subset([posed.names.index(a), posed.names.index(b)])
        err, overlap = _reprojection_error(pair, 0, 1)
        assert err < 0.02 and overlap > 0.5, (a, b, err, overlap)
        if a != "frame-000000":  # far enough apart that the inverse (world-to-camera) reading must fail
            pair.T_world_cam = invert_pose(pair.T_world_cam)
            wrong, _ = _reprojection_error(pair, 0, 1)
            assert wrong > 0.1, (a, b, wrong)


def test_lego_cameras_look_at_origin(lego_dir):
    for split in ("train", "test"):
        posed = load_dataset(str(lego_dir), split=split)
        C = posed.camera_centres()
        forward = posed.T_world_cam[:, :3, 2]  # OpenCV +z is the viewing direction
        to_origin = -C / np.linalg.norm(C, axis=1, keepdims=True)
        cos = np.sum(forward * to_origin, axis=1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1.0
        # and image y (down) points downwards in the world: the scene's z axis is up
        assert np.all(posed.T_world_cam[:, 2, 1] < 0.05)
        # the origin projects to the principal point
        cam = posed.camera(0)
        uv, _ = cam.project(transform_points(invert_pose(posed.T_world_cam[0]), np.zeros((1, 3))))
        np.testing.assert_allclose(uv[0], [cam.cx, cam.cy], atol=2.0)
        assert isinstance(cam, PinholeCamera)

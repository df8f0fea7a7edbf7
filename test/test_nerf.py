"""NeRF core: scene box, encodings, rays, packed rendering on analytic fields, occupancy, a short training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerf_loc_ros.datasets import load_dataset
from nerf_loc_ros.nerf import (
    FieldConfig,
    FieldOutput,
    NerfField,
    NerfModel,
    NerfTrainer,
    OccupancyConfig,
    RenderConfig,
    SceneBox,
    TrainConfig,
    box_intersection,
    estimate_scene_box,
    pixel_rays,
    visible_cells,
)
from nerf_loc_ros.nerf.encoding import spherical_harmonics
from nerf_loc_ros.nerf.renderer import segment_exclusive_cumsum

SMALL = FieldConfig(resolutions=(16, 32), channels=(4, 4), feature_dim=8, hidden_dim=16, color_hidden_dim=16)


# ---------------------------------------------------------------------------------------------- scene box
@pytest.mark.parametrize("contract,inner", [(False, 0.5), (True, 0.5), (True, 0.75)])
def test_scene_box_grid_round_trip(contract, inner):
    box = SceneBox((-1.0, -2.0, 0.0), (3.0, 2.0, 1.0), contract, inner)
    assert SceneBox.from_dict(box.to_dict()) == box
    x = torch.tensor([[0.5, 0.3, 0.2], [2.9, -1.9, 0.9], [1.0, 0.0, 0.5]], dtype=torch.float64)
    if contract:
        x = torch.cat([x, torch.tensor([[30.0, 5.0, -4.0], [-7.0, 0.0, 0.5]], dtype=torch.float64)])
    u = box.to_grid(x)
    assert torch.all(u.abs() <= 1)
    assert torch.allclose(box.from_grid(u), x, atol=1e-6)


def test_contraction_maps_the_world_into_the_grid():
    box = SceneBox((-1.0,) * 3, (1.0,) * 3, True)
    far = torch.tensor([[1e6, 0, 0], [0, -1e5, 3], [2, 2, 2]], dtype=torch.float64)
    u = box.to_grid(far)
    assert torch.all(u.abs() < 1) and torch.all(u.abs().amax(-1) > 0.5)
    assert torch.allclose(box.to_grid(torch.tensor([[0.5, -0.5, 0.25]])), torch.tensor([[0.25, -0.25, 0.125]]))
    wide = SceneBox((-1.0,) * 3, (1.0,) * 3, True, inner_fraction=0.75)  # the box gets 3/4 of the grid
    assert torch.allclose(wide.to_grid(torch.tensor([[1.0, 0.0, 0.0], [3.0, 0, 0]])),
                          torch.tensor([[0.75, 0.0, 0.0], [0.75 + 0.25 * 2 / 3, 0, 0]]))
    with pytest.raises(ValueError, match="inner_fraction"):
        SceneBox((-1.0,) * 3, (1.0,) * 3, True, inner_fraction=1.0)


def test_scene_box_rejects_bad_bounds():
    with pytest.raises(ValueError, match="hi must exceed lo"):
        SceneBox((0, 0, 0), (1, 0, 1))
    with pytest.raises(ValueError, match="finite"):
        SceneBox((0, 0, float("nan")), (1, 1, 1))


def test_estimate_scene_box_per_dataset_kind(lego_dir, fern_dir, redkitchen_dir):
    lego = load_dataset(str(lego_dir), "train", max_frames=30)
    box = estimate_scene_box(lego)
    assert not box.contract and np.all(np.abs(box.centre) < 0.3)  # cameras look at the origin
    assert 1.0 < box.half_size.min() and box.half_size.max() < 2.5  # the object fits, cameras (r=4) are outside
    fern = load_dataset(str(fern_dir))
    assert estimate_scene_box(fern).contract  # forward-facing: contracted
    kitchen = load_dataset(str(redkitchen_dir), "map", max_frames=20)
    kbox = estimate_scene_box(kitchen)
    C = kitchen.camera_centres()
    assert not kbox.contract and np.all(C > np.array(kbox.lo)) and np.all(C < np.array(kbox.hi))
    assert 1.0 < kbox.diagonal < 15.0  # a kitchen, in metres


# ---------------------------------------------------------------------------------------------- encodings
def test_spherical_harmonics_are_orthonormal():
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(400_000, 3, generator=g, dtype=torch.float64), dim=-1)
    Y = spherical_harmonics(d)
    gram = 4 * np.pi * (Y.T @ Y) / len(d)  # Monte-Carlo integral over the sphere
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=0.02)


def test_field_shapes_and_box_mask():
    box = SceneBox((-1.0,) * 3, (1.0,) * 3)
    f = NerfField(box, SMALL)
    x = torch.tensor([[0.0, 0.0, 0.0], [0.5, -0.5, 0.2], [5.0, 0.0, 0.0]])
    out = f(x, torch.nn.functional.normalize(torch.ones(3, 3), dim=-1))
    assert out.sigma.shape == (3,) and out.rgb.shape == (3, 3) and out.feature.shape == (3, 8)
    assert out.sigma[2] == 0 and torch.all(out.sigma[:2] > 0)  # zero density outside a bounded box
    assert torch.all((out.rgb >= 0) & (out.rgb <= 1))
    assert f(x).rgb is None  # no direction: no colour


# ---------------------------------------------------------------------------------------------- rays
def test_pixel_rays_use_pixel_centres_and_z_depth():
    K = torch.tensor([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    T = torch.eye(4)
    T[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    o, d = pixel_rays(K, T, torch.tensor([31, 0]), torch.tensor([23, 0]))
    assert torch.allclose(o, torch.tensor([[1.0, 2, 3], [1, 2, 3]]))
    # pixel (31, 23) has its centre at (31.5, 23.5): half a pixel left/up of the principal point
    assert torch.allclose(d[0], torch.tensor([-0.005, -0.005, 1.0]))
    assert torch.all(d[:, 2] == 1)  # t is z-depth


def test_box_intersection():
    box = SceneBox((-1.0,) * 3, (1.0,) * 3)
    o = torch.tensor([[0.0, 0.0, -5.0], [0.0, 0.0, 0.0], [3.0, 3.0, -5.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    t0, t1 = box_intersection(box, o, d)
    assert torch.allclose(t0[:2], torch.tensor([4.0, 0.0])) and torch.allclose(t1[:2], torch.tensor([6.0, 1.0]))
    assert t1[2] <= t0[2]  # miss


def test_segment_exclusive_cumsum_matches_a_loop():
    g = torch.Generator().manual_seed(1)
    ray = torch.sort(torch.randint(0, 7, (200,), generator=g)).values
    v = torch.rand(200, generator=g)
    out = segment_exclusive_cumsum(v, ray, 9)
    expected = torch.zeros_like(v)
    for r in range(9):
        idx = torch.nonzero(ray == r)[:, 0]
        if len(idx):
            expected[idx] = torch.cumsum(v[idx], 0) - v[idx]
    assert torch.allclose(out, expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------- rendering
class SlabField(NerfField):
    """Analytic field: an opaque slab ``z in [z0, z0 + 0.2]`` coloured by x, features = (x, y, z, 1)."""

    def __init__(self, box, z0=1.0):
        super().__init__(box, SMALL)
        self.z0 = z0

    def forward(self, x, d=None):
        inside = ((x[:, 2] >= self.z0) & (x[:, 2] <= self.z0 + 0.2)).float()
        sigma = 2000.0 * inside
        rgb = torch.stack([x[:, 0].clamp(0, 1), torch.full_like(sigma, 0.5), torch.zeros_like(sigma)], -1)
        feat = torch.cat([x, torch.ones_like(sigma)[:, None]], dim=-1)
        return FieldOutput(sigma=sigma, rgb=rgb if d is not None else None, feature=feat)

    def density(self, x):
        return self.forward(x).sigma


def _slab_model(background=(1.0, 1.0, 1.0)):
    box = SceneBox((-1.0, -1.0, -0.5), (1.0, 1.0, 1.5))
    field = SlabField(box)
    return NerfModel(field, NerfModel.create(box, SMALL, OccupancyConfig(resolution=32)).occupancy,
                     RenderConfig(background=background, alpha_threshold=0.0))


def test_render_analytic_slab_depth_point_feature_and_background():
    model = _slab_model()
    K = np.array([[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]])
    T = np.eye(4)
    T[:3, 3] = [0.2, 0.0, -1.0]  # camera 2 m in front of the slab, looking along +z
    r = model.render_image(K, T, 32, 24, with_features=True)
    hit = r["opacity"] > 0.99
    assert hit.mean() > 0.95
    assert np.allclose(r["depth"][hit], 2.0, atol=0.03)  # z-depth of the slab's front face
    assert np.allclose(r["point"][hit][:, 2], 1.0, atol=0.03)  # world z of the expected surface point
    assert np.allclose(r["feature"][hit][:, :3], r["point"][hit], atol=0.03)  # F = sum w f with f(x) = x
    # a ray that misses the scene box shows the background colour
    miss = model.render_rays(torch.tensor([[5.0, 5.0, -1.0]]), torch.tensor([[0.0, 0.0, 1.0]]))
    assert torch.allclose(miss["rgb"], torch.ones(1, 3)) and miss["opacity"].item() == 0


def test_occupancy_update_finds_the_slab_and_skips_empty_space():
    model = _slab_model()
    occ = model.occupancy
    frac = occ.update(model.field.density, model.render_step())
    assert 0.0 < frac < 0.2
    z_cells = torch.nonzero(occ.occupied)[:, 2].unique()
    z_world = model.box.from_grid(torch.stack([torch.zeros_like(z_cells, dtype=torch.float32)] * 2 + [
        (z_cells.float() + 0.5) / 32 * 2 - 1], -1))[:, 2]
    assert torch.all((z_world > 0.9) & (z_world < 1.3))
    # rays now only sample near the slab
    o, d = torch.tensor([[0.0, 0.0, -0.4]]), torch.tensor([[0.0, 0.0, 1.0]])
    out = model.render_rays(o, d)
    assert 0 < int(out["num_samples"]) <= 16 and abs(out["depth"].item() - 1.4) < 0.03


def test_occupancy_of_a_faint_field_keeps_its_densest_cells():
    """A field still faint everywhere after the warm-up (densities below the absolute threshold) must not empty
    the grid: an empty grid yields no samples and no gradients (this froze a fern run at 12 dB)."""
    box = SceneBox((-1.0,) * 3, (1.0,) * 3)
    occ = NerfModel.create(box, SMALL, OccupancyConfig(resolution=16)).occupancy
    step = 2.0 / 16
    faint = 0.1 * -np.log(1 - occ.config.alpha_threshold) / step  # a tenth of the absolute threshold

    def density(x):  # faint everywhere, a little less faint in the half x > 0
        return torch.where(x[:, 0] > 0, faint, 0.1 * faint)

    fractions = [occ.update(density, step, generator=torch.Generator().manual_seed(i)) for i in range(40)]
    assert min(fractions) > 0.3 and 0.45 < fractions[-1] < 0.55
    occupied_x = box.from_grid(occ.cell_centres(torch.nonzero(occ.occupied.reshape(-1))[:, 0]))[:, 0]
    assert bool((occupied_x > 0).all())


def test_occupancy_seed_from_points_marks_those_cells():
    box = SceneBox((-1.0,) * 3, (1.0,) * 3)
    model = NerfModel.create(box, SMALL, OccupancyConfig(resolution=16))
    frac = model.occupancy.seed_from_points(torch.tensor([[0.5, 0.5, 0.5], [-0.9, 0.1, 0.2]]), dilate=0)
    assert frac == pytest.approx(2 / 16**3)
    assert model.occupancy.query(box.to_grid(torch.tensor([[0.52, 0.55, 0.6], [0.45, 0.5, 0.5]]))).tolist() == [True, False]


def test_visible_cells_excludes_space_behind_the_camera():
    box = SceneBox((-1.0,) * 3, (1.0,) * 3)
    T = np.eye(4)
    T[:3, 3] = [0, 0, -3.0]  # looking at the box along +z
    K = np.array([[200.0, 0, 32], [0, 200.0, 32], [0, 0, 1]])
    seen = visible_cells(box, 16, T[None], K[None], [(64, 64)], margin=0.0)
    assert seen[8, 8, 8] and not seen[0, 0, 0]  # centre in view, corner outside the narrow frustum
    T2 = T.copy()
    T2[:3, 3] = [0, 0, 3.0]  # in front of the box, looking away
    assert not visible_cells(box, 16, T2[None], K[None], [(64, 64)]).any()


# ---------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def tiny_scene():
    return load_dataset("procedural:frames=16:size=80x60")


def _render_error(model, data, i):
    w, h = data.size(i)
    r = model.render_image(data.K[i], data.T_world_cam[i], w, h)
    rgb_mse = float(np.mean((r["rgb"] - data.images[i] / 255.0) ** 2))
    d = data.depths[i]
    rel = np.abs(r["depth"][d > 0] - d[d > 0]) / d[d > 0]
    return rgb_mse, float(np.median(rel)), float(np.mean(r["opacity"]))


def test_training_reduces_colour_and_depth_error(tiny_scene):
    cfg = TrainConfig(iterations=300, seed=0, progress=False, target_samples=1 << 14)
    trainer = NerfTrainer(tiny_scene, cfg, field_config=SMALL, occupancy_config=OccupancyConfig(resolution=48))
    before = _render_error(trainer.model, tiny_scene, 3)
    model = trainer.train()
    after = _render_error(model, tiny_scene, 3)
    assert trainer.iteration == 300
    assert before[2] < 0.5 and after[2] > 0.95  # surfaces became opaque
    assert after[0] < 0.75 * before[0]  # colour error clearly down (from a mean-colour start)
    assert after[1] < 0.03  # depth supervision keeps the surfaces where the depth maps put them


def test_checkpoint_resume_continues_identically(tiny_scene, tmp_path):
    kw = dict(field_config=SMALL, occupancy_config=OccupancyConfig(resolution=32))
    straight = NerfTrainer(tiny_scene, TrainConfig(iterations=24, progress=False, target_samples=4096), **kw)
    straight.train()
    first = NerfTrainer(tiny_scene, TrainConfig(iterations=24, progress=False, target_samples=4096), **kw)
    for _ in range(12):  # interrupted half-way
        first.step()
    first.save_checkpoint(tmp_path)
    resumed = NerfTrainer(tiny_scene, TrainConfig(iterations=24, progress=False, target_samples=4096), **kw)
    assert resumed.load_checkpoint(tmp_path) and resumed.iteration == 12
    resumed.train()
    for (k, a), (_, b) in zip(straight.model.field.state_dict().items(), resumed.model.field.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), k
    other = NerfTrainer(tiny_scene, TrainConfig(iterations=1, progress=False),
                        field_config=FieldConfig(resolutions=(8,), channels=(2,)))
    with pytest.raises(ValueError, match="different scene box or field config"):
        other.load_checkpoint(tmp_path)


def test_huge_densities_stay_finite_in_rendering():
    box = SceneBox((-1.0,) * 3, (1.0,) * 3)
    model = NerfModel.create(box, SMALL, OccupancyConfig(resolution=16))
    with torch.no_grad():
        model.field.density_mlp[-1].bias[0] = 200.0  # exp(200) overflows float32 without the cap
    o, d = torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    out = model.render_rays(o, d)
    assert torch.isfinite(model.field.density(torch.zeros(1, 3))).all()
    assert all(torch.isfinite(v).all() for k, v in out.items() if k != "num_samples")
    assert abs(out["depth"].item() - 2.0) < 0.1 and out["opacity"].item() > 0.99

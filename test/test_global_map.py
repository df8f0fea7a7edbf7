"""Global maps: submaps.yaml + submap directories, validated on load, merged atomically."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from nerf_loc_ros.maps import (
    SUBMAPS_FILE,
    MapError,
    NerfMap,
    add_submap,
    create_global_map,
    load_global_map,
    load_map,
    save_map,
)
from nerf_loc_ros.nerf import FieldConfig, NerfModel, OccupancyConfig, SceneBox

SMALL = FieldConfig(resolutions=(8,), channels=(4,), feature_dim=8, hidden_dim=8, color_hidden_dim=8)


def _map(path, name):
    model = NerfModel.create(SceneBox((-1.0,) * 3, (1.0,) * 3), SMALL, OccupancyConfig(resolution=8))
    return save_map(NerfMap(model, name=name), path)


def _T(yaw_deg, t):
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = t
    return T


def test_create_add_and_reload(tmp_path):
    a, b = _map(tmp_path / "a", "kitchen_a"), _map(tmp_path / "b", "kitchen_b")
    g = create_global_map(tmp_path / "global", a)
    assert [s.id for s in g.submaps] == ["0"] and np.array_equal(g.submaps[0].T_global_submap, np.eye(4))
    T = _T(30, [1.0, -2.0, 0.5])
    g = add_submap(tmp_path / "global", b, T, {"method": "fpfh", "status": "OK", "fitness": 0.7, "inliers": 812})
    again = load_global_map(tmp_path / "global")
    assert [s.id for s in again.submaps] == ["0", "1"] and again.frame_id == "map"
    sub = again.submap("1")
    assert np.allclose(sub.T_global_submap, T) and sub.registration["inliers"] == 812 and sub.source == "kitchen_b"
    load_map(sub.path)  # a complete, valid map directory inside the global map
    with pytest.raises(ValueError, match="exists already"):
        add_submap(tmp_path / "global", b, T, {}, submap_id="1")


def test_a_failed_merge_leaves_the_global_map_intact(tmp_path):
    a, b = _map(tmp_path / "a", "a"), _map(tmp_path / "b", "b")
    create_global_map(tmp_path / "global", a)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "global").rglob("*"))
    index = (tmp_path / "global" / SUBMAPS_FILE).read_bytes()
    bad = np.eye(4)
    bad[0, 0] = 2.0  # not a rotation
    with pytest.raises(ValueError, match="rigid"):
        add_submap(tmp_path / "global", b, bad, {})
    (b / "field.safetensors").write_bytes(b"truncated")
    with pytest.raises(MapError, match="field.safetensors"):
        add_submap(tmp_path / "global", b, np.eye(4), {})
    with pytest.raises(ValueError, match="plain numbers"):
        add_submap(tmp_path / "global", a, np.eye(4), {"fitness": np.float64(0.5)})
    with pytest.raises(ValueError, match="TF frame"):
        add_submap(tmp_path / "global", a, np.eye(4), {}, submap_id="bad id")
    assert (tmp_path / "global" / SUBMAPS_FILE).read_bytes() == index
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "global").rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs left behind


def test_corrupt_or_newer_global_maps_are_clear_errors(tmp_path):
    create_global_map(tmp_path / "global", _map(tmp_path / "a", "a"))
    index = tmp_path / "global" / SUBMAPS_FILE
    content = yaml.safe_load(index.read_text())
    with pytest.raises(MapError, match="not a global map"):
        load_global_map(tmp_path / "a")
    index.write_text(yaml.safe_dump({**content, "format_version": 99}))
    with pytest.raises(MapError, match="newer"):
        load_global_map(tmp_path / "global")
    content["submaps"][0]["T_global_submap"][0][3] = float("nan")
    index.write_text(yaml.safe_dump(content))
    with pytest.raises(MapError, match="rigid"):
        load_global_map(tmp_path / "global")
    content["submaps"][0]["T_global_submap"][0][3] = 0.0
    content["submaps"][0]["directory"] = "../a"
    index.write_text(yaml.safe_dump(content))
    with pytest.raises(MapError, match="invalid id/directory"):
        load_global_map(tmp_path / "global")
    index.write_text("submaps: [unclosed")
    with pytest.raises(MapError, match="not valid YAML"):
        load_global_map(tmp_path / "global")

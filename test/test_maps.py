"""Map directories: save/load round trip, validation of corrupt/tampered/newer maps, atomic writes, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from nerf_loc_ros.cli.main import main
from nerf_loc_ros.maps import FORMAT_VERSION, MapError, NerfMap, load_map, map_info, save_map
from nerf_loc_ros.nerf import FieldConfig, NerfModel, OccupancyConfig, SceneBox

SMALL = FieldConfig(resolutions=(16, 32), channels=(4, 4), feature_dim=8, hidden_dim=16, color_hidden_dim=16)
K = np.array([[60.0, 0, 24], [0, 60.0, 16], [0, 0, 1]])


def _model(seed=0):
    torch.manual_seed(seed)
    model = NerfModel.create(SceneBox((-1.0, -1.0, -1.0), (1.0, 1.0, 2.0)), SMALL, OccupancyConfig(resolution=32))
    with torch.no_grad():  # a non-trivial field: random planes, denser bias so rays see something
        for p in model.field.encoding.planes:
            p.uniform_(0.0, 1.0)
        model.field.density_mlp[-1].bias[0] = 1.0
    model.occupancy.update(model.field.density, model.render_step())
    return model


def _pose():
    T = np.eye(4)
    T[:3, 3] = [0.1, -0.2, -3.0]
    return T


@pytest.fixture()
def saved(tmp_path):
    m = NerfMap(_model(), name="unit", frame_id="map", training={"iterations": 7})
    path = save_map(m, tmp_path / "m")
    return m, path


def test_round_trip_renders_the_same(saved):
    m, path = saved
    loaded = load_map(path)
    assert loaded.name == "unit" and loaded.training["iterations"] == 7
    assert loaded.manifest["format_version"] == FORMAT_VERSION
    a = m.model.render_image(K, _pose(), 48, 32)
    b = loaded.model.render_image(K, _pose(), 48, 32)
    assert np.mean(a["opacity"]) > 0.1
    assert np.abs(a["rgb"] - b["rgb"]).max() < 0.02  # planes are stored as float16
    assert np.abs(a["depth"] - b["depth"]).max() < 0.05
    assert torch.equal(m.model.occupancy.occupied, loaded.model.occupancy.occupied)
    info = map_info(path)
    assert set(info["components"]) == {"field.safetensors", "occupancy.npz"} and info["bytes"] > 0


def test_missing_manifest_or_component(saved, tmp_path):
    _, path = saved
    with pytest.raises(MapError, match="map directory not found"):
        load_map(tmp_path / "nope")
    (path / "occupancy.npz").unlink()
    with pytest.raises(MapError, match="occupancy.npz: component listed in the manifest is missing"):
        load_map(path)
    (path / "manifest.yaml").unlink()
    with pytest.raises(MapError, match="manifest.yaml: missing"):
        load_map(path)


def test_truncated_and_tampered_files(saved):
    _, path = saved
    f = path / "field.safetensors"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(MapError, match="sha256 does not match"):
        load_map(path)
    f.write_bytes(bytes(data[:-100]))
    with pytest.raises(MapError, match="truncated or replaced"):
        load_map(path)


def test_newer_version_and_garbage_manifest(saved):
    _, path = saved
    man = yaml.safe_load((path / "manifest.yaml").read_text())
    man["format_version"] = FORMAT_VERSION + 1
    (path / "manifest.yaml").write_text(yaml.safe_dump(man))
    with pytest.raises(MapError, match="newer than this nerf_loc_ros supports"):
        load_map(path)
    (path / "manifest.yaml").write_text("format_version: [unclosed")
    with pytest.raises(MapError, match="not valid YAML"):
        load_map(path)


def test_inconsistent_config_is_reported(saved):
    _, path = saved
    man = yaml.safe_load((path / "manifest.yaml").read_text())
    man["field"]["channels"] = [8, 8]
    (path / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    with pytest.raises(MapError, match="has shape"):
        load_map(path)


def test_atomic_save_keeps_the_old_map_on_failure(saved):
    m, path = saved
    before = (path / "field.safetensors").read_bytes()
    with pytest.raises(FileExistsError):
        save_map(m, path)

    def broken_writer(p):
        raise OSError("disk full")

    other = NerfMap(_model(seed=3), name="other")
    with pytest.raises(OSError, match="disk full"):
        save_map(other, path, overwrite=True, extra_components={"keyframes.npz": broken_writer})
    assert (path / "field.safetensors").read_bytes() == before
    assert load_map(path).name == "unit"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".m.tmp")]  # temp dir cleaned up
    save_map(other, path, overwrite=True)
    assert load_map(path).name == "other"


def test_cli_map_build_info_render_and_bench(tmp_path, capsys, caplog):
    out = tmp_path / "map"
    data = "procedural:frames=8:size=64x48"
    # 12 NeRF steps cannot support localization: the NeRF map is kept and the error says how to go on
    assert main(["map", "build", "--data", data, "--out", str(out), "--iterations", "12", "--budget-min", "1"]) == 2
    assert "add-localization" in caplog.text and (out / "field.safetensors").is_file()
    assert main(["map", "build", "--data", data, "--out", str(out), "--iterations", "12", "--budget-min", "1",
                 "--no-localization", "--overwrite"]) == 0
    assert "12 iterations" in capsys.readouterr().out
    assert main(["map", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["training"]["iterations"] == 12 and info["frame_id"] == "map"
    pose = tmp_path / "pose.txt"
    pose.write_text("3.0 2.5 1.4 0 0 0 1\n")  # tx ty tz qx qy qz qw, camera looking along +z (world)
    png = tmp_path / "r.png"
    assert main(["map", "render", "--map", str(out), "--pose", str(pose), "--K", "40,40,32,24", "--out", str(png)]) == 0
    from PIL import Image

    assert Image.open(png).size == (128, 48)  # RGB | depth side by side
    pose.write_text("1 2 3\n")
    assert main(["map", "render", "--map", str(out), "--pose", str(pose), "--K", "40,40,32,24", "--out", str(png)]) == 2
    assert "expected 16 numbers" in caplog.text
    js = tmp_path / "b.json"
    assert main(["bench", "nerf", "--data", data, "--iterations", "10", "--max-views", "2", "--json", str(js),
                 "--out-dir", str(tmp_path / "bench")]) == 0
    res = json.loads(js.read_text())
    for key in ("psnr_test", "ssim_test", "train_seconds", "iterations", "map_bytes", "depth_abs_rel_median"):
        assert key in res
    assert res["iterations"] == 10 and res["test_views"] == 2 and (tmp_path / "bench" / "nerf_bench_strip.png").is_file()

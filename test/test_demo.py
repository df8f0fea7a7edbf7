"""The README demo's main job at a small size and budget: renders both sessions, records a bag, reads it back,
builds a localization map and replays the bag through the localizer (accuracy is the benchmark's job)."""

import json

import pytest

from nerf_loc_ros.cli.main import main


@pytest.mark.slow
def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    # step budgets (what 18 s + 8 s buy on a quiet 2-core machine), so a busy machine builds the same map
    assert main(["demo", "--out", str(out), "--frames", "12", "--width", "160", "--height", "120",
                 "--nerf-iterations", "140", "--nerf-budget-min", "30", "--encoder-steps", "150",
                 "--encoder-budget-s", "600"]) == 0
    report = json.loads((out / "demo.json").read_text())
    assert report["query_frames"] == 12 and report["bag_roundtrip"]["frames"] == 12
    assert report["bag_roundtrip"]["images_identical"]
    assert report["bag"]["topics"]["/camera/image_raw"] == 12
    assert (out / "mapping_session.png").stat().st_size > 1000
    assert (out / "map" / "keyframes.npz").is_file() and (out / "map" / "encoder.safetensors").is_file()
    r = report["replay"]
    assert r["frames"] == 12 and sum(r["status_counts"].values()) == 12 and r["latency_ms_p50"] > 0
    assert (out / "replay" / "metrics.json").is_file()
    printed = capsys.readouterr().out
    assert "read back" in printed and "map built" in printed

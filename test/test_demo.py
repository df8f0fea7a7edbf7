"""The README demo's main job, at a small size: renders both sessions, records a bag, reads it back."""

import json

from nerf_loc_ros.cli.main import main


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "6", "--width", "80", "--height", "60"]) == 0
    report = json.loads((out / "demo.json").read_text())
    assert report["query_frames"] == 6 and report["bag_roundtrip"]["frames"] == 6
    assert report["bag_roundtrip"]["images_identical"]
    assert report["bag"]["topics"]["/camera/image_raw"] == 6
    assert (out / "mapping_session.png").stat().st_size > 1000
    assert "read back" in capsys.readouterr().out

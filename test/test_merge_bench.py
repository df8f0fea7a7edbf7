"""`nerf-loc bench merge`: localization after a merge (real procedural captures, real training, real files)."""

from __future__ import annotations

import json

import numpy as np

from nerf_loc_ros.cli.main import main
from nerf_loc_ros.datasets import load_dataset
from nerf_loc_ros.evaluation.merge_bench import queries_near_views
from nerf_loc_ros.maps import load_global_map


def test_queries_near_views_keeps_the_frames_whose_nearest_mapping_camera_is_one_of_the_views():
    spec = "procedural:seed=3:frames=30:size=64x48"
    mapping, query = load_dataset(spec, "mapping"), load_dataset(spec, "query")
    views = list(range(10, 20))
    idx = queries_near_views(mapping, query, views)
    centres = mapping.T_world_cam[:, :3, 3]
    brute = [i for i in range(len(query))
             if int(np.argmin(np.linalg.norm(centres - query.T_world_cam[i, :3, 3], axis=1))) in views]
    assert idx.tolist() == brute
    assert 0 < len(idx) < len(query)


def test_bench_merge_cli_writes_both_rows_and_a_consistent_global_map(tmp_path):
    out, js = tmp_path / "run", tmp_path / "merge.json"
    args = ["-q", "bench", "merge", "--data", "procedural:seed=5:frames=40:size=128x96", "--iterations", "150",
            "--encoder-budget-s", "5", "--max-queries", "3", "--out-dir", str(out), "--json", str(js)]
    assert main(args) == 0
    r = json.loads(js.read_text())
    m = r["merge"]
    assert m["method"] == "views" and m["status"] in ("OK", "AMBIGUOUS", "FAILED")
    assert 0.6 < r["overlap"] < 1.0  # the 80 % pair
    assert r["query_frames"] == 3 and r["methods"]["submap"]["frames"] == 3
    ids = [s.id for s in load_global_map(out / "global").submaps]
    if m["merged"]:
        assert m["status"] == "OK" and ids == ["a", "b"] and np.isfinite(m["rot_deg"])
        assert r["methods"]["global"]["frames"] == 3
    else:  # a refused merge leaves the global map as it was and localizes nothing against it
        assert ids == ["a"] and "global" not in r["methods"]
    # the submaps are kept and reused: a second run trains nothing and reads the same pair scene
    assert main(args) == 0
    assert json.loads(js.read_text())["merge"]["status"] == m["status"]

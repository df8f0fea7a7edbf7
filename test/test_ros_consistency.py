"""Topic names, node names and parameters agree between the RViz layout, the launch files, the config and the
nodes (read from source, so this runs without ROS)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ROS = REPO / "nerf_loc_ros" / "ros"


def _module_dict(path: Path, name: str) -> dict:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {path}")


def _node_name(path: Path) -> str:
    m = re.search(r'super\(\).__init__\("([a-z_]+)"', path.read_text())
    assert m, path
    return m.group(1)


def _private_topics(path: Path) -> set[str]:
    return set(re.findall(r'"(~/[a-z_/]+)"', path.read_text()))


def _rviz_topics() -> dict[str, str]:
    cfg = yaml.safe_load((REPO / "rviz" / "localize.rviz").read_text())
    out = {}
    for d in cfg["Visualization Manager"]["Displays"]:
        if "Topic" in d:
            out[d["Name"]] = d["Topic"]["Value"]
    return out


def test_rviz_topics_are_published_by_the_nodes_and_launch_defaults():
    localizer, server = _node_name(ROS / "localizer_node.py"), _node_name(ROS / "map_server_node.py")
    published = {f"/{localizer}/{t[2:]}" for t in _private_topics(ROS / "localizer_node.py")}
    published |= {f"/{server}/{t[2:]}" for t in _private_topics(ROS / "map_server_node.py")}
    args = _module_dict(REPO / "launch" / "localize.launch.py", "ARGUMENTS")
    topics = _rviz_topics()
    assert topics["Camera image"] == args["image"][0]
    for name in ("Map cloud", "Keyframes", "Localized pose", "Path", "Debug matches"):
        assert topics[name] in published, (name, topics[name], sorted(published))
    # the launch file names the nodes as the nodes name themselves (topic prefixes above)
    launch = (REPO / "launch" / "localize.launch.py").read_text()
    assert f'name="{localizer}"' in launch and f'name="{server}"' in launch


def test_config_matches_declared_parameters():
    params = _module_dict(ROS / "localizer_node.py", "PARAMETERS")
    cfg = yaml.safe_load((REPO / "config" / "localizer.yaml").read_text())
    loc = cfg["/**/nerf_localizer"]["ros__parameters"]
    assert set(loc) <= set(params), set(loc) - set(params)
    for name, value in loc.items():
        default, _, rng = params[name]
        assert type(value) is type(default), (name, value, default)
        if isinstance(rng, tuple) and all(isinstance(v, str) for v in rng):
            assert value in rng, name
        elif isinstance(rng, tuple):
            assert rng[0] <= value <= rng[1], name
    server = (ROS / "map_server_node.py").read_text()
    for name in cfg["/**/nerf_map_server"]["ros__parameters"]:
        assert f'declare_parameter("{name}"' in server, name
    merge = (ROS / "map_merge_node.py").read_text()
    merge_cfg = yaml.safe_load((REPO / "config" / "map_merge.yaml").read_text())["/**/nerf_map_merge"]
    for name in merge_cfg["ros__parameters"]:
        assert f'declare_parameter("{name}"' in merge, name


def test_map_merge_interfaces():
    """The merge node, its launch file, service and message agree (DESIGN.md section 6)."""
    node = _node_name(ROS / "map_merge_node.py")
    launch = (REPO / "launch" / "map_merge.launch.py").read_text()
    assert f'name="{node}"' in launch and 'executable="map_merge_node"' in launch
    assert (REPO / "scripts" / "ros" / "map_merge_node").is_file()
    assert {"~/merge_submap", "~/registration_result", "~/cloud"} <= _private_topics(ROS / "map_merge_node.py")
    args = _module_dict(REPO / "launch" / "map_merge.launch.py", "ARGUMENTS")
    assert {"global_map", "method", "params_file", "use_rviz", "namespace", "use_sim_time"} <= set(args)
    cmake = (REPO / "CMakeLists.txt").read_text()
    for f in ("msg/RegistrationResult.msg", "srv/MergeSubmap.srv"):
        assert f'"{f}"' in cmake and (REPO / f).is_file(), f
    srv = (REPO / "srv" / "MergeSubmap.srv").read_text()
    fields = {line.split()[1] for line in srv.splitlines() if line.strip() and not line.startswith(("#", "---"))}
    assert {"submap_path", "submap_id", "use_initial_guess", "initial_guess", "force", "dry_run", "success",
            "message", "result"} <= fields
    node_text = (ROS / "map_merge_node.py").read_text()
    for f in ("submap_path", "submap_id", "use_initial_guess", "initial_guess", "force", "dry_run"):
        assert f"request.{f}" in node_text, f


def test_launch_arguments_and_executables():
    args = _module_dict(REPO / "launch" / "localize.launch.py", "ARGUMENTS")
    assert {"map", "image", "camera_info", "params_file", "use_rviz", "namespace", "use_sim_time",
            "compressed"} <= set(args)
    replay = _module_dict(REPO / "launch" / "replay.launch.py", "ARGUMENTS")
    assert {"map", "bag", "gt_topic", "out_dir"} <= set(replay)
    scripts = {p.name for p in (REPO / "scripts" / "ros").iterdir()}
    for launch in ("localize.launch.py", "replay.launch.py", "map_merge.launch.py"):
        for exe in re.findall(r'executable="([a-z_0-9]+)"', (REPO / "launch" / launch).read_text()):
            assert exe == "rviz2" or exe in scripts, exe
    eval_defaults = (ROS / "replay_eval_node.py").read_text()
    assert '"/nerf_localizer/status"' in eval_defaults and '"/nerf_localizer/pose"' in eval_defaults
    assert replay["gt_topic"][0] in eval_defaults
    # replay.launch.py starts the bag when the localizer logs that its map is loaded (or stops when it cannot)
    launch_text = (REPO / "launch" / "replay.launch.py").read_text()
    node_text = (ROS / "localizer_node.py").read_text()
    for phrase in re.findall(r'b"([^"]+)" in event.text', launch_text):
        assert phrase in node_text, f"replay.launch.py waits for '{phrase}', which the localizer never logs"
    assert len(re.findall(r'b"([^"]+)" in event.text', launch_text)) == 2

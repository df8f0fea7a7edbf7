"""The ``nerf-loc`` CLI: every command has --help; data/bag commands run on real data; errors are one clear line."""

import json
import subprocess
import sys

import pytest

from nerf_loc_ros.cli.main import COMMAND_MODULES, build_parser, main


def _subcommands(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            yield from action.choices.items()


def test_every_command_has_help(capsys):
    parser = build_parser()
    names = [n for n, _ in _subcommands(parser)]
    # each module adds the command of its name; registration adds its four
    assert set(COMMAND_MODULES) - {"registration"} <= set(names)
    assert {"make-pairs", "train-desc", "register", "merge"} <= set(names)
    todo = list(_subcommands(parser))
    while todo:
        name, sub = todo.pop()
        help_text = sub.format_help()
        assert "usage:" in help_text and len(help_text) > 60, name
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name}: option {action.option_strings} has no help text"
        todo.extend(_subcommands(sub))


def test_console_entry_point_lists_commands():
    out = subprocess.run([sys.executable, "-m", "nerf_loc_ros", "--help"], capture_output=True, text=True, check=True)
    for name in ("demo", "data", "bag"):
        assert name in out.stdout


def test_data_info_json(tmp_path, fern_dir, capsys):
    out = tmp_path / "fern.json"
    assert main(["data", "info", "--data", str(fern_dir), "--split", "test@8", "--json", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["frames"] == 3 and info["sizes"] == ["504x378"] and info["metric"] is False
    assert "extent" in capsys.readouterr().out


def test_bag_make_and_info_roundtrip(tmp_path, redkitchen_dir, capsys):
    bag = tmp_path / "kitchen_bag"
    rc = main(["bag", "make", "--data", str(redkitchen_dir), "--split", "query", "--max-frames", "5",
               "--out", str(bag), "--format", "sqlite3"])
    assert rc == 0 and any(bag.glob("*.db3"))
    capsys.readouterr()
    assert main(["bag", "info", str(bag)]) == 0
    text = capsys.readouterr().out
    for topic in ("/camera/image_raw", "/camera/camera_info", "/tf_static", "/ground_truth/pose"):
        assert topic in text


def test_user_errors_are_one_line(caplog):
    assert main(["data", "info", "--data", "/definitely/not/here"]) == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "not found" in errors[0].getMessage() and errors[0].exc_info is None
    with pytest.raises(SystemExit):
        main(["bag", "make"])  # missing required options -> argparse usage error

"""Shared pytest fixtures: the real datasets in ../shared/data (never copied into the repository)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _nerf_loc_loggers_propagate():
    """Let ``caplog`` see the package's log records under ``colcon test`` too.

    ROS 2's launch_testing pytest plugin imports ``launch``, whose ``launch.logging`` installs a logger class
    (``logging.setLoggerClass(LaunchLogger)``) that sets ``propagate = False`` on every logger created
    afterwards, so records of ``nerf_loc_ros.*`` loggers never reach caplog's handler on the root logger.
    """
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and (name == "nerf_loc_ros" or name.startswith("nerf_loc_ros.")):
            logger.propagate = True
    yield


def _shared_data_dir() -> Path | None:
    env = os.environ.get("NERF_LOC_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real datasets (``$NERF_LOC_DATA`` or ``<repo>/../shared/data``); skips if absent."""
    d = _shared_data_dir()
    if d is None:
        pytest.skip("shared datasets not found: set NERF_LOC_DATA or place them at ../shared/data")
    return d


def _dataset_fixture(name: str):
    @pytest.fixture(scope="session")
    def _fixture(shared_data: Path) -> Path:
        p = shared_data / name
        if not p.is_dir():
            pytest.skip(f"dataset {name} not found in {shared_data}")
        return p

    return _fixture


lego_dir = _dataset_fixture("nerf_synthetic_lego")
fern_dir = _dataset_fixture("llff_fern")
redkitchen_dir = _dataset_fixture("sevenscenes_redkitchen")
raspicam_bags_dir = _dataset_fixture("ubiquity_raspicam_bags")


@pytest.fixture(scope="session")
def procedural_loc_map(tmp_path_factory):
    """A small localization map of the procedural scene, its mapping session and its query session:
    ``(map_dir, mapping, query)``. Built once per test session.

    Step budgets, not time budgets (what 60 s + 60 s buy on a quiet 2-core machine: 450 NeRF iterations, 1100
    encoder steps), so a slower or busy machine builds the same map instead of a worse one."""
    from nerf_loc_ros.datasets import load_dataset
    from nerf_loc_ros.localization import EncoderTrainConfig, build_localization_map
    from nerf_loc_ros.nerf import TrainConfig

    spec = "procedural:seed=5:frames=40:size=192x144"
    mapping = load_dataset(spec, "mapping")
    out = tmp_path_factory.mktemp("procedural_loc") / "map"
    build_localization_map(mapping, out, TrainConfig(iterations=450, progress=False),
                           encoder_train=EncoderTrainConfig(budget_s=1800, max_steps=1100), progress=False)
    return out, mapping, load_dataset(spec, "query")


@pytest.fixture()
def ros_loopback(tmp_path, monkeypatch):
    """Environment that keeps DDS on this machine (set before ``rclpy.init``): localhost discovery, Cyclone DDS
    bound to ``lo`` with multicast off, a private domain id."""
    xml = tmp_path / "cyclonedds.xml"
    xml.write_text(
        '<CycloneDDS><Domain id="any"><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
        "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
        '<Peers><Peer address="127.0.0.1"/></Peers><MaxAutoParticipantIndex>50</MaxAutoParticipantIndex>'
        "</Discovery></Domain></CycloneDDS>")
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")
    monkeypatch.setenv("CYCLONEDDS_URI", xml.as_uri())
    monkeypatch.setenv("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    return xml

"""Build a map from a dataset: train the NeRF and save the map directory (``nerf-loc map build``)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from ..datasets import PosedImages
from ..nerf import NerfTrainer, TrainConfig
from .nerf_map import MapCameras, NerfMap, save_map

__all__ = ["build_map"]

log = logging.getLogger(__name__)


def build_map(
    data: PosedImages, out: Path | None, config: TrainConfig | None = None, device: str = "cpu",
    name: str | None = None, overwrite: bool = False, checkpoint_dir: Path | None = None,
) -> NerfMap:
    """Train a NeRF on ``data`` (world frame ``data.frame_id``) and save it to ``out`` (skipped when None).

    With ``checkpoint_dir`` training resumes from, and periodically writes, a checkpoint there.
    """
    trainer = NerfTrainer(data, config, device=device)
    if checkpoint_dir is not None:
        trainer.load_checkpoint(checkpoint_dir)
    model = trainer.train(checkpoint_dir=checkpoint_dir)
    nerf_map = NerfMap(
        model=model,
        name=name or (Path(out).name if out else "map"),
        frame_id=data.frame_id,
        units="m" if data.metric else "arbitrary",
        training={**asdict(trainer.summary), "device": str(device)},
        source=data.source,
        cameras=MapCameras.of(data),
    )
    if out is not None:
        save_map(nerf_map, Path(out), overwrite=overwrite)
    return nerf_map

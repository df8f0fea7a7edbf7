"""Registration pairs on disk: NeRF submaps of one scene trained on different view subsets, each in its own frame.

DeSC trains and is evaluated on pairs of NeRFs of one scene trained on different views at a controlled overlap,
the second under a random rigid motion (DESIGN.md section 5). :func:`make_pair_scene` builds them from one
capture: for each target overlap (30 / 50 / 80 %) it splits the views into two contiguous runs
(:func:`~.pairs.split_views_for_overlap`; of the capture order, or of a sweep order for object-centric sets),
trains a NeRF map on each run with its cameras moved by a random rigid transform, samples its point cloud (:func:`~.sampling.sample_nerf_points`) and records the transform. Any two
submaps of a scene with some overlap form a pair (a scene with three target overlaps has six submaps and up to
fifteen pairs for training); the ``(a, b)`` submaps of each target overlap are the evaluation pairs.

Layout of a pair scene directory::

    scene.yaml            # format version, data spec, seed, submaps (views, T_world_submap), overlaps
    <name>/map/           # the NeRF map of the submap (its own frame)
    <name>/cloud.npz      # its sampled point cloud (written last: a submap without it is unfinished)

Building is resumable: finished submaps (those with a ``cloud.npz``) are kept, the rest are trained.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from ..datasets import PosedImages
from ..geometry import is_rigid
from ..maps.manifest import read_versioned_yaml
from .pairs import move_cameras, random_rigid_transform, points_seen_by_views, split_views_for_overlap, sweep_order
from .result import cloud_extent
from .sampling import NerfPointCloud, SamplingConfig, sample_nerf_points

__all__ = ["PAIR_SCENE_FILE", "PairScene", "SubmapRecord", "RegistrationPair", "make_pair_scene",
           "load_pair_scene"]

log = logging.getLogger(__name__)

PAIR_SCENE_FILE = "scene.yaml"
PAIR_SCENE_VERSION = 1


@dataclass
class SubmapRecord:
    """One submap of a pair scene: its views (indices into the capture), ``T_world_submap [4 x 4]`` (submap frame
    -> capture frame) and its directory."""

    name: str
    views: list[int]
    T_world_submap: np.ndarray
    directory: Path

    @property
    def cloud_path(self) -> Path:
        return self.directory / "cloud.npz"

    @property
    def map_path(self) -> Path:
        return self.directory / "map"

    @property
    def finished(self) -> bool:
        return self.cloud_path.is_file()

    def cloud(self) -> NerfPointCloud:
        """The sampled point cloud (submap frame)."""
        return NerfPointCloud.load(self.cloud_path)


@dataclass
class RegistrationPair:
    """A source and a target submap, their surface overlap and the true ``T_target_source [4 x 4]``."""

    scene: str
    source: SubmapRecord
    target: SubmapRecord
    overlap: float
    T_target_source: np.ndarray
    key: str = ""  #: the target overlap in percent for evaluation pairs ("30", "50", "80")


@dataclass
class PairScene:
    """The submaps of one capture (see the module docstring) and their pairwise surface overlaps."""

    name: str
    source: str
    submaps: list[SubmapRecord]
    overlaps: np.ndarray  #: [S x S] surface overlap of submaps i and j (1 on the diagonal)
    eval_pairs: dict[str, tuple[int, int]]  #: target overlap in percent -> (target index, source index)

    def pair(self, target: int, source: int) -> RegistrationPair:
        """The pair registering submap ``source`` onto submap ``target``."""
        s, t = self.submaps[source], self.submaps[target]
        T = np.linalg.inv(t.T_world_submap) @ s.T_world_submap
        return RegistrationPair(self.name, s, t, float(self.overlaps[target, source]), T)

    def training_pairs(self, min_overlap: float = 0.1) -> list[RegistrationPair]:
        """Every ordered pair of distinct finished submaps overlapping by at least ``min_overlap``."""
        n = len(self.submaps)
        return [self.pair(i, j) for i in range(n) for j in range(n)
                if i != j and self.overlaps[i, j] >= min_overlap
                and self.submaps[i].finished and self.submaps[j].finished]

    def evaluation_pairs(self) -> dict[str, RegistrationPair]:
        """The ``(a, b)`` pair of each target overlap whose submaps are both finished, keyed by percent."""
        return {k: replace(self.pair(t, s), key=k) for k, (t, s) in self.eval_pairs.items()
                if self.submaps[t].finished and self.submaps[s].finished}


def _surface_points(data: PosedImages, reference_points: np.ndarray | None) -> np.ndarray:
    from ..nerf.scene_box import depth_points

    if reference_points is not None:
        return np.asarray(reference_points, np.float64)
    if not data.has_depth:
        raise ValueError("overlap needs scene surface points: the capture has no depth, pass reference points "
                         "(e.g. sampled from a NeRF map of all views)")
    return depth_points(data, per_image=max(200, 40000 // max(len(data), 1)), seed=0)


def make_pair_scene(
    data: PosedImages, out: Path, overlaps: tuple[float, ...] = (0.3, 0.5, 0.8), train=None,
    sampling: SamplingConfig | None = None, seed: int = 0, reference_points: np.ndarray | None = None,
    max_angle_deg: float = 180.0, progress: bool = True, order: str = "capture",
    reference_normals: np.ndarray | None = None, max_incidence_deg: float = 75.0,
) -> PairScene:
    """Build (or finish building) the pair scene of ``data`` in ``out``; see the module docstring.

    Args:
        data: one capture (world frame of the capture); its depth, or ``reference_points [M x 3]`` (surface
            points in that frame), measure the overlaps.
        overlaps: target surface overlaps in ``(0, 1)``; each adds two submaps and one evaluation pair.
        train: :class:`~nerf_loc_ros.nerf.TrainConfig` of every submap NeRF (default: 300 steps).
        sampling: point sampling of each submap (default :class:`SamplingConfig` with 20000 points).
        seed: seeds the random rigid motions (and each NeRF's own seed).
        max_angle_deg: rotation magnitude of the random motions (translation up to half the scene extent).
        order: ``"capture"`` (runs of the capture order) or ``"sweep"`` (runs of :func:`~.pairs.sweep_order`,
            for object-centric captures in random order); submaps list their views in that order.
        reference_normals: outward normals ``[M x 3]`` of ``reference_points``: a point then counts as seen only by
            cameras it faces within ``max_incidence_deg`` of its normal (needed for objects seen from all around;
            :func:`~.pairs.points_seen_by_views`). 75 deg, chosen before any registration on such pairs: lego's
            30 / 50 / 80 % sweep pairs then have 7 + 7, 15 + 15 and 28 + 27 views instead of 3 + 3 (42 %), 5 + 5 and
            18 + 17 (90 deg: the roof, seen from every camera, made opposite sides overlap).
    """
    from tqdm import tqdm

    from ..maps import build_map
    from ..nerf import TrainConfig

    out = Path(out)
    train = train or TrainConfig(iterations=300)
    sampling = sampling or SamplingConfig(max_points=20000)
    if order not in ("capture", "sweep"):
        raise ValueError(f"order must be 'capture' or 'sweep', got {order!r}")
    points = _surface_points(data, reference_points)
    if reference_normals is not None and (reference_points is None or len(reference_normals) != len(points)):
        raise ValueError("reference_normals need reference_points of the same length")
    perm = sweep_order(data.T_world_cam) if order == "sweep" else np.arange(len(data))
    vis = points_seen_by_views(points, data.T_world_cam, data.K, [data.size(i) for i in range(len(data))],
                               normals=reference_normals, max_incidence_deg=max_incidence_deg)  # [V x N], capture order
    extent = cloud_extent(points)
    rng = np.random.default_rng([seed, 0xDE5C])
    views: list[np.ndarray] = []
    eval_pairs: dict[str, tuple[int, int]] = {}
    for ov in overlaps:
        split = split_views_for_overlap(vis[perm], ov)
        log.info("overlap %.0f %%: views %d + %d, measured %.3f", 100 * ov, len(split.a), len(split.b),
                 split.overlap)
        eval_pairs[f"{round(100 * ov)}"] = (len(views), len(views) + 1)
        views += [perm[split.a], perm[split.b]]
    names = [f"o{k}{ab}" for k in eval_pairs for ab in "ab"]
    motions = [random_rigid_transform(rng, max_angle_deg, 0.5 * extent) for _ in views]  # T_submap_world
    seen = np.stack([vis[v].any(0) for v in views])
    inter = seen.astype(np.int64) @ seen.T.astype(np.int64)
    size = seen.sum(1)
    ov_matrix = inter / np.maximum(np.minimum(size[:, None], size[None, :]), 1)
    submaps = [SubmapRecord(n, v.tolist(), np.linalg.inv(T), out / n) for n, v, T in zip(names, views, motions)]
    scene = PairScene(out.name, data.source, submaps, ov_matrix, eval_pairs)
    out.mkdir(parents=True, exist_ok=True)
    existing = out / PAIR_SCENE_FILE
    if existing.exists():  # resume: the plan must be the one on disk
        old = load_pair_scene(out)
        if [s.views for s in old.submaps] != [s.views for s in submaps] or not all(
                np.allclose(a.T_world_submap, b.T_world_submap) for a, b in zip(old.submaps, submaps)):
            raise ValueError(f"{out} holds a pair scene built with other data or settings; use another --out")
    else:
        _write_scene(scene, out / PAIR_SCENE_FILE, seed)
    todo = [(i, s) for i, s in enumerate(submaps) if not s.finished]
    for i, sub in tqdm(todo, desc="submaps", disable=not progress):
        moved = move_cameras(data.subset(sub.views), motions[i])
        moved = replace(moved, source=f"{data.source} [{sub.name}]")
        nerf_map = build_map(moved, sub.map_path, replace(train, seed=seed * 1000 + i, progress=False),
                             overwrite=True)
        cloud = sample_nerf_points(nerf_map.model, nerf_map.cameras, sampling)
        cloud.save(sub.cloud_path)  # written last, atomically: a submap without it is unfinished
        log.info("submap %s: %d views, training PSNR %.2f dB, %d points", sub.name, len(sub.views),
                 nerf_map.training.get("train_psnr", float("nan")), len(cloud))
    return scene


def _write_scene(scene: PairScene, path: Path, seed: int) -> None:
    doc = {
        "format_version": PAIR_SCENE_VERSION,
        "source": scene.source,
        "seed": int(seed),
        "submaps": [{"name": s.name, "views": s.views, "T_world_submap": s.T_world_submap.tolist()}
                    for s in scene.submaps],
        "overlaps": np.round(scene.overlaps, 4).tolist(),
        "eval_pairs": {k: list(v) for k, v in scene.eval_pairs.items()},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)


def load_pair_scene(directory: Path) -> PairScene:
    """Read a pair scene directory written by :func:`make_pair_scene`; malformed content is a ``ValueError``."""
    directory = Path(directory)
    doc = read_versioned_yaml(directory / PAIR_SCENE_FILE, "pair scene")
    try:
        subs = []
        for s in doc["submaps"]:
            name = str(s["name"])
            if not name.isidentifier():
                raise ValueError(f"bad submap name {name!r}")
            T = np.asarray(s["T_world_submap"], np.float64)
            if not is_rigid(T):
                raise ValueError(f"submap {name}: T_world_submap is not a rigid 4x4 transform")
            subs.append(SubmapRecord(name, [int(v) for v in s["views"]], T, directory / name))
        ov = np.asarray(doc["overlaps"], np.float64)
        eval_pairs = {str(k): (int(v[0]), int(v[1])) for k, v in doc["eval_pairs"].items()}
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{directory / PAIR_SCENE_FILE}: malformed pair scene ({exc!r})") from None
    n = len(subs)
    if ov.shape != (n, n) or not np.isfinite(ov).all():
        raise ValueError(f"{directory / PAIR_SCENE_FILE}: overlaps must be a finite {n}x{n} matrix")
    if any(not (0 <= i < n and 0 <= j < n) for i, j in eval_pairs.values()):
        raise ValueError(f"{directory / PAIR_SCENE_FILE}: evaluation pair index out of range")
    return PairScene(directory.name, str(doc.get("source", "")), subs, ov, eval_pairs)

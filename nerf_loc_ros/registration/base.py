"""The registrar interface shared by DeSC and the FPFH baseline."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from .result import RegistrationResult
from .sampling import NerfPointCloud, SamplingConfig, sample_nerf_points

__all__ = ["DEFAULT_REGISTRATION_METHOD", "REGISTRATION_METHODS", "Registrar", "make_registrar", "sample_map"]

REGISTRATION_METHODS = ("desc", "fpfh", "views")
#: the registrar the CLI and the merge node use unless told otherwise: the rendered-view registrar, the one that
#: registers held-out pairs (README table); the shipped DeSC weights register none of them yet
DEFAULT_REGISTRATION_METHOD = "views"


def sample_map(nerf_map, config: SamplingConfig | None = None) -> NerfPointCloud:
    """The registration point cloud of a NeRF map (which must carry its training cameras)."""
    if nerf_map.cameras is None:
        raise ValueError(f"map {nerf_map.name!r} has no training cameras (built before maps stored them); rebuild "
                         "it to register it")
    return sample_nerf_points(nerf_map.model, nerf_map.cameras, config)


class Registrar(ABC):
    """``register(source, target, init=None) -> RegistrationResult`` on sampled clouds; ``register_maps`` samples
    two NeRF maps first (``sampling`` config) and counts that time in ``timings_ms``. Registrars that need the
    maps themselves (``needs_maps``: :class:`~.views.ViewRegistrar`) override ``register_maps``."""

    sampling: SamplingConfig = SamplingConfig(max_points=20000)
    needs_maps: bool = False  #: registers the NeRF maps themselves (``register_maps``), not only their clouds

    @property
    def uses_clouds(self) -> bool:
        """Whether registering needs the sampled point clouds of the maps."""
        return True

    @abstractmethod
    def register(self, source: NerfPointCloud, target: NerfPointCloud, init: np.ndarray | None = None
                 ) -> RegistrationResult:
        """``T_target_source`` of two clouds, each in its own map frame (``init``: optional guess of it)."""

    def register_maps(self, source_map, target_map, init: np.ndarray | None = None) -> RegistrationResult:
        """Sample both maps and register them."""
        t0 = time.perf_counter()
        clouds = [sample_map(m, self.sampling) for m in (source_map, target_map)]
        sampling_ms = 1000 * (time.perf_counter() - t0)
        res = self.register(clouds[0], clouds[1], init)
        res.timings_ms = {"sampling": sampling_ms, **res.timings_ms,
                          "total": res.timings_ms.get("total", 0.0) + sampling_ms}
        return res


def make_registrar(method: str, weights=None) -> Registrar:
    """The registrar of a method name: ``desc`` (DeSC, ``weights``: a weights file or None for the shipped ones),
    ``fpfh`` (Open3D FPFH + RANSAC + ICP) or ``views`` (rendered-view matching)."""
    if method == "desc":
        from .desc import DescRegistrar

        return DescRegistrar(weights)
    if method == "fpfh":
        from .fpfh import FPFHRegistrar

        return FPFHRegistrar()
    if method == "views":
        from .views import ViewRegistrar

        return ViewRegistrar()
    raise ValueError(f"unknown registration method {method!r} (one of {', '.join(REGISTRATION_METHODS)})")

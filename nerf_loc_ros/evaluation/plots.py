"""Plots of localization results (PNG, matplotlib Agg): error CDF, trajectory top view, per-frame errors/latency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..geometry import transform_points
from .pose_metrics import FrameRecord

__all__ = ["plot_error_cdf", "plot_trajectory", "plot_per_frame"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_error_cdf(runs: dict[str, list[FrameRecord]], path: Path, trans_unit: str = "m") -> Path:
    """Cumulative distribution of translation and rotation errors, one curve per method."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, recs in runs.items():
        errs = np.array([r.errors() for r in recs if r.T_gt is not None]).reshape(-1, 2)
        n = len(errs)
        if n == 0:
            continue
        for ax, col in zip(axes, (1, 0)):
            e = np.sort(errs[:, col])
            finite = np.isfinite(e)
            ax.step(e[finite], np.arange(1, finite.sum() + 1) / n, where="post", label=name)
    axes[0].set_xlabel(f"translation error [{trans_unit}]")
    axes[1].set_xlabel("rotation error [deg]")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_ylabel("fraction of frames")
        ax.set_ylim(0, 1)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_trajectory(records: list[FrameRecord], path: Path, up_axis: int | None = None) -> Path:
    """Top view of ground-truth vs estimated camera centres: the two axes other than ``up_axis`` (default: the
    world axis along which the ground-truth centres spread least, the vertical for a ground robot)."""
    plt = _plt()
    gt = np.array([r.T_gt[:3, 3] for r in records if r.T_gt is not None]).reshape(-1, 3)
    if up_axis is None:
        up_axis = int(np.argmin(np.ptp(gt, axis=0))) if len(gt) > 1 else 2
    axes_xy = [a for a in range(3) if a != up_axis]
    fig, ax = plt.subplots(figsize=(6, 6))
    if len(gt):
        ax.plot(gt[:, axes_xy[0]], gt[:, axes_xy[1]], "-", color="0.5", label="ground truth")
    for status, colour in (("OK", "tab:green"), ("LOW_CONFIDENCE", "tab:orange")):
        est = np.array([r.T_est[:3, 3] for r in records if r.T_est is not None and r.status == status]).reshape(-1, 3)
        if len(est):
            ax.plot(est[:, axes_xy[0]], est[:, axes_xy[1]], ".", color=colour, label=f"estimate ({status})")
    failed = [r for r in records if r.T_est is None and r.T_gt is not None]
    if failed:
        f = np.array([r.T_gt[:3, 3] for r in failed])
        ax.plot(f[:, axes_xy[0]], f[:, axes_xy[1]], "x", color="tab:red", label="failed (at GT)")
    names = "xyz"
    ax.set_xlabel(names[axes_xy[0]])
    ax.set_ylabel(names[axes_xy[1]])
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_per_frame(records: list[FrameRecord], path: Path, trans_unit: str = "m") -> Path:
    """Per-frame translation error, rotation error and latency (failed frames marked)."""
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    idx = np.arange(len(records))
    errs = np.array([r.errors() for r in records]).reshape(-1, 2)
    failed = ~np.isfinite(errs[:, 0])
    for ax, col, label in ((axes[0], 1, f"translation [{trans_unit}]"), (axes[1], 0, "rotation [deg]")):
        ax.semilogy(idx[~failed], errs[~failed, col], ".", ms=4)
        if failed.any():
            for x in idx[failed]:
                ax.axvline(x, color="tab:red", alpha=0.3, lw=1)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    lat = np.array([r.timings_ms.get("total", np.nan) for r in records])
    axes[2].plot(idx, lat, ".", ms=4)
    axes[2].set_ylabel("latency [ms]")
    axes[2].set_xlabel("frame")
    axes[2].grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_registrations(panels: list[list[dict]], path: Path, max_points: int = 4000) -> Path:
    """A grid of top views of registered pairs: one row per pair, one column per method.

    Each panel dict has ``source [N x 3]`` and ``target [M x 3]`` (their own frames), ``T`` (the method's
    ``T_target_source`` or None), ``T_gt``, ``T_view`` (target frame -> the frame whose x-y plane is drawn, e.g.
    the capture's world frame) and a ``title``. The target is grey, the source under the estimate red and under
    the truth a faint blue."""
    plt = _plt()
    rows, cols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    rng = np.random.default_rng(0)

    def sub(P):
        return P[rng.choice(len(P), min(len(P), max_points), replace=False)]

    for r, row in enumerate(panels):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.axis("off")
                continue
            p = row[c]
            tgt, src = sub(np.asarray(p["target"])), sub(np.asarray(p["source"]))
            V = np.asarray(p.get("T_view", np.eye(4)))

            def view(P, T=np.eye(4)):
                return transform_points(V @ T, P)

            t_v, gt = view(tgt), view(src, p["T_gt"])
            ax.scatter(t_v[:, 0], t_v[:, 1], s=0.3, c="0.6")
            ax.scatter(gt[:, 0], gt[:, 1], s=0.3, c="tab:blue", alpha=0.15)
            if p["T"] is not None:
                est = view(src, p["T"])
                ax.scatter(est[:, 0], est[:, 1], s=0.3, c="tab:red")
            ax.set_title(p["title"], fontsize=7)
            ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)

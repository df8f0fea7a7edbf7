"""Regenerate docs/procedural_sample.png: one frame of the procedural scene, RGB and exact depth side by side.

Usage: .venv/bin/python scripts/make_docs_sample.py [--seed 0] [--session query] [--frame 100]
                                                    [--out docs/procedural_sample.png]
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nerf_loc_ros.datasets.procedural import (  # noqa: E402
    ProceduralScene,
    ProceduralSceneConfig,
    intrinsics,
    session_trajectory,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="scene seed")
    ap.add_argument("--session", default="query", choices=["mapping", "query"], help="which session")
    ap.add_argument("--frames", type=int, default=120, help="frames in the session (the loop is always whole)")
    ap.add_argument("--frame", type=int, default=100, help="frame index to show")
    ap.add_argument("--out", default="docs/procedural_sample.png", help="output PNG")
    args = ap.parse_args()

    scene = ProceduralScene(ProceduralSceneConfig(seed=args.seed))
    T = session_trajectory(scene, args.session, args.frames)[args.frame]
    K = intrinsics(320, 240, 65.0)
    t0 = time.perf_counter()
    rgb, depth = scene.render(T, K, 320, 240)
    ms = (time.perf_counter() - t0) * 1e3

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 1.08]})
    ax[0].imshow(rgb, interpolation="nearest")
    ax[0].set_title(f"procedural seed {args.seed}, {args.session}_{args.frame:04d}: RGB 320x240", fontsize=9)
    im = ax[1].imshow(depth, cmap="turbo", interpolation="nearest")
    ax[1].set_title(f"exact z-depth, {depth.min():.2f}-{depth.max():.2f} m (render {ms:.0f} ms)", fontsize=9)
    cb = fig.colorbar(im, ax=ax[1], fraction=0.035, pad=0.02)
    cb.set_label("metres", fontsize=8)
    objects = ", ".join(scene.object_names)
    pos = np.round(T[:3, 3], 2).tolist()
    fig.suptitle(f"room {tuple(float(x) for x in scene.room_max)} m, objects: {objects}; camera at {pos}",
                 fontsize=8, y=0.02, va="bottom")
    for a in ax:
        a.axis("off")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

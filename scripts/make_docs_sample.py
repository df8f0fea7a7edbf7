"""Regenerate docs/procedural_sample.png: one frame of the procedural scene, RGB and depth side by side.

Usage: .venv/bin/python scripts/make_docs_sample.py [--seed 0] [--frame 30] [--out docs/procedural_sample.png]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nerf_loc_ros.datasets.procedural import make_session  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="scene seed")
    ap.add_argument("--frame", type=int, default=30, help="frame of the 120-frame query session")
    ap.add_argument("--out", default="docs/procedural_sample.png", help="output PNG")
    args = ap.parse_args()
    posed = make_session(seed=args.seed, session="query", n_frames=120, width=320, height=240)
    rgb, depth = posed.images[args.frame], posed.depths[args.frame]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].imshow(rgb)
    ax[0].set_title(f"{posed.names[args.frame]} (seed {args.seed}), RGB 320x240", fontsize=9)
    im = ax[1].imshow(depth, cmap="turbo")
    ax[1].set_title("exact z-depth (m)", fontsize=9)
    fig.colorbar(im, ax=ax[1], fraction=0.035)
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()

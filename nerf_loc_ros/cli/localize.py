"""``nerf-loc localize``: localize one image against a map and print the pose and status."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("localize", help="localize one image against a map (pose, status, timings)")
    p.add_argument("--map", required=True, type=Path, help="map directory (`nerf-loc map build`) or global map of merged submaps (`nerf-loc merge`)")
    p.add_argument("--image", required=True, type=Path, help="image file (PNG/JPEG, RGB or grey)")
    p.add_argument("--K", default=None,
                   help="intrinsics 'fx,fy,cx,cy' in pixels (default: the map's keyframe camera, if the size matches)")
    p.add_argument("--prior", type=Path, default=None,
                   help="pose prior T_world_cam (4x4 text file or 'tx ty tz qx qy qz qw'); replaces retrieval")
    p.add_argument("--refine", action="store_true",
                   help="also run the guided descriptor re-matching pass before the fine level (off by default)")
    p.add_argument("--no-fine", action="store_true",
                   help="skip the fine level (keyframe patches located in the image; the first-pass pose is returned)")
    p.add_argument("--render-refine", action="store_true",
                   help="also re-render NeRF points at the estimate and match again (slower)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_localize)

    r = sub.add_parser("replay", help="replay a bag through the localizer as the live node does; metrics and plots")
    r.add_argument("--map", required=True, type=Path, help="map directory (`nerf-loc map build`) or global map of merged submaps (`nerf-loc merge`)")
    r.add_argument("--bag", required=True, type=Path, help="bag: rosbag2 directory, .db3/.mcap file or ROS 1 .bag")
    r.add_argument("--image-topic", default=None, help="Image or CompressedImage topic (default: the only one)")
    r.add_argument("--camera-info-topic", default=None, help="CameraInfo topic (default: the only one / sibling)")
    gt = r.add_mutually_exclusive_group()
    gt.add_argument("--gt-topic", default=None, help="ground-truth pose topic (PoseStamped, Odometry, ...)")
    gt.add_argument("--gt-tf", default=None, help="ground truth from TF as PARENT:CHILD (e.g. map:camera_optical_frame)")
    r.add_argument("--odom-frame", default="odom", help="odom frame for the published map -> odom (default odom)")
    r.add_argument("--pose-topic", default="/nerf_localizer/pose", help="pose topic in the results bag")
    r.add_argument("--no-prior", action="store_true", help="relocalize every frame (no tracking prior)")
    r.add_argument("--max-frames", type=int, default=None, help="replay at most this many frames")
    r.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    r.add_argument("--out", required=True, type=Path, help="output folder (results bag, metrics.json, plots)")
    r.set_defaults(func=cmd_replay)


def cmd_localize(args: argparse.Namespace) -> int:
    from ..datasets.image_io import read_rgb
    from ..geometry import pose_to_translation_quaternion
    from ..localization import GlobalLocalizer, LocalizerConfig, load_localizer
    from .map import parse_K, parse_pose_file

    loc = load_localizer(args.map, LocalizerConfig(refine=args.refine, fine=not args.no_fine,
                                                   render_refine=args.render_refine, device=args.device))
    image = read_rgb(args.image)
    h, w = image.shape[:2]
    if args.K:
        K = parse_K(args.K)
    else:
        db = (loc.localizers[0] if isinstance(loc, GlobalLocalizer) else loc).db
        same = np.flatnonzero((db.size[:, 0] == w) & (db.size[:, 1] == h))
        if len(same) == 0:
            raise ValueError(f"image is {w}x{h} but the map's keyframes are {db.size[0][0]}x{db.size[0][1]}: pass --K")
        K = db.K[same[0]]
    prior = parse_pose_file(args.prior) if args.prior else None
    res = loc.localize(image, K, prior=prior)
    out = {"status": res.status.value, "reason": res.reason, "inliers": res.num_inliers, "matches": res.num_matches,
           "reproj_error_px": res.reproj_error, "keyframes": loc.keyframe_names(res),
           "timings_ms": {k: round(v, 1) for k, v in res.timings_ms.items()}}
    if res.T_world_cam is not None:
        t, q = pose_to_translation_quaternion(res.T_world_cam)
        out.update(T_world_cam=res.T_world_cam.tolist(), translation=t.tolist(), quaternion_xyzw=q.tolist(),
                   std_trans=np.sqrt(np.diag(res.covariance)[:3]).tolist(),
                   std_rot_deg=np.degrees(np.sqrt(np.diag(res.covariance)[3:])).tolist())
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.image}: {res.status.value}" + (f" ({res.reason})" if res.reason else ""))
        if res.T_world_cam is not None:
            print(f"  T_world_cam ({loc.frame_id}, OpenCV camera axes): t = {np.round(out['translation'], 4).tolist()}"
                  f", q_xyzw = {np.round(out['quaternion_xyzw'], 5).tolist()}")
            print(f"  1-sigma: {np.round(out['std_trans'], 4).tolist()} {loc.units}, "
                  f"{np.round(out['std_rot_deg'], 3).tolist()} deg")
        print(f"  {res.num_inliers} inliers of {res.num_matches} matches, reprojection error {res.reproj_error:.2f} px,"
              f" keyframes {out['keyframes']}")
        print("  timings: " + ", ".join(f"{k} {v:.1f} ms" for k, v in res.timings_ms.items()))
    return 0 if res.T_world_cam is not None else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from ..evaluation.replay import run_replay

    gt_tf = None
    if args.gt_tf:
        parent, _, child = args.gt_tf.partition(":")
        if not parent:
            raise ValueError("--gt-tf must be PARENT:CHILD (CHILD may be empty for the image frame)")
        gt_tf = (parent, child or None)
    m = run_replay(args.map, args.bag, args.image_topic, args.out, camera_info_topic=args.camera_info_topic,
                   gt_topic=args.gt_topic, gt_tf=gt_tf, odom_frame=args.odom_frame, pose_topic=args.pose_topic,
                   use_prior=not args.no_prior, device=args.device, max_frames=args.max_frames)
    print(f"replayed {args.bag}: {m['frames']} frames, status {m['status_counts']}, skipped {len(m['skipped'])}")
    if m.get("median_trans") is not None:
        unit = m["units"]
        print(f"  median error {m['median_trans']:.4f} {unit} / {m['median_rot_deg']:.3f} deg; recall "
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in m["recall"].items()))
        print(f"  latency p50 {m['latency_ms_p50']:.1f} ms, p95 {m['latency_ms_p95']:.1f} ms; "
              + ", ".join(f"{k} {v:.1f}" for k, v in m["stage_ms_p50"].items()))
    print(f"  wrote {args.out}/metrics.json, results_bag/, trajectory.png, error_cdf.png, per_frame.png")
    return 0

"""Evaluation: image and depth metrics, benchmarks (NeRF), later localization replay and registration."""

from .image_metrics import colorize_depth, depth_abs_rel, psnr, ssim
from .nerf_bench import evaluate_views, run_nerf_benchmark, save_strip

__all__ = ["colorize_depth", "depth_abs_rel", "evaluate_views", "psnr", "run_nerf_benchmark", "save_strip", "ssim"]

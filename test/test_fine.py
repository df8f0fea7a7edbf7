"""Fine level: keyframe patches located again in a moved real image (NCC + sub-pixel peak)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from nerf_loc_ros.datasets import load_dataset
from nerf_loc_ros.localization.fine import grey_image, locate_patches, sample_patches


@pytest.fixture(scope="module")
def kitchen(redkitchen_dir):
    return load_dataset(str(redkitchen_dir), "query").images[0]


def test_sample_patches_follows_the_pixel_convention(kitchen):
    grey = grey_image(kitchen)
    assert grey.shape == kitchen.shape[:2] and grey.dtype == torch.float32
    expected = cv2.cvtColor(kitchen, cv2.COLOR_RGB2GRAY).astype(np.float32)
    assert np.abs(grey.numpy() - expected).max() <= 1.0  # BT.601 luma, as OpenCV
    # the centre of pixel (col 40, row 30) is (40.5, 30.5): a 3x3 patch there is the image's 3x3 block
    patch = sample_patches(grey, np.array([[40.5, 30.5]]), 3)[0]
    assert torch.allclose(patch, grey[29:32, 39:42])
    # half a pixel to the right: the mean of two neighbouring columns
    half = sample_patches(grey, np.array([[41.0, 30.5]]), 3)[0]
    assert torch.allclose(half, (grey[29:32, 39:42] + grey[29:32, 40:43]) / 2, atol=1e-4)


def test_patches_are_found_again_in_a_moved_image(kitchen):
    # the query is the image moved by a sub-pixel shift; the search starts up to 2 px off the true position
    rng = np.random.default_rng(0)
    h, w = kitchen.shape[:2]
    p = rng.uniform(20, [w - 20, h - 20], (1500, 2))
    patches = sample_patches(grey_image(kitchen), p, 9).round().clamp(0, 255).to(torch.uint8)
    shift = np.array([1.3, -0.6])
    moved = cv2.warpAffine(kitchen, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (w, h), flags=cv2.INTER_LINEAR)
    grey = grey_image(moved)
    start = p + shift + rng.uniform(-2, 2, p.shape)
    uv, found = locate_patches(grey, start, patches, 3, 0.8)
    assert found.mean() > 0.7
    err = np.linalg.norm(uv[found] - (p[found] + shift), axis=1)
    assert np.median(err) < 0.35 and np.mean(err < 1.0) > 0.85, (np.median(err), np.mean(err < 1.0))
    assert np.array_equal(uv[~found], start[~found])  # not found: left where it was
    # exposure changes do not matter (normalised cross-correlation)
    uv2, found2 = locate_patches(grey * 0.6 + 30, start, patches, 3, 0.8)
    assert np.mean(found2 == found) > 0.99 and np.abs(uv2 - uv)[found & found2].max() < 0.02  # float32 rounding
    # patches of other places are rarely "found", and never beyond the search radius
    wrong = patches[rng.permutation(len(patches))]
    uv3, found3 = locate_patches(grey, start, wrong, 3, 0.8)
    assert found3.mean() < 0.25 * found.mean()
    assert np.abs(uv3 - start).max() <= 3 + 1  # search radius + rounding to the pixel grid


def test_flat_patches_and_empty_input(kitchen):
    grey = grey_image(kitchen)
    flat = torch.full((4, 9, 9), 128, dtype=torch.uint8)
    uv = np.array([[50.0, 50.0], [100.2, 80.7], [0.5, 0.5], [kitchen.shape[1] - 0.5, 10.0]])
    out, found = locate_patches(grey, uv, flat, 3, 0.8)
    assert not found.any() and np.array_equal(out, uv)  # no texture: nothing to align (also at the image border)
    out, found = locate_patches(grey, np.zeros((0, 2)), torch.zeros((0, 9, 9), dtype=torch.uint8), 3, 0.8)
    assert out.shape == (0, 2) and found.shape == (0,)

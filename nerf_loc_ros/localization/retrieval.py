"""Image retrieval: VLAD global descriptors over the backbone's keypoint descriptors, cosine top-k.

The vocabulary (k-means centroids) is learned per scene from keyframe descriptors at mapping time.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.vq import kmeans2

__all__ = ["learn_codebook", "vlad", "top_k"]


def learn_codebook(descriptors: np.ndarray, clusters: int = 32, seed: int = 0, max_samples: int = 50_000) -> np.ndarray:
    """k-means vocabulary ``[C x D]`` from L2-normalised descriptors ``[N x D]`` (subsampled to ``max_samples``)."""
    x = np.asarray(descriptors, np.float32)
    if len(x) < clusters:
        raise ValueError(f"need at least {clusters} descriptors for the retrieval vocabulary, got {len(x)}")
    rng = np.random.default_rng(seed)
    if len(x) > max_samples:
        x = x[rng.choice(len(x), max_samples, replace=False)]
    centroids, _ = kmeans2(x.astype(np.float64), clusters, minit="++", seed=seed, iter=20)
    c = centroids.astype(np.float32)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-8)


def vlad(descriptors: np.ndarray, codebook: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """VLAD of ``[N x D]`` descriptors: per-centroid residual sums, intra-normalised, signed sqrt, L2 ``[C*D]``."""
    x = np.asarray(descriptors, np.float32)
    c, d = codebook.shape
    out = np.zeros((c, d), np.float32)
    if len(x):
        assign = np.argmax(x @ codebook.T, axis=1)
        w = np.ones(len(x), np.float32) if weights is None else np.asarray(weights, np.float32)
        np.add.at(out, assign, (x - codebook[assign]) * w[:, None])
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)
    out = np.sign(out) * np.sqrt(np.abs(out))
    v = out.reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-8)


def top_k(query: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``[k]`` and cosine similarities of the ``k`` database rows most similar to ``query``."""
    sim = database @ query
    idx = np.argsort(-sim)[:k]
    return idx, sim[idx]

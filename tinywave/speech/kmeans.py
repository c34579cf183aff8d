"""k-means codebooks: fit with scikit-learn, assign by nearest centroid (vectorized).

A :class:`Codebook` optionally standardizes vectors with per-dimension statistics of the
training set before the nearest-centroid search (used for style features, whose
dimensions have unrelated scales).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N,) index of the nearest centroid (K, D) for each row of x (N, D), squared L2.

    Fast path: ``|c|^2 - 2 x.c`` in float64 (the ``|x|^2`` term does not change the argmin).
    """
    if len(x) == 0:
        return np.zeros(0, np.int64)
    c = centroids.astype(np.float64, copy=False)
    scores = (c * c).sum(axis=1)[None, :] - 2.0 * (x.astype(np.float64, copy=False) @ c.T)  # (N, K)
    return scores.argmin(axis=1).astype(np.int64)


@dataclass
class Codebook:
    """Centroids (K, D) and optional standardization (mean, scale), each (D,)."""

    centroids: np.ndarray
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def n_codes(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def assign(self, x: np.ndarray) -> np.ndarray:
        """(N,) codes of vectors x (N, D)."""
        if x.ndim != 2 or (len(x) and x.shape[1] != self.dim):
            raise ValueError(f"expected vectors of shape (N, {self.dim}), got {x.shape}; the features do not match this codebook")
        if self.mean is not None:
            x = (x - self.mean) / self.scale
        return nearest_centroid(x, self.centroids)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "kmeans", "n_codes": self.n_codes, "dim": self.dim, "standardize": self.mean is not None}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"centroids": self.centroids}
        if self.mean is not None:
            out |= {"mean": self.mean, "scale": self.scale}
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Codebook":
        book = cls(arrays["centroids"].astype(np.float32), arrays.get("mean"), arrays.get("scale"))
        if book.n_codes != spec.get("n_codes", book.n_codes):
            raise ValueError(f"codebook holds {book.n_codes} centroids but its settings say {spec['n_codes']}; the tokenizer directory is inconsistent")
        return book

    @classmethod
    def fit(cls, x: np.ndarray, k: int, seed: int, max_points: int = 100_000, standardize: bool = False,
            max_iter: int = 100, *, what: str = "vectors") -> "Codebook":
        """k-means++ then Lloyd (scikit-learn KMeans, one init) on at most ``max_points`` rows."""
        from sklearn.cluster import KMeans  # lazy: scikit-learn is heavy (~2 s); only fitting a codebook needs it, not encoding

        if k < 1:
            raise ValueError(f"the number of {what} codes must be at least 1, got {k}")
        if len(x) < k:
            raise ValueError(f"only {len(x)} {what} to fit {k} codes; use more audio (max_seconds) or fewer codes")
        rng = np.random.default_rng(seed)
        if len(x) > max_points:
            x = x[np.sort(rng.choice(len(x), max_points, replace=False))]
        x = x.astype(np.float64)
        mean = scale = None
        if standardize:
            mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-5
            x = (x - mean) / scale
            mean, scale = mean.astype(np.float32), scale.astype(np.float32)
        km = KMeans(n_clusters=k, n_init=1, max_iter=max_iter, random_state=seed).fit(x)
        return cls(km.cluster_centers_.astype(np.float32), mean, scale)

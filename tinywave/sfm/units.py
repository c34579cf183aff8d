"""Frame-level unit targets for HuBERT's first iteration: MFCC + k-means.

``MfccUnits`` fits k-means (scikit-learn) on 39-dim MFCC (+ deltas) frames of 25 ms
every 10 ms and labels any waveform. ``SharedUnits`` wraps a trained speech tokenizer
directory (``tinywave units train``, ``tinywave.speech.tokenizer.SpeechTokenizer``) and
uses its ``hubert`` stream instead. Either way labels come at their own rate and are
mapped onto the encoder's frames with ``align_labels``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.fft import dct

SAMPLE_RATE = 16000


class UnitLabeler(Protocol):
    rate: float
    n_units: int

    def labels(self, wav: np.ndarray) -> np.ndarray: ...


def _mel_filterbank(n_fft: int, n_mels: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(20.0), mel(rate / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None] - lower) / (center - lower)
    down = (upper - bins[None]) / (upper - center)
    return np.clip(np.minimum(up, down), 0.0, None)


def mfcc(wav: np.ndarray, n_mfcc: int = 13, n_mels: int = 40, win: int = 400, hop: int = 160) -> np.ndarray:
    """(T, 3 * n_mfcc) MFCC with deltas and delta-deltas; T = floor((N - win) / hop) + 1."""
    wav = np.asarray(wav, dtype=np.float32)
    if len(wav) < win:
        wav = np.pad(wav, (0, win - len(wav)))
    n = (len(wav) - win) // hop + 1
    frames = np.lib.stride_tricks.sliding_window_view(wav, win)[::hop][:n] * np.hamming(win)  # (T, win)
    power = np.abs(np.fft.rfft(frames, n=512)) ** 2  # (T, 257)
    logmel = np.log(power @ _mel_filterbank(512, n_mels).T + 1e-6)  # (T, n_mels)
    coeffs = dct(logmel, type=2, axis=1, norm="ortho")[:, :n_mfcc]
    d1 = np.gradient(coeffs, axis=0) if n > 1 else np.zeros_like(coeffs)
    d2 = np.gradient(d1, axis=0) if n > 1 else np.zeros_like(coeffs)
    return np.concatenate([coeffs, d1, d2], axis=1).astype(np.float32)


def align_labels(labels: np.ndarray, n_frames: int, label_rate: float, frame_rate: float) -> np.ndarray:
    """Labels at ``label_rate`` -> one per encoder frame (nearest label at each frame's centre)."""
    t = (np.arange(n_frames) + 0.5) / frame_rate
    idx = np.clip((t * label_rate).astype(np.int64), 0, len(labels) - 1)
    return labels[idx]


class MfccUnits:
    """k-means over MFCC frames: the built-in first-iteration HuBERT targets."""

    rate = SAMPLE_RATE / 160.0

    def __init__(self, centroids: np.ndarray, mean: np.ndarray, std: np.ndarray):
        self.centroids, self.mean, self.std = centroids, mean, std
        self.n_units = len(centroids)

    @classmethod
    def fit(cls, wavs: list[np.ndarray], n_units: int, seed: int = 0, max_frames: int = 100_000) -> "MfccUnits":
        from sklearn.cluster import MiniBatchKMeans

        feats = np.concatenate([mfcc(w) for w in wavs])
        rng = np.random.default_rng(seed)
        if len(feats) > max_frames:
            feats = feats[rng.choice(len(feats), max_frames, replace=False)]
        if len(feats) < n_units:
            raise ValueError(f"only {len(feats)} MFCC frames to fit {n_units} units; use more audio or fewer units")
        mean, std = feats.mean(0), feats.std(0) + 1e-5
        km = MiniBatchKMeans(n_clusters=n_units, random_state=seed, n_init=3, batch_size=4096).fit((feats - mean) / std)
        return cls(km.cluster_centers_.astype(np.float32), mean, std)

    def labels(self, wav: np.ndarray) -> np.ndarray:
        x = (mfcc(wav) - self.mean) / self.std  # (T, 39)
        d = (x**2).sum(1, keepdims=True) - 2 * x @ self.centroids.T + (self.centroids**2).sum(1)[None]
        return d.argmin(1).astype(np.int64)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name in ("centroids", "mean", "std"):
            np.save(path / f"{name}.npy", getattr(self, name), allow_pickle=False)
        (path / "units.json").write_text(json.dumps({"kind": "mfcc-kmeans", "n_units": self.n_units, "rate": self.rate}))

    @classmethod
    def load(cls, path: str | Path) -> "MfccUnits":
        path = Path(path)
        arrays = [np.load(path / f"{n}.npy", allow_pickle=False) for n in ("centroids", "mean", "std")]
        return cls(*arrays)


class SharedUnits:
    """The ``hubert`` stream of a ``tinywave units train`` speech tokenizer directory."""

    def __init__(self, path: str | Path):
        from tinywave.speech.tokenizer import SpeechTokenizer  # another stage's public API (docs/FORMATS.md)

        self.tok = SpeechTokenizer.load(path)
        self.rate = float(self.tok.rates["hubert"])
        self.n_units = int(getattr(self.tok, "n_units", 0) or 0)

    def labels(self, wav: np.ndarray) -> np.ndarray:
        return np.asarray(self.tok.encode_units(wav)["hubert"], dtype=np.int64)

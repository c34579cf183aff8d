"""Built-in phonetic features: MFCC or log-mel frames at 100 Hz, pooled to the unit rate.

``mfcc_kmeans``: MFCC (c0..c{n_mfcc-1}) + deltas; ``logmel_kmeans``: log-mel + deltas.
Frames are mean/variance normalized per utterance (removes the voice's spectral tilt
and loudness), then averaged over ``100 / rate`` consecutive frames. A waveform of ``n``
samples gives ``n // (16000 / rate)`` unit frames (a partial last one is dropped, as
HuBERT's convolutions do).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinywave.audio.features import FRAME_RATE, HOP, Analysis, cmvn, deltas, mfcc, pool

FRAME_KINDS = ("mfcc_kmeans", "logmel_kmeans")


def pool_size(rate: float) -> int:
    """100 Hz frames per unit; the rate must divide 100 (50, 25, 20, 12.5, 10, ...)."""
    size = FRAME_RATE / rate if rate > 0 else 0.0
    if rate <= 0 or abs(size - round(size)) > 1e-9 or round(size) < 1:
        raise ValueError(f"unit rate {rate} Hz must divide 100 Hz (e.g. 50, 25, 20, 12.5, 10); pick such a rate")
    return int(round(size))


@dataclass(frozen=True)
class FrameFeatures:
    kind: str = "mfcc_kmeans"
    rate: float = 25.0
    n_mels: int = 40
    n_mfcc: int = 20
    deltas: bool = True

    def __post_init__(self) -> None:
        if self.kind not in FRAME_KINDS:
            raise ValueError(f"built-in unit kind {self.kind!r} is not known; choose one of {FRAME_KINDS}")
        pool_size(self.rate)
        if self.kind == "mfcc_kmeans" and not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"n_mfcc={self.n_mfcc} must be between 1 and n_mels={self.n_mels}")

    def frames(self, an: Analysis) -> np.ndarray:
        """(T100, D) per-frame features before normalization and pooling."""
        x = an.log_mel(self.n_mels)
        if self.kind == "mfcc_kmeans":
            x = mfcc(x, self.n_mfcc)
        return np.concatenate([x, deltas(x)], axis=1) if self.deltas else x

    def vectors(self, an: Analysis) -> np.ndarray:
        """(n // hop, D) normalized, pooled vectors, one per unit frame."""
        size = pool_size(self.rate)
        n_units = len(an.wav) // (size * HOP)
        x = cmvn(self.frames(an))  # (ceil(n / 160), D)
        return pool(x[: n_units * size], size)  # (n_units, D)

    def to_spec(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "FrameFeatures":
        return cls(**spec)

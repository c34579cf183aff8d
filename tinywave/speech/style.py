"""Style features: acoustic statistics pooled over consecutive 1-second windows.

Per window: mean and standard deviation of the log-mel energies (timbre, loudness,
their variability) and of the interpolated log2 F0 (register, intonation range), and
the voiced fraction. Not normalized per utterance: voice and register are what style
describes. The codebook standardizes each dimension with training statistics.
One code per started second: ``ceil(n / 16000)`` codes, the last partial window kept
(SpiritLM), never deduplicated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinywave.audio.f0 import F0_RATE, F0Settings, interpolate_log_f0
from tinywave.audio.features import FRAME_RATE, SAMPLE_RATE, Analysis, window_stats


@dataclass(frozen=True)
class StyleFeatures:
    seconds: float = 1.0  # window length: 1 s = 1 Hz codes
    n_mels: int = 40
    f0: F0Settings = field(default_factory=F0Settings)
    kind: str = "pooled_kmeans"

    def __post_init__(self) -> None:
        frames = self.seconds * FRAME_RATE
        if self.seconds <= 0 or abs(frames - round(frames)) > 1e-9:
            raise ValueError(f"style window {self.seconds} s must be a positive multiple of 10 ms (1.0 gives SpiritLM's 1 Hz)")

    @property
    def rate(self) -> float:
        return 1.0 / self.seconds

    def count(self, n_samples: int) -> int:
        return math.ceil(n_samples / (self.seconds * SAMPLE_RATE))

    def vectors(self, an: Analysis) -> np.ndarray:
        """(ceil(seconds / window), 2 * n_mels + 3) pooled statistics per window."""
        n = self.count(len(an.wav))
        mel_mean, mel_std = window_stats(an.log_mel(self.n_mels), int(round(self.seconds * FRAME_RATE)))
        f0 = an.f0(self.f0)
        lf0, voiced = interpolate_log_f0(f0)
        f0_size = int(round(self.seconds * F0_RATE))
        lf0_mean, lf0_std = window_stats(lf0[:, None], f0_size)
        vuv_mean, _ = window_stats(voiced[:, None].astype(np.float32), f0_size)
        return np.concatenate([mel_mean[:n], mel_std[:n], lf0_mean[:n], lf0_std[:n], vuv_mean[:n]], axis=1)

    def to_spec(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "StyleFeatures":
        return cls(**{**spec, "f0": F0Settings(**spec.get("f0", {}))})

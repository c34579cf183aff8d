"""Pitch features: windows of mean-normalized log-F0 and voicing, one per pitch code.

F0 at 200 Hz (:mod:`tinywave.audio.f0`), interpolated over unvoiced frames and
normalized by the utterance's mean log-F0 (so a code describes intonation, not the
voice's register). ``window`` consecutive frames (16 = 80 ms, 12.5 Hz as SpiritLM) make
one vector: the contour in octaves and the voicing flags scaled by ``voicing_weight``.
A waveform of ``n`` samples gives ``(n // 80 + 1) // window`` codes (SpiritLM's count).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinywave.audio.f0 import F0_RATE, F0Settings, normalized_log_f0
from tinywave.audio.features import Analysis


@dataclass(frozen=True)
class PitchFeatures:
    window: int = 16  # 200 Hz frames per code
    voicing_weight: float = 0.5
    f0: F0Settings = field(default_factory=F0Settings)
    kind: str = "f0_kmeans"

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"pitch window={self.window} must be at least 1 frame (16 frames = 12.5 Hz)")

    @property
    def rate(self) -> float:
        return F0_RATE / self.window

    def vectors(self, an: Analysis) -> np.ndarray:
        """(T200 // window, 2 * window) contour (octaves) and weighted voicing per window."""
        lf0, voiced = normalized_log_f0(an.f0(self.f0))
        n = len(lf0) // self.window
        contour = lf0[: n * self.window].reshape(n, self.window)
        voicing = voiced[: n * self.window].reshape(n, self.window).astype(np.float32) * self.voicing_weight
        return np.concatenate([contour, voicing], axis=1)

    def to_spec(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "PitchFeatures":
        return cls(**{**spec, "f0": F0Settings(**spec.get("f0", {}))})

"""Frame-level unit targets for HuBERT-style masked prediction.

``SharedUnits`` wraps a speech tokenizer directory (``tinywave units train``,
``tinywave.speech.tokenizer.SpeechTokenizer``, docs/FORMATS.md) and labels a waveform
with its ``hubert`` stream (MFCC k-means for HuBERT's first iteration, or a previous
HuBERT's layer for the next). Labels come at the tokenizer's rate and are mapped onto
the encoder's frames with ``align_labels``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from tinywave.speech.tokenizer import SpeechTokenizer  # another stage's public API (docs/FORMATS.md)


class UnitLabeler(Protocol):
    rate: float
    n_units: int

    def labels(self, wav: np.ndarray) -> np.ndarray: ...


def align_labels(labels: np.ndarray, n_frames: int, label_rate: float, frame_rate: float) -> np.ndarray:
    """Labels at ``label_rate`` -> one per encoder frame (nearest label at each frame's centre)."""
    t = (np.arange(n_frames) + 0.5) / frame_rate
    idx = np.clip((t * label_rate).astype(np.int64), 0, len(labels) - 1)
    return labels[idx]


class SharedUnits:
    """The ``hubert`` stream of a ``tinywave units train`` speech tokenizer directory."""

    def __init__(self, path: str | Path):
        self.tok = SpeechTokenizer.load(path)
        self.rate = float(self.tok.rates["hubert"])
        self.n_units = int(self.tok.n_units)

    def labels(self, wav: np.ndarray) -> np.ndarray:
        return np.asarray(self.tok.encode_units(wav)["hubert"], dtype=np.int64)

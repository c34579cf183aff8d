"""One interface for every code stream: 16 kHz waveform -> integer codes at a stated rate.

An extractor is *features* (settings only: MFCC frames, a HuBERT layer, F0 windows,
pooled spectra) plus a *quantizer* (k-means codebook or SpiritLM's linear head). Features
compute vectors from an :class:`~tinywave.audio.features.Analysis`, which memoizes what
several streams share; the quantizer maps vectors to codes.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from tinywave.audio.features import Analysis


class Extractor(Protocol):
    """What the tokenizer needs from a stream."""

    rate: float  # codes per second

    def encode(self, wav: np.ndarray) -> np.ndarray:  # (T_codes,) int64
        ...


class Features(Protocol):
    kind: str
    rate: float

    def vectors(self, an: Analysis) -> np.ndarray:  # (T_codes, D) float
        ...

    def to_spec(self) -> dict[str, Any]:
        ...


class Quantizer(Protocol):
    n_codes: int

    def assign(self, x: np.ndarray) -> np.ndarray:  # (T,) int64 from (T, D)
        ...

    def to_spec(self) -> dict[str, Any]:
        ...

    def arrays(self) -> dict[str, np.ndarray]:
        ...


class QuantizedExtractor:
    """Features followed by a quantizer; implements :class:`Extractor`."""

    def __init__(self, features: Features, quantizer: Quantizer):
        f_dim, q_dim = getattr(features, "dim", None), getattr(quantizer, "dim", None)
        if f_dim is not None and q_dim is not None and f_dim != q_dim:
            raise ValueError(f"{features.kind} features are {f_dim}-dimensional but the quantizer expects {q_dim}; use a quantizer made for this model and layer")
        self.features = features
        self.quantizer = quantizer

    @property
    def kind(self) -> str:
        return self.features.kind

    @property
    def rate(self) -> float:
        return self.features.rate

    @property
    def n_codes(self) -> int:
        return self.quantizer.n_codes

    def codes(self, an: Analysis) -> np.ndarray:
        """(T_codes,) int64 codes of an analysed waveform."""
        return self.quantizer.assign(self.features.vectors(an))

    def encode(self, wav: np.ndarray) -> np.ndarray:
        return self.codes(Analysis(wav))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "rate": self.rate, "features": self.features.to_spec(), "quantizer": self.quantizer.to_spec()}

    def arrays(self) -> dict[str, np.ndarray]:
        return self.quantizer.arrays()

    def __repr__(self) -> str:
        return f"QuantizedExtractor({self.kind}, {self.rate} Hz, {self.n_codes} codes)"

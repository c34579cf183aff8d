"""Synthetic room impulse responses and SALMon's reverberation mix.

An impulse response is a direct path, a few early reflections and an exponentially
decaying noise tail whose high frequencies die faster; ``rt60`` (seconds to decay by
60 dB) sets the room size. Rooms are mixed as SALMon does: 0.2 * conv + 0.8 * dry.
"""

from __future__ import annotations

import numpy as np

from tinywave.audio.io import SAMPLE_RATE
from tinywave.corpus.noise import lowpass, shape_spectrum

# rooms by size: rt60 ranges (seconds); a consistency negative switches to another size
ROOM_SIZES = {"small": (0.15, 0.35), "medium": (0.45, 0.8), "large": (1.0, 1.8)}
WET, DRY = 0.2, 0.8


def impulse_response(seed: int, rt60: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(L,) float32 impulse response with unit energy; the same (seed, rt60) gives the same one."""
    if rt60 <= 0:
        raise ValueError(f"rt60={rt60} must be positive (seconds)")
    rng = np.random.default_rng([seed, int(rt60 * 1000)])
    n = int(min(1.2 * rt60, 2.0) * rate)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    dark = shape_spectrum(tail, rate, lowpass(4000.0, order=1)) * np.exp(-3.0 * t / rt60)  # highs decay faster
    h = 0.3 * tail + dark
    h[0] = 1.0
    for _ in range(int(rng.integers(4, 10))):
        at = int(rng.uniform(0.002, 0.04) * rate)
        h[min(at, n - 1)] += rng.uniform(0.2, 0.7) * rng.choice([-1.0, 1.0])
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def reverberate(dry: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """SALMon's room mix of a (T,) signal, same length: WET * conv(dry, rir) + DRY * dry."""
    n = 1 << (len(dry) + len(rir) - 2).bit_length()  # linear (not circular) convolution, fast length
    wet = np.fft.irfft(np.fft.rfft(dry.astype(np.float64), n) * np.fft.rfft(rir.astype(np.float64), n), n)[: len(dry)]
    return (WET * wet + DRY * dry).astype(np.float32)

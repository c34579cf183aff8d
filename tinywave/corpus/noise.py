"""Synthetic background noise families, seeded, and mixing at a signal-to-noise ratio.

A *family* is a noise domain (SALMon's background class); the seed picks one clip of
it (its colour, hum frequency, talkers, click rate...). Every clip has unit RMS.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinywave.audio.io import SAMPLE_RATE

# SALMon's SNR bands (dB): a band is drawn first, then a value inside it
SNR_BANDS = ((0.01, 0.02), (0.1, 0.2), (1.0, 2.0), (5.0, 10.0))


def shape_spectrum(x: np.ndarray, rate: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Filter ``x`` in the frequency domain: multiply its spectrum by ``gain(freqs_hz)``.

    The transform is zero-padded to a power of two (fast for any length)."""
    n = 1 << max(0, len(x) - 1).bit_length()
    f = np.fft.rfftfreq(n, 1.0 / rate)
    return np.fft.irfft(np.fft.rfft(x, n) * gain(f), n)[: len(x)]


def resonance(fc: float, bandwidth: float) -> Callable[[np.ndarray], np.ndarray]:
    """Magnitude response of a formant-like resonance at ``fc`` Hz."""
    return lambda f: 1.0 / (1.0 + ((f - fc) / (bandwidth / 2)) ** 2)


def lowpass(cutoff: float, order: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    return lambda f: 1.0 / np.sqrt(1.0 + (f / cutoff) ** (2 * order))


def _unit(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return (x / rms).astype(np.float32) if rms > 0 else x.astype(np.float32)


def coloured(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Noise with a 1/f^alpha power spectrum: alpha ~0 white, ~1 pink, ~2 brown."""
    alpha = rng.choice([0.0, 1.0, 2.0]) + rng.uniform(-0.3, 0.3)
    floor = rate / max(n, 2)  # the lowest resolvable frequency stands in for 0 Hz
    return shape_spectrum(rng.standard_normal(n), rate, lambda f: np.maximum(f, floor) ** (-alpha / 2))


def hum(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and harmonics with slow amplitude wobble, a little hiss."""
    f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
    t = np.arange(n) / rate
    x = np.zeros(n)
    for h in range(1, 9):
        x += rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    wobble = 1.0 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    return x * wobble + 0.02 * rng.standard_normal(n)


def babble(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Babble-like: several 'talkers', each a buzz + hiss source through two moving formants,
    switched on and off at syllable rate."""
    t = np.arange(n) / rate
    out = np.zeros(n)
    for _ in range(int(rng.integers(4, 9))):
        f0 = rng.uniform(90, 240)
        phase = f0 * t * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
        src = 2.0 * (phase % 1.0) - 1.0 + 0.5 * rng.standard_normal(n)  # sawtooth buzz + hiss
        f1, f2 = rng.uniform(300, 900), rng.uniform(900, 2500)
        q1, q2 = rng.uniform(4, 10), rng.uniform(4, 10)
        first, second = resonance(f1, f1 / q1), resonance(f2, f2 / q2)
        voice = shape_spectrum(src, rate, lambda f: first(f) + second(f))
        syll = rng.uniform(3.0, 6.0)
        env = np.clip(np.sin(2 * np.pi * syll * t + rng.uniform(0, 2 * np.pi)), 0, None) ** 2
        out += voice * env * rng.uniform(0.5, 1.0)
    return out


def clicks(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Random clicks and ticks: short ringing bursts at a random rate over faint noise."""
    x = 0.01 * rng.standard_normal(n)
    count = int(rng.uniform(2, 20) * n / rate) + 1
    ring = int(rng.uniform(0.002, 0.008) * rate)
    tail = np.exp(-np.arange(ring) / (ring / 4)) * np.sin(2 * np.pi * rng.uniform(1000, 4000) * np.arange(ring) / rate)
    for at in rng.integers(0, max(1, n - ring), size=count):
        x[at : at + ring] += rng.uniform(0.3, 1.0) * rng.choice([-1, 1]) * tail[: n - at]
    return x


def wind(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Wind-like: low-passed noise with slow gusts."""
    x = shape_spectrum(rng.standard_normal(n), rate, lowpass(rng.uniform(200, 800)))
    t = np.arange(n) / rate
    gust = 1.0 + 0.6 * np.sin(2 * np.pi * rng.uniform(0.1, 0.6) * t + rng.uniform(0, 2 * np.pi))
    return x * gust


FAMILIES = {"coloured": coloured, "hum": hum, "babble": babble, "clicks": clicks, "wind": wind}


def make_noise(family: str, seed: int, n: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n,) float32 clip of a noise family with unit RMS; the same (family, seed) gives the same clip."""
    if family not in FAMILIES:
        raise ValueError(f"noise family {family!r} is not known; choose one of {sorted(FAMILIES)}")
    rng = np.random.default_rng([seed, sorted(FAMILIES).index(family)])
    return _unit(FAMILIES[family](rng, n, rate))


def noise_gain(speech: np.ndarray, snr_db: float) -> float:
    """Gain for a unit-RMS noise so that speech power / noise power = ``snr_db``."""
    power = float(np.mean(speech.astype(np.float64) ** 2))
    return float(np.sqrt(power / 10 ** (snr_db / 10)))


def draw_snr(rng: np.random.Generator) -> float:
    lo, hi = SNR_BANDS[int(rng.integers(len(SNR_BANDS)))]
    return float(rng.uniform(lo, hi))

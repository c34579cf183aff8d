"""F0 at 200 frames/s (5 ms hop) with WORLD's DIO + StoneMask (pyworld).

Why DIO: measured by ``benchmarks/tokenizer_throughput.py`` on this 2-core machine (shared,
load ~6), one process: DIO + StoneMask runs at 40x real time with ``speed=1``, 122x
with ``speed=2`` and 160x with ``speed=4`` (the default); WORLD's Harvest at 4x.

Accuracy, measured by ``benchmarks/f0_accuracy.py`` (figures and conditions in
``benchmarks/results/f0_accuracy.json``). On 120 s of synthetic speech-like signal with
known F0 and voicing (gliding harmonic tones from 70-350 Hz with vibrato, between
stretches of loud white noise or near-silence), ``speed=4`` gets 98.3% of the voicing
decisions right (``speed=1``: 98.1%): it misses 0.1% of the voiced frames and voices
7.7% of the noise frames and 3.9% of the near-silent ones. On frames voiced in both, its
F0 is off by 0.2 cents (median) and 0.6 cents (90th percentile), with 0.0% gross errors
(off by more than 20%); clean tones bound the error from below, real voices add jitter
and breathiness. Against ``speed=1`` on 48 s of espeak-ng speech (4 voices), ``speed=4``
keeps 98.6% of the voicing decisions (99.3% on the synthetic set) and the F0 of frames
voiced in both within 0.06 cents (90th percentile); dropping StoneMask would be faster
still but moves the F0 by 38 cents (90th percentile). pYIN was not measured (librosa is
not installed); SpiritLM's FCPE and pYAAPT are not available offline. Only the 200 Hz
rate and the interpolation over unvoiced frames matter to the pitch quantizer.

A waveform of ``n`` samples gives ``n // 80 + 1`` frames (SpiritLM's count); frame ``i``
is centred on sample ``80 i``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

F0_HOP = 80  # samples at 16 kHz: 200 frames per second
F0_RATE = 200.0


@dataclass(frozen=True)
class F0Settings:
    floor: float = 50.0  # Hz
    ceil: float = 800.0  # Hz
    speed: int = 4  # DIO's internal decimation (1 = none); see the module docstring
    refine: bool = True  # StoneMask refinement


def _pyworld():
    with warnings.catch_warnings():  # pyworld imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        import pyworld  # lazy: pulls in pkg_resources (~0.1 s, a DeprecationWarning silenced here); only F0 extraction needs it

    return pyworld


def frame_count(n_samples: int) -> int:
    return n_samples // F0_HOP + 1


def extract_f0(wav: np.ndarray, settings: F0Settings = F0Settings(), rate: int = 16000) -> np.ndarray:
    """(n // 80 + 1,) F0 in Hz of a 16 kHz waveform; 0 marks unvoiced frames."""
    pw = _pyworld()
    x = np.ascontiguousarray(wav, dtype=np.float64)
    period_ms = 1000.0 * F0_HOP / rate
    f0, times = pw.dio(x, rate, f0_floor=settings.floor, f0_ceil=settings.ceil, frame_period=period_ms, speed=settings.speed)
    if settings.refine:
        f0 = pw.stonemask(x, f0, times, rate)
    n = frame_count(len(wav))
    f0 = np.pad(f0[:n], (0, max(0, n - len(f0))))  # pyworld's count equals n; guard against drift
    return f0.astype(np.float32)


def interpolate_log_f0(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log2 F0 with unvoiced frames linearly interpolated, voiced mask), both (T,).

    Edges hold the first / last voiced value; with no voiced frame the contour is 0.
    """
    voiced = f0 > 0
    if not voiced.any():
        return np.zeros(len(f0), np.float32), voiced
    idx = np.flatnonzero(voiced)
    lf0 = np.interp(np.arange(len(f0)), idx, np.log2(f0[idx]))
    return lf0.astype(np.float32), voiced


def normalized_log_f0(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated log2 F0 minus the utterance's mean over voiced frames (octaves), voiced mask."""
    lf0, voiced = interpolate_log_f0(f0)
    if voiced.any():
        lf0 = lf0 - lf0[voiced].mean()
    return lf0, voiced

"""Frame-level acoustic features of 16 kHz audio at 100 frames/s, vectorized numpy.

Frame ``i`` covers samples ``[160 i - 120, 160 i + 280)`` (25 ms Hamming window centred on
the 10 ms hop ``[160 i, 160 i + 160)``); a waveform of ``n`` samples has ``ceil(n / 160)``
frames, so every hop interval, including a partial last one, has a frame.

:class:`Analysis` wraps one waveform and memoizes what several extractors share (the
power spectrum, log-mel energies, F0), so the unit, pitch and style streams of a
tokenizer compute each of them once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft

from tinywave.audio.f0 import extract_f0

SAMPLE_RATE = 16000
HOP = 160  # 10 ms: 100 frames per second
WIN = 400  # 25 ms
N_FFT = 512
FRAME_RATE = SAMPLE_RATE / HOP
PRE_EMPHASIS = 0.97
LOG_FLOOR = 1e-10


def frame_count(n_samples: int) -> int:
    return math.ceil(n_samples / HOP)


@functools.lru_cache(maxsize=None)
def _window() -> np.ndarray:
    return np.hamming(WIN).astype(np.float32)


def power_spectrum(wav: np.ndarray) -> np.ndarray:
    """(T, N_FFT // 2 + 1) power spectrum of pre-emphasized, Hamming-windowed frames."""
    wav = np.asarray(wav, dtype=np.float32)
    n = frame_count(len(wav))
    if n == 0:
        return np.zeros((0, N_FFT // 2 + 1), np.float32)
    emph = np.empty_like(wav)
    emph[0] = wav[0]
    emph[1:] = wav[1:] - PRE_EMPHASIS * wav[:-1]
    left = (WIN - HOP) // 2
    right = (n - 1) * HOP + WIN - left - len(wav)
    padded = np.pad(emph, (left, right))
    frames = np.lib.stride_tricks.sliding_window_view(padded, WIN)[::HOP]  # (T, WIN)
    spec = scipy.fft.rfft(frames * _window(), n=N_FFT, overwrite_x=True)  # (T, N_FFT//2+1) complex64 (3x numpy's complex128)
    return spec.real**2 + spec.imag**2


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=None)
def mel_filterbank(n_mels: int, fmin: float = 20.0, fmax: float = SAMPLE_RATE / 2) -> np.ndarray:
    """(N_FFT // 2 + 1, n_mels) triangular filters on the HTK mel scale."""
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    rising = (freqs[None] - lo) / (mid - lo)
    falling = (hi - freqs[None]) / (hi - mid)
    fb = np.clip(np.minimum(rising, falling), 0.0, None)  # (n_mels, F)
    return fb.T.astype(np.float32)


@functools.lru_cache(maxsize=None)
def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_in, n_out) orthonormal DCT-II basis: ``x @ dct_matrix`` gives the first n_out coefficients."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def log_mel(power: np.ndarray, n_mels: int) -> np.ndarray:
    """(T, n_mels) natural-log mel energies of a power spectrum (T, F)."""
    return np.log(np.maximum(power @ mel_filterbank(n_mels), LOG_FLOOR))


def mfcc(logmel: np.ndarray, n_mfcc: int) -> np.ndarray:
    """(T, n_mfcc) cepstral coefficients (c0 included) of log-mel energies (T, n_mels)."""
    if n_mfcc > logmel.shape[1]:
        raise ValueError(f"n_mfcc={n_mfcc} exceeds n_mels={logmel.shape[1]}; lower n_mfcc or raise n_mels")
    return logmel @ dct_matrix(logmel.shape[1], n_mfcc)


def deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """(T, D) regression deltas over +-``width`` frames, edges repeated."""
    if len(x) == 0:
        return x.copy()
    padded = np.pad(x, ((width, width), (0, 0)), mode="edge")
    num = sum(k * (padded[width + k : width + k + len(x)] - padded[width - k : width - k + len(x)]) for k in range(1, width + 1))
    return (num / (2 * sum(k * k for k in range(1, width + 1)))).astype(x.dtype)


def cmvn(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Mean and variance normalization of (T, D) over time (one utterance)."""
    if len(x) == 0:
        return x.copy()
    return ((x - x.mean(axis=0)) / (x.std(axis=0) + eps)).astype(x.dtype)


def pool(x: np.ndarray, size: int) -> np.ndarray:
    """(T // size, D) means of consecutive blocks of ``size`` frames; a partial tail is dropped."""
    n = len(x) // size
    return x[: n * size].reshape(n, size, *x.shape[1:]).mean(axis=1)


def window_stats(x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of (T, D) over windows of ``size`` frames, keeping a partial last window.

    Both are (ceil(T / size), D).
    """
    n = math.ceil(len(x) / size)
    pad = n * size - len(x)
    counts = np.full(n, size, np.float64)
    if pad:
        counts[-1] = size - pad
    padded = np.pad(x.astype(np.float64), ((0, pad), (0, 0))).reshape(n, size, -1)  # (n, size, D)
    mean = padded.sum(axis=1) / counts[:, None]
    sq = (padded**2).sum(axis=1) / counts[:, None]
    std = np.sqrt(np.maximum(sq - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


class Analysis:
    """One 16 kHz mono waveform and its memoized features (shared by all streams)."""

    def __init__(self, wav: np.ndarray):
        wav = np.asarray(wav)
        if wav.ndim != 1:
            raise ValueError(f"expected a 1-D mono waveform, got shape {wav.shape}; average the channels first (tinywave.audio.io.to_mono)")
        self.wav = wav.astype(np.float32, copy=False)
        self._memo: dict[Any, Any] = {}

    @property
    def seconds(self) -> float:
        return len(self.wav) / SAMPLE_RATE

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def power(self) -> np.ndarray:
        return self.memo("power", lambda: power_spectrum(self.wav))  # (T100, 257)

    def log_mel(self, n_mels: int) -> np.ndarray:
        return self.memo(("log_mel", n_mels), lambda: log_mel(self.power(), n_mels))  # (T100, n_mels)

    def f0(self, settings: Any) -> np.ndarray:
        """(T200,) F0 in Hz (0 = unvoiced) for ``tinywave.audio.f0.F0Settings``."""
        return self.memo(("f0", settings), lambda: extract_f0(self.wav, settings))

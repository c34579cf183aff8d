"""Spectral features, training losses and quality metrics for vocoders.

- ``MelSpec``: log-mel spectrogram (torch, differentiable) with an HTK mel filterbank.
- ``stft_loss`` / ``multi_resolution_stft_loss``: spectral convergence + log-magnitude L1.
- ``mel_cepstral_distortion``: MCD in dB between two waveforms on mel cepstra c1..c24 of
  the WORLD spectral envelope (c0, the energy, left out as is customary), over the
  reference's speech frames, DTW-aligned.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

# (n_fft, hop, win) resolutions of the multi-resolution STFT loss, for 16 kHz audio
STFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale, area-normalized: (n_mels, n_fft // 2 + 1)."""
    fmax = fmax or sample_rate / 2
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lower) / (center - lower)
    down = (upper - freqs[None]) / (upper - center)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb *= (2.0 / (upper - lower))  # equal area per filter (Slaney normalization)
    return fb.astype(np.float32)


class MelSpec(torch.nn.Module):
    """Log-mel spectrogram: (B, T) waveform -> (B, n_mels, frames), natural log of mel amplitude."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop: int = 160, win: int = 640, n_mels: int = 80, *,
                 fmin: float = 0.0, fmax: float | None = 8000.0):
        super().__init__()
        self.n_fft, self.hop, self.win = n_fft, hop, win
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)), persistent=False)
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, F, frames)
        spec = torch.stft(wav, self.n_fft, self.hop, self.win, self.window, center=True, return_complex=True)
        return spec.abs()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.fb, self.magnitude(wav))  # (B, M, frames)
        return torch.log(torch.clamp(mel, min=1e-5))


def stft_loss(pred: torch.Tensor, target: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Spectral convergence + L1 of log magnitudes at one resolution; (B, T) inputs."""
    window = torch.hann_window(win, device=pred.device)
    p = torch.stft(pred, n_fft, hop, win, window, return_complex=True).abs().clamp(min=1e-7)  # (B, F, frames)
    t = torch.stft(target, n_fft, hop, win, window, return_complex=True).abs().clamp(min=1e-7)
    convergence = torch.linalg.norm(t - p, dim=(1, 2)) / torch.linalg.norm(t, dim=(1, 2)).clamp(min=1e-7)
    return convergence.mean() + F.l1_loss(torch.log(p), torch.log(t))


def multi_resolution_stft_loss(pred: torch.Tensor, target: torch.Tensor,
                               resolutions: tuple[tuple[int, int, int], ...] = STFT_RESOLUTIONS) -> torch.Tensor:
    """Mean of :func:`stft_loss` over resolutions (Parallel WaveGAN's auxiliary loss).

    Resolutions whose FFT is too long for the segment (reflect padding needs n_fft / 2 < T) are skipped.
    """
    usable = [r for r in resolutions if r[0] // 2 < pred.shape[-1]] or [min(resolutions)]
    return sum(stft_loss(pred, target, *r) for r in usable) / len(usable)


def _world():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyworld imports the deprecated pkg_resources
        import pyworld  # lazy: pulls in pkg_resources (~0.1 s, a DeprecationWarning silenced here); only the MCD metric needs it

    return pyworld


def mel_cepstrum(wav: np.ndarray, sample_rate: int = 16000, n_cep: int = 25, frame_ms: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(mel cepstra (frames, n_cep), frame energy in dB (frames,)) of the WORLD spectral envelope.

    F0 by DIO + StoneMask, the F0-adaptive envelope by CheapTrick (so harmonics do not
    leak into the cepstrum), then WORLD's mel-cepstral coding.
    """
    pw = _world()
    x = np.asarray(wav, dtype=np.float64)
    f0, t = pw.dio(x, sample_rate, frame_period=frame_ms)
    f0 = pw.stonemask(x, f0, t, sample_rate)
    envelope = pw.cheaptrick(x, f0, t, sample_rate)  # (frames, n_fft / 2 + 1) power
    energy = 10.0 * np.log10(envelope.sum(1) + 1e-20)
    return pw.code_spectral_envelope(envelope, sample_rate, n_cep), energy


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost monotonic alignment (steps (1,0), (0,1), (1,1)) through an (N, M) cost matrix."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):  # row by row; the within-row dependency runs in plain Python floats
        prev, row, c = acc[i - 1], acc[i], cost[i - 1]
        diag_or_up = np.minimum(prev[:-1], prev[1:])  # (M,) best of (i-1, j-1) and (i-1, j)
        left = np.inf
        vals = row.tolist()
        for j, (a, b) in enumerate(zip(diag_or_up.tolist(), c.tolist()), start=1):
            left = b + (a if a < left else left)
            vals[j] = left
        acc[i] = vals
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin((acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    return path[::-1]


def mel_cepstral_distortion(reference: np.ndarray, synthesized: np.ndarray, sample_rate: int = 16000,
                            n_cep: int = 25, align: bool = True, floor_db: float = 40.0) -> float:
    """MCD in dB over c1..c{n_cep-1}, averaged over the reference's speech frames.

    MCD = (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2), c0 (energy) excluded. Frames of the
    reference more than ``floor_db`` below its loudest frame (silence) are left out, and the
    rest is aligned to the synthesized frames by DTW (``align``) or by index.
    """
    a, energy = mel_cepstrum(reference, sample_rate, n_cep)
    b, _ = mel_cepstrum(synthesized, sample_rate, n_cep)
    speech = energy > energy.max() - floor_db
    if align:
        a, b = a[:, 1:], b[:, 1:]
        sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2.0 * a @ b.T
        path = np.array(dtw_path(np.sqrt(np.maximum(sq, 0.0))))  # (N, M) Euclidean distances
        path = path[speech[path[:, 0]]]
        diff = a[path[:, 0]] - b[path[:, 1]]
    else:
        n = min(len(a), len(b))
        keep = speech[:n]
        diff = a[:n][keep, 1:] - b[:n][keep, 1:]
    return float(np.mean(10.0 / math.log(10.0) * np.sqrt(2.0 * (diff**2).sum(-1))))

"""Baseline vocoder: per-(speaker, unit) average mel spectrum -> linear magnitude -> Griffin-Lim.

Fitting needs no training: the mean log-mel frame of every unit (per speaker, with the
all-speaker mean as fallback) and the mean run length of every unit (for deduplicated
input). It is what a unit sequence says about the spectrum with no learned model, so it
is the reference point the unit HiFi-GAN must beat.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinywave.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from tinywave.vocoder.backends import SAMPLE_RATE, UnitVocoder, read_speakers
from tinywave.vocoder.spectral import MelSpec, mel_filterbank
from tinywave.vocoder.units import Units


@dataclass(frozen=True)
class MelSettings:
    n_fft: int = 1024
    hop: int = 160
    win: int = 640
    n_mels: int = 80


def fit_unit_mels(items: Iterable[tuple[np.ndarray, np.ndarray, int]], num_units: int, num_speakers: int, code_hop: int,
                  mel: MelSettings = MelSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Mean log-mel per (speaker, unit) and mean run length per unit.

    ``items``: (raw hubert frames (N,), 16 kHz waveform, speaker index). Returns
    (table (S, K, M) float32, run lengths (K,) float32).
    """
    spec = MelSpec(SAMPLE_RATE, mel.n_fft, mel.hop, mel.win, mel.n_mels)
    per = code_hop // mel.hop  # mel frames per unit frame
    sums = np.zeros((num_speakers + 1, num_units, mel.n_mels))  # row S: all speakers
    counts = np.zeros((num_speakers + 1, num_units))
    run_sum, run_count = np.zeros(num_units), np.zeros(num_units)
    for units, wav, spk in items:
        with torch.no_grad():
            logmel = spec(torch.as_tensor(wav, dtype=torch.float32)[None])[0].numpy().T  # (frames, M)
        n = min(len(units), len(logmel) // per)
        frames = logmel[: n * per].reshape(n, per, -1).mean(1)  # (n, M)
        for row in (spk, num_speakers):
            np.add.at(sums[row], units[:n], frames)
            np.add.at(counts[row], units[:n], 1)
        starts = np.flatnonzero(np.concatenate([[True], units[1:] != units[:-1]]))
        runs = np.diff(np.concatenate([starts, [len(units)]]))
        np.add.at(run_sum, units[starts], runs)
        np.add.at(run_count, units[starts], 1)
    overall = sums[-1].sum(0) / max(counts[-1].sum(), 1)  # unseen units: the corpus mean frame
    table = np.where(counts[..., None] > 0, sums / np.maximum(counts, 1)[..., None], np.nan)
    table[-1] = np.where(np.isnan(table[-1]), overall, table[-1])
    table[:-1] = np.where(np.isnan(table[:-1]), table[-1][None], table[:-1])
    runs = np.where(run_count > 0, run_sum / np.maximum(run_count, 1), 1.0)
    return table[:num_speakers].astype(np.float32), runs.astype(np.float32)


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop: int, win: int, n_iter: int = 32, length: int | None = None,
                *, seed: int = 0, momentum: float = 0.99) -> torch.Tensor:
    """Waveform (T,) from a magnitude spectrogram (F, frames) by fast Griffin-Lim (Perraudin et al. 2013)."""
    window = torch.hann_window(win)
    if length is not None:  # a centred STFT of `length` samples has length // hop + 1 frames
        frames = length // hop + 1
        pad = magnitude[:, -1:].expand(-1, max(frames - magnitude.shape[1], 0))
        magnitude = torch.cat([magnitude, pad], dim=1)[:, :frames]
    gen = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=gen))
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        wav = torch.istft(magnitude * angles, n_fft, hop, win, window, length=length)
        spec = torch.stft(wav, n_fft, hop, win, window, return_complex=True)
        accel = spec - momentum / (1 + momentum) * prev
        prev = spec
        angles = accel / accel.abs().clamp(min=1e-8)
    return torch.istft(magnitude * angles, n_fft, hop, win, window, length=length)


class GriffinLimVocoder(UnitVocoder):
    """Per-unit mean mel -> pseudo-inverse mel filterbank -> Griffin-Lim."""

    def __init__(self, table: np.ndarray, runs: np.ndarray, code_hop: int, speakers: list[str], mel: MelSettings = MelSettings(),
                 n_iter: int = 32):
        self.table, self.runs, self.hop, self.mel, self.n_iter = table, runs, code_hop, mel, n_iter
        self.speakers = speakers or [str(i) for i in range(table.shape[0])]
        self.limits = {"hubert": table.shape[1], "pitch": None, "style": None}
        fb = mel_filterbank(SAMPLE_RATE, mel.n_fft, mel.n_mels, 0.0, 8000.0)
        self.inverse = torch.from_numpy(np.linalg.pinv(fb)).float()  # (F, M)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        for name, arr in (("unit_mels.npy", self.table), ("unit_runs.npy", self.runs)):
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            atomic_write_bytes(path / name, buf.getvalue())
        atomic_write_json(path / "config.json", {"kind": "griffinlim", "code_hop_size": self.hop, "n_iter": self.n_iter,
                                                 **self.mel.__dict__})
        atomic_write_text(path / "speakers.txt", "".join(f"{s}\n" for s in self.speakers))

    @classmethod
    def load(cls, path: str | Path) -> "GriffinLimVocoder":
        path = Path(path)
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        mel = MelSettings(**{k: int(cfg[k]) for k in ("n_fft", "hop", "win", "n_mels")})
        table = np.load(path / "unit_mels.npy", allow_pickle=False)
        runs = np.load(path / "unit_runs.npy", allow_pickle=False)
        return cls(table, runs, int(cfg["code_hop_size"]), read_speakers(path / "speakers.txt"), mel, int(cfg.get("n_iter", 32)))

    def _synthesize(self, units: Units, speaker: int) -> tuple[np.ndarray, np.ndarray]:
        codes = np.asarray(units.hubert)
        frames = np.maximum(np.round(self.runs[codes]), 1).astype(np.int64) if units.deduplicated else np.ones(len(codes), np.int64)
        per = self.hop // self.mel.hop
        logmel = np.repeat(self.table[speaker][codes], frames * per, axis=0)  # (frames * per, M)
        mag = torch.clamp(self.inverse @ torch.from_numpy(np.exp(logmel).T).float(), min=0.0)  # (F, frames)
        length = int(frames.sum()) * self.hop
        wav = griffin_lim(mag, self.mel.n_fft, self.mel.hop, self.mel.win, self.n_iter, length=length)
        return wav.numpy().astype(np.float32), frames * self.hop

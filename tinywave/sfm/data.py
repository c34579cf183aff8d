"""Waveforms for SFM training: a manifest loaded into memory, deterministic random crops.

A batch is a pure function of ``(seed, step)``, so a resumed run sees exactly the
batches an uninterrupted one would, and runs with different stacking operators see
the same data (which lets a benchmark cache the teacher's outputs per step).
Crops start on a multiple of the encoder's frame stride, so frame t of a crop is frame
``start // stride + t`` of the whole utterance (for unit labels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinywave.audio.io import AudioError, load_audio
from tinywave.data.manifest import read_manifest
from tinywave.progress import bar

log = logging.getLogger(__name__)


@dataclass
class WaveBank:
    ids: list[str]
    wavs: list[np.ndarray]  # 16 kHz float32, one per utterance

    def __len__(self) -> int:
        return len(self.wavs)


@dataclass
class Batch:
    wav: torch.Tensor  # (B, N) zero-padded
    lengths: torch.Tensor  # (B,) real samples
    index: torch.Tensor  # (B,) utterance index in the bank
    start: torch.Tensor  # (B,) crop start sample in the utterance


def load_bank(manifest: str | Path, max_items: int = 0, min_seconds: float = 0.1) -> WaveBank:
    """All readable utterances of a manifest (bad ones are logged and skipped)."""
    items, bad = read_manifest(manifest)
    for b in bad:
        log.warning("%s: skipped (%s: %s)", b.where, b.reason, b.detail)
    items = items[:max_items] if max_items > 0 else items
    ids, wavs = [], []
    for item in bar(items, desc="loading audio", unit="utt"):
        try:
            wav, _ = load_audio(item.audio, min_seconds=min_seconds)
        except AudioError as exc:
            log.warning("%s: skipped (%s)", item.id, exc)
            continue
        ids.append(item.id)
        wavs.append(wav)
    if not wavs:
        raise ValueError(f"manifest {manifest} has no readable audio; check the 'audio' paths it lists")
    return WaveBank(ids, wavs)


def sample_batch(bank: WaveBank, batch_size: int, crop_samples: int, seed: int, step: int, stride: int = 320) -> Batch:
    """Batch number ``step``: random utterances, random stride-aligned crops of at most ``crop_samples``."""
    rng = np.random.default_rng([seed, step])
    index = rng.integers(0, len(bank), size=batch_size)
    chunks, starts = [], []
    for i in index:
        wav = bank.wavs[i]
        room = max(0, len(wav) - crop_samples) // stride
        start = int(rng.integers(0, room + 1)) * stride
        chunks.append(wav[start:start + crop_samples])
        starts.append(start)
    return collate(chunks, index=index, start=starts)


def collate(chunks: list[np.ndarray], index=None, start=None) -> Batch:
    """Zero-pad 1-D waveforms to one (B, N) tensor with their lengths."""
    lengths = torch.tensor([len(c) for c in chunks], dtype=torch.long)
    wav = torch.zeros(len(chunks), int(lengths.max()))
    for k, c in enumerate(chunks):
        wav[k, : len(c)] = torch.from_numpy(np.asarray(c, dtype=np.float32))
    index = torch.as_tensor(index if index is not None else range(len(chunks)), dtype=torch.long)
    start = torch.as_tensor(start if start is not None else [0] * len(chunks), dtype=torch.long)
    return Batch(wav, lengths, index, start)


class CropStream:
    """The training loop's batches (``tinywave.training.batches.Stream``): batch number ``step`` of
    :func:`sample_batch`, this process's rows of it, and its real frame count as ``n_targets``.

    Each of the ``world_size`` processes takes ``batch_size`` rows of a global batch of
    ``batch_size x world_size`` (padding width kept, so every item is computed as in one
    process). The state is the step count: batches are a function of ``(seed, step)``.
    """

    def __init__(self, bank: WaveBank, batch_size: int, crop_samples: int, seed: int, stride: int,
                 frames: Callable[[torch.Tensor], torch.Tensor], *, rank: int = 0, world_size: int = 1):
        self.bank, self.batch_size, self.crop, self.seed, self.stride = bank, batch_size, crop_samples, seed, stride
        self.frames, self.rank, self.world_size = frames, rank, world_size
        self.step = 0

    def next(self) -> dict[str, torch.Tensor]:
        batch = sample_batch(self.bank, self.batch_size * self.world_size, self.crop, self.seed, self.step, self.stride)
        rows = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        out = {"wav": batch.wav[rows], "lengths": batch.lengths[rows], "index": batch.index[rows], "start": batch.start[rows],
               "step": torch.tensor(self.step)}
        out["n_targets"] = self.frames(out["lengths"]).sum()  # real encoder frames of this process's rows
        self.step += 1
        return out

    def state(self) -> dict[str, Any]:
        return {"step": self.step}

    def restore(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


def as_batch(batch: dict[str, torch.Tensor]) -> Batch:
    """A :class:`CropStream` batch back as a :class:`Batch`."""
    return Batch(batch["wav"], batch["lengths"], batch["index"], batch["start"])

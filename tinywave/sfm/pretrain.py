"""HuBERT-style teacher pretraining by masked prediction of unit targets (first iteration).

Spans of the CNN features are replaced by the learned mask embedding
(``HubertModel(mask_time_indices=...)``), and a linear head predicts each masked frame's
unit (MFCC k-means by default) with cross-entropy over the masked, real frames.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import HubertModel

from tinywave.progress import bar
from tinywave.sfm.data import Batch, WaveBank, sample_batch
from tinywave.sfm.models import downsample_rate, frame_lengths, frame_mask, hidden_states
from tinywave.sfm.optim import load_optimizer_state, lr_at, make_optimizer, save_checkpoint, set_lr
from tinywave.sfm.units import UnitLabeler, align_labels
from tinywave.training.runlog import RunLogger

log = logging.getLogger(__name__)


class MaskedUnitModel(nn.Module):
    """A ``HubertModel`` plus a linear unit classifier over its last layer."""

    def __init__(self, encoder: HubertModel, n_units: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_units)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, time_mask: torch.Tensor | None) -> torch.Tensor:
        states = hidden_states(self.encoder, wav, lengths, mask_time_indices=time_mask)
        return self.head(states[-1])  # (B, T, K)

    def save(self, path: Path) -> None:
        self.encoder.save_pretrained(str(path))
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(path / "unit_head.safetensors"))


def span_mask(valid: torch.Tensor, prob: float, span: int, rng: np.random.Generator) -> torch.Tensor:
    """(B, T) bool: spans of ``span`` frames starting at ~``prob`` x (real frames) / ``span`` random starts."""
    mask = torch.zeros_like(valid)
    for b, n in enumerate(valid.sum(1).tolist()):
        if n <= span:
            continue
        n_starts = max(1, int(prob * n / span + rng.random()))
        for s in rng.choice(n - span + 1, size=min(n_starts, n - span + 1), replace=False):
            mask[b, s:s + span] = True
    return mask & valid


def utterance_labels(bank: WaveBank, labeler: UnitLabeler, config) -> list[np.ndarray]:
    """Per utterance, one unit label per encoder frame of the whole utterance."""
    frame_rate = 16000 / downsample_rate(config)
    out = []
    for wav in bar(bank.wavs, desc="unit labels", unit="utt"):
        n = int(frame_lengths(config, torch.tensor([len(wav)]))[0])
        out.append(align_labels(labeler.labels(wav), n, labeler.rate, frame_rate))
    return out


def batch_labels(labels: list[np.ndarray], batch: Batch, n_frames: int, stride: int) -> torch.Tensor:
    """(B, T) long labels of a batch of crops; -100 past each crop's real frames."""
    out = torch.full((len(batch.index), n_frames), -100, dtype=torch.long)
    for k, (i, start) in enumerate(zip(batch.index.tolist(), batch.start.tolist())):
        first = start // stride
        part = labels[i][first:first + n_frames]
        out[k, : len(part)] = torch.from_numpy(part)
    return out


def masked_unit_loss(logits: torch.Tensor, labels: torch.Tensor, time_mask: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cross-entropy over masked frames with a label; returns (loss, accuracy on those frames)."""
    sel = time_mask & (labels >= 0)  # (B, T)
    if not bool(sel.any()):
        return logits.sum() * 0.0, float("nan")
    picked, gold = logits[sel], labels[sel]  # (M, K), (M,)
    return F.cross_entropy(picked, gold), float((picked.argmax(-1) == gold).float().mean())


@dataclass
class PretrainSettings:
    steps: int = 1000
    batch_size: int = 8
    crop_samples: int = 32000
    lr: float = 5e-4
    warmup: int = 100
    weight_decay: float = 0.01
    mask_prob: float = 0.65
    mask_span: int = 5
    seed: int = 0
    log_every: int = 25
    save_every: int = 250
    wandb: bool = False  # also log to Weights & Biases (tinywave.training.runlog)


def load_checkpoint(path: Path, n_units: int) -> MaskedUnitModel:
    """A ``MaskedUnitModel`` from a pretraining checkpoint folder."""
    model = MaskedUnitModel(HubertModel.from_pretrained(str(path)), n_units)
    model.head.load_state_dict(load_file(str(path / "unit_head.safetensors")))
    return model


def pretrain(model: MaskedUnitModel, bank: WaveBank, labels: list[np.ndarray], cfg: PretrainSettings,
             out: str | Path, start: int = 0, optimizer_from: Path | None = None) -> dict[str, float]:
    """Masked-prediction training from step ``start``; checkpoints ``out/checkpoints``; the run log
    (``out/train_log.jsonl``, TensorBoard, W&B with ``cfg.wandb``) of tinywave.training.runlog."""
    out = Path(out)
    stride = downsample_rate(model.encoder.config)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    if optimizer_from is not None:
        load_optimizer_state(optimizer, optimizer_from)
    model.train()
    t_start, loss_v, acc = time.perf_counter(), float("nan"), float("nan")
    logger = RunLogger(out, start, cfg.steps, tensorboard=True, wandb=cfg.wandb, config=asdict(cfg))
    try:
        for step in range(start, cfg.steps):
            rng = np.random.default_rng([cfg.seed, step, 7])
            batch = sample_batch(bank, cfg.batch_size, cfg.crop_samples, cfg.seed, step, stride)
            n_frames = int(frame_lengths(model.encoder.config, torch.tensor([batch.wav.shape[1]]))[0])
            valid = frame_mask(model.encoder.config, batch.lengths, n_frames)  # (B, T)
            tmask = span_mask(valid, cfg.mask_prob, cfg.mask_span, rng)
            logits = model(batch.wav, batch.lengths, tmask)  # (B, T, K)
            loss, acc = masked_unit_loss(logits, batch_labels(labels, batch, n_frames, stride), tmask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            set_lr(optimizer, lr_at(step, cfg.steps, cfg.lr, cfg.warmup))
            optimizer.step()
            loss_v = loss.item()
            logger.step({"step": step + 1, "loss": loss_v, "masked_acc": acc}, write=True)
            if (step + 1) % cfg.log_every == 0:
                log.info("pretrain step %d/%d loss %.3f masked acc %.3f", step + 1, cfg.steps, loss_v, acc)
            if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                save_checkpoint(out / "checkpoints", step + 1, model.save, optimizer, {}, keep=1)
    finally:
        logger.close()
    return {"loss": loss_v, "masked_acc": acc, "seconds": time.perf_counter() - t_start}

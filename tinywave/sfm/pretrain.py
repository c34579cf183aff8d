"""HuBERT-style teacher pretraining by masked prediction of unit targets (first iteration).

Spans of the CNN features are replaced by the learned mask embedding
(``HubertModel(mask_time_indices=...)``), and a linear head predicts each masked frame's
unit (MFCC k-means by default) with cross-entropy over the masked, real frames. Training
runs on the shared loop (``tinywave.training.trainer.fit``): HuBERT's AdamW (betas 0.9 /
0.98, eps 1e-6), warm-up then linear decay to 10%, gradient norm clipped at 10;
checkpoints in ``OUT/checkpoints/step_*`` (the model as :meth:`MaskedUnitModel.save` writes it).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import HubertModel

from tinywave.progress import bar
from tinywave.sfm.data import Batch, CropStream, WaveBank, as_batch
from tinywave.sfm.models import downsample_rate, frame_lengths, frame_mask, hidden_states
from tinywave.sfm.units import UnitLabeler, align_labels
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.training.trainer import fit

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
    warmup_steps: int = 100
    weight_decay: float = 0.01
    mask_prob: float = 0.65
    mask_span: int = 5
    seed: int = 0
    log_every: int = 1  # write every N-th step's record to train_log.jsonl
    ckpt_every: int = 250
    keep_checkpoints: int = 1
    stop_after_steps: int = 0  # run at most N steps in this invocation, then checkpoint (0: to the end)
    report_to: tuple[str, ...] = ("tensorboard",)  # run trackers (tinywave/training/settings.py TRACKERS)


def load_checkpoint(path: Path, n_units: int) -> MaskedUnitModel:
    """A ``MaskedUnitModel`` from a pretraining checkpoint folder."""
    model = MaskedUnitModel(HubertModel.from_pretrained(str(path)), n_units)
    model.head.load_state_dict(load_file(str(path / "unit_head.safetensors")))
    return model


class MaskedUnitObjective:
    """The loop's objective: masked-unit cross-entropy on a crop batch (spans drawn from ``(seed, step)``)."""

    def __init__(self, model: MaskedUnitModel, labels: list[np.ndarray], cfg: PretrainSettings):
        self.model, self.labels, self.cfg = model, labels, cfg
        self.stride = downsample_rate(model.encoder.config)

    def __call__(self, batch: dict[str, torch.Tensor], normalizer: float) -> dict[str, torch.Tensor]:
        crops, config = as_batch(batch), self.model.encoder.config
        rng = np.random.default_rng([self.cfg.seed, int(batch["step"]), 7])
        n_frames = int(frame_lengths(config, torch.tensor([crops.wav.shape[1]]))[0])
        valid = frame_mask(config, crops.lengths, n_frames)  # (B, T)
        tmask = span_mask(valid, self.cfg.mask_prob, self.cfg.mask_span, rng)
        logits = self.model(crops.wav, crops.lengths, tmask)  # (B, T, K)
        loss, acc = masked_unit_loss(logits, batch_labels(self.labels, crops, n_frames, self.stride), tmask)
        share = float(batch["n_targets"]) / normalizer  # 1 in one process
        return {"loss": loss * share, "masked_acc": torch.tensor(acc * share)}


def pretrain(model: MaskedUnitModel, bank: WaveBank, labels: list[np.ndarray], cfg: PretrainSettings,
             out: str | Path, resume_from: Path | None = None, *, config: dict | None = None) -> dict[str, float]:
    """Masked-prediction training for ``cfg.steps`` steps in all (continuing ``resume_from``, a checkpoint folder);
    checkpoints in ``out/checkpoints``; the run log (``out/train_log.jsonl``, TensorBoard and W&B as ``cfg.report_to`` says)."""
    config_hf = model.encoder.config
    stream = CropStream(bank, cfg.batch_size, cfg.crop_samples, cfg.seed, downsample_rate(config_hf),
                        lambda lengths: frame_lengths(config_hf, lengths))
    optim = OptimSettings(lr=cfg.lr, betas=[0.9, 0.98], eps=1e-6, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                          schedule="linear", min_lr_ratio=0.1, grad_clip=10.0)
    run = RunSettings(out=str(out), steps=cfg.steps, seed=cfg.seed, device="cpu", log_every=cfg.log_every, ckpt_every=cfg.ckpt_every,
                      keep_checkpoints=cfg.keep_checkpoints, stop_after_steps=cfg.stop_after_steps, report_to=list(cfg.report_to))
    model.train()
    result = fit(MaskedUnitObjective(model, labels, cfg), [p for p in model.parameters() if p.requires_grad], stream, optim, run,
                 model.save, config=config if config is not None else asdict(cfg), resume_from=resume_from)
    last = result.history[-1] if result.history else {}
    log.info("pretrain: step %d of %d, loss %.3f, masked accuracy %.3f", result.step, cfg.steps, last.get("loss", float("nan")),
             last.get("masked_acc", float("nan")))
    return {"step": result.step, "finished": result.finished, "loss": last.get("loss", float("nan")),
            "masked_acc": last.get("masked_acc", float("nan")), "seconds": result.elapsed_s}

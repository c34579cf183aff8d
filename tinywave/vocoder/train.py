"""Training the unit HiFi-GAN: unit extraction, segment batches, the loss step, evaluation.

The generator learns from random segments of (raw unit frames, waveform) pairs with a
multi-resolution STFT loss plus a log-mel L1 loss and, once the discriminators join
(:mod:`tinywave.vocoder.adversarial`), HiFi-GAN's adversarial and feature-matching
losses; the duration predictor learns log(1 + run length) of deduplicated units. Quality is measured as mel-cepstral
distortion against the ground-truth audio of held-out utterances.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from tinywave.audio.io import AudioError, load_audio
from tinywave.files import JsonlAppender, load_jsonl
from tinywave.progress import bar
from tinywave.training.checkpoint import as_random_state
from tinywave.vocoder.adversarial import Adversary
from tinywave.vocoder.hifigan import UnitHiFiGAN
from tinywave.vocoder.spectral import MelSpec, mel_cepstral_distortion, multi_resolution_stft_loss
from tinywave.vocoder.units import Units, deduplicate

log = logging.getLogger(__name__)


@dataclass
class Utterance:
    """One training utterance: raw unit frames (not deduplicated), its audio and speaker index."""

    id: str
    wav: np.ndarray  # (T,) 16 kHz float32
    units: Units
    speaker: int


def extract_units(items: list[Any], tokenizer: Any, speakers: list[str], cache: Path | None = None,
                  errors: list[dict[str, Any]] | None = None) -> list[Utterance]:
    """Encode every manifest item with ``tokenizer.encode_units``; a JSONL cache makes reruns instant.

    Items whose audio cannot be read are reported in ``errors`` and skipped.
    """
    cached = {o["id"]: o for o in load_jsonl(cache)} if cache is not None and cache.is_file() else {}
    out: list[Utterance] = []
    writer = JsonlAppender(cache) if cache is not None else None
    try:
        for item in bar(items, desc="units", unit="utt"):
            try:
                wav, _ = load_audio(item.audio)
            except AudioError as exc:
                if errors is not None:
                    errors.append({"id": item.id, "where": str(item.audio), "reason": exc.reason, "detail": exc.detail})
                continue
            streams = cached.get(item.id)
            if streams is None:
                streams = {k: [int(v) for v in vals] for k, vals in tokenizer.encode_units(wav).items() if k in ("hubert", "pitch", "style")}
                if writer is not None:
                    writer.write({"id": item.id, **streams})
            units = Units(tuple(streams["hubert"]), _opt(streams.get("pitch")), _opt(streams.get("style")), False)
            speaker = speakers.index(item.speaker) if item.speaker in speakers else 0
            out.append(Utterance(item.id, wav, units, speaker))
    finally:
        if writer is not None:
            writer.close()
    return out


def _opt(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


class SegmentSampler:
    """Random fixed-length (units, audio) segments; pitch/style are expanded to one code per unit frame."""

    def __init__(self, utts: list[Utterance], segment_units: int, hop: int, f0_ratio: float, style_ratio: float, seed: int):
        self.utts = [u for u in utts if len(u.units) >= 2]
        if not self.utts:
            raise ValueError("no utterance has at least 2 unit frames; the corpus is empty or the audio too short")
        self.segment, self.hop, self.f0_ratio, self.style_ratio = segment_units, hop, f0_ratio, style_ratio
        self.rng = random.Random(seed)

    def _one(self, utt: Utterance) -> tuple[list[int], list[int] | None, list[int] | None, np.ndarray]:
        n = len(utt.units)
        start = self.rng.randrange(max(n - self.segment, 0) + 1)
        idx = [min(start + i, n - 1) for i in range(self.segment)]  # short utterances repeat their last frame
        audio = np.zeros(self.segment * self.hop, dtype=np.float32)
        chunk = utt.wav[start * self.hop : (start + self.segment) * self.hop]
        audio[: len(chunk)] = chunk

        def expand(stream: tuple[int, ...] | None, ratio: float) -> list[int] | None:  # the code under each frame, as at inference
            return None if stream is None else [stream[min(int(i // ratio), len(stream) - 1)] for i in idx]

        return [utt.units.hubert[i] for i in idx], expand(utt.units.pitch, self.f0_ratio), expand(utt.units.style, self.style_ratio), audio

    def sample(self, batch: int) -> dict[str, torch.Tensor | None]:
        picks = [self.rng.choice(self.utts) for _ in range(batch)]
        rows = [self._one(u) for u in picks]

        def stack(k: int) -> torch.Tensor | None:
            return None if rows[0][k] is None else torch.tensor([r[k] for r in rows], dtype=torch.long)

        return {"code": stack(0), "f0_code": stack(1), "style_code": stack(2),
                "speaker": torch.tensor([u.speaker for u in picks]), "audio": torch.from_numpy(np.stack([r[3] for r in rows]))}


def duration_batch(utts: list[Utterance], batch: int, rng: random.Random, max_units: int = 200) -> tuple[torch.Tensor, ...]:
    """Deduplicated codes (B, N), targets log(1 + run length) (B, N) and a mask (B, N)."""
    picks = [deduplicate(rng.choice(utts).units) for _ in range(batch)]
    n = max(1, min(max_units, max(len(u) for u, _ in picks)))
    codes = torch.zeros(batch, n, dtype=torch.long)
    target = torch.zeros(batch, n)
    mask = torch.zeros(batch, n, dtype=torch.bool)
    for i, (u, runs) in enumerate(picks):
        k = min(len(u), n)
        codes[i, :k] = torch.tensor(u.hubert[:k])
        target[i, :k] = torch.log1p(torch.from_numpy(runs[:k]).float())
        mask[i, :k] = True
    return codes, target, mask


class VocoderLoss(torch.nn.Module):
    """``stft_weight`` x multi-resolution STFT loss + ``mel_weight`` x log-mel L1 (both on (B, T) waveforms)."""

    def __init__(self, mel_weight: float = 1.0, stft_weight: float = 1.0):
        super().__init__()
        self.mel = MelSpec()
        self.mel_weight, self.stft_weight = mel_weight, stft_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        stft = multi_resolution_stft_loss(pred, target)
        mel = F.l1_loss(self.mel(pred), self.mel(target))
        return {"stft": stft, "mel": mel, "total": self.stft_weight * stft + self.mel_weight * mel}


def generate(model: UnitHiFiGAN, batch: dict[str, torch.Tensor | None]) -> torch.Tensor:
    """The generator's waveform (B, 1, S * hop) for a segment batch (one code per unit frame)."""
    code = batch["code"]
    ones = torch.ones(code.shape[1], dtype=torch.long)  # streams are already one code per unit frame
    speaker = batch["speaker"] if model.spkr is not None else None
    style = torch.zeros_like(batch["speaker"]) if model.style is not None else None
    return model(code, batch["f0_code"], batch["style_code"], speaker, style, durations=ones)


def reconstruction_losses(model: UnitHiFiGAN, loss_fn: VocoderLoss, pred: torch.Tensor, batch: dict[str, torch.Tensor | None],
                          dur: tuple[torch.Tensor, ...] | None) -> dict[str, torch.Tensor]:
    """Mel/STFT losses of ``pred`` (B, 1, T) against the batch's audio, plus the duration loss when ``dur`` is given."""
    losses = loss_fn(pred.squeeze(1), batch["audio"])
    if dur is not None and model.dur_predictor is not None:
        codes, target, mask = dur
        log_dur = model.dur_predictor(model.dict(codes).detach())  # (B, N)
        losses["duration"] = F.mse_loss(log_dur[mask], target[mask])
        losses["total"] = losses["total"] + losses["duration"]
    return losses


def loss_step(model: UnitHiFiGAN, loss_fn: VocoderLoss, batch: dict[str, torch.Tensor | None],
              dur: tuple[torch.Tensor, ...] | None) -> dict[str, torch.Tensor]:
    """Waveform losses on one segment batch, plus the duration loss when ``dur`` is given."""
    return reconstruction_losses(model, loss_fn, generate(model, batch), batch, dur)


def generator_losses(model: UnitHiFiGAN, loss_fn: VocoderLoss, batch: dict[str, torch.Tensor | None],
                     dur: tuple[torch.Tensor, ...] | None, adversary: Adversary | None = None) -> dict[str, torch.Tensor]:
    """The generator's losses on one segment batch (after one discriminator update when ``adversary`` is given).

    ``loss`` is the generator's weighted total (to backpropagate); the rest are detached:
    ``mel``, ``stft``, ``duration``, ``g/*`` its adversarial terms and ``d/*`` the
    discriminators' losses before their update, as in HiFi-GAN's loop.
    """
    pred = generate(model, batch)  # (B, 1, S * hop)
    losses = reconstruction_losses(model, loss_fn, pred, batch, dur)
    record: dict[str, float] = {}
    if adversary is not None:
        real, fake = adversary.crop(batch["audio"].unsqueeze(1), pred)  # (B, 1, segment) each
        record = adversary.discriminator_step(real, fake)
        terms = adversary.generator_terms(real, fake)
        losses = {**losses, **terms, "total": losses["total"] + adversary.weighted(terms)}
    out = {"loss": losses.pop("total")}
    out.update({k: v.detach() for k, v in losses.items()})
    out.update({k: torch.tensor(v) for k, v in record.items()})
    return out


def train_step(model: UnitHiFiGAN, opt: torch.optim.Optimizer, loss_fn: VocoderLoss, batch: dict[str, torch.Tensor | None],
               dur: tuple[torch.Tensor, ...] | None, grad_clip: float, *, adversary: Adversary | None = None) -> dict[str, float]:
    """One generator update outside the training loop (tests, notebooks): :func:`generator_losses`, backward, clip, step."""
    losses = generator_losses(model, loss_fn, batch, dur, adversary)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return {k: v.detach().item() for k, v in losses.items()}


class SegmentStream:
    """The training loop's batches (``tinywave.training.batches.Stream``): a segment batch, a duration batch and the step.

    Its state is the step count and both random generators, so a resumed run draws the
    segments an uninterrupted run would.
    """

    world_size = 1

    def __init__(self, utts: list[Utterance], sampler: SegmentSampler, batch_size: int, seed: int, duration_rows: int = 8):
        self.utts, self.sampler, self.batch_size, self.duration_rows = utts, sampler, batch_size, duration_rows
        self.duration_rng = random.Random(seed)
        self.step = 0

    def next(self) -> dict[str, torch.Tensor]:
        batch = {k: v for k, v in self.sampler.sample(self.batch_size).items() if v is not None}
        codes, target, mask = duration_batch(self.utts, self.duration_rows, self.duration_rng)
        batch.update(dur_codes=codes, dur_target=target, dur_mask=mask, step=torch.tensor(self.step),
                     n_targets=torch.tensor(self.batch_size))  # the losses are means over the rows
        self.step += 1
        return batch

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "sampler_rng": self.sampler.rng.getstate(), "duration_rng": self.duration_rng.getstate()}

    def restore(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.sampler.rng.setstate(as_random_state(state["sampler_rng"]))
        self.duration_rng.setstate(as_random_state(state["duration_rng"]))


class GeneratorObjective:
    """The training loop's objective: the generator's losses, with the discriminators' update from ``adversarial_start``."""

    def __init__(self, model: UnitHiFiGAN, loss_fn: VocoderLoss, adversary: Adversary | None, adversarial_start: int):
        self.model, self.loss_fn, self.adversary, self.start = model, loss_fn, adversary, adversarial_start

    def __call__(self, batch: dict[str, torch.Tensor], normalizer: float) -> dict[str, torch.Tensor]:
        gan = self.adversary if 0 <= self.start <= int(batch["step"]) else None
        segments = {k: batch.get(k) for k in ("code", "f0_code", "style_code", "speaker", "audio")}
        losses = generator_losses(self.model, self.loss_fn, segments, (batch["dur_codes"], batch["dur_target"], batch["dur_mask"]), gan)
        scale = float(batch["n_targets"]) / normalizer  # 1 for one batch per step
        return {k: v * scale for k, v in losses.items()}


def save_weights(folder: Path, modules: dict[str, torch.nn.Module]) -> None:
    """``<name>.safetensors`` per module (a checkpoint's generator and discriminators)."""
    for name, module in modules.items():
        save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(Path(folder) / f"{name}.safetensors"))


def load_weights(folder: Path, modules: dict[str, torch.nn.Module]) -> None:
    """Restore what :func:`save_weights` wrote (strict: a checkpoint of another shape is an error)."""
    for name, module in modules.items():
        path = Path(folder) / f"{name}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {folder} has no {path.name}; resume from another step_* folder or use a new --out")
        module.load_state_dict(load_file(str(path)), strict=True)


def evaluate_mcd(vocoders: dict[str, Any], utts: list[Utterance], with_durations: bool = True) -> dict[str, float]:
    """Mean MCD (dB) against ground truth per vocoder: from raw frames, and from deduplicated units + durations."""
    scores: dict[str, list[float]] = {}
    for utt in utts:
        for name, voc in vocoders.items():
            ref = utt.wav[: len(utt.units) * voc.hop]
            scores.setdefault(name, []).append(mel_cepstral_distortion(ref, voc.vocode(utt.units, utt.speaker)))
            if with_durations:
                syn = voc.vocode(deduplicate(utt.units, voc.f0_ratio, voc.style_ratio)[0], utt.speaker)
                scores.setdefault(f"{name}+durations", []).append(mel_cepstral_distortion(ref, syn))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def evaluate_units(vocoders: dict[str, Any], utts: list[Utterance], tokenizer: Any) -> dict[str, float]:
    """Intelligibility proxy: share of unit frames the speech tokenizer finds again in the resynthesis.

    Each held-out utterance is vocoded from its raw units, re-encoded with ``tokenizer``,
    and compared frame by frame with the units it was made from.
    """
    scores: dict[str, list[float]] = {}
    for utt in utts:
        for name, voc in vocoders.items():
            again = tokenizer.encode_units(voc.vocode(utt.units, utt.speaker))["hubert"]
            n = min(len(again), len(utt.units))
            scores.setdefault(name, []).append(float(np.mean(np.asarray(again[:n]) == np.asarray(utt.units.hubert[:n]))) if n else 0.0)
    return {k: float(np.mean(v)) for k, v in scores.items()}

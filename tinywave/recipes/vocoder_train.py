"""Recipe: train the unit HiFi-GAN vocoder on a corpus, and measure it against Griffin-Lim.

    tinywave vocoder train --manifest corpus/manifest.jsonl --tokenizer runs/units --out runs/vocoder \
        steps=1500 minutes=10

The default generator is SpiritLM's unit HiFi-GAN with an iSTFT head (``istft_hop=160``):
upsampling stops at 100 frames per second and the last layer predicts magnitude and
phase for an inverse STFT, so every convolution runs at <= 100 Hz. On a 2-core CPU it
beats the Griffin-Lim baseline's mel-cepstral distortion within minutes, where the
plain 16 kHz generator (``istft_hop=0``) did not in 20 (docs/GENERATION.md has the figures).

Units come from the speech tokenizer (raw frames, not deduplicated); speakers from the
manifest's ``speaker``. Writes ``OUT/config.json`` (SpiritLM's field names),
``OUT/generator.safetensors``, ``OUT/speakers.txt``, the Griffin-Lim baseline in
``OUT/griffinlim/``, ``OUT/eval.json`` (on held-out utterances, ours vs the baseline:
mel-cepstral distortion against the ground truth, and the share of units the speech
tokenizer recovers from the resynthesis), resynthesized samples in ``OUT/samples/``
and per-step losses in ``OUT/train_log.jsonl``. An interrupted run resumes from
``OUT/checkpoint.*``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinywave.config import field

log = logging.getLogger(__name__)


@dataclass
class Config:
    manifest: str = field("", help="corpus manifest (JSON lines with id, audio, speaker)")
    tokenizer: str = field("", help="speech tokenizer directory (`tinywave units train` output)")
    out: str = field("", help="output vocoder directory")
    steps: int = field(1500, help="training steps")
    minutes: float = field(0.0, help="stop after this many minutes of training (0: no limit)")
    batch: int = field(8, help="segments per step")
    segment_units: int = field(16, help="segment length in unit frames")
    lr: float = field(4e-3, help="peak learning rate (AdamW, warm-up then cosine)")
    channels: int = field(512, help="upsample_initial_channel (SpiritLM: 512)")
    embedding_dim: int = field(64, help="unit/speaker embedding width (SpiritLM: 128)")
    kernels: list[int] = field([3], help="resblock kernel sizes (SpiritLM: [3, 7, 11])")
    istft_hop: int = field(160, help="iSTFT head: samples per STFT frame, must divide the unit hop (0: SpiritLM's plain "
                                     "upsampling to 16 kHz, much slower to train on a CPU)")
    istft_n_fft: int = field(0, help="iSTFT head: FFT size (0: 4 x istft_hop)")
    mel_weight: float = field(10.0, help="weight of the log-mel L1 loss next to the multi-resolution STFT loss")
    num_units: int = field(0, help="unit table size (0: from the tokenizer, else the largest unit seen + 1)")
    heldout: int = field(8, help="utterances held out for the MCD evaluation")
    max_items: int = field(0, help="use at most this many utterances (0: all)")
    save_every: int = field(200, help="checkpoint every N steps (resume on rerun)")
    samples: int = field(3, help="held-out utterances resynthesized into OUT/samples/")
    seed: int = field(0, help="seed for the split, segments and initialization")
    threads: int = field(0, help="torch threads (0: torch's default; 1 is faster on a busy machine)")


def load_speech_tokenizer(path: str) -> Any:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"speech tokenizer directory {path} not found; train one with `tinywave units train --out {path}`")
    from tinywave.speech.tokenizer import SpeechTokenizer

    return SpeechTokenizer.load(path)


def table_sizes(tokenizer: Any, utts: list[Any], num_units: int) -> dict[str, int | None]:
    """Table size per stream: the tokenizer's codebook size when it says, else the largest code seen + 1."""
    sizes: dict[str, int | None] = {}
    for stream, attr in (("hubert", "n_units"), ("pitch", "n_pitch"), ("style", "n_style")):
        values = [max(getattr(u.units, stream)) for u in utts if getattr(u.units, stream)]
        if not values:
            sizes[stream] = None
            continue
        declared = num_units if stream == "hubert" and num_units else getattr(tokenizer, attr, None)
        sizes[stream] = max(int(declared or 0), max(values) + 1)
    return sizes


def run(cfg: Config) -> int:
    import numpy as np
    import torch

    from tinywave.data.manifest import read_manifest
    from tinywave.files import JsonlAppender, atomic_write_json
    from tinywave.progress import bar
    from tinywave.vocoder import train as T
    from tinywave.vocoder.backends import HifiGanVocoder, save_hifigan
    from tinywave.vocoder.griffinlim import GriffinLimVocoder, fit_unit_mels
    from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

    if not cfg.manifest or not cfg.tokenizer or not cfg.out:
        raise ValueError("vocoder train needs --manifest FILE, --tokenizer DIR and --out DIR")
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # 1. corpus -> raw unit frames (cached in OUT/units.jsonl), speakers, held-out split
    items, bad = read_manifest(cfg.manifest)
    random.Random(cfg.seed).shuffle(items)
    items = items[: cfg.max_items] if cfg.max_items else items
    speakers = sorted({it.speaker for it in items if it.speaker is not None})
    tokenizer = load_speech_tokenizer(cfg.tokenizer)
    errors = [b.to_json() for b in bad]
    utts = T.extract_units(items, tokenizer, speakers, out / "units.jsonl", errors)
    if errors:
        atomic_write_json(out / "errors.json", errors)
        log.warning("%d manifest item(s) skipped, see %s", len(errors), out / "errors.json")
    if len(utts) < 2:
        raise ValueError(f"{cfg.manifest}: only {len(utts)} usable utterance(s); the vocoder needs a corpus")
    n_held = min(cfg.heldout, len(utts) // 5)
    train, held = utts[n_held:], utts[:n_held]
    # 2. model: SpiritLM's architecture, scaled down
    sizes = table_sizes(tokenizer, utts, cfg.num_units)
    hop = int(round(16000 / float(tokenizer.rates["hubert"])))
    model_cfg = small_config(int(sizes["hubert"] or 1), hop, channels=cfg.channels, embedding_dim=cfg.embedding_dim,
                             num_speakers=len(speakers) if len(speakers) > 1 else 0, num_f0_tokens=sizes["pitch"],
                             num_style_tokens=sizes["style"], kernels=tuple(cfg.kernels),
                             istft_hop=cfg.istft_hop, istft_n_fft=cfg.istft_n_fft)
    model = UnitHiFiGAN(model_cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.8, 0.99), weight_decay=0.0)
    log.info("vocoder: %d units, hop %d, upsampling %s, %.2fM parameters, %d train / %d held-out utterances",
             model_cfg.num_embeddings, hop, model_cfg.upsample_rates, sum(p.numel() for p in model.parameters()) / 1e6,
             len(train), len(held))
    # 3. resume, then train on random segments
    start, state = (T.load_checkpoint(out, model, opt) if (out / "checkpoint.json").is_file() else (0, {}))
    sampler = T.SegmentSampler(train, cfg.segment_units, hop, model_cfg.hubert_to_f0, model_cfg.hubert_to_style, cfg.seed + start)
    dur_rng = random.Random(cfg.seed + start)
    loss_fn = T.VocoderLoss(cfg.mel_weight)
    t0, last = time.perf_counter(), start
    with JsonlAppender(out / "train_log.jsonl", fsync=False) as logf:
        progress = bar(total=cfg.steps, initial=start, desc="vocoder", unit="step")
        for step in T.iterate_steps(start, cfg.steps, cfg.minutes, time.perf_counter):
            for group in opt.param_groups:
                spent = (time.perf_counter() - t0) / (60.0 * cfg.minutes) if cfg.minutes > 0 else 0.0
                group["lr"] = T.lr_at(step, cfg.steps, cfg.lr, elapsed=spent)
            losses = T.loss_step(model, loss_fn, sampler.sample(cfg.batch), T.duration_batch(train, 8, dur_rng))
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            values = {k: round(v.detach().item(), 5) for k, v in losses.items()}
            logf.write({"step": step, **values})
            progress.update(1)
            progress.set_postfix(loss=f"{values['total']:.3f}")
            last = step + 1
            if last % cfg.save_every == 0:
                T.save_checkpoint(out, model, opt, last, {})
        progress.close()
    T.save_checkpoint(out, model, opt, last, {})
    train_s = time.perf_counter() - t0
    # 4. the Griffin-Lim baseline and both vocoders on held-out utterances
    table, runs = fit_unit_mels(((np.asarray(u.units.hubert), u.wav, u.speaker) for u in train), model_cfg.num_embeddings,
                                max(len(speakers), 1), hop)
    baseline = GriffinLimVocoder(table, runs, hop, speakers)
    baseline.save(out / "griffinlim")
    save_hifigan(out, model, speakers, {"tinywave": {"steps": last, "train_seconds": round(train_s, 1), "seed": cfg.seed}})
    ours = HifiGanVocoder.load(out)
    vocoders = {"hifigan": ours, "griffinlim": baseline}
    mcd = T.evaluate_mcd(vocoders, held) if held else {}
    units = T.evaluate_units(vocoders, held, tokenizer) if held else {}
    write_samples(out / "samples", held[: cfg.samples], vocoders)
    report = {"steps": last, "train_seconds": round(train_s, 1), "heldout": [u.id for u in held],
              "mcd_db": {k: round(v, 3) for k, v in mcd.items()}, "unit_accuracy": {k: round(v, 4) for k, v in units.items()}}
    if mcd:
        report["lower_mcd"] = min(vocoders, key=lambda k: mcd[k])
        if report["lower_mcd"] != "hifigan":
            log.warning("after %d steps the Griffin-Lim baseline has the lower MCD; train longer (steps=...), or generate with "
                        "--vocoder %s", last, out / "griffinlim")
    atomic_write_json(out / "eval.json", report)
    log.info("vocoder -> %s after %d steps (%.0f s); held-out MCD (dB): %s; re-encoded unit accuracy: %s", out, last, train_s,
             ", ".join(f"{k} {v:.2f}" for k, v in mcd.items()), ", ".join(f"{k} {v:.3f}" for k, v in units.items()))
    return 0


def write_samples(folder: Path, utts: list[Any], vocoders: dict[str, Any]) -> None:
    """``<id>_reference.wav`` and ``<id>_<vocoder>.wav`` for a few held-out utterances."""
    from tinywave.audio.io import save_wav

    for u in utts:
        save_wav(folder / f"{u.id}_reference.wav", u.wav)
        for name, voc in vocoders.items():
            save_wav(folder / f"{u.id}_{name}.wav", voc.vocode(u.units, u.speaker))

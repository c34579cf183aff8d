"""Recipe: train the unit HiFi-GAN vocoder on a corpus, and measure it against Griffin-Lim.

    tinywave vocoder train --manifest corpus/manifest.jsonl --tokenizer runs/units --out runs/vocoder \
        train.steps=1500 train.max_minutes=10 [loss.adversarial_start=500] [eval.asr=pocketsphinx]

The default generator is SpiritLM's unit HiFi-GAN with an iSTFT head (``model.istft_hop=160``):
upsampling stops at 100 frames per second and the last layer predicts magnitude and
phase for an inverse STFT, so every convolution runs at <= 100 Hz. On a 2-core CPU it
beats the Griffin-Lim baseline's mel-cepstral distortion within minutes, where the
plain 16 kHz generator (``model.istft_hop=0``) did not in 20 (docs/GENERATION.md has the figures).

Training is HiFi-GAN's: the generator warms up on the mel/STFT losses alone, and from
step ``loss.adversarial_start`` the multi-period and multi-scale discriminators join
(least-squares adversarial loss + feature matching, weights adv 1, fm 2, mel 45), each
step updating the discriminators and then the generator. ``model.disc_width`` scales the
discriminators' channels (1.0: HiFi-GAN's). The vocoder folder holds the generator only.

Units come from the speech tokenizer (raw frames, not deduplicated); speakers from the
manifest's ``speaker``. Writes ``OUT/config.json`` (SpiritLM's field names),
``OUT/generator.safetensors``, ``OUT/speakers.txt``, the Griffin-Lim baseline in
``OUT/griffinlim/``, ``OUT/eval.json`` (on held-out utterances, ours vs the baseline:
mel-cepstral distortion against the ground truth, and the share of units the speech
tokenizer recovers from the resynthesis, and with ``eval.asr=...`` the word error rate of a
recognizer on the original audio and on each resynthesis), resynthesized samples in
``OUT/samples/``, per-step losses (``loss``, ``mel``, ``stft``, ``duration``, ``g/adv``,
``g/fm``, ``d/loss``, ``d/mpd``, ``d/msd``) in ``OUT/train_log.jsonl``, TensorBoard events
and ``OUT/loss_curves.png``. Training runs on the shared loop (tinywave/training/trainer.py):
an interrupted run continues with ``train.resume=true`` from ``OUT/checkpoints/step_*/``
(generator, discriminators, both optimizers and schedules, the random states).

Keys are grouped in sections as in the LM recipes (``train``, ``data``, ``optim``, ``model``,
``loss``, ``eval``); the flat keys they replaced are listed in ``Config.RENAMED`` and refused
with the new name.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tinywave.audio.io import save_wav
from tinywave.config import field, to_dict
from tinywave.data.manifest import read_manifest
from tinywave.eval.wer import normalize_text
from tinywave.files import atomic_write_json
from tinywave.training.schedules import schedule_named
from tinywave.training.settings import REPORT_TO_HELP, TRACKER_RENAMES, OptimSettings, RunSettings
from tinywave.vocoder.units import deduplicate

log = logging.getLogger(__name__)


@dataclass
class TrainSection:
    steps: int = field(1500, help="training steps")
    max_minutes: float = field(0.0, help="stop after this many minutes of training and evaluate (0: no limit); the "
                                         "learning rate decays with whichever budget, steps or minutes, is further spent")
    ckpt_every: int = field(200, help="checkpoint every N steps")
    keep_checkpoints: int = field(2, help="keep the N newest checkpoints (0: keep all)")
    resume: bool = field(False, help="continue from the newest checkpoint in OUT/checkpoints (required when there is one)")
    stop_after_steps: int = field(0, help="run at most N steps in this invocation, then checkpoint and evaluate (0: no limit)")
    seed: int = field(0, help="seed for the split, segments and initialization")
    report_to: list[str] = field(["tensorboard"], help=REPORT_TO_HELP)
    threads: int = field(0, help="torch threads (0: torch's default; 1 is faster on a busy machine)")


@dataclass
class DataSection:
    batch_size: int = field(8, help="segments per step")
    segment_units: int = field(16, help="segment length in unit frames")
    heldout: int = field(8, help="utterances held out for the MCD evaluation")
    max_items: int = field(0, help="use at most this many utterances (0: all)")


@dataclass
class OptimSection:
    lr: float = field(4e-3, help="peak learning rate (AdamW, warm-up then cosine)")
    grad_clip: float = field(45.0, help="generator gradient-norm clip (0: none)")
    disc_lr: float = field(2e-4, help="peak learning rate of the discriminators (AdamW, HiFi-GAN: 2e-4), on the generator's schedule")


@dataclass
class ModelSection:
    channels: int = field(512, help="upsample_initial_channel (SpiritLM: 512)")
    embedding_dim: int = field(64, help="unit/speaker embedding width (SpiritLM: 128)")
    kernels: list[int] = field([3], help="resblock kernel sizes (SpiritLM: [3, 7, 11])")
    istft_hop: int = field(160, help="iSTFT head: samples per STFT frame, must divide the unit hop (0: SpiritLM's plain "
                                     "upsampling to 16 kHz, much slower to train on a CPU)")
    istft_n_fft: int = field(0, help="iSTFT head: FFT size (0: 4 x istft_hop)")
    num_units: int = field(0, help="unit table size (0: from the tokenizer, else the largest unit seen + 1)")
    disc_width: float = field(0.25, help="discriminator channels as a share of HiFi-GAN's (1.0: MPD 32..1024, MSD 128..1024)")
    disc_segment: int = field(8192, help="samples per row the discriminators judge, a random window of each segment "
                                         "(HiFi-GAN: 8192; 0: the whole segment)")


@dataclass
class LossSection:
    mel_weight: float = field(45.0, help="weight of the log-mel L1 loss (HiFi-GAN: 45)")
    stft_weight: float = field(4.5, help="weight of the multi-resolution STFT loss (4.5: the 10:1 mel:STFT balance of the "
                                         "regression-only default)")
    adv_weight: float = field(1.0, help="weight of the least-squares adversarial loss of the generator (HiFi-GAN: 1)")
    fm_weight: float = field(2.0, help="weight of the feature-matching loss (HiFi-GAN: 2)")
    adversarial_start: int = field(-1, help="step at which the discriminators join (adversarial + feature-matching losses); "
                                            "-1: never, the generator trains on mel/STFT alone")


@dataclass
class EvalSection:
    samples: int = field(3, help="held-out utterances resynthesized into OUT/samples/")
    asr: str = field("", help="recognizer for the held-out word error rate: pocketsphinx (pip install 'tinywave[asr]'), "
                              "whisper:DIR or ctc:DIR ('' : no WER)")
    asr_domain_lm: bool = field(True, help="pocketsphinx: decode with a trigram model of the training transcripts "
                                           "(OUT/asr_lm.arpa) instead of its general English one")


# the flat keys of the earlier vocoder config -> their section keys (an old key is an error naming the new one)
_SECTIONS = {
    "train": ("steps", "seed", "threads"), "data": ("segment_units", "heldout", "max_items"),
    "optim": ("lr", "grad_clip", "disc_lr"),
    "model": ("channels", "embedding_dim", "kernels", "istft_hop", "istft_n_fft", "num_units", "disc_width", "disc_segment"),
    "loss": ("mel_weight", "stft_weight", "adv_weight", "fm_weight", "adversarial_start"),
    "eval": ("samples", "asr", "asr_domain_lm"),
}
_RENAMED = {key: f"{section}.{key}" for section, keys in _SECTIONS.items() for key in keys}


@dataclass
class Config:
    RENAMED: ClassVar[dict[str, str]] = {
        **_RENAMED, **TRACKER_RENAMES, "minutes": "train.max_minutes", "save_every": "train.ckpt_every", "batch": "data.batch_size",
        "wandb": "train.report_to"}
    manifest: str = field("", help="corpus manifest (JSON lines with id, audio, speaker)")
    tokenizer: str = field("", help="speech tokenizer directory (`tinywave units train` output)")
    out: str = field("", help="output vocoder directory")
    resume: bool = field(False, help="continue from the newest checkpoint in OUT/checkpoints (same as train.resume)")
    train: TrainSection = field(default_factory=TrainSection, help="run")
    data: DataSection = field(default_factory=DataSection, help="segments and the held-out split")
    optim: OptimSection = field(default_factory=OptimSection, help="optimizers")
    model: ModelSection = field(default_factory=ModelSection, help="generator and discriminator shapes")
    loss: LossSection = field(default_factory=LossSection, help="loss weights and the adversarial start")
    eval: EvalSection = field(default_factory=EvalSection, help="held-out evaluation and samples")


def load_speech_tokenizer(path: str) -> Any:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"speech tokenizer directory {path} not found; train one with `tinywave units train --out {path}`")
    from tinywave.speech.tokenizer import SpeechTokenizer  # lazy: tinywave.speech imports scipy (~0.2 s); recipe modules import without it

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
    import torch  # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)

    # lazy: these import torch (~1.4 s)
    from tinywave.eval.asr import load_recognizer
    from tinywave.training.trainer import resume_point
    from tinywave.vocoder import train as T
    from tinywave.vocoder.backends import HifiGanVocoder, save_hifigan
    from tinywave.vocoder.griffinlim import GriffinLimVocoder, fit_unit_mels
    from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

    if not cfg.manifest or not cfg.tokenizer or not cfg.out:
        raise ValueError("vocoder train needs --manifest FILE, --tokenizer DIR and --out DIR")
    out = Path(cfg.out)
    torch.manual_seed(cfg.train.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    recognizer = load_recognizer(cfg.eval.asr) if cfg.eval.asr else None  # a bad eval.asr=... fails before any training
    resume_from = resume_point(run_settings(cfg, out), to_dict(cfg))  # checkpoints without train.resume=true: refused now
    # 1. corpus -> raw unit frames (cached in OUT/units.jsonl), speakers, held-out split
    items, bad = read_manifest(cfg.manifest)
    random.Random(cfg.train.seed).shuffle(items)
    items = items[: cfg.data.max_items] if cfg.data.max_items else items
    speakers = sorted({it.speaker for it in items if it.speaker is not None})
    tokenizer = load_speech_tokenizer(cfg.tokenizer)
    errors = [b.to_json() for b in bad]
    utts = T.extract_units(items, tokenizer, speakers, out / "units.jsonl", errors)
    if errors:
        atomic_write_json(out / "errors.json", errors)
        log.warning("%d manifest item(s) skipped, see %s", len(errors), out / "errors.json")
    if len(utts) < 2:
        raise ValueError(f"{cfg.manifest}: only {len(utts)} usable utterance(s); the vocoder needs a corpus")
    n_held = min(cfg.data.heldout, len(utts) // 5)
    train, held = utts[n_held:], utts[:n_held]
    # 2. model: SpiritLM's architecture, scaled down
    sizes = table_sizes(tokenizer, utts, cfg.model.num_units)
    hop = int(round(16000 / float(tokenizer.rates["hubert"])))
    stream_hops = {f"{k}_hop_size": int(round(16000 / float(tokenizer.rates[s]))) for k, s in (("f0", "pitch"), ("style", "style"))
                   if sizes[s] and s in tokenizer.rates}  # samples per pitch / style code, from the tokenizer
    model_cfg = small_config(int(sizes["hubert"] or 1), hop, channels=cfg.model.channels, embedding_dim=cfg.model.embedding_dim,
                             num_speakers=len(speakers) if len(speakers) > 1 else 0, num_f0_tokens=sizes["pitch"],
                             num_style_tokens=sizes["style"], kernels=tuple(cfg.model.kernels),
                             istft_hop=cfg.model.istft_hop, istft_n_fft=cfg.model.istft_n_fft, **stream_hops)
    model = UnitHiFiGAN(model_cfg).train()
    log.info("vocoder: %d units, hop %d, upsampling %s, %.2fM parameters, %d train / %d held-out utterances",
             model_cfg.num_embeddings, hop, model_cfg.upsample_rates, sum(p.numel() for p in model.parameters()) / 1e6,
             len(train), len(held))
    # 3. train (resuming from OUT/checkpoint.*)
    last, train_s = train_loop(cfg, out, model, train, hop, resume_from)
    # 4. the Griffin-Lim baseline and both vocoders on held-out utterances
    table, runs = fit_unit_mels(((np.asarray(u.units.hubert), u.wav, u.speaker) for u in train), model_cfg.num_embeddings,
                                max(len(speakers), 1), hop)
    baseline = GriffinLimVocoder(table, runs, hop, speakers)
    baseline.save(out / "griffinlim")
    save_hifigan(out, model, speakers, {"tinywave": {"steps": last, "train_seconds": round(train_s, 1), "seed": cfg.train.seed}})
    vocoders = {"hifigan": HifiGanVocoder.load(out), "griffinlim": baseline}
    mcd = T.evaluate_mcd(vocoders, held) if held else {}
    units = T.evaluate_units(vocoders, held, tokenizer) if held else {}
    write_samples(out / "samples", held[: cfg.eval.samples], vocoders)
    report = {"steps": last, "train_seconds": round(train_s, 1), "heldout": [u.id for u in held],
              "mcd_db": {k: round(v, 3) for k, v in mcd.items()}, "unit_accuracy": {k: round(v, 4) for k, v in units.items()}}
    if recognizer is not None and held:
        report["intelligibility"] = heldout_wer(cfg, out, recognizer, items, train, held, vocoders=vocoders)
    if mcd:
        report["lower_mcd"] = min(vocoders, key=lambda k: mcd[k])
        if report["lower_mcd"] != "hifigan":
            log.warning("after %d steps the Griffin-Lim baseline has the lower MCD; train longer (train.steps=...), or generate with "
                        "--vocoder %s", last, out / "griffinlim")
    atomic_write_json(out / "eval.json", report)
    log.info("vocoder -> %s after %d steps (%.0f s); held-out MCD (dB): %s; re-encoded unit accuracy: %s", out, last, train_s,
             ", ".join(f"{k} {v:.2f}" for k, v in mcd.items()), ", ".join(f"{k} {v:.3f}" for k, v in units.items()))
    return 0


def train_loop(cfg: Config, out: Path, model: Any, train: list[Any], hop: int, resume_from: Path | None) -> tuple[int, float]:
    """Warm-up on mel/STFT, then HiFi-GAN's alternating updates, on the shared training loop; (steps done, seconds).

    The generator is the loop's model (AdamW, betas 0.8 / 0.99, warm-up then cosine decay to
    5%, decaying faster when ``train.max_minutes`` is spent sooner); the discriminators'
    optimizer is a side optimizer the objective steps, on the same schedule. Checkpoints:
    OUT/checkpoints/step_*/ (generator, discriminators, both optimizers, RNGs, segment streams).
    """
    import torch  # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)

    # lazy: these import torch (~1.4 s)
    from tinywave.training.trainer import fit
    from tinywave.vocoder import train as T
    from tinywave.vocoder.adversarial import Adversary
    from tinywave.vocoder.discriminators import DiscriminatorConfig, Discriminators

    # 1. discriminators and their optimizer (HiFi-GAN: AdamW, betas 0.8 / 0.99); the schedule of the generator's
    disc = Discriminators(DiscriminatorConfig(width=cfg.model.disc_width)).train()
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.optim.disc_lr, betas=(0.8, 0.99), weight_decay=0.0)
    adversary = Adversary(disc, opt_d, cfg.loss.adv_weight, cfg.loss.fm_weight, segment=cfg.model.disc_segment)
    modules = {"generator": model, "discriminators": disc}
    if cfg.loss.adversarial_start >= 0:
        log.info("discriminators (%.2fM parameters) join at step %d", sum(p.numel() for p in disc.parameters()) / 1e6,
                 cfg.loss.adversarial_start)
    # 2. resume (train.resume=true) or start; random segments and duration rows
    run = run_settings(cfg, out)
    if resume_from is not None:
        T.load_weights(resume_from, modules)
    sampler = T.SegmentSampler(train, cfg.data.segment_units, hop, model.cfg.hubert_to_f0, model.cfg.hubert_to_style, cfg.train.seed)
    stream = T.SegmentStream(train, sampler, cfg.data.batch_size, cfg.train.seed)
    optim = OptimSettings(lr=cfg.optim.lr, betas=[0.8, 0.99], weight_decay=0.0, warmup_steps=50, schedule="cosine",
                          min_lr_ratio=0.05, grad_clip=cfg.optim.grad_clip)
    t0 = time.monotonic()
    budget = (lambda: (time.monotonic() - t0) / (60.0 * cfg.train.max_minutes)) if cfg.train.max_minutes > 0 else None
    schedule = schedule_named("cosine", optim.warmup_steps, cfg.train.steps, optim.min_lr_ratio, spent=budget)
    # 3. the loop
    objective = T.GeneratorObjective(model, T.VocoderLoss(cfg.loss.mel_weight, cfg.loss.stft_weight), adversary, cfg.loss.adversarial_start)
    result = fit(objective, list(model.parameters()), stream, optim, run, lambda folder: T.save_weights(folder, modules), config=to_dict(cfg),
                 resume_from=resume_from, schedule=schedule, side_optimizers={"disc": opt_d})
    return result.step, result.elapsed_s


def run_settings(cfg: Config, out: Path) -> Any:
    """The loop's run settings from the train section (fp32, TensorBoard, a log line per step)."""
    t = cfg.train
    return RunSettings(out=str(out), steps=t.steps, seed=t.seed, log_every=1, ckpt_every=t.ckpt_every, keep_checkpoints=t.keep_checkpoints,
                       resume=t.resume or cfg.resume, max_minutes=t.max_minutes, stop_after_steps=t.stop_after_steps, report_to=t.report_to,
                       device="cpu")


def heldout_wer(cfg: Config, out: Path, recognizer: Any, items: list[Any], train: list[Any], held: list[Any],
                *, vocoders: dict[str, Any]) -> dict[str, Any]:
    """WER / CER of the held-out originals and of each vocoder's resynthesis (raw frames and with predicted durations)."""
    # lazy: these import torch (~1.4 s); recipe modules import without it
    from tinywave.eval.asr import PocketSphinxRecognizer, build_language_model
    from tinywave.eval.resynthesis import Spoken, intelligibility

    text = {it.id: it.text for it in items if it.text}
    spoken = [Spoken(u.id, u.wav[: len(u.units) * vocoders["hifigan"].hop], text[u.id]) for u in held if u.id in text]
    if not spoken:
        log.warning("eval.asr=%s: the held-out utterances have no 'text' in %s; no word error rate", cfg.eval.asr, cfg.manifest)
        return {}
    said = {normalize_text(x.text) for x in spoken}  # the evaluated sentences never reach the language model
    train_texts = [text[u.id] for u in train if u.id in text and normalize_text(text[u.id]) not in said]
    if cfg.eval.asr == "pocketsphinx" and cfg.eval.asr_domain_lm and train_texts:  # the general English model, narrowed to the corpus
        recognizer = PocketSphinxRecognizer(lm=build_language_model(train_texts, out / "asr_lm.arpa"))
    kept = [u for u in held if u.id in text]
    resyntheses: dict[str, list[Any]] = {}
    for name, voc in vocoders.items():
        resyntheses[name] = [voc.vocode(u.units, u.speaker) for u in kept]
        resyntheses[f"{name}+durations"] = [voc.vocode(deduplicate(u.units, voc.f0_ratio, voc.style_ratio)[0], u.speaker) for u in kept]
    report = intelligibility(spoken, resyntheses, recognizer)
    log.info("held-out WER (%s): original %.3f; %s", report["asr"], report["original"]["wer"],
             ", ".join(f"{k} {v['wer']:.3f}" for k, v in report["vocoders"].items()))
    return report


def write_samples(folder: Path, utts: list[Any], vocoders: dict[str, Any]) -> None:
    """``<id>_reference.wav`` and ``<id>_<vocoder>.wav`` for a few held-out utterances."""
    for u in utts:
        save_wav(folder / f"{u.id}_reference.wav", u.wav)
        for name, voc in vocoders.items():
            save_wav(folder / f"{u.id}_{name}.wav", voc.vocode(u.units, u.speaker))

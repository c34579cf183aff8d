"""Recipe: train a small HuBERT-style teacher by masked prediction of unit targets.

    tinywave sfm pretrain --manifest corpus/manifest.jsonl --out runs/sfm-teacher
    tinywave sfm pretrain --manifest m.jsonl --out runs/t --units runs/units train.steps=2000

HuBERT's first iteration: targets are the ``hubert`` stream of a speech tokenizer
directory (``--units``, docs/FORMATS.md); without one, the built-in MFCC k-means
tokenizer is fitted on the manifest at 50 Hz into OUT/units/ (``tinywave units train``). The teacher is written to OUT/teacher/ as a plain
Hugging Face directory (loads with ``HubertModel.from_pretrained``); the unit classifier
sits beside it in ``unit_head.safetensors``. Training runs on the shared loop
(tinywave/training/trainer.py); an interrupted run continues from OUT/checkpoints/ with
``train.resume=true`` (or ``--resume``). Keys follow
the LM recipes (``model.width/n_layers/ffn``, ``data``, ``optim``, ``train``); the keys they
replaced are listed in ``Config.RENAMED`` and refused with the new name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tinywave.config import field, to_dict
from tinywave.files import atomic_dir, atomic_write_json
from tinywave.recipes import units_train
from tinywave.training.settings import REPORT_TO_HELP, TRACKER_RENAMES, RunSettings

log = logging.getLogger(__name__)


@dataclass
class ModelSection:
    width: int = field(192, help="transformer hidden size")
    n_layers: int = field(4, help="transformer layers")
    heads: int = field(4, help="attention heads")
    ffn: int = field(768, help="feed-forward width")
    conv_channels: int = field(64, help="channels of each CNN layer (HuBERT-Base: 512; strides as Base, 20 ms frames)")


@dataclass
class DataSection:
    batch_size: int = field(8, help="crops per step")
    crop_seconds: float = field(1.5, help="random crop length")


@dataclass
class OptimSection:
    lr: float = field(1e-3, help="peak learning rate (AdamW)")
    warmup_steps: int = field(50, help="linear warm-up steps")


@dataclass
class MaskSection:
    prob: float = field(0.65, help="fraction of frames covered by masked spans (HuBERT: ~0.8 starts x 10)")
    span: int = field(5, help="frames per masked span")


@dataclass
class TrainSection:
    steps: int = field(600, help="optimizer steps")
    seed: int = field(0, help="seed for init, batches and masks")
    ckpt_every: int = field(250, help="checkpoint every N steps (for resume)")
    keep_checkpoints: int = field(1, help="checkpoints kept")
    log_every: int = field(1, help="write every N-th step's record to train_log.jsonl")
    resume: bool = field(False, help="continue from the newest checkpoint in OUT/checkpoints (required when there is one)")
    stop_after_steps: int = field(0, help="run at most N steps in this invocation, then checkpoint and stop (a rerun with "
                                          "train.resume=true continues); 0: no limit")
    report_to: list[str] = field(["tensorboard"], help=REPORT_TO_HELP)


@dataclass
class Config:
    RENAMED: ClassVar[dict[str, str]] = {
        "model.hidden_size": "model.width", "model.num_layers": "model.n_layers", "model.intermediate_size": "model.ffn",
        "train.batch_size": "data.batch_size", "train.crop_seconds": "data.crop_seconds",
        "train.lr": "optim.lr", "train.warmup": "optim.warmup_steps",
        "train.mask_prob": "mask.prob", "train.mask_span": "mask.span", "train.save_every": "train.ckpt_every",
        **TRACKER_RENAMES,
    }
    manifest: str = field("", help="training manifest (JSON lines with audio paths; docs/FORMATS.md)")
    out: str = field("", help="output directory (teacher/, units/, train_log.jsonl, checkpoints/)")
    resume: bool = field(False, help="continue from the newest checkpoint in OUT/checkpoints (same as train.resume)")
    units: str = field("", help="speech tokenizer directory whose 'hubert' stream gives the targets; empty: fit MFCC k-means")
    n_units: int = field(100, help="k-means clusters of the built-in MFCC targets (HuBERT: 100)")
    max_items: int = field(0, help="use at most this many utterances (0: all)")
    model: ModelSection = field(default_factory=ModelSection, help="teacher size")
    data: DataSection = field(default_factory=DataSection, help="batches")
    optim: OptimSection = field(default_factory=OptimSection, help="optimizer")
    mask: MaskSection = field(default_factory=MaskSection, help="masked spans")
    train: TrainSection = field(default_factory=TrainSection, help="run")


def _labeler(cfg: Config):
    """The unit targets: ``--units DIR``, or a built-in MFCC k-means tokenizer fitted into OUT/units."""
    from tinywave.sfm.units import SharedUnits  # lazy: sfm.units (tinywave.speech) imports scipy (~0.2 s); recipe modules import without it

    units = Path(cfg.units) if cfg.units else Path(cfg.out) / "units"
    if cfg.units and not (units / "speech_tokenizer.json").is_file():
        raise FileNotFoundError(f"--units {units} has no speech_tokenizer.json; pass a `tinywave units train` output or leave it empty")
    if not (units / "speech_tokenizer.json").is_file():  # HuBERT's first iteration: MFCC k-means at the frame rate
        units_train.run(units_train.Config(manifest=[cfg.manifest], out=str(units), kind="mfcc_kmeans", rate=50.0,
                                           n_units=cfg.n_units, seed=cfg.train.seed, workers=1))
    return SharedUnits(units)


def run(cfg: Config) -> int:
    import torch  # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)

    # lazy: these import torch and transformers (~4.5 s); recipe modules import without them
    from tinywave.sfm.data import load_bank
    from tinywave.sfm.models import teacher_config
    from tinywave.sfm.pretrain import MaskedUnitModel, PretrainSettings, load_checkpoint, pretrain, utterance_labels
    from tinywave.training.trainer import resume_point
    from transformers import HubertModel

    if not cfg.manifest or not cfg.out:
        raise ValueError("--manifest and --out are required (a training manifest and an output directory)")
    out, t, d = Path(cfg.out), cfg.train, cfg.data
    resume_from = resume_point(RunSettings(out=str(out), resume=t.resume or cfg.resume), to_dict(cfg))  # refused early without resume
    # 1. audio and unit targets (per utterance, one label per encoder frame)
    bank = load_bank(cfg.manifest, cfg.max_items)
    labeler = _labeler(cfg)
    m = cfg.model
    config = teacher_config(m.width, m.n_layers, m.heads, m.ffn, m.conv_channels)
    labels = utterance_labels(bank, labeler, config)
    n_units = labeler.n_units or int(max(int(x.max()) for x in labels) + 1)
    # 2. the model: resumed from the last checkpoint, or fresh
    if resume_from is not None:
        model = load_checkpoint(resume_from, n_units)
    else:
        torch.manual_seed(t.seed)
        model = MaskedUnitModel(HubertModel(config), n_units)
    # 3. masked prediction on the shared training loop
    settings = PretrainSettings(steps=t.steps, batch_size=d.batch_size, crop_samples=int(d.crop_seconds * 16000),
                                lr=cfg.optim.lr, warmup_steps=cfg.optim.warmup_steps, mask_prob=cfg.mask.prob, mask_span=cfg.mask.span,
                                seed=t.seed, log_every=t.log_every, ckpt_every=t.ckpt_every, keep_checkpoints=t.keep_checkpoints,
                                stop_after_steps=t.stop_after_steps, report_to=tuple(t.report_to))
    summary = pretrain(model, bank, labels, settings, out, resume_from, config=to_dict(cfg))
    if not summary["finished"]:
        log.info("stopped at step %d of %d; rerun with train.resume=true to continue", summary["step"], t.steps)
        return 0
    # 4. export the teacher as a plain HF directory
    with atomic_dir(out / "teacher") as tmp:
        model.save(tmp)
    atomic_write_json(out / "pretrain_summary.json", {**summary, "n_units": n_units, "utterances": len(bank),
                                                      "config": to_dict(cfg)})
    log.info("teacher -> %s (masked-unit loss %.3f, accuracy %.3f)", out / "teacher", summary["loss"], summary["masked_acc"])
    return 0

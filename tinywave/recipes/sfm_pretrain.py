"""Recipe: train a small HuBERT-style teacher by masked prediction of unit targets.

    tinywave sfm pretrain --manifest corpus/manifest.jsonl --out runs/sfm-teacher
    tinywave sfm pretrain --manifest m.jsonl --out runs/t --units runs/units train.steps=2000

HuBERT's first iteration: targets are the ``hubert`` stream of a speech tokenizer
directory (``--units``, docs/FORMATS.md); without one, the built-in MFCC k-means
tokenizer is fitted on the manifest at 50 Hz into OUT/units/ (``tinywave units train``). The teacher is written to OUT/teacher/ as a plain
Hugging Face directory (loads with ``HubertModel.from_pretrained``); the unit classifier
sits beside it in ``unit_head.safetensors``. A rerun resumes from OUT/checkpoints/.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tinywave.config import field, to_dict

log = logging.getLogger(__name__)


@dataclass
class ModelSection:
    hidden_size: int = field(192, help="transformer width")
    num_layers: int = field(4, help="transformer layers")
    heads: int = field(4, help="attention heads")
    intermediate_size: int = field(768, help="feed-forward width")
    conv_channels: int = field(64, help="channels of each CNN layer (HuBERT-Base: 512; strides as Base, 20 ms frames)")


@dataclass
class TrainSection:
    steps: int = field(600, help="optimizer steps")
    batch_size: int = field(8, help="crops per step")
    crop_seconds: float = field(1.5, help="random crop length")
    lr: float = field(1e-3, help="peak learning rate (AdamW)")
    warmup: int = field(50, help="linear warmup steps")
    mask_prob: float = field(0.65, help="fraction of frames covered by masked spans (HuBERT: ~0.8 starts x 10)")
    mask_span: int = field(5, help="frames per masked span")
    seed: int = field(0, help="seed for init, batches and masks")
    save_every: int = field(250, help="checkpoint every N steps (for resume)")
    wandb: bool = field(False, help="also log to Weights & Biases under OUT/wandb (pip install 'tinywave[wandb]'; WANDB_MODE=offline: no network)")


@dataclass
class Config:
    manifest: str = field("", help="training manifest (JSON lines with audio paths; docs/FORMATS.md)")
    out: str = field("", help="output directory (teacher/, units/, train_log.jsonl, checkpoints/)")
    units: str = field("", help="speech tokenizer directory whose 'hubert' stream gives the targets; empty: fit MFCC k-means")
    n_units: int = field(100, help="k-means clusters of the built-in MFCC targets (HuBERT: 100)")
    max_items: int = field(0, help="use at most this many utterances (0: all)")
    model: ModelSection = field(default_factory=ModelSection, help="teacher size")
    train: TrainSection = field(default_factory=TrainSection, help="training")


def _labeler(cfg: Config):
    """The unit targets: ``--units DIR``, or a built-in MFCC k-means tokenizer fitted into OUT/units."""
    from tinywave.recipes import units_train
    from tinywave.sfm.units import SharedUnits

    units = Path(cfg.units) if cfg.units else Path(cfg.out) / "units"
    if cfg.units and not (units / "speech_tokenizer.json").is_file():
        raise FileNotFoundError(f"--units {units} has no speech_tokenizer.json; pass a `tinywave units train` output or leave it empty")
    if not (units / "speech_tokenizer.json").is_file():  # HuBERT's first iteration: MFCC k-means at the frame rate
        units_train.run(units_train.Config(manifest=[cfg.manifest], out=str(units), kind="mfcc_kmeans", rate=50.0,
                                           n_units=cfg.n_units, seed=cfg.train.seed, workers=1))
    return SharedUnits(units)


def run(cfg: Config) -> int:
    import torch

    from tinywave.files import atomic_dir, atomic_write_json
    from tinywave.sfm.data import load_bank
    from tinywave.sfm.models import teacher_config
    from tinywave.sfm.optim import latest_checkpoint, read_trainer_state
    from tinywave.sfm.pretrain import MaskedUnitModel, PretrainSettings, load_checkpoint, pretrain, utterance_labels
    from transformers import HubertModel

    if not cfg.manifest or not cfg.out:
        raise ValueError("--manifest and --out are required (a training manifest and an output directory)")
    out = Path(cfg.out)
    # 1. audio and unit targets (per utterance, one label per encoder frame)
    bank = load_bank(cfg.manifest, cfg.max_items)
    labeler = _labeler(cfg)
    m = cfg.model
    config = teacher_config(m.hidden_size, m.num_layers, m.heads, m.intermediate_size, m.conv_channels)
    labels = utterance_labels(bank, labeler, config)
    n_units = labeler.n_units or int(max(int(x.max()) for x in labels) + 1)
    # 2. the model: resumed from the last checkpoint, or fresh
    ckpt = latest_checkpoint(out / "checkpoints")
    if ckpt is not None:
        model, start = load_checkpoint(ckpt, n_units), read_trainer_state(ckpt)["step"]
        log.info("resuming teacher pretraining from %s (step %d)", ckpt, start)
    else:
        torch.manual_seed(cfg.train.seed)
        model, start = MaskedUnitModel(HubertModel(config), n_units), 0
    # 3. masked prediction
    t = cfg.train
    settings = PretrainSettings(steps=t.steps, batch_size=t.batch_size, crop_samples=int(t.crop_seconds * 16000),
                                lr=t.lr, warmup=t.warmup, mask_prob=t.mask_prob, mask_span=t.mask_span, seed=t.seed,
                                save_every=t.save_every, wandb=t.wandb)
    summary = pretrain(model, bank, labels, settings, out, start, ckpt)
    # 4. export the teacher as a plain HF directory
    with atomic_dir(out / "teacher") as tmp:
        model.save(tmp)
    atomic_write_json(out / "pretrain_summary.json", {**summary, "n_units": n_units, "utterances": len(bank),
                                                      "config": to_dict(cfg)})
    log.info("teacher -> %s (masked-unit loss %.3f, accuracy %.3f)", out / "teacher", summary["loss"], summary["masked_acc"])
    return 0

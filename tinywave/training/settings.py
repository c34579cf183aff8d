"""Typed settings of the training loop, shared by every training recipe.

``DataSettings``, ``OptimSettings`` and ``RunSettings`` are the ``data``, ``optim`` and
``train`` sections of ``tinywave train`` and ``tinywave distill``; the SFM and vocoder
recipes build ``OptimSettings`` and ``RunSettings`` from their own sections (same key
names). They are the typed arguments of :func:`tinywave.training.trainer.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinywave.config import field

# the run trackers besides train_log.jsonl (tinywave/training/runlog.py), one key for every training recipe
TRACKERS = ("tensorboard", "wandb")
REPORT_TO_HELP = ("trackers besides train_log.jsonl: tensorboard (OUT/tensorboard) and wandb (OUT/wandb; pip install "
                  "'tinywave[wandb]'; WANDB_MODE=offline needs no network); [] for neither")
# the two booleans report_to replaced, refused with its name (a recipe Config's RENAMED)
TRACKER_RENAMES = {"train.tensorboard": "train.report_to", "train.wandb": "train.report_to"}


def check_report_to(names: list[str]) -> None:
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(f"train.report_to={list(names)} names {unknown}, which is not a tracker; choose from {list(TRACKERS)} "
                         "(e.g. train.report_to=[tensorboard,wandb], or [] for neither)")

@dataclass
class DataSettings:
    shards: str = field("", help="training shard folder (`tinywave data build --out`)")
    batch_size: int = field(8, help="sequences per micro-batch")
    seq_len: int = field(0, help="expected row length of the shards (0: accept the shards' own)")


@dataclass
class OptimSettings:
    lr: float = field(3e-4, help="peak learning rate (AdamW)")
    betas: list[float] = field([0.9, 0.95], help="AdamW betas")
    weight_decay: float = field(0.1, help="AdamW weight decay (matrices only; norms and biases are not decayed)")
    eps: float = field(1e-8, help="AdamW epsilon")
    warmup_steps: int = field(10, help="linear warm-up steps before the decay")
    schedule: str = field("cosine", help="decay after the warm-up: cosine or linear (tinywave/training/schedules.py)")
    min_lr_ratio: float = field(0.1, help="final learning rate as a fraction of optim.lr")
    grad_clip: float = field(1.0, help="clip the global gradient norm to this value (0: no clipping)")
    accum_steps: int = field(1, help="micro-batches accumulated per optimizer step")


@dataclass
class RunSettings:
    out: str = field("", help="run folder: checkpoints/, model/, train_log.jsonl, tensorboard/, loss_curves.png")
    steps: int = field(100, help="optimizer steps of the whole run")
    seed: int = field(0, help="seed for initialisation and data order")
    precision: str = field("fp32", help="fp32 or bf16 (bf16 autocast; bfloat16 also works)")
    device: str = field("auto", help="auto, cpu or cuda")
    log_every: int = field(1, help="write a log line every N steps")
    ckpt_every: int = field(50, help="checkpoint every N steps (and always at the end)")
    keep_checkpoints: int = field(2, help="keep the N newest checkpoints (0: keep all)")
    resume: bool = field(False, help="continue from the newest checkpoint in train.out")
    max_minutes: float = field(0.0, help="checkpoint and stop after this much wall time (0: no limit)")
    stop_after_steps: int = field(0, help="run at most N steps in this invocation, then checkpoint and stop (0: no limit)")
    report_to: list[str] = field(["tensorboard"], help=REPORT_TO_HELP)
    on_nonfinite: str = field("stop", help="a NaN/inf loss or gradient: stop (no state saved) or skip (drop that step's update and go on)")
    max_skipped_steps: int = field(10, help="with on_nonfinite=skip: stop anyway after this many skipped steps in a row")

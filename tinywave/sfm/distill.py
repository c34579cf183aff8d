"""The SFM distillation loop, with depth growth (stacking) at scheduled steps.

    student = Student(...) or resume(out)            # the recipe builds or resumes it
    summary = distill(student, TeacherTargets(teacher, layers), bank, plan, settings, out)

Each step: a deterministic batch (``sample_batch(seed, step)``), the frozen teacher's
hidden states (online, or memoized per step by ``TeacherTargets(cache=...)``), the
student's predictions, the loss of its kind, AdamW with warmup + linear decay. Before
each step listed in ``plan.steps`` the student grows with ``plan.op`` (targets rewritten
by the operator) and the optimizer is rebuilt with its state reset or copied.
Checkpoints record the depth and growth history, so a resumed run rebuilds the grown
architecture before loading weights and optimizer state.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from tinywave.files import load_jsonl
from tinywave.sfm.data import Batch, WaveBank, sample_batch
from tinywave.sfm.losses import distilhubert_loss, layer_to_layer_loss
from tinywave.sfm.models import downsample_rate, frame_lengths, front_end, hidden_states
from tinywave.sfm.optim import (
    latest_checkpoint,
    load_optimizer_state,
    lr_at,
    make_optimizer,
    read_trainer_state,
    save_checkpoint,
    set_lr,
)
from tinywave.sfm.student import Student
from tinywave.training.distributed import SINGLE, Parallel
from tinywave.training.runlog import RunLogger
from tinywave.stacking import apply_growth, carry_optimizer_state, layer_list, parameter_sources

log = logging.getLogger(__name__)


@dataclass
class GrowthPlan:
    op: str = "none"
    steps: list[int] = field(default_factory=list)  # global steps before which the student grows
    params: list[dict[str, int]] = field(default_factory=list)  # operator parameters per growth
    optimizer_mode: str = "copy"  # reset | copy


@dataclass
class LoopSettings:
    steps: int
    batch_size: int = 8
    crop_samples: int = 32000
    lr: float = 2e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    seed: int = 0
    intermediate_weight: float = 0.5
    log_every: int = 10
    save_every: int = 100
    keep: int = 2
    stop_at: int = 0  # stop after this many steps (0: run to the end); the next run resumes
    wandb: bool = False  # also log to Weights & Biases (tinywave.training.runlog)


class TeacherTargets:
    """The teacher's hidden states at ``layers`` for batch ``step`` (and, with ``share_front_end``,
    its CNN features for the student to reuse); memoized per step in ``cache`` if given.

    ``share_front_end`` is only valid when the student's CNN is frozen and identical to the
    teacher's (``models.same_front_end``): the CNN then runs once per batch for both.
    """

    def __init__(self, teacher: PreTrainedModel, layers: list[int], cache: dict[int, Any] | None = None,
                 share_front_end: bool = False):
        self.teacher, self.layers, self.cache, self.share = teacher.eval(), list(layers), cache, share_front_end

    @torch.no_grad()
    def __call__(self, step: int, batch: Batch) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
        if self.cache is not None and step in self.cache:
            return self.cache[step]
        feats = front_end(self.teacher, batch.wav) if self.share else None  # (B, C, T)
        states = hidden_states(self.teacher, batch.wav, batch.lengths, features=feats)  # L_t + 1 x (B, T, D_t)
        out = ({t: states[t] for t in self.layers}, feats)
        if self.cache is not None:
            self.cache[step] = out
        return out


def resume(out: str | Path) -> tuple[Student, dict[str, Any], Path] | None:
    """(student rebuilt at its recorded depth, trainer state, checkpoint folder) or None."""
    ckpt = latest_checkpoint(Path(out) / "checkpoints")
    if ckpt is None:
        return None
    return Student.load(ckpt), read_trainer_state(ckpt), ckpt


def grow_student(student: Student, optimizer: torch.optim.Optimizer, op: str, params: dict[str, int], mode: str,
                 lr: float, weight_decay: float, step: int) -> torch.optim.Optimizer:
    """Grow the student's encoder in place; returns the optimizer rebuilt over the new parameters."""
    optimizer.zero_grad(set_to_none=True)
    old_layers = list(layer_list(student.encoder))
    growth = apply_growth(student.encoder, op, student.targets, **params)
    student.targets = growth.targets
    student.check_targets()
    student.history.append({"step": step, "op": op, "params": params, "provenance": growth.provenance,
                            "depth": len(growth.layers), "targets": {str(j): t for j, t in growth.targets.items()}})
    new_opt = make_optimizer(student, lr, weight_decay)
    carry_optimizer_state(optimizer, new_opt, parameter_sources(old_layers, growth), mode)
    log.info("step %d: grew %s %s -> %d layers, targets %s, optimizer %s", step, op, params or "",
             len(growth.layers), growth.targets, mode)
    return new_opt


def loss_step(student: Student, targets: dict[int, torch.Tensor], batch: Batch, intermediate_weight: float,
              features: torch.Tensor | None = None, wrapped: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The student's loss of its kind on one batch (teacher targets precomputed); ``wrapped``: the
    student inside DistributedDataParallel, called instead of it."""
    preds, mask = (wrapped or student)(batch.wav, batch.lengths, features)  # {t: (B, T, D_t)}, (B, T)
    if student.kind == "distilhubert":
        return distilhubert_loss(preds, targets, mask)
    return layer_to_layer_loss(preds, targets, student.output_layer, mask, intermediate_weight)


# --- several processes (DDP): each rank takes its rows of the global batch ---------------------

def rank_share(batch: Batch, rank: int, size: int) -> Batch:
    """Rows ``[rank * size, (rank + 1) * size)`` of a global batch, padding width kept (so every item
    is computed exactly as in one process)."""
    rows = slice(rank * size, (rank + 1) * size)
    return Batch(batch.wav[rows], batch.lengths[rows], batch.index[rows], batch.start[rows])


def global_frame_mean(parallel: Parallel, loss: torch.Tensor, parts: dict[str, float], frames: int) -> tuple[float, dict[str, float]]:
    """(gradient scale of this rank's loss, the loss and parts as means over every rank's frames).

    Each rank's loss is a mean over its own frames; weighting it by its share of the frames
    (times the world size, which DDP's gradient averaging divides out) gives the gradient of
    the mean over the global batch, as in one process with the whole batch.
    """
    if parallel.world_size == 1:
        return 1.0, {"loss": loss.item(), **parts}
    total = parallel.sum({"frames": float(frames)})["frames"]
    share = frames / total
    values = parallel.sum({k: v * share for k, v in {"loss": loss.item(), **parts}.items()})
    return share * parallel.world_size, values


def distill(student: Student, teacher: TeacherTargets, bank: WaveBank, plan: GrowthPlan, cfg: LoopSettings,
            out: str | Path, state: dict[str, Any] | None = None, optimizer_from: Path | None = None,
            parallel: Parallel = SINGLE) -> dict[str, Any]:
    """Train ``student`` for ``cfg.steps`` steps (from ``state['step']`` when resuming).

    With ``parallel`` (DDP under torchrun) each rank takes ``cfg.batch_size`` rows of a global
    batch of ``cfg.batch_size`` x world size; rank 0 logs and writes checkpoints.
    """
    out = Path(out)
    start, elapsed = (state or {}).get("step", 0), (state or {}).get("train_seconds", 0.0)
    cpu = (state or {}).get("cpu_seconds", 0.0)  # process CPU time: less sensitive to other jobs on the machine
    stride = downsample_rate(student.encoder.config)
    optimizer = make_optimizer(student, cfg.lr, cfg.weight_decay)
    if optimizer_from is not None:
        load_optimizer_state(optimizer, optimizer_from)
    wrapped = parallel.wrap(student, find_unused=True)  # DDP: the growth below rewraps it
    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at > 0 else cfg.steps
    # rank 0 keeps the run log (train_log.jsonl, TensorBoard, W&B); every rank shows its own progress bar only without it
    logger = RunLogger(out, start, end, tensorboard=True, wandb=cfg.wandb, config=asdict(cfg)) if parallel.is_main else None
    student.train()
    loss_value, parts = float("nan"), {}
    for step in range(start, end):
        if step in plan.steps:
            k = plan.steps.index(step)
            optimizer = grow_student(student, optimizer, plan.op, plan.params[k], plan.optimizer_mode,
                                     cfg.lr, cfg.weight_decay, step)
            wrapped = parallel.wrap(student, find_unused=True)
        t0, c0 = time.perf_counter(), time.process_time()
        batch = sample_batch(bank, cfg.batch_size * parallel.world_size, cfg.crop_samples, cfg.seed, step, stride)
        batch = rank_share(batch, parallel.rank, cfg.batch_size)
        targets, features = teacher(step, batch)
        loss, parts = loss_step(student, targets, batch, cfg.intermediate_weight, features, wrapped)
        frames = int(frame_lengths(student.encoder.config, batch.lengths).sum())
        scale, values = global_frame_mean(parallel, loss, parts, frames)
        optimizer.zero_grad(set_to_none=True)
        (loss * scale if scale != 1.0 else loss).backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
        lr = lr_at(step, cfg.steps, cfg.lr, cfg.warmup)
        set_lr(optimizer, lr)
        optimizer.step()
        elapsed, cpu = elapsed + time.perf_counter() - t0, cpu + time.process_time() - c0
        loss_value, parts = values["loss"], {k: v for k, v in values.items() if k != "loss"}
        if logger is not None:
            logger.step({"step": step + 1, "loss": loss_value, **parts, "lr": lr, "depth": student.depth,
                         "train_seconds": round(elapsed, 4), "cpu_seconds": round(cpu, 4)}, write=True)
        if (step + 1) % cfg.log_every == 0:
            log.info("step %d/%d loss %.4f depth %d lr %.2e", step + 1, cfg.steps, loss_value, student.depth, lr)
        if ((step + 1) % cfg.save_every == 0 or step + 1 == end) and parallel.is_main:
            save_checkpoint(out / "checkpoints", step + 1, student.save, optimizer,
                            {"depth": student.depth, "train_seconds": elapsed, "cpu_seconds": cpu, "op": plan.op}, cfg.keep)
        if (step + 1) % cfg.save_every == 0 or step + 1 == end:
            parallel.barrier()  # no rank runs ahead of a checkpoint being written
    if logger is not None:
        logger.close()
    return {"step": end, "loss": loss_value, "parts": parts, "depth": student.depth, "train_seconds": elapsed,
            "cpu_seconds": cpu, "finished": end == cfg.steps}


def plot_losses(log_path: str | Path, growth_steps: list[int], png: str | Path, title: str = "") -> None:
    """Loss curve (and per-part curves) with the growth steps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = load_jsonl(log_path)
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["loss"] for r in rows], label="loss", lw=1.2)
    for key in sorted(k for k in rows[-1] if k.startswith(("mse/", "l1/")) and k[-1].isdigit()):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], label=key, lw=0.7, alpha=0.7)
    for g in growth_steps:
        ax.axvline(g, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)

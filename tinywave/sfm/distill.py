"""SFM distillation with depth growth (stacking) at scheduled steps, on the shared training loop.

    student = Student(...) or Student.load(checkpoint)   # the recipe builds or resumes it
    summary = distill(student, TeacherTargets(teacher, layers), bank, plan, settings, out)

Each step (``tinywave.training.trainer.fit``): a deterministic batch
(``sample_batch(seed, step)`` through :class:`~tinywave.sfm.data.CropStream`), the frozen
teacher's hidden states (online, or memoized per step by ``TeacherTargets(cache=...)``),
the student's predictions, the loss of its kind (a mean over real frames), AdamW with
warm-up + linear decay to 10%. After each step listed in ``plan.steps`` the student grows
with ``plan.op`` (targets rewritten by the operator) and the optimizer is rebuilt with its
state reset or copied (:class:`StudentGrowth`, the loop's growth hook). Checkpoints
(``OUT/checkpoints/step_*``) hold the student at its current depth with its growth history
(``sfm_student.json``), so a resumed run rebuilds the grown architecture before loading
the optimizer state.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from tinywave.files import load_jsonl
from tinywave.sfm.data import Batch, CropStream, WaveBank, as_batch
from tinywave.sfm.losses import distilhubert_loss, layer_to_layer_loss
from tinywave.sfm.models import downsample_rate, frame_lengths, front_end, hidden_states
from tinywave.sfm.student import Student
from tinywave.stacking import apply_growth, carry_optimizer_state, layer_list, parameter_sources
from tinywave.training.distributed import SINGLE, Parallel
from tinywave.training.schedules import continue_schedule
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.training.trainer import fit, make_optimizer

log = logging.getLogger(__name__)


@dataclass
class GrowthPlan:
    op: str = "none"
    steps: list[int] = field(default_factory=list)  # global steps before which the student grows
    params: list[dict[str, int]] = field(default_factory=list)  # operator parameters per growth
    optimizer_mode: str = "copy"  # reset | copy


@dataclass
class LoopSettings:
    """The SFM loop's settings, named as the recipes' keys (``optim.*``, ``train.*``)."""

    steps: int
    batch_size: int = 8  # crops per step and process
    crop_samples: int = 32000
    lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    seed: int = 0
    intermediate_weight: float = 0.5
    log_every: int = 1  # write every N-th step's record to train_log.jsonl
    ckpt_every: int = 100
    keep_checkpoints: int = 2
    stop_after_steps: int = 0  # run at most N steps in this invocation, then checkpoint (0: to the end)
    report_to: tuple[str, ...] = ("tensorboard",)  # run trackers (tinywave/training/settings.py TRACKERS)

    def optim(self) -> OptimSettings:
        """HuBERT's AdamW (betas 0.9 / 0.98, eps 1e-6), warm-up then linear decay to 10%."""
        return OptimSettings(lr=self.lr, betas=[0.9, 0.98], eps=1e-6, weight_decay=self.weight_decay, warmup_steps=self.warmup_steps,
                             schedule="linear", min_lr_ratio=0.1, grad_clip=self.grad_clip)

    def run(self, out: str | Path) -> RunSettings:
        return RunSettings(out=str(out), steps=self.steps, seed=self.seed, device="cpu", log_every=self.log_every,
                           ckpt_every=self.ckpt_every, keep_checkpoints=self.keep_checkpoints,
                           stop_after_steps=self.stop_after_steps, report_to=list(self.report_to))


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


class StudentGrowth:
    """The loop's growth hook: after each step of ``plan.steps`` the student grows, the optimizer is
    rebuilt over its new parameters (state reset or copied) and the schedule continues."""

    def __init__(self, plan: GrowthPlan, objective: "StudentObjective", optim: OptimSettings, total_steps: int):
        self.plan, self.objective, self.optim, self.total_steps = plan, objective, optim, total_steps

    def __call__(self, step: int, optimizer: torch.optim.Optimizer, scheduler: Any):
        if step not in self.plan.steps:
            return None
        student, k = self.objective.student, self.plan.steps.index(step)
        op, params = self.plan.op, self.plan.params[k]
        optimizer.zero_grad(set_to_none=True)
        old_layers = list(layer_list(student.encoder))
        growth = apply_growth(student.encoder, op, student.targets, **params)
        student.targets = growth.targets
        student.check_targets()
        student.history.append({"step": step, "op": op, "params": params, "provenance": growth.provenance,
                                "depth": len(growth.layers), "targets": {str(j): t for j, t in growth.targets.items()}})
        trainable = [p for p in student.parameters() if p.requires_grad]
        new_opt, new_sched = make_optimizer(trainable, self.optim, self.total_steps)
        carry_optimizer_state(optimizer, new_opt, parameter_sources(old_layers, growth), self.plan.optimizer_mode)
        continue_schedule(scheduler, new_sched)
        self.objective.rewrap()
        log.info("step %d: grew %s %s -> %d layers, targets %s, optimizer %s", step, op, params or "",
                 len(growth.layers), growth.targets, self.plan.optimizer_mode)
        return trainable, new_opt, new_sched


def loss_step(student: Student, targets: dict[int, torch.Tensor], batch: Batch, intermediate_weight: float,
              features: torch.Tensor | None = None, wrapped: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The student's loss of its kind on one batch (teacher targets precomputed); ``wrapped``: the
    student inside DistributedDataParallel, called instead of it."""
    preds, mask = (wrapped or student)(batch.wav, batch.lengths, features)  # {t: (B, T, D_t)}, (B, T)
    if student.kind == "distilhubert":
        return distilhubert_loss(preds, targets, mask)
    return layer_to_layer_loss(preds, targets, student.output_layer, mask, intermediate_weight)


class StudentObjective:
    """The loop's objective: the student's loss on a crop batch against the teacher's targets,
    weighted by its share of the step's frames (a mean over every process's real frames)."""

    def __init__(self, student: Student, teacher: TeacherTargets, intermediate_weight: float, parallel: Parallel = SINGLE):
        self.student, self.teacher, self.weight, self.parallel = student, teacher, intermediate_weight, parallel
        self.wrapped = parallel.wrap(student, find_unused=True)  # DDP: rewrapped when the student grows

    def rewrap(self) -> None:
        self.wrapped = self.parallel.wrap(self.student, find_unused=True)

    def __call__(self, batch: dict[str, torch.Tensor], normalizer: float) -> dict[str, torch.Tensor]:
        crops = as_batch(batch)
        targets, features = self.teacher(int(batch["step"]), crops)
        loss, parts = loss_step(self.student, targets, crops, self.weight, features, self.wrapped)
        share = float(batch["n_targets"]) / normalizer
        return {"loss": loss * share, **{k: torch.tensor(v * share) for k, v in parts.items()}}


def distill(student: Student, teacher: TeacherTargets, bank: WaveBank, plan: GrowthPlan, cfg: LoopSettings,
            out: str | Path, *, resume_from: Path | None = None, parallel: Parallel = SINGLE,
            config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``student`` for ``cfg.steps`` steps in all (continuing ``resume_from``, a checkpoint folder).

    With ``parallel`` (DDP under torchrun) each rank takes ``cfg.batch_size`` rows of a global
    batch of ``cfg.batch_size`` x world size; rank 0 logs and writes checkpoints. ``config``
    (the recipe's resolved config) goes into each checkpoint's config.yaml.
    """
    encoder_config = student.encoder.config
    stream = CropStream(bank, cfg.batch_size, cfg.crop_samples, cfg.seed, downsample_rate(encoder_config),
                        lambda lengths: frame_lengths(encoder_config, lengths), rank=parallel.rank, world_size=parallel.world_size)
    objective = StudentObjective(student, teacher, cfg.intermediate_weight, parallel)
    optim = cfg.optim()
    growth = StudentGrowth(plan, objective, optim, cfg.steps) if plan.steps else None
    student.train()
    result = fit(objective, [p for p in student.parameters() if p.requires_grad], stream, optim, cfg.run(out), student.save,
                 config=config if config is not None else asdict(cfg), resume_from=resume_from, parallel=parallel, growth=growth, describe=lambda: {"depth": student.depth})
    last = result.history[-1] if result.history else {}
    parts = {k: v for k, v in last.items() if "/" in k}  # mse/3, l1/1, cos/2 ...
    return {"step": result.step, "loss": last.get("loss", float("nan")), "parts": parts, "depth": student.depth,
            "train_seconds": result.elapsed_s, "cpu_seconds": result.cpu_s, "finished": result.finished}


def plot_losses(log_path: str | Path, growth_steps: list[int], png: str | Path, title: str = "") -> None:
    """Loss curve (and per-part curves) with the growth steps marked."""
    import matplotlib  # lazy: matplotlib is heavy (~0.4 s) and only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy, and must come after matplotlib.use("Agg")

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

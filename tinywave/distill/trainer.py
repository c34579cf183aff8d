"""The training loop shared by teacher training and distillation.

AdamW (no decay on 1-D parameters), linear warm-up then cosine decay, gradient
clipping and accumulation, fp32 or bf16 autocast. Each optimizer step gathers its
``accum_steps`` micro-batches first and divides every loss by the number of real target
tokens of the whole step, so accumulation gives the same per-token mean as one large
batch. A non-finite loss or gradient norm stops the run with a message before the
optimizer touches the weights, so no bad state is ever checkpointed. Checkpoints hold
everything needed to continue the same loss curve (see ``checkpoint.py``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinywave.distill.checkpoint import load_training_state, save_checkpoint
from tinywave.distill.data import BatchStream, DataPosition
from tinywave.distill.losses import IGNORE_INDEX
from tinywave.distill.metrics import LOG_NAME, PLOT_NAME, RunLogger, plot_loss_curves
from tinywave.distill.settings import OptimSettings, RunSettings

log = logging.getLogger(__name__)

Objective = Callable[[dict[str, torch.Tensor], float], dict[str, torch.Tensor]]


class NonFiniteLossError(ValueError):
    """A loss or gradient became NaN/inf; the run stopped without saving that state."""


def resolve_device(name: str) -> torch.device:
    devices = {"auto": lambda: "cuda" if torch.cuda.is_available() else "cpu", "cpu": lambda: "cpu", "cuda": lambda: "cuda"}
    if name not in devices:
        raise ValueError(f"train.device={name!r} is not known; choose one of {sorted(devices)}")
    return torch.device(devices[name]())


def autocast_context(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the autocast context for ``precision`` (fp32: none; bf16: bfloat16 autocast)."""
    contexts = {
        "fp32": contextlib.nullcontext,
        "bf16": functools.partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16),
    }
    if precision not in contexts:
        raise ValueError(f"train.precision={precision!r} is not supported in this recipe; use fp32 or bf16")
    return contexts[precision]


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier before optimizer step ``step`` (0-based): linear warm-up, cosine decay to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params: list[nn.Parameter], optim: OptimSettings, total_steps: int):
    """AdamW with decay on matrices only, and its warm-up + cosine LambdaLR."""
    if len(optim.betas) != 2:
        raise ValueError(f"optim.betas={optim.betas} must hold two numbers, e.g. [0.9, 0.95]")
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=optim.lr, betas=tuple(optim.betas))
    schedule = functools.partial(warmup_cosine, warmup=optim.warmup_steps, total=total_steps, min_ratio=optim.min_lr_ratio)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def count_targets(batch: dict[str, torch.Tensor]) -> int:
    return int((batch["labels"] != IGNORE_INDEX).sum())


@dataclass
class FitResult:
    step: int  # last completed step
    finished: bool  # the run reached settings.steps
    checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)  # records of this invocation


def _check_finite(value: float, what: str, step: int, values: dict[str, float]) -> None:
    if not math.isfinite(value):
        parts = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        raise NonFiniteLossError(
            f"{what} is {value} at step {step} ({parts}); stopped without saving this state. "
            "Lower optim.lr, raise optim.warmup_steps, use train.precision=fp32, or check the data; "
            "train.resume=true continues from the last good checkpoint"
        )


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(objective: Objective, micro: list[dict[str, torch.Tensor]], autocast, step: int) -> dict[str, float]:
    """Forward/backward over the micro-batches of one optimizer step; returns the step's mean losses."""
    normalizer = float(sum(count_targets(b) for b in micro))
    totals: dict[str, float] = {}
    for batch in micro:
        with autocast():
            losses = objective(batch, normalizer)
        values = {k: float(v.detach()) for k, v in losses.items()}
        _check_finite(values["loss"], "the loss", step, values)
        losses["loss"].backward()
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + v
    totals["tokens"] = normalizer
    return totals


def fit(
    objective: Objective,
    params: list[nn.Parameter],
    stream: BatchStream,
    optim: OptimSettings,
    run: RunSettings,
    save_model: Callable[[Path], None],
    config: dict[str, Any],
    resume_from: Path | None = None,
) -> FitResult:
    """Train ``params`` on ``objective`` for ``run.steps`` steps in total, checkpointing under ``run.out``."""
    for name, value in {"optim.accum_steps": optim.accum_steps, "train.steps": run.steps,
                        "train.log_every": run.log_every, "train.ckpt_every": run.ckpt_every}.items():
        if value < 1:
            raise ValueError(f"{name}={value} must be at least 1")
    device = resolve_device(run.device)
    autocast = autocast_context(run.precision, device)
    opt, sched = make_optimizer(params, optim, run.steps)
    state: dict[str, Any] = {"step": 0, "position": DataPosition().to_json(), "tokens_seen": 0, "elapsed_s": 0.0}
    if resume_from is not None:
        state = load_training_state(resume_from, opt, sched)
        stream.position = DataPosition(**state["position"])
        log.info("resuming from %s at step %d of %d", resume_from, state["step"], run.steps)
    start = state["step"]
    logger = RunLogger(run.out, start, run.steps, run.tensorboard)
    result = FitResult(step=start, finished=start >= run.steps, checkpoint=resume_from)
    t_begin = time.monotonic()

    def checkpoint(step: int) -> Path:
        state.update(step=step, position=stream.position.to_json(), history_tail=result.history[-20:])
        return save_checkpoint(run.out, step, save_model, opt, sched, state, config, run.keep_checkpoints)

    try:
        for step in range(start + 1, run.steps + 1):
            t0 = time.monotonic()
            micro = [_to(stream.next(), device) for _ in range(optim.accum_steps)]
            values = train_step(objective, micro, autocast, step)
            max_norm = optim.grad_clip if optim.grad_clip > 0 else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
            _check_finite(grad_norm, "the gradient norm", step, values)
            lr = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            seconds = time.monotonic() - t0
            state["tokens_seen"] += int(values["tokens"])
            state["elapsed_s"] += seconds
            record = {"step": step, **values, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": values["tokens"] / max(seconds, 1e-9)}
            result.history.append(record)
            result.step = step
            logger.step(record, write=step % run.log_every == 0 or step == run.steps)
            stop = _should_stop(run, step - start, time.monotonic() - t_begin)
            if step % run.ckpt_every == 0 or step == run.steps or stop:
                result.checkpoint = checkpoint(step)
            if stop:
                log.info("stopping after step %d as asked (%s); rerun with train.resume=true to continue", step, stop)
                break
    finally:
        logger.close()
    result.finished = result.step >= run.steps
    plot_loss_curves(Path(run.out) / LOG_NAME, Path(run.out) / PLOT_NAME)
    return result


def _should_stop(run: RunSettings, steps_done: int, seconds: float) -> str:
    if run.stop_after_steps and steps_done >= run.stop_after_steps:
        return f"train.stop_after_steps={run.stop_after_steps}"
    if run.max_minutes and seconds >= run.max_minutes * 60:
        return f"train.max_minutes={run.max_minutes}"
    return ""


# keys that may change between an interrupted run and its resumption
RESUME_FREE_KEYS = {"resume"} | {f"train.{k}" for k in ("resume", "stop_after_steps", "max_minutes", "log_every", "ckpt_every", "keep_checkpoints", "tensorboard", "device")}


def resume_point(run: RunSettings, config: dict[str, Any] | None = None) -> Path | None:
    """The checkpoint to continue from (``train.resume``), refusing to overwrite a run by accident.

    With ``config`` (the resolved config of this invocation), every difference from the
    checkpoint's config that could change the result is logged as a warning.
    """
    from tinywave.distill.checkpoint import latest_checkpoint, read_config

    if not run.out:
        raise ValueError("train.out is required: the run folder for checkpoints, logs and the final model")
    latest = latest_checkpoint(run.out)
    if run.resume:
        if latest is None:
            log.info("train.resume: no checkpoint in %s yet, starting a new run", run.out)
        elif config is not None:
            for change in config_changes(read_config(latest), config):
                log.warning("config differs from the checkpoint's: %s", change)
        return latest
    if latest is not None:
        raise ValueError(f"{run.out} already holds checkpoints (newest {latest.name}); pass --train.resume to continue that run or choose a new train.out")
    return None


def config_changes(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose value differs between a checkpoint's config and the current one."""
    changed = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += config_changes(a, b, f"{prefix}{key}.")
        elif a != b and prefix + key not in RESUME_FREE_KEYS:
            changed.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changed

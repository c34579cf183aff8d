"""The one training loop: LM pretraining and correction, distillation, SFM pretraining and
distillation, and vocoder training all run on :func:`fit`.

AdamW (no decay on 1-D parameters), a warm-up + decay schedule by name
(``tinywave/training/schedules.py``), gradient clipping and accumulation, fp32 or bf16
autocast. Each optimizer step gathers its ``accum_steps`` micro-batches first and divides
every loss by the number of real targets of the whole step (``labels`` that are not
ignored, or a batch's ``n_targets``: frames, rows), so accumulation and several processes
give the same per-target mean as one large batch. A non-finite loss or gradient norm stops
the run with a message before the optimizer touches the weights (``train.on_nonfinite=skip``
instead drops that step's update and goes on), and weights holding NaN/inf are never
checkpointed. Checkpoints hold everything needed to continue the same loss curve (see
``checkpoint.py``): the model (the recipe's ``save_model``), every optimizer and schedule,
the RNG states and the data stream's position.

What the loop supports rather than each recipe re-implementing it:

* ``growth``: a hook after each step that may swap in a grown model's parameters,
  optimizer and schedule (LM and SFM stacking);
* ``side_optimizers``: optimizers the objective steps itself (the vocoder's
  discriminators): scheduled like the main one and checkpointed beside it;
* ``schedule``: a recipe's own multiplier function (the vocoder's time-budgeted decay);
* ``describe``: fields a recipe adds to every log record (the SFM student's depth).

A stream is anything with ``next()`` (a dict of tensors), ``batch_size``, ``world_size``,
``state()`` (its position, JSON) and ``restore(state)``: :class:`~tinywave.training.batches.BatchStream`
for shards, ``tinywave.sfm.data.CropStream`` for audio crops, ``tinywave.vocoder.train.SegmentStream``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinywave.data.shards import IGNORE_INDEX
from tinywave.precision_names import same_precision, short_or_same
from tinywave.training.checkpoint import (
    checkpoint_root,
    latest_checkpoint,
    load_side_optimizers,
    load_training_state,
    read_config,
    save_checkpoint,
    save_sharded_checkpoint,
    save_side_optimizers,
)
from tinywave.training.batches import Stream
from tinywave.training.distributed import SINGLE, Parallel
from tinywave.training.runlog import LOG_NAME, PLOT_NAME, RunLogger, plot_loss_curves, require_wandb
from tinywave.training.schedules import Schedule, schedule_named, warmup_cosine
from tinywave.training.settings import OptimSettings, RunSettings, check_report_to

__all__ = ["fit", "make_optimizer", "warmup_cosine", "FitResult", "NonFiniteLossError", "resume_point"]

log = logging.getLogger(__name__)

NONFINITE_POLICIES = ("stop", "skip")
Objective = Callable[[dict[str, torch.Tensor], float], dict[str, torch.Tensor]]
# called after each optimizer step (step, optimizer, scheduler); returns None, or the trainable parameters,
# optimizer and scheduler of a student that just grew (tinywave.distill.growth.StudentGrowth)
GrowthHook = Callable[[int, torch.optim.Optimizer, Any], "tuple[list[nn.Parameter], torch.optim.Optimizer, Any] | None"]


class NonFiniteLossError(ValueError):
    """A loss or gradient became NaN/inf; the run stopped without saving that state."""

    summary = ""  # what was non-finite where, without the advice


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
    short = short_or_same(precision)  # bfloat16 -> bf16
    if short not in contexts:
        raise ValueError(f"train.precision={precision!r} is not supported in this recipe; use fp32 or bf16")
    return contexts[short]


def make_optimizer(params: list[nn.Parameter], optim: OptimSettings, total_steps: int, schedule: Schedule | None = None):
    """AdamW with decay on matrices only, and the LambdaLR of ``optim.schedule`` (or of ``schedule``, a multiplier by step)."""
    if len(optim.betas) != 2:
        raise ValueError(f"optim.betas={optim.betas} must hold two numbers, e.g. [0.9, 0.95]")
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
    if schedule is None:
        schedule = schedule_named(optim.schedule, optim.warmup_steps, total_steps, optim.min_lr_ratio)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def side_schedulers(optimizers: dict[str, torch.optim.Optimizer], schedule: Schedule) -> dict[str, Any]:
    """A LambdaLR with the main schedule for each optimizer the objective steps itself."""
    return {name: torch.optim.lr_scheduler.LambdaLR(opt, schedule) for name, opt in optimizers.items()}


def count_targets(batch: dict[str, torch.Tensor]) -> int:
    """The targets a batch's loss averages over: its ``n_targets`` (frames, rows) or its labels that are not ignored."""
    if "n_targets" in batch:
        return int(batch["n_targets"])
    return int((batch["labels"] != IGNORE_INDEX).sum())


@dataclass
class FitResult:
    step: int  # last completed step
    finished: bool  # the run reached settings.steps
    checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)  # records of this invocation
    elapsed_s: float = 0.0  # training wall seconds of the whole run (resumed invocations summed)
    cpu_s: float = 0.0  # process CPU seconds of the whole run


def _check_finite(value: float, what: str, step: int, values: dict[str, float]) -> None:
    if not math.isfinite(value):
        parts = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        exc = NonFiniteLossError(
            f"{what} is {value} at step {step} ({parts}); stopped without saving this state. "
            "Lower optim.lr, raise optim.warmup_steps, use train.precision=fp32, or check the data "
            "(train.on_nonfinite=skip drops such steps); train.resume=true continues from the last good checkpoint"
        )
        exc.summary = f"{what} is {value} at step {step} ({parts})"
        raise exc


def _check_weights_finite(params: list[nn.Parameter], step: int, out: str) -> None:
    """Refuse to checkpoint weights that hold NaN/inf (e.g. after an update with a huge learning rate)."""
    finite = torch.stack([torch.isfinite(p.detach()).all() for p in params])
    if not bool(finite.all()):
        raise NonFiniteLossError(
            f"{int((~finite).sum())} of {len(params)} trained tensors hold NaN/inf after step {step}; this state was not saved "
            f"and the newest checkpoint in {out} is still the last good one. Lower optim.lr or raise optim.warmup_steps, "
            "then rerun with train.resume=true"
        )


def _skip_or_stop(exc: NonFiniteLossError, run: RunSettings, in_a_row: int) -> None:
    """``train.on_nonfinite``: re-raise (stop), or log and skip unless too many steps in a row were skipped."""
    if run.on_nonfinite == "stop":
        raise exc
    if in_a_row > run.max_skipped_steps:
        raise NonFiniteLossError(f"{in_a_row} steps in a row had a non-finite loss or gradient (train.max_skipped_steps="
                                 f"{run.max_skipped_steps}); the last one: {exc}") from None
    log.warning("skipping this step's update (train.on_nonfinite=skip): %s", exc.summary or exc)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(objective: Objective, micro: list[dict[str, torch.Tensor]], autocast, step: int, parallel: Parallel = SINGLE) -> dict[str, float]:
    """Forward/backward over the micro-batches of one optimizer step; returns the step's mean losses.

    With several processes the normalizer is the token count of every rank's micro-batches
    and the returned losses are summed over ranks: the mean over the global batch.
    """
    normalizer = parallel.sum({"tokens": float(sum(count_targets(b) for b in micro))})["tokens"]
    totals: dict[str, float] = {}
    for i, batch in enumerate(micro):
        with parallel.gradient_sync(last=i == len(micro) - 1):
            with autocast():
                losses = objective(batch, normalizer)
            values = parallel.sum({k: float(v.detach()) for k, v in losses.items()})
            _check_finite(values["loss"], "the loss", step, values)  # the same global value on every rank
            (losses["loss"] * parallel.loss_scale).backward()
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + v
    totals["tokens"] = normalizer
    return totals


class _NoLogger:
    """What ranks other than 0 log: nothing."""

    def step(self, record: dict[str, Any], write: bool) -> None:
        pass

    def close(self) -> None:
        pass


def fit(
    objective: Objective,
    params: list[nn.Parameter],
    stream: Stream,
    optim: OptimSettings,
    run: RunSettings,
    save_model: Callable[[Path], None],
    *,
    config: dict[str, Any],
    resume_from: Path | None = None,
    parallel: Parallel = SINGLE,
    growth: GrowthHook | None = None,
    schedule: Schedule | None = None,
    side_optimizers: dict[str, torch.optim.Optimizer] | None = None,
    describe: Callable[[], dict[str, Any]] | None = None,
) -> FitResult:
    """Train ``params`` on ``objective`` for ``run.steps`` steps in total, checkpointing under ``run.out``.

    ``parallel`` (from :class:`~tinywave.training.distributed.Parallel`) when ``objective`` is
    wrapped for several processes: rank 0 logs and writes checkpoints, every rank takes part
    in the collectives. ``growth`` (one process, or DDP) may swap in new parameters, optimizer and
    scheduler after a step: the student grew (``tinywave.distill.growth``, ``tinywave.sfm.distill``).
    ``schedule`` replaces ``optim.schedule``'s multiplier; ``side_optimizers`` are stepped by
    the objective itself and follow the same schedule; ``describe()`` adds fields to each record.
    """
    for name, value in {"optim.accum_steps": optim.accum_steps, "train.steps": run.steps,
                        "train.log_every": run.log_every, "train.ckpt_every": run.ckpt_every}.items():
        if value < 1:
            raise ValueError(f"{name}={value} must be at least 1")
    check_report_to(run.report_to)
    if "wandb" in run.report_to:
        require_wandb()  # on every rank, before any work
    device = resolve_device(run.device)
    autocast = autocast_context(run.precision, device)
    opt, sched = make_optimizer(params, optim, run.steps, schedule)
    side = dict(side_optimizers or {})
    side_sched = side_schedulers(side, sched.lr_lambdas[0])
    state: dict[str, Any] = {"step": 0, "position": stream.state(), "tokens_seen": 0, "elapsed_s": 0.0, "cpu_s": 0.0}
    if run.on_nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"train.on_nonfinite={run.on_nonfinite!r} is not known; choose one of {list(NONFINITE_POLICIES)}")
    if resume_from is not None:
        state = load_training_state(resume_from, opt, sched, lambda sd: parallel.load_optimizer(opt, sd),
                                    lambda folder: parallel.load_sharded(folder, opt))
        load_side_optimizers(resume_from, side, side_sched)
        stream.restore(state["position"])
        _check_global_batch(state, stream)
        log.info("resuming from %s at step %d of %d", resume_from, state["step"], run.steps)
    start = state["step"]
    state["batch_rows"] = stream.batch_size * stream.world_size  # rows per stream batch over all ranks
    logger = RunLogger(run.out, start, run.steps, run.report_to, config) if parallel.is_main else _NoLogger()
    result = FitResult(step=start, finished=start >= run.steps, checkpoint=resume_from)
    t_begin = time.monotonic()

    def save_all(folder: Path) -> None:
        save_model(folder)
        save_side_optimizers(folder, side, side_sched)

    def checkpoint(step: int) -> Path:
        _check_weights_finite(params, step, run.out)
        state.update(step=step, position=stream.state(), history_tail=result.history[-20:])
        if parallel.sharded:  # every rank writes its own shards (a collective)
            save_sharded_checkpoint(run.out, step, save_all, lambda folder: parallel.save_sharded(folder, opt), sched,
                                    state, config=config, keep=run.keep_checkpoints, group=parallel)
        else:
            optim_state = parallel.gather(opt)  # a collective under FSDP: every rank takes part
            if parallel.is_main:
                save_checkpoint(run.out, step, save_all, opt, sched, state, config=config, keep=run.keep_checkpoints, optimizer_state=optim_state)
        parallel.barrier()
        return checkpoint_root(run.out) / f"step_{step:08d}"

    skipped_in_a_row = 0
    try:
        for step in range(start + 1, run.steps + 1):
            t0, c0 = time.monotonic(), time.process_time()
            micro = [_to(stream.next(), device) for _ in range(optim.accum_steps)]
            lr = opt.param_groups[0]["lr"]
            try:
                values = train_step(objective, micro, autocast, step, parallel)
                max_norm = optim.grad_clip if optim.grad_clip > 0 else float("inf")
                grad_norm = parallel.clip_grad_norm(params, max_norm)
                _check_finite(grad_norm, "the gradient norm", step, values)
                skipped_in_a_row = 0
                opt.step()
            except NonFiniteLossError as exc:
                skipped_in_a_row += 1
                _skip_or_stop(exc, run, skipped_in_a_row)
                state["skipped_steps"] = [*state.get("skipped_steps", []), step]
                values = None
            with warnings.catch_warnings():  # a skipped first step calls the scheduler before the optimizer
                warnings.simplefilter("ignore", UserWarning)
                sched.step()  # the learning rate follows the step number, skipped or not
                for s in side_sched.values():
                    s.step()
            opt.zero_grad(set_to_none=True)
            described = describe() if describe is not None else {}  # as the step ran, before any growth
            grown = growth(step, opt, sched) if growth is not None else None
            if grown is not None:  # the student grew: train the new parameters from here on
                params, opt, sched = grown
            seconds = time.monotonic() - t0
            state["elapsed_s"] += seconds
            state["cpu_s"] = state.get("cpu_s", 0.0) + time.process_time() - c0  # process CPU time: less sensitive to load
            result.step = step
            if values is None:
                logger.step({"step": step}, write=False)
            else:
                state["tokens_seen"] += int(values["tokens"])
                record = {"step": step, **values, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": values["tokens"] / max(seconds, 1e-9),
                          "train_seconds": round(state["elapsed_s"], 4), "cpu_seconds": round(state["cpu_s"], 4),
                          **described}
                result.history.append(record)
                logger.step(record, write=step % run.log_every == 0 or step == run.steps)
            stop = parallel.agree(_should_stop(run, step - start, time.monotonic() - t_begin))
            if step % run.ckpt_every == 0 or step == run.steps or stop:
                result.checkpoint = checkpoint(step)
            if stop:
                log.info("stopping after step %d as asked (%s); rerun with train.resume=true to continue", step, stop)
                break
    finally:
        logger.close()
    result.finished = result.step >= run.steps
    result.elapsed_s, result.cpu_s = state["elapsed_s"], state.get("cpu_s", 0.0)
    if parallel.is_main:
        plot_loss_curves(Path(run.out) / LOG_NAME, Path(run.out) / PLOT_NAME)
    return result


def _check_global_batch(state: dict[str, Any], stream: Stream) -> None:
    """Warn when a resumed run reads batches of another global size (the data order then shifts)."""
    saved, now = state.get("batch_rows"), stream.batch_size * stream.world_size
    if saved and saved != now:
        log.warning("the checkpoint read batches of %d rows (data.batch_size x processes), this run reads %d: the data "
                    "order differs from an uninterrupted run; keep data.batch_size x world size at %d to continue exactly",
                    saved, now, saved)


def _should_stop(run: RunSettings, steps_done: int, seconds: float) -> str:
    if run.stop_after_steps and steps_done >= run.stop_after_steps:
        return f"train.stop_after_steps={run.stop_after_steps}"
    if run.max_minutes and seconds >= run.max_minutes * 60:
        return f"train.max_minutes={run.max_minutes}"
    return ""


# keys that may change between an interrupted run and its resumption
RESUME_FREE_KEYS = {"resume"} | {f"train.{k}" for k in (
    "resume", "stop_after_steps", "max_minutes", "log_every", "ckpt_every", "keep_checkpoints", "report_to", "device",
    "on_nonfinite", "max_skipped_steps", "parallel", "ckpt_format")}


def resume_point(run: RunSettings, config: dict[str, Any] | None = None) -> Path | None:
    """The checkpoint to continue from (``train.resume``), refusing to overwrite a run by accident.

    With ``config`` (the resolved config of this invocation), every difference from the
    checkpoint's config that could change the result is logged as a warning.
    """
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
        elif a != b and prefix + key not in RESUME_FREE_KEYS and not same_precision(a, b):
            changed.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changed

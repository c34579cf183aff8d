"""Learning-rate schedules of the training loop: multipliers of ``optim.lr`` by optimizer step.

Each takes ``step``, the number of optimizer steps already taken (the 0-based index of the
step about to run), and returns the factor the peak rate is multiplied by. ``optim.schedule``
names one of :data:`SCHEDULES`; :func:`tinywave.training.trainer.make_optimizer` wraps it
in a ``LambdaLR`` whose state is checkpointed with the optimizer.

* ``cosine``: linear warm-up, then cosine decay to ``optim.min_lr_ratio`` (the LM recipes,
  and the vocoder with ratio 0.05);
* ``linear``: linear warm-up, then linear decay to ``optim.min_lr_ratio`` (HuBERT-style SFM
  pretraining and distillation, ratio 0.1).

``spent`` (0..1), when given, is the share of a wall-time budget already used: the decay
then follows whichever budget is further spent, so a run stopped by its clock still ends
at the low rate (the vocoder's ``train.max_minutes``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Schedule = Callable[[int], float]


def _progress(step: int, warmup: int, total: int, spent: float) -> float:
    return min(1.0, max((step - warmup) / max(1, total - warmup), spent))


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float, spent: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from 1 to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = _progress(step, warmup, total, spent)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_linear(step: int, warmup: int, total: int, min_ratio: float, spent: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay from 1 to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 1.0 - (1.0 - min_ratio) * _progress(step, warmup, total, spent)


SCHEDULES: dict[str, Callable[..., float]] = {"cosine": warmup_cosine, "linear": warmup_linear}


def schedule_named(name: str, warmup: int, total: int, min_ratio: float, spent: Callable[[], float] | None = None) -> Schedule:
    """The multiplier function of ``optim.schedule=name`` (``spent``: the share of a time budget used, read at each step)."""
    if name not in SCHEDULES:
        raise ValueError(f"optim.schedule={name!r} is not known; choose one of {sorted(SCHEDULES)}")
    fn = SCHEDULES[name]
    if spent is None:
        return lambda step: fn(step, warmup, total, min_ratio)
    return lambda step: fn(step, warmup, total, min_ratio, spent())


def continue_schedule(old: Any, new: Any) -> None:
    """Give ``new`` (a LambdaLR over a rebuilt optimizer, e.g. after the model grew) ``old``'s position,
    so the next step's learning rate is unchanged."""
    new.load_state_dict(old.state_dict())
    for group, lr in zip(new.optimizer.param_groups, new.get_last_lr()):
        group["lr"] = lr

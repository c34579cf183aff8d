"""Stage schedules for progressive depth growth, and per-stage growth plans.

A run of ``total_steps`` optimizer steps is split into ``n_stages`` stages; the model
grows once at the start of every stage but the first. Schedules (``SCHEDULES``):

- ``equal``: every stage has the same number of steps;
- ``prop1`` (Prop-1): stage s (1-based) lasts in proportion to s, i.e. 1 : 2 : ... : S,
  so the shallow, cheap stages are short and the full-depth stage is the longest.

``growth_steps(total, S, kind)`` returns the global step indices (0-based) before which
the model grows: the first step of stages 2..S.
"""

from __future__ import annotations

from collections.abc import Callable


def _weights_equal(n_stages: int) -> list[float]:
    return [1.0] * n_stages


def _weights_prop1(n_stages: int) -> list[float]:
    return [float(s) for s in range(1, n_stages + 1)]


SCHEDULES: dict[str, Callable[[int], list[float]]] = {"equal": _weights_equal, "prop1": _weights_prop1}


def stage_lengths(total_steps: int, n_stages: int, kind: str) -> list[int]:
    """Steps per stage; they sum to ``total_steps`` and each is at least 1."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule {kind!r} is not known; choose one of {sorted(SCHEDULES)}")
    if n_stages < 1 or total_steps < n_stages:
        raise ValueError(f"cannot split {total_steps} steps into {n_stages} stages; need steps >= stages >= 1")
    weights = SCHEDULES[kind](n_stages)
    total_w = sum(weights)
    bounds, acc = [0], 0.0
    for w in weights:
        acc += w
        bounds.append(int(round(total_steps * acc / total_w)))
    lengths = [b - a for a, b in zip(bounds, bounds[1:])]
    for i, n in enumerate(lengths):  # rounding can leave an empty stage in tiny runs
        if n < 1:
            donor = max(range(len(lengths)), key=lambda k: lengths[k])
            lengths[donor] -= 1 - n
            lengths[i] = 1
    return lengths


def growth_steps(total_steps: int, n_stages: int, kind: str) -> list[int]:
    """0-based global steps at which stages 2..S start (the model grows before running them)."""
    lengths = stage_lengths(total_steps, n_stages, kind)
    steps, acc = [], 0
    for n in lengths[:-1]:
        acc += n
        steps.append(acc)
    return steps


def stage_at(step: int, growth: list[int]) -> int:
    """0-based stage index of global step ``step`` given the growth steps."""
    return sum(1 for g in growth if step >= g)


def plan_growth(op: str, init_depth: int, n_stages: int) -> list[dict[str, int]]:
    """Per growth step (S - 1 of them), the operator parameters so each stage adds layers evenly.

    - interleaved: one copy per original block: ``every`` = depth // init_depth, so
      3 -> 6 -> 9 -> 12 layers and initial layer i ends as a block of S layers;
    - gradual / middle: ``n`` = init_depth layers copied per stage (3 -> 6 -> 9 -> 12);
    - top: no parameter (the depth doubles: 3 -> 6 -> 12);
    - none: no growth (the student starts at full depth; ``n_stages`` must be 1).
    """
    planner = _planner(op)
    depth, plans = init_depth, []
    for _ in range(n_stages - 1):
        plan, depth = planner(depth, init_depth)
        plans.append(plan)
    return plans


def final_depth(op: str, init_depth: int, n_stages: int) -> int:
    """Depth after the last stage of ``plan_growth(op, init_depth, n_stages)``."""
    planner = _planner(op)
    depth = init_depth
    for _ in range(n_stages - 1):
        depth = planner(depth, init_depth)[1]
    return depth


def _planner(op: str) -> Callable[[int, int], tuple[dict[str, int], int]]:
    if op not in _PLANNERS:
        raise ValueError(f"stacking operator {op!r} is not known; choose one of {sorted(_PLANNERS)}")
    return _PLANNERS[op]


def _plan_none(depth: int, init: int) -> tuple[dict[str, int], int]:
    raise ValueError("stacking op 'none' does not grow: set stacking.stages=1 (or choose top/gradual/middle/interleaved)")


_PLANNERS: dict[str, Callable[[int, int], tuple[dict[str, int], int]]] = {
    "none": _plan_none,
    "top": lambda depth, init: ({}, 2 * depth),
    "gradual": lambda depth, init: ({"n": init}, depth + init),
    "middle": lambda depth, init: ({"n": init}, depth + init),
    "interleaved": lambda depth, init: ({"every": depth // init}, depth + init),
}

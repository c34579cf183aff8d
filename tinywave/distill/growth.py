"""Growing the LM student during layer-aligned distillation (stacking in ``tinywave distill``).

    plan = plan_student_growth("interleaved", stages=2, schedule="equal", total_steps=100,
                               final_pairs=[(0, 0), (1, 1), (2, 2), (3, 3)], keep=[0, 1, 2, 3])
    plan.depths       # [2, 4]: the student starts with 2 layers and ends with student.n_layers = 4
    plan.init_keep    # [1, 3]: teacher layer copied into each initial layer (its block's target)
    plan.pairs        # [[(0, 1), (1, 3)], [(1, 1), (3, 3)]]: the layer map at each stage
    plan.steps        # [50]: the student grows after optimizer step 50
    hook = StudentGrowth(plan, objective, optim, total_steps=100, out=run_dir)
    fit(..., growth=hook)   # after each step: hook(step, optimizer, scheduler) -> None | (params, opt, sched)

The layer map is defined for the FINAL student: each final layer that carries a
distillation target keeps the teacher layer it maps to at every stage. Which final layers
carry one depends on the operator: with ``interleaved`` the last layer of each block grown
from one initial layer (the SFM rule), with ``top``/``gradual``/``middle`` the layers the
re-spaced targets land on. The initial student is chosen so that the stages end exactly at
``student.n_layers``; initial layer i copies the teacher layer of the target it carries.

At a growth step the hook grows the student in place (``tinywave.stacking.apply_growth``),
moves the objective's layer pairs (and their projections) to the new indices, rebuilds
AdamW over the grown model with its state reset or copied, continues the LR schedule at
the same step, appends the event to ``OUT/growth_log.jsonl`` and keeps it for the next
checkpoint's ``growth.json``. A checkpoint's model folder is the student at its current
depth, so a resumed run loads it as is and :func:`resume_stage` checks it against the plan.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinywave.files import atomic_write_json, atomic_write_text
from tinywave.training.schedules import continue_schedule
from tinywave.training.trainer import make_optimizer
from tinywave.stacking import (
    OPERATORS,
    OPTIMIZER_MODES,
    SCHEDULES,
    apply_growth,
    block_targets,
    carry_optimizer_state,
    growth_steps,
    layer_list,
    parameter_sources,
    plan_growth,
    respace_targets,
    stage_at,
)

log = logging.getLogger(__name__)

GROWTH_FILE = "growth.json"  # inside each checkpoint folder
GROWTH_LOG = "growth_log.jsonl"  # inside the run folder
GROWTH_FORMAT = "tinywave-growth-v1"
# operator -> the parameter the user may fix (the others take none)
OP_PARAMS: dict[str, str | None] = {"top": None, "gradual": "n", "middle": "n", "interleaved": "every"}

Pairs = list[tuple[int, int]]


@dataclass(frozen=True)
class GrowthPlan:
    """Everything a run needs to grow its student; a pure function of the config."""

    op: str
    optimizer: str  # reset | copy
    steps: list[int]  # optimizer steps after which the student grows (1 per stage but the first)
    params: list[dict[str, int]]  # operator parameters of each growth
    depths: list[int]  # student depth in each stage
    pairs: list[Pairs]  # (student layer, teacher layer) pairs in each stage
    init_keep: list[int]  # teacher layer copied into each initial student layer
    dropped: Pairs = field(default_factory=list)  # final pairs of the default map that carry no target

    def stage_after(self, step: int) -> int:
        """0-based stage of the student once ``step`` optimizer steps are done."""
        return stage_at(step, self.steps)


def _grow_targets(op: str, depth: int, targets: dict[int, int], params: dict[str, int]) -> tuple[list[int], dict[int, int]]:
    """(provenance, moved targets) of one growth of a ``depth``-layer stack, without touching any layer."""
    order_fn, keep_on_block = OPERATORS[op]
    provenance = order_fn(depth, **params)
    moved = block_targets(targets, provenance) if keep_on_block else respace_targets(targets, depth, len(provenance))
    return provenance, moved


def _stage_params(op: str, init: int, stages: int, fixed: dict[str, int]) -> list[dict[str, int]]:
    """``plan_growth``'s parameters per growth, with the user's nonzero values replacing the planned ones."""
    return [{k: fixed.get(k) or v for k, v in p.items()} for p in plan_growth(op, init, stages)]


def _trace(op: str, init: int, params: list[dict[str, int]]) -> tuple[list[int], list[dict[int, int]]]:
    """(depth per stage, {final layer: initial layer it carries the target of}) from an initial depth."""
    depths, targets = [init], {i: i for i in range(init)}
    for p in params:
        provenance, targets = _grow_targets(op, depths[-1], targets, p)
        depths.append(len(provenance))
    return depths, targets


def _initial_depth(op: str, stages: int, final: int, fixed: dict[str, int]) -> tuple[int, list[dict[str, int]]]:
    """The initial depth (and per-growth parameters) whose stages end at ``final`` layers."""
    reachable = {}
    for init in range(1, final + 1):
        try:
            params = _stage_params(op, init, stages, fixed)
            depths, _ = _trace(op, init, params)
        except ValueError:  # e.g. every > depth, or re-spaced targets collide
            continue
        reachable.setdefault(depths[-1], (init, params))
    if final not in reachable:
        fixed_txt = "".join(f" growth.{k}={v}" for k, v in fixed.items() if v)
        raise ValueError(
            f"growth.op={op} growth.stages={stages}{fixed_txt} cannot end at student.n_layers={final}: starting from "
            f"1..{final} layers it ends at {sorted(reachable)} layers; set student.n_layers to one of those or change growth.stages"
        )
    return reachable[final]


def _check_settings(op: str, stages: int, schedule: str, optimizer: str, fixed: dict[str, int]) -> None:
    if op not in OP_PARAMS:
        raise ValueError(f"growth.op={op!r} is not known; choose one of ['none', {', '.join(repr(k) for k in OP_PARAMS)}]")
    if stages < 2:
        raise ValueError(f"growth.stages={stages}: growing needs at least 2 stages (or set growth.op=none)")
    if schedule not in SCHEDULES:
        raise ValueError(f"growth.schedule={schedule!r} is not known; choose one of {sorted(SCHEDULES)}")
    if optimizer not in OPTIMIZER_MODES:
        raise ValueError(f"growth.optimizer={optimizer!r} is not known; choose one of {list(OPTIMIZER_MODES)}")
    for name, value in fixed.items():
        if value < 0:
            raise ValueError(f"growth.{name}={value} must be >= 1 (0: planned so each stage adds the initial depth)")
        if value and OP_PARAMS[op] != name:
            raise ValueError(f"growth.{name}={value} does not apply to growth.op={op}; "
                             f"it is a parameter of {[k for k, v in OP_PARAMS.items() if v == name]}")


def _final_pairs(carriers: dict[int, int], final_pairs: Pairs, explicit: bool) -> tuple[Pairs, Pairs]:
    """(pairs on target-carrying final layers, default pairs dropped); an explicit map must use carriers only."""
    kept = [(s, t) for s, t in final_pairs if s in carriers]
    dropped = [(s, t) for s, t in final_pairs if s not in carriers]
    if explicit and dropped:
        raise ValueError(
            f"layer_map pairs {[list(p) for p in dropped]} sit on final student layers that carry no target under this "
            f"growth; the layers that do are {sorted(carriers)}: map only those (or leave layer_map empty)"
        )
    return kept, dropped


def plan_student_growth(
    op: str,
    stages: int,
    schedule: str,
    total_steps: int,
    final_pairs: Pairs,
    keep: list[int],
    *, explicit: bool = False,
    every: int = 0,
    n: int = 0,
    optimizer: str = "copy",
) -> GrowthPlan:
    """Plan growing a student to ``len(keep)`` layers (``keep``: teacher layer of each final layer).

    ``final_pairs``: the layer map of the final student (``explicit``: the user's ``layer_map``,
    refused if a pair is on a layer that carries no target; else the default map, whose
    other pairs are dropped). ``every`` / ``n`` fix the operator parameter (0: planned).
    """
    fixed = {"every": every, "n": n}
    _check_settings(op, stages, schedule, optimizer, fixed)
    try:
        steps = growth_steps(total_steps, stages, schedule)
    except ValueError as exc:
        raise ValueError(f"growth.stages={stages} with train.steps={total_steps}: {exc}") from None
    init, params = _initial_depth(op, stages, len(keep), fixed)
    depths, carriers = _trace(op, init, params)
    kept, dropped = _final_pairs(carriers, final_pairs, explicit)
    targets = {carriers[s]: t for s, t in kept}  # initial layer -> teacher layer
    pairs = [sorted(targets.items())]
    for depth, p in zip(depths, params):
        targets = _grow_targets(op, depth, targets, p)[1]
        pairs.append(sorted(targets.items()))
    assert pairs[-1] == sorted(kept), (pairs[-1], kept)
    landing = {i: s for s, i in carriers.items()}
    return GrowthPlan(op, optimizer, steps, params, depths, pairs, [keep[landing[i]] for i in range(init)], dropped)


def describe(plan: GrowthPlan) -> str:
    """One line for the log: depths, growth steps and the layer map of each stage."""
    maps = " | ".join(", ".join(f"{s}<-{t}" for s, t in p) or "none" for p in plan.pairs)
    return (f"growth {plan.op}: {' -> '.join(map(str, plan.depths))} layers, growing after steps {plan.steps} "
            f"(parameters {plan.params}, optimizer {plan.optimizer}); initial layers from teacher layers "
            f"{plan.init_keep}; layer map per stage: {maps}")


def resume_stage(plan: GrowthPlan, n_student: int, step: int, source: str) -> int:
    """The stage after ``step`` steps, checking that the student from ``source`` has that stage's depth."""
    stage = plan.stage_after(step)
    if n_student != plan.depths[stage]:
        raise ValueError(
            f"{source} holds a {n_student}-layer student but the growth plan ({' -> '.join(map(str, plan.depths))} layers) "
            f"expects {plan.depths[stage]} layers after step {step}; use the growth.* and student.n_layers settings "
            "of the run that wrote it (growth.op=none for a fixed-depth student)"
        )
    return stage


def read_history(checkpoint: str | Path | None) -> list[dict[str, Any]]:
    """The growth events recorded in a checkpoint (none for a fresh run or a checkpoint without growth)."""
    path = Path(checkpoint) / GROWTH_FILE if checkpoint is not None else None
    if path is None or not path.is_file():
        return []
    data = json.loads(path.read_text())
    if data.get("format") != GROWTH_FORMAT:
        raise ValueError(f"{path} is not a {GROWTH_FORMAT} file (format {data.get('format')!r}); resume from a checkpoint of tinywave distill")
    return list(data["history"])


def _share_config(model: nn.Module) -> None:
    """Point deep-copied layers back at the model's config (a copy carries its own duplicate)."""
    config = getattr(model, "config", None)
    for module in layer_list(model).modules():
        if getattr(module, "config", None) is not None and type(module.config) is type(config):
            module.config = config


class StudentGrowth:
    """The trainer's growth hook: grows ``objective.student`` after the plan's steps (see the module docstring)."""

    def __init__(self, plan: GrowthPlan, objective: nn.Module, optim, total_steps: int, out: str | Path | None = None,
                 history: list[dict[str, Any]] | None = None):
        self.plan, self.objective, self.optim, self.total_steps = plan, objective, optim, total_steps
        self.log_path = Path(out) / GROWTH_LOG if out else None
        self.history = list(history or [])
        self._write_log()  # a resumed run drops events after its checkpoint

    @property
    def depth(self) -> int:
        return len(layer_list(self.objective.student))

    def __call__(self, step: int, optimizer: torch.optim.Optimizer, scheduler) -> tuple[list[nn.Parameter], Any, Any] | None:
        """After optimizer step ``step``: None, or (trainable parameters, optimizer, scheduler) of the grown student."""
        if step not in self.plan.steps:
            return None
        k = self.plan.steps.index(step)
        student, pairs = self.objective.student, list(self.objective.pairs)
        optimizer.zero_grad(set_to_none=True)
        old_layers = list(layer_list(student))
        growth = apply_growth(student, self.plan.op, {s: i for i, (s, _) in enumerate(pairs)}, **self.plan.params[k])
        _share_config(student)
        moved = {pairs[i][0]: s for s, i in growth.targets.items()}  # old student layer -> new
        self.objective.remap_layers(moved)
        assert sorted(self.objective.pairs) == self.plan.pairs[k + 1], (self.objective.pairs, self.plan.pairs[k + 1])
        params = [p for p in self.objective.parameters() if p.requires_grad]
        new_opt, new_sched = make_optimizer(params, self.optim, self.total_steps)
        carry_optimizer_state(optimizer, new_opt, parameter_sources(old_layers, growth), self.plan.optimizer)
        continue_schedule(scheduler, new_sched)
        event = {"step": step, "op": self.plan.op, "params": self.plan.params[k], "depth": len(growth.layers),
                 "provenance": growth.provenance, "pairs": [list(p) for p in sorted(self.objective.pairs)],
                 "optimizer": self.plan.optimizer}
        self.history.append(event)
        self._write_log()
        log.info("step %d: student grew %s %s -> %d layers (provenance %s), layer map %s, optimizer %s", step,
                 self.plan.op, self.plan.params[k] or "", len(growth.layers), growth.provenance, event["pairs"], self.plan.optimizer)
        return params, new_opt, new_sched

    def save(self, folder: str | Path) -> None:
        """Write ``folder/growth.json``: op, depth, layer map and growth history (next to the model's config)."""
        atomic_write_json(Path(folder) / GROWTH_FILE, {
            "format": GROWTH_FORMAT, "op": self.plan.op, "depth": self.depth, "depths": self.plan.depths,
            "steps": self.plan.steps, "pairs": [list(p) for p in sorted(self.objective.pairs)], "history": self.history,
        })

    def _write_log(self) -> None:
        if self.log_path is not None:
            atomic_write_text(self.log_path, "".join(json.dumps(e) + "\n" for e in self.history))

"""Training checkpoints: one folder per saved step, written atomically.

``RUN/checkpoints/step_00000042/`` holds

* the model, written by the recipe's ``save_model(folder)``: a plain Hugging Face
  folder (``config.json``, ``model.safetensors``, tokenizer files, ``speech_tokenizer/``)
  or a peft adapter folder (``adapter_config.json``, ``adapter_model.safetensors``);
  extra trained tensors (projections) as ``projections.safetensors``; with depth growth,
  ``growth.json`` (depth, layer map, growth history; ``tinywave.distill.growth``) and the
  model at its current depth;
* ``optimizer.pt``, ``scheduler.pt``, ``rng.pt``: state dicts saved with ``torch.save``
  and read back with ``torch.load(weights_only=True)`` (``tinywave.safeload.load_torch``);
  ``optimizer.<name>.pt`` and ``scheduler.<name>.pt`` for each optimizer the objective
  steps itself (the vocoder's discriminators: ``optimizer.disc.pt``);
* ``state.json``: step, data position, tokens seen, elapsed time, the tail of the loss history;
* ``config.yaml``: the resolved run configuration.

A *sharded* checkpoint (FSDP; ``tinywave.training.sharded``) holds the model folder's files
without weights (``config.json``, tokenizer files, ``speech_tokenizer/``) and, instead of
the weights, ``projections.safetensors`` and ``optimizer.pt``, the ``sharded/`` folder that
every rank wrote its part of the model and optimizer state into.

A folder is either complete or absent (``tinywave.files.atomic_dir``), so the newest
``step_*`` folder is always a valid place to resume from.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml

from tinywave.training.sharded import SHARDED_DIR, is_sharded
from tinywave.files import atomic_dir
from tinywave.safeload import load_torch

STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng.pt", "state.json", "config.yaml")
SHARDED_STATE_FILES = tuple(n for n in STATE_FILES if n != "optimizer.pt")
_STEP_RE = re.compile(r"^step_(\d{8})$")


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_RE.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_RE.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the newest checkpoint of a run folder."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(
            f"{path} is neither a checkpoint folder (no state.json) nor a run folder with checkpoints/step_*; "
            "pass the train.out folder of a run or one of its checkpoints/step_* folders"
        )
    return latest


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    save_model: Callable[[Path], None],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    *, config: dict[str, Any],
    keep: int = 2,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``checkpoints/step_<step>`` atomically, then drop all but the ``keep`` newest.

    ``optimizer_state`` replaces ``optimizer.state_dict()`` when the optimizer is sharded
    (the full state gathered by ``tinywave.training.distributed.Parallel.gather``).

    Temporary folders left by a killed save are removed first; an old checkpoint is renamed
    away before it is deleted, so a kill never leaves a half-deleted ``step_*`` folder.
    """
    folder = checkpoint_root(run_dir) / f"step_{step:08d}"
    _remove_stale(run_dir)
    with atomic_dir(folder) as tmp:
        save_model(tmp)
        torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, tmp / "optimizer.pt")
        _write_loop_state(tmp, scheduler, state, config, step)
    _keep_newest(run_dir, keep)
    return folder


class Group(Protocol):
    """The processes writing a sharded checkpoint (``tinywave.training.distributed.Parallel``)."""

    is_main: bool

    def agree(self, value: str) -> str: ...


def save_sharded_checkpoint(
    run_dir: str | Path,
    step: int,
    save_model: Callable[[Path], None],
    write_shards: Callable[[Path], None],
    scheduler: Any,
    state: dict[str, Any],
    *,
    config: dict[str, Any],
    keep: int = 2,
    group: Group,
) -> Path:
    """Every rank calls this: a sharded ``checkpoints/step_<step>``, as atomic as :func:`save_checkpoint`.

    Rank 0 opens the temporary folder, writes the small files (``save_model`` writes the model
    folder without weights) and tells the others its name; then every rank runs
    ``write_shards(tmp/sharded)`` (a collective that returns once every rank's file and the
    metadata are written) and rank 0 renames the folder into place.
    """
    folder = checkpoint_root(run_dir) / f"step_{step:08d}"
    if not group.is_main:
        write_shards(Path(group.agree("")) / SHARDED_DIR)
        return folder
    _remove_stale(run_dir)
    with atomic_dir(folder) as tmp:
        save_model(tmp)
        _write_loop_state(tmp, scheduler, state, config, step)
        write_shards(Path(group.agree(str(tmp))) / SHARDED_DIR)
    _keep_newest(run_dir, keep)
    return folder


def _write_loop_state(tmp: Path, scheduler: Any, state: dict[str, Any], config: dict[str, Any], step: int) -> None:
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=1) + "\n")
    (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _remove_stale(run_dir: str | Path) -> None:
    """Temporary folders left by a save that was killed."""
    for stale in checkpoint_root(run_dir).glob(".step_*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def _keep_newest(run_dir: str | Path, keep: int) -> None:
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            trash = old.with_name(f".{old.name}.deleting.tmp")
            os.replace(old, trash)
            shutil.rmtree(trash, ignore_errors=True)


def load_training_state(
    folder: str | Path,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    load_optimizer: Callable[[dict], None] | None = None,
    load_sharded: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG from a checkpoint; returns its state.json.

    ``load_optimizer(state)`` replaces ``optimizer.load_state_dict`` (a sharded optimizer).
    A sharded checkpoint needs ``load_sharded(folder/sharded)``, which restores the model
    weights and the optimizer state together (a collective).
    """
    folder = Path(folder)
    sharded = is_sharded(folder)
    required = SHARDED_STATE_FILES if sharded else STATE_FILES
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise FileNotFoundError(f"checkpoint {folder} is missing {missing} (it holds {present}); resume from another step_* folder or start a new run")
    if sharded:
        if load_sharded is None:
            raise ValueError(f"checkpoint {folder} is sharded (written under FSDP); this recipe cannot resume it: "
                             f"export it with `tinywave export --checkpoint {folder} --out DIR` and start from DIR")
        load_sharded(folder / SHARDED_DIR)
    else:
        (load_optimizer or optimizer.load_state_dict)(load_torch(folder / "optimizer.pt", what="optimizer state"))
    scheduler.load_state_dict(load_torch(folder / "scheduler.pt", what="scheduler state"))
    rng = load_torch(folder / "rng.pt", what="RNG state")
    torch.set_rng_state(rng["torch"])
    random.setstate(as_random_state(rng["python"]))
    return json.loads((folder / "state.json").read_text())


def save_side_optimizers(folder: Path, optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, Any]) -> None:
    """``optimizer.<name>.pt`` and ``scheduler.<name>.pt`` for each side optimizer."""
    for name, opt in optimizers.items():
        torch.save(opt.state_dict(), Path(folder) / f"optimizer.{name}.pt")
        torch.save(schedulers[name].state_dict(), Path(folder) / f"scheduler.{name}.pt")


def load_side_optimizers(folder: str | Path, optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, Any]) -> None:
    """Restore what :func:`save_side_optimizers` wrote; a missing file is an error naming it."""
    for name, opt in optimizers.items():
        for what, target in (("optimizer", opt), ("scheduler", schedulers[name])):
            path = Path(folder) / f"{what}.{name}.pt"
            if not path.is_file():
                raise FileNotFoundError(f"checkpoint {folder} has no {path.name} (the {name} {what} state); it was written by "
                                        "another configuration: resume with that one or start a new run in another train.out")
            target.load_state_dict(load_torch(path, what=f"{name} {what} state"))


def as_random_state(state: Any) -> tuple:
    """A ``random.Random`` state read back from a checkpoint (JSON or a pickle-free torch file turned its tuples into lists)."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


def read_state(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "state.json").read_text())


def read_config(folder: str | Path) -> dict[str, Any]:
    return yaml.safe_load((Path(folder) / "config.yaml").read_text()) or {}

"""Scale-out under ``torchrun``: one process per device, DDP or FSDP2, sharded or gathered checkpoints.

    torchrun --nproc_per_node 2 -m tinywave.cli distill ... train.parallel=ddp   # or fsdp

:class:`Parallel` is everything the trainer needs to know about the other processes:

* ``wrap(objective, blocks)``: ``none`` returns the objective; ``ddp`` wraps it in
  ``DistributedDataParallel``; ``fsdp`` applies FSDP2's ``fully_shard`` to every block
  (decoder layer) and then to the objective itself (the root: embeddings, final norm, LM
  head, projections), so the student is sharded and the teacher, which is not a
  submodule of the objective, stays replicated and frozen.
* ``sum``: all-reduce of step statistics. The trainer sums the token counts of every
  rank's micro-batches into one normalizer, so the loss is the mean over the real tokens
  of the *global* batch; each rank's loss is its share of that mean, and
  ``loss_scale`` (= world size) undoes the averaging that DDP and FSDP apply to
  gradients, so the update equals the one-process update on the same global batch.
* ``gradient_sync(last)``: no gradient communication on accumulation micro-batches
  except the last one.
* checkpoints (``ckpt_format``): ``sharded`` (the default under FSDP) has every rank write
  its own shards of the model and optimizer state with ``torch.distributed.checkpoint``
  (``save_sharded`` / ``load_sharded``; ``tinywave.training.sharded``): nothing is
  gathered, and a sharded checkpoint resumes on any number of ranks, under DDP or in one
  process. ``full`` keeps the gathered format below.
* ``gather(optimizer)`` (a collective, ``ckpt_format=full``): under FSDP the full model and optimizer states
  are gathered with ``torch.distributed.checkpoint.state_dict.get_state_dict``
  (``full_state_dict``, CPU offload) into a plain copy on rank 0 (``plain(objective)``),
  and the optimizer state is renumbered by parameter position, i.e. exactly the
  ``optimizer.state_dict()`` of a one-process run. Checkpoints are therefore the same
  files whatever the mode and world size: written by 2 FSDP ranks, resumed by 1 process
  or by DDP, and vice versa; the model folder stays a plain Hugging Face folder.

Rank 0 alone logs at INFO, shows progress bars and writes files; the others wait at
barriers. CPU runs use the gloo backend, GPU runs NCCL.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tinywave.training.sharded import load_state, save_state

log = logging.getLogger(__name__)

MODES = ("auto", "none", "ddp", "fsdp")
CKPT_FORMATS = ("auto", "full", "sharded")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job, as ``torchrun`` describes it in the environment."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def torchrun_env(environ: dict[str, str] | None = None) -> DistEnv:
    """RANK / WORLD_SIZE / LOCAL_RANK from the environment (one process when unset)."""
    environ = dict(os.environ) if environ is None else environ
    try:
        env = DistEnv(int(environ.get("RANK", 0)), int(environ.get("WORLD_SIZE", 1)), int(environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers, got {environ.get('RANK')!r}/"
                         f"{environ.get('WORLD_SIZE')!r}/{environ.get('LOCAL_RANK')!r}; launch with torchrun") from None
    if env.world_size < 1 or not 0 <= env.rank < env.world_size:
        raise ValueError(f"RANK={env.rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={env.world_size}); launch with torchrun")
    return env


def resolve_mode(mode: str, env: DistEnv) -> str:
    """``auto``: ddp under torchrun with several processes, none otherwise."""
    if mode not in MODES:
        raise ValueError(f"train.parallel={mode!r} is not known; choose one of {list(MODES)}")
    if mode == "auto":
        return "ddp" if env.world_size > 1 else "none"
    if mode == "none" and env.world_size > 1:
        raise ValueError(f"launched with WORLD_SIZE={env.world_size} but train.parallel=none; set train.parallel=ddp or fsdp "
                         "(or auto), or run one process")
    if env.world_size == 1 and mode != "none":
        log.info("train.parallel=%s with a single process: nothing to split, running unwrapped", mode)
        return "none"
    return mode


def resolve_ckpt_format(ckpt_format: str, mode: str) -> str:
    """``auto``: sharded under FSDP (no rank holds the full state), full (one plain folder) otherwise."""
    if ckpt_format not in CKPT_FORMATS:
        raise ValueError(f"train.ckpt_format={ckpt_format!r} is not known; choose one of {list(CKPT_FORMATS)}")
    if ckpt_format == "auto":
        return "sharded" if mode == "fsdp" else "full"
    return ckpt_format


def _device_for(device: torch.device, env: DistEnv) -> torch.device:
    if device.type == "cuda" and env.world_size > 1:
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return device


def _quiet_other_ranks(env: DistEnv) -> None:
    """Rank 0 logs and draws progress bars; the other ranks only report warnings."""
    if env.rank != 0:
        logging.getLogger().setLevel(logging.WARNING)
        os.environ["TINYWAVE_PROGRESS"] = "0"


def meta_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters and buffers live on the meta device (no memory)."""
    memo: dict[int, Any] = {}
    for t in itertools.chain(module.parameters(), module.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(module, memo)


def _plain_skeleton(module: nn.Module) -> nn.Module:
    """Meta copies of ``module``'s children under the same names (other attributes, e.g. a teacher, are not copied)."""
    skeleton = nn.Module()
    for name, child in module.named_children():
        setattr(skeleton, name, meta_copy(child))
    return skeleton


def _by_index(state: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """Optimizer state keyed by parameter name -> keyed by position (``optimizer.state_dict()`` layout)."""
    index = {name: i for i, name in enumerate(order)}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]]
    return {"state": {index[n]: s for n, s in state["state"].items()}, "param_groups": groups}


def _by_name(state: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """The inverse of :func:`_by_index`."""
    groups = [{**g, "params": [order[i] for i in g["params"]]} for g in state["param_groups"]]
    return {"state": {order[int(i)]: s for i, s in state["state"].items()}, "param_groups": groups}


class Parallel:
    """How one training process relates to the others (see the module docstring)."""

    def __init__(self, mode: str = "none", env: DistEnv = DistEnv(), device: torch.device | None = None, ckpt_format: str = "full"):
        if mode not in ("none", "ddp", "fsdp"):
            raise ValueError(f"parallel mode {mode!r} is not one of none, ddp, fsdp")
        self.mode, self.env = mode, env
        self.sharded = resolve_ckpt_format(ckpt_format, mode) == "sharded"  # checkpoints written by every rank
        self.device = device or torch.device("cpu")
        self.module: nn.Module | None = None
        self._skeleton: nn.Module | None = None

    @classmethod
    def setup(cls, mode: str, device: torch.device, ckpt_format: str = "auto") -> "Parallel":
        """Read torchrun's environment, start the process group (gloo on CPU, NCCL on GPUs), pick the device."""
        env = torchrun_env()
        mode = resolve_mode(mode, env)
        resolve_ckpt_format(ckpt_format, mode)  # refuse an unknown format before joining the others
        device = _device_for(device, env)
        if env.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=env.rank, world_size=env.world_size)
        if env.world_size > 1:
            _quiet_other_ranks(env)
            log.info("distributed: %s over %d processes (%s)", mode, env.world_size, dist.get_backend())
        return cls(mode, env, device, ckpt_format)

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        return self.env.rank == 0

    @property
    def loss_scale(self) -> float:
        """Multiplier of each rank's loss before backward: DDP and FSDP average gradients over ranks."""
        return float(self.world_size) if self.mode != "none" else 1.0

    # --- wrapping -------------------------------------------------------------------

    def wrap(self, module: nn.Module, blocks: Iterable[nn.Module] = (), find_unused: bool = False) -> nn.Module:
        """The module to train: unchanged, DDP-wrapped, or FSDP2-sharded per block + root.

        ``find_unused``: some trainable parameters may get no gradient in a step (DDP only).
        """
        wrappers = {"none": self._keep, "ddp": self._ddp, "fsdp": self._fsdp}
        self.module = wrappers[self.mode](module, list(blocks), find_unused)
        return self.module

    def _keep(self, module: nn.Module, blocks: list[nn.Module], find_unused: bool) -> nn.Module:
        return module

    def _ddp(self, module: nn.Module, blocks: list[nn.Module], find_unused: bool) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)

    def _fsdp(self, module: nn.Module, blocks: list[nn.Module], find_unused: bool) -> nn.Module:
        from torch.distributed.fsdp import fully_shard  # lazy: torch.distributed.fsdp takes ~0.9 s to import; only FSDP runs need it

        if self.is_main and not self.sharded:
            self._skeleton = _plain_skeleton(module)  # receives the gathered weights at checkpoints
        for block in blocks:
            fully_shard(block)
        fully_shard(module)
        return module

    def plain(self, module: nn.Module) -> nn.Module:
        """``module`` with plain full tensors, for writing files on rank 0.

        none/ddp: the module itself; fsdp: a copy holding the weights of the last :meth:`gather`.
        """
        if self.mode != "fsdp":
            return module
        if self._skeleton is None:
            raise RuntimeError("plain() under FSDP is only available on rank 0 after gather()")
        return self._skeleton

    # --- communication ----------------------------------------------------------------

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Every value summed over the ranks (identity for one process)."""
        if self.world_size == 1:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return dict(zip(keys, t.tolist()))

    def agree(self, value: str) -> str:
        """Rank 0's value on every rank (e.g. a time-based decision to stop)."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    @contextlib.contextmanager
    def gradient_sync(self, last: bool) -> Iterator[None]:
        """Around one micro-batch's forward + backward: communicate gradients only when ``last``."""
        if self.mode == "ddp" and not last:
            with self.module.no_sync():
                yield
            return
        if self.mode == "fsdp":
            self.module.set_requires_gradient_sync(last)
        yield

    def clip_grad_norm(self, params: list[nn.Parameter], max_norm: float) -> float:
        """Clip the global gradient norm (over all shards); returns the norm before clipping."""
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if hasattr(norm, "full_tensor"):  # a DTensor under FSDP
            norm = norm.full_tensor()
        return float(norm)

    # --- checkpoints ------------------------------------------------------------------

    def _param_order(self, optimizer: torch.optim.Optimizer) -> list[str]:
        names = {id(p): n for n, p in self.module.named_parameters()}
        return [names[id(p)] for g in optimizer.param_groups for p in g["params"]]

    def save_sharded(self, folder: Path, optimizer: torch.optim.Optimizer) -> None:
        """Collective: every rank writes its shards of the wrapped module and of ``optimizer`` into ``folder``."""
        save_state(folder, self.module, optimizer)

    def load_sharded(self, folder: Path, optimizer: torch.optim.Optimizer) -> None:
        """Collective: the wrapped module and ``optimizer`` take a sharded checkpoint's state (any writer world size)."""
        if self.module is None:
            raise RuntimeError("load_sharded() needs the module from wrap()")
        load_state(folder, self.module, optimizer)

    def gather(self, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        """Collective before a checkpoint. FSDP: gathers the model into :meth:`plain` and returns the
        full optimizer state (rank 0; None elsewhere). none/ddp: None (the local state is complete)."""
        if self.mode != "fsdp":
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict  # lazy: DCP takes ~0.9 s to import; FSDP only

        model_state, optim_state = get_state_dict(self.module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.is_main:
            return None
        self._skeleton.load_state_dict(model_state, assign=True)
        return _by_index(optim_state, self._param_order(optimizer))

    def load_optimizer(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Load a full, position-keyed optimizer state (every rank passes the same state)."""
        if self.mode != "fsdp":
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict  # lazy: DCP (~0.9 s); FSDP only

        named = _by_name(state, self._param_order(optimizer))
        set_optimizer_state_dict(self.module, optimizer, named, options=StateDictOptions(full_state_dict=True))

    def close(self) -> None:
        """Wait for every rank, then leave the process group (started by :meth:`setup`)."""
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


SINGLE = Parallel()  # one process, nothing wrapped

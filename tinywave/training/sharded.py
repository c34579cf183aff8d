"""Sharded checkpoints: every rank writes its own part of the model and optimizer state.

Under FSDP a checkpoint is written with ``torch.distributed.checkpoint`` (DCP) into
``step_*/sharded/``: one ``__<rank>_0.distcp`` file per rank, holding that rank's shards
of the objective's parameters (student + projections) and of the AdamW moments, plus a
``.metadata`` file naming which rank holds which slice. No rank ever holds the full state.
The state is keyed by parameter name (``model.student.model.layers.0...`` and
``optim.state.student.model.layers.0...``), so a checkpoint written by N ranks loads on M
ranks, under DDP or in one process: DCP reads the slices each rank needs.

DCP reads ``.metadata`` with ``pickle`` and non-tensor entries with a full ``torch.load`` by
default; here the metadata goes through an unpickler that only builds DCP's own metadata
classes, and every non-tensor entry is first read with ``torch.load(weights_only=True)``,
so a tampered checkpoint is refused before anything in it runs.

:func:`read_model_weights` fills a plain (unsharded) model in one process: how
``tinywave export`` turns a sharded checkpoint into a plain Hugging Face folder.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from tinywave.safeload import UnsafeFileError

SHARDED_DIR = "sharded"  # inside a checkpoint folder
MODEL_PREFIX = "student."  # where the Hugging Face model sits in the objective (DistillObjective.student)
_OPT_IN = "rewrite the checkpoint from a trusted run"


def is_sharded(folder: str | Path) -> bool:
    """Whether a checkpoint folder holds DCP shards (``sharded/.metadata``)."""
    return (Path(folder) / SHARDED_DIR / ".metadata").is_file()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def _one_process_quiet() -> Iterator[None]:
    """DCP warns on every call without a process group; one process is a supported case here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def shard_files(folder: str | Path) -> list[Path]:
    """The per-rank data files of a sharded checkpoint folder, in rank order."""
    return sorted((Path(folder) / SHARDED_DIR).glob("*.distcp"))


# --- safe reading -------------------------------------------------------------------------

_METADATA_CLASSES = {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.serialization", "_get_layout"),
    ("torch", "Size"),
    ("collections", "OrderedDict"),
    ("pathlib", "Path"), ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
}


def _allowed_in_metadata(module: str, name: str) -> bool:
    if module == "torch.distributed.checkpoint.metadata" or (module, name) in _METADATA_CLASSES:
        return True
    return module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)


class _MetadataUnpickler(pickle.Unpickler):
    """Builds DCP's metadata dataclasses, tensor sizes and dtypes; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if not _allowed_in_metadata(module, name):
            raise pickle.UnpicklingError(f"{module}.{name}")
        return super().find_class(module, name)


def read_metadata(path: Path) -> Any:
    """A DCP ``.metadata`` file, unpickled with DCP's own classes only (else :class:`UnsafeFileError`)."""
    # lazy: torch.distributed.checkpoint (DCP) takes ~0.9 s to import and only sharded checkpoints need it (training.checkpoint imports this module)
    from torch.distributed.checkpoint.metadata import StorageMeta

    try:
        metadata = _MetadataUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(path, [str(exc)], "this sharded checkpoint's metadata", _OPT_IN) from None
    except (EOFError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read as a sharded checkpoint's metadata ({type(exc).__name__}: {exc}); "
                         "the file is truncated or damaged: resume from another step_* folder") from None
    metadata.storage_meta = getattr(metadata, "storage_meta", None) or StorageMeta()
    return metadata


def _reader(folder: Path):
    from torch.distributed.checkpoint import FileSystemReader  # lazy: DCP (~0.9 s), as in read_metadata

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any):
            metadata = read_metadata(folder / ".metadata")
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(str(folder))


def _planner(folder: Path):
    from torch.distributed.checkpoint import DefaultLoadPlanner  # lazy: DCP (~0.9 s), as in read_metadata

    class SafePlanner(DefaultLoadPlanner):
        def load_bytes(self, read_item, value: io.BytesIO) -> None:
            try:  # plain data only (numbers, strings, lists, dicts): the full load below then runs nothing else
                torch.load(value, weights_only=True)
            except pickle.UnpicklingError:
                raise UnsafeFileError(folder, [], f"entry {read_item.dest_index.fqn} of this sharded checkpoint", _OPT_IN) from None
            value.seek(0)
            super().load_bytes(read_item, value)

    return SafePlanner()


def _dcp_load(folder: Path, state: dict[str, Any], what: str, collective: bool) -> None:
    """``dcp.load`` of ``state`` in place, through the safe reader and planner; errors name the folder.

    ``collective``: every rank of the process group calls this (else this process reads alone).
    """
    import torch.distributed.checkpoint as dcp  # lazy: DCP (~0.9 s), as in read_metadata

    if not (folder / ".metadata").is_file():
        raise FileNotFoundError(f"{folder} holds no sharded checkpoint (no .metadata); resume from another step_* folder")
    read_metadata(folder / ".metadata")  # refused here, with its own message, before DCP wraps errors per rank
    try:
        with _one_process_quiet():
            dcp.load(state, storage_reader=_reader(folder), planner=_planner(folder), no_dist=not (collective and _distributed()))
    except UnsafeFileError:
        raise
    except Exception as exc:  # DCP wraps per-rank failures (missing keys, shape mismatch, missing files)
        raise ValueError(f"cannot read {what} from the sharded checkpoint {folder}: {str(exc)[:600]}; it was written "
                         "for another model or is incomplete: resume from another step_* folder") from exc


# --- writing and loading the training state ------------------------------------------------------


def save_state(folder: str | Path, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Collective: every rank writes its shards of ``module`` and ``optimizer`` into ``folder``."""
    # lazy: DCP (~0.9 s), as in read_metadata
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(module, optimizer)  # sharded (DTensor) under FSDP, keyed by name
    with _one_process_quiet():
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(folder), no_dist=not _distributed())


def load_state(folder: str | Path, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Collective: ``module`` and ``optimizer`` (wrapped or not) take the state saved by :func:`save_state`."""
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict  # lazy: DCP (~0.9 s), as in read_metadata

    model_state, optim_state = get_state_dict(module, optimizer)  # the layout to fill: this rank's shards
    state = {"model": model_state, "optim": optim_state}
    _dcp_load(Path(folder), state, "the model and optimizer state", collective=True)
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def read_model_weights(folder: str | Path, model: nn.Module, prefix: str = MODEL_PREFIX) -> nn.Module:
    """This process alone (even inside a process group): fill a plain ``model`` from the checkpoint's ``sharded/`` folder."""
    own = model.state_dict()
    state = {"model": {prefix + k: v for k, v in own.items()}}
    _dcp_load(Path(folder) / SHARDED_DIR, state, "the model weights", collective=False)
    model.load_state_dict({k[len(prefix):]: v for k, v in state["model"].items()})
    return model

"""Deterministic, resumable batches over a shard dataset.

Epoch ``e`` visits the rows in the order ``randperm(N, seed, e)``; batch ``b`` of that
epoch is a fixed slice of it, so the position ``(epoch, batch)`` stored in a checkpoint
is enough to continue with exactly the batches an uninterrupted run would see. With
``world_size`` > 1 each rank takes its own slice of every global batch (nothing here
assumes a single process). A trailing partial batch of an epoch is dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

from tinywave.data.shards import labels_from_batch


@dataclass
class DataPosition:
    epoch: int = 0
    batch: int = 0  # the next batch to read within the epoch

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class Stream(Protocol):
    """What :func:`tinywave.training.trainer.fit` reads batches from."""

    batch_size: int  # rows per batch of this process
    world_size: int  # processes reading their own part of each global batch

    def next(self) -> dict[str, torch.Tensor]: ...

    def state(self) -> dict[str, Any]:
        """The position to continue from, as JSON (stored in a checkpoint's state.json)."""
        ...

    def restore(self, state: dict[str, Any]) -> None: ...


class BatchStream:
    """Endless stream of {"input_ids", "attention_mask", "labels"} (each (B, T) LongTensor),
    "rows" ((B,) LongTensor: the dataset rows, the key of an offline teacher cache) and, for
    segmented shards (``packing=split``), "position_ids" ((B, T): one attention segment per document)."""

    def __init__(self, dataset, batch_size: int, seed: int, position: DataPosition | None = None, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} must be at least 1")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = len(dataset) // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the shards hold {len(dataset)} rows, fewer than one batch of {batch_size} x {world_size} process(es); "
                "lower data.batch_size or build more data"
            )
        self.position = DataPosition(**(position.to_json() if position else {}))
        self._order: torch.Tensor | None = None
        self._order_epoch = -1

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if self._order_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order, self._order_epoch = torch.randperm(len(self.dataset), generator=g), epoch
        return self._order

    def indices(self, position: DataPosition) -> list[int]:
        """Row ids of this rank's part of the batch at ``position``."""
        order = self._epoch_order(position.epoch)
        start = (position.batch * self.world_size + self.rank) * self.batch_size
        return order[start : start + self.batch_size].tolist()

    def state(self) -> dict[str, Any]:
        return self.position.to_json()

    def restore(self, state: dict[str, Any]) -> None:
        self.position = DataPosition(**state)

    def next(self) -> dict[str, torch.Tensor]:
        ids = self.indices(self.position)
        rows = [self.dataset[i] for i in ids]
        self.position.batch += 1
        if self.position.batch >= self.batches_per_epoch:
            self.position = DataPosition(self.position.epoch + 1, 0)
        input_ids = torch.stack([r["input_ids"] for r in rows])  # (B, T)
        attention_mask = torch.stack([r["attention_mask"] for r in rows])  # (B, T)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "rows": torch.tensor(ids, dtype=torch.long)}
        if "position_ids" in rows[0]:  # segmented rows (shards built with packing=split)
            batch["position_ids"] = torch.stack([r["position_ids"] for r in rows])  # (B, T)
        batch["labels"] = labels_from_batch(input_ids, attention_mask, position_ids=batch.get("position_ids"))
        return batch

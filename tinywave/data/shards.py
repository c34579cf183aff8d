"""Training shards: fixed-length rows of token ids in memory-mapped binary files.

``DIR/index.json`` describes the shard set (docs/FORMATS.md); each ``shard_*.bin`` holds
``rows x seq_len`` ids and ``shard_*.len.npy`` the number of real (non-pad) tokens of
each row. Two packings (``index.json`` ``packing``):

* ``whole`` (the default): documents back to back; a document that does not fit the rest
  of a row starts a new one (documents longer than a row are split), so rows end in
  padding, and a token attends to the earlier documents of its row.
* ``split``: padding-free. The documents form one stream cut into rows of exactly
  ``seq_len`` (only the last row is padded), and each document is its own attention
  segment: :meth:`ShardDataset.__getitem__` adds ``position_ids`` that restart at every
  document start (a BOS id) and at the start of the row, so a transformers decoder given
  ``position_ids`` and no ``attention_mask`` masks across segments (block-causal), and
  :func:`labels_from_batch` never asks a document to predict the next one. A document
  continued from the previous row starts a segment of its own. Padding of the last row is
  a segment too, with no targets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinywave.files import atomic_dir
from tinywave.safeload import load_numpy

FORMAT = "tinywave-shards-v1"
IGNORE_INDEX = -100  # the label of a position without a next-token target (padding, a document's last token)


def _dtype_for(vocab_size: int) -> str:
    return "uint16" if vocab_size <= np.iinfo(np.uint16).max + 1 else "uint32"


def split_rows(docs: Iterable[list[int]], seq_len: int) -> Iterator[list[int]]:
    """The documents as one stream, cut into rows of exactly ``seq_len`` ids (the last may be shorter)."""
    row: list[int] = []
    for doc in docs:
        while doc:
            take = seq_len - len(row)
            row += doc[:take]
            doc = doc[take:]
            if len(row) == seq_len:
                yield row
                row = []
    if row:
        yield row


def pack_rows(docs: Iterable[list[int]], seq_len: int) -> Iterator[list[int]]:
    """Greedy packing of whole documents into rows of at most ``seq_len`` ids."""
    row: list[int] = []
    for doc in docs:
        if not doc:
            continue
        for start in range(0, len(doc), seq_len):  # a document longer than a row is split
            piece = doc[start : start + seq_len]
            if len(row) + len(piece) > seq_len:
                yield row
                row = []
            row += piece
    if row:
        yield row


PACKINGS = {"whole": pack_rows, "split": split_rows}


def segment_positions(ids: torch.Tensor, mask: torch.Tensor, bos_id: int) -> torch.Tensor:
    """Position ids restarting at every BOS, at the row start and where padding starts: (..., T) -> (..., T).

    Segments (documents, pieces of documents, the padding) are the runs between restarts.
    """
    t = ids.shape[-1]
    pos = torch.arange(t, device=ids.device).expand_as(ids)
    starts = ids == bos_id
    starts[..., 0] = True
    starts[..., 1:] |= (mask[..., 1:] == 0) & (mask[..., :-1] == 1)  # padding is a segment of its own
    start_at = torch.where(starts, pos, torch.zeros_like(pos)).cummax(-1).values  # position of each token's segment start
    return pos - start_at


class _ShardWriter:
    def __init__(self, folder: Path, seq_len: int, dtype: str, pad_id: int, rows_per_shard: int):
        self.folder, self.seq_len, self.dtype, self.pad_id = folder, seq_len, dtype, pad_id
        self.rows_per_shard = rows_per_shard
        self.files: list[dict[str, Any]] = []
        self._rows: list[np.ndarray] = []
        self._lens: list[int] = []

    def add(self, row: list[int]) -> None:
        arr = np.full(self.seq_len, self.pad_id, dtype=self.dtype)
        arr[: len(row)] = row
        self._rows.append(arr)
        self._lens.append(len(row))
        if len(self._rows) >= self.rows_per_shard:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        name = f"shard_{len(self.files):05d}"
        np.stack(self._rows).tofile(self.folder / f"{name}.bin")
        np.save(self.folder / f"{name}.len.npy", np.asarray(self._lens, dtype=np.int32), allow_pickle=False)
        self.files.append({"name": f"{name}.bin", "lengths": f"{name}.len.npy", "rows": len(self._rows)})
        self._rows, self._lens = [], []


def write_shards(
    out_dir: str | Path,
    docs: Iterable[list[int]],
    seq_len: int,
    vocab_fingerprint: str,
    vocab_size: int,
    pad_id: int,
    *, bos_id: int,
    eos_id: int,
    rows_per_shard: int = 4096,
    meta: dict[str, Any] | None = None,
    packing: str = "whole",
) -> dict[str, Any]:
    """Pack documents (lists of ids) into shards under ``out_dir`` atomically; returns the index.

    ``packing``: ``whole`` or ``split`` (padding-free, one attention segment per document; module docstring).
    """
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len} is too small; use at least 2 (typically 256-2048)")
    if packing not in PACKINGS:
        raise ValueError(f"packing={packing!r} is not known; choose one of {sorted(PACKINGS)}")
    dtype = _dtype_for(vocab_size)
    tokens = 0
    with atomic_dir(out_dir) as tmp:
        writer = _ShardWriter(tmp, seq_len, dtype, pad_id, rows_per_shard)
        for row in PACKINGS[packing](docs, seq_len):
            if max(row) >= vocab_size or min(row) < 0:
                raise ValueError(f"a document holds id {max(row)} outside the vocabulary of {vocab_size}; the token corpus and tokenizer do not match")
            writer.add(row)
            tokens += len(row)
        writer.flush()
        count = sum(f["rows"] for f in writer.files)
        if count == 0:
            raise ValueError("no documents to write: the token corpus is empty or every record was filtered out")
        index = {
            "format": FORMAT, "dtype": dtype, "seq_len": seq_len, "count": count, "tokens": tokens,
            "vocab_fingerprint": vocab_fingerprint, "vocab_size": vocab_size,
            "pad_id": pad_id, "bos_id": bos_id, "eos_id": eos_id, "packing": packing, "files": writer.files, **(meta or {}),
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


def read_index(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / "index.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no index.json: it is not a shard folder; build one with `tinywave data build --out {folder}`")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{path}: format {index.get('format')!r} is not {FORMAT!r}; rebuild the shards with this version of tinywave")
    return index


class ShardDataset(torch.utils.data.Dataset):
    """Random access to packed rows by memmap: ``ds[i]`` -> input_ids, attention_mask (LongTensor[T]), and
    position_ids (LongTensor[T], one segment per document) when the shards were built with ``packing=split``."""

    def __init__(self, folder: str | Path, expected_fingerprint: str | None = None):
        self.folder = Path(folder)
        self.index = read_index(self.folder)
        got = self.index["vocab_fingerprint"]
        if expected_fingerprint is not None and got != expected_fingerprint:
            raise ValueError(
                f"shards in {self.folder} were built with vocabulary fingerprint {got}, but the model's tokenizer has "
                f"{expected_fingerprint}; rebuild them with `tinywave data build --tokenizer <the model's directory>`"
            )
        self.seq_len: int = self.index["seq_len"]
        self.pad_id: int = self.index["pad_id"]
        self.packing: str = self.index.get("packing", "whole")
        if self.packing not in PACKINGS:
            raise ValueError(f"{self.folder / 'index.json'}: packing {self.packing!r} is not known to this version of tinywave "
                             f"({sorted(PACKINGS)}); rebuild the shards or upgrade tinywave")
        self._maps = []
        self._lens = []
        for f in self.index["files"]:
            path = self.folder / f["name"]
            if not path.is_file():
                raise FileNotFoundError(f"shard file {path} listed in index.json is missing; rebuild the shards")
            mm = np.memmap(path, dtype=self.index["dtype"], mode="r")
            if mm.size != f["rows"] * self.seq_len:
                raise ValueError(f"shard file {path} holds {mm.size} ids, expected {f['rows']} rows x {self.seq_len}; it is truncated, rebuild the shards")
            self._maps.append(mm.reshape(f["rows"], self.seq_len))
            self._lens.append(load_numpy(self.folder / f["lengths"], what="shard lengths file"))
        self._starts = np.cumsum([0] + [f["rows"] for f in self.index["files"]])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        row = self._maps[k][i - self._starts[k]]
        n = int(self._lens[k][i - self._starts[k]])
        ids = torch.from_numpy(row.astype(np.int64))  # (T,)
        mask = torch.zeros(self.seq_len, dtype=torch.long)
        mask[:n] = 1
        if self.packing == "split":
            return {"input_ids": ids, "attention_mask": mask, "position_ids": segment_positions(ids, mask, self.index["bos_id"])}
        return {"input_ids": ids, "attention_mask": mask}


def labels_from_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                      position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token targets aligned with the inputs: labels[:, t] = input_ids[:, t+1]; pad -> ignore.

    With ``position_ids`` (segmented rows, ``packing=split``) a token whose successor starts a new
    segment has no target: a document never predicts the next one.
    """
    labels = input_ids.clone()  # (B, T)
    labels[attention_mask == 0] = ignore_index
    if position_ids is not None:
        labels[position_ids == 0] = ignore_index  # shifted below: the last token before each segment start
    return torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], ignore_index)], dim=1)

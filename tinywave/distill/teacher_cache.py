"""Offline teacher cache: run the teacher once over a shard folder, distil from what it stored.

``tinywave teacher-cache`` writes ``DIR/``:

* ``index.json``: format, the shards' fingerprint, the teacher's fingerprint (hash of its
  config + a checksum of its weights + dtype), ``top_k``, the temperatures, the stored
  hidden layers and the shape and dtype of every array;
* ``topk_ids.npy`` int32 (N, T, k): the k most likely next tokens at each position, most
  likely first; ``topk_logits.npy`` (N, T, k) their raw logits (float16, bfloat16 stored
  as int16 bits, or float32). With ``top_k=0`` (k = V) the logits are stored in vocabulary
  order and there is no ``topk_ids`` (it would only hold a permutation of the vocabulary);
* ``logz.npy`` float32 (N, T, n_temps): ``logsumexp(logits / temp)`` over the whole vocabulary
  for each cached temperature, so the top-k log-probabilities at that temperature are
  ``logits / temp - logz`` exactly;
* ``rest.npy`` float32 (N, T, n_temps): the log of the probability mass outside the top k,
  ``log(1 - sum of top-k p)``, computed directly from the other logits (-inf when k = V);
* ``hidden_<layer>.npy`` (N, T, D): the output of each stored teacher layer;
* ``query_<layer>.npy`` (N, H, T, d) and ``key_<layer>.npy`` (N, Hkv, T, d): the queries
  (after rotary embedding) and keys of each stored attention layer, from which the
  attention loss rebuilds the teacher's attention maps exactly as the online teacher does
  (``index.json`` ``attn_scale`` holds each layer's score scale). Per row that is
  2 x T x D values per layer, where the maps would be H x T^2.

Padding positions hold zeros. N rows x T positions follow the shard rows, so a batch's
``rows`` index the cache directly. The folder is built as ``DIR.partial`` one block of
rows at a time (journaled after the block's arrays are flushed, so a rerun redoes only
unfinished blocks) and renamed to ``DIR`` when complete. Under torchrun each rank takes
every world_size-th block.

**The KL from a cache** (:class:`CachedTeacher`): the teacher distribution at temperature
T is rebuilt over the whole vocabulary: the top-k ids get their exact log-probabilities
and the remaining mass is spread uniformly over the other V - k ids. The student's full
distribution is still compared. ``CachedBatch.logits`` gives that distribution dense (the
reference losses run on it unchanged); the training step takes it sparse
(``vocab_targets``: top-k log-probabilities + one value for the other ids), so the fused KL
never builds an (n, V) teacher tensor. With k = V nothing is spread and the losses equal
the online ones. A softened distribution at
a temperature needs the normalizer of *all* logits at that temperature: a cache serves
the temperatures it was built with (any temperature when k = V).

**The tail** (``tail``): ``uniform`` spreads the rest mass over all V - k other ids; in a
speech context that teaches the student to put the teacher's tail on tens of thousands of
text ids it never predicts there. ``modality`` spreads it only over the ids of the modality
range (text, markers, speech units: :func:`modality_ranges`) holding the teacher's top-1
id, falling back to the whole vocabulary when the top k use that range up.

**The attention loss from a cache** needs a cache built with ``attn_layers`` (the teacher
layers of the layer map): the maps are recomputed from the stored queries and keys in the
loss (``tinywave.distill.fused``), so with float32 storage and ``top_k=0`` every loss
equals the online teacher's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinywave.distill.fused import TopKTargets
from tinywave.distill.teacher import OnlineTeacher, TeacherBatch
from tinywave.files import JsonlAppender, atomic_write_json, load_jsonl
from tinywave.models.attention import decoder_layers
from tinywave.precision_names import long_name
from tinywave.progress import bar

log = logging.getLogger(__name__)

FORMAT = "tinywave-teacher-cache-v1"
# stored dtype name -> (numpy storage dtype, torch dtype); bfloat16 travels as its int16 bits
STORAGE: dict[str, tuple[Any, torch.dtype]] = {
    "float32": (np.float32, torch.float32), "float16": (np.float16, torch.float16), "bfloat16": (np.int16, torch.bfloat16),
}
_FLOOR = -1e4  # log-probability given to ids whose share of the rest mass underflowed (exp -> 0, never NaN)
_CONFIG_SKIP = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "attn_implementation"}


# --- fingerprints -----------------------------------------------------------------------

def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def teacher_fingerprint(model: nn.Module) -> dict[str, str]:
    """{config, weights, dtype, fingerprint}: a hash of the config, a checksum of every weight
    (its float64 sum and up to 4096 evenly strided values) and the parameter dtype."""
    config = {k: v for k, v in model.config.to_dict().items() if k not in _CONFIG_SKIP and not k.startswith("_")}
    h_config = _sha(json.dumps(config, sort_keys=True, default=str).encode())
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        flat = t.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 4096)][:4096].float().cpu().numpy()
        total = float(flat.sum(dtype=torch.float64)) if flat.is_floating_point() else float(flat.long().sum())
        h.update(f"{name}{tuple(t.shape)}{t.dtype}{total!r}".encode() + sample.tobytes())
    weights = h.hexdigest()[:16]
    # the torch name of the weights' dtype ("float32"), never the spelling of a config key: a teacher loaded with
    # teacher.dtype=fp32 or =float32 has the same fingerprint, so caches built before the short names still match
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    return {"config": h_config, "weights": weights, "dtype": dtype, "fingerprint": _sha(f"{h_config}/{weights}/{dtype}".encode())}


def shards_fingerprint(dataset) -> str:
    """Hash of a ShardDataset's index.json and of up to 64 of its rows spread over the set."""
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(len(dataset), 64)).astype(np.int64))
    rows = [dataset[int(i)] for i in picks]
    sample = b"".join(r["input_ids"].numpy().tobytes() + r["attention_mask"].numpy().tobytes() for r in rows)
    return _sha(json.dumps(dataset.index, sort_keys=True).encode(), sample)


# --- arrays -------------------------------------------------------------------------------

def _specs(n: int, t: int, k: int, n_temps: int, logit_dtype: str, hidden: list[int], *, width: int, hidden_dtype: str,
           attn: list[int] = (), heads: tuple[int, int, int] = (0, 0, 0), attn_dtype: str = "float16", full: bool = False) -> dict[str, dict]:
    specs = {
        **({} if full else {"topk_ids": {"dtype": "int32", "shape": [n, t, k]}}),
        "topk_logits": {"dtype": logit_dtype, "shape": [n, t, k]},
        "logz": {"dtype": "float32", "shape": [n, t, n_temps]},
        "rest": {"dtype": "float32", "shape": [n, t, n_temps]},
    }
    specs.update({f"hidden_{layer}": {"dtype": hidden_dtype, "shape": [n, t, width]} for layer in hidden})
    h, hkv, d = heads  # query heads, key/value heads, head dim
    specs.update({f"query_{layer}": {"dtype": attn_dtype, "shape": [n, h, t, d]} for layer in attn})
    specs.update({f"key_{layer}": {"dtype": attn_dtype, "shape": [n, hkv, t, d]} for layer in attn})
    return specs


def attention_shape(config) -> tuple[int, int, int]:
    """(query heads, key/value heads, head dim) of a Llama-style config."""
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return heads, kv, dim


def _storage(dtype: str):
    return np.int32 if dtype == "int32" else STORAGE[dtype][0]


def _open_arrays(folder: Path, specs: dict[str, dict], mode: str) -> dict[str, np.memmap]:
    """Memmaps of every array (``w+`` creates a missing or wrongly sized file, ``r+``/``r`` open)."""
    arrays = {}
    for name, spec in specs.items():
        path = folder / f"{name}.npy"
        shape, dtype = tuple(spec["shape"]), _storage(spec["dtype"])
        if mode == "w+" and path.is_file():
            mm = np.load(path, mmap_mode="r+", allow_pickle=False)
            if mm.shape == shape and mm.dtype == dtype:
                arrays[name] = mm
                continue
        if mode == "w+":
            arrays[name] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            continue
        if not path.is_file():
            raise FileNotFoundError(f"teacher cache {folder} lacks {path.name}; rebuild it with `tinywave teacher-cache --out {folder}`")
        mm = np.load(path, mmap_mode=mode, allow_pickle=False)
        if mm.shape != shape or mm.dtype != dtype:
            raise ValueError(f"{path} holds {mm.dtype} {mm.shape}, index.json says {spec['dtype']} {shape}; rebuild the cache")
        arrays[name] = mm
    return arrays


def _to_numpy(t: torch.Tensor, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return t.to(torch.bfloat16).view(torch.int16).cpu().numpy()
    return t.to(STORAGE[dtype][1] if dtype in STORAGE else torch.int32).cpu().numpy()


def _to_torch(a: np.ndarray, dtype: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


# --- writing ------------------------------------------------------------------------------

@dataclass
class CacheSettings:
    top_k: int = 64  # 0: the whole vocabulary
    temperatures: tuple[float, ...] = (1.0, 2.0)
    logit_dtype: str = "fp16"  # fp32 / bf16 / fp16, or float32 / bfloat16 / float16; index.json records the long name
    hidden_layers: tuple[int, ...] = ()
    hidden_dtype: str = "bf16"
    attn_layers: tuple[int, ...] = ()
    attn_dtype: str = "fp16"
    batch_size: int = 8
    block_rows: int = 256
    chunk_size: int = 1024

    def check(self, vocab_size: int, n_layers: int) -> None:
        for what in ("logit_dtype", "hidden_dtype", "attn_dtype"):
            long_name(getattr(self, what), key=what)  # fp16 / float16, ...: anything else is refused here
        if not 0 <= self.top_k <= vocab_size:
            raise ValueError(f"top_k={self.top_k} must be in 1..{vocab_size} (the vocabulary), or 0 for all of it")
        if not self.temperatures or any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures={list(self.temperatures)} must list at least one temperature > 0 (distill's loss.temperature)")
        for what, layers in (("hidden_layers", self.hidden_layers), ("attn_layers", self.attn_layers)):
            bad = [layer for layer in layers if not 0 <= layer < n_layers]
            if bad:
                raise ValueError(f"{what} {bad} are out of range: the teacher has layers 0..{n_layers - 1}")
        for name in ("batch_size", "block_rows", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")


def _index(settings: CacheSettings, dataset, teacher: nn.Module, teacher_fp: dict[str, str]) -> dict[str, Any]:
    vocab = teacher.config.vocab_size
    k = settings.top_k or vocab
    hidden = sorted(set(settings.hidden_layers))
    attn = sorted(set(settings.attn_layers))
    # index.json keeps the long dtype names it has always had, whichever spelling the settings use (fp16 = float16)
    logit_dtype, hidden_dtype, attn_dtype = (long_name(d) for d in (settings.logit_dtype, settings.hidden_dtype, settings.attn_dtype))
    return {
        "format": FORMAT, "complete": False,
        "shards": {"fingerprint": shards_fingerprint(dataset), "folder": str(dataset.folder), "count": len(dataset), "seq_len": dataset.seq_len},
        "teacher": teacher_fp, "vocab_size": vocab, "top_k": k, "temperatures": [float(t) for t in settings.temperatures],
        "logit_dtype": logit_dtype, "hidden_layers": hidden, "hidden_dtype": hidden_dtype,
        "hidden_size": teacher.config.hidden_size, "block_rows": settings.block_rows,
        "attn_layers": attn, "attn_dtype": attn_dtype, "attn_scale": {},  # scale per layer, filled by the first batch
        "arrays": _specs(len(dataset), dataset.seq_len, k, len(settings.temperatures), logit_dtype, hidden,
                         width=teacher.config.hidden_size, hidden_dtype=hidden_dtype, attn=attn, heads=attention_shape(teacher.config), attn_dtype=attn_dtype,
                         full=k == vocab),
    }


def _same_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("format", "teacher", "vocab_size", "top_k", "temperatures", "logit_dtype", "hidden_layers", "hidden_dtype", "block_rows", "arrays",
            "attn_layers", "attn_dtype")
    return all(a.get(k) == b.get(k) for k in keys) and a["shards"]["fingerprint"] == b["shards"]["fingerprint"]


@torch.no_grad()
def topk_targets(logits: torch.Tensor, k: int, temperatures: list[float]) -> dict[str, torch.Tensor]:
    """What the cache stores for rows of full logits (n, V): ids, logits (n, k), logz, rest (n, n_temps)."""
    logits = logits.float()
    full = k == logits.shape[1]
    if full:  # every logit, in vocabulary order
        values, ids = logits, torch.arange(k, device=logits.device).expand_as(logits)
    else:
        values, ids = logits.topk(k, dim=-1)  # (n, k), most likely first
    logz, rest = [], []
    for temp in temperatures:
        scaled = logits / temp  # (n, V)
        z = torch.logsumexp(scaled, dim=-1)  # (n,)
        logz.append(z)
        rest.append(torch.full_like(z, float("-inf")) if full else torch.logsumexp(scaled.scatter(1, ids, float("-inf")), dim=-1) - z)
    return {"topk_ids": ids.int(), "topk_logits": values, "logz": torch.stack(logz, -1), "rest": torch.stack(rest, -1)}


def _write_batch(arrays, index: dict, rows: list[int], batch: TeacherBatch, mask: torch.Tensor, chunk: int) -> None:
    """Fill the arrays of ``rows`` from one teacher batch; mask: (B, T), only real positions are computed."""
    b, t = mask.shape
    flat = mask.reshape(-1).nonzero().squeeze(1)  # (n,) real positions in B*T
    out = {name: torch.zeros((b * t, *spec["shape"][2:]), dtype=torch.float32 if name != "topk_ids" else torch.int32)
           for name, spec in index["arrays"].items() if name in _VOCAB_ARRAYS}
    for start in range(0, flat.numel(), chunk):
        pos = flat[start : start + chunk]
        got = topk_targets(batch.logits(pos), index["top_k"], index["temperatures"])
        for name, value in got.items():
            if name in out:  # k = V: no topk_ids
                out[name][pos] = value.to(out[name].dtype).cpu()
    specs = index["arrays"]
    for name, value in out.items():
        arrays[name][rows] = _to_numpy(value.reshape(b, t, *value.shape[1:]), specs[name]["dtype"])
    for layer in index["hidden_layers"]:
        h = batch.hidden[layer] * mask[..., None].to(batch.hidden[layer].dtype)  # (B, T, D), pads zeroed
        arrays[f"hidden_{layer}"][rows] = _to_numpy(h, specs[f"hidden_{layer}"]["dtype"])
    keep = mask[:, None, :, None]  # (B, 1, T, 1): pads zeroed
    for layer in index["attn_layers"]:
        query, key, _ = batch.attn_qk[layer]  # (B, H, T, d), (B, Hkv, T, d)
        arrays[f"query_{layer}"][rows] = _to_numpy(query * keep.to(query.dtype), specs[f"query_{layer}"]["dtype"])
        arrays[f"key_{layer}"][rows] = _to_numpy(key * keep.to(key.dtype), specs[f"key_{layer}"]["dtype"])


_VOCAB_ARRAYS = ("topk_ids", "topk_logits", "logz", "rest")


def _attention_scales(teacher: nn.Module, layers: list[int]) -> dict[str, float]:
    """{layer: the score scale of its attention} (what record_qk reports; 1/sqrt(d) unless the config says otherwise)."""
    blocks = decoder_layers(teacher)
    return {str(i): float(getattr(blocks[i].self_attn, "scaling", attention_shape(teacher.config)[2] ** -0.5)) for i in layers}


def _done_blocks(folder: Path) -> set[int]:
    return {int(r["block"]) for p in folder.glob("progress.rank*.jsonl") for r in load_jsonl(p) if "block" in r}


def _prepare_partial(out: Path, index: dict[str, Any]) -> Path:
    """The ``out.partial`` folder to (continue to) fill; refuses one made with other settings."""
    partial = out.with_name(out.name + ".partial")
    if (partial / "index.json").is_file():
        if not _same_settings(json.loads((partial / "index.json").read_text()), index):
            raise ValueError(f"{partial} holds an unfinished cache built with other settings, teacher or shards; "
                             "delete it or rerun with the settings it was started with")
    else:
        partial.mkdir(parents=True, exist_ok=True)
        atomic_write_json(partial / "index.json", index)
    return partial


@torch.inference_mode()
def build_cache(
    teacher: nn.Module, dataset, out: str | Path, settings: CacheSettings, device: torch.device = torch.device("cpu"),
    rank: int = 0, *, world_size: int = 1, stop_after_blocks: int = 0,
) -> dict[str, Any]:
    """Write (or finish) the cache of ``teacher`` over ``dataset`` into ``out``; returns a summary.

    Rank ``rank`` of ``world_size`` fills blocks ``b % world_size == rank``. With
    ``stop_after_blocks`` > 0 it stops after that many blocks (a rerun continues).
    The folder is renamed into place by whichever call finds every block done.
    """
    out = Path(out)
    settings.check(teacher.config.vocab_size, teacher.config.num_hidden_layers)
    index = _index(settings, dataset, teacher, teacher_fingerprint(teacher))
    index["attn_scale"] = _attention_scales(teacher, index["attn_layers"])
    if (out / "index.json").is_file():
        if _same_settings(read_index(out), index):
            log.info("teacher cache %s is already complete", out)
            return {"complete": True, "blocks_done": 0, "folder": str(out)}
        raise ValueError(f"{out} already holds a teacher cache built with other settings, teacher or shards; choose another --out or delete it")
    partial = _prepare_partial(out, index)
    arrays = _open_arrays(partial, index["arrays"], "w+")
    n_blocks = math.ceil(len(dataset) / settings.block_rows)
    todo = [b for b in range(rank, n_blocks, world_size) if b not in _done_blocks(partial)]
    online = OnlineTeacher(teacher.to(device), index["hidden_layers"], index["attn_layers"], logits=True)
    done_now = 0
    with JsonlAppender(partial / f"progress.rank{rank}.jsonl") as journal:
        for block in bar(todo, desc="teacher cache", unit="block"):
            if stop_after_blocks and done_now >= stop_after_blocks:
                break
            first = block * settings.block_rows
            block_rows = list(range(first, min(first + settings.block_rows, len(dataset))))
            for start in range(0, len(block_rows), settings.batch_size):
                rows = block_rows[start : start + settings.batch_size]
                items = [dataset[i] for i in rows]
                ids = torch.stack([r["input_ids"] for r in items]).to(device)  # (B, T)
                mask = torch.stack([r["attention_mask"] for r in items]).to(device)  # (B, T)
                pos = torch.stack([r["position_ids"] for r in items]).to(device) if "position_ids" in items[0] else None  # (B, T)
                _write_batch(arrays, index, rows, online(ids, mask, position_ids=pos), mask.bool(), settings.chunk_size)
            for mm in arrays.values():
                mm.flush()
            journal.write({"block": block, "rows": [first, block_rows[-1] + 1]})
            done_now += 1
    del arrays
    complete = world_size == 1 and finish_if_complete(out)  # several ranks: rank 0 finishes after a barrier
    return {"complete": complete, "blocks_done": done_now, "blocks": n_blocks, "folder": str(out if complete else partial)}


def finish_if_complete(out: str | Path) -> bool:
    """Rename ``DIR.partial`` to ``DIR`` (index marked complete) if every block is journaled."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if (out / "index.json").is_file() and not partial.exists():
        return True
    index = json.loads((partial / "index.json").read_text())
    if len(_done_blocks(partial)) < math.ceil(index["shards"]["count"] / index["block_rows"]):
        return False
    atomic_write_json(partial / "index.json", {**index, "complete": True})
    for journal in partial.glob("progress.rank*.jsonl"):
        journal.rename(partial / f".{journal.name}")  # kept for the record, hidden
    os.replace(partial, out)
    log.info("teacher cache -> %s", out)
    return True


def read_index(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / "index.json"
    if not path.is_file():
        partial = folder.with_name(folder.name + ".partial")
        hint = f" ({partial} holds an unfinished one: rerun `tinywave teacher-cache` to finish it)" if partial.is_dir() else ""
        raise FileNotFoundError(f"{folder} is not a teacher cache (no index.json){hint}; build one with `tinywave teacher-cache --out {folder}`")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT or not index.get("complete"):
        raise ValueError(f"{path}: format {index.get('format')!r} (complete={index.get('complete')}) is not a finished {FORMAT}; rebuild the cache")
    return index


# --- reading ------------------------------------------------------------------------------

class CachedBatch(TeacherBatch):
    """Teacher targets read from a cache; ``logits(rows)`` rebuilds the softened distribution over V."""

    def __init__(self, hidden: dict[int, torch.Tensor], ids: torch.Tensor, logp: torch.Tensor, fill: torch.Tensor,
                 vocab_size: int, *, temperature: float, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None):
        super().__init__(hidden=hidden)
        self.ids, self.logp, self.fill = ids, logp, fill  # (B*T, k) long, (B*T, k) and (B*T,) float32
        self.lo, self.hi = lo, hi  # (B*T,) long tail range of each position, None: the whole vocabulary
        self.vocab_size, self.temperature = vocab_size, temperature

    def logits(self, rows: torch.Tensor) -> torch.Tensor:
        """(n, V) float32 whose softmax at the temperature is the cached teacher distribution."""
        logp = self.fill[rows, None].expand(rows.numel(), self.vocab_size).clone()  # (n, V) rest mass on the tail
        if self.lo is not None:
            cols = torch.arange(self.vocab_size, device=logp.device)
            outside = (cols < self.lo[rows, None]) | (cols >= self.hi[rows, None])  # (n, V)
            logp.masked_fill_(outside, _FLOOR)  # no teacher mass outside the tail range
        logp.scatter_(1, self.ids[rows], self.logp[rows])  # top-k log-probabilities
        return logp * self.temperature

    def vocab_targets(self, rows: torch.Tensor) -> TopKTargets:
        """The same distribution, sparse: the fused KL never builds the dense (n, V) teacher tensor."""
        if self.lo is None:
            return TopKTargets(self.ids[rows], self.logp[rows], self.fill[rows])
        return TopKTargets(self.ids[rows], self.logp[rows], self.fill[rows], self.lo[rows], self.hi[rows])


def modality_ranges(layout) -> list[tuple[int, int]]:
    """Id ranges [lo, hi) of each modality of a speech-LM vocabulary (a VocabLayout): text, markers, speech units."""
    return [(0, layout.text_size), (layout.text_id, layout.speech_id + 1), (layout.hu_offset, layout.size)]


def tail_ranges(top1: torch.Tensor, ids: torch.Tensor, ranges: list[tuple[int, int]], vocab: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lo, hi, count) (n,) each: the modality range holding each position's top-1 id and how many of
    its ids are outside the top k. A position whose range is used up by the top k (or whose top-1
    lies in no range) falls back to the whole vocabulary. top1: (n,), ids: (n, k)."""
    bounds = torch.tensor(ranges, dtype=torch.long, device=top1.device)  # (G, 2)
    member = (top1[:, None] >= bounds[:, 0]) & (top1[:, None] < bounds[:, 1])  # (n, G)
    found = member.any(1)
    g = member.float().argmax(1)  # (n,) first range holding the top-1 id
    lo = torch.where(found, bounds[g, 0], 0)
    hi = torch.where(found, bounds[g, 1], vocab)
    count = (hi - lo) - ((ids >= lo[:, None]) & (ids < hi[:, None])).sum(1)
    empty = count == 0
    lo, hi = torch.where(empty, 0, lo), torch.where(empty, vocab, hi)
    count = torch.where(empty, vocab - ids.shape[1], count)
    return lo, hi, count


TAILS = ("uniform", "modality")


class CachedTeacher:
    """The :class:`~tinywave.distill.teacher.OnlineTeacher` interface, served from a cache folder."""

    def __init__(self, folder: str | Path, temperature: float, hidden_layers=(), logits: bool = True,
                 *, tail: str = "uniform", ranges: list[tuple[int, int]] | None = None, attn_layers=()):
        if tail not in TAILS:
            raise ValueError(f"teacher cache tail {tail!r} is not known; choose one of {list(TAILS)}")
        if tail == "modality" and not ranges:
            raise ValueError("tail='modality' needs the vocabulary's modality ranges (a teacher folder with a speech-LM "
                             "tokenizer: `tinywave vocab`); use tail='uniform' for a text-only vocabulary")
        self.tail, self.ranges = tail, list(ranges or [])
        self.folder = Path(folder)
        self.index = read_index(self.folder)
        self.temperature, self.want_logits = float(temperature), logits
        self.hidden_layers = sorted(hidden_layers)
        missing = [layer for layer in self.hidden_layers if layer not in self.index["hidden_layers"]]
        if missing:
            raise ValueError(f"teacher cache {self.folder} stores hidden states of layers {self.index['hidden_layers']}, not {missing}; "
                             f"rebuild it with hidden_layers={sorted(set(self.index['hidden_layers']) | set(missing))} or set loss.hidden_weight=0")
        self.attn_layers = sorted(attn_layers)
        stored = self.index.get("attn_layers", [])
        missing = [layer for layer in self.attn_layers if layer not in stored]
        if missing:
            raise ValueError(f"teacher cache {self.folder} stores the queries and keys of layers {stored}, not {missing} (the attention "
                             f"loss needs them); rebuild it with attn_layers={sorted(set(stored) | set(missing))} or set loss.attn_weight=0")
        self.temp_slot = self._temperature_slot()
        vocab_arrays = [name for name in _VOCAB_ARRAYS if name in self.index["arrays"]]
        names = (vocab_arrays * logits + [f"hidden_{layer}" for layer in self.hidden_layers]
                 + [f"{kind}_{layer}" for layer in self.attn_layers for kind in ("query", "key")])
        self.arrays = _open_arrays(self.folder, {n: self.index["arrays"][n] for n in names}, "r")

    def _temperature_slot(self) -> int | None:
        temps = self.index["temperatures"]
        for i, t in enumerate(temps):
            if math.isclose(t, self.temperature, rel_tol=1e-9):
                return i
        if self.index["top_k"] == self.index["vocab_size"] or not self.want_logits:
            return None  # every logit is stored: the normalizer is recomputed
        raise ValueError(f"teacher cache {self.folder} holds the normalizers of temperatures {temps} only; loss.temperature="
                         f"{self.temperature} needs a cache built with temperatures={temps + [self.temperature]} (or top_k=0)")

    def _read(self, name: str, rows: np.ndarray) -> torch.Tensor:
        return _to_torch(self.arrays[name][rows], self.index["arrays"][name]["dtype"])

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None) -> TeacherBatch:
        if rows is None:
            raise ValueError("a cached teacher needs the dataset rows of each batch (BatchStream provides them)")
        r = rows.cpu().numpy()
        device = input_ids.device
        hidden = {layer: self._read(f"hidden_{layer}", r).to(device, torch.float32) for layer in self.hidden_layers}  # (B, T, D)
        batch = self._targets(hidden, r, device) if self.want_logits else TeacherBatch(hidden=hidden)
        scale = self.index.get("attn_scale", {})
        batch.attn_qk = {layer: (self._read(f"query_{layer}", r).to(device, torch.float32),  # (B, H, T, d)
                                 self._read(f"key_{layer}", r).to(device, torch.float32),  # (B, Hkv, T, d)
                                 scale[str(layer)]) for layer in self.attn_layers}
        return batch

    def _targets(self, hidden: dict[int, torch.Tensor], r: np.ndarray, device: torch.device) -> CachedBatch:
        """Hidden states plus the cached next-token distribution of rows ``r``."""
        z = self._read("topk_logits", r).flatten(0, 1).to(device, torch.float32) / self.temperature  # (B*T, k)
        k, vocab = self.index["top_k"], self.index["vocab_size"]
        if "topk_ids" in self.index["arrays"]:
            ids = self._read("topk_ids", r).flatten(0, 1).to(device, torch.long)  # (B*T, k)
        else:  # k = V in vocabulary order
            ids = torch.arange(vocab, device=device).expand(z.shape[0], vocab)  # (B*T, V)
        if self.temp_slot is None:  # k = V: the normalizer of the full logits at this temperature
            logz, rest = torch.logsumexp(z, -1), torch.full(z.shape[:1], float("-inf"), device=device)
        else:
            logz = self._read("logz", r)[..., self.temp_slot].flatten().to(device)  # (B*T,)
            rest = self._read("rest", r)[..., self.temp_slot].flatten().to(device)  # (B*T,)
        if k == vocab:
            return CachedBatch(hidden, ids, z - logz[:, None], torch.full_like(rest, _FLOOR), vocab, temperature=self.temperature)
        if self.tail == "uniform":  # the rest mass spread over every id outside the top k
            fill = (rest - math.log(vocab - k)).clamp(min=_FLOOR)
            return CachedBatch(hidden, ids, z - logz[:, None], fill, vocab, temperature=self.temperature)
        lo, hi, count = tail_ranges(ids[:, 0], ids, self.ranges, vocab)  # over the top-1 id's modality only
        fill = (rest - count.float().log()).clamp(min=_FLOOR)
        return CachedBatch(hidden, ids, z - logz[:, None], fill, vocab, temperature=self.temperature, lo=lo, hi=hi)


def open_cache(folder: str | Path, teacher: nn.Module, dataset, temperature: float, hidden_layers=(), logits: bool = True,
               *, attn_layers=(), tail: str = "uniform", ranges: list[tuple[int, int]] | None = None) -> CachedTeacher:
    """A :class:`CachedTeacher` after checking that the cache was built from ``dataset`` by ``teacher``."""
    index = read_index(folder)
    fp = teacher_fingerprint(teacher)
    if index["teacher"]["fingerprint"] != fp["fingerprint"]:
        differs = [k for k in ("config", "weights", "dtype") if index["teacher"].get(k) != fp[k]]
        raise ValueError(f"teacher cache {folder} was built by another teacher (its {', '.join(differs)} differ: "
                         f"{ {k: index['teacher'].get(k) for k in differs} } vs { {k: fp[k] for k in differs} }); rebuild it with "
                         "`tinywave teacher-cache` from this teacher.dir and teacher.dtype, or drop teacher.cache")
    shards = shards_fingerprint(dataset)
    if index["shards"]["fingerprint"] != shards:
        raise ValueError(f"teacher cache {folder} was built from other shards ({index['shards']['folder']}, fingerprint "
                         f"{index['shards']['fingerprint']}) than {dataset.folder} ({shards}); rebuild it over data.shards or drop teacher.cache")
    return CachedTeacher(folder, temperature, hidden_layers, logits, tail=tail, ranges=ranges, attn_layers=attn_layers)

"""Attention over key windows: SDPA per block of queries, on the keys its mask allows at all.

Padding-free rows (``packing=split``, tinywave/data/shards.py) hold several documents, each
its own attention segment; transformers gives SDPA a (B, 1, T, T) block-causal mask, and
the CPU kernel then computes all T x T scores, though a query sees only the earlier keys of
its own document (23% of the causal triangle in the demo's shards, documents of 124 tokens
on average in rows of 512). :func:`windowed_sdpa` cuts the queries into blocks and gives
each block only the keys between the first and the last key any of its rows may attend
(in any row of the batch), so outputs and gradients equal one SDPA call over the full mask
(tests/test_windowed_attention.py) with a fraction of the work.

Masks that are not boolean, short rows and decoding (queries fewer than keys) take the
plain SDPA call.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

BLOCK = 128  # query rows per block


_LAST: list = [None, None, None, None]  # weakref to the last mask, its version, block, its windows


def key_windows(mask: torch.Tensor, block: int | None = None) -> list[tuple[int, int, int, int]]:
    """(q0, q1, k0, k1) per block of query rows: keys k0..k1-1 hold every key that rows q0..q1-1 may attend.

    mask: (B, 1 or H, T, S) bool, True where a query may attend a key. A row with no allowed key
    does not narrow its block's window (its output is whatever SDPA gives a fully masked row).
    transformers hands every layer the same mask tensor: the windows of the last one (same object,
    unchanged since) are reused instead of scanning it once per layer. An inference tensor
    (``torch.inference_mode``: the teacher cache, scoring) has no version counter to tell an
    in-place change, so its windows are scanned on every call."""
    block = block or BLOCK
    if mask.is_inference():
        return _scan_windows(mask, block)
    ref, version, last_block, windows = _LAST
    if ref is not None and ref() is mask and version == mask._version and last_block == block:
        return windows
    windows = _scan_windows(mask, block)
    _LAST[:] = [weakref.ref(mask), mask._version, block, windows]
    return windows


def _scan_windows(mask: torch.Tensor, block: int) -> list[tuple[int, int, int, int]]:
    t, s = mask.shape[-2], mask.shape[-1]
    rows = mask.flatten(0, 1)  # (B * h, T, S)
    some = rows.any(-1)  # (B * h, T)
    first = torch.where(some, rows.int().argmax(-1), s)  # first allowed key, S for an empty row
    last = torch.where(some, s - 1 - rows.flip(-1).int().argmax(-1), -1)  # last allowed key, -1 for an empty row
    first, last = first.amin(0).tolist(), last.amax(0).tolist()  # [T] over the batch
    out = []
    for q0 in range(0, t, block):
        q1 = min(q0 + block, t)
        k0, k1 = min(first[q0:q1]), max(last[q0:q1]) + 1
        out.append((q0, q1, 0, s) if k1 <= k0 else (q0, q1, k0, k1))  # every row empty: keep the plain call's keys
    return out


def windowed_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, *,
                  scale: float | None = None, dropout: float = 0.0, block: int | None = None) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with a boolean mask, computed per block of queries over its key window.

    query (B, H, T, d); key, value (B, Hkv, S, d) (grouped-query heads are repeated, as transformers does with a
    mask); mask (B, 1 or H, T, S) bool, or anything SDPA takes (then one plain call) -> (B, H, T, d)."""
    block = block or BLOCK  # read at call time: tests shrink it to window short rows
    key, value = repeat_heads(key, query.shape[1]), repeat_heads(value, query.shape[1])
    if not windowable(query, key, mask, block):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scale)
    parts = [F.scaled_dot_product_attention(query[:, :, q0:q1], key[:, :, k0:k1], value[:, :, k0:k1], attn_mask=mask[..., q0:q1, k0:k1],
                                            dropout_p=dropout, scale=scale)
             for q0, q1, k0, k1 in key_windows(mask, block)]
    return torch.cat(parts, dim=2)


def windowable(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, block: int | None = None) -> bool:
    """Whether :func:`windowed_sdpa` cuts this call into blocks: a boolean mask, as many queries as keys, more than a block."""
    return mask is not None and mask.dtype == torch.bool and query.shape[2] == key.shape[2] > (block or BLOCK)


def repeat_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, Hkv, S, d) -> (B, heads, S, d), each key/value head repeated for its query group."""
    b, h, s, d = x.shape
    return x if h == heads else x[:, :, None].expand(b, h, heads // h, s, d).reshape(b, heads, s, d)

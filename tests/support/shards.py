"""Tiny token shards: random documents of plain ids, or of [Hu] ids packed with a real tokenizer."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tinywave.data.shards import ShardDataset, write_shards
from tinywave.text.vocab import vocab_fingerprint

VOCAB = 40  # ids of the ``shards`` fixture (BOS 1, EOS 2, PAD 3, tokens 4..39)
CACHE_VOCAB, CACHE_SEQ = 48, 16  # the ``cache_shards`` fixture's


def token_docs(n_docs: int, vocab: int, *, min_len: int = 3, max_len: int = 20, seed: int = 0, bos: int = 1, eos: int = 2) -> list[list[int]]:
    """``n_docs`` documents of ``min_len``..``max_len`` random ids in 4..vocab-1 between ``bos`` and ``eos``."""
    rng = random.Random(seed)
    return [[bos] + [rng.randrange(4, vocab) for _ in range(rng.randint(min_len, max_len))] + [eos] for _ in range(n_docs)]


def tiny_shards(out: Path, *, n_docs: int = 40, vocab: int = VOCAB, seq_len: int = 16, max_len: int = 20, seed: int = 0) -> ShardDataset:
    """Shards of ``token_docs`` (BOS 1, EOS 2, PAD 3) at ``out``; returns the opened ShardDataset."""
    write_shards(out, token_docs(n_docs, vocab, max_len=max_len, seed=seed), seq_len, "fp", vocab, 3, bos_id=1, eos_id=2)
    return ShardDataset(out)


def speech_shards(out: Path, tok: Any, layout: Any, *, n_docs: int, n_units: int, seq_len: int, max_len: int = 30,
                  seed: int = 0) -> list[list[int]]:
    """Write ``n_docs`` documents of 5..``max_len`` random [Hu] ids (the first ``n_units``) between BOS and EOS."""
    rng = random.Random(seed)
    docs = [[tok.bos_token_id] + [rng.randrange(layout.hu_offset, layout.hu_offset + n_units) for _ in range(rng.randint(5, max_len))]
            + [tok.eos_token_id] for _ in range(n_docs)]
    write_shards(out, docs, seq_len, vocab_fingerprint(tok), len(tok), tok.pad_token_id, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id)
    return docs

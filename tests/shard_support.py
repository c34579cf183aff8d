"""Tiny speech-only shards for the distillation tests: random [Hu] documents packed with a real tokenizer."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tinywave.data.shards import write_shards
from tinywave.text.vocab import vocab_fingerprint


def speech_shards(out: Path, tok: Any, layout: Any, *, n_docs: int, n_units: int, seq_len: int, max_len: int = 30,
                  seed: int = 0) -> list[list[int]]:
    """Write ``n_docs`` documents of 5..``max_len`` random [Hu] ids (the first ``n_units``) between BOS and EOS."""
    rng = random.Random(seed)
    docs = [[tok.bos_token_id] + [rng.randrange(layout.hu_offset, layout.hu_offset + n_units) for _ in range(rng.randint(5, max_len))]
            + [tok.eos_token_id] for _ in range(n_docs)]
    write_shards(out, docs, seq_len, vocab_fingerprint(tok), len(tok), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
    return docs

"""Reading token corpora (JSON lines written by `tinywave tokenize`) and splitting them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinywave.files import read_jsonl

REQUIRED = ("id", "speech")


def load_token_corpus(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """All records of one or more token corpora; refuses mixed speech tokenizers."""
    records: list[dict[str, Any]] = []
    tokenizers: dict[str, str] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"token corpus {path} not found; make one with `tinywave tokenize --out {path}`")
        for n, obj, err in read_jsonl(path):
            if obj is None:
                raise ValueError(f"{path}:{n}: {err}; fix or remove the line (a torn last line is ignored only by the writer's own resume)")
            missing = [k for k in REQUIRED if k not in obj]
            if missing:
                raise ValueError(f"{path}:{n}: record lacks {missing}; a token corpus line needs 'id' and 'speech'")
            if obj.get("tokenizer"):
                tokenizers.setdefault(obj["tokenizer"], f"{path}:{n}")
            records.append(obj)
    if len(tokenizers) > 1:
        where = ", ".join(f"{fp} (first at {loc})" for fp, loc in tokenizers.items())
        raise ValueError(f"token corpora were made by different speech tokenizers: {where}; tokenize everything with one tokenizer")
    return records


def _bucket(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_records(records: list[dict[str, Any]], holdout: float, seed: int, group_key: str = "story_id") -> tuple[list[dict], list[dict]]:
    """(train, held-out) by a hash of ``group_key`` (falls back to ``id``), so groups never straddle."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout={holdout} must be in [0, 1)")
    train, held = [], []
    for r in records:
        key = str(r.get(group_key, r["id"]))
        (held if _bucket(key, seed) < holdout else train).append(r)
    return train, held

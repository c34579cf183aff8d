"""Per-item score files under ``OUT/scores/`` and loading them as aligned arrays.

:func:`tinywave.eval.suite.evaluate` writes, per model:

- ``scores/<task>/<model>.jsonl``: one line per benchmark pair,
  ``{"id", "pos", "neg", "outcome", ...tags}`` (outcome 1 / 0.5 / 0);
- ``scores/ppl-<corpus>/<model>.jsonl``: one line per utterance of a perplexity corpus,
  ``{"id", "nll", "tokens"}`` (NLL in nats summed over the utterance's scored speech tokens).

The loaders align every model's lines by ``id`` to the first model's order, as
``[len(model_names), items]`` arrays for :mod:`tinywave.eval.stats` (pass the names of
several seeds of one configuration to get its ``[seeds, items]`` array). Should an id
occur more than once in a file, its k-th occurrence is matched with the k-th in every
other file.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.files import read_jsonl

PPL_PREFIX = "ppl-"
_SHOW = 3  # ids named in an error


def ppl_task(corpus: str) -> str:
    """Folder name under ``scores/`` for a perplexity corpus."""
    return PPL_PREFIX + corpus


def scores_path(scores_dir: str | Path, task: str, model_name: str) -> Path:
    return Path(scores_dir) / task / f"{model_name}.jsonl"


def read_score_lines(path: Path, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Every line of one score file; each must hold ``id`` and ``fields``."""
    if not path.is_file():
        raise FileNotFoundError(f"score file {path} not found; score the model with `tinywave eval --model NAME=DIR --out OUT` "
                                "and pass OUT/scores as scores_dir (names as given to --model)")
    rows = []
    for n, obj, err in read_jsonl(path):
        if obj is None:
            raise ValueError(f"{path}:{n}: {err}; re-run `tinywave eval` for this model to rewrite the file")
        missing = [k for k in ("id", *fields) if k not in obj]
        if missing:
            raise ValueError(f"{path}:{n}: line lacks {missing}; expected keys {['id', *fields]} (re-run `tinywave eval`)")
        rows.append(obj)
    if not rows:
        raise ValueError(f"score file {path} holds no line; re-run `tinywave eval` for this model")
    return rows


def _keys(rows: Sequence[dict[str, Any]]) -> list[tuple[Hashable, int]]:
    """(id, occurrence number) per row."""
    seen: dict[Hashable, int] = {}
    keys = []
    for r in rows:
        i = r["id"]
        keys.append((i, seen.get(i, 0)))
        seen[i] = seen.get(i, 0) + 1
    return keys


def load_aligned(scores_dir: str | Path, task: str, model_names: Sequence[str], fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Per field, a float64 array [len(model_names), items] aligned by id to the first model's order."""
    if not model_names:
        raise ValueError(f"no model names given for task {task!r}; pass the names used with --model")
    first = scores_path(scores_dir, task, model_names[0])
    reference = _keys(read_score_lines(first, fields))  # the item order of the result
    wanted = set(reference)
    out: dict[str, list[np.ndarray]] = {f: [] for f in fields}
    for name in model_names:
        path = scores_path(scores_dir, task, name)
        rows = read_score_lines(path, fields)
        keys = _keys(rows)
        order = {k: j for j, k in enumerate(keys)}
        if set(order) != wanted:
            missing = [k[0] for k in reference if k not in order]
            extra = [k[0] for k in keys if k not in wanted]
            raise ValueError(f"{path} ({len(keys)} items) and {first} ({len(reference)} items) score different ids "
                             f"(missing {missing[:_SHOW]}, extra {extra[:_SHOW]}); score every model on the same benchmark "
                             f"(the same {task!r} items) before comparing them")
        for f in fields:
            values = [rows[order[k]][f] for k in reference]
            try:
                out[f].append(np.asarray(values, dtype=np.float64))
            except (TypeError, ValueError):
                raise ValueError(f"{path}: field {f!r} holds a non-number; re-run `tinywave eval` for this model") from None
    return {f: np.stack(v) for f, v in out.items()}


def load_outcomes(scores_dir: str | Path, task: str, model_names: Sequence[str]) -> np.ndarray:
    """Pair outcomes [len(model_names), items] from ``scores_dir/<task>/<name>.jsonl``, aligned by id."""
    return load_aligned(scores_dir, task, model_names, ["outcome"])["outcome"]


def load_ppl_rows(scores_dir: str | Path, corpus: str, model_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(nll, tokens), each [len(model_names), utterances], from ``scores_dir/ppl-<corpus>/<name>.jsonl``, aligned by id."""
    got = load_aligned(scores_dir, ppl_task(corpus), model_names, ["nll", "tokens"])
    return got["nll"], got["tokens"]

"""Corpus tokenization: manifest -> token corpus (docs/FORMATS.md), parallel and resumable.

Every finished utterance is appended (fsynced) to the output before the next is
written, so a killed job loses nothing finished; a rerun skips ids already in the output
or in the errors file (``retry_errors`` retries the latter). Bad items go to
``<out stem>.errors.jsonl`` with their reason and the job goes on. With ``world_size``
> 1 a job takes items ``i % world_size == rank`` and writes ``<stem>.rank<r>.jsonl``;
:func:`merge_rank_parts` joins the parts in manifest order.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinywave.audio.io import AudioError, load_audio
from tinywave.data.manifest import BadItem, ManifestItem, read_manifest
from tinywave.files import JsonlAppender, atomic_write_text, load_jsonl
from tinywave.progress import bar
from tinywave.speech.format import timed_tokens
from tinywave.speech.pool import ordered_map
from tinywave.speech.tokenizer import SpeechTokenizer

log = logging.getLogger(__name__)
WORD_TOLERANCE = 0.02  # seconds a word may end past the audio (rounded timings)


@dataclass
class ItemResult:
    id: str
    record: dict[str, Any] | None = None
    bad: BadItem | None = None
    channels: int = 1


@dataclass
class JobSummary:
    tokenized: int  # new records this run
    already_done: int
    bad: int  # entries in the errors file (this run's and earlier runs')
    audio_seconds: float
    wall_seconds: float
    out: Path
    errors: Path
    multichannel: int = 0

    def line(self) -> str:
        done = f"; {self.already_done} already done" if self.already_done else ""
        return f"tokenized {self.tokenized}, skipped {self.bad} bad (see {self.errors}){done}"


def part_paths(out: str | Path, rank: int = 0, world_size: int = 1) -> tuple[Path, Path]:
    """(token corpus, errors file) of one rank: ``tokens.jsonl`` / ``tokens.errors.jsonl``."""
    out = Path(out)
    suffix = out.suffix or ".jsonl"
    base = out if world_size == 1 else out.with_name(f"{out.stem}.rank{rank}{suffix}")
    return base, base.with_name(f"{base.stem}.errors{suffix}")


def word_spans(token_times: Sequence[float], starts: Sequence[float]) -> list[list[int]]:
    """``[first, last)`` token spans partitioning the tokens among words (docs/FORMATS.md).

    Word i owns the tokens whose time is in ``[start_i, start_{i+1})``; the first word
    also owns the leading tokens, the last word the trailing ones. Times are sorted.
    """
    if not starts:
        return []
    bounds = [0] + [bisect_left(token_times, s) for s in starts[1:]] + [len(token_times)]
    return [[bounds[i], bounds[i + 1]] for i in range(len(starts))]


def token_record(item: ManifestItem, units: dict[str, list[int]], rates: dict[str, float], seconds: float, fingerprint: str) -> dict[str, Any]:
    """One token-corpus line: speech string, rates, frame counts, words with spans, manifest extras."""
    tokens = timed_tokens(units["hubert"], units.get("pitch"), units.get("style"), rates)
    rec: dict[str, Any] = {"id": item.id, "speech": "".join(t.text for t in tokens), "rates": rates,
                           "frames": {k: len(v) for k, v in units.items()}, "seconds": round(seconds, 4), "tokenizer": fingerprint}
    if item.text is not None:
        rec["text"] = item.text
    if item.speaker is not None:
        rec["speaker"] = item.speaker
    if item.words is not None:
        spans = word_spans([t.time for t in tokens], [w.start for w in item.words])
        rec["words"] = [{"word": w.word, "start": w.start, "end": w.end, "span": s} for w, s in zip(item.words, spans)]
    rec["audio"] = str(item.audio)
    for key, value in item.extra.items():
        rec.setdefault(key, value)
    return rec


def _words_outside(item: ManifestItem, seconds: float) -> str:
    for w in item.words or []:
        if w.end > seconds + WORD_TOLERANCE or w.start >= seconds:
            return f"word {w.word!r} ({w.start:.3f}-{w.end:.3f} s) lies outside the {seconds:.3f} s audio; fix the word timings"
    return ""


class ItemTokenizer:
    """Worker function: one manifest item -> ItemResult (loads the tokenizer once)."""

    def __init__(self, tokenizer_dir: str, fingerprint: str, chunk_seconds: float, min_seconds: float, trust_pickle: bool = False):
        self.tok = SpeechTokenizer.load(tokenizer_dir, trust_pickle)
        self.fingerprint, self.chunk_seconds, self.min_seconds = fingerprint, chunk_seconds, min_seconds

    def __call__(self, item: ManifestItem) -> ItemResult:
        try:
            return self._tokenize(item)
        except AudioError as exc:
            return ItemResult(item.id, bad=BadItem(item.id, str(item.audio), exc.reason, exc.detail))
        except Exception as exc:  # a crash on one odd file must not stop the corpus
            log.debug("tokenizing %s failed", item.audio, exc_info=True)
            return ItemResult(item.id, bad=BadItem(item.id, str(item.audio), "error", f"{type(exc).__name__}: {exc}"))

    def _tokenize(self, item: ManifestItem) -> ItemResult:
        wav, info = load_audio(item.audio, self.min_seconds)
        outside = _words_outside(item, info.seconds)
        if outside:
            return ItemResult(item.id, bad=BadItem(item.id, str(item.audio), "words_outside_audio", outside), channels=info.channels)
        units = self.tok.encode_units(wav, self.chunk_seconds)
        if not units["hubert"]:
            raise AudioError(item.audio, "too_short", f"{info.seconds * 1000:.0f} ms give no unit frame (chunks under 80 ms are skipped); drop it from the manifest")
        rec = token_record(item, units, self.tok.rates, info.seconds, self.fingerprint)
        return ItemResult(item.id, record=rec, channels=info.channels)


def _previous(out: Path, errors: Path, fingerprint: str) -> tuple[set[str], list[dict[str, Any]]]:
    """Ids already in ``out`` (checked to come from this tokenizer) and the error entries."""
    done: set[str] = set()
    if out.exists():
        for rec in load_jsonl(out):
            if rec.get("tokenizer") not in (None, fingerprint):
                raise ValueError(f"{out} was written with speech tokenizer {rec.get('tokenizer')}, not {fingerprint}; "
                                 "write to a new --out or pass resume=false to start over")
            done.add(str(rec.get("id")))
    return done, (load_jsonl(errors) if errors.exists() else [])


def tokenize_corpus(manifest: str | Path, tokenizer_dir: str | Path, out: str | Path, workers: int = 2,
                    chunk_seconds: float = 100.0, min_seconds: float = 0.08, *, resume: bool = True,
                    retry_errors: bool = False, rank: int = 0, world_size: int = 1, trust_pickle: bool = False) -> JobSummary:
    """Tokenize this rank's share of a manifest into a token corpus; see the module docstring."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in 0..world_size-1 (world_size={world_size})")
    t0 = time.perf_counter()
    fingerprint = SpeechTokenizer.load(tokenizer_dir, trust_pickle).fingerprint
    items, bad_lines = read_manifest(manifest)
    mine, bad_lines = items[rank::world_size], (bad_lines if rank == 0 else [])
    out_path, err_path = part_paths(out, rank, world_size)
    if not resume:
        for p in (out_path, err_path):
            p.unlink(missing_ok=True)
    done, old_errors = _previous(out_path, err_path, fingerprint)
    if retry_errors and old_errors:
        old_errors = [e for e in old_errors if e.get("id") is None]  # item errors are retried, bad lines stay
        atomic_write_text(err_path, "".join(_json_line(e) for e in old_errors))
    skip = done | {str(e["id"]) for e in old_errors if e.get("id") is not None}
    todo = [it for it in mine if it.id not in skip]
    seen_errors = {(e.get("id"), e.get("where"), e.get("reason")) for e in old_errors}
    new_bad = [b for b in bad_lines if (b.id, b.where, b.reason) not in seen_errors]
    stats = {"ok": 0, "seconds": 0.0, "multi": 0}
    factory = functools.partial(ItemTokenizer, str(tokenizer_dir), fingerprint, chunk_seconds, min_seconds, trust_pickle)
    with JsonlAppender(out_path) as good, JsonlAppender(err_path) as errors:
        errors.write_many(b.to_json() for b in new_bad)
        for res in bar(ordered_map(factory, todo, workers), total=len(todo), desc="tokenize", unit="utt"):
            _store(res, good, errors, stats)
    n_bad = len(load_jsonl(err_path)) if err_path.exists() else 0
    return JobSummary(stats["ok"], len(done & {it.id for it in mine}), n_bad, stats["seconds"],
                      time.perf_counter() - t0, out_path, err_path, stats["multi"])


def _store(res: ItemResult, good: JsonlAppender, errors: JsonlAppender, stats: dict[str, Any]) -> None:
    if res.channels > 1:
        stats["multi"] += 1
    if res.record is not None:
        good.write(res.record)
        stats["ok"] += 1
        stats["seconds"] += res.record["seconds"]
    else:
        assert res.bad is not None
        errors.write(res.bad.to_json())
        log.warning("skipped %s (%s): %s", res.id, res.bad.reason, res.bad.detail)


def _json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


def merge_token_corpora(parts: Sequence[str | Path], out: str | Path, order: Sequence[str] | None = None) -> int:
    """Join token corpora (or errors files) into ``out``, one line per id, in ``order`` when given."""
    records: dict[Any, dict[str, Any]] = {}
    fingerprints = set()
    for path in map(Path, parts):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run the rank that writes it (tinywave tokenize rank=R world_size=N) first")
        for rec in load_jsonl(path):
            key = rec.get("id") if rec.get("id") is not None else (rec.get("where"), rec.get("reason"))
            records.setdefault(key, rec)
            if rec.get("tokenizer"):
                fingerprints.add(rec["tokenizer"])
    if len(fingerprints) > 1:
        raise ValueError(f"the parts were written by different speech tokenizers {sorted(fingerprints)}; retokenize with one")
    rank_of = {uid: i for i, uid in enumerate(order or [])}
    keyed = sorted(records.items(), key=lambda kv: rank_of.get(kv[0], len(rank_of)))  # stable: unknown ids keep part order
    atomic_write_text(out, "".join(_json_line(rec) for _, rec in keyed))
    return len(keyed)


def merge_rank_parts(manifest: str | Path, out: str | Path, world_size: int) -> tuple[int, int]:
    """Merge every rank's token corpus and errors file; refuses when an item is in neither."""
    items, _ = read_manifest(manifest)
    order = [it.id for it in items]
    parts = [part_paths(out, r, world_size) for r in range(world_size)]
    out_path, err_path = part_paths(out)
    n_ok = merge_token_corpora([p[0] for p in parts], out_path, order)
    n_bad = merge_token_corpora([p[1] for p in parts], err_path, order)
    covered = {str(r["id"]) for r in load_jsonl(out_path)} | {str(e["id"]) for e in load_jsonl(err_path) if e.get("id") is not None}
    missing = [uid for uid in order if uid not in covered]
    if missing:
        raise ValueError(f"{len(missing)} manifest items (first {missing[0]!r}) are in no rank's output; rerun the unfinished ranks, then merge")
    return n_ok, n_bad

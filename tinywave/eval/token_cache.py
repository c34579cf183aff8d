"""Benchmark audio tokenized once per speech tokenizer, cached on disk.

``ROOT/<tokenizer fingerprint>/tokens.jsonl`` holds one line per clip:
``{"key": "<sha256 of the file bytes>[@start:end]", "speech": "[Hu12]..."}``. The key is
the file *content* hash, so renamed or copied files hit the cache and an edited file
misses it; the fingerprint changes whenever the tokenizer's codes can change. Lines are
appended as clips are tokenized, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from tinywave.audio.io import SAMPLE_RATE, load_audio
from tinywave.eval.layouts import Clip
from tinywave.files import JsonlAppender, load_jsonl
from tinywave.progress import bar

log = logging.getLogger(__name__)


class SpeechTokenizerLike(Protocol):
    """What scoring needs of a speech tokenizer (``tinywave.speech.tokenizer.SpeechTokenizer``)."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def rates(self) -> dict[str, float]: ...

    def encode_string(self, wav: np.ndarray) -> str: ...


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def clip_key(digest: str, clip: Clip) -> str:
    if clip.start == 0.0 and clip.end is None:
        return digest
    end = "" if clip.end is None else f"{clip.end:.4f}"
    return f"{digest}@{clip.start:.4f}:{end}"


def cut(wav: np.ndarray, clip: Clip, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The samples of ``clip`` (seconds) in a waveform at ``rate``."""
    start = int(round(clip.start * rate))
    end = len(wav) if clip.end is None else int(round(clip.end * rate))
    return wav[start:end]


class TokenCache:
    """Speech strings by clip key for one tokenizer; ``root=None`` keeps them in memory only."""

    def __init__(self, root: str | Path | None, fingerprint: str):
        self.fingerprint = fingerprint
        self.path = None if root is None else Path(root) / fingerprint / "tokens.jsonl"
        self.entries: dict[str, str] = {}
        if self.path is not None and self.path.is_file():
            for obj in load_jsonl(self.path):
                if isinstance(obj.get("key"), str) and isinstance(obj.get("speech"), str):
                    self.entries[obj["key"]] = obj["speech"]
        self._digests: dict[tuple[Path, int, int], str] = {}
        self.hits = 0
        self.misses = 0

    def digest(self, path: Path) -> str:
        st = path.stat()
        key = (path.resolve(), st.st_size, st.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = file_digest(path)
        return self._digests[key]

    def appender(self) -> JsonlAppender | None:
        return None if self.path is None else JsonlAppender(self.path, fsync=False)


def tokenize_clips(clips: Iterable[Clip], tokenizer: SpeechTokenizerLike, cache: TokenCache, desc: str = "tokenizing") -> dict[Clip, str]:
    """The speech string of every clip, tokenizing only the clips the cache lacks.

    Each audio file is read once however many clips are cut from it.
    """
    if tokenizer.fingerprint != cache.fingerprint:
        raise ValueError(f"token cache is for tokenizer {cache.fingerprint}, got {tokenizer.fingerprint}")
    out: dict[Clip, str] = {}
    todo: dict[Path, list[tuple[Clip, str]]] = defaultdict(list)
    for clip in dict.fromkeys(clips):
        key = clip_key(cache.digest(clip.path), clip)
        if key in cache.entries:
            out[clip] = cache.entries[key]
            cache.hits += 1
        else:
            todo[clip.path].append((clip, key))
    if not todo:
        return out
    appender = cache.appender()
    try:
        for path in bar(list(todo), desc=desc, unit="file"):
            wav, _ = load_audio(path)
            new = [(clip, key, tokenizer.encode_string(cut(wav, clip))) for clip, key in todo[path]]
            for clip, key, speech in new:
                out[clip] = cache.entries[key] = speech
            cache.misses += len(new)
            if appender is not None:
                appender.write_many({"key": key, "speech": speech} for _, key, speech in new)
    finally:
        if appender is not None:
            appender.close()
    log.info("tokenized %d clips (%d from the cache) with speech tokenizer %s", len(out), len(out) - sum(map(len, todo.values())), tokenizer.fingerprint)
    return out

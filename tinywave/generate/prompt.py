"""Prompts: interleaved (content type, content) items -> one token-id sequence.

Content types: ``text`` (a string), ``audio`` (a path, or a 16 kHz mono float array,
tokenized by the model's speech tokenizer) and ``tokens`` (a ready speech-token string).
Following SpiritLM's ``_build_prompt`` (docs/GENERATION.md): a ``[Speech]`` marker only when
the previous item was not speech, ``[Text]`` only when it was not text, items joined with
nothing in between, and the marker of the requested output modality appended when the
last item is of the other modality (none for ``arbitrary``). BOS comes first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.audio.io import load_audio
from tinywave.generate.forcing import check_modality
from tinywave.speech.format import SPEECH_MARKER, TEXT_MARKER
from tinywave.text.vocab import VocabLayout, encode_text

CONTENT_TYPES = ("text", "audio", "tokens")
_MARKER = {"t": TEXT_MARKER, "s": SPEECH_MARKER}
_OUTPUT_KIND = {"text": "t", "speech": "s", "arbitrary": None}


@dataclass(frozen=True)
class PromptItem:
    """One prompt item: ``kind`` in CONTENT_TYPES; ``content`` a string, a path or an array."""

    kind: str
    content: Any

    def __post_init__(self) -> None:
        if self.kind not in CONTENT_TYPES:
            raise ValueError(f"unknown content type {self.kind!r}; use one of {list(CONTENT_TYPES)} (e.g. text:hello, audio:in.wav)")


def parse_input(spec: str) -> PromptItem:
    """``text:hello world`` / ``audio:path.wav`` / ``tokens:[Hu3][Hu7]`` -> PromptItem."""
    kind, sep, content = spec.partition(":")
    if not sep:
        raise ValueError(f"input {spec!r} needs a content type prefix: text:..., audio:PATH or tokens:[Hu..]...")
    return PromptItem(kind.strip(), content)


def read_audio(items: Sequence[PromptItem]) -> list[PromptItem]:
    """Audio paths -> 16 kHz arrays (checked first, so an unreadable file is named before anything else)."""
    out = []
    for item in items:
        if item.kind == "audio" and not isinstance(item.content, np.ndarray):
            wav, _ = load_audio(Path(item.content))  # AudioError (a ValueError) names the file and the problem
            item = PromptItem("audio", wav)
        elif item.kind == "audio" and (item.content.ndim != 1 or len(item.content) == 0):
            raise ValueError(f"audio array must be 1-D 16 kHz mono with samples, got shape {item.content.shape}")
        out.append(item)
    return out


def resolve(items: Sequence[PromptItem], speech_tokenizer: Callable[[], Any] | None = None) -> list[tuple[str, str]]:
    """Items -> [('t' | 's', text or speech string)]; every item must have content.

    ``speech_tokenizer``: returns the tokenizer for audio items (called only if there are any).
    """
    if not items:
        raise ValueError("the prompt is empty; give at least one input (--input text:... or --input audio:FILE)")
    items = read_audio([it if isinstance(it, PromptItem) else PromptItem(*it) for it in items])  # (kind, content) tuples too
    tok = speech_tokenizer() if speech_tokenizer is not None and any(it.kind == "audio" for it in items) else None
    out = []
    for i, item in enumerate(items):
        if item.kind == "text":
            content = str(item.content)
            if not content.strip():
                raise ValueError(f"prompt item {i} is empty text; drop it or give some text")
            out.append(("t", content))
            continue
        if item.kind == "audio" and tok is None:
            raise ValueError("an audio prompt needs the model's speech tokenizer (<model>/speech_tokenizer/); none is available")
        speech = str(item.content) if item.kind == "tokens" else str(tok.encode_string(item.content.astype(np.float32)))
        if not speech:
            raise ValueError(f"prompt item {i} ({item.kind}) gave no speech tokens; the audio is too short or silent")
        out.append(("s", speech))
    return out


def prompt_segments(resolved: Sequence[tuple[str, str]], modality: str) -> list[tuple[str, str]]:
    """Segments with markers: [('m', marker) | ('t', text) | ('s', speech)], SpiritLM's rules."""
    check_modality(modality)
    segs: list[tuple[str, str]] = []
    prev = None
    for kind, content in resolved:
        if kind != prev:
            segs.append(("m", _MARKER[kind]))
        segs.append((kind, content))
        prev = kind
    want = _OUTPUT_KIND[modality]
    if want is not None and prev != want:
        segs.append(("m", _MARKER[want]))
    return segs


def prompt_text(segments: Sequence[tuple[str, str]]) -> str:
    """The prompt as one string (SpiritLM joins with the empty string)."""
    return "".join(content for _, content in segments)


def prompt_ids(segments: Sequence[tuple[str, str]], tokenizer: Any, layout: VocabLayout) -> list[int]:
    """BOS + ids. Text runs are encoded on their own, as training documents are built."""
    ids = [tokenizer.bos_token_id]
    encoders = {"m": layout.speech_string_to_ids, "s": layout.speech_string_to_ids, "t": lambda s: encode_text(tokenizer, s)}
    for kind, content in segments:
        ids += encoders[kind](content)
    return ids


def last_speech_run(resolved: Sequence[tuple[str, str]]) -> str:
    """The prompt's trailing speech string (vocoder context for a speech continuation), or ''."""
    return resolved[-1][1] if resolved and resolved[-1][0] == "s" else ""

"""Several models continuing one prompt side by side, streamed, with per-model timing.

    models = {"teacher": SpeechLM.load(T, V), "student": SpeechLM.load(S, V)}
    for frame in side_by_side(models, [PromptItem("text", "the cat")], "speech", options):
        frame["student"].chunk        # 16 kHz audio made since the previous frame, or None
        frame["student"].timing.row()  # time to first audio, tokens/s, real-time factor so far

The models take turns, one streaming event each (a decoded token, or a vocoded audio
chunk), so every output grows at the same pace on one machine. Each model's clock counts
only its own turns, so its figures are the ones it would measure running alone.
Every prompt is checked and its audio tokenized, by every model, before any decoding.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinywave.generate.prompt import PromptItem

SAMPLE_RATE = 16000


@dataclass
class Timing:
    """One model's clock: seconds of its own compute, split by what it was doing."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    decode_s: float = 0.0  # prompt prefill + decoding steps
    vocode_s: float = 0.0  # chunked vocoding
    first_token_s: float | None = None
    first_audio_s: float | None = None
    audio_s: float = 0.0

    @property
    def compute_s(self) -> float:
        return self.decode_s + self.vocode_s

    def row(self) -> dict[str, Any]:
        """The figures shown per model (None where there is nothing to measure yet)."""
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"prompt_tokens": self.prompt_tokens, "new_tokens": self.new_tokens,
                "time_to_first_token_s": r(self.first_token_s), "time_to_first_audio_s": r(self.first_audio_s),
                "tokens_per_s": r(self.new_tokens / self.decode_s) if self.decode_s > 0 and self.new_tokens else None,
                "audio_s": round(self.audio_s, 3), "compute_s": r(self.compute_s),
                "real_time_factor": r(self.audio_s / self.compute_s) if self.audio_s > 0 else None}


@dataclass
class Panel:
    """What one model has produced so far; ``chunk`` is the audio new since the last frame."""

    transcript: str = ""
    chunk: np.ndarray | None = None
    timing: Timing = field(default_factory=Timing)
    result: Any = None  # the finished Generation

    @property
    def done(self) -> bool:
        return self.result is not None


class _Turns:
    """One model's event stream, advanced one timed event at a time."""

    def __init__(self, events: Iterator[Any], prompt_tokens: int):
        self.events = events
        self.panel = Panel(timing=Timing(prompt_tokens=prompt_tokens))
        self.pending: list[np.ndarray] = []

    def step(self) -> None:
        t0 = time.perf_counter()
        event = next(self.events)
        spent = time.perf_counter() - t0
        p, t = self.panel, self.panel.timing
        if event.kind == "audio":
            t.vocode_s += spent
            t.audio_s += len(event.audio) / SAMPLE_RATE
            t.first_audio_s = t.compute_s if t.first_audio_s is None else t.first_audio_s
            self.pending.append(event.audio)
        elif event.kind == "token":
            t.decode_s += spent
            t.new_tokens += 1
            t.first_token_s = t.decode_s if t.first_token_s is None else t.first_token_s
            p.transcript += event.text
        else:  # "done": the final bookkeeping counts as decoding
            t.decode_s += spent
            p.result, p.transcript = event.result, event.result.transcript

    def frame(self) -> Panel:
        """A snapshot of the panel carrying the audio made since the previous snapshot."""
        chunk = np.concatenate(self.pending) if self.pending else None
        self.pending = []
        return Panel(self.panel.transcript, chunk, Timing(**vars(self.panel.timing)), self.panel.result)


def prompt_items(text: str | None, audio: str | None) -> list[Any]:
    """The app's prompt: the recording or audio file (if any), then the text (if any)."""
    items = [PromptItem("audio", str(audio))] if audio else []
    if text and text.strip():
        items.append(PromptItem("text", (" " if items else "") + text.strip()))
    if not items:
        raise ValueError("the prompt is empty: type some text, upload an audio file or record from the microphone")
    return items


def side_by_side(models: Mapping[str, Any], items: Sequence[Any], modality: str, options: Any) -> Iterator[dict[str, Panel]]:
    """A frame (model name -> Panel) after every round of turns, until every model is done."""
    encoded = {name: lm.encode(items, modality) for name, lm in models.items()}  # errors and audio tokenization first
    turns = {name: _Turns(lm.stream(encoded[name], modality, options), len(lm.prepare(encoded[name], modality).ids))
             for name, lm in models.items()}
    while not all(t.panel.done for t in turns.values()):
        for t in turns.values():
            if not t.panel.done:
                t.step()
        yield {name: t.frame() for name, t in turns.items()}

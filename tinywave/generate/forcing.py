"""Forcing the output modality, and the end conditions of speech generation.

As in SpiritLM (its ``get_forbidden_tokens``) forcing bans ids, but through a
``transformers.LogitsProcessor`` so it works with plain ``model.generate()`` too:

- ``text``: ban ``[Text]``/``[Speech]`` and every Hu/Pi/St id;
- ``speech``: ban every text id and both markers. Unlike SpiritLM, EOS stays allowed
  (``allow_eos``), and :class:`SpeechDurationCriteria` stops a row once its [Hu] tokens
  reach a maximum duration, so speech generation can end before ``max_new_tokens``;
- ``arbitrary``: ban nothing.

Ids past the vocabulary layout (padding rows of the embedding, e.g. SpiritLM's 32503-32511)
are banned in the forced modalities: they are no token at all.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from transformers import LogitsProcessor, StoppingCriteria

from tinywave.text.vocab import VocabLayout

MODALITIES = ("text", "speech", "arbitrary")
STREAM_RANGE = {"hubert": "hu", "pitch": "pi", "style": "st"}


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown output modality {modality!r}; choose one of {list(MODALITIES)}")
    return modality


def _text_bans(layout: VocabLayout, vocab_size: int, eos_id: int | None, allow_eos: bool, streams: Collection[str],
               n_units: int | None) -> list[range | list[int]]:
    r = layout.ranges()
    return [r["markers"], r["hu"], r["pi"], r["st"], range(layout.size, vocab_size)]


def _speech_bans(layout: VocabLayout, vocab_size: int, eos_id: int | None, allow_eos: bool, streams: Collection[str],
                 n_units: int | None) -> list[range | list[int]]:
    r = layout.ranges()
    text = [i for i in r["text"] if not (allow_eos and i == eos_id)]
    bans: list[range | list[int]] = [text, r["markers"], range(layout.size, vocab_size)]
    bans += [r[STREAM_RANGE[s]] for s in STREAM_RANGE if s not in streams]
    if n_units is not None:
        bans.append(range(layout.hu_offset + n_units, layout.pi_offset))
    return bans


def _no_bans(*args: object) -> list[range | list[int]]:
    return []


_BANS = {"text": _text_bans, "speech": _speech_bans, "arbitrary": _no_bans}


def banned_ids(layout: VocabLayout, modality: str, vocab_size: int | None = None, *, eos_id: int | None = None,
               allow_eos: bool = True, streams: Collection[str] = ("hubert", "pitch", "style"),
               n_units: int | None = None) -> list[int]:
    """Sorted ids a modality forbids.

    ``vocab_size``: the model's logits width (>= layout.size). ``streams``: the speech
    streams speech output may use (a base model/vocoder: only ``hubert``). ``n_units``:
    allow only the first ``n_units`` [Hu] ids (the units a vocoder knows).
    """
    check_modality(modality)
    vocab_size = layout.size if vocab_size is None else vocab_size
    if vocab_size < layout.size:
        raise ValueError(f"the model's vocabulary ({vocab_size}) is smaller than the tokenizer's ({layout.size}); model and tokenizer do not match")
    unknown = set(streams) - set(STREAM_RANGE)
    if unknown:
        raise ValueError(f"unknown speech streams {sorted(unknown)}; use {sorted(STREAM_RANGE)}")
    out: set[int] = set()
    for ids in _BANS[modality](layout, vocab_size, eos_id, allow_eos, streams, n_units):
        out.update(ids)
    if len(out) >= vocab_size:
        raise ValueError(f"forcing {modality} output would ban every id; check allow_eos/streams/n_units")
    return sorted(out)


class ModalityLogitsProcessor(LogitsProcessor):
    """Sets the scores of banned ids to -inf. Works in ``model.generate(logits_processor=...)``."""

    def __init__(self, banned: list[int], vocab_size: int):
        self.vocab_size = vocab_size
        self.banned = torch.tensor(sorted(set(banned)), dtype=torch.long)
        self._mask = torch.zeros(vocab_size, dtype=torch.bool)
        self._mask[self.banned] = True

    @classmethod
    def for_modality(cls, layout: VocabLayout, modality: str, vocab_size: int, **kw: object) -> "ModalityLogitsProcessor":
        return cls(banned_ids(layout, modality, vocab_size, **kw), vocab_size)  # type: ignore[arg-type]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:  # (B, V) -> (B, V)
        if not self.banned.numel():
            return scores
        if self._mask.device != scores.device:
            self._mask = self._mask.to(scores.device)
        return scores.masked_fill(self._mask[: scores.shape[-1]], float("-inf"))


class SpeechDurationCriteria(StoppingCriteria):
    """Stops a row once its generated [Hu] tokens reach ``max_seconds`` at ``rate`` units per second.

    ``prompt_length``: width of the (padded) prompt in ``input_ids``; only later tokens count.
    """

    def __init__(self, layout: VocabLayout, max_seconds: float, rate: float, prompt_length: int):
        if max_seconds <= 0 or rate <= 0:
            raise ValueError(f"max_seconds ({max_seconds}) and rate ({rate}) must be positive")
        self.lo, self.hi = layout.hu_offset, layout.pi_offset
        self.max_units = max(1, int(round(max_seconds * rate)))
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: object) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_length :]  # (B, t)
        units = ((new >= self.lo) & (new < self.hi)).sum(dim=1)
        return units >= self.max_units  # (B,)

"""Resynthesis intelligibility: how much of what was said survives speech tokens and a vocoder.

    utts = read_spoken("corpus/heldout.jsonl", max_items=20)     # audio + reference text
    asr = load_recognizer("pocketsphinx")
    report = resynthesis_wer(utts, tokenizer, {"hifigan": voc}, asr)
    report["original"]["wer"], report["vocoders"]["hifigan"]["wer"], report["vocoders"]["hifigan"]["wer_delta"]

Each held-out utterance is tokenized with the speech tokenizer and vocoded back; the
recognizer transcribes the original audio and every resynthesis, and each gets pooled
WER / CER against the reference text (:mod:`tinywave.eval.wer`). ``wer_delta`` is the
resynthesis' WER minus the original's: what the units and the vocoder lose, with the
recognizer's own errors on this kind of speech factored out as far as a difference can.

Units are the speech string (deduplicated units, durations predicted by the vocoder:
what a language model generates) or, with ``deduplicated=False``, the raw unit frames
(the original timing: the vocoder alone).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tinywave.audio.io import AudioError, load_audio
from tinywave.data.manifest import read_manifest
from tinywave.eval.asr import Recognizer
from tinywave.eval.wer import error_rates, normalize_text
from tinywave.progress import bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spoken:
    """One utterance with its reference text; ``speaker`` as the manifest names it."""

    id: str
    wav: np.ndarray  # (T,) 16 kHz float32
    text: str
    speaker: str | None = None


class VocoderLike(Protocol):
    speakers: list[str]

    def vocode(self, units: Any, speaker: int | str = 0, deduplicated: bool | None = None) -> np.ndarray: ...


class UnitTokenizer(Protocol):
    def encode_units(self, wav: np.ndarray) -> dict[str, list[int]]: ...

    def encode_string(self, wav: np.ndarray) -> str: ...


def read_spoken(manifest: str | Path, max_items: int = 0, exclude: set[str] | None = None) -> list[Spoken]:
    """Manifest items that have a reference text, in file order (at most ``max_items``; 0: all).

    Items without text, those in ``exclude`` and unreadable audio are skipped (logged).
    """
    items, bad = read_manifest(manifest)
    out: list[Spoken] = []
    skipped = len(bad)
    for item in items:
        if max_items and len(out) >= max_items:
            break
        if not item.text or not normalize_text(item.text) or (exclude and item.id in exclude):
            continue
        try:
            wav, _ = load_audio(item.audio)
        except AudioError as exc:
            log.warning("resynthesis: skipping %s: %s", item.id, exc)
            skipped += 1
            continue
        out.append(Spoken(item.id, wav, item.text, item.speaker))
    if not out:
        raise ValueError(f"{manifest}: no utterance with a 'text' and readable audio; resynthesis WER needs reference transcripts")
    if skipped:
        log.warning("resynthesis: %d manifest item(s) of %s skipped", skipped, manifest)
    return out


def vocoder_speaker(vocoder: VocoderLike, speaker: str | None) -> int | str:
    """The manifest's speaker when the vocoder knows it, else its first speaker."""
    return speaker if speaker is not None and speaker in vocoder.speakers else 0


def resynthesize(utts: Sequence[Spoken], tokenizer: UnitTokenizer, vocoders: dict[str, VocoderLike],
                 deduplicated: bool = True) -> dict[str, list[np.ndarray]]:
    """Each vocoder's waveform per utterance, from the utterance's speech tokens."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in vocoders}
    for u in bar(utts, desc="resynthesis", unit="utt"):
        units = tokenizer.encode_string(u.wav) if deduplicated else tokenizer.encode_units(u.wav)
        for name, voc in vocoders.items():
            out[name].append(np.asarray(voc.vocode(units, vocoder_speaker(voc, u.speaker), deduplicated), dtype=np.float32))
    return out


def intelligibility(utts: Sequence[Spoken], resyntheses: dict[str, Sequence[np.ndarray]], recognizer: Recognizer) -> dict[str, Any]:
    """WER / CER of the original audio and of each resynthesis against the reference texts, and the differences."""
    refs = [u.text for u in utts]
    for name, wavs in resyntheses.items():
        if len(wavs) != len(utts):
            raise ValueError(f"resynthesis {name!r} has {len(wavs)} waveforms for {len(utts)} utterances")
    heard = {"original": recognizer([u.wav for u in utts])}
    for name, wavs in resyntheses.items():
        heard[name] = recognizer(list(wavs))
    original = error_rates(refs, heard["original"])
    report: dict[str, Any] = {"asr": getattr(recognizer, "name", type(recognizer).__name__), "utterances": len(utts),
                              "original": original.to_json(), "vocoders": {}}
    for name in resyntheses:
        rates = error_rates(refs, heard[name])
        report["vocoders"][name] = {**rates.to_json(), "wer_delta": rates.wer - original.wer, "cer_delta": rates.cer - original.cer}
    report["transcripts"] = [{"id": u.id, "reference": normalize_text(u.text), **{k: v[i] for k, v in heard.items()}}
                             for i, u in enumerate(utts)]
    return report


def resynthesis_wer(utts: Sequence[Spoken], tokenizer: UnitTokenizer, vocoders: dict[str, VocoderLike], recognizer: Recognizer,
                    deduplicated: bool = True) -> dict[str, Any]:
    """Tokenize, vocode and transcribe ``utts``; see the module docstring for the report."""
    report = intelligibility(utts, resynthesize(utts, tokenizer, vocoders, deduplicated), recognizer)
    report["units"] = "deduplicated" if deduplicated else "raw"
    log.info("resynthesis WER (%s, %d utterances): original %.3f; %s", report["asr"], len(utts), report["original"]["wer"],
             ", ".join(f"{k} {v['wer']:.3f} ({v['wer_delta']:+.3f})" for k, v in report["vocoders"].items()))
    return report


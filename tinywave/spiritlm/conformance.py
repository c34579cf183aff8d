"""Conformance with SpiritLM's own test vectors (``tests/fixtures/spiritlm_tokenizer.json``).

The vectors hold the raw units SpiritLM's tokenizer gives for LibriSpeech
``7143-88743-0029.flac`` (228 hubert, 114 pitch, 10 style codes) and the base and
expressive strings they make. :func:`compare` runs a tokenizer on that audio and reports,
per stream, how many frames agree and whether the strings are identical.
``benchmarks/spiritlm_conformance.py`` is the command-line wrapper (docs/SPIRITLM.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.safeload import load_json
from tinywave.speech.format import units_to_string

AUDIO_SAMPLES = 146160
AUDIO_SHA256 = "7690086726bb3817eed7783be3348352118422074c34cf0f7fb65032dcb8778d"


@dataclass(frozen=True)
class StreamResult:
    stream: str
    expected: int  # frames in the vectors
    got: int  # frames produced
    equal: int  # frames with the same code (over the common length)

    @property
    def exact(self) -> bool:
        return self.expected == self.got == self.equal


@dataclass(frozen=True)
class Report:
    streams: list[StreamResult]
    string_kind: str  # "base" or "expressive"
    string_equal: bool

    @property
    def exact(self) -> bool:
        return self.string_equal and all(s.exact for s in self.streams)

    def lines(self) -> list[str]:
        out = [f"{s.stream:7s} {s.equal}/{s.expected} frames equal ({100 * s.equal / max(s.expected, 1):.1f}%), "
               f"{s.got} produced{'' if s.exact else '  <-- differs'}" for s in self.streams]
        out.append(f"{self.string_kind} string: {'identical' if self.string_equal else 'DIFFERENT'}")
        out.append("CONFORMANT" if self.exact else "NOT CONFORMANT (see docs/SPIRITLM.md for the expected differences)")
        return out


def load_vectors(path: str | Path) -> dict[str, Any]:
    vectors = load_json(path, "SpiritLM test vectors")
    if not {"units", "base_string", "expressive_string"} <= set(vectors):
        raise ValueError(f"{path} lacks units/base_string/expressive_string; use tests/fixtures/spiritlm_tokenizer.json")
    return vectors


def compare_units(units: dict[str, list[int]], vectors: dict[str, Any]) -> Report:
    """Per-stream agreement of ``units`` with the vectors, and of the string they make."""
    results = []
    for name, got in units.items():
        ref = vectors["units"][name]
        n = min(len(ref), len(got))
        results.append(StreamResult(name, len(ref), len(got), int((np.asarray(got[:n]) == np.asarray(ref[:n])).sum())))
    kind = "expressive" if "pitch" in units else "base"
    string = units_to_string(units["hubert"], units.get("pitch"), units.get("style"), rates=vectors["rates"])
    return Report(results, kind, string == vectors[f"{kind}_string"])


def compare(tokenizer: Any, wav: np.ndarray, vectors: dict[str, Any]) -> Report:
    """Tokenize ``wav`` (the vectors' audio, 16 kHz) with ``tokenizer`` and compare with the vectors."""
    if len(wav) != AUDIO_SAMPLES:
        raise ValueError(f"the audio has {len(wav)} samples, not {AUDIO_SAMPLES}: use LibriSpeech 7143-88743-0029.flac as shipped (16 kHz)")
    report = compare_units(tokenizer.encode_units(wav), vectors)
    if report.string_equal != (tokenizer.encode_string(wav) == vectors[f"{report.string_kind}_string"]):
        raise AssertionError("encode_string disagrees with units_to_string of encode_units")  # internal invariant
    return report

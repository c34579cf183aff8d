"""Listening samples for reports: the same fixed prompts through several models.

    specs = default_specs(["the little cat"], [Path("corpus/wavs/s00001_u0.wav")])
    index = write_samples({"teacher": T, "student": S}, Path("DIR/samples"), specs)   # -> DIR/samples/index.md

Each model gets ``OUT/<model>/<i>.wav`` + ``<i>.txt`` (the token transcript), its own
``generations.jsonl`` and ``index.md``; ``OUT/index.md`` puts every model's samples in one
table per prompt, with links relative to ``OUT`` (a report beside ``OUT`` links to it).
Everything is generated first and written afterwards, so a failure writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinywave.generate.outputs import generation_rows, table_cell, write_outputs
from tinywave.generate.prompt import PromptItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleSpec:
    """One prompt of the sample set: a short name, the output modality and the items."""

    name: str
    modality: str
    items: tuple[PromptItem, ...]


def default_specs(texts: Sequence[str], audios: Sequence[str | Path]) -> list[SampleSpec]:
    """text -> speech per text; speech -> speech, speech -> text and speech + text -> speech per audio."""
    specs = [SampleSpec(f"text{i}_to_speech", "speech", (PromptItem("text", t),)) for i, t in enumerate(texts)]
    for i, path in enumerate(audios):
        audio = PromptItem("audio", str(path))
        specs += [SampleSpec(f"audio{i}_to_speech", "speech", (audio,)),
                  SampleSpec(f"audio{i}_to_text", "text", (audio,))]
        if texts:
            specs.append(SampleSpec(f"audio{i}_text_to_speech", "speech", (audio, PromptItem("text", " " + texts[0]))))
    if not specs:
        raise ValueError("no sample prompts: give at least one text or one audio file")
    return specs


def generate_samples(models: Mapping[str, str | Path], specs: Sequence[SampleSpec], options: Any,
                     vocoder: str | Path | None = None) -> dict[str, tuple[list[dict[str, Any]], list[Any]]]:
    """model name -> (rows, generations) for every spec, in order (nothing written)."""
    from tinywave.generate.speechlm import SpeechLM

    out = {}
    for name, path in models.items():
        lm = SpeechLM.load(path, vocoder)
        encoded = [lm.encode(spec.items, spec.modality) for spec in specs]  # every prompt checked before any decoding
        results = [g for spec, items in zip(specs, encoded) for g in lm.generate([items], spec.modality, options)]
        out[name] = (generation_rows(results, [s.name for s in specs]), results)
        log.info("samples: %s generated %d prompt(s)", name, len(specs))
    return out


def write_samples(models: Mapping[str, str | Path], out: Path, specs: Sequence[SampleSpec], options: Any = None,
                  vocoder: str | Path | None = None) -> Path:
    """Generate ``specs`` with every model and write them under ``out``; returns ``out/index.md``."""
    from tinywave.files import atomic_write_text
    from tinywave.generate.speechlm import GenerationOptions

    generated = generate_samples(models, specs, options or GenerationOptions(max_new_tokens=150, max_seconds=6.0), vocoder)
    for name, (rows, results) in generated.items():
        write_outputs(out / name, rows, results)
    atomic_write_text(out / "index.md", samples_markdown(specs, {n: rows for n, (rows, _) in generated.items()}))
    return out / "index.md"


def samples_markdown(specs: Sequence[SampleSpec], rows: Mapping[str, Sequence[dict[str, Any]]], width: int = 70) -> str:
    """One section per prompt, one row per model: output transcript and a link to its wav."""
    lines = ["# Generated samples", "", "Transcripts show the generated tokens with the model's markers; "
             "`stop` says why generation ended (eos, max_seconds, max_new_tokens).", ""]
    for i, spec in enumerate(specs):
        prompt = next(iter(rows.values()))[i]["prompt"] if rows else ""
        lines += [f"## {spec.name} ({spec.modality} output)", "", f"Prompt: `{table_cell(prompt, 2 * width)}`", "",
                  "| model | output | stop | audio |", "|---|---|---|---|"]
        for name, model_rows in rows.items():
            r = model_rows[i]
            audio = f"[{name}/{r['wav']}]({name}/{r['wav']}) ({r['seconds']:.1f} s)" if r.get("wav") else "-"
            lines.append(f"| {name} | [{table_cell(r['transcript'], width)}]({name}/{r['index']}.txt) | {r['stop']} | {audio} |")
        lines.append("")
    return "\n".join(lines)

"""Listening samples for reports: the same fixed prompts through several models.

    specs = default_specs(["the little cat"], [Path("corpus/wavs/s00001_u0.wav")])
    index = write_samples({"teacher": T, "student": S}, Path("DIR/samples"), specs)   # -> DIR/samples/index.md

Each model gets ``OUT/<model>/<i>.wav`` + ``<i>.txt`` (the token transcript), its own
``generations.jsonl`` and ``index.md``; ``OUT/index.md`` puts every model's samples in one
table per prompt, with links relative to ``OUT`` (a report beside ``OUT`` links to it).
``OUT/index.json`` holds the same for programs (tinywave/demo/html.py reads it): per model,
one entry per prompt with its kind, prompt text / audio, output wav, token transcript and
text output, paths relative to the report folder (``OUT``'s parent unless ``root`` is given).
Everything is generated first and written afterwards, so a failure writes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinywave.files import atomic_write_json, atomic_write_text
from tinywave.generate.outputs import generation_rows, table_cell, write_outputs
from tinywave.generate.prompt import PromptItem
from tinywave.generate.speechlm import GenerationOptions, SpeechLM

log = logging.getLogger(__name__)
SAMPLES_INDEX_FORMAT = "tinywave-samples/1"


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
    out = {}
    for name, path in models.items():
        lm = SpeechLM.load(path, vocoder)
        encoded = [lm.encode(spec.items, spec.modality) for spec in specs]  # every prompt checked before any decoding
        results = [g for spec, items in zip(specs, encoded) for g in lm.generate([items], spec.modality, options)]
        out[name] = (generation_rows(results, [s.name for s in specs]), results)
        log.info("samples: %s generated %d prompt(s)", name, len(specs))
    return out


def write_samples(models: Mapping[str, str | Path], out: Path, specs: Sequence[SampleSpec], options: Any = None,
                  vocoder: str | Path | None = None, root: Path | None = None) -> Path:
    """Generate ``specs`` with every model and write them under ``out``; returns ``out/index.md``.

    ``out/index.json`` is written too, its paths relative to ``root`` (default ``out``'s parent).
    """
    generated = generate_samples(models, specs, options or GenerationOptions(max_new_tokens=150, max_seconds=6.0), vocoder)
    for name, (rows, results) in generated.items():
        write_outputs(out / name, rows, results)
    rows_by_model = {n: rows for n, (rows, _) in generated.items()}
    atomic_write_json(out / "index.json", samples_index(specs, rows_by_model, out, out.parent if root is None else root))
    atomic_write_text(out / "index.md", samples_markdown(specs, rows_by_model))
    return out / "index.md"


def spec_kind(spec: SampleSpec) -> str:
    """``text_to_speech``, ``audio_to_text``, ``audio+text_to_speech``: the prompt's content types, then the output."""
    kinds = list(dict.fromkeys(item.kind for item in spec.items))
    return "+".join(kinds) + "_to_" + spec.modality


def relative_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators) when it lies under it, else its absolute form."""
    full, base = path.resolve(), root.resolve()
    return Path(os.path.relpath(full, base)).as_posix() if full.is_relative_to(base) else str(full)


def _prompt_fields(spec: SampleSpec, root: Path) -> dict[str, Any]:
    texts = [str(item.content) for item in spec.items if item.kind == "text"]
    audios = [relative_path(Path(item.content), root) if isinstance(item.content, (str, Path)) else None
              for item in spec.items if item.kind == "audio"]
    tokens = [str(item.content) for item in spec.items if item.kind == "tokens"]
    return {"prompt_text": "".join(texts) or None, "prompt_audio": next((a for a in audios if a), None),
            "prompt_tokens": "".join(tokens) or None}


def samples_index(specs: Sequence[SampleSpec], rows: Mapping[str, Sequence[dict[str, Any]]], out: Path,
                  root: Path) -> dict[str, Any]:
    """index.json's content: per model, one entry per prompt; file paths (and ``folder``, ``out`` itself) relative to ``root``."""
    folder = relative_path(out, root)
    models: dict[str, list[dict[str, Any]]] = {}
    for name, model_rows in rows.items():
        entries = []
        for spec, r in zip(specs, model_rows):
            wav = f"{folder}/{name}/{r['wav']}" if r.get("wav") else None
            entries.append({"prompt_id": spec.name, "kind": spec_kind(spec), "modality": spec.modality,
                            **_prompt_fields(spec, root), "prompt": r["prompt"], "wav": wav, "seconds": r["seconds"],
                            "transcript": r["transcript"], "transcript_file": f"{folder}/{name}/{r['index']}.txt",
                            "text": r["text"], "stop": r["stop"]})
        models[name] = entries
    return {"format": SAMPLES_INDEX_FORMAT, "folder": folder, "prompts": [s.name for s in specs], "models": models}


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

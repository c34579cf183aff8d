"""Writing generations to a folder: ``<i>.txt`` transcripts, ``<i>.wav``, ``generations.jsonl``, ``index.md``.

Every file is written atomically, and only once all generations exist, so a failed run
leaves nothing half-written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinywave.audio.io import save_wav
from tinywave.files import atomic_write_text

SAMPLE_RATE = 16000


def generation_rows(results: Sequence[Any], prompt_ids: Sequence[str]) -> list[dict[str, Any]]:
    """One JSON-able row per :class:`tinywave.generate.speechlm.Generation`."""
    return [{"index": i, "prompt_id": pid, "prompt": r.prompt, "transcript": r.transcript, "text": r.text,
             "speech_tokens": r.speech, "stop": r.stop, "new_tokens": len(r.ids),
             "seconds": round(len(r.audio) / SAMPLE_RATE, 3) if r.audio is not None else 0.0}
            for i, (pid, r) in enumerate(zip(prompt_ids, results))]


def write_outputs(out: Path, rows: list[dict[str, Any]], results: Sequence[Any]) -> None:
    """``out/<i>.txt`` (+ ``<i>.wav`` when there is audio), ``generations.jsonl`` and ``index.md``."""
    out.mkdir(parents=True, exist_ok=True)
    for i, (row, res) in enumerate(zip(rows, results)):
        atomic_write_text(out / f"{i}.txt", res.transcript + "\n")
        if res.audio is not None and len(res.audio):
            save_wav(out / f"{i}.wav", res.audio)
            row["wav"] = f"{i}.wav"
    atomic_write_text(out / "generations.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(out / "index.md", index_markdown(rows))


def table_cell(text: str, width: int) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def index_markdown(rows: Sequence[dict[str, Any]], width: int = 80) -> str:
    """A page linking every sample (a report can link to it)."""
    lines = ["# Generated samples", "", "| # | prompt | output | stop | audio |", "|---|---|---|---|---|"]
    for r in rows:
        audio = f"[{r['wav']}]({r['wav']}) ({r['seconds']:.1f} s)" if r.get("wav") else "-"
        lines.append(f"| [{r['index']}]({r['index']}.txt) | {table_cell(r['prompt'], width)} | {table_cell(r['transcript'], width)} "
                     f"| {r['stop']} | {audio} |")
    return "\n".join(lines) + "\n"

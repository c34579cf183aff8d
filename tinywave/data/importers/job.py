"""One import: source -> checked items -> optional word timings -> manifest + errors file.

The output is rebuilt whole on every run and written atomically, in source order, so a
rerun over the same source writes the same bytes. Bad items (unreadable or missing audio,
empty text, duplicate ids, unusable alignments) go to ``<out stem>.errors.jsonl``
(``id``, ``where``, ``reason``, ``detail``, as tinywave/data/tokenize_job.py writes) and
are left out; every other item is written.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tinywave.audio.io import AudioError
from tinywave.data.importers.alignment import Alignments, attach_words, guess_alignment_format
from tinywave.data.importers.duration import audio_seconds
from tinywave.data.importers.formats import ALIGNMENT_READERS, IMPORTERS, choice
from tinywave.data.importers.options import ImportOptions
from tinywave.data.manifest import BadItem, ManifestItem, write_manifest
from tinywave.files import atomic_write_text
from tinywave.progress import bar

log = logging.getLogger(__name__)
Slot = ManifestItem | BadItem  # one source entry, in source order
SHOW = 10  # bad items named one by one in the log (all are in the errors file)


@dataclass
class ImportSummary:
    out: Path
    errors: Path
    items: int  # written to the manifest
    bad: int  # written to the errors file
    seconds: float  # audio in the manifest
    aligned: int = 0  # items given words
    unaligned: int = 0  # items kept without words: no alignment for their id
    unused_alignments: int = 0  # alignments naming no item
    with_alignments: bool = False

    def line(self) -> str:
        text = f"imported {self.items} items ({self.seconds / 3600:.2f} h) -> {self.out}, skipped {self.bad} bad (see {self.errors})"
        if self.with_alignments:
            text += f"; words for {self.aligned}, no alignment for {self.unaligned} (kept without words)"
            if self.unused_alignments:
                text += f", {self.unused_alignments} alignments for ids not in the source"
        return text


def errors_path(out: Path) -> Path:
    """``manifest.jsonl`` -> ``manifest.errors.jsonl`` beside it."""
    return out.with_name(f"{out.stem}.errors{out.suffix or '.jsonl'}")


def screen(slots: list[Slot]) -> list[Slot]:
    """Bad items for empty ids, duplicate ids (the first is kept) and empty transcripts."""
    seen: set[str] = set()
    out: list[Slot] = []
    for s in slots:
        if isinstance(s, ManifestItem):
            if not s.id.strip():
                s = BadItem(None, str(s.audio), "bad_id", "the utterance id is empty; give every utterance an id")
            elif s.id in seen:
                s = BadItem(s.id, str(s.audio), "duplicate_id", f"id {s.id!r} appears more than once; the first is kept, rename the others")
            elif s.text is not None and not s.text.strip():
                s = BadItem(s.id, str(s.audio), "empty_text", "the transcript is empty (or only punctuation); add the text or drop the utterance")
            else:
                seen.add(s.id)
        out.append(s)
    return out


def _seconds_or_error(path: Path) -> float | AudioError:
    try:
        return audio_seconds(path)
    except AudioError as exc:
        return exc


def measure(slots: list[Slot], workers: int) -> list[Slot]:
    """Add ``seconds`` (from the audio header, 4 decimals) to each item; unreadable audio -> bad item."""
    items = [s for s in slots if isinstance(s, ManifestItem)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        found = list(bar(pool.map(_seconds_or_error, [it.audio for it in items]), total=len(items), desc="audio", unit="file"))
    results = iter(found)
    out: list[Slot] = []
    for s in slots:
        if isinstance(s, ManifestItem):
            got = next(results)
            if isinstance(got, AudioError):
                s = BadItem(s.id, got.path, got.reason, got.detail)
            else:
                s.extra["seconds"] = round(got, 4)
        out.append(s)
    return out


def align(slots: list[Slot], alignments: Alignments) -> tuple[list[Slot], int, int]:
    """(slots with words attached, items aligned, items without an alignment)."""
    out: list[Slot] = []
    aligned = missing = 0
    for s in slots:
        if isinstance(s, ManifestItem):
            if s.id in alignments.broken:
                s = alignments.broken[s.id]
            elif s.id not in alignments.words:
                missing += 1
            else:
                s = attach_words(s, alignments.words[s.id], alignments.where[s.id], float(s.extra["seconds"]))
                aligned += isinstance(s, ManifestItem)
        out.append(s)
    return out, aligned, missing


def alignment_format_of(path: Path, fmt: str) -> str:
    """``fmt`` checked (textgrid | ctm), or guessed from the file names when ''."""
    if not path.exists():
        raise FileNotFoundError(f"--alignments {path} not found; pass the MFA output folder (TextGrids) or a .ctm file")
    return choice("alignment-format", fmt or guess_alignment_format(path), ALIGNMENT_READERS, "textgrid")


def write_bad_items(out: Path, bad: list[BadItem]) -> Path:
    """The errors file beside the manifest ``out`` (every bad item), the first few named in the log; its path."""
    err = errors_path(out)
    atomic_write_text(err, "".join(json.dumps(b.to_json(), ensure_ascii=False) + "\n" for b in bad))
    for b in bad[:SHOW]:
        log.warning("skipped %s (%s): %s", b.id or b.where, b.reason, b.detail)
    if len(bad) > SHOW:
        log.warning("... and %d more bad items, all in %s", len(bad) - SHOW, err)
    return err


def import_manifest(fmt: str, opts: ImportOptions, out: Path, alignments: Path | None = None,
                    alignment_format: str = "", workers: int = 4) -> ImportSummary:
    """Import ``opts.src`` as ``fmt`` into the manifest ``out``; see the module docstring."""
    choice("format", fmt, IMPORTERS, "librispeech")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the manifest file to write, e.g. {out / 'manifest.jsonl'}")
    align_fmt = alignment_format_of(alignments, alignment_format) if alignments is not None else ""
    slots = measure(screen(IMPORTERS[fmt](opts)), workers)
    found = Alignments()
    aligned = missing = 0
    if alignments is not None:
        found = ALIGNMENT_READERS[align_fmt](alignments, {s.id for s in slots if isinstance(s, ManifestItem)})
        slots, aligned, missing = align(slots, found)
        if found.unused:
            log.warning("%d alignments name ids not in the source (first %r); check that the alignments belong to this source",
                        len(found.unused), found.unused[0])
    items = [s for s in slots if isinstance(s, ManifestItem)]
    bad = [s for s in slots if isinstance(s, BadItem)]
    write_manifest(out, items)
    err = write_bad_items(out, bad)
    return ImportSummary(out, err, len(items), len(bad), sum(float(it.extra["seconds"]) for it in items),
                         aligned, missing, len(found.unused), alignments is not None)

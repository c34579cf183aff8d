"""Recipe: word timings for a manifest without alignments, by CTC forced alignment.

    tinywave manifest align --manifest data/dev/manifest.jsonl --model models/wav2vec2-base-960h \\
        --out data/dev/aligned.jsonl

For each item with a transcript, a local CTC model folder (or a hub id already in the
local HF cache) aligns the transcript to the audio (``tinywave/data/importers/ctc_align.py``)
and the item is written with ``words`` (docs/FORMATS.md), ready for word-level interleaving
in `tinywave data build`. Items that already have words keep them. Bad items (no
transcript, unreadable audio, a character the model lacks, audio too short for its text)
go to ``<out stem>.errors.jsonl`` and are skipped; the others are all written. Each
aligned item is journaled in ``<out>.partial`` as it is done, so an interrupted run
continues where it stopped. Exits 1 when there were bad items.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from tinywave.audio.io import AudioError, load_audio
from tinywave.config import field
from tinywave.data.importers.alignment import attach_words
from tinywave.data.importers.job import write_bad_items
from tinywave.data.manifest import BadItem, ManifestItem, parse_item, read_manifest, write_manifest
from tinywave.files import JsonlAppender, load_jsonl
from tinywave.progress import bar

log = logging.getLogger(__name__)


@dataclass
class Config:
    manifest: str = field("", help="manifest JSONL to align (items need 'text')")
    model: str = field("", help="CTC model folder with its processor (e.g. a wav2vec 2.0 fine-tuned for characters), or a cached hub id")
    out: str = field("", help="manifest JSONL to write with 'words' (bad items go to <stem>.errors.jsonl beside it)")
    device: str = field("cpu", help="cpu or cuda")
    realign: bool = field(False, help="also align items that already have words (default: keep theirs)")


def align_item(aligner, item) -> object:
    """The item with words, or a BadItem saying why it cannot be aligned."""
    if not item.text:
        return BadItem(item.id, str(item.audio), "no_transcript", "the item has no 'text' to align; add its transcript or drop it")
    try:
        audio, info = load_audio(item.audio, target_rate=aligner.rate)  # [samples]
    except (AudioError, OSError) as exc:
        return BadItem(item.id, str(item.audio), "bad_audio", f"{exc}; fix or drop the file")
    try:
        words = aligner.align(audio, item.text.split())
    except ValueError as exc:
        return BadItem(item.id, str(item.audio), "alignment_failed", str(exc))
    return attach_words(replace(item, words=None), words, f"ctc:{item.id}", len(audio) / aligner.rate)


def run(cfg: Config) -> int:
    from tinywave.data.importers.ctc_align import CtcAligner  # lazy: ctc_align imports torch (~1.4 s); recipe modules import without it

    if not cfg.manifest or not cfg.model or not cfg.out:
        raise ValueError("manifest align needs --manifest IN.jsonl, --model CTC_DIR and --out OUT.jsonl")
    out = Path(os.path.abspath(cfg.out))
    if out == Path(os.path.abspath(cfg.manifest)):
        raise ValueError(f"--out {out} is the input manifest; write the aligned manifest to another file")
    items, bad = read_manifest(cfg.manifest)
    aligner = CtcAligner(cfg.model, cfg.device)
    journal = out.with_name(out.name + ".partial")
    done = {obj["id"]: obj for obj in load_jsonl(journal)} if journal.is_file() else {}
    if done:
        log.info("continuing: %d items already aligned in %s", len(done), journal)
    results: dict[str, object] = {}
    with JsonlAppender(journal) as log_file:
        for item in bar(items, desc="align", unit="utt"):
            if item.words and not cfg.realign:
                results[item.id] = item
            elif item.id in done:
                obj = done[item.id]
                results[item.id] = BadItem(**obj["bad"]) if "bad" in obj else parse_item(obj["item"], out.parent)
            else:
                got = align_item(aligner, item)
                results[item.id] = got
                log_file.write({"id": item.id, **({"bad": got.to_json()} if isinstance(got, BadItem) else {"item": got.to_json(out.parent)})})
    good = [r for r in results.values() if isinstance(r, ManifestItem)]
    bad += [r for r in results.values() if isinstance(r, BadItem)]
    write_manifest(out, good)
    err = write_bad_items(out, bad)
    journal.unlink()
    (log.warning if bad else log.info)("aligned %d items -> %s, skipped %d bad (see %s)", len(good), out, len(bad), err)
    return 1 if bad else 0

"""Recipe: another corpus layout -> the project's manifest (docs/FORMATS.md), with word timings.

    tinywave manifest import --format librispeech --src LibriSpeech/dev-clean --out data/dev/manifest.jsonl
    tinywave manifest import --format tsv --src manifests/train.tsv --text manifests/train.wrd --out data/train/manifest.jsonl
    tinywave manifest import --format lhotse --src data/cuts_dev.jsonl.gz --out data/dev/manifest.jsonl
    tinywave manifest import --format datasets --src hf/librispeech_dummy --split validation \\
        --text-column text --audio-column audio --out data/hf/manifest.jsonl
    ... --alignments mfa_out/ --alignment-format textgrid     (or --alignments words.ctm --alignment-format ctm)

Items get ``seconds`` (from the audio header). Bad items (missing or unreadable audio,
empty transcript, duplicate id, alignment that disagrees with the transcript) go to
``<out stem>.errors.jsonl`` and are skipped; items without an alignment are kept without
words. Rerunning writes the same files. Exits 1 when there were bad items, like
`tinywave tokenize` (tinywave/recipes/tokenize.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tinywave.config import field
from tinywave.data.importers.job import import_manifest
from tinywave.data.importers.options import ImportOptions

log = logging.getLogger(__name__)


@dataclass
class Config:
    format: str = field("", help="source layout: librispeech | tsv (fairseq manifest) | datasets (Hugging Face save_to_disk folder) | "
                                 "lhotse (a Lhotse cuts.jsonl[.gz]; word alignments inside it are kept)")
    src: str = field("", help="librispeech: corpus or split folder; tsv: the .tsv file; datasets: the saved dataset folder; "
                              "lhotse: the cuts file")
    out: str = field("", help="manifest JSONL to write (bad items go to <stem>.errors.jsonl beside it)")
    text: str = field("", help="tsv: the parallel transcript file, .wrd (words) or .ltr (letters)")
    split: str = field("", help="librispeech: a split sub-folder of --src; datasets: the DatasetDict split")
    text_column: str = field("text", help="datasets: the transcript column")
    audio_column: str = field("audio", help="datasets: the audio column (Audio feature, {array, sampling_rate} or path)")
    id_column: str = field("id", help="datasets: the id column (when absent: <split>-<row>)")
    speaker_column: str = field("speaker_id", help="datasets: the speaker column (when absent: no speaker)")
    alignments: str = field("", help="word timings: a folder of MFA TextGrids, a .TextGrid, a .ctm file or a folder of them")
    alignment_format: str = field("", help="textgrid | ctm (empty: from the file names)")
    workers: int = field(4, help="threads reading audio headers")


def check_config(cfg: Config) -> None:
    """ValueError naming the missing or misplaced option and the fix."""
    if not cfg.format or not cfg.src or not cfg.out:
        raise ValueError("manifest import needs --format librispeech|tsv|datasets|lhotse, --src PATH and --out manifest.jsonl")
    if cfg.text and cfg.format != "tsv":
        raise ValueError(f"--text {cfg.text} is for --format tsv (the .wrd/.ltr file); "
                         "librispeech reads its *.trans.txt, datasets reads --text-column")
    if cfg.alignment_format and not cfg.alignments:
        raise ValueError(f"--alignment-format {cfg.alignment_format} needs --alignments DIR_OR_FILE")
    if cfg.workers < 1:
        raise ValueError(f"--workers {cfg.workers} must be >= 1")


def run(cfg: Config) -> int:
    check_config(cfg)
    out = Path(os.path.abspath(cfg.out))
    opts = ImportOptions(Path(os.path.abspath(cfg.src)), out.parent, Path(os.path.abspath(cfg.text)) if cfg.text else None,
                         cfg.split, cfg.text_column, cfg.audio_column, cfg.id_column, cfg.speaker_column)
    alignments = Path(os.path.abspath(cfg.alignments)) if cfg.alignments else None
    s = import_manifest(cfg.format, opts, out, alignments, cfg.alignment_format, cfg.workers)
    (log.warning if s.bad else log.info)(s.line())
    return 1 if s.bad else 0

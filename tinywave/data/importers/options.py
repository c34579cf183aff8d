"""What an importer reads: the source and the per-format choices of `tinywave manifest import`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImportOptions:
    src: Path  # librispeech: a folder; tsv: the .tsv file; datasets: a save_to_disk folder (absolute)
    out_dir: Path  # the manifest's folder (absolute); the datasets importer writes wavs under it
    text: Path | None = None  # tsv: the parallel .wrd / .ltr file
    split: str = ""  # librispeech: a sub-folder of src; datasets: a DatasetDict split
    text_column: str = "text"
    audio_column: str = "audio"
    id_column: str = "id"  # datasets: when absent, ids are <split>-<row>
    speaker_column: str = "speaker_id"  # datasets: when absent, items have no speaker

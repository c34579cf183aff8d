"""The names `tinywave manifest import` accepts, mapped to the functions that read them."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from tinywave.data.importers.alignment import Alignments, read_ctms, read_textgrids
from tinywave.data.importers.fairseq import read_fairseq_tsv
from tinywave.data.importers.hf_dataset import read_hf_dataset
from tinywave.data.importers.lhotse import read_lhotse_cuts
from tinywave.data.importers.librispeech import read_librispeech
from tinywave.data.importers.options import ImportOptions
from tinywave.data.manifest import BadItem, ManifestItem

Importer = Callable[[ImportOptions], list[ManifestItem | BadItem]]  # items and bad items in source order
AlignmentReader = Callable[[Path, set[str]], Alignments]  # (file or folder, wanted ids) -> alignments

IMPORTERS: dict[str, Importer] = {
    "librispeech": read_librispeech,  # tinywave/data/importers/librispeech.py
    "tsv": read_fairseq_tsv,  # tinywave/data/importers/fairseq.py
    "datasets": read_hf_dataset,  # tinywave/data/importers/hf_dataset.py (needs `datasets`)
    "lhotse": read_lhotse_cuts,  # tinywave/data/importers/lhotse.py (Lhotse cut manifests; Lhotse not needed)
}

ALIGNMENT_READERS: dict[str, AlignmentReader] = {
    "textgrid": read_textgrids,  # tinywave/data/importers/textgrid.py
    "ctm": read_ctms,  # tinywave/data/importers/ctm.py
}


def choice(kind: str, value: str, choices: dict[str, object], example: str) -> str:
    """``value`` when it is a key of ``choices``; else ValueError naming it, the choices and an example."""
    if value in choices:
        return value
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    given = f"{value!r} is not a known {kind}{hint}" if value else f"{kind} is required"
    raise ValueError(f"--{kind} {given}: choose one of {', '.join(choices)}, e.g. --{kind} {example}")

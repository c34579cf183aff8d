"""Loaders for the official benchmark folder layouts (docs/FORMATS.md).

Every benchmark becomes a list of :class:`PairItem` (a positive and a negative audio file,
plus tags used for breakdowns). Files are paired by *name*, never by directory order:

- sSC / tSC: ``<name>_correct.wav`` + ``<name>_incorrect.wav``; optional ``items.jsonl``
  (ours) with ``kind``, ``prompt_text``, ``correct_text``, ``incorrect_text``,
  ``correct_ending_start``, ``incorrect_ending_start`` for per-kind breakdowns and
  cross-modal scoring.
- SALMon: one folder per part, ``sample_<k>_0.wav`` (positive) and ``sample_<k>_1.wav``
  (negative); other suffixes are ignored, like the reference loader. The item id keeps
  ``<k>`` as written (``part/01`` stays ``01``); two files naming the same sample and side
  in different spellings (``sample_01_0.wav`` and ``sample_1_0.wav``) are refused.
- sWUGGY / sBLIMP (sLM21): ``*.wav`` next to ``gold.csv``; a pair is one real and one fake
  word (sentence) spoken by the same voice with the same ``id``.

A folder that does not match raises a ValueError/FileNotFoundError listing what was
expected and what was found.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinywave.files import read_jsonl

log = logging.getLogger(__name__)

SALMON_PARTS = (
    "sentiment_consistency", "speaker_consistency", "gender_consistency", "bg_domain_consistency",
    "bg_all_consistency", "rir_consistency", "sentiment_alignment", "bg_alignment",
)
LEXICAL_COLUMNS = ("id", "filename", "voice", "frequency", "word", "phones", "length", "correct")
SYNTACTIC_COLUMNS = ("filename", "type", "subtype", "transcription", "correct", "id", "voice")
# benchmark name (case-insensitive) -> kind; any other name is auto-detected from the folder
NAME_TO_KIND = {
    "ssc": "storycloze", "tsc": "storycloze", "storycloze": "storycloze",
    "salmon": "salmon",
    "swuggy": "swuggy", "lexical": "swuggy",
    "sblimp": "sblimp", "syntactic": "sblimp",
}
_STORY_RE = re.compile(r"^(?P<name>.+)_(?P<label>correct|incorrect)$")
_SALMON_RE = re.compile(r"^sample_(?P<k>\d+)_(?P<j>\d+)$")
_SHOW = 5


@dataclass(frozen=True)
class Clip:
    """A span of an audio file in seconds (``end=None``: to the end of the file)."""

    path: Path
    start: float = 0.0
    end: float | None = None


@dataclass(frozen=True)
class Candidate:
    """One side of a pair: the whole file, and for cross-modal scoring its prompt/ending parts."""

    audio: Path
    prompt: Clip | None = None  # the audio before the ending (speech prompt -> text ending)
    ending: Clip | None = None  # the audio of the ending (text prompt -> speech ending)
    text: str | None = None  # the ending as text


@dataclass
class PairItem:
    id: str
    pos: Candidate
    neg: Candidate
    prompt_text: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class Benchmark:
    name: str
    kind: str
    root: Path
    items: list[PairItem]


def _listing(paths: list[Path] | list[str]) -> str:
    names = sorted(p.name if isinstance(p, Path) else str(p) for p in paths)
    more = f" (+{len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return (", ".join(names[:_SHOW]) + more) if names else "nothing"


def _need_dir(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist; pass the folder you downloaded (see docs/FORMATS.md)")


# ---------------------------------------------------------------- sSC / tSC


def load_storycloze(folder: Path) -> list[PairItem]:
    """Pairs ``<name>_correct.wav`` / ``<name>_incorrect.wav``, plus ``items.jsonl`` metadata."""
    folder = Path(folder)
    _need_dir(folder, "StoryCloze")
    wavs = sorted(folder.glob("*.wav"))
    sides: dict[str, dict[str, Path]] = defaultdict(dict)
    stray = []
    for wav in wavs:
        m = _STORY_RE.match(wav.stem)
        if m is None:
            stray.append(wav)
            continue
        sides[m.group("name")][m.group("label")] = wav
    if not sides:
        raise ValueError(f"{folder} holds no StoryCloze pairs: expected <name>_correct.wav and <name>_incorrect.wav, found {_listing(wavs)}")
    incomplete = sorted(n for n, s in sides.items() if len(s) != 2)
    if incomplete:
        detail = ", ".join(f"{n} (has only _{next(iter(sides[n]))}.wav)" for n in incomplete[:_SHOW])
        raise ValueError(f"{folder}: {len(incomplete)} StoryCloze items lack their other file: {detail}; every <name>_correct.wav needs a <name>_incorrect.wav")
    if stray:
        log.warning("%s: ignoring %d wav files not named <name>_correct/_incorrect: %s", folder, len(stray), _listing(stray))
    meta = _story_meta(folder / "items.jsonl", set(sides))
    return [_story_item(name, s["correct"], s["incorrect"], meta.get(name)) for name, s in sorted(sides.items())]


def _story_meta(path: Path, names: set[str]) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    meta: dict[str, dict[str, Any]] = {}
    for n, obj, err in read_jsonl(path):
        if obj is None or "name" not in obj:
            raise ValueError(f"{path}:{n}: {err or 'line lacks name'}; each line needs name (+ kind, texts, ending starts)")
        meta[str(obj["name"])] = obj
    unknown = sorted(set(meta) - names)
    if unknown:
        log.warning("%s names %d items with no wav pair: %s", path, len(unknown), _listing(unknown))
    return meta


def _story_item(name: str, pos: Path, neg: Path, meta: dict[str, Any] | None) -> PairItem:
    if meta is None:
        return PairItem(name, Candidate(pos), Candidate(neg))

    def side(path: Path, label: str) -> Candidate:
        start = meta.get(f"{label}_ending_start")
        if start is None:
            return Candidate(path, text=meta.get(f"{label}_text"))
        start = float(start)
        return Candidate(path, Clip(path, 0.0, start), Clip(path, start, None), meta.get(f"{label}_text"))

    tags = {"kind": meta["kind"]} if meta.get("kind") else {}
    return PairItem(name, side(pos, "correct"), side(neg, "incorrect"), meta.get("prompt_text"), tags)


# ---------------------------------------------------------------- SALMon


def load_salmon(folder: Path) -> list[PairItem]:
    """All part folders present under ``folder`` (or ``folder`` itself when it is one part)."""
    folder = Path(folder)
    _need_dir(folder, "SALMon")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    parts = [p for p in subdirs if p.name in SALMON_PARTS]
    unknown = [p for p in subdirs if p not in parts and any(p.glob("*.wav"))]
    if unknown:
        raise ValueError(f"{folder}: part folders {_listing(unknown)} are not SALMon parts; expected some of {', '.join(SALMON_PARTS)}")
    if not parts:
        if any(_SALMON_RE.match(p.stem) for p in folder.glob("*.wav")):
            return _salmon_part(folder, folder.name)
        raise ValueError(f"{folder} holds no SALMon part folders: expected some of {', '.join(SALMON_PARTS)} "
                         f"(each with sample_<k>_0.wav and sample_<k>_1.wav), found {_listing(subdirs + sorted(folder.glob('*.wav')))}")
    missing = [p for p in SALMON_PARTS if p not in {d.name for d in parts}]
    if missing:
        log.info("%s: SALMon parts not present (skipped): %s", folder, ", ".join(missing))
    return [item for part in parts for item in _salmon_part(part, part.name)]


def _salmon_files(folder: Path) -> dict[str, dict[int, Path]]:
    """sample id as written -> {0: positive, 1: negative}; one number spelled two ways is an error."""
    files: dict[str, dict[int, Path]] = defaultdict(dict)
    seen: dict[tuple[int, int], Path] = {}
    for wav in sorted(folder.glob("*.wav")):
        m = _SALMON_RE.match(wav.stem)
        if m is None or int(m.group("j")) not in (0, 1):
            continue
        key = (int(m.group("k")), int(m.group("j")))
        if key in seen:
            raise ValueError(f"SALMon part {folder}: {seen[key].name} and {wav.name} both name sample {key[0]}'s "
                             f"{('positive', 'negative')[key[1]]} file; remove or rename one of them")
        seen[key] = wav
        files[m.group("k")][key[1]] = wav
    return files


def _salmon_part(folder: Path, part: str) -> list[PairItem]:
    files = _salmon_files(folder)
    if not files:
        raise ValueError(f"SALMon part {folder} holds no sample_<k>_0.wav / sample_<k>_1.wav files; found {_listing(sorted(folder.iterdir()))}")
    incomplete = sorted(k for k, f in files.items() if 0 not in f or 1 not in f)
    if incomplete:
        shown = ", ".join(f"sample_{k}_{0 if 0 not in files[k] else 1}.wav" for k in incomplete[:_SHOW])
        raise ValueError(f"SALMon part {folder}: {len(incomplete)} samples lack a file: missing {shown}")
    ordered = sorted(files.items(), key=lambda kv: (int(kv[0]), kv[0]))
    return [PairItem(f"{part}/{k}", Candidate(f[0]), Candidate(f[1]), tags={"part": part}) for k, f in ordered]


# ---------------------------------------------------------------- sWUGGY / sBLIMP


def resolve_gold(folder: Path, task: str) -> Path:
    """The split folder holding gold.csv: ``folder``, ``folder/dev`` or ``folder/<task>/dev``."""
    folder = Path(folder)
    _need_dir(folder, f"sLM21 {task}")
    candidates = [folder, folder / "dev", folder / task / "dev"]
    for c in candidates:
        if (c / "gold.csv").is_file():
            return c
    raise FileNotFoundError(f"no gold.csv for sLM21 {task}: looked in {', '.join(str(c) for c in candidates)}; "
                            f"found {_listing(sorted(folder.iterdir()))}. Expected <split>/gold.csv next to the split's wav files")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file; bad UTF-8, bad CSV and rows whose length differs from the header name the file and line."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except csv.Error as exc:
        raise ValueError(f"{path} is not valid CSV ({exc}); rewrite it as comma-separated values") from None
    for n, row in enumerate(rows, start=2):
        if None in row or None in row.values():  # DictReader: extra fields under None, missing ones as None
            fields = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
            raise ValueError(f"{path}: the row near line {n} has {fields} fields but the header has {len(header)}; "
                             "every row needs exactly the header's columns")
    return header, rows


def read_gold(split: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    path = split / "gold.csv"
    header, rows = read_csv(path)
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}: expected {','.join(columns)}, found {','.join(header)}")
    if not rows:
        raise ValueError(f"{path} has no rows")
    absent = [r["filename"] for r in rows if not _wav_of(split, r["filename"]).is_file()]
    if absent:
        raise FileNotFoundError(f"{split}: {len(absent)} of {len(rows)} files in gold.csv are missing, e.g. {_listing(absent)} (.wav)")
    return rows


def _wav_of(split: Path, filename: str) -> Path:
    return split / (filename if filename.endswith(".wav") else filename + ".wav")


def _pair_rows(split: Path, rows: list[dict[str, str]], group: Callable[[dict[str, str]], tuple]) -> list[tuple[dict, dict]]:
    """(real, fake) rows of each group, matched in gold order."""
    groups: dict[tuple, dict[int, list[dict]]] = defaultdict(lambda: {0: [], 1: []})
    for r in rows:
        if r["correct"].strip() not in ("0", "1"):
            raise ValueError(f"{split / 'gold.csv'}: correct must be 0 or 1, got {r['correct']!r} for {r['filename']}")
        groups[group(r)][int(r["correct"])].append(r)
    bad = [k for k, g in groups.items() if len(g[0]) != len(g[1])]
    if bad:
        raise ValueError(f"{split / 'gold.csv'}: {len(bad)} (id, voice) groups have unequal real/fake counts, "
                         f"e.g. {bad[0]}; each real item needs one fake item")
    return [pair for g in groups.values() for pair in zip(g[1], g[0])]


def _zerospeech_item(split: Path, name: str, real: dict[str, str], fake: dict[str, str], tags: dict[str, Any]) -> PairItem:
    return PairItem(name, Candidate(_wav_of(split, real["filename"])), Candidate(_wav_of(split, fake["filename"])), tags=tags)


def load_lexical(folder: Path) -> list[PairItem]:
    split = resolve_gold(folder, "lexical")
    rows = read_gold(split, LEXICAL_COLUMNS)
    items = []
    for real, fake in _pair_rows(split, rows, lambda r: (r["id"], r["voice"])):
        try:
            freq = int(float(real["frequency"])) if real["frequency"].strip() else 0
        except ValueError:
            raise ValueError(f"{split / 'gold.csv'}: frequency {real['frequency']!r} of {real['filename']} is not a number") from None
        tags = {"id": real["id"], "voice": real["voice"], "frequency": freq, "word": real["word"], "nonword": fake["word"],
                "pos_stem": Path(real["filename"]).stem, "neg_stem": Path(fake["filename"]).stem}
        items.append(_zerospeech_item(split, f"{real['id']}/{real['voice']}", real, fake, tags))
    return items


def load_syntactic(folder: Path) -> list[PairItem]:
    split = resolve_gold(folder, "syntactic")
    rows = read_gold(split, SYNTACTIC_COLUMNS)
    items = []
    for real, fake in _pair_rows(split, rows, lambda r: (r["type"], r["subtype"], r["id"], r["voice"])):
        tags = {"id": real["id"], "voice": real["voice"], "type": real["type"], "subtype": real["subtype"],
                "pos_stem": Path(real["filename"]).stem, "neg_stem": Path(fake["filename"]).stem}
        items.append(_zerospeech_item(split, f"{real['type']}/{real['id']}/{real['voice']}", real, fake, tags))
    return items


# ---------------------------------------------------------------- dispatch

LOADERS: dict[str, Callable[[Path], list[PairItem]]] = {
    "storycloze": load_storycloze,
    "salmon": load_salmon,
    "swuggy": load_lexical,
    "sblimp": load_syntactic,
}


def detect_kind(folder: Path) -> str:
    """The benchmark type of a folder, from the files it holds."""
    folder = Path(folder)
    _need_dir(folder, "benchmark")
    for task, kind in (("lexical", "swuggy"), ("syntactic", "sblimp")):
        for c in (folder, folder / "dev", folder / task / "dev"):
            if (c / "gold.csv").is_file():
                header, _ = read_csv(c / "gold.csv")
                return "swuggy" if "frequency" in header else "sblimp" if "type" in header else kind
    if any(folder.glob("*_correct.wav")):
        return "storycloze"
    if any((folder / p).is_dir() for p in SALMON_PARTS) or any(folder.glob("sample_*_0.wav")):
        return "salmon"
    raise ValueError(f"cannot tell the benchmark type of {folder}: expected <name>_correct.wav/_incorrect.wav (sSC/tSC), "
                     f"SALMon part folders ({SALMON_PARTS[0]}, ...), or gold.csv (sWUGGY/sBLIMP); found {_listing(sorted(folder.iterdir()))}. "
                     f"Name the benchmark sSC, tSC, salmon, swuggy or sblimp to say which layout to expect")


def load_benchmark(name: str, folder: str | Path, kind: str | None = None) -> Benchmark:
    """Load a benchmark; ``kind`` defaults to the one ``name`` implies, else it is detected."""
    folder = Path(folder)
    kind = kind or NAME_TO_KIND.get(name.lower()) or detect_kind(folder)
    if kind not in LOADERS:
        raise ValueError(f"benchmark type {kind!r} is not known; choose one of {sorted(LOADERS)}")
    items = LOADERS[kind](folder)
    log.info("benchmark %s (%s): %d pairs from %s", name, kind, len(items), folder)
    return Benchmark(name, kind, folder, items)


# where `tinywave corpus benchmarks --out DIR` (and the official downloads) put each benchmark
STANDARD_LOCATIONS = {
    "sSC": "sSC", "tSC": "tSC", "salmon": "salmon",
    "swuggy": "sLM21/lexical", "sblimp": "sLM21/syntactic",
}


def discover(root: str | Path) -> dict[str, Path]:
    """The standard benchmark folders present under a benchmarks root."""
    root = Path(root)
    _need_dir(root, "benchmarks root")
    found = {name: root / rel for name, rel in STANDARD_LOCATIONS.items() if (root / rel).is_dir()}
    if not found:
        raise ValueError(f"{root} holds none of the benchmark folders {', '.join(STANDARD_LOCATIONS.values())}; "
                         f"found {_listing(sorted(root.iterdir()))}. Pass --bench NAME=DIR for a single benchmark")
    return found

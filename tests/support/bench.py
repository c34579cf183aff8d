"""Tiny benchmark folders in the official layouts (sStoryCloze/tStoryCloze, SALMon, sWUGGY, sBLIMP), of noise wavs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from support.eval import TEXTS, write_wav


def make_storycloze(folder: Path, n: int = 6, seed: int = 0, items: bool = False, tie: int | None = None) -> Path:
    """n pairs ``s<i>_correct.wav`` / ``s<i>_incorrect.wav``; pair ``tie`` uses one file twice."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        pos = write_wav(folder / f"s{i}_correct.wav", seed * 1000 + 2 * i, 0.4 + 0.08 * (i % 3))
        neg = folder / f"s{i}_incorrect.wav"
        if i == tie:
            neg.write_bytes(pos.read_bytes())
        else:
            write_wav(neg, seed * 1000 + 2 * i + 1, 0.4 + 0.08 * ((i + 1) % 3))
        lines.append({"name": f"s{i}", "kind": ["outcome", "entity"][i % 2], "prompt_text": TEXTS[i % 3],
                      "correct_text": "the cat sat", "incorrect_text": "a dog ran home",
                      "correct_ending_start": 0.2, "incorrect_ending_start": 0.24})
    if items:
        (folder / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


def make_salmon(folder: Path, parts: tuple[str, ...] = ("speaker_consistency", "gender_consistency"), n: int = 3, seed: int = 5) -> Path:
    for p, part in enumerate(parts):
        for k in range(n):
            write_wav(folder / part / f"sample_{k}_0.wav", seed * 100 + p * 10 + 2 * k, 0.4)
            write_wav(folder / part / f"sample_{k}_1.wav", seed * 100 + p * 10 + 2 * k + 1, 0.48)
    return folder


LEXICAL_ROWS = [  # (id, voice, frequency, word, correct)
    ("1", "v1", 0, "blick", 1), ("1", "v1", 0, "brick", 0), ("1", "v2", 0, "blick", 1), ("1", "v2", 0, "brick", 0),
    ("2", "v1", 3, "cat", 1), ("2", "v1", 3, "cag", 0), ("2", "v2", 3, "cat", 1), ("2", "v2", 3, "cag", 0),
    ("3", "v1", 20, "dog", 1), ("3", "v1", 20, "dof", 0),
    ("4", "v2", 150, "the", 1), ("4", "v2", 150, "thi", 0),
]
SYNTACTIC_ROWS = [  # (id, voice, type, subtype, correct)
    ("1", "v1", "agreement", "a", 1), ("1", "v1", "agreement", "a", 0), ("1", "v2", "agreement", "a", 1), ("1", "v2", "agreement", "a", 0),
    ("2", "v1", "agreement", "b", 1), ("2", "v1", "agreement", "b", 0),
    ("3", "v1", "island", "c", 1), ("3", "v1", "island", "c", 0), ("4", "v2", "island", "c", 1), ("4", "v2", "island", "c", 0),
]


def make_lexical(split: Path, seed: int = 7, reverse: bool = True) -> Path:
    """A sWUGGY split with gold.csv listing rows in reverse order (pairing must not rely on order)."""
    split.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (id_, voice, freq, word, correct) in enumerate(LEXICAL_ROWS):
        name = f"f{seed}x{i:03d}"
        write_wav(split / f"{name}.wav", seed * 100 + i, 0.3 + 0.04 * (i % 4))
        rows.append({"id": id_, "filename": name, "voice": voice, "frequency": freq, "word": word, "phones": "x y", "length": len(word), "correct": correct})
    _write_csv(split / "gold.csv", ["id", "filename", "voice", "frequency", "word", "phones", "length", "correct"], rows[::-1] if reverse else rows)
    return split


def make_syntactic(split: Path, seed: int = 9) -> Path:
    split.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (id_, voice, type_, sub, correct) in enumerate(SYNTACTIC_ROWS):
        name = f"g{seed}x{i:03d}"
        write_wav(split / f"{name}.wav", seed * 100 + i, 0.3 + 0.04 * (i % 4))
        rows.append({"filename": name, "type": type_, "subtype": sub, "transcription": "the cat", "correct": correct, "id": id_, "voice": voice})
    _write_csv(split / "gold.csv", ["filename", "type", "subtype", "transcription", "correct", "id", "voice"], rows[::-1])
    return split


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def make_bench_root(root: Path) -> Path:
    make_storycloze(root / "sSC", n=4, seed=1, items=True)
    make_storycloze(root / "tSC", n=4, seed=2)
    make_salmon(root / "salmon", n=2)
    make_lexical(root / "sLM21" / "lexical" / "dev")
    make_syntactic(root / "sLM21" / "syntactic" / "dev")
    return root

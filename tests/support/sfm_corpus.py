"""A small spoken corpus and SUPERB-style probe sets made with the espeak-ng CLI.

A test helper of the SFM tests (the toolkit's one corpus builder is ``tinywave corpus
synth`` / ``tinywave corpus benchmarks``, tinywave/corpus/; its probe sets come from
tinywave/corpus/probe_sets.py). Writes the documented layouts (docs/FORMATS.md):

- ``DIR/manifest.jsonl`` + ``DIR/wavs/*.wav`` (16 kHz): sentences from several voices;
- ``DIR/probes/<task>/<split>.jsonl`` for ``ks`` (label = keyword), ``sid`` (label =
  voice) and ``pr`` (phones = espeak phoneme symbols, stress marks removed).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from tinywave.audio.io import load_audio, save_wav
from tinywave.files import atomic_write_text

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
VOICES = ("en-us+f2", "en-us+m3", "en-us+f4", "en-us+m1", "en-us+f1", "en-us+m7", "en-gb+f3", "en-gb+m2")
WORDS = ("the cat dog bird fish man woman child king queen house tree river stone road city boat horse "
         "sees finds takes makes wants likes has gives keeps sells red big small old green happy dark "
         "near under over with from into a little very then and but").split()
SPLITS = {"train": 0.6, "dev": 0.2, "test": 0.2}


def _espeak(args: list[str]) -> subprocess.CompletedProcess:
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed; run `apt-get install espeak-ng` (scripts/setup.sh does)")
    return subprocess.run(["espeak-ng", *args], check=True, capture_output=True, text=True)


def speak(text: str, voice: str, path: Path, pitch: int = 50, rate: int = 170) -> float:
    """Synthesize ``text`` to a 16 kHz WAV at ``path``; returns its length in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        _espeak(["-v", voice, "-p", str(pitch), "-s", str(rate), "-w", str(raw), text])
        wav, _ = load_audio(raw)
    save_wav(path, wav)
    return len(wav) / 16000


def phonemes(text: str, voice: str = "en-us") -> list[str]:
    """espeak-ng phoneme symbols of ``text`` (stress and syllable marks removed)."""
    out = _espeak(["-q", "-x", "--sep= ", "-v", voice, text]).stdout
    return [p.strip("'%,=") for p in out.split() if p.strip("'%,=")]


def _sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _item(root: Path, uid: str, text: str, voice: str, rng: random.Random) -> dict:
    pitch, rate = rng.randint(35, 70), rng.randint(140, 200)
    speak(text, voice, root / "wavs" / f"{uid}.wav", pitch, rate)
    return {"id": uid, "audio": f"wavs/{uid}.wav", "text": text, "speaker": voice, "voice": voice,
            "pitch": pitch, "rate": rate}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    import json

    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def synth_corpus(out: str | Path, n_utterances: int, seed: int = 0, voices: tuple[str, ...] = VOICES,
                 words: tuple[int, int] = (3, 7)) -> Path:
    """Sentences of random words, voices round-robin; returns the manifest path."""
    out, rng = Path(out), random.Random(seed)
    rows = [_item(out, f"u{i:05d}", _sentence(rng, rng.randint(*words)), voices[i % len(voices)], rng)
            for i in range(n_utterances)]
    _write_jsonl(out / "manifest.jsonl", rows)
    return out / "manifest.jsonl"


def _split(rows: list[dict], rng: random.Random) -> dict[str, list[dict]]:
    """Shuffle and cut in SPLITS proportions; with 3 or more rows every split gets at least one."""
    rng.shuffle(rows)
    n_dev = max(1, round(len(rows) * SPLITS["dev"])) if len(rows) >= 3 else 0
    n_test = max(1, round(len(rows) * SPLITS["test"])) if len(rows) >= 3 else 0
    n_train = len(rows) - n_dev - n_test
    return {"train": rows[:n_train], "dev": rows[n_train:n_train + n_dev], "test": rows[n_train + n_dev:]}


def synth_probes(out: str | Path, per_class: int = 10, seed: int = 0, keywords: tuple[str, ...] = KEYWORDS,
                 voices: tuple[str, ...] = VOICES, n_pr: int = 60) -> Path:
    """``out/probes/{ks,sid,pr}/{train,dev,test}.jsonl``; returns ``out/probes``."""
    root, rng = Path(out) / "probes", random.Random(seed + 1)
    tasks: dict[str, list[dict]] = {"ks": [], "sid": [], "pr": []}
    for w in keywords:
        for k in range(per_class):
            row = _item(root / "ks", f"ks_{w}_{k}", w, rng.choice(voices), rng)
            tasks["ks"].append(row | {"label": w})
    for v in voices:
        for k in range(per_class):
            row = _item(root / "sid", f"sid_{v.replace('+', '_')}_{k}", _sentence(rng, rng.randint(2, 5)), v, rng)
            tasks["sid"].append(row | {"label": v})
    for k in range(n_pr):
        text, voice = _sentence(rng, rng.randint(2, 4)), rng.choice(voices)
        row = _item(root / "pr", f"pr_{k}", text, voice, rng)
        tasks["pr"].append(row | {"phones": phonemes(text, voice.split("+")[0])})
    for task, rows in tasks.items():
        parts: dict[str, list[dict]] = {split: [] for split in SPLITS}
        for label in sorted({str(r.get("label")) for r in rows}):  # stratified for ks/sid
            for split, part in _split([r for r in rows if str(r.get("label")) == label], rng).items():
                parts[split] += part
        for split, part in parts.items():
            _write_jsonl(root / task / f"{split}.jsonl", part)
    return root

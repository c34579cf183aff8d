"""Test audio: real utterances from the espeak-ng CLI, speech-like signals, random vocoder utterances."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
SENTENCES = [  # espeak_corpus's
    "the quick brown fox jumps over the lazy dog",
    "tom went to the park and found a red ball",
    "she sells sea shells by the sea shore",
    "a small cat sat on the mat near the old tree",
]
VOICES = ["en-us", "en-us+f2"]
UNIT_SENTENCES = ["the cat sat on the mat", "tom went to the park", "a red ball under the old tree", "my friend opened the door",
                  "the dog ran home", "anna found an apple"]  # the ``unit_corpus`` fixture's


def espeak_wav(path: Path, text: str, voice: str = "en-us") -> Path:
    """A real utterance (22.05 kHz WAV) from the espeak-ng CLI."""
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


def espeak_corpus(folder: Path, n: int = 6) -> Path:
    """n espeak-ng utterances (22.05 kHz WAV) and a manifest with text, speaker and word timings."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        text, voice = SENTENCES[i % len(SENTENCES)], VOICES[i % len(VOICES)]
        wav = folder / f"u{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
        lines.append({"id": f"u{i}", "audio": wav.name, "text": text, "speaker": voice, "words": even_words(text, sf.info(str(wav)).duration), "story_id": i // 2})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return manifest


def even_words(text: str, seconds: float) -> list[dict]:
    """Word timings spread evenly over the speech (a stand-in for an aligner)."""
    words = text.split()
    step = (seconds - 0.2) / len(words)
    return [{"word": w, "start": round(0.1 + i * step, 3), "end": round(0.1 + (i + 0.9) * step, 3)} for i, w in enumerate(words)]


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones changing every 80 ms with a voicing-like envelope and noise: features move over time (16 kHz)."""
    rng = np.random.default_rng(seed)
    n, seg = int(seconds * RATE), 1280
    t = np.arange(seg) / RATE
    parts = [np.sin(2 * np.pi * rng.uniform(90, 300) * t) * rng.uniform(0.05, 0.5) for _ in range(math.ceil(n / seg))]
    return (np.concatenate(parts)[:n] + rng.normal(scale=0.02, size=n)).astype(np.float32)


def utterance(uid, n, speaker=0, seed=0):
    """A vocoder training utterance: ``n`` random units (6 kinds), pitch codes every 2 units, 80 noise samples per unit."""
    from tinywave.vocoder import train as T
    from tinywave.vocoder.units import Units

    rng = np.random.default_rng(seed)
    return T.Utterance(uid, rng.standard_normal(n * 80).astype(np.float32) * 0.1,
                       Units(tuple(int(u) for u in rng.integers(0, 6, n)), tuple(int(p) for p in rng.integers(0, 3, (n + 1) // 2))), speaker)

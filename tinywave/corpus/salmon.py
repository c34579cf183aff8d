"""SALMon acoustic-consistency parts: ``salmon/<part>/sample_<k>_{0,1}.wav``.

``_0`` (positive) keeps one property through the utterance; ``_1`` (negative) switches
it at the word boundary nearest the middle: speaker (same gender), gender, speaking
style (rate, pitch, range), room (synthetic impulse response, 0.2 * conv + 0.8 * dry),
background noise of the same family (domain) or of any family (all) at SALMon's SNR
bands. Both files of a pair come from the same synthesis, so they differ only by the
switch. ``salmon/<part>/items.jsonl`` (ours) records texts and settings.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.audio.io import SAMPLE_RATE
from tinywave.corpus.espeak import Piece, Segment, Synthesizer
from tinywave.corpus.noise import FAMILIES, draw_snr, make_noise, noise_gain
from tinywave.corpus.room import ROOM_SIZES, impulse_response, reverberate
from tinywave.corpus.split import heldout_pool
from tinywave.corpus.synth import Job, Renderer, request, words_json
from tinywave.corpus.voices import STYLES, VOICES, jittered, other_voice
from tinywave.files import atomic_write_text

JOURNAL = "salmon"
CHUNK = 8
FADE = 0.005  # seconds of crossfade at a switch
MIN_WORDS = 7


def salmon_sentences(seed: int) -> list[str]:
    """Held-out sentences long enough to switch halfway, in a seeded order."""
    sentences = sorted({s for story in heldout_pool(seed) for s in story.sentences if len(s.split()) >= MIN_WORDS})
    random.Random(f"tinywave-salmon-order/{seed}").shuffle(sentences)
    return sentences


def _voice_switch(same_gender: bool) -> Callable[[random.Random, str], tuple[str, dict[str, Any]]]:
    def plan(rng: random.Random, text: str) -> tuple[str, dict[str, Any]]:
        a = jittered(rng.choice(sorted(VOICES)), rng)
        b = dataclasses.replace(a, voice=other_voice(a.voice, rng, same_gender))
        return "salmon_switch", {"text": text, "a": dataclasses.asdict(a), "b": dataclasses.asdict(b)}
    return plan


def _style_switch(rng: random.Random, text: str) -> tuple[str, dict[str, Any]]:
    voice = rng.choice(sorted(VOICES))
    first, second = rng.sample(sorted(STYLES), 2)
    a, b = jittered(voice, rng, first), jittered(voice, rng, second)
    return "salmon_switch", {"text": text, "a": dataclasses.asdict(a), "b": dataclasses.asdict(b), "styles": [first, second]}


def _room_switch(rng: random.Random, text: str) -> tuple[str, dict[str, Any]]:
    sizes = rng.sample(sorted(ROOM_SIZES), 2)
    rooms = [{"size": s, "rt60": round(rng.uniform(*ROOM_SIZES[s]), 3), "seed": rng.randrange(2**31)} for s in sizes]
    return "salmon_room", {"text": text, "delivery": dataclasses.asdict(jittered(rng.choice(sorted(VOICES)), rng)), "rooms": rooms}


def _noise_switch(same_family: bool) -> Callable[[random.Random, str], tuple[str, dict[str, Any]]]:
    def plan(rng: random.Random, text: str) -> tuple[str, dict[str, Any]]:
        first = rng.choice(sorted(FAMILIES))
        second = first if same_family else rng.choice(sorted(FAMILIES))
        noises = [{"family": first, "seed": rng.randrange(2**31)}, {"family": second, "seed": rng.randrange(2**31)}]
        snr = draw_snr(np.random.default_rng(rng.randrange(2**31)))
        delivery = dataclasses.asdict(jittered(rng.choice(sorted(VOICES)), rng))
        return "salmon_noise", {"text": text, "delivery": delivery, "noises": noises, "snr_db": round(snr, 4)}
    return plan


PARTS: dict[str, Callable[[random.Random, str], tuple[str, dict[str, Any]]]] = {
    "speaker_consistency": _voice_switch(same_gender=True),
    "gender_consistency": _voice_switch(same_gender=False),
    "sentiment_consistency": _style_switch,
    "rir_consistency": _room_switch,
    "bg_domain_consistency": _noise_switch(same_family=True),
    "bg_all_consistency": _noise_switch(same_family=False),
}


def plan_salmon(seed: int, items: int) -> list[Job]:
    sentences = salmon_sentences(seed)
    jobs = []
    for p, (part, planner) in enumerate(PARTS.items()):
        for k in range(items):
            rng = random.Random(f"tinywave-salmon/{seed}/{part}/{k}")
            kind, params = planner(rng, sentences[(p * items + k) % len(sentences)])
            outputs = (f"salmon/{part}/sample_{k}_0.wav", f"salmon/{part}/sample_{k}_1.wav")
            jobs.append(Job(f"{part}/{k}", kind, params, outputs))
    return jobs


def switch_index(words: list[Any]) -> int:
    """Index of the word whose start is nearest the middle of the speech (never the first)."""
    mid = (words[0].start + words[-1].end) / 2
    return min(range(1, len(words)), key=lambda i: abs(words[i].start - mid))


def splice(a: np.ndarray, i: int, b: np.ndarray, j: int, fade: int) -> np.ndarray:
    """a[:i] then b[j:], crossfaded over ``fade`` samples."""
    fade = max(0, min(fade, len(a) - i, len(b) - j))
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    mixed = a[i : i + fade] * (1 - ramp) + b[j : j + fade] * ramp
    return np.concatenate([a[:i], mixed, b[j + fade :]]).astype(np.float32)


def _peak_safe(*wavs: np.ndarray) -> list[np.ndarray]:
    """One common gain keeping every wav of a pair within [-0.95, 0.95]."""
    peak = max(float(np.max(np.abs(w))) for w in wavs)
    gain = 0.95 / peak if peak > 0.95 else 1.0
    return [(w * gain).astype(np.float32) for w in wavs]


def _render_switch(synth: Synthesizer, params: dict[str, Any], pieces: list[list[Piece]]) -> tuple[list[np.ndarray], dict[str, Any]]:
    a, _ = synth.join(pieces[0], int(params["a"]["rate"]))
    b, _ = synth.join(pieces[1], int(params["b"]["rate"]))
    k = switch_index(a.words)
    i, j = int(a.words[k].start * SAMPLE_RATE), int(b.words[k].start * SAMPLE_RATE)
    negative = splice(a.wav, i, b.wav, j, int(FADE * SAMPLE_RATE))
    return _peak_safe(a.wav, negative), {"switch_word": k, "switch_time": a.words[k].start, "words": words_json(a.words)}


def _render_room(synth: Synthesizer, params: dict[str, Any], pieces: list[list[Piece]]) -> tuple[list[np.ndarray], dict[str, Any]]:
    dry, _ = synth.join(pieces[0], int(params["delivery"]["rate"]))
    first, second = (reverberate(dry.wav, impulse_response(r["seed"], r["rt60"])) for r in params["rooms"])
    k = switch_index(dry.words)
    i = int(dry.words[k].start * SAMPLE_RATE)
    negative = splice(first, i, second, i, int(FADE * SAMPLE_RATE))
    return _peak_safe(first, negative), {"switch_word": k, "switch_time": dry.words[k].start, "words": words_json(dry.words)}


def _render_noise(synth: Synthesizer, params: dict[str, Any], pieces: list[list[Piece]]) -> tuple[list[np.ndarray], dict[str, Any]]:
    dry, _ = synth.join(pieces[0], int(params["delivery"]["rate"]))
    n = len(dry.wav)
    first, second = (make_noise(x["family"], x["seed"], n) for x in params["noises"])
    speech = dry.wav[int(dry.words[0].start * SAMPLE_RATE) : int(dry.words[-1].end * SAMPLE_RATE)]
    gain = noise_gain(speech, float(params["snr_db"]))
    k = switch_index(dry.words)
    i = int(dry.words[k].start * SAMPLE_RATE)
    switched = splice(first, i, second, i, int(FADE * SAMPLE_RATE))
    pos, neg = dry.wav + gain * first, dry.wav + gain * switched
    return _peak_safe(pos, neg), {"switch_word": k, "switch_time": dry.words[k].start, "words": words_json(dry.words)}


def _one(key: str) -> Callable[[dict[str, Any]], list]:
    return lambda p: [request(p[key], [Segment(p["text"])])]


RENDERERS = {
    "salmon_switch": Renderer(lambda p: [request(p["a"], [Segment(p["text"])]), request(p["b"], [Segment(p["text"])])], _render_switch),
    "salmon_room": Renderer(_one("delivery"), _render_room),
    "salmon_noise": Renderer(_one("delivery"), _render_noise),
}


def write_items(root: Path, jobs: list[Job], metas: dict[str, dict[str, Any]]) -> None:
    """``salmon/<part>/items.jsonl``: the settings of each pair (ours, ignored by loaders)."""
    rows: dict[str, list[str]] = {part: [] for part in PARTS}
    for job in jobs:
        if job.id in metas:
            part, k = job.id.split("/")
            meta = {key: metas[job.id][key] for key in ("switch_word", "switch_time")}
            rows[part].append(json.dumps({"k": int(k), **job.params, **meta}, ensure_ascii=False))
    for part, lines in rows.items():
        atomic_write_text(root / "salmon" / part / "items.jsonl", "".join(line + "\n" for line in lines))

"""The espeak-ng voices of the embedded corpus, and speaking styles.

Voices are split once and for all: the *training pool* may speak the training corpus
(``corpus synth --voices``); the *held-out* voices never do, and speak the sWUGGY items
(so no word-voice pair of the lexical benchmark can occur in training) and widen the
speaker sets of SALMon and the speaker-identification probe.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    name: str  # espeak-ng name: language + variant
    gender: str  # "male" | "female"
    held_out: bool = False


VOICES: dict[str, Voice] = {v.name: v for v in [
    Voice("en-us+m3", "male"), Voice("en-us+f2", "female"),
    Voice("en+m1", "male"), Voice("en+f3", "female"),
    Voice("en-us+m5", "male"), Voice("en-us+f4", "female"),
    Voice("en-gb-scotland+m2", "male", held_out=True), Voice("en-029+f1", "female", held_out=True),
    Voice("en-gb-x-rp+m7", "male", held_out=True), Voice("en-us-nyc+f5", "female", held_out=True),
]}
DEFAULT_TRAINING_VOICES = ["en-us+m3", "en-us+f2"]
TRAINING_POOL = [v.name for v in VOICES.values() if not v.held_out]
HELD_OUT = [v.name for v in VOICES.values() if v.held_out]

BASE_RATE = 170  # espeak words per minute of a neutral delivery at speaking-rate factor 1.0
RATE_FACTORS = (0.5, 2.5)  # valid speaking-rate factors (`corpus synth --rate`, `corpus benchmarks --rate`)
MIN_RATE, MAX_RATE = 80, 450  # espeak-ng's words per minute

# speaking style -> (rate factor, pitch offset, pitch range): espeak's prosody knobs
STYLES: dict[str, tuple[float, int, int]] = {
    "neutral": (1.0, 0, 50),
    "cheerful": (1.15, 18, 90),
    "sad": (0.78, -14, 12),
    "urgent": (1.35, 6, 70),
}


@dataclass(frozen=True)
class Delivery:
    """How one utterance is spoken: voice, pitch (0-99), rate (words/minute), pitch range."""

    voice: str
    pitch: int
    rate: int
    pitch_range: int = 50

    @property
    def gender(self) -> str:
        return VOICES[self.voice].gender if self.voice in VOICES else "unknown"


def check_training_voices(names: list[str]) -> list[str]:
    """Validate ``corpus synth --voices``: known, not held out, no duplicates."""
    if not names:
        raise ValueError(f"no training voices given; pass --voices from {TRAINING_POOL}")
    for name in names:
        if name in HELD_OUT:
            raise ValueError(f"voice {name!r} is held out for the benchmarks (sWUGGY, SALMon, SID); choose from {TRAINING_POOL}")
        if name not in VOICES:
            raise ValueError(f"unknown voice {name!r}; the corpus voices are {TRAINING_POOL}")
    if len(set(names)) != len(names):
        raise ValueError(f"--voices lists a voice twice: {names}")
    return list(names)


def check_rate_factor(rate: float) -> float:
    """Validate a speaking-rate factor (``--rate``): within ``RATE_FACTORS``."""
    low, high = RATE_FACTORS
    if not low <= rate <= high:
        raise ValueError(f"--rate {rate}: the speaking-rate factor must be within {low}..{high} "
                         f"(1.0 speaks at {BASE_RATE} words per minute); pass a factor in that range")
    return float(rate)


def base_wpm(rate: float = 1.0) -> int:
    """Words per minute of a neutral delivery at speaking-rate factor ``rate`` (1.0 -> ``BASE_RATE``)."""
    return int(round(BASE_RATE * check_rate_factor(rate)))


def jittered(voice: str, rng: random.Random, style: str = "neutral", base_rate: int = BASE_RATE) -> Delivery:
    """A delivery of ``voice`` with seeded pitch/rate variation around a style.

    ``base_rate`` (see ``base_wpm()``) only shifts the rate: the rng draws are the same
    whatever it is, so one seed gives the same pitch and rate jitter at every speaking rate.
    """
    factor, offset, pitch_range = STYLES[style]
    pitch = min(99, max(0, 50 + offset + rng.randint(-8, 8)))
    rate = int(round(base_rate * factor)) + rng.randint(-12, 12)
    return Delivery(voice, pitch, max(MIN_RATE, min(MAX_RATE, rate)), pitch_range)


def other_voice(voice: str, rng: random.Random, same_gender: bool, pool: list[str] | None = None) -> str:
    """Another voice of the same (or the opposite) gender, drawn from ``pool`` (default: all)."""
    gender = VOICES[voice].gender
    names = [n for n in (pool or list(VOICES)) if n != voice and (VOICES[n].gender == gender) == same_gender]
    if not names:
        raise ValueError(f"no voice other than {voice!r} with {'the same' if same_gender else 'another'} gender in {pool}")
    return rng.choice(sorted(names))

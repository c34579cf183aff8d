"""ZeroSpeech 2021 sLM21 folders: ``sLM21/lexical/dev`` (sWUGGY) and ``sLM21/syntactic/dev`` (sBLIMP).

Lexical: word / non-word pairs (``lexicon.py``) spoken from phonemes by every held-out
voice; ``gold.csv`` columns ``id,filename,voice,frequency,word,phones,length,correct``
with ``frequency`` the word's count in the training corpus (0 = out of vocabulary).
Syntactic: a held-out sentence and a minimally changed ungrammatical copy, spoken by
the story voices; ``gold.csv`` columns ``filename,type,subtype,transcription,correct,id,voice``.
File names are random-looking ids, as in the official release.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tinywave.corpus.espeak import Synthesizer
from tinywave.corpus.lexicon import OOV_WORDS, base, inventory, nonword
from tinywave.corpus.split import heldout_pool
from tinywave.corpus.stories import COLORS, FAMILY, vocabulary
from tinywave.corpus.synth import Job
from tinywave.corpus.voices import HELD_OUT, base_wpm, jittered
from tinywave.files import atomic_write_text

LEXICAL_DIR, SYNTACTIC_DIR = "sLM21/lexical/dev", "sLM21/syntactic/dev"
LEXICAL_COLUMNS = ("id", "filename", "voice", "frequency", "word", "phones", "length", "correct")
SYNTACTIC_COLUMNS = ("filename", "type", "subtype", "transcription", "correct", "id", "voice")
PHONEME_VOICE = "en-us"  # the language whose mnemonics spell every item
CHUNK = 32


@dataclasses.dataclass(frozen=True)
class LexicalPair:
    id: int
    word: str
    word_phones: tuple[str, ...]  # with stress marks
    nonword_phones: tuple[str, ...]
    frequency: int


def _file_id(*key: object) -> str:
    return hashlib.sha256("/".join(map(str, key)).encode()).hexdigest()[:12]


def lexical_pairs(synth: Synthesizer, seed: int, items: int, counts: Counter[str]) -> list[LexicalPair]:
    """``items`` pairs over the story vocabulary and OOV words, in a seeded order."""
    vocab = vocabulary()
    words = sorted(vocab) + [w for w in OOV_WORDS if w not in vocab]
    lexicon = synth.phonemize(words, PHONEME_VOICE)
    symbols = inventory(lexicon)
    taken = {tuple(base(p) for p in ph) for ph in lexicon}
    order = [(w, ph) for w, ph in zip(words, lexicon) if len(ph) >= 3]
    random.Random(f"tinywave-wuggy-order/{seed}").shuffle(order)
    pairs: list[LexicalPair] = []
    for i in range(40 * (items + len(order))):
        if len(pairs) == items:
            return pairs
        word, phones = order[i % len(order)]
        made = nonword(phones, random.Random(f"tinywave-wuggy/{seed}/{word}/{i}"), taken, symbols)
        if made is not None:
            taken.add(tuple(base(p) for p in made))
            pairs.append(LexicalPair(len(pairs), word, tuple(phones), tuple(made), counts.get(word, 0)))
    raise ValueError(f"could make only {len(pairs)} word/non-word pairs; ask for fewer --items")


def plan_lexical(pairs: list[LexicalPair], seed: int, voices: list[str] = HELD_OUT) -> tuple[list[Job], list[dict]]:
    """Two phoneme jobs (word, non-word) per pair and voice, sharing one delivery; the gold rows."""
    jobs, rows = [], []
    for pair in pairs:
        for voice in voices:
            delivery = dataclasses.asdict(jittered(voice, random.Random(f"tinywave-wuggy-voice/{seed}/{pair.id}/{voice}")))
            for correct, phones in ((1, pair.word_phones), (0, pair.nonword_phones)):
                name = _file_id(seed, "lexical", pair.id, voice, correct)
                jobs.append(Job(name, "phonemes", {"phonemes": "".join(phones), "delivery": delivery}, (f"{LEXICAL_DIR}/{name}.wav",)))
                spelled = pair.word if correct else "".join(base(p) for p in phones)
                rows.append({"id": pair.id, "filename": name, "voice": voice, "frequency": pair.frequency, "word": spelled,
                             "phones": " ".join(base(p) for p in phones), "length": len(phones), "correct": correct})
    return jobs, rows


def _first(words: list[str], old: set[str], new: Callable[[str], str], after: set[str] | None = None) -> list[str] | None:
    for i, w in enumerate(words):
        if w in old and (after is None or (i + 1 < len(words) and words[i + 1] in after)):
            return words[:i] + [new(w)] + words[i + 1 :]
    return None


def _swap_adjective(words: list[str]) -> list[str] | None:
    adjectives = set(COLORS) | {"big", "tall", "old", "little", "hungry", "burnt", "warm"}
    for i in range(len(words) - 1):
        if words[i] in adjectives and words[i + 1] not in adjectives | {"and", "it", "was", "to"}:
            return words[:i] + [words[i + 1], words[i]] + words[i + 2 :]
    return None


SWAP_CASE = {"she": "her", "he": "him", "her": "she", "his": "he"}
# type -> subtype -> words -> ungrammatical words (or None when the sentence has no such spot)
TRANSFORMS: dict[str, dict[str, Callable[[list[str]], list[str] | None]]] = {
    "subject_verb_agreement": {"was_were": lambda w: _first(w, {"was"}, lambda _: "were")},
    "anaphor_agreement": {"reflexive_gender": lambda w: _first(w, {"herself", "himself"}, lambda x: "himself" if x == "herself" else "herself")},
    "irregular_forms": {
        "did_not_past": lambda w: _first(w, {"find"}, lambda _: "found"),
        "could_past": lambda w: _first(w, {"stop"}, lambda _: "stopped"),
    },
    "pronoun_case": {
        "subject": lambda w: [SWAP_CASE[w[0]]] + w[1:] if w[0] in ("she", "he") else None,
        "possessive": lambda w: _first(w, {"her", "his"}, SWAP_CASE.get, after=set(FAMILY)),
    },
    "word_order": {"adjective_noun": _swap_adjective},
}


def syntactic_pairs(seed: int, items: int) -> list[tuple[str, str, str, str]]:
    """(type, subtype, good sentence, bad sentence), types taken in turn, from held-out sentences."""
    sentences = sorted({s for story in heldout_pool(seed) for s in story.sentences})
    random.Random(f"tinywave-blimp/{seed}").shuffle(sentences)
    found: dict[str, list[tuple[str, str, str, str]]] = {t: [] for t in TRANSFORMS}
    for sentence in sentences:
        for kind, subtypes in TRANSFORMS.items():
            for subtype, change in subtypes.items():
                bad = change(sentence.split())
                if bad is not None:
                    found[kind].append((kind, subtype, sentence, " ".join(bad)))
    pairs, turn = [], 0
    while len(pairs) < items:
        if not any(found.values()):
            raise ValueError(f"only {len(pairs)} grammatical/ungrammatical pairs available; ask for fewer --items")
        kind = sorted(found)[turn % len(found)]
        if found[kind]:
            pairs.append(found[kind].pop(0))
        turn += 1
    return pairs


def plan_syntactic(pairs: list[tuple[str, str, str, str]], seed: int, voices: list[str],
                   rate: float = 1.0) -> tuple[list[Job], list[dict]]:
    """Two utterance jobs (good, bad) per pair and voice, sharing one delivery at rate factor ``rate``; the gold rows."""
    wpm = base_wpm(rate)
    jobs, rows = [], []
    for pid, (kind, subtype, good, bad) in enumerate(pairs):
        for voice in voices:
            rng = random.Random(f"tinywave-blimp-voice/{seed}/{pid}/{voice}")
            delivery = dataclasses.asdict(jittered(voice, rng, base_rate=wpm))
            for correct, text in ((1, good), (0, bad)):
                name = _file_id(seed, "syntactic", pid, voice, correct)
                jobs.append(Job(name, "utterance", {"text": text, "delivery": delivery}, (f"{SYNTACTIC_DIR}/{name}.wav",)))
                rows.append({"filename": name, "type": kind, "subtype": subtype, "transcription": text,
                             "correct": correct, "id": pid, "voice": voice})
    return jobs, rows


def write_gold(path: Path, columns: tuple[str, ...], rows: list[dict], done: set[str]) -> None:
    """A gold.csv with the rows whose file was rendered (a pair keeps both rows or none)."""
    complete = Counter((r["id"], r["voice"]) for r in rows if r["filename"] in done)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(r for r in rows if complete[(r["id"], r["voice"])] == 2)
    atomic_write_text(path, buf.getvalue())

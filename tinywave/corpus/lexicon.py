"""Words and phonotactically plausible non-words for the lexical benchmark (sWUGGY).

Words are spelled in espeak's phoneme mnemonics (en-us), e.g. ``b 'O: l``. A non-word
changes one phoneme (two in words of five or more, where possible) into another of the same class --
a vowel for a vowel of the same length, a singleton consonant (between vowels or at a
word edge) for one of the same manner -- keeping stress marks, and must not be the
phoneme string of any real word of the lexicon. Both members of a pair are spoken
from phonemes, so they differ only by the changed phonemes.
"""

from __future__ import annotations

import random

# common English words the story generator never uses: the out-of-vocabulary band
OOV_WORDS = ("pencil", "ladder", "button", "rocket", "turtle", "basket", "mirror", "wagon", "puzzle", "helmet",
             "jacket", "pillow", "ticket", "candle", "hammer", "spider", "lemon", "dragon", "castle", "feather",
             "tunnel", "violin", "zebra", "penguin", "robot", "bucket", "pocket", "planet", "carpet", "monkey",
             "parrot", "tiger", "island", "pirate", "wizard", "balloon", "doctor", "blanket", "window", "garage",
             "napkin", "marble", "kettle", "trumpet", "cactus")
CLASSES = (
    ("a", "E", "I", "0", "V", "U"),  # short vowels
    ("i:", "u:", "3:", "A:", "O:"),  # long vowels
    ("eI", "aI", "OI", "aU", "oU"),  # diphthongs
    ("p", "b", "t", "d", "k", "g"),  # stops
    ("f", "v", "T", "s", "z", "S"),  # fricatives
    ("m", "n"),  # nasals
    ("l", "r", "w", "j"),  # approximants
    ("tS", "dZ"),  # affricates
)
_CLASS_OF = {sym: cls for cls in CLASSES for sym in cls}
_VOWELS = {sym for cls in CLASSES[:3] for sym in cls}
STRESS = "',"


def base(phone: str) -> str:
    """A phoneme without its stress mark."""
    return phone.lstrip(STRESS)


def is_vowel(phone: str) -> bool:
    p = base(phone)
    return p in _VOWELS or any(c in "aeiouAEIOUV03@" for c in p)


def tokenize(mnemonics: str, inventory: set[str]) -> list[str]:
    """Split a mnemonic string greedily into the longest known symbols (stress marks kept)."""
    out, i = [], 0
    longest = max(map(len, inventory))
    while i < len(mnemonics):
        stress = ""
        while i < len(mnemonics) and mnemonics[i] in STRESS:
            stress, i = stress + mnemonics[i], i + 1
        for n in range(min(longest, len(mnemonics) - i), 0, -1):
            if mnemonics[i : i + n] in inventory:
                out.append(stress + mnemonics[i : i + n])
                i += n
                break
        else:
            raise ValueError(f"cannot split {mnemonics!r} at {mnemonics[i:]!r} into known phonemes")
    return out


def _substitutable(phones: list[str], i: int) -> bool:
    p = base(phones[i])
    if p not in _CLASS_OF:
        return False
    if p in _VOWELS:
        return True
    neighbours = [phones[j] for j in (i - 1, i + 1) if 0 <= j < len(phones)]
    return all(is_vowel(n) for n in neighbours)  # a singleton consonant


def nonword(phones: list[str], rng: random.Random, taken: set[tuple[str, ...]], inventory: set[str],
            tries: int = 60) -> list[str] | None:
    """A non-word made from ``phones`` (with stress marks), or None if none is found.

    ``taken`` holds stress-free phone tuples that are words (or non-words already used);
    the result must re-tokenize to itself when its mnemonics are concatenated.
    """
    spots = [i for i in range(len(phones)) if _substitutable(phones, i)]
    n_sub = min(len(spots), 1 if len(phones) <= 4 else 2)
    if n_sub == 0:
        return None
    for _ in range(tries):
        out = list(phones)
        for i in rng.sample(spots, n_sub):
            p = base(phones[i])
            stress = phones[i][: len(phones[i]) - len(p)]
            out[i] = stress + rng.choice([q for q in _CLASS_OF[p] if q != p])
        key = tuple(base(p) for p in out)
        if key in taken:
            continue
        try:
            if tokenize("".join(out), inventory) != out:
                continue
        except ValueError:
            continue
        return out
    return None


def inventory(lexicon: list[list[str]]) -> set[str]:
    """Every phoneme symbol (without stress) of a lexicon plus the substitution classes."""
    return {base(p) for phones in lexicon for p in phones} | set(_CLASS_OF)

"""Praat TextGrid text files (long and short "ooTextFile" forms) -> word timings.

Both forms hold the same sequence of values; the long form only adds labels
(``xmin =``, ``intervals [3]:``). Like Praat's own reader this tokenizer keeps quoted
strings (``""`` is an escaped quote), numbers and ``<flags>``, and skips labels,
``[n]`` indices and ``!`` comments. Montreal Forced Aligner writes one IntervalTier
named ``words`` (or ``<speaker> - words``); its empty intervals are silences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tinywave.data.manifest import Word

SILENCES = frozenset({"", "sil", "sp", "<sil>", "<eps>", "<sp>"})  # interval labels that are not words
_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(<[A-Za-z]+>)|(\[[^\]\n]*\])|(![^\n]*)|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)')


class TextGridError(ValueError):
    def __init__(self, path: Path, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path, self.detail = path, detail


@dataclass(frozen=True)
class Tier:
    name: str
    kind: str  # "IntervalTier" | "TextTier"
    items: list[tuple[float, float, str]]  # (start s, end s, label); points have start == end


def tokens(text: str) -> list[str | float]:
    """Quoted strings (unescaped), ``<flags>`` (as ``"<exists>"``) and numbers, in file order."""
    out: list[str | float] = []
    for m in _TOKEN.finditer(text):
        string, flag, _, _, number = m.groups()
        if string is not None:
            out.append(_Str(string.replace('""', '"')))
        elif flag is not None:
            out.append(_Str(flag))
        elif number is not None:
            out.append(float(number))
    return out


class _Str(str):
    """A string token (so a quoted "3" is never taken for the number 3)."""


class _Reader:
    def __init__(self, toks: list[str | float], path: Path):
        self.toks, self.i, self.path = toks, 0, path

    def _next(self, what: str) -> str | float:
        if self.i >= len(self.toks):
            raise TextGridError(self.path, f"ends early: expected {what}; the file is cut short, export it again")
        tok, self.i = self.toks[self.i], self.i + 1
        return tok

    def string(self, what: str) -> str:
        tok = self._next(what)
        if not isinstance(tok, _Str):
            raise TextGridError(self.path, f"expected {what} (a quoted string), found {tok!r} at value {self.i}")
        return str(tok)

    def number(self, what: str) -> float:
        tok = self._next(what)
        if isinstance(tok, _Str):
            raise TextGridError(self.path, f"expected {what} (a number), found {str(tok)[:40]!r} at value {self.i}")
        return tok

    def count(self, what: str) -> int:
        n = self.number(what)
        if n < 0 or not n.is_integer():
            raise TextGridError(self.path, f"expected {what} (a count), found {n}")
        return int(n)


def decode(data: bytes, path: Path) -> str:
    """TextGrid bytes -> text: UTF-16 with a byte-order mark (Praat's choice for non-ASCII), else UTF-8."""
    try:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextGridError(path, f"is neither UTF-8 nor UTF-16 text ({exc.reason}); save it from Praat as a text file") from None


def parse_textgrid(text: str, path: Path) -> list[Tier]:
    """All tiers of a TextGrid in long or short text form; TextGridError names what is wrong."""
    r = _Reader(tokens(text), path)
    if r.string("File type") != "ooTextFile":
        raise TextGridError(path, 'is not a Praat text file (File type = "ooTextFile"); binary TextGrids: save as text in Praat')
    kind = r.string("Object class")
    if kind != "TextGrid":
        raise TextGridError(path, f"holds a {kind!r}, not a TextGrid")
    r.number("xmin")
    r.number("xmax")
    if r.string("<exists>") != "<exists>":
        return []
    tiers = []
    for _ in range(r.count("the number of tiers")):
        cls, name = r.string("a tier class"), r.string("a tier name")
        r.number("tier xmin")
        r.number("tier xmax")
        n = r.count("the number of intervals")
        if cls == "IntervalTier":
            items = [(r.number("interval xmin"), r.number("interval xmax"), r.string("interval text")) for _ in range(n)]
        elif cls == "TextTier":
            items = [(t, t, r.string("point mark")) for t in (r.number("point time") for _ in range(n))]
        else:
            raise TextGridError(path, f"tier {name!r} has class {cls!r}; expected IntervalTier or TextTier")
        tiers.append(Tier(name, cls, items))
    return tiers


def word_tiers(tiers: list[Tier]) -> list[Tier]:
    """MFA's word tiers: ``words``, or ``<speaker> - words`` in multi-speaker files."""
    return [t for t in tiers if t.kind == "IntervalTier" and (t.name.lower() == "words" or t.name.lower().endswith(" - words"))]


def read_textgrid_words(path: Path) -> list[Word]:
    """The words of a TextGrid file's words tier(s), silences skipped, by start time."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TextGridError(path, f"cannot be read ({exc.strerror})") from None
    tiers = parse_textgrid(decode(data, path), path)
    chosen = word_tiers(tiers)
    if not chosen:
        raise TextGridError(path, f"has no 'words' interval tier (tiers: {[t.name for t in tiers]}); "
                                  "align with Montreal Forced Aligner, which writes one")
    words = [Word(label.strip(), start, end) for t in chosen for start, end, label in t.items if label.strip().lower() not in SILENCES]
    return sorted(words, key=lambda w: w.start)

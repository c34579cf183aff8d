"""Transcripts in the manifest's text form: lower-case words separated by single spaces.

docs/FORMATS.md: "Text is lower-case without punctuation"; like the corpus text
(tinywave/corpus/stories.py) words keep inner apostrophes (``don't``).
"""

from __future__ import annotations

from pathlib import Path


def normalize_text(text: str) -> str:
    """Lower-case, punctuation to spaces (inner apostrophes kept), single spaces.

    ``"Hello, World -- DON'T 'stop'!"`` -> ``"hello world don't stop"``.
    """
    chars = [c if c.isalnum() or c == "'" else " " for c in text.lower().replace("\u2019", "'")]
    words = ("".join(chars)).split()
    return " ".join(w.strip("'") for w in words if w.strip("'"))


def letters_to_words(line: str) -> str:
    """A fairseq ``.ltr`` line (``"H E L L O | W O R L D |"``) -> ``"HELLO WORLD"``."""
    return " ".join(w for w in "".join(line.split()).split("|") if w)


def read_transcript_lines(path: Path) -> list[str]:
    """One transcript per line of a fairseq ``.wrd`` (words) or ``.ltr`` (letters, ``|`` between words) file."""
    if not path.is_file():
        raise FileNotFoundError(f"transcript file {path} not found; --text takes the .wrd or .ltr file parallel to the .tsv")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); convert it with iconv -t utf-8") from None
    if path.suffix == ".ltr":
        return [letters_to_words(line) for line in lines]
    return lines

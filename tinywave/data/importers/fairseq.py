"""fairseq wav2vec/HuBERT manifests (``train.tsv``) -> manifest items.

    /data/LibriSpeech                                  <- first line: the audio root
    dev-clean/84/121123/84-121123-0000.flac<TAB>33440  <- path under the root, samples

A relative root is taken relative to the .tsv's folder. The optional transcript
(``--text train.wrd`` or ``train.ltr``) has one line per audio line, in the same order.
Ids are the audio file names without extension (what MFA and CTM files call them).
"""

from __future__ import annotations

from pathlib import Path

from tinywave.data.importers.options import ImportOptions
from tinywave.data.importers.transcript import normalize_text, read_transcript_lines
from tinywave.data.manifest import BadItem, ManifestItem


def read_tsv_lines(tsv: Path) -> tuple[Path, list[str]]:
    """(audio root, the audio lines) of a fairseq .tsv; ValueError when it is not one."""
    if not tsv.is_file():
        what = "is a folder" if tsv.is_dir() else "not found"
        raise FileNotFoundError(f"fairseq manifest {tsv} {what}; --src takes the .tsv file (e.g. manifests/train.tsv)")
    try:
        lines = tsv.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{tsv} is not UTF-8 text ({exc.reason} at byte {exc.start}); is --src really the .tsv?") from None
    if not lines or not lines[0].strip() or "\t" in lines[0]:
        raise ValueError(f"{tsv}: the first line must be the audio root folder, then one 'path<TAB>samples' line per file "
                         "(fairseq's examples/wav2vec/wav2vec_manifest.py layout)")
    root = Path(lines[0].strip())
    return (root if root.is_absolute() else tsv.parent / root), lines[1:]


def parse_tsv_line(line: str) -> tuple[str, int]:
    """``"a/b.flac\\t1234"`` -> ("a/b.flac", 1234); ValueError says what is wrong."""
    parts = line.split("\t")
    if len(parts) != 2 or not parts[0]:
        raise ValueError(f"expected 'path<TAB>samples', got {line[:80]!r}")
    try:
        samples = int(parts[1])
    except ValueError:
        raise ValueError(f"the sample count {parts[1][:40]!r} is not an integer") from None
    if samples < 0:
        raise ValueError(f"the sample count {samples} is negative")
    return parts[0], samples


def read_fairseq_tsv(opts: ImportOptions) -> list[ManifestItem | BadItem]:
    """Every audio line of the .tsv, with its transcript line when ``opts.text`` is given."""
    root, lines = read_tsv_lines(opts.src)
    texts: list[str | None] = [None] * len(lines)
    if opts.text is not None:
        texts = list(read_transcript_lines(opts.text))
        if len(texts) != len(lines):
            raise ValueError(f"{opts.text} has {len(texts)} lines but {opts.src} lists {len(lines)} audio files; "
                             "they must be parallel (one transcript line per audio line): regenerate them together")
    out: list[ManifestItem | BadItem] = []
    for n, (line, text) in enumerate(zip(lines, texts), start=2):
        try:
            rel, _ = parse_tsv_line(line)
        except ValueError as exc:
            out.append(BadItem(None, f"{opts.src}:{n}", "bad_line", f"{exc}; fix or delete the line (and its transcript line)"))
            continue
        out.append(ManifestItem(Path(rel).stem, root / rel, None if text is None else normalize_text(text)))
    return out

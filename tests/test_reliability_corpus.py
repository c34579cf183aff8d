"""A bad corpus: every good item tokenized exactly once, every bad one reported with its reason.

The manifest mixes good items (16 kHz, 8 kHz, 22.05 kHz and 44.1 kHz WAV, FLAC, stereo)
with lines that are bad in every way we could think of. Every manifest line must end up
in exactly one place (the token corpus or the errors file), and a rerun must change
nothing. Figures are printed (run with -s to see them).
"""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from support.audio import espeak_corpus
from support.speech import random_tokenizer
from tinywave.audio.io import load_audio
from tinywave.cli import main
from tinywave.files import load_jsonl, read_jsonl

pytestmark = pytest.mark.slow


def resampled(src: Path, dst: Path, rate: int, stereo: bool = False, fmt: str = "WAV") -> None:
    wav, _ = load_audio(src, target_rate=rate)
    sf.write(dst, np.stack([wav, 0.5 * wav], axis=1) if stereo else wav, rate, format=fmt)


def build(folder: Path) -> tuple[Path, dict[int, str], dict[int, str]]:
    """(manifest, {line: good id}, {line: expected reason}) for a corpus with many kinds of bad items."""
    base = load_jsonl(espeak_corpus(folder / "espeak", n=4))
    src = [folder / "espeak" / it["audio"] for it in base]
    a = folder / "audio"
    a.mkdir()
    good: list[tuple[dict, str]] = []
    for i, it in enumerate(base):  # the same speech at every rate and layout: all good
        variants = {"22k": None, "16k": (16000, False, "WAV"), "8k": (8000, False, "WAV"), "44k": (44100, False, "WAV"),
                    "stereo": (16000, True, "WAV"), "flac": (16000, False, "FLAC")}
        for name, spec in variants.items():
            path = src[i] if spec is None else a / f"u{i}_{name}.{'flac' if name == 'flac' else 'wav'}"
            if spec is not None:
                resampled(src[i], path, *spec)
            good.append(({**it, "id": f"u{i}_{name}", "audio": str(path)}, "ok"))
    good.append(({"id": 7, "audio": str(src[0]), "text": "ünïcödé text is fine"}, "ok"))  # integer id, no words
    # bad audio files
    full = (a / "u0_16k.wav").read_bytes()
    (a / "truncated.wav").write_bytes(full[: len(full) // 3])
    flac = (a / "u0_flac.flac").read_bytes()
    (a / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (a / "zero.wav").write_bytes(b"")
    sf.write(a / "header_only.wav", np.zeros(0, np.float32), 16000)
    (a / "text.wav").write_text("RIFF? no: this is a text file\n" * 40)
    (a / "noise.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    (a / "folder.wav").mkdir()
    sf.write(a / "nan.wav", np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    sf.write(a / "blip.wav", np.zeros(480, np.float32), 16000)  # 30 ms
    seconds = sf.info(str(src[1])).duration
    bad_items = [
        ({"id": "missing", "audio": "audio/nowhere.wav"}, "missing"),
        ({"id": "truncated", "audio": "audio/truncated.wav"}, "truncated"),
        ({"id": "truncated_flac", "audio": "audio/truncated.flac"}, "unreadable"),
        ({"id": "zero_length", "audio": "audio/zero.wav"}, "empty"),
        ({"id": "header_only", "audio": "audio/header_only.wav"}, "empty"),
        ({"id": "text_file", "audio": "audio/text.wav"}, "unreadable"),
        ({"id": "random_bytes", "audio": "audio/noise.wav"}, "unreadable"),
        ({"id": "a_folder", "audio": "audio/folder.wav"}, "not_audio"),
        ({"id": "nan_samples", "audio": "audio/nan.wav"}, "corrupt"),
        ({"id": "too_short", "audio": "audio/blip.wav"}, "too_short"),
        ({"id": "words_outside", "audio": str(src[1]),
          "words": [{"word": "a", "start": 0.1, "end": 0.5}, {"word": "b", "start": seconds + 1, "end": seconds + 2}]}, "words_outside_audio"),
        ({"id": "words_backwards", "audio": str(src[1]), "words": [{"word": "a", "start": 0.5, "end": 0.9}, {"word": "b", "start": 0.1, "end": 0.2}]}, "bad_entry"),
        ({"id": "negative_time", "audio": str(src[1]), "words": [{"word": "a", "start": -1, "end": 0.2}]}, "bad_entry"),
        ({"id": "nan_time", "audio": str(src[1]), "words": [{"word": "a", "start": "NaN", "end": 0.2}]}, "bad_entry"),
        ({"id": "text_not_string", "audio": str(src[1]), "text": ["a", "list"]}, "bad_entry"),
        ({"audio": str(src[1])}, "bad_entry"),  # no id
        ({"id": "no_audio"}, "bad_entry"),
        ({"id": "", "audio": str(src[1])}, "bad_entry"),
        ({"id": "u1_22k", "audio": str(src[2])}, "duplicate_id"),  # a second item with an id already used
    ]
    raw_bad = [
        (b'{"id": "latin1", "audio": "x.wav", "text": "caf\xe9"}', "bad_line"),  # not UTF-8
        (b'{"id": "torn", "audio": "x.w', "bad_line"),
        (b'["an", "array"]', "bad_line"),
        (b"null", "bad_line"),
        (b"\xef\xbb\xbf{\"id\": \"bom\", \"audio\": \"x.wav\"}", "bad_line"),  # a UTF-8 byte-order mark is not JSON
    ]
    lines: list[tuple[bytes, str, str | None]] = [(json.dumps(o).encode(), r, str(o["id"])) for o, r in good]
    lines += [(json.dumps(o).encode(), r, None) for o, r in bad_items] + [(b, r, None) for b, r in raw_bad]
    order = np.random.default_rng(1).permutation(len(lines))  # bad lines scattered among good ones
    lines = [lines[i] for i in order]
    manifest = folder / "manifest.jsonl"
    manifest.write_bytes(b"\n".join(b for b, _, _ in lines) + b"\n\n")  # a blank line at the end is not an item
    good_lines = {n: uid for n, (_, r, uid) in enumerate(lines, 1) if r == "ok"}
    bad_lines = {n: r for n, (_, r, _) in enumerate(lines, 1) if r != "ok"}
    return manifest, good_lines, bad_lines


def tokenize(manifest: Path, tok: Path, out: Path) -> int:
    return main(["tokenize", "--manifest", str(manifest), "--tokenizer", str(tok), "--out", str(out), "workers=1"])


def line_of(entry: dict, manifest: Path, ids_to_line: dict[str, int]) -> int:
    """The manifest line an error entry is about (``where`` is the line for manifest errors, else the audio path)."""
    where = entry["where"]
    if where.startswith(f"{manifest}:"):
        return int(where.rsplit(":", 1)[1])
    return ids_to_line[entry["id"]]


def test_bad_corpus_every_item_accounted_for_once(tmp_path, caplog):
    manifest, good_lines, bad_lines = build(tmp_path)
    tok = random_tokenizer(rate=25.0).save(tmp_path / "tok")
    out = tmp_path / "tokens.jsonl"
    n_lines = len(good_lines) + len(bad_lines)
    assert len(bad_lines) / n_lines >= 0.10
    with caplog.at_level(logging.INFO):
        assert tokenize(manifest, tok, out) == 1  # some items were bad
    records, errors = load_jsonl(out), load_jsonl(tmp_path / "tokens.errors.jsonl")
    # every good item exactly once, in manifest order
    assert [r["id"] for r in records] == [good_lines[n] for n in sorted(good_lines)]
    # every bad line exactly once, with its reason and a detail that says what is wrong
    ids_to_line = {}
    for n, obj, _ in read_jsonl(manifest):
        if obj is not None and isinstance(obj.get("id"), (str, int)):
            ids_to_line.setdefault(str(obj["id"]), n)
    reported = {}
    for e in errors:
        n = line_of(e, manifest, ids_to_line)
        assert n not in reported, f"line {n} reported twice"
        reported[n] = e["reason"]
        assert e["detail"]
    assert reported == bad_lines
    assert set(reported).isdisjoint(good_lines) and len(reported) + len(records) == n_lines  # nothing lost
    # resampled and stereo copies are the same speech: same duration, about the same frames
    by_id = {r["id"]: r for r in records}
    for i in range(4):
        secs = {k: by_id[f"u{i}_{k}"]["seconds"] for k in ("22k", "16k", "8k", "44k", "stereo", "flac")}
        assert max(secs.values()) - min(secs.values()) < 1e-3, secs
        frames = {k: by_id[f"u{i}_{k}"]["frames"]["hubert"] for k in secs}
        assert max(frames.values()) - min(frames.values()) <= 1, frames
    assert "averaging them to mono" in caplog.text and "4 files had more than one channel" in caplog.text
    # a rerun processes nothing twice and changes no byte
    before = (out.read_bytes(), (tmp_path / "tokens.errors.jsonl").read_bytes())
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert tokenize(manifest, tok, out) == 1
    assert (out.read_bytes(), (tmp_path / "tokens.errors.jsonl").read_bytes()) == before
    assert f"tokenized 0, skipped {len(bad_lines)} bad" in caplog.text and f"{len(records)} already done" in caplog.text
    kinds = sorted(set(bad_lines.values()))
    print(f"\n[reliability] bad corpus: {n_lines} manifest lines, {len(records)} good tokenized once "
          f"(8/16/22.05/44.1 kHz, FLAC, stereo), {len(bad_lines)} bad ({len(bad_lines) / n_lines:.0%}) reported once "
          f"across {len(kinds)} reasons {kinds}; rerun: 0 tokenized, 0 bytes changed")

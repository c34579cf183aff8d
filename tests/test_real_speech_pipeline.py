"""Issue 19, end to end through the CLI: a LibriSpeech-layout folder (flac + ``*.trans.txt``, two
speakers, two bad items) -> ``manifest import`` with word timings from a CTM file (and the same
timings as MFA TextGrids) -> ``units train`` -> ``tokenize`` -> ``vocab`` -> ``data build`` of
word-level interleaved documents, read back from the shards.

The interleaving is checked against the timings written here, not against the library's own
interleaver. Each document is parsed by its format (tinywave/data/interleave.py: ``BOS``, runs each
opened by ``[Text]`` or ``[Speech]`` where the modality changes, ``EOS``). Each text run must
decode to the next words of the transcript, in order. Each speech run must be exactly the
deduplicated units of the audio between the CTM start of its first word and the CTM start of the
word after it. docs/FORMATS.md, "Token corpus", gives the rule: word i owns the frames in
``[start_i, start_{i+1})``; the first word also owns the leading silence and the last the trailing
silence. Such a run has at most ``window * rate + 1`` tokens. Without timings the same corpus gives
speech-only documents (docs/DATA.md, section 2).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tinywave.cli import main
from tinywave.data.shards import ShardDataset
from tinywave.files import load_jsonl
from tinywave.speech.tokenizer import SpeechTokenizer
from tinywave.text.vocab import layout_from_tokenizer, load_tokenizer, vocab_fingerprint

RATE = 16000  # audio sample rate (Hz)
UNIT_RATE = 25.0  # units per second (`units train rate=25`): unit frame i starts at i / 25 s
N_UNITS = 12
PASSES = 4  # `data build passes=4`: every utterance makes 4 documents
UTTERANCES = {  # id -> transcript; no word repeats in the corpus, so one word names its utterance
    "19-198-0000": "alpha bravo charlie delta",
    "19-198-0001": "echo foxtrot golf hotel india",
    "19-198-0002": "juliet kilo lima",
    "84-121-0000": "mike november oscar papa",
    "84-121-0001": "quebec romeo sierra tango uniform",
}
UNREADABLE = "84-121-0002"  # a transcript line and timings, but its .flac holds no audio
UNTRANSCRIBED = "19-198-0003"  # audio, but no line in 19-198.trans.txt
UTTERANCE_OF = {w: uid for uid, text in UTTERANCES.items() for w in text.split()}


@dataclass(frozen=True)
class Utterance:
    words: list[tuple[str, float, float]]  # (word, start s, end s) as written to the CTM, 10 ms grid
    seconds: float
    wav: np.ndarray  # (seconds * RATE,) float32


def word_timings(text: str, rng: np.random.Generator) -> tuple[list[tuple[str, float, float]], float]:
    """Leading silence, words of 0.18-0.40 s with pauses of 0-80 ms between some, trailing silence."""
    t, words = round(float(rng.uniform(0.08, 0.2)), 2), []
    for w in text.split():
        end = round(t + float(rng.uniform(0.18, 0.4)), 2)
        words.append((w, t, end))
        t = round(end + (float(rng.uniform(0.03, 0.08)) if rng.random() < 0.5 else 0.0), 2)
    return words, round(t + 0.12, 2)


def word_sound(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) samples of 2-3 segments, each a voiced-like tone with two partials or a noise burst."""
    cuts = np.sort(rng.choice(np.arange(640, n - 640), size=int(rng.integers(1, 3)), replace=False)) if n > 1920 else []
    parts = []
    for seg in np.split(np.arange(n), cuts):
        t = seg / RATE
        if rng.random() < 0.3:  # fricative-like: white noise, high-passed by a first difference
            parts.append(0.15 * np.diff(rng.normal(size=len(seg) + 1)))
        else:
            f0, f1, f2 = rng.uniform(100, 250), rng.uniform(300, 900), rng.uniform(1000, 2800)
            parts.append(0.25 * np.sin(2 * np.pi * f0 * t) + 0.12 * np.sin(2 * np.pi * f1 * t) + 0.06 * np.sin(2 * np.pi * f2 * t))
    return np.concatenate(parts)


def utterance(text: str, seed: int) -> Utterance:
    rng = np.random.default_rng(seed)
    words, seconds = word_timings(text, rng)
    wav = rng.normal(scale=0.003, size=int(round(seconds * RATE)))  # (samples,) silence: faint noise
    for _, start, end in words:
        a, b = int(round(start * RATE)), int(round(end * RATE))
        wav[a:b] = word_sound(b - a, rng)
    return Utterance(words, seconds, wav.astype(np.float32))


def write_librispeech(root: Path) -> dict[str, Utterance]:
    """LibriSpeech/dev-clean/<speaker>/<chapter>/: 5 good utterances (2 speakers) and the 2 bad items."""
    truth = {uid: utterance(text, seed) for seed, (uid, text) in enumerate(UTTERANCES.items())}
    transcripts: dict[Path, list[str]] = {}
    for uid, utt in truth.items():
        speaker, chapter, _ = uid.split("-")
        folder = root / "dev-clean" / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / f"{uid}.flac"), utt.wav, RATE)
        transcripts.setdefault(folder / f"{speaker}-{chapter}.trans.txt", []).append(f"{uid} {UTTERANCES[uid].upper()}")
    (root / "dev-clean" / "84" / "121" / f"{UNREADABLE}.flac").write_bytes(b"fLaC but not really")
    transcripts[root / "dev-clean" / "84" / "121" / "84-121.trans.txt"].append(f"{UNREADABLE} VICTOR WHISKEY")
    sf.write(str(root / "dev-clean" / "19" / "198" / f"{UNTRANSCRIBED}.flac"), utterance("xray", 99).wav, RATE)
    for path, lines in transcripts.items():
        path.write_text("\n".join(lines) + "\n")
    return truth


def ctm_lines(truth: dict[str, Utterance]) -> list[str]:
    """Kaldi CTM ``utt channel start duration WORD conf``, with <eps> for the pauses; the bad item aligned too."""
    lines = [";; word timings"]
    for uid, utt in {**truth, UNREADABLE: Utterance([("VICTOR", 0.1, 0.4), ("WHISKEY", 0.4, 0.7)], 0.8, np.zeros(0))}.items():
        prev = 0.0
        for w, start, end in utt.words:
            if start > prev:
                lines.append(f"{uid} 1 {prev:.2f} {start - prev:.2f} <eps> 1.00")
            lines.append(f"{uid} 1 {start:.2f} {end - start:.2f} {w.upper()} 0.97")
            prev = end
    return lines


def textgrid(utt: Utterance) -> str:
    """The same words as an MFA TextGrid (long text form, a 'words' tier with empty pauses)."""
    intervals, prev = [], 0.0
    for w, start, end in utt.words:
        if start > prev:
            intervals.append((prev, start, ""))
        intervals.append((start, end, w))
        prev = end
    intervals.append((prev, utt.seconds, ""))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {utt.seconds}", "tiers? <exists>",
             "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"', '        name = "words"', "        xmin = 0",
             f"        xmax = {utt.seconds}", f"        intervals: size = {len(intervals)}"]
    for j, (a, b, text) in enumerate(intervals, start=1):
        lines += [f"        intervals [{j}]:", f"            xmin = {a:.2f}", f"            xmax = {b:.2f}", f'            text = "{text}"']
    return "\n".join(lines) + "\n"


def cli(*args: object) -> int:
    return main([str(a) for a in args])


def error_reasons(out: Path) -> dict[str, str]:
    return {e["id"]: e["reason"] for e in load_jsonl(out.with_name(out.stem + ".errors.jsonl"))}


def fit_vocabularies(tmp_path: Path, manifest: Path) -> tuple[Path, Path]:
    """`units train` (mfcc k-means, N_UNITS codes at 25 Hz) and `vocab` (BPE on the transcripts) -> their folders."""
    speech_tok, vocab = tmp_path / "speech_tok", tmp_path / "vocab"
    assert cli("units", "train", "--manifest", manifest, "--out", speech_tok, "kind=mfcc_kmeans", f"rate={UNIT_RATE}",
               f"n_units={N_UNITS}", "workers=1", "max_frames=5000") == 0
    assert cli("vocab", "--out", vocab, "--texts", manifest, "vocab_size=150", f"n_hu={N_UNITS}", "n_pi=4", "n_st=4") == 0
    return speech_tok, vocab


def shard_documents(folder: Path, vocab: Path) -> tuple[list[list[int]], dict]:
    """The documents of a shard folder (the real ids of its rows back to back, cut after each EOS) and its index."""
    tok = load_tokenizer(vocab)
    ds = ShardDataset(folder, expected_fingerprint=vocab_fingerprint(tok))
    flat = [x for i in range(len(ds)) for x in ds[i]["input_ids"][ds[i]["attention_mask"].bool()].tolist()]  # documents may span rows
    docs, cur = [], []
    for x in flat:
        cur.append(x)
        if x == tok.eos_token_id:
            docs.append(cur)
            cur = []
    assert not cur, "the shards end inside a document"
    return docs, ds.index


def kept_units(speech_tok: SpeechTokenizer, wav: np.ndarray) -> list[tuple[int, int]]:
    """(frame index, unit) of the audio's units after collapsing repeats (docs/SPIRITLM.md: a run keeps its first frame)."""
    units = speech_tok.encode_units(wav)["hubert"]  # one unit per 40 ms frame, not deduplicated
    return [(i, u) for i, u in enumerate(units) if i == 0 or u != units[i - 1]]


def runs_of(doc: list[int], bos: int, eos: int, text_id: int, speech_id: int) -> list[tuple[int, list[int]]]:
    """[(marker, ids after it)]: a document is BOS, runs each opened by [Text] or [Speech], EOS."""
    assert doc[0] == bos and doc[-1] == eos and doc[1] in (text_id, speech_id), doc[:3]
    runs: list[tuple[int, list[int]]] = []
    for x in doc[1:-1]:
        if x in (text_id, speech_id):
            runs.append((x, []))
        else:
            runs[-1][1].append(x)
    assert all(a[0] != b[0] for a, b in zip(runs, runs[1:])), "a marker where the modality does not change"
    return runs


# ---------------------------------------------------------------- with word timings


def test_ctm_timings_make_word_level_interleaving(tmp_path):
    truth = write_librispeech(tmp_path / "LibriSpeech")
    ctm = tmp_path / "align" / "words.ctm"
    ctm.parent.mkdir()
    ctm.write_text("\n".join(ctm_lines(truth)) + "\n")
    manifest = tmp_path / "data" / "manifest.jsonl"

    # 1. import with CTM words: the bad items are reported, every good one has the CTM's words
    args = ("manifest", "import", "--format", "librispeech", "--src", tmp_path / "LibriSpeech", "workers=1")
    assert cli(*args, "--out", manifest, "--alignments", ctm) == 1  # 1: there were bad items
    assert error_reasons(manifest) == {UNREADABLE: "unreadable", UNTRANSCRIBED: "no_transcript"}
    items = load_jsonl(manifest)
    assert sorted(x["id"] for x in items) == sorted(UTTERANCES)
    for x in items:
        assert x["text"] == UTTERANCES[x["id"]] and x["speaker"] == x["id"].split("-")[0]
        assert [(w["word"], w["start"], w["end"]) for w in x["words"]] == truth[x["id"]].words
    # the same timings as an MFA output folder (<speaker>/<id>.TextGrid) give the same manifest
    for uid, utt in truth.items():
        (tmp_path / "mfa" / uid.split("-")[0]).mkdir(parents=True, exist_ok=True)
        (tmp_path / "mfa" / uid.split("-")[0] / f"{uid}.TextGrid").write_text(textgrid(utt))
    from_mfa = tmp_path / "data" / "mfa.jsonl"
    assert cli(*args, "--out", from_mfa, "--alignments", tmp_path / "mfa", "--alignment-format", "textgrid") == 1
    assert load_jsonl(from_mfa) == items and error_reasons(from_mfa) == error_reasons(manifest)

    # 2. speech tokenizer fitted on the manifest, token corpus, text+speech vocabulary, interleaved shards
    speech_dir, vocab = fit_vocabularies(tmp_path, manifest)
    tokens = tmp_path / "data" / "tokens.jsonl"
    assert cli("tokenize", "--manifest", manifest, "--tokenizer", speech_dir, "--out", tokens, "workers=1") == 0
    assert sorted(r["id"] for r in load_jsonl(tokens)) == sorted(UTTERANCES)
    shards = tmp_path / "shards"
    assert cli("data", "build", "--tokens", tokens, "--tokenizer", vocab, "--out", shards, "seq_len=64",
               "mixture={interleaved: 1}", "switch_prob=0.5", f"passes={PASSES}", "seed=3") == 0
    docs, index = shard_documents(shards, vocab)
    assert index["documents"] == {"interleaved": PASSES * len(UTTERANCES)} and len(docs) == PASSES * len(UTTERANCES)

    # 3. every document against the transcripts and the CTM times
    tok = load_tokenizer(vocab)
    layout = layout_from_tokenizer(tok)
    speech_tok = SpeechTokenizer.load(speech_dir)
    kept = {uid: kept_units(speech_tok, utt.wav) for uid, utt in truth.items()}
    seen: Counter = Counter()
    both_markers = partial_speech_runs = 0
    for doc in docs:
        runs = runs_of(doc, tok.bos_token_id, tok.eos_token_id, layout.text_id, layout.speech_id)
        texts = [tok.decode(body).split() for marker, body in runs if marker == layout.text_id]
        if texts:
            uid = UTTERANCE_OF[texts[0][0]]
        else:  # one speech run: the whole utterance
            uid = next(u for u, k in kept.items() if [x - layout.hu_offset for x in runs[0][1]] == [unit for _, unit in k])
        seen[uid] += 1
        both_markers += len(runs) > 1  # runs alternate: two or more runs hold both markers
        words, names = truth[uid].words, UTTERANCES[uid].split()
        w = 0  # the next word of the transcript
        for k, (marker, body) in enumerate(runs):
            if marker == layout.text_id:
                got = tok.decode(body).split()
                assert got and got == names[w : w + len(got)], (uid, got, names[w:])  # the next words, in order
                w += len(got)
                continue
            # a speech run stands for words w..e-1: e is where the next text run starts, or the end
            e = names.index(tok.decode(runs[k + 1][1]).split()[0]) if k + 1 < len(runs) else len(names)
            assert e > w, (uid, w, e)
            t0 = words[w][1] if w > 0 else 0.0  # seconds; the first word owns the leading silence
            t1 = words[e][1] if e < len(names) else math.inf  # the last word owns the trailing silence
            hu = [x - layout.hu_offset for x in body]
            assert all(0 <= u < N_UNITS for u in hu), "only [Hu] tokens in a speech run (no pitch or style fitted)"
            assert hu == [u for i, u in kept[uid] if t0 <= i / UNIT_RATE < t1], (uid, names[w:e], t0, t1)
            window = min(t1, truth[uid].seconds) - t0  # seconds of audio the run stands for
            assert len(hu) <= window * UNIT_RATE + 1
            partial_speech_runs += (w, e) != (0, len(names))
            w = e
        assert w == len(names), (uid, w)  # the runs cover every word once
    assert seen == {uid: PASSES for uid in UTTERANCES}
    assert both_markers >= len(docs) // 2 and partial_speech_runs >= 10  # the timings were really used, many times
    assert len({u for k in kept.values() for _, u in k}) >= N_UNITS // 2  # the audio spans many units, not one code


# ---------------------------------------------------------------- without word timings


def test_without_timings_documents_are_speech_only(tmp_path, caplog):
    """docs/DATA.md, section 2: "Items without timings are kept; they become speech-only or text-only
    documents"; tinywave/data/interleave.py ``choose_kind`` picks "among the kinds this record can make"
    (speech when none of the mixture's kinds is possible). With the mixture all interleaved: speech only."""
    truth = write_librispeech(tmp_path / "LibriSpeech")
    manifest = tmp_path / "data" / "manifest.jsonl"
    assert cli("manifest", "import", "--format", "librispeech", "--src", tmp_path / "LibriSpeech", "--out", manifest, "workers=1") == 1
    assert error_reasons(manifest) == {UNREADABLE: "unreadable", UNTRANSCRIBED: "no_transcript"}
    items = load_jsonl(manifest)
    assert sorted(x["id"] for x in items) == sorted(UTTERANCES) and not any("words" in x for x in items)

    speech_dir, vocab = fit_vocabularies(tmp_path, manifest)
    tokens = tmp_path / "data" / "tokens.jsonl"
    assert cli("tokenize", "--manifest", manifest, "--tokenizer", speech_dir, "--out", tokens, "workers=1") == 0
    records = load_jsonl(tokens)
    assert len(records) == len(UTTERANCES) and not any("words" in r for r in records) and all(r["text"] for r in records)
    shards = tmp_path / "shards"
    with caplog.at_level(logging.WARNING, logger="tinywave.recipes.data_build"):
        assert cli("data", "build", "--tokens", tokens, "--tokenizer", vocab, "--out", shards, "seq_len=64",
                   "mixture={interleaved: 1}", f"passes={PASSES}") == 0
    docs, index = shard_documents(shards, vocab)
    assert index["documents"] == {"speech": PASSES * len(UTTERANCES)}
    # ... and the build says so rather than falling back silently
    assert any(f"{len(UTTERANCES)} of {len(UTTERANCES)} records have no word timings" in r.getMessage() for r in caplog.records)

    tok = load_tokenizer(vocab)
    layout = layout_from_tokenizer(tok)
    speech_tok = SpeechTokenizer.load(speech_dir)
    whole = {tuple(layout.hu_offset + u for _, u in kept_units(speech_tok, utt.wav)): uid for uid, utt in truth.items()}
    seen: Counter = Counter()
    for doc in docs:
        assert doc[:2] == [tok.bos_token_id, layout.speech_id] and doc[-1] == tok.eos_token_id
        assert layout.text_id not in doc and layout.speech_id not in doc[2:]  # one speech run, no text
        seen[whole[tuple(doc[2:-1])]] += 1  # KeyError: not the whole utterance's units
    assert seen == {uid: PASSES for uid in UTTERANCES}

"""CTC forced alignment: optimal against enumeration, exact on a known path, and `tinywave manifest align` end to end
with a tiny random wav2vec 2.0 CTC model (mechanics only: its timings mean nothing)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import soundfile as sf

from tinywave.cli import main
from tinywave.data.importers.ctc_align import extended_labels, forced_path, word_times

BLANK = 0


def path_score(logp: np.ndarray, states: list[int], path: list[int]) -> float:
    return float(sum(logp[t, states[s]] for t, s in enumerate(path)))


def valid(path: tuple[int, ...], states: list[int]) -> bool:
    """A CTC alignment: starts in the first blank or label, ends in the last label or blank, moves by 0, 1 or a legal 2."""
    if path[0] > 1 or path[-1] < len(states) - 2:
        return False
    for a, b in zip(path, path[1:]):
        step = b - a
        if step not in (0, 1, 2) or (step == 2 and (b % 2 == 0 or states[b] == states[a])):
            return False
    return True


@pytest.mark.parametrize("targets", [[1, 2], [1, 1], [2, 1, 2]])
def test_forced_path_is_the_best_of_every_ctc_alignment(targets):
    rng = np.random.default_rng(len(targets) * 7 + targets[0])
    states = extended_labels(targets, BLANK)
    for frames in (len(targets) + 1, 6):
        logp = np.log(rng.dirichlet(np.ones(3), size=frames))  # (T, 3)
        best = max(path_score(logp, states, list(p)) for p in itertools.product(range(len(states)), repeat=frames) if valid(p, states))
        got = forced_path(logp, targets, BLANK)
        assert valid(tuple(got), states)
        assert path_score(logp, states, got) == pytest.approx(best)


def test_peaked_frames_give_back_the_true_path_and_word_times():
    # words "ab" "c": targets a b | c with ids 1 2 4 3; a true path over 12 frames of 0.02 s
    targets, owner = [1, 2, 4, 3], [0, 0, -1, 1]
    truth = [0, 1, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8]  # states of blank a a blank b b blank | blank c c blank
    states = extended_labels(targets, BLANK)
    logp = np.full((len(truth), 5), np.log(0.01))
    for t, s in enumerate(truth):
        logp[t, states[s]] = np.log(0.96)
    path = forced_path(logp, targets, BLANK)
    assert path == truth
    assert word_times(path, owner, 2, 0.02) == [pytest.approx((0.02, 0.12)), pytest.approx((0.18, 0.22))]
    with pytest.raises(ValueError, match=r"2 frames cannot hold 2 labels \(3 frames needed\)"):
        forced_path(logp[:2], [1, 1], BLANK)  # a repeated label needs a blank between: 3 frames
    forced_path(logp[:3], [1, 1], BLANK)


@pytest.fixture(scope="module")
def ctc_model(tmp_path_factory):
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    folder = tmp_path_factory.mktemp("ctc")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVW'")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(16, 16), conv_stride=(5, 64), conv_kernel=(10, 64), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, pad_token_id=0)
    Wav2Vec2ForCTC(config).save_pretrained(folder)  # frames every 320 samples (20 ms), as wav2vec 2.0
    return folder


def test_manifest_align_writes_words_skips_bad_items_and_resumes(ctc_model, tmp_path):
    rng = np.random.default_rng(0)
    for name, seconds in (("a", 1.0), ("b", 0.8), ("c", 0.5), ("short", 0.1)):
        sf.write(tmp_path / f"{name}.wav", rng.normal(0, 0.1, int(16000 * seconds)).astype(np.float32), 16000)
    items = [{"id": "a", "audio": "a.wav", "text": "the cat sat"}, {"id": "b", "audio": "b.wav", "text": "don't go"},
             {"id": "xyz", "audio": "c.wav", "text": "a box"},  # x is not in the model's characters
             {"id": "notext", "audio": "c.wav"},
             {"id": "short", "audio": "short.wav", "text": "a long sentence read in a tenth of a second"},
             {"id": "kept", "audio": "c.wav", "text": "hi", "words": [{"word": "hi", "start": 0.1, "end": 0.3}]}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    args = ["manifest", "align", "--manifest", str(tmp_path / "in.jsonl"), "--model", str(ctc_model), "--out", str(tmp_path / "out.jsonl")]
    assert main(args) == 1  # bad items: exit 1, the good ones written
    out = {o["id"]: o for o in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert set(out) == {"a", "b", "kept"}
    for uid, seconds in (("a", 1.0), ("b", 0.8)):
        words = out[uid]["words"]
        assert [w["word"] for w in words] == out[uid]["text"].split()
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and all(0 <= w["start"] < w["end"] <= seconds + 1e-6 for w in words)
        assert all(a["end"] <= b["start"] + 1e-9 for a, b in zip(words, words[1:]))  # the delimiter frame sits between words
    assert out["kept"]["words"] == items[-1]["words"]
    errors = {o["id"]: o for o in map(json.loads, (tmp_path / "out.errors.jsonl").read_text().splitlines())}
    assert errors["xyz"]["reason"] == "alignment_failed" and "'X'" in errors["xyz"]["detail"]
    assert errors["notext"]["reason"] == "no_transcript" and errors["short"]["reason"] == "alignment_failed"
    assert "frames cannot hold" in errors["short"]["detail"]
    assert not (tmp_path / "out.jsonl.partial").exists()
    # an interrupted run continues from its journal: a journaled item is taken as it was, not aligned again
    journaled = {**out["a"], "words": [{"word": w, "start": round(0.1 * i, 4), "end": round(0.1 * i + 0.05, 4)} for i, w in enumerate(out["a"]["text"].split())]}
    (tmp_path / "out.jsonl.partial").write_text(json.dumps({"id": "a", "item": journaled}) + "\n")
    assert main(args) == 1
    again = {o["id"]: o for o in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert again["a"]["words"] == journaled["words"] and again["b"] == out["b"]

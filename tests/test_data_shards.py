"""Interleaved documents, packing into memory-mapped shards, the streaming reader."""

import json
import random

import numpy as np
import pytest
import torch

from tinywave.cli import main
from tinywave.data.interleave import DocIds, build_documents, interleaved_document, word_runs
from tinywave.data.shards import ShardDataset, labels_from_batch, pack_rows, write_shards
from tinywave.data.token_corpus import split_records
from tinywave.speech.format import split_tokens
from tinywave.text.vocab import encode_text, layout_from_tokenizer, train_bpe_tokenizer, vocab_fingerprint

WORDS = "tom went to the park and found a red ball under the old tree".split()


def make_record(i: int, rng: random.Random) -> dict:
    words, tokens, t = [], [], 0.0
    for w in WORDS[: rng.randint(4, len(WORDS))]:
        n = rng.randint(1, 5)
        words.append({"word": w, "start": t, "end": t + 0.1 * n, "span": [len(tokens), len(tokens) + n]})
        tokens += [f"[Hu{rng.randint(0, 31)}]" for _ in range(n)]
        t += 0.1 * n
    return {"id": f"u{i}", "speech": "".join(tokens), "text": " ".join(w["word"] for w in words), "words": words,
            "rates": {"hubert": 25.0}, "story_id": i // 2}


@pytest.fixture(scope="module")
def tok():
    return train_bpe_tokenizer([" ".join(WORDS)] * 10, vocab_size=60, n_hu=32, n_pi=8, n_st=4)


def test_word_runs_partition_and_switch():
    rng = random.Random(0)
    for n in range(1, 30):
        runs = word_runs(n, 0.5, rng)
        assert runs[0][1] == 0 and runs[-1][2] == n
        assert all(a[2] == b[1] and a[0] != b[0] for a, b in zip(runs, runs[1:]))
    assert len(word_runs(20, 0.0, rng)) == 1


def test_interleaved_document_markers_only_on_change(tok):
    tokenizer, layout = tok
    rec = make_record(0, random.Random(1))
    ids = DocIds(tokenizer.bos_token_id, tokenizer.eos_token_id, layout)
    doc = interleaved_document(rec, ids, tokenizer, 0.5, random.Random(3))
    assert doc[0] == ids.bos and doc[-1] == ids.eos
    markers = [i for i, x in enumerate(doc) if x in (layout.text_id, layout.speech_id)]
    kinds = [doc[i] for i in markers]
    assert all(a != b for a, b in zip(kinds, kinds[1:]))  # a marker only where the modality changes
    # runs cover the words in order: a speech run is the union of its words' spans, a text run their text
    speech_ids = layout.speech_string_to_ids(rec["speech"])
    runs, cur = [], None
    for x in doc[1:-1]:
        if x in (layout.text_id, layout.speech_id):
            cur = (x, [])
            runs.append(cur)
        else:
            cur[1].append(x)
    w = 0
    for marker, body in runs:
        start = w
        if marker == layout.speech_id:
            while w < len(rec["words"]) and speech_ids[rec["words"][start]["span"][0] : rec["words"][w]["span"][1]] != body:
                w += 1
            assert w < len(rec["words"]), "speech run is not a union of whole-word spans"
        else:
            while w < len(rec["words"]) and encode_text(tokenizer, [x["word"] for x in rec["words"][start : w + 1]]) != body:
                w += 1
            assert w < len(rec["words"]), "text run is not the text of consecutive words"
        w += 1
    assert w == len(rec["words"]) and len(runs) > 1


def test_pack_rows_keeps_documents_whole():
    docs = [[1] * 3, [2] * 4, [3] * 2, [4] * 9]
    rows = list(pack_rows(docs, 6))
    assert rows == [[1, 1, 1], [2, 2, 2, 2, 3, 3], [4] * 6, [4] * 3]


def test_shards_round_trip_and_fingerprint(tmp_path, tok):
    tokenizer, layout = tok
    rng = random.Random(0)
    docs = [[1] + [rng.randrange(5, len(tokenizer)) for _ in range(rng.randint(3, 40))] + [2] for _ in range(50)]
    index = write_shards(tmp_path / "s", docs, 64, vocab_fingerprint(tokenizer), len(tokenizer), 3, bos_id=1, eos_id=2, rows_per_shard=7)
    ds = ShardDataset(tmp_path / "s", expected_fingerprint=vocab_fingerprint(tokenizer))
    assert len(ds) == index["count"] and len(index["files"]) > 1
    flat = [x for i in range(len(ds)) for x in ds[i]["input_ids"][ds[i]["attention_mask"].bool()].tolist()]
    assert flat == [x for d in docs for x in d]
    assert index["dtype"] == "uint16"
    with pytest.raises(ValueError, match="rebuild them with `tinywave data build"):
        ShardDataset(tmp_path / "s", expected_fingerprint="0" * 16)


def test_truncated_shard_is_refused(tmp_path, tok):
    tokenizer, _ = tok
    write_shards(tmp_path / "s", [[1, 5, 6, 2]] * 20, 8, "fp", len(tokenizer), 3, bos_id=1, eos_id=2)
    path = tmp_path / "s" / "shard_00000.bin"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match="truncated"):
        ShardDataset(tmp_path / "s")


def test_labels_shift_and_ignore_pad():
    ids = torch.tensor([[1, 5, 6, 2, 3, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    assert labels_from_batch(ids, mask).tolist() == [[5, 6, 2, -100, -100, -100]]


def test_documents_deterministic_and_mixture(tok):
    tokenizer, layout = tok
    rng = random.Random(0)
    records = [make_record(i, rng) for i in range(200)]
    ids = DocIds(tokenizer.bos_token_id, tokenizer.eos_token_id, layout)
    counts: dict = {}
    a = list(build_documents(records, tokenizer, ids, {"speech": 0.5, "interleaved": 0.3, "text": 0.2}, 0.3, seed=5, counts=counts))
    b = list(build_documents(records, tokenizer, ids, {"speech": 0.5, "interleaved": 0.3, "text": 0.2}, 0.3, seed=5))
    assert a == b
    assert abs(counts["speech"] / 200 - 0.5) < 0.12 and abs(counts["text"] / 200 - 0.2) < 0.1
    no_speech = [d for d in a if not any(layout.speech_id <= x for x in d)]
    assert len(no_speech) >= counts["text"]
    assert sum(d[1] == layout.speech_id and layout.text_id not in d for d in a) >= counts["speech"]


def test_split_records_by_group():
    recs = [{"id": f"u{i}", "story_id": i // 3} for i in range(300)]
    train, held = split_records(recs, 0.2, seed=1)
    assert len(train) + len(held) == 300 and 0.1 < len(held) / 300 < 0.3
    assert not {r["story_id"] for r in train} & {r["story_id"] for r in held}


def test_data_build_cli(tmp_path, tok, capsys):
    tokenizer, layout = tok
    tokenizer.save_pretrained(tmp_path / "tok")
    rng = random.Random(0)
    corpus = tmp_path / "tokens.jsonl"
    corpus.write_text("".join(json.dumps(make_record(i, rng)) + "\n" for i in range(40)))
    assert main(["data", "build", "--tokens", str(corpus), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "sh"), "seq_len=128", "passes=2"]) == 0
    ds = ShardDataset(tmp_path / "sh", expected_fingerprint=vocab_fingerprint(tokenizer))
    assert sum(ds.index["documents"].values()) == 80
    ids = np.concatenate([ds[i]["input_ids"][ds[i]["attention_mask"].bool()].numpy() for i in range(len(ds))])
    assert (ids == tokenizer.bos_token_id).sum() == 80 and (ids == tokenizer.eos_token_id).sum() == 80
    # one mixture entry can be set alone (merged into the default), and a misspelled kind is a clear error before any work
    assert main(["data", "build", "--tokens", str(corpus), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "t"), "seq_len=128",
                 "mixture.speech=0", "mixture.interleaved=0"]) == 0
    assert ShardDataset(tmp_path / "t").index["documents"] == {"text": 40}
    assert main(["data", "build", "--tokens", str(corpus), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "x"), "mixture.speach=1"]) == 2
    assert "mixture has unknown kinds ['speach']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

import json

from transformers import AutoTokenizer

from tinywave.cli import main
from tinywave.text.vocab import VocabLayout, layout_from_tokenizer, train_bpe_tokenizer, vocab_fingerprint

TEXTS = ["the cat sat on the mat", "a dog ran to the park and the cat followed it home"] * 20


def test_spiritlm_ids_with_32000_text_tokens():
    lay = VocabLayout(32000)
    assert (lay.text_id, lay.speech_id, lay.hu_offset, lay.pi_offset, lay.st_offset) == (32000, 32001, 32002, 32503, 32567)
    assert lay.hu_offset + 500 == 32502 and lay.st_offset + 99 == 32666 and lay.size == 32667


def test_bpe_tokenizer_directory_round_trip(tmp_path):
    tok, lay = train_bpe_tokenizer(TEXTS, vocab_size=100)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert layout_from_tokenizer(loaded) == lay
    ids = loaded("[Speech][Hu12][Pi3]", add_special_tokens=False)["input_ids"]
    assert ids == [lay.speech_id, lay.hu_offset + 12, lay.pi_offset + 3]
    assert loaded.decode(ids) == "[Speech][Hu12][Pi3]"
    assert lay.speech_string_to_ids("[Speech][Hu12][Pi3][St99]") == ids + [lay.st_offset + 99]
    assert vocab_fingerprint(loaded) == vocab_fingerprint(tok)


def test_fast_path_matches_hf_tokenizer():
    tok, lay = train_bpe_tokenizer(TEXTS, vocab_size=100)
    s = "[St3][Pi7][Hu1][Hu400][Pi63][Hu500][St0]"
    assert lay.speech_string_to_ids(s) == tok(s, add_special_tokens=False)["input_ids"]
    assert lay.ids_to_speech_string(lay.speech_string_to_ids(s)) == s


def test_fingerprint_changes_with_layout():
    a, _ = train_bpe_tokenizer(TEXTS, vocab_size=100)
    b, _ = train_bpe_tokenizer(TEXTS, vocab_size=100, n_hu=128)
    assert vocab_fingerprint(a) != vocab_fingerprint(b)


def test_vocab_cli(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"id": str(i), "audio": "x.wav", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    assert main(["vocab", "--out", str(tmp_path / "tok"), "--texts", str(m), "vocab_size=80", "n_hu=64"]) == 0
    lay = layout_from_tokenizer(AutoTokenizer.from_pretrained(str(tmp_path / "tok")))
    assert lay.n_hu == 64 and lay.n_pi == 64

"""Word/character error rates and the recognizer backends (PocketSphinx on real espeak-ng speech, tiny HF models)."""

import random

import numpy as np
import pytest
import torch

from support.models import tiny_whisper_dir
from tinywave.eval.asr import ASR_BACKENDS, CtcRecognizer, WhisperRecognizer, build_language_model, detect_hf_kind, load_recognizer
from tinywave.eval.wer import edit_operations, error_rates, normalize_text

SENTENCES = ["the cat sat on the mat", "my friend opened the door", "the little dog ran home to his mother",
             "she found a small red ball under the old tree"]


def test_edit_operations_by_hand():
    ref = "the cat sat on the mat".split()
    assert edit_operations(ref, "the cat sat on mat".split()) == (0, 1, 0)  # one deletion
    assert edit_operations(ref, "the cat sat on the mat today".split()) == (0, 0, 1)  # one insertion
    assert edit_operations(ref, "a cat sat in the mat".split()) == (2, 0, 0)  # two substitutions
    assert edit_operations(ref, []) == (0, 6, 0) and edit_operations([], ["x"]) == (0, 0, 1)
    assert edit_operations("kitten", "sitting") == (2, 0, 1)  # Levenshtein's example: distance 3


def test_error_rates_by_hand():
    refs = ["The cat sat.", "a dog ran home"]
    hyps = ["the cat sat down", "a dog home"]
    r = error_rates(refs, hyps)
    assert (r.words, r.substitutions, r.deletions, r.insertions) == (7, 0, 1, 1)
    assert r.wer == pytest.approx(2 / 7)
    # characters with their spaces: "the cat sat" -> "the cat sat down" inserts " down" (5);
    # "a dog ran home" -> "a dog home" deletes "ran " (4); over 11 + 14 reference characters
    assert r.chars == 25 and r.cer == pytest.approx(9 / 25)
    assert error_rates(["abc"], ["abd"]).cer == pytest.approx(1 / 3)
    assert error_rates(["one two"], [""]).wer == 1.0 and error_rates(["hi"], ["hi there you"]).wer == 2.0
    assert r.to_json()["wer"] == r.wer
    with pytest.raises(ValueError, match="2 reference texts but 1 transcripts"):
        error_rates(refs, hyps[:1])
    with pytest.raises(ValueError, match="every reference text is empty"):
        error_rates(["", "?!"], ["a", "b"])


def test_normalize_text_keeps_words_and_apostrophes():
    assert normalize_text("  Don't STOP, the cat... sat!") == "don't stop the cat sat"


def test_error_rates_match_jiwer():
    jiwer = pytest.importorskip("jiwer", reason="jiwer is in the asr extra: pip install 'tinywave[asr]'")
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran"]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 9))) for _ in range(40)]
    hyps = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) for _ in range(40)]
    ours = error_rates(refs, hyps)
    assert ours.wer == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert ours.cer == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    for ref, hyp in zip(refs, hyps):  # per utterance, the edit count is the minimum (the split may differ on ties)
        out = jiwer.process_words(ref, hyp)
        assert sum(edit_operations(ref.split(), hyp.split())) == out.substitutions + out.deletions + out.insertions


def test_load_recognizer_errors_name_the_fix(tmp_path):
    assert set(ASR_BACKENDS) == {"pocketsphinx", "whisper", "ctc"}
    with pytest.raises(ValueError, match="asr='kaldi' is neither a recognizer"):
        load_recognizer("kaldi")
    with pytest.raises(ValueError, match="asr=whisper needs a local model directory: write asr=whisper:DIR"):
        load_recognizer("whisper")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_recognizer(f"ctc:{tmp_path}")
    (tmp_path / "config.json").write_text('{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(ValueError, match="neither Whisper nor a CTC model"):
        load_recognizer(str(tmp_path))


def save_tiny_ctc(folder):
    import json

    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tok = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    torch.manual_seed(0)
    cfg = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=4,
                         num_conv_pos_embedding_groups=2, pad_token_id=0)
    Wav2Vec2ForCTC(cfg).save_pretrained(str(folder))
    Wav2Vec2Processor(feature_extractor=Wav2Vec2FeatureExtractor(), tokenizer=tok).save_pretrained(str(folder))
    return folder


def test_hugging_face_recognizers_from_a_directory(tmp_path):
    """A tiny random Whisper and wav2vec 2.0 CTC model: one normalized transcript per waveform, kind read from config.json."""
    wavs = [np.sin(np.arange(4000) / 7.0).astype(np.float32) * 0.2, np.zeros(2400, np.float32)]
    whisper, ctc = tiny_whisper_dir(tmp_path / "whisper"), save_tiny_ctc(tmp_path / "ctc")
    assert detect_hf_kind(whisper) == "whisper" and detect_hf_kind(ctc) == "ctc"
    for folder, kind in ((whisper, WhisperRecognizer), (ctc, CtcRecognizer)):
        asr = load_recognizer(str(folder))
        assert isinstance(asr, kind)
        texts = asr(wavs)
        assert len(texts) == 2 and all(t == normalize_text(t) for t in texts)
    assert isinstance(load_recognizer(f"ctc:{ctc}"), CtcRecognizer)


# ---------------------------------------------------------------- PocketSphinx on espeak-ng speech


@pytest.fixture(scope="module")
def pocketsphinx():
    return pytest.importorskip("pocketsphinx", reason="PocketSphinx is not installed: pip install 'tinywave[asr]'")


@pytest.fixture(scope="module")
def spoken():
    from tinywave.corpus.espeak import Synthesizer

    synth = Synthesizer()
    return {voice: [synth.speak(t, voice).wav for t in SENTENCES] for voice in ("en-us+f2", "en-us+m3")}


def test_pocketsphinx_transcribes_espeak_speech(pocketsphinx, spoken):
    asr = load_recognizer("pocketsphinx")
    texts = asr(spoken["en-us+f2"])
    assert error_rates(SENTENCES, texts).wer <= 0.5, texts  # its general English model on espeak-ng: 0.38 measured
    noise = np.random.default_rng(0).standard_normal((2, 24000)).astype(np.float32) * 0.1
    assert error_rates(SENTENCES[:2], asr(list(noise))).wer >= 0.8  # noise is not transcribed into the sentences


def test_pocketsphinx_transcripts_depend_only_on_the_waveform(pocketsphinx, spoken):
    asr = load_recognizer("pocketsphinx")
    wavs = spoken["en-us+m3"]
    assert asr([wavs[1], wavs[0], wavs[2]])[1:] == asr([wavs[0], wavs[2]])  # no state carried from one utterance to the next
    assert asr([wavs[3]]) == asr([wavs[3]])


def test_a_domain_language_model_narrows_pocketsphinx_to_the_corpus(pocketsphinx, spoken, tmp_path):
    lm = build_language_model([*SENTENCES, "tom went to the park", "a dog ran to the tree"], tmp_path / "lm.arpa")
    assert lm.read_text().startswith("Corpus:") or "\\data\\" in lm.read_text()
    asr = load_recognizer(f"pocketsphinx:{lm}")
    assert asr.name == "pocketsphinx:lm.arpa"
    general = error_rates(SENTENCES, load_recognizer("pocketsphinx")(spoken["en-us+m3"])).wer
    domain = error_rates(SENTENCES, asr(spoken["en-us+m3"])).wer
    assert domain <= 0.1 and domain <= general
    with pytest.raises(FileNotFoundError, match="language model .* not found"):
        load_recognizer(f"pocketsphinx:{tmp_path / 'missing.arpa'}")
    with pytest.raises(ValueError, match="no text to build a language model"):
        build_language_model(["", "!!"], tmp_path / "empty.arpa")

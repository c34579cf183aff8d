"""GenPPL / Auto-BLEU pieces with tiny random Whisper and GPT-2 models saved to disk."""

import math

import numpy as np
import pytest
import torch

from support.eval import RATE, EnergyTokenizer, eval_tokenizer, read_wav, reference_ll, write_wav
from support.models import tiny_gpt2_dir, tiny_llama, tiny_whisper_dir
from tinywave.eval.genppl import (
    GenSettings, TextLM, Transcriber, auto_bleu, generative_metrics, normalize_text, prompt_ids, sample_continuations, speech_token_ids,
)
from tinywave.eval.scoring import SequenceBuilder
from tinywave.speech.format import split_tokens

def sine_vocoder(speech: str) -> np.ndarray:
    """One 40 ms tone per token (not under test)."""
    t = np.arange(640) / RATE
    tones = [np.sin(2 * np.pi * (200 + 40 * int(tok[3:-1])) * t) for tok in split_tokens(speech)]
    return (0.3 * np.concatenate(tones)).astype(np.float32) if tones else np.zeros(640, np.float32)


@pytest.fixture(scope="module")
def lm():
    tok, layout = eval_tokenizer()
    return tok, layout, tiny_llama(tokenizer=tok, heads=2, seed=2)


def test_auto_bleu_and_normalization():
    assert auto_bleu("a b a b") == pytest.approx(2 / 3)  # (a b) recurs, (b a) does not
    assert auto_bleu("the cat sat") == 0.0 and auto_bleu("one") == 0.0 and auto_bleu("") == 0.0
    assert auto_bleu("go go go", n=1) == 1.0 and auto_bleu("x y z x", n=1) == 0.5
    assert normalize_text("  Hello, World! It's  me.") == "hello world it's me"


def test_sampling_stays_in_speech_and_greedy_batches_match_plain_decoding(lm):
    tok, layout, model = lm
    allowed = speech_token_ids(layout, ["hubert"])
    b = SequenceBuilder(tok)
    prompts = [list(b.speech_window(b.speech_ids(s)).ids) for s in ("[Hu1][Hu2][Hu3][Hu4][Hu5]", "[Hu7]", "[Hu3][Hu9][Hu1]")]
    sampled = sample_continuations(model, prompts, allowed, b.pad, GenSettings(new_tokens=12, batch_size=2, seed=3))
    assert [len(s) for s in sampled] == [12, 12, 12] and all(t in set(allowed) for s in sampled for t in s)
    assert sampled == sample_continuations(model, prompts, allowed, b.pad, GenSettings(new_tokens=12, batch_size=2, seed=3))
    greedy = sample_continuations(model, prompts, allowed, b.pad, GenSettings(new_tokens=6, top_k=1, batch_size=3))
    for prompt, got in zip(prompts, greedy):
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(6):
                logits = model(torch.tensor([ids])).logits[0, -1]
                ids.append(allowed[int(logits[allowed].argmax())])
        assert got == ids[len(prompt) :]


def test_prompt_is_the_first_seconds(lm, tmp_path):
    tok, layout, _ = lm
    wav = write_wav(tmp_path / "p.wav", 1, seconds=1.2)
    stok = EnergyTokenizer()
    rows, strings = prompt_ids([wav], stok, SequenceBuilder(tok), seconds=0.5)
    assert strings == [EnergyTokenizer().encode_string(read_wav(wav)[:8000])]
    assert rows[0][:2] == [tok.bos_token_id, layout.speech_id] and len(rows[0]) == 2 + len(split_tokens(strings[0]))


def test_text_lm_mean_nll_matches_plain_forward(tmp_path):
    lm = TextLM(tiny_gpt2_dir(tmp_path / "gpt2"))
    texts = ["the cat sat on the mat", "a dog", "x"]
    got = lm.mean_nll(texts)
    for text, nll in zip(texts, got):
        ids = lm.tokenizer(text)["input_ids"]
        if len(ids) < 2:
            assert nll is None
        else:
            assert nll == pytest.approx(-reference_ll(lm.model, ids, 1, "mean"), abs=1e-4)


TRANSCRIPTS = ["the cat sat the cat sat", "a dog ran to the park"]  # Auto-BLEU-2: 4 of 5 bigrams recur; none recurs


class FixedASR:
    """A deterministic ASR stand-in (the ASR is not under test): transcript i for the i-th waveform."""

    def __init__(self):
        self.wavs = []

    def __call__(self, wavs):
        self.wavs += list(wavs)
        return TRANSCRIPTS[: len(wavs)]


def test_generative_metrics_end_to_end_with_a_fixed_transcript(lm, tmp_path):
    tok, layout, model = lm
    files = [write_wav(tmp_path / f"w{i}.wav", 10 + i, seconds=0.8) for i in range(3)]
    asr = FixedASR()
    text_lm = TextLM(tiny_gpt2_dir(tmp_path / "gpt2"))
    settings = GenSettings(prompt_seconds=0.5, new_tokens=10, batch_size=2, max_files=2)
    report = generative_metrics(model, SequenceBuilder(tok), EnergyTokenizer(), files, sine_vocoder, asr, text_lm=text_lm, settings=settings)
    assert report.samples == 2 and report.empty == 0 and [r["transcript"] for r in report.transcripts] == TRANSCRIPTS
    prompt_units = len(split_tokens(EnergyTokenizer().encode_string(read_wav(files[0])[:8000])))
    assert len(asr.wavs[0]) == 640 * (prompt_units + 10)  # the vocoded prompt + continuation reached the ASR
    # by hand: each transcript's mean token NLL from one plain forward pass, then exp of their mean
    nlls = [-reference_ll(text_lm.model, text_lm.tokenizer(t)["input_ids"], 1, "mean") for t in TRANSCRIPTS]
    assert math.isfinite(report.genppl) and report.genppl == pytest.approx(math.exp(sum(nlls) / 2), rel=1e-5)
    assert report.auto_bleu == pytest.approx((4 / 5 + 0.0) / 2)
    with pytest.raises(ValueError, match="no prompt audio files"):
        generative_metrics(model, SequenceBuilder(tok), EnergyTokenizer(), [], sine_vocoder, asr, text_lm=text_lm, settings=settings)


def test_transcriber_gives_one_normalized_text_per_wav(tmp_path):
    asr = Transcriber(tiny_whisper_dir(tmp_path / "asr"), max_new_tokens=8)
    texts = asr([sine_vocoder("[Hu1][Hu2][Hu3]"), sine_vocoder("[Hu4]")], batch_size=1)
    assert len(texts) == 2 and all(t == normalize_text(t) for t in texts)


def test_recipe_needs_all_generation_locations():
    from tinywave.recipes.evaluate import GenerationConfig, generation_setup

    assert generation_setup(GenerationConfig(), "cpu") is None
    with pytest.raises(ValueError, match=r"missing generation.text_lm, generation.vocoder"):
        generation_setup(GenerationConfig(prompts="p", asr="a"), "cpu")

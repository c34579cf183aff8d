"""Shared builders for the generation and vocoder tests (no tests here).

- ``StandInSpeechTokenizer``: a small deterministic stand-in for
  ``tinywave.speech.tokenizer.SpeechTokenizer`` (same API: ``rates``, ``fingerprint``,
  ``encode_units``, ``encode_string``) that needs no fitting: log-mel frames pooled to the
  unit rate, projected by a fixed random matrix, arg-max. Audio tokenization is not what
  the unit tests test; the end-to-end test (test_vocoder_train.py) uses the real one.
- ``tiny_model_dir``: a plain HF directory (LlamaForCausalLM + BPE tokenizer with the
  speech vocabulary) of a randomly initialised tiny model.
- ``espeak_wav``: a real utterance from the espeak-ng CLI.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tinywave.speech.format import units_to_string
from tinywave.text.vocab import train_bpe_tokenizer

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other jobs for cores); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TEXTS = ["the cat sat on the mat", "a dog ran to the park and the cat followed it home", "tom found a red ball"] * 10


class StandInSpeechTokenizer:
    """Deterministic units: arg-max of a fixed random projection of pooled log-mel frames."""

    def __init__(self, n_units: int = 32, rate: float = 25.0, seed: int = 0):
        self.n_units = n_units
        self.rates = {"hubert": rate}
        self.hop = int(round(16000 / rate))
        self.fingerprint = f"stand-in-{n_units}-{rate}-{seed}"
        self.proj = np.random.default_rng(seed).standard_normal((n_units, 40)).astype(np.float32)

    def encode_units(self, wav: np.ndarray) -> dict[str, list[int]]:
        from tinywave.vocoder.spectral import MelSpec

        with torch.no_grad():
            logmel = MelSpec(n_mels=40)(torch.as_tensor(np.asarray(wav, dtype=np.float32))[None])[0].numpy().T  # (F, 40)
        per = self.hop // 160
        n = len(wav) // self.hop
        frames = logmel[: n * per].reshape(n, per, -1).mean(1)
        frames = frames - frames.mean(1, keepdims=True)
        return {"hubert": (frames @ self.proj.T).argmax(1).tolist()}

    def encode_string(self, wav: np.ndarray) -> str:
        return units_to_string(self.encode_units(wav)["hubert"], rates=self.rates)


def tiny_tokenizer(n_hu: int = 32, n_pi: int = 8, n_st: int = 4):
    return train_bpe_tokenizer(TEXTS, vocab_size=80, n_hu=n_hu, n_pi=n_pi, n_st=n_st)


def tiny_model(tokenizer, layers: int = 2, hidden: int = 32, seed: int = 0, extra_rows: int = 0, max_positions: int = 256):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer) + extra_rows, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger logits so greedy choices are decisive (no near-ties across batch shapes)
        model.lm_head.weight.mul_(8.0)
    return model


def tiny_model_dir(path: Path, layers: int = 2, hidden: int = 32, seed: int = 0, **kw) -> Path:
    tok, _ = tiny_tokenizer()
    model = tiny_model(tok, layers, hidden, seed, **kw)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def espeak_wav(path: Path, text: str, voice: str = "en-us") -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path

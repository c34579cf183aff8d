"""The evaluation tests' pieces: their tokenizer and model folder, noise audio, a counting speech
tokenizer, and the straightforward reference computation (one plain forward pass per file).

``EnergyTokenizer`` is a small deterministic speech tokenizer (frame log-energy quantized into a
few codes, deduplicated) with the attributes scoring needs. It is not the thing under test; it
counts its calls so cache tests can see re-tokenization.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from support.models import tiny_model_dir, tiny_tokenizer
from tinywave.speech.format import units_to_string
from tinywave.text.vocab import encode_text

RATE = 16000
TEXTS = ["the cat sat on the mat", "a dog ran to the park and the cat followed it home", "she went home"] * 10


def eval_tokenizer():
    """(tokenizer, layout) of the evaluation tests: BPE of TEXTS (60 ids), 16 [Hu], 8 [Pi], 4 [St]."""
    return tiny_tokenizer(TEXTS, vocab=60, n_hu=16)


def save_model_dir(folder: Path, seed: int = 0, max_positions: int = 256) -> Path:
    """The evaluation tests' model folder: a 2-layer, 32-wide, 2-head tiny_llama with eval_tokenizer()."""
    return tiny_model_dir(folder, tokenizer=eval_tokenizer()[0], heads=2, seed=seed, max_positions=max_positions)


class EnergyTokenizer:
    """25 Hz frames, log-energy quantized into ``n_codes`` bins, SpiritLM string (deduplicated)."""

    def __init__(self, n_codes: int = 12, frame: int = 640):
        self.n_codes = n_codes
        self.frame = frame
        self.calls = 0
        self.rates = {"hubert": RATE / frame}
        self.fingerprint = hashlib.sha256(f"energy:{n_codes}:{frame}".encode()).hexdigest()[:16]

    def encode_units(self, wav: np.ndarray) -> list[int]:
        n = len(wav) // self.frame
        frames = np.asarray(wav[: n * self.frame], np.float64).reshape(n, self.frame)
        db = 10 * np.log10((frames**2).mean(axis=1) + 1e-10)  # (n,)
        return [int(c) for c in np.clip(((db + 60) / 60 * self.n_codes).astype(int), 0, self.n_codes - 1)]

    def encode_string(self, wav: np.ndarray) -> str:
        self.calls += 1
        return units_to_string(self.encode_units(wav), rates=self.rates)


def write_wav(path: Path, seed: int, seconds: float = 0.6) -> Path:
    """Noise under a random per-frame envelope (so energy codes vary), 16 kHz PCM16."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    env = np.repeat(10 ** rng.uniform(-2.5, 0, size=n // 640 + 1), 640)[:n]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.5 * env * rng.standard_normal(n)).astype(np.float32), RATE, subtype="PCM_16")
    return path


def read_wav(path: Path) -> np.ndarray:
    wav, rate = sf.read(str(path), dtype="float32")
    assert rate == RATE
    return wav


# ---------------------------------------------------------------- reference computation


_PLAIN: dict[tuple, float] = {}  # (model, ids, score_from) -> summed log-probability


@torch.no_grad()
def reference_ll(model, ids: list[int], score_from: int = 1, reduce: str = "mean") -> float:
    """One plain forward pass; LL of ids[score_from:] given what precedes them (memoized per model)."""
    key = (model, tuple(ids), score_from)  # the model itself (hashed by identity) stays alive in the key
    if key not in _PLAIN:
        logits = model(torch.tensor([ids])).logits[0]  # (T, V)
        logp = torch.log_softmax(logits.double(), dim=-1)
        _PLAIN[key] = sum(logp[t - 1, ids[t]].item() for t in range(score_from, len(ids)))
    total = _PLAIN[key]
    return total / (len(ids) - score_from) if reduce == "mean" else total


def speech_ids(tok, layout, speech: str) -> list[int]:
    return tok(speech, add_special_tokens=False)["input_ids"]


def reference_file_ll(model, tok, layout, stok, path: Path, reduce: str = "mean") -> float:
    speech = stok.encode_string(read_wav(path))
    ids = [tok.bos_token_id, layout.speech_id] + speech_ids(tok, layout, speech) + [tok.eos_token_id]
    return reference_ll(model, ids, 1, reduce)


def reference_t2s(model, tok, layout, stok, prompt_text: str, path: Path, start: float, reduce: str = "mean") -> float:
    speech = stok.encode_string(read_wav(path)[int(round(start * RATE)) :])
    prompt = [tok.bos_token_id, layout.text_id] + encode_text(tok, prompt_text) + [layout.speech_id]  # [Speech] is context
    return reference_ll(model, prompt + speech_ids(tok, layout, speech) + [tok.eos_token_id], len(prompt), reduce)


def reference_s2t(model, tok, layout, stok, path: Path, start: float, ending: str, reduce: str = "mean") -> float:
    speech = stok.encode_string(read_wav(path)[: int(round(start * RATE))])
    prompt = [tok.bos_token_id, layout.speech_id] + speech_ids(tok, layout, speech) + [layout.text_id]  # [Text] is context
    return reference_ll(model, prompt + encode_text(tok, ending) + [tok.eos_token_id], len(prompt), reduce)


def outcome(p: float, n: float) -> float:
    return 1.0 if p > n else 0.5 if p == n else 0.0

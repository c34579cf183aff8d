"""Shared helpers for the evaluation tests (no tests here).

- ``EnergyTokenizer``: a small deterministic speech tokenizer (frame log-energy quantized
  into a few codes, deduplicated) with the attributes scoring needs. It is not the thing
  under test; it counts its calls so cache tests can see re-tokenization.
- tiny random Llama models with a BPE + speech tokenizer, saved as model directories;
- writers for tiny benchmark folders in the official layouts;
- the straightforward reference computation: one plain forward pass per file.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tinywave.speech.format import units_to_string
from tinywave.text.vocab import encode_text, train_bpe_tokenizer

RATE = 16000
TEXTS = ["the cat sat on the mat", "a dog ran to the park and the cat followed it home", "she went home"] * 10


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


# ---------------------------------------------------------------- models


def tiny_tokenizer():
    return train_bpe_tokenizer(TEXTS, vocab_size=60, n_hu=16, n_pi=8, n_st=4)


def tiny_model(tok, layout, seed: int = 0, max_positions: int = 256) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=layout.size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=max_positions, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


def save_model_dir(folder: Path, seed: int = 0, max_positions: int = 256) -> Path:
    tok, layout = tiny_tokenizer()
    tiny_model(tok, layout, seed, max_positions).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


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


# ---------------------------------------------------------------- benchmark folders


def make_storycloze(folder: Path, n: int = 6, seed: int = 0, items: bool = False, tie: int | None = None) -> Path:
    """n pairs ``s<i>_correct.wav`` / ``s<i>_incorrect.wav``; pair ``tie`` uses one file twice."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        pos = write_wav(folder / f"s{i}_correct.wav", seed * 1000 + 2 * i, 0.4 + 0.08 * (i % 3))
        neg = folder / f"s{i}_incorrect.wav"
        if i == tie:
            neg.write_bytes(pos.read_bytes())
        else:
            write_wav(neg, seed * 1000 + 2 * i + 1, 0.4 + 0.08 * ((i + 1) % 3))
        lines.append({"name": f"s{i}", "kind": ["outcome", "entity"][i % 2], "prompt_text": TEXTS[i % 3],
                      "correct_text": "the cat sat", "incorrect_text": "a dog ran home",
                      "correct_ending_start": 0.2, "incorrect_ending_start": 0.24})
    if items:
        (folder / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


def make_salmon(folder: Path, parts: tuple[str, ...] = ("speaker_consistency", "gender_consistency"), n: int = 3, seed: int = 5) -> Path:
    for p, part in enumerate(parts):
        for k in range(n):
            write_wav(folder / part / f"sample_{k}_0.wav", seed * 100 + p * 10 + 2 * k, 0.4)
            write_wav(folder / part / f"sample_{k}_1.wav", seed * 100 + p * 10 + 2 * k + 1, 0.48)
    return folder


LEXICAL_ROWS = [  # (id, voice, frequency, word, correct)
    ("1", "v1", 0, "blick", 1), ("1", "v1", 0, "brick", 0), ("1", "v2", 0, "blick", 1), ("1", "v2", 0, "brick", 0),
    ("2", "v1", 3, "cat", 1), ("2", "v1", 3, "cag", 0), ("2", "v2", 3, "cat", 1), ("2", "v2", 3, "cag", 0),
    ("3", "v1", 20, "dog", 1), ("3", "v1", 20, "dof", 0),
    ("4", "v2", 150, "the", 1), ("4", "v2", 150, "thi", 0),
]
SYNTACTIC_ROWS = [  # (id, voice, type, subtype, correct)
    ("1", "v1", "agreement", "a", 1), ("1", "v1", "agreement", "a", 0), ("1", "v2", "agreement", "a", 1), ("1", "v2", "agreement", "a", 0),
    ("2", "v1", "agreement", "b", 1), ("2", "v1", "agreement", "b", 0),
    ("3", "v1", "island", "c", 1), ("3", "v1", "island", "c", 0), ("4", "v2", "island", "c", 1), ("4", "v2", "island", "c", 0),
]


def make_lexical(split: Path, seed: int = 7, reverse: bool = True) -> Path:
    """A sWUGGY split with gold.csv listing rows in reverse order (pairing must not rely on order)."""
    split.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (id_, voice, freq, word, correct) in enumerate(LEXICAL_ROWS):
        name = f"f{seed}x{i:03d}"
        write_wav(split / f"{name}.wav", seed * 100 + i, 0.3 + 0.04 * (i % 4))
        rows.append({"id": id_, "filename": name, "voice": voice, "frequency": freq, "word": word, "phones": "x y", "length": len(word), "correct": correct})
    _write_csv(split / "gold.csv", ["id", "filename", "voice", "frequency", "word", "phones", "length", "correct"], rows[::-1] if reverse else rows)
    return split


def make_syntactic(split: Path, seed: int = 9) -> Path:
    split.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (id_, voice, type_, sub, correct) in enumerate(SYNTACTIC_ROWS):
        name = f"g{seed}x{i:03d}"
        write_wav(split / f"{name}.wav", seed * 100 + i, 0.3 + 0.04 * (i % 4))
        rows.append({"filename": name, "type": type_, "subtype": sub, "transcription": "the cat", "correct": correct, "id": id_, "voice": voice})
    _write_csv(split / "gold.csv", ["filename", "type", "subtype", "transcription", "correct", "id", "voice"], rows[::-1])
    return split


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def make_bench_root(root: Path) -> Path:
    make_storycloze(root / "sSC", n=4, seed=1, items=True)
    make_storycloze(root / "tSC", n=4, seed=2)
    make_salmon(root / "salmon", n=2)
    make_lexical(root / "sLM21" / "lexical" / "dev")
    make_syntactic(root / "sLM21" / "syntactic" / "dev")
    return root

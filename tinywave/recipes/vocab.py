"""Recipe: build the text + speech tokenizer directory.

    tinywave vocab --out runs/vocab --texts corpus/manifest.jsonl vocab_size=1000
    tinywave vocab --out runs/vocab --kind llama --sentencepiece llama2/tokenizer.model
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tinywave.config import field
from tinywave.files import load_jsonl
from tinywave.text.vocab import llama_tokenizer_with_speech, train_bpe_tokenizer, vocab_fingerprint

log = logging.getLogger(__name__)


@dataclass
class Config:
    out: str = field("", help="output tokenizer directory (Hugging Face format)")
    kind: str = field("bpe", help="bpe: train a small BPE on --texts; llama: wrap a SentencePiece tokenizer.model")
    texts: list[str] = field([], help="JSON-lines files with a 'text' key (manifests or token corpora), or plain .txt files")
    vocab_size: int = field(1000, help="BPE text vocabulary size (bpe only)")
    sentencepiece: str = field("", help="path to tokenizer.model (llama only)")
    n_hu: int = field(501, help="number of [Hu] tokens")
    n_pi: int = field(64, help="number of [Pi] tokens")
    n_st: int = field(100, help="number of [St] tokens")


def read_texts(paths: list[str]) -> list[str]:
    texts: list[str] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"text source {p} not found")
        if p.suffix == ".txt":
            texts += [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            texts += [o["text"] for o in load_jsonl(p) if isinstance(o.get("text"), str) and o["text"].strip()]
    return texts


def build(cfg: Config):
    builders = {
        "bpe": lambda: train_bpe_tokenizer(_need_texts(cfg), cfg.vocab_size, cfg.n_hu, cfg.n_pi, cfg.n_st),
        "llama": lambda: llama_tokenizer_with_speech(cfg.sentencepiece, cfg.n_hu, cfg.n_pi, cfg.n_st),
    }
    if cfg.kind not in builders:
        raise ValueError(f"kind={cfg.kind!r} is not known; choose one of {sorted(builders)}")
    return builders[cfg.kind]()


def _need_texts(cfg: Config) -> list[str]:
    texts = read_texts(cfg.texts)
    if not texts:
        raise ValueError("no text found to train the BPE tokenizer; pass --texts with manifests or .txt files holding text")
    return texts


def run(cfg: Config) -> int:
    if not cfg.out:
        raise ValueError("--out is required: the tokenizer directory to write")
    tok, layout = build(cfg)
    tok.save_pretrained(cfg.out)
    log.info("tokenizer -> %s: %d text tokens, [Text]=%d [Speech]=%d Hu@%d Pi@%d St@%d, %d ids, fingerprint %s",
             cfg.out, layout.text_size, layout.text_id, layout.speech_id, layout.hu_offset, layout.pi_offset,
             layout.st_offset, layout.size, vocab_fingerprint(tok))
    return 0

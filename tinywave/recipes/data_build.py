"""Recipe: token corpus -> interleaved, packed, memory-mapped training shards.

    tinywave data build --tokens corpus/tokens.jsonl --tokenizer runs/vocab --out runs/shards \
        seq_len=512 mixture.speech=0.7 mixture.interleaved=0.2 mixture.text=0.1
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from tinywave.config import field
from tinywave.data.interleave import DocIds, build_documents, unusable_share, validate_mixture
from tinywave.data.token_corpus import load_token_corpus
from tinywave.text.vocab import layout_from_tokenizer, load_tokenizer, vocab_fingerprint

log = logging.getLogger(__name__)


@dataclass
class Config:
    tokens: list[str] = field([], help="token corpus JSONL file(s) from `tinywave tokenize`")
    tokenizer: str = field("", help="text+speech tokenizer directory (or a model directory)")
    out: str = field("", help="output shard folder")
    seq_len: int = field(512, help="row length in tokens")
    mixture: dict[str, float] = field({"speech": 0.7, "interleaved": 0.2, "text": 0.1}, help="share of speech / interleaved / text documents")
    switch_prob: float = field(0.3, help="probability of switching modality after each word (interleaved documents)")
    passes: int = field(1, help="passes over the corpus (each with new random choices)")
    max_records: int = field(0, help="use only the first N records after a seeded shuffle (0: all)")
    rows_per_shard: int = field(4096, help="rows per .bin file")
    packing: str = field("whole", help="whole: documents kept whole inside rows (rows end in padding; a token also attends to "
                                       "the earlier documents of its row); split: padding-free, documents cut across rows and each "
                                       "its own attention segment (tinywave/data/shards.py)")
    seed: int = field(0, help="seed for the mixture, switch points and order")


def run(cfg: Config) -> int:
    from tinywave.data.shards import write_shards  # lazy: data.shards imports torch (~1.4 s); recipe modules import without it

    if not cfg.out or not cfg.tokens or not cfg.tokenizer:
        raise ValueError("data build needs --tokens FILE, --tokenizer DIR and --out DIR")
    validate_mixture(cfg.mixture)
    # 1. inputs: tokenizer (ids and fingerprint) and token records
    tok = load_tokenizer(cfg.tokenizer)
    layout = layout_from_tokenizer(tok)
    records = load_token_corpus(cfg.tokens)
    if cfg.max_records:
        random.Random(cfg.seed).shuffle(records)
        records = records[: cfg.max_records]
    ids = DocIds(bos=tok.bos_token_id, eos=tok.eos_token_id, layout=layout)
    for kind, n in unusable_share(records, cfg.mixture).items():
        why = {"interleaved": "no word timings (`words`; docs/DATA.md section 2)", "text": "no transcript"}[kind]
        log.warning("%d of %d records have %s, so they cannot make %s documents; their share goes to the kinds they can make "
                    "(index.json 'documents' counts what was built)", n, len(records), why, kind)
    # 2. documents -> packed rows -> shards
    counts: dict[str, int] = {}
    docs = build_documents(records, tok, ids, cfg.mixture, cfg.switch_prob, cfg.seed, passes=cfg.passes, counts=counts)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    index = write_shards(
        cfg.out, docs, cfg.seq_len, vocab_fingerprint(tok), len(tok), pad, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id,
        rows_per_shard=cfg.rows_per_shard, packing=cfg.packing, meta={"mixture": cfg.mixture, "switch_prob": cfg.switch_prob, "seed": cfg.seed,
                                  "passes": cfg.passes, "documents": counts, "source": cfg.tokens},
    )
    log.info("shards -> %s: %d rows x %d, %d tokens (%.0f%% filled), documents %s",
             cfg.out, index["count"], cfg.seq_len, index["tokens"], 100 * index["tokens"] / (index["count"] * cfg.seq_len), counts)
    return 0

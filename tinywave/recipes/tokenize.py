"""Recipe: manifest of audio -> token corpus of SpiritLM speech strings (docs/FORMATS.md).

    tinywave tokenize --manifest corpus/manifest.jsonl --tokenizer runs/speech_tokenizer \
        --out runs/tokens.jsonl workers=2

A rerun resumes (finished ids and recorded errors are skipped). Bad items go to
``<out stem>.errors.jsonl``; the job finishes the rest and exits 1 with a summary line.
Several machines: run ``rank=R world_size=N`` on each, then ``merge=true world_size=N``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tinywave.config import field

log = logging.getLogger(__name__)


@dataclass
class Config:
    manifest: str = field("", help="manifest JSONL (id, audio, optional text/words/speaker)")
    tokenizer: str = field("", help="speech tokenizer directory (or a model directory holding speech_tokenizer/)")
    out: str = field("", help="token corpus JSONL to write (errors go to <stem>.errors.jsonl)")
    workers: int = field(2, help="tokenizer processes (1: in this process)")
    chunk_seconds: float = field(100.0, help="audio is tokenized in chunks of this length (SpiritLM: 100 s)")
    min_seconds: float = field(0.08, help="shorter audio is a bad item (too_short)")
    resume: bool = field(True, help="skip ids already in --out or in the errors file; false: start over")
    retry_errors: bool = field(False, help="retry the items recorded in the errors file")
    rank: int = field(0, help="this job's share: items i with i % world_size == rank")
    world_size: int = field(1, help="number of jobs sharing the manifest")
    merge: bool = field(False, help="merge the world_size rank parts of --out (in manifest order) and exit")
    trust_pickle: bool = field(False, help="allow a release file that needs arbitrary unpickling (SpiritLM's F0 VQ-VAE model.pt; can run code: only for files you trust)")


def run(cfg: Config) -> int:
    # lazy: data.tokenize_job loads tinywave.speech (scipy, safetensors: ~0.2 s); `tinywave tokenize --help` stays light
    from tinywave.data.tokenize_job import merge_rank_parts, tokenize_corpus

    if not cfg.manifest or not cfg.out:
        raise ValueError("tokenize needs --manifest FILE and --out FILE (and --tokenizer DIR unless merge=true)")
    if cfg.merge:
        n_ok, n_bad = merge_rank_parts(cfg.manifest, cfg.out, cfg.world_size)
        log.info("merged %d ranks -> %s: %d records, %d errors", cfg.world_size, cfg.out, n_ok, n_bad)
        return 1 if n_bad else 0
    if not cfg.tokenizer:
        raise ValueError("--tokenizer DIR is required: a directory written by `tinywave units train`")
    s = tokenize_corpus(cfg.manifest, cfg.tokenizer, cfg.out, cfg.workers, cfg.chunk_seconds, cfg.min_seconds,
                        resume=cfg.resume, retry_errors=cfg.retry_errors, rank=cfg.rank, world_size=cfg.world_size, trust_pickle=cfg.trust_pickle)
    if s.multichannel:
        log.warning("%d files had more than one channel; they were averaged to mono", s.multichannel)
    speed = s.audio_seconds / s.wall_seconds if s.wall_seconds else 0.0
    log.info("%.1f s of audio in %.1f s (%.0fx real time) -> %s", s.audio_seconds, s.wall_seconds, speed, s.out)
    (log.warning if s.bad else log.info)(s.line())
    return 1 if s.bad else 0

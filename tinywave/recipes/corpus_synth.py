"""Recipe: synthesize the embedded spoken story corpus with espeak-ng.

    tinywave corpus synth --out data/corpus --stories 400 --seed 0 --workers 2
    tinywave corpus synth --out /tmp/tiny --small          # a few stories, for tests
    tinywave corpus synth --out data/target --stories 400 --first 800 --rate 1.3  # new stories, spoken faster
    tinywave corpus synth --out data/corpus rank=R world_size=N   # on each of N machines (shared folder)
    tinywave corpus synth --out data/corpus merge=true world_size=N  # then once: the manifest

Writes ``OUT/wavs/*.wav`` (16 kHz mono), ``OUT/manifest.jsonl`` (one whole story per
item, with word timings) and ``OUT/corpus.json`` (settings and totals). Same seed,
same bytes; a rerun resumes where an interrupted one stopped. Stories that share a
sentence with the benchmarks of the same seed (`tinywave corpus benchmarks`) are never
spoken here.

``--rate`` scales every story's base speaking rate (1.0: 170 words per minute, the
rate of every corpus made before the option existed; the seeded jitter is unchanged),
``--first N`` skips the seed's first N training stories, so a second corpus of the
same seed (e.g. a faster-spoken target domain) holds stories disjoint from the first.
Both are written to ``corpus.json`` and to every manifest item (``rate_factor``, ``first``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tinywave.config import field, to_dict
from tinywave.corpus.espeak import Synthesizer
from tinywave.corpus.synth import RunStats, finished_jobs, rank_chunks, rank_journal, run_jobs
from tinywave.corpus.training import CHUNK, DEFAULT_STORIES, JOURNAL, SMALL_STORIES, check_first, plan_corpus, write_corpus_manifest
from tinywave.corpus.voices import BASE_RATE, DEFAULT_TRAINING_VOICES, RATE_FACTORS, TRAINING_POOL, base_wpm, check_rate_factor, check_training_voices
from tinywave.files import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class Config:
    out: str = field("", help="output folder (wavs/, manifest.jsonl, corpus.json)")
    stories: int = field(DEFAULT_STORIES, help=f"number of stories (~14 s each; {DEFAULT_STORIES} is about 2 hours)")
    seed: int = field(0, help="seed of the stories, their voices, pitch and rate; must match `corpus benchmarks --seed`")
    small: bool = field(False, help=f"tiny corpus for tests ({SMALL_STORIES} stories), overrides --stories")
    workers: int = field(2, help="synthesis processes")
    voices: list[str] = field(list(DEFAULT_TRAINING_VOICES), help=f"training voices, used in turn; choose from {TRAINING_POOL}")
    rate: float = field(1.0, help=f"speaking-rate factor on the base rate ({BASE_RATE} words per minute at 1.0), "
                                  f"within {RATE_FACTORS[0]}..{RATE_FACTORS[1]}")
    first: int = field(0, help="skip the seed's first N training stories (ids then start at sN, e.g. s00800): "
                               "a corpus disjoint from any of the same seed with --stories <= N")
    rank: int = field(0, help="this machine's share: chunks of stories c with c % world_size == rank")
    world_size: int = field(1, help="number of machines sharing the corpus (same --out, e.g. a shared filesystem)")
    merge: bool = field(False, help="after every rank finished: write the manifest of all ranks' stories and exit")


def _merged(root: Path, jobs: list, world_size: int):
    """RunStats of every job finished by one of the ranks; refuses when a job is in none of them."""
    journals = [JOURNAL] + [rank_journal(JOURNAL, r, world_size) for r in range(world_size)]
    metas = finished_jobs(root, jobs, journals)
    missing = [j.id for j in jobs if j.id not in metas]
    if missing:
        raise ValueError(f"{len(missing)} stories (first {missing[0]}) were rendered by no rank of {world_size}; "
                         f"rerun the unfinished ranks (rank=R world_size={world_size}), then merge")
    return RunStats(metas=metas, skipped=len(jobs))


def run(cfg: Config) -> int:
    if not cfg.out:
        raise ValueError("--out is required: the corpus folder to write")
    n = SMALL_STORIES if cfg.small else cfg.stories
    if n < 1:
        raise ValueError(f"--stories {n}: ask for at least one story")
    voices = check_training_voices(cfg.voices)
    rate, first = check_rate_factor(cfg.rate), check_first(cfg.first)
    root = Path(cfg.out)
    # 1. plan: stories first.. of this seed (disjoint from its benchmarks), voices in turn, at the rate factor
    plan = plan_corpus(cfg.seed, n, voices, rate=rate, first=first)
    # 2. speak (parallel, resumable); with several machines this one's chunks, or merge them all
    jobs = [p.job for p in plan]
    if cfg.merge:
        stats = _merged(root, jobs, cfg.world_size)
    else:
        mine = rank_chunks(jobs, CHUNK, cfg.rank, cfg.world_size)
        stats = run_jobs(mine, root, rank_journal(JOURNAL, cfg.rank, cfg.world_size), cfg.workers, CHUNK, desc="corpus")
        if cfg.world_size > 1:
            log.info("rank %d of %d: %d stories rendered now, %d already there; when every rank is done run "
                     "`tinywave corpus synth ... merge=true world_size=%d`", cfg.rank, cfg.world_size, stats.rendered,
                     stats.skipped, cfg.world_size)
            return 1 if stats.failed else 0
    # 3. manifest and summary in plan order
    items = write_corpus_manifest(root, plan, stats.metas)
    seconds = sum(it.extra["seconds"] for it in items)
    atomic_write_json(root / "corpus.json", {
        "format": "tinywave-corpus-v1", "config": to_dict(cfg), "stories": len(items), "seconds": round(seconds, 2),
        "espeak": Synthesizer().version, "voices": voices, "rate": rate, "base_rate": base_wpm(rate), "first": first,
        "failed": stats.failed,
    })
    log.info("corpus -> %s: %d stories, %.2f h of audio (%d rendered now, %d already there)",
             root, len(items), seconds / 3600, stats.rendered, stats.skipped)
    if stats.failed:
        log.error("%d stories failed (see corpus.json); rerun the same command to retry them", len(stats.failed))
        return 1
    return 0

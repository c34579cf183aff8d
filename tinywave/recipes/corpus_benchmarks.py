"""Recipe: build the benchmark folders and probe sets from held-out stories, words and voices.

    tinywave corpus benchmarks --out data/benchmarks --seed 0 --workers 2
    tinywave corpus benchmarks --out /tmp/bench --small            # ~10 items each, for tests
    tinywave corpus benchmarks --out data/benchmarks --only storycloze --only syntactic
    tinywave corpus benchmarks --out data/target_bench --only storycloze --rate 1.3  # spoken faster

Writes the official layouts (docs/FORMATS.md): ``sSC/`` and ``tSC/`` (plus items.jsonl),
``salmon/<part>/``, ``sLM21/lexical/dev`` and ``sLM21/syntactic/dev`` with ``gold.csv``,
and ``probes/{ks,sid,pr}/{train,dev,test}.jsonl``. Nothing here is spoken in the training
corpus of the same seed (``tinywave corpus synth``): stories and sentences come from
the held-out pool, sWUGGY items are spoken only by held-out voices. Resumable.

``--rate`` scales the base speaking rate of the story voices (sSC/tSC and sBLIMP;
1.0: 170 words per minute, the plans of every earlier run); sWUGGY, SALMon and the
probes keep their own rates. It is written to ``benchmarks.json`` and, as ``rate_factor``,
to ``sSC/items.jsonl`` and ``tSC/items.jsonl``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinywave.config import field, to_dict
from tinywave.corpus import probe_sets as probes
from tinywave.corpus import salmon, slm21, storycloze
from tinywave.corpus.espeak import Synthesizer
from tinywave.corpus.split import training_stories
from tinywave.corpus.split import word_counts as count_stories
from tinywave.corpus.synth import run_jobs, worker_pool
from tinywave.corpus.training import DEFAULT_STORIES, SMALL_STORIES
from tinywave.corpus.voices import BASE_RATE, DEFAULT_TRAINING_VOICES, RATE_FACTORS, check_rate_factor, check_training_voices
from tinywave.data.manifest import read_manifest
from tinywave.files import atomic_write_json

log = logging.getLogger(__name__)
PARTS = ("storycloze", "salmon", "lexical", "syntactic", "probes")
SMALL_ITEMS = 10


@dataclass
class Config:
    out: str = field("", help="output folder for sSC/, tSC/, salmon/, sLM21/, probes/")
    seed: int = field(0, help="seed; must match `corpus synth --seed` for the benchmarks to be held out")
    small: bool = field(False, help=f"tiny benchmarks for tests ({SMALL_ITEMS} items each), overrides --items")
    items: int = field(200, help="items per benchmark (pairs per sSC/tSC/SALMon part/sWUGGY/sBLIMP; probe test split)")
    workers: int = field(2, help="synthesis processes")
    voices: list[str] = field(list(DEFAULT_TRAINING_VOICES), help="story voices for sSC/tSC/sBLIMP (those of `corpus synth --voices`)")
    rate: float = field(1.0, help=f"speaking-rate factor of sSC/tSC/sBLIMP on the base rate ({BASE_RATE} words per minute "
                                  f"at 1.0), within {RATE_FACTORS[0]}..{RATE_FACTORS[1]}; as `corpus synth --rate`")
    corpus: str = field("", help="manifest.jsonl of the training corpus to count word frequencies (default: count the stories `corpus synth` would speak)")
    corpus_stories: int = field(DEFAULT_STORIES, help="stories of the training corpus counted when --corpus is not given")
    only: list[str] = field([], help=f"build only these parts, from {list(PARTS)} (default: all)")


def word_counts(cfg: Config) -> Counter[str]:
    """Word frequencies of the training corpus: from its manifest, or from the generator."""
    if cfg.corpus:
        items, _ = read_manifest(cfg.corpus)
        return Counter(w for it in items for w in (it.text or "").split())
    return count_stories(training_stories(cfg.seed, SMALL_STORIES if cfg.small else cfg.corpus_stories))


def build_storycloze(cfg: Config, root: Path, items: int, pool: Any) -> dict:
    jobs = storycloze.plan_storycloze(cfg.seed, items, check_training_voices(cfg.voices), rate=cfg.rate)
    stats = run_jobs(jobs, root, storycloze.JOURNAL, cfg.workers, storycloze.CHUNK, desc="sSC/tSC", pool=pool)
    storycloze.write_items(root, jobs, stats.metas, rate=cfg.rate)
    return {"pairs": len(stats.metas), "failed": stats.failed}


def build_salmon(cfg: Config, root: Path, items: int, pool: Any) -> dict:
    jobs = salmon.plan_salmon(cfg.seed, items)
    stats = run_jobs(jobs, root, salmon.JOURNAL, cfg.workers, salmon.CHUNK, desc="SALMon", pool=pool)
    salmon.write_items(root, jobs, stats.metas)
    return {"pairs": len(stats.metas), "failed": stats.failed}


def build_lexical(cfg: Config, root: Path, items: int, pool: Any) -> dict:
    pairs = slm21.lexical_pairs(Synthesizer(), cfg.seed, items, word_counts(cfg))
    jobs, rows = slm21.plan_lexical(pairs, cfg.seed)
    stats = run_jobs(jobs, root, "slm21_lexical", cfg.workers, slm21.CHUNK, desc="sWUGGY", pool=pool)
    slm21.write_gold(root / slm21.LEXICAL_DIR / "gold.csv", slm21.LEXICAL_COLUMNS, rows, set(stats.metas))
    return {"pairs": len(pairs), "files": len(stats.metas), "failed": stats.failed}


def build_syntactic(cfg: Config, root: Path, items: int, pool: Any) -> dict:
    pairs = slm21.syntactic_pairs(cfg.seed, items)
    jobs, rows = slm21.plan_syntactic(pairs, cfg.seed, check_training_voices(cfg.voices), rate=cfg.rate)
    stats = run_jobs(jobs, root, "slm21_syntactic", cfg.workers, slm21.CHUNK, desc="sBLIMP", pool=pool)
    slm21.write_gold(root / slm21.SYNTACTIC_DIR / "gold.csv", slm21.SYNTACTIC_COLUMNS, rows, set(stats.metas))
    return {"pairs": len(pairs), "files": len(stats.metas), "failed": stats.failed}


def build_probes(cfg: Config, root: Path, items: int, pool: Any) -> dict:
    jobs = probes.plan_probes(cfg.seed, items)
    stats = run_jobs(jobs, root, "probes", cfg.workers, probes.CHUNK, desc="probes", pool=pool)
    return {"lines": probes.write_probes(root, jobs, stats.metas), "failed": stats.failed}


BUILDERS = {"storycloze": build_storycloze, "salmon": build_salmon, "lexical": build_lexical,
            "syntactic": build_syntactic, "probes": build_probes}


def run(cfg: Config) -> int:
    if not cfg.out:
        raise ValueError("--out is required: the benchmark folder to write")
    unknown = [p for p in cfg.only if p not in BUILDERS]
    if unknown:
        raise ValueError(f"--only {unknown}: not a benchmark part; choose from {list(PARTS)}")
    items = SMALL_ITEMS if cfg.small else cfg.items
    if items < 1:
        raise ValueError(f"--items {items}: ask for at least one item")
    check_rate_factor(cfg.rate)
    root = Path(cfg.out)
    summary = {}
    with worker_pool(cfg.workers) as pool:  # one set of workers for every part
        for part in cfg.only or PARTS:
            summary[part] = BUILDERS[part](cfg, root, items, pool)
            log.info("%s -> %s: %s", part, root, {k: v for k, v in summary[part].items() if k != "failed"})
    failed = {p: s["failed"] for p, s in summary.items() if s["failed"]}
    atomic_write_json(root / "benchmarks.json", {"format": "tinywave-benchmarks-v1", "config": to_dict(cfg),
                                                 "espeak": Synthesizer().version, "parts": summary})
    if failed:
        log.error("some items failed (see benchmarks.json): %s; rerun the same command to retry", {p: len(f) for p, f in failed.items()})
        return 1
    return 0

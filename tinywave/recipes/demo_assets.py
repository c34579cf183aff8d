"""`tinywave demo-assets`: pretrain the demo's teacher (and its tokenizers) once, to ship.

    tinywave demo-assets --out assets/demo --work assets_work      # ~1.5 h on 2 cores
    tinywave demo-assets --out /tmp/a --work /tmp/w --fast          # toy size, for tests

The demo, like the paper, starts from a *pretrained* teacher: it corrects it briefly on
its target data and distills it. This recipe makes that teacher with the project's own
stages, each resumable (rerun the same command after an interruption):

corpus (pretraining domain: normal speaking rate) -> speech tokenizer -> token corpus ->
text+speech vocabulary -> shards -> teacher pretraining -> export (bf16) -> teacher scored
on pretraining-domain sSC / tSC -> ``OUT/teacher/`` + ``OUT/provenance.json``.

``provenance.json`` records the exact command, commit, steps, data seed, the
fingerprints of the speech tokenizer, the vocabulary and the teacher weights, and the
teacher's measured scores; `tinywave demo` refuses assets whose fingerprints do not
match what the current code computes from the shipped files (tinywave/demo/assets.py).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

from tinywave.config import apply_fast, field, to_dict

log = logging.getLogger(__name__)


@dataclass
class CorpusSection:
    stories: int = field(5000, help="pretraining stories (~14 s each), spoken at the normal rate")
    voices: list[str] = field(["en-us+m3", "en-us+f2"], help="pretraining voices")
    bench_items: int = field(400, help="pretraining-domain sSC / tSC pairs the teacher is scored on")


@dataclass
class TokenizerSection:
    rate: float = field(12.5, help="unit rate in Hz")
    n_units: int = field(128, help="k-means units")
    text_vocab: int = field(512, help="BPE text vocabulary")


@dataclass
class TeacherSection:
    n_layers: int = field(6, help="teacher decoder layers")
    width: int = field(256, help="hidden size")
    heads: int = field(4, help="attention heads")
    ffn: int = field(704, help="FFN size")
    steps: int = field(3500, help="optimizer steps")
    batch_size: int = field(8, help="rows of seq_len tokens per step")
    lr: float = field(1e-3, help="peak learning rate")
    warmup: int = field(150, help="warm-up steps")
    passes: int = field(8, help="passes over the stories when building the shards (new mixture draws each)")


@dataclass
class Config:
    out: str = field("assets/demo", help="assets folder to write (teacher/ and provenance.json)")
    work: str = field("assets_work", help="working folder of the stages (corpus, shards, runs; not shipped)")
    seed: int = field(0, help="seed of every stage (the demo's benchmarks use the same seed: disjoint stories)")
    fast: bool = field(False, help="toy size (tests): the pipeline, not the quality, is under test")
    seq_len: int = field(512, help="shard row length in tokens")
    mixture: dict[str, float] = field({"speech": 0.6, "interleaved": 0.3, "text": 0.1},
                                      help="pretraining document mixture (interleaved documents teach cross-modal continuation)")
    precision: str = field("auto", help="auto (bf16 where this CPU runs it faster, measured), fp32 or bf16")
    workers: int = field(2, help="processes for synthesis and tokenization")
    corpus: CorpusSection = dc_field(default_factory=CorpusSection, metadata={"help": "pretraining corpus"})
    tokenizer: TokenizerSection = dc_field(default_factory=TokenizerSection, metadata={"help": "speech units and vocabulary"})
    teacher: TeacherSection = dc_field(default_factory=TeacherSection, metadata={"help": "teacher pretraining"})


FAST = {
    "seq_len": 128,
    "corpus": {"stories": 40, "bench_items": 8},
    "tokenizer": {"n_units": 32, "text_vocab": 300},
    "teacher": {"n_layers": 3, "width": 64, "heads": 2, "ffn": 128, "steps": 10, "batch_size": 4, "warmup": 2, "passes": 1},
}


# the configuration each stage depends on (a change reruns that stage and every later one)
DEPENDS = {
    "corpus": lambda c: [c["seed"], c["corpus"]["stories"], c["corpus"]["voices"]],
    "benchmarks": lambda c: [c["seed"], c["corpus"]["bench_items"], c["corpus"]["voices"]],
    "units": lambda c: [c["seed"], c["tokenizer"]],
    "vocab": lambda c: c["tokenizer"],
    "shards": lambda c: [c["seq_len"], c["mixture"], c["teacher"]["passes"]],
    "teacher": lambda c: [c["teacher"], c["precision"]],
}


def fast_config(cfg: Config) -> Config:
    """``cfg`` with FAST values for every key the user left at its default (explicit keys win)."""
    return apply_fast(cfg, FAST, Config)


def invocation(cfg: Config) -> list[str]:
    """The command line that made these assets: the CLI's own when run from it, else its equivalent."""
    if sys.argv[1:2] == ["demo-assets"]:
        return ["tinywave", *sys.argv[1:]]
    return ["tinywave", "demo-assets", "--out", cfg.out, "--work", cfg.work, *(["--fast"] if cfg.fast else [])]


def run(cfg: Config) -> int:
    from tinywave.demo.assets import build_provenance, copy_teacher, write_provenance
    from tinywave.demo.precision import choose_precision
    from tinywave.demo.stages import Stages, call

    if cfg.fast:
        cfg = fast_config(cfg)
    work, out = Path(cfg.work), Path(cfg.out)
    work.mkdir(parents=True, exist_ok=True)
    precision = choose_precision(cfg.precision)
    stages = Stages(work, to_dict(cfg), DEPENDS)
    corpus, bench, units, vocab = work / "corpus", work / "benchmarks", work / "speech_tokenizer", work / "vocab"
    tokens, shards, runs, models = work / "tokens", work / "shards", work / "runs", work / "models"

    # 1. pretraining-domain corpus and benchmarks (normal speaking rate)
    stages.run("corpus", lambda: call("corpus_synth", out=str(corpus), stories=cfg.corpus.stories, seed=cfg.seed,
                                      voices=cfg.corpus.voices, workers=cfg.workers))
    stages.run("benchmarks", lambda: call("corpus_benchmarks", out=str(bench), seed=cfg.seed, items=cfg.corpus.bench_items,
                                          only=["storycloze"], voices=cfg.corpus.voices, workers=cfg.workers))

    # 2. speech tokenizer, token corpus, text+speech vocabulary, shards
    stages.run("units", lambda: call("units_train", manifest=[str(corpus / "manifest.jsonl")], out=str(units),
                                     rate=cfg.tokenizer.rate, n_units=cfg.tokenizer.n_units, seed=cfg.seed, workers=cfg.workers))
    stages.run("tokenize", lambda: call("tokenize", manifest=str(corpus / "manifest.jsonl"), tokenizer=str(units),
                                        out=str(tokens / "all.jsonl"), workers=cfg.workers))
    stages.run("vocab", lambda: call("vocab", out=str(vocab), texts=[str(corpus / "manifest.jsonl")],
                                     vocab_size=cfg.tokenizer.text_vocab, n_hu=cfg.tokenizer.n_units))
    stages.run("shards", lambda: call("data_build", tokens=[str(tokens / "all.jsonl")], tokenizer=str(vocab), out=str(shards),
                                      seq_len=cfg.seq_len, mixture=cfg.mixture, passes=cfg.teacher.passes, seed=cfg.seed))

    # 3. the teacher, the bulk of the time
    t = cfg.teacher
    stages.run("teacher", clear=[runs / "teacher"], fn=lambda: call(
        "train", mode="pretrain", tokenizer=str(vocab), speech_tokenizer=str(units),
        model={"n_layers": t.n_layers, "width": t.width, "heads": t.heads, "kv_heads": t.heads, "ffn": t.ffn,
               "max_positions": max(1024, cfg.seq_len)},
        data={"shards": str(shards), "batch_size": t.batch_size},
        optim={"lr": t.lr, "warmup_steps": min(t.warmup, max(1, t.steps // 10))},
        train={"out": str(runs / "teacher"), "steps": t.steps, "seed": cfg.seed, "precision": precision.name,
               "log_every": 10, "ckpt_every": max(1, min(250, t.steps // 4)), "resume": True}))
    stages.run("export", lambda: call("export", checkpoint=str(runs / "teacher"), out=str(models / "teacher"), dtype="bfloat16"))

    # 4. the teacher's scores on its own domain, then the shipped folder and its provenance
    stages.run("eval", lambda: call("evaluate", model=[f"teacher={models / 'teacher'}"], bench=[str(bench)],
                                    out=str(work / "eval"), cross_modal=True))
    copy_teacher(models / "teacher", out / "teacher")
    results = json.loads((work / "eval" / "results.json").read_text())
    provenance = build_provenance(out, command=invocation(cfg),
                                  config=to_dict(cfg), precision=precision.as_dict(), results=results, stages=stages.state["done"])
    write_provenance(out, provenance)
    log.info("demo assets -> %s (teacher fingerprint %s; tSC %s, sSC %s)", out, provenance["fingerprints"]["teacher"],
             provenance["scores"].get("tSC"), provenance["scores"].get("sSC"))
    return 0

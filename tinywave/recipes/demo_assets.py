"""`tinywave demo-assets`: pretrain the demo's teacher (and its tokenizers) and its unit vocoder once, to ship.

    tinywave demo-assets --out assets/demo --work assets_work                  # ~1.5 h + the vocoder on 2 cores
    tinywave demo-assets --out assets/demo --work assets_work parts=[vocoder]  # the vocoder only, for the shipped teacher
    tinywave demo-assets --out /tmp/a --work /tmp/w --fast                      # toy size, for tests

The demo, like the paper, starts from a *pretrained* teacher: it corrects it briefly on
its target data and distills it. This recipe makes that teacher with the project's own
stages, each resumable (rerun the same command after an interruption):

corpus (pretraining domain: normal speaking rate) -> speech tokenizer -> token corpus ->
text+speech vocabulary -> shards -> teacher pretraining -> export (bf16) -> teacher scored
on pretraining-domain sSC / tSC -> ``OUT/teacher/`` + ``OUT/provenance.json``; then the unit
vocoder (`tinywave vocoder train`: HiFi-GAN with an iSTFT head, mel/STFT warm-up, then
multi-period / multi-scale discriminators) on the same corpus's units of the teacher's
speech tokenizer, measured against Griffin-Lim on held-out utterances (MCD, recognizer
WER) -> ``OUT/vocoder/`` (float16 generator) + ``provenance.json["vocoder"]``
(tinywave/demo/vocoder_asset.py).

``provenance.json`` records the exact command, commit, steps, data seed, the
fingerprints of the speech tokenizer, the vocabulary and the teacher weights, and the
teacher's measured scores; `tinywave demo` refuses assets whose fingerprints do not
match what the current code computes from the shipped files (tinywave/demo/assets.py).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, Callable, ClassVar

from tinywave.config import apply_fast, field, to_dict
from tinywave.demo.assets import build_provenance, check_assets, copy_teacher, git_commit, read_provenance, write_provenance
from tinywave.demo.precision import choose_precision
from tinywave.demo.stages import Stages, call
from tinywave.demo.vocoder_asset import VOCODER_DIR, ship_vocoder, vocoder_provenance

log = logging.getLogger(__name__)


@dataclass
class CorpusSection:
    stories: int = field(5000, help="pretraining stories (~14 s each), spoken at the normal rate")
    voices: list[str] = field(["en-us+m3", "en-us+f2"], help="pretraining voices")
    bench_items: int = field(400, help="pretraining-domain sSC / tSC pairs the teacher is scored on")


@dataclass
class TokenizerSection:
    # 12.5 Hz halves story length against 25 Hz (measured): docs/DISTILLATION.md, "How the demo was sized"
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
    warmup_steps: int = field(150, help="warm-up steps")
    passes: int = field(8, help="passes over the stories when building the shards (new mixture draws each)")


@dataclass
class VocoderSection:
    # measured on a 2-core 2.0 GHz EPYC: 0.58 s per mel/STFT step, 4.5 s per adversarial step -> ~1 h 45 min in all
    steps: int = field(4000, help="training steps: mel/STFT warm-up, then HiFi-GAN's adversarial steps")
    adversarial_start: int = field(3000, help="step at which the discriminators join (-1: never, regression only)")
    max_items: int = field(2000, help="pretraining utterances it uses, held-out ones included (0: every story)")
    heldout: int = field(100, help="held-out utterances of the MCD and word-error-rate figures (never trained on)")
    asr: str = field("pocketsphinx", help="recognizer of the held-out word error rate (pocketsphinx: with a trigram model of "
                                          "the training transcripts, stated in eval.json; '' : none)")


@dataclass
class Config:
    RENAMED: ClassVar[dict[str, str]] = {"teacher.warmup": "teacher.warmup_steps"}
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
    parts: list[str] = field(["teacher", "vocoder"], help="what to build: teacher (with its tokenizers), vocoder (for the "
                             "shipped teacher's speech tokenizer); parts=[vocoder] keeps the shipped teacher")
    vocoder: VocoderSection = dc_field(default_factory=VocoderSection, metadata={"help": "the unit vocoder (HiFi-GAN)"})


FAST = {
    "seq_len": 128,
    "vocoder": {"steps": 2, "adversarial_start": 1, "max_items": 12, "heldout": 2, "asr": ""},
    "corpus": {"stories": 40, "bench_items": 8},
    "tokenizer": {"n_units": 32, "text_vocab": 300},
    "teacher": {"n_layers": 3, "width": 64, "heads": 2, "ffn": 128, "steps": 10, "batch_size": 4, "warmup_steps": 2, "passes": 1},
}


# the configuration each stage depends on (tinywave/demo/stages.py: a change reruns that stage and its downstream)
DEPENDS = {
    "corpus": lambda c: [c["seed"], c["corpus"]["stories"], c["corpus"]["voices"]],
    "benchmarks": lambda c: [c["seed"], c["corpus"]["bench_items"], c["corpus"]["voices"]],
    "units": lambda c: [c["seed"], c["tokenizer"]],
    "vocab": lambda c: c["tokenizer"],
    "shards": lambda c: [c["seq_len"], c["mixture"], c["teacher"]["passes"]],
    "teacher": lambda c: [teacher_inputs(c["teacher"]), c["precision"]],
    "vocoder": lambda c: c["vocoder"],
}

# the stages whose outputs each stage reads: a stage reruns when one of them ran after it
UPSTREAM = {
    "corpus": (),
    "benchmarks": (),
    "units": ("corpus",),
    "tokenize": ("corpus", "units"),
    "vocab": ("corpus",),
    "shards": ("tokenize", "vocab"),
    "teacher": ("shards", "units", "vocab"),
    "export": ("teacher",),
    "eval": ("export", "benchmarks"),
    "vocoder": ("corpus", "export"),
}


def teacher_inputs(section: dict[str, Any]) -> dict[str, Any]:
    """The teacher section as the stages record it: under the key ``warmup`` that work folders made before
    ``teacher.warmup_steps`` recorded, so resuming one does not rerun the teacher."""
    return {("warmup" if key == "warmup_steps" else key): value for key, value in section.items()}


def fast_config(cfg: Config) -> Config:
    """``cfg`` with FAST values for every key the user left at its default (explicit keys win)."""
    return apply_fast(cfg, FAST, Config)


def invocation(cfg: Config) -> list[str]:
    """The command line that made these assets: the CLI's own when run from it, else its equivalent."""
    if sys.argv[1:2] == ["demo-assets"]:
        return ["tinywave", *sys.argv[1:]]
    return ["tinywave", "demo-assets", "--out", cfg.out, "--work", cfg.work, *(["--fast"] if cfg.fast else [])]


def run(cfg: Config) -> int:
    if cfg.fast:
        cfg = fast_config(cfg)
    unknown = sorted(set(cfg.parts) - set(PARTS))
    if unknown or not cfg.parts:
        raise ValueError(f"parts={cfg.parts}: choose from {list(PARTS)} (e.g. parts=[vocoder] trains only the vocoder "
                         "for the shipped teacher's speech tokenizer)")
    work = Path(cfg.work)
    work.mkdir(parents=True, exist_ok=True)
    precision = choose_precision(cfg.precision)
    stages = Stages(work, to_dict(cfg), DEPENDS, UPSTREAM)

    # 1. pretraining-domain corpus (normal speaking rate): every part reads it
    stages.run("corpus", lambda: call("corpus_synth", out=str(work / "corpus"), stories=cfg.corpus.stories, seed=cfg.seed,
                                      voices=cfg.corpus.voices, workers=cfg.workers))
    # 2. the parts asked for, in order: the teacher (and its tokenizers), then the vocoder for its speech tokenizer
    for part in PARTS:
        if part in cfg.parts:
            PARTS[part](cfg, stages, call, precision)
    return 0


def _teacher_part(cfg: Config, stages: Any, call: Callable[..., None], precision: Any) -> None:
    """Speech tokenizer, vocabulary, shards, teacher pretraining, export, scores -> OUT/teacher + provenance.json."""
    work, out = Path(cfg.work), Path(cfg.out)
    corpus, bench, units, vocab = work / "corpus", work / "benchmarks", work / "speech_tokenizer", work / "vocab"
    tokens, shards, runs, models = work / "tokens", work / "shards", work / "runs", work / "models"
    stages.run("benchmarks", lambda: call("corpus_benchmarks", out=str(bench), seed=cfg.seed, items=cfg.corpus.bench_items,
                                          only=["storycloze"], voices=cfg.corpus.voices, workers=cfg.workers))

    # speech tokenizer, token corpus, text+speech vocabulary, shards
    stages.run("units", lambda: call("units_train", manifest=[str(corpus / "manifest.jsonl")], out=str(units),
                                     rate=cfg.tokenizer.rate, n_units=cfg.tokenizer.n_units, seed=cfg.seed, workers=cfg.workers))
    stages.run("tokenize", lambda: call("tokenize", manifest=str(corpus / "manifest.jsonl"), tokenizer=str(units),
                                        out=str(tokens / "all.jsonl"), workers=cfg.workers))
    stages.run("vocab", lambda: call("vocab", out=str(vocab), texts=[str(corpus / "manifest.jsonl")],
                                     vocab_size=cfg.tokenizer.text_vocab, n_hu=cfg.tokenizer.n_units))
    stages.run("shards", lambda: call("data_build", tokens=[str(tokens / "all.jsonl")], tokenizer=str(vocab), out=str(shards),
                                      seq_len=cfg.seq_len, mixture=cfg.mixture, passes=cfg.teacher.passes, seed=cfg.seed))

    # the teacher, the bulk of the time
    t = cfg.teacher
    stages.run("teacher", clear=[runs / "teacher"], fn=lambda: call(
        "train", mode="pretrain", tokenizer=str(vocab), speech_tokenizer=str(units),
        model={"n_layers": t.n_layers, "width": t.width, "heads": t.heads, "kv_heads": t.heads, "ffn": t.ffn,
               "max_positions": max(1024, cfg.seq_len)},
        data={"shards": str(shards), "batch_size": t.batch_size},
        optim={"lr": t.lr, "warmup_steps": min(t.warmup_steps, max(1, t.steps // 10))},
        train={"out": str(runs / "teacher"), "steps": t.steps, "seed": cfg.seed, "precision": precision.name,
               "log_every": 10, "ckpt_every": max(1, min(250, t.steps // 4)), "resume": True}))
    stages.run("export", lambda: call("export", checkpoint=str(runs / "teacher"), out=str(models / "teacher"), dtype="bf16"))

    # the teacher's scores on its own domain, then the shipped folder and its provenance
    stages.run("eval", lambda: call("evaluate", model=[f"teacher={models / 'teacher'}"], bench=[str(bench)],
                                    out=str(work / "eval"), cross_modal=True))
    earlier = read_provenance(out) if (out / "provenance.json").is_file() else {}
    copy_teacher(models / "teacher", out / "teacher")
    results = json.loads((work / "eval" / "results.json").read_text())
    provenance = build_provenance(out, command=invocation(cfg),
                                  config=to_dict(cfg), precision=precision.as_dict(), results=results, stages=stages.state["done"])
    kept = earlier.get("vocoder")
    if kept and kept.get("speech_tokenizer") == provenance["fingerprints"]["speech_tokenizer"]:
        provenance["vocoder"] = kept  # the shipped vocoder was trained on this very speech tokenizer: still valid
    elif (out / "vocoder").exists():
        shutil.rmtree(out / "vocoder")  # trained on another tokenizer's units; parts=[vocoder] makes a new one
    write_provenance(out, provenance)
    log.info("demo assets -> %s (teacher fingerprint %s; tSC %s, sSC %s)", out, provenance["fingerprints"]["teacher"],
             provenance["scores"].get("tSC"), provenance["scores"].get("sSC"))


def _vocoder_part(cfg: Config, stages: Any, call: Callable[..., None], precision: Any) -> None:
    """The unit vocoder on the pretraining corpus's units of the shipped teacher's speech tokenizer -> OUT/vocoder."""
    # lazy: speech.tokenizer imports scipy (~0.2 s); `tinywave demo-assets --help` imports this module without it
    from tinywave.speech.tokenizer import SpeechTokenizer

    work, out, v = Path(cfg.work), Path(cfg.out), cfg.vocoder
    provenance = check_assets(out)  # the teacher (and speech tokenizer) this vocoder serves
    tokenizer = out / "teacher" / "speech_tokenizer"
    info = stages.run("vocoder", clear=[work / "vocoder"], fn=lambda: call(
        "vocoder_train", manifest=str(work / "corpus" / "manifest.jsonl"), tokenizer=str(tokenizer), out=str(work / "vocoder"),
        train={"steps": v.steps, "seed": cfg.seed, "resume": True}, data={"heldout": v.heldout, "max_items": v.max_items},
        loss={"adversarial_start": v.adversarial_start}, eval={"asr": v.asr, "samples": 3}))
    ship_vocoder(work / "vocoder", out / VOCODER_DIR)
    fingerprint = SpeechTokenizer.load(tokenizer).fingerprint
    provenance["vocoder"] = vocoder_provenance(out / VOCODER_DIR, invocation(cfg), git_commit(written=out), fingerprint,
                                               to_dict(cfg)["vocoder"], info.get("seconds"))
    provenance["bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.name != "provenance.json")
    write_provenance(out, provenance)
    entry = provenance["vocoder"]
    log.info("demo vocoder -> %s after %s steps: held-out MCD %s dB (%s below Griffin-Lim), %.3f s per audio second on 1 thread",
             out / VOCODER_DIR, entry["steps"], entry["mcd_db"], entry["mcd_below_griffinlim"], entry["real_time_factor_1_thread"])


PARTS: dict[str, Callable[..., None]] = {"teacher": _teacher_part, "vocoder": _vocoder_part}

"""`tinywave demo`: the whole TinyWave pipeline on the embedded default, with a report.

corpus -> benchmarks -> speech tokenizer -> token corpus -> text+speech vocabulary ->
held-out split -> shards -> teacher -> student + two CE baselines -> export ->
evaluation -> report.md / report.json / plots.

Each stage writes into its own folder under ``--out`` and is recorded in
``--out/stages.json`` when it completes, so an interrupted demo continues where it
stopped (training stages also resume from their own checkpoints). The budget follows
reference/demo-calibration.md: the teacher gets the bulk of the time and all the
training stories; the student and both baselines get the same, smaller budget on the
same subset, so soft targets carry knowledge that the subset's hard labels do not.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, Callable

from tinywave.config import field, to_dict

log = logging.getLogger(__name__)

STUDENTS = ("student", "baseline_pruned_ce", "baseline_random_ce")


@dataclass
class CorpusSection:
    stories: int = field(800, help="training stories synthesized (~14 s each); held-out ones are split off for perplexity")
    voices: list[str] = field(["en-us+m3", "en-us+f2"], help="training voices (reference/demo-calibration.md: fewer voices learn faster)")
    bench_items: int = field(200, help="pairs per benchmark (sSC, tSC)")
    benchmarks: list[str] = field(["storycloze"], help="benchmark parts to build: storycloze, salmon, lexical, syntactic")
    heldout: float = field(0.06, help="share of stories held out for normalized perplexity (split by story)")


@dataclass
class TokenizerSection:
    rate: float = field(12.5, help="unit rate in Hz (12.5 halves story length against 25, see reference/demo-calibration.md)")
    n_units: int = field(128, help="k-means units")
    text_vocab: int = field(512, help="BPE text vocabulary")


@dataclass
class TeacherSection:
    n_layers: int = field(6, help="teacher decoder layers")
    width: int = field(256, help="hidden size")
    heads: int = field(4, help="attention heads")
    ffn: int = field(704, help="FFN size")
    steps: int = field(300, help="optimizer steps (the bulk of the demo's time)")
    batch_size: int = field(8, help="rows of seq_len tokens per step")
    lr: float = field(1e-3, help="peak learning rate (2e-3 stalls a 6-layer teacher on a plateau for ~150 steps)")
    passes: int = field(4, help="passes over the training stories when building its shards (new mixture draws each)")


@dataclass
class StudentSection:
    n_layers: int = field(2, help="student layers kept from the teacher at full width (uniform spacing)")
    steps: int = field(90, help="optimizer steps, the same for the student and both baselines")
    batch_size: int = field(8, help="rows of seq_len tokens per step")
    lr: float = field(1e-3, help="peak learning rate")
    subset: float = field(0.25, help="share of the training stories the student and baselines see")
    passes: int = field(4, help="passes over the subset when building its shards")
    kl_weight: float = field(1.0, help="weight of the soft-target KL")
    temperature: float = field(2.0, help="KL temperature")
    hidden_weight: float = field(0.1, help="weight of the hidden-state loss (cosine)")
    attn_weight: float = field(0.1, help="weight of the attention-map KL")


@dataclass
class Config:
    out: str = field("demo_out", help="output folder (resumable: rerun the same command to continue)")
    seed: int = field(0, help="seed of every stage")
    fast: bool = field(False, help="a tiny run of every stage (~3 minutes) for tests; the quality numbers mean nothing")
    seq_len: int = field(512, help="shard row length in tokens")
    mixture: dict[str, float] = field({"speech": 0.8, "interleaved": 0.15, "text": 0.05}, help="document mixture of the shards")
    precision: str = field("fp32", help="fp32 or bf16 (bf16 autocast is slower than fp32 on CPUs without bf16 instructions)")
    workers: int = field(2, help="processes for synthesis and tokenization")
    cross_modal: bool = field(False, help="also score text->speech and speech->text benchmark variants (slower)")
    vocoder_steps: int = field(40, help="HiFi-GAN steps of the demo vocoder; samples use it once its held-out MCD beats "
                                         "the Griffin-Lim baseline (~650+ steps), else the baseline")
    vocoder_items: int = field(300, help="utterances the demo vocoder is fitted on")
    prompt_seconds: float = field(3.0, help="length of the held-out audio prompt of the generated samples")
    corpus: CorpusSection = dc_field(default_factory=CorpusSection, metadata={"help": "embedded corpus"})
    tokenizer: TokenizerSection = dc_field(default_factory=TokenizerSection, metadata={"help": "speech units and vocabulary"})
    teacher: TeacherSection = dc_field(default_factory=TeacherSection, metadata={"help": "teacher pretraining"})
    student: StudentSection = dc_field(default_factory=StudentSection, metadata={"help": "student distillation and baselines"})


# --fast: every stage at toy size (the pipeline, not the quality, is under test)
FAST = {
    "seq_len": 128,
    "vocoder_steps": 2,
    "vocoder_items": 12,
    "corpus": {"stories": 48, "bench_items": 12, "heldout": 0.15},
    "tokenizer": {"n_units": 32, "text_vocab": 300},
    "teacher": {"n_layers": 3, "width": 64, "heads": 2, "ffn": 128, "steps": 12, "batch_size": 4, "passes": 1},
    "student": {"n_layers": 1, "steps": 6, "batch_size": 4, "subset": 0.5, "passes": 1},
}


def _apply_fast(cfg: Config) -> Config:
    from tinywave.config import from_dict

    tree = to_dict(cfg)
    for key, value in FAST.items():
        tree[key] = {**tree[key], **value} if isinstance(value, dict) else value
    return from_dict(Config, tree)


# ---------------------------------------------------------------- stage bookkeeping


class Stages:
    """Completed stages of one demo folder (``stages.json``), refusing a changed config."""

    def __init__(self, out: Path, config: dict[str, Any]):
        self.path = out / "stages.json"
        self.state: dict[str, Any] = {"config": config, "done": {}}
        if self.path.is_file():
            saved = json.loads(self.path.read_text())
            if saved.get("config") != config:
                raise ValueError(f"{out} holds a demo run made with another configuration; rerun with the same options, "
                                 f"or pass a new --out (or delete {out}) to start over")
            self.state = saved

    def run(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        from tinywave.files import atomic_write_text

        if name in self.state["done"]:
            log.info("demo: %s already done, skipping", name)
            return self.state["done"][name]
        log.info("demo: %s ...", name)
        t0 = time.monotonic()
        info = fn() or {}
        info["seconds"] = round(time.monotonic() - t0, 1)
        self.state["done"][name] = info
        atomic_write_text(self.path, json.dumps(self.state, indent=1))
        log.info("demo: %s done in %.0f s", name, info["seconds"])
        return info


def _call(module: str, **sections: Any) -> None:
    """Run a stage recipe with its own Config built from a nested dict (unknown keys are errors)."""
    import importlib

    from tinywave.config import from_dict

    recipe = importlib.import_module(f"tinywave.recipes.{module}")
    code = recipe.run(from_dict(recipe.Config, sections))
    if code:
        raise RuntimeError(f"demo stage `tinywave {module}` failed with exit code {code}; see the log above")


# ---------------------------------------------------------------- stages


def split_tokens(tokens: Path, out: Path, heldout: float, subset: float, seed: int) -> dict[str, Any]:
    """train.jsonl / heldout.jsonl by story, and subset.jsonl: the students' share of train."""
    from tinywave.data.token_corpus import load_token_corpus, split_records
    from tinywave.files import atomic_write_text

    records = load_token_corpus([tokens])
    train, held = split_records(records, heldout, seed)
    rest, sub = split_records(train, subset, seed + 1)
    if not train or not held or not sub:
        raise ValueError(f"{tokens}: {len(records)} utterances are too few to split (train {len(train)}, held-out {len(held)}, "
                         f"student subset {len(sub)}); synthesize more stories (corpus.stories)")
    for name, part in {"train": train, "heldout": held, "subset": sub}.items():
        atomic_write_text(out / f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in part))
    return {"utterances": {"train": len(train), "heldout": len(held), "subset": len(sub)}}


def _student_run(cfg: Config, runs: Path, name: str, shards: Path, teacher_dir: Path) -> None:
    s = cfg.student
    losses = {
        "student": {"kl_weight": s.kl_weight, "temperature": s.temperature, "hidden_weight": s.hidden_weight,
                    "hidden_kind": "cosine", "attn_weight": s.attn_weight},
        "baseline_pruned_ce": {"kl_weight": 0.0, "hidden_weight": 0.0, "attn_weight": 0.0},
        "baseline_random_ce": {"kl_weight": 0.0, "hidden_weight": 0.0, "attn_weight": 0.0},
    }
    init = {"student": "pruned", "baseline_pruned_ce": "pruned", "baseline_random_ce": "random"}
    _call("distill",
          teacher={"dir": str(teacher_dir)},
          student={"n_layers": s.n_layers, "init": init[name]},
          loss={"ce_weight": 1.0, **losses[name]},
          data={"shards": str(shards), "batch_size": s.batch_size},
          optim={"lr": s.lr, "warmup_steps": max(1, s.steps // 10)},
          train={"out": str(runs / name), "steps": s.steps, "seed": cfg.seed, "precision": cfg.precision,
                 "log_every": 5, "ckpt_every": max(1, s.steps // 3), "resume": True, "parallel": "none"})


def held_out_prompt(tokens: Path, corpus: Path, out: Path, seconds: float) -> tuple[str, Path]:
    """(first words of a held-out story, its first ``seconds`` of audio as a wav) for the samples."""
    import soundfile as sf

    from tinywave.audio.io import SAMPLE_RATE, load_audio
    from tinywave.files import read_jsonl

    held = {obj["id"] for _, obj, _ in read_jsonl(tokens) if obj}
    item = next((obj for _, obj, _ in read_jsonl(corpus / "manifest.jsonl") if obj and obj["id"] in held), None)
    if item is None:
        raise ValueError(f"no held-out utterance of {tokens} is in {corpus / 'manifest.jsonl'}; rerun the demo in a new --out")
    audio, _ = load_audio(corpus / item["audio"])  # [samples] at 16 kHz
    out.mkdir(parents=True, exist_ok=True)
    sf.write(out / "prompt0.wav", audio[: int(seconds * SAMPLE_RATE)], SAMPLE_RATE)
    return " ".join(item["text"].split()[:6]), out / "prompt0.wav"


def _samples(cfg: Config, out: Path, models: Path, tokens: Path, corpus: Path) -> dict[str, Any]:
    from tinywave.generate.samples import default_specs, write_samples
    from tinywave.generate.decode import Sampling
    from tinywave.generate.speechlm import GenerationOptions

    text, wav = held_out_prompt(tokens / "heldout.jsonl", corpus, out / "samples" / "prompts", cfg.prompt_seconds)
    options = GenerationOptions(max_new_tokens=100, max_seconds=6.0,
                                sampling=Sampling(greedy=False, temperature=0.8, top_p=0.95, seed=cfg.seed))
    vocoder = sample_vocoder(out / "vocoder")
    index = write_samples({n: models / n for n in ("teacher", "student")}, out / "samples", default_specs([text], [wav]),
                          options, vocoder=vocoder)
    return {"index": str(index.relative_to(out)), "vocoder": str(vocoder.relative_to(out))}


def sample_vocoder(folder: Path) -> Path:
    """The trained HiFi-GAN if its held-out MCD beat the Griffin-Lim baseline saved beside it, else that baseline."""
    report = json.loads((folder / "eval.json").read_text(encoding="utf-8"))
    return folder if report.get("lower_mcd") == "hifigan" else folder / "griffinlim"


def run(cfg: Config) -> int:
    from tinywave.demo.report import describe_models, write_demo_report

    if cfg.fast:
        cfg = _apply_fast(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out, to_dict(cfg))
    corpus, bench, units, vocab = out / "corpus", out / "benchmarks", out / "speech_tokenizer", out / "vocab"
    tokens, shards, runs, models = out / "tokens", out / "shards", out / "runs", out / "models"

    # 1. data: the spoken corpus and held-out benchmarks (same seed: benchmarks avoid corpus stories)
    stages.run("corpus", lambda: _call("corpus_synth", out=str(corpus), stories=cfg.corpus.stories, seed=cfg.seed,
                                       voices=cfg.corpus.voices, workers=cfg.workers))
    stages.run("benchmarks", lambda: _call("corpus_benchmarks", out=str(bench), seed=cfg.seed, items=cfg.corpus.bench_items,
                                           only=cfg.corpus.benchmarks, voices=cfg.corpus.voices,
                                           corpus=str(corpus / "manifest.jsonl"), workers=cfg.workers))

    # 2. speech tokenizer, token corpus, text+speech vocabulary
    stages.run("units", lambda: _call("units_train", manifest=[str(corpus / "manifest.jsonl")], out=str(units),
                                      rate=cfg.tokenizer.rate, n_units=cfg.tokenizer.n_units, seed=cfg.seed, workers=cfg.workers))
    stages.run("tokenize", lambda: _call("tokenize", manifest=str(corpus / "manifest.jsonl"), tokenizer=str(units),
                                         out=str(tokens / "all.jsonl"), workers=cfg.workers))
    stages.run("vocab", lambda: _call("vocab", out=str(vocab), texts=[str(corpus / "manifest.jsonl")],
                                      vocab_size=cfg.tokenizer.text_vocab, n_hu=cfg.tokenizer.n_units))
    stages.run("split", lambda: split_tokens(tokens / "all.jsonl", tokens, cfg.corpus.heldout, cfg.student.subset, cfg.seed))

    # 3. shards: the teacher's from every training story, the students' from the subset
    for name, src, passes in (("teacher", "train", cfg.teacher.passes), ("student", "subset", cfg.student.passes)):
        stages.run(f"shards_{name}", lambda name=name, src=src, passes=passes: _call(
            "data_build", tokens=[str(tokens / f"{src}.jsonl")], tokenizer=str(vocab), out=str(shards / name),
            seq_len=cfg.seq_len, mixture=cfg.mixture, passes=passes, seed=cfg.seed))

    # 4. teacher from scratch, the bulk of the time
    t = cfg.teacher
    stages.run("teacher", lambda: _call(
        "train", mode="pretrain", tokenizer=str(vocab), speech_tokenizer=str(units),
        model={"n_layers": t.n_layers, "width": t.width, "heads": t.heads, "kv_heads": t.heads, "ffn": t.ffn,
               "max_positions": max(1024, cfg.seq_len)},
        data={"shards": str(shards / "teacher"), "batch_size": t.batch_size},
        optim={"lr": t.lr, "warmup_steps": max(1, t.steps // 15)},
        train={"out": str(runs / "teacher"), "steps": t.steps, "seed": cfg.seed, "precision": cfg.precision,
               "log_every": 10, "ckpt_every": max(1, t.steps // 4), "resume": True}))
    stages.run("export_teacher", lambda: _call("export", checkpoint=str(runs / "teacher"), out=str(models / "teacher")))

    # 5. the student (layer-aligned distillation) and both CE baselines: same architecture, data and steps
    for name in STUDENTS:
        stages.run(name, lambda name=name: _student_run(cfg, runs, name, shards / "student", models / "teacher"))
        stages.run(f"export_{name}", lambda name=name: _call("export", checkpoint=str(runs / name), out=str(models / name)))

    # 6. evaluation: speech-only sSC / tSC (and whatever else was built), held-out normalized perplexity
    names = ["teacher", *STUDENTS]
    stages.run("eval", lambda: _call(
        "evaluate", model=[f"{n}={models / n}" for n in names], bench=[str(bench)], out=str(out / "eval"),
        reference="teacher", cross_modal=cfg.cross_modal, ppl=[f"heldout={tokens / 'heldout.jsonl'}"]))

    # 7. listening samples from held-out prompts: text -> speech, speech -> speech / text, speech + text -> speech
    stages.run("vocoder", lambda: _call("vocoder_train", manifest=str(corpus / "manifest.jsonl"), tokenizer=str(units),
                                        out=str(out / "vocoder"), steps=cfg.vocoder_steps, max_items=cfg.vocoder_items, heldout=2,
                                        samples=1, seed=cfg.seed))
    stages.run("samples", lambda: _samples(cfg, out, models, tokens, corpus))

    # 8. report
    info = describe_models({n: models / n for n in names})
    report = write_demo_report(out, info, json.loads((out / "eval" / "results.json").read_text()), runs, stages.state)
    log.info("demo report -> %s (%s)", out / "report.md", ", ".join(f"{k}: {v}" for k, v in report["summary"].items()))
    return 0

"""`tinywave demo`: the TinyWave method on the embedded default, with a report that can tell a difference.

As in the paper, the demo starts from a *pretrained* teacher (shipped under
``assets/demo``, made by `tinywave demo-assets`, checked by fingerprint), then:

target-domain corpus (stories the teacher never saw, spoken faster than its
pretraining speech) -> target benchmarks -> tokens with the teacher's speech tokenizer ->
held-out / correction / student split -> shards -> LoRA correction of the teacher on the
target data (merged) -> one exact cache of the corrected teacher over the students'
shards -> for each seed: the distilled student (from the cache) and two CE baselines (same
architecture, data, steps and schedule) -> export -> evaluation of every model with
confidence intervals and paired tests pooled over seeds -> report.md / report.json / plots.

Each stage writes into its own folder under ``--out`` and is recorded in
``--out/stages.json`` with the configuration it depends on: rerunning the same command
continues an interrupted demo; changing a key reruns only the stages that depend on it
and those after them. ``teacher.source=scratch`` pretrains the teacher in the demo
instead (the pre-assets path, ~15 minutes for a teacher that is not good enough to distill).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, Callable

import soundfile as sf

from tinywave.audio.io import SAMPLE_RATE, load_audio
from tinywave.config import apply_fast, field, to_dict
from tinywave.data.token_corpus import load_token_corpus, split_records
from tinywave.demo.assets import check_assets
from tinywave.demo.html import write_report_html
from tinywave.demo.listening import measure_listening, transcribe_demo_samples
from tinywave.demo.machine import describe_machine
from tinywave.demo.precision import choose_precision
from tinywave.demo.report import describe_models, write_demo_report
from tinywave.demo.stages import Stages, call
from tinywave.demo.vocoder_asset import VOCODER_DIR
from tinywave.demo.workers import call_in_child, run_jobs, threads_per_run, torch_threads
from tinywave.distill.defaults import DISTILL_LOSS
from tinywave.eval.report import merge_reports, write_reports
from tinywave.files import atomic_write_text, read_jsonl

log = logging.getLogger(__name__)

STUDENTS = ("student", "baseline_pruned_ce", "baseline_random_ce")


@dataclass
class TargetSection:
    stories: int = field(1000, help="target-domain stories (new texts, spoken at target.rate); the teacher is corrected on them")
    rate: float = field(1.3, help="speaking-rate factor of the target domain (the teacher was pretrained at 1.0)")
    voices: list[str] = field(["en-us+m3", "en-us+f2"], help="target-domain voices")
    bench_items: int = field(400, help="pairs per benchmark (sSC, tSC) in the target domain; one standard error ~0.02 at 400")
    heldout: float = field(0.06, help="share of target stories held out for normalized perplexity (split by story)")


@dataclass
class TeacherSection:
    source: str = field("assets", help="assets: the shipped pretrained teacher (teacher.assets); scratch: pretrain one here")
    assets: str = field("assets/demo", help="demo assets folder (`tinywave demo-assets`); relative paths are tried in the "
                                            "current folder, then in the repository")
    n_layers: int = field(6, help="scratch: teacher decoder layers")
    width: int = field(256, help="scratch: hidden size")
    heads: int = field(4, help="scratch: attention heads")
    ffn: int = field(704, help="scratch: FFN size")
    steps: int = field(300, help="scratch: optimizer steps")
    batch_size: int = field(8, help="scratch: rows of seq_len tokens per step")
    lr: float = field(1e-3, help="scratch: peak learning rate")
    n_units: int = field(128, help="scratch: k-means units of the speech tokenizer")
    text_vocab: int = field(512, help="scratch: BPE text vocabulary")


@dataclass
class CorrectionSection:
    method: str = field("lora", help="lora (adapters merged on save), full, or none (distill the teacher as shipped)")
    steps: int = field(100, help="optimizer steps on the target data")
    lr: float = field(1e-3, help="peak learning rate")
    batch_size: int = field(8, help="rows of seq_len tokens per step")
    r: int = field(16, help="LoRA rank")
    mlp: bool = field(True, help="LoRA also on the MLP projections")
    passes: int = field(2, help="passes over the target training stories when building the correction shards")


@dataclass
class StudentSection:
    n_layers: int = field(2, help="student layers kept from the teacher at full width (uniform spacing unless keep_layers)")
    keep_layers: list[int] = field([], help="teacher layer kept as each student layer, e.g. [3, 5] (empty: uniform spacing, [2, 5] "
                                            "for 2 of 6); the hidden and attention losses pair each with its own")
    steps: int = field(600, help="optimizer steps, the same for the student and both baselines (one seed: 300 -> tSC 0.806, 600 -> "
                                 "0.875, 1200 -> 0.912; benchmarks/results/demo_student_budget.md)")
    batch_size: int = field(4, help="rows of seq_len tokens per step")
    lr: float = field(3e-3, help="peak learning rate (one seed: 1e-3 and 6e-3 both worse; benchmarks/results/demo_student_settings.md)")
    subset: float = field(1.0, help="share of the target training stories the student and baselines see (1.0: all; the teacher "
                                        "also knows its 5000 pretraining stories)")
    passes: int = field(4, help="passes over the subset when building its shards")
    seeds: list[int] = field([0, 1, 2], help="training seeds of every student and baseline (statistics pool over them)")
    parallel_runs: int = field(2, help="student and baseline runs trained at once, each in its own process with cores // "
                                       "parallel_runs threads (2 on a 2-core EPYC: 1.27x the throughput of one 2-thread run at a time, "
                                       "benchmarks/results/parallel_runs.json); 1: one at a time, in this process")
    teacher_cache: bool = field(True, help="distil every seed from one exact cache of the corrected teacher (every logit, the mapped "
                                           "layers' hidden states, queries and keys: the same losses as online, the teacher run once); "
                                           "false runs the teacher online in every student run")
    kl_weight: float = field(DISTILL_LOSS["kl_weight"], help="weight of the soft-target KL")
    temperature: float = field(DISTILL_LOSS["temperature"], help="KL temperature")
    hidden_weight: float = field(DISTILL_LOSS["hidden_weight"], help="weight of the hidden-state loss")
    hidden_kind: str = field(DISTILL_LOSS["hidden_kind"], help="hidden-state loss: mse or cosine")
    attn_weight: float = field(DISTILL_LOSS["attn_weight"], help="weight of the attention-map KL")


@dataclass
class Config:
    out: str = field("demo_out", help="output folder (resumable: rerun the same command to continue)")
    seed: int = field(0, help="seed of the data stages (corpus, benchmarks, splits, shards)")
    fast: bool = field(False, help="every stage at toy size (~3 minutes) for tests; the quality numbers mean nothing")
    seq_len: int = field(512, help="shard row length in tokens")
    packing: str = field("split", help="shard packing: split (padding-free, one attention segment per document: 15% more target "
                                       "tokens per step than whole at the same step time; tinywave/data/shards.py) or whole "
                                       "(documents kept whole, rows end in ~14% padding)")
    mixture: dict[str, float] = field({"speech": 0.6, "interleaved": 0.3, "text": 0.1}, help="document mixture of the target shards")
    precision: str = field("auto", help="auto (bf16 autocast only where this CPU runs it measurably faster), fp32 or bf16")
    workers: int = field(2, help="processes for synthesis and tokenization")
    cross_modal: bool = field(True, help="also score text->speech and speech->text benchmark variants")
    vocoder_steps: int = field(40, help="HiFi-GAN steps of the demo vocoder; samples use it once its held-out MCD beats "
                                         "the Griffin-Lim baseline (~650+ steps), else the baseline")
    vocoder_items: int = field(300, help="utterances the demo vocoder is fitted on")
    vocoder_source: str = field("assets", help="assets: the shipped vocoder when the assets have one (else one trained here for "
                                               "vocoder_steps); train: always train here")
    listening_items: int = field(20, help="held-out utterances whose resynthesis the recognizer transcribes (WER)")
    prompt_seconds: float = field(3.0, help="length of the held-out audio prompt of the generated samples")
    target: TargetSection = dc_field(default_factory=TargetSection, metadata={"help": "target-domain data and benchmarks"})
    teacher: TeacherSection = dc_field(default_factory=TeacherSection, metadata={"help": "the pretrained teacher"})
    correction: CorrectionSection = dc_field(default_factory=CorrectionSection, metadata={"help": "teacher correction"})
    student: StudentSection = dc_field(default_factory=StudentSection, metadata={"help": "student distillation and baselines"})


# --fast: every stage at toy size (the pipeline, not the quality, is under test). Keys the user
# sets explicitly keep their values (tinywave.config.apply_fast).
FAST = {
    "seq_len": 128,
    "vocoder_steps": 2,
    "vocoder_items": 12,
    "listening_items": 2,
    "target": {"stories": 48, "bench_items": 12, "heldout": 0.15},
    "teacher": {"n_layers": 3, "width": 64, "heads": 2, "ffn": 128, "steps": 12, "batch_size": 4, "n_units": 32, "text_vocab": 300},
    "correction": {"steps": 4, "batch_size": 4, "passes": 1, "r": 4},
    "student": {"n_layers": 1, "steps": 6, "batch_size": 4, "subset": 0.5, "passes": 1, "seeds": [0, 1]},
}

# the configuration each stage depends on (tinywave/demo/stages.py: a change reruns that stage and its downstream)
DEPENDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "corpus": lambda c: [c["seed"], c["target"]["stories"], c["target"]["rate"], c["target"]["voices"], c["teacher"]["source"]],
    "benchmarks": lambda c: [c["seed"], c["target"]["bench_items"], c["target"]["rate"], c["target"]["voices"]],
    "split": lambda c: [c["target"]["heldout"], c["student"]["subset"]],
    "shards": lambda c: [c["seq_len"], c["mixture"], c["correction"]["passes"], c["student"]["passes"], c["packing"]],
    "assets": lambda c: c["teacher"],
    "units": lambda c: c["teacher"],
    "vocab": lambda c: c["teacher"],
    "pretrain": lambda c: c["teacher"],
    "export": lambda c: None,
    "correction": lambda c: c["correction"],
    "cache": lambda c: [c["student"]["n_layers"], c["student"]["temperature"], c["student"]["teacher_cache"],
                        *([c["student"]["keep_layers"]] if c["student"].get("keep_layers") else [])],
    # one run per (model, seed): the seed is in the stage's name, so adding a seed trains only the new seed's runs
    "students": lambda c: [{k: v for k, v in c["student"].items() if k not in ("seeds", "parallel_runs") and not (k == "keep_layers" and not v)},
                           c["precision"]],  # an empty keep_layers (the default) is left out: folders made before it existed stay done
    "students_first_seed": lambda c: c["student"]["seeds"][0],
    "eval": lambda c: [c["cross_modal"], c["student"]["seeds"]],
    "eval_tokens": lambda c: c["cross_modal"],
    "scores": lambda c: c["cross_modal"],
    "vocoder": lambda c: [c["vocoder_source"], c["vocoder_steps"], c["vocoder_items"]],
    "samples": lambda c: c["prompt_seconds"],
    "listening": lambda c: c["listening_items"],
}

# the stages whose outputs each stage reads: a stage reruns when one of them ran after it
UPSTREAM: dict[str, tuple[str, ...]] = {
    "corpus": (),
    "benchmarks": (),
    "assets": (),
    "units": ("corpus",),
    "tokenize": ("corpus", "units", "assets"),
    "vocab": ("corpus",),
    "split": ("tokenize",),
    "shards_pretrain": ("tokenize", "vocab"),
    "shards": ("split", "assets", "export_pretrain"),
    "pretrain": ("shards_pretrain", "units", "vocab"),
    "export_pretrain": ("pretrain",),
    "correction": ("shards_correction", "assets", "export_pretrain"),
    "cache": ("correction", "shards_student"),
    "students": ("shards_student", "correction", "cache"),
    "export": ("students:{instance}",),
    "students_first_seed": ("export:*",),
    "eval_tokens": ("benchmarks", "assets", "export_pretrain"),
    "scores": ("export:{instance}", "eval_tokens", "split"),
    "scores:teacher": ("correction", "eval_tokens", "split"),
    "scores:teacher_before_correction": ("assets", "export_pretrain", "eval_tokens", "split"),
    "eval": ("scores:*",),
    "vocoder": ("corpus", "assets", "units"),
    "samples": ("vocoder", "students_first_seed", "correction", "split", "corpus"),
    "listening": ("vocoder", "split", "corpus", "assets", "export_pretrain"),
    "samples_asr": ("samples", "listening"),
}


def run_name(name: str, seed: int) -> str:
    return f"{name}-s{seed}"


def resolve_assets(path: str) -> Path:
    """``path`` as given if it exists, else relative to the repository (so `make demo` works from anywhere)."""
    given = Path(path)
    if given.is_dir() or given.is_absolute():
        return given
    return Path(__file__).resolve().parents[2] / path


# ---------------------------------------------------------------- data stages


def split_tokens(tokens: Path, out: Path, heldout: float, subset: float, seed: int) -> dict[str, Any]:
    """train.jsonl / heldout.jsonl by story, and subset.jsonl: the students' share of train."""
    records = load_token_corpus([tokens])
    train, held = split_records(records, heldout, seed)
    sub = split_records(train, subset, seed + 1)[1] if subset < 1.0 else train
    if not train or not held or not sub:
        raise ValueError(f"{tokens}: {len(records)} utterances are too few to split (train {len(train)}, held-out {len(held)}, "
                         f"student subset {len(sub)}); synthesize more stories (target.stories)")
    for name, part in {"train": train, "heldout": held, "subset": sub}.items():
        atomic_write_text(out / f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in part))
    return {"utterances": {"train": len(train), "heldout": len(held), "subset": len(sub)}}


def _scratch_teacher(cfg: Config, stages: Stages, out: Path, precision: str) -> Path:
    """The pre-assets path: tokenizers and a teacher pretrained here on the target corpus (normal budget: not good)."""
    corpus, units, vocab, tokens = out / "corpus", out / "speech_tokenizer", out / "vocab", out / "tokens"
    t = cfg.teacher
    stages.run("units", lambda: call("units_train", manifest=[str(corpus / "manifest.jsonl")], out=str(units),
                                     rate=12.5, n_units=t.n_units, seed=cfg.seed, workers=cfg.workers), clear=[units])
    stages.run("tokenize", lambda: call("tokenize", manifest=str(corpus / "manifest.jsonl"), tokenizer=str(units),
                                        out=str(tokens / "all.jsonl"), workers=cfg.workers), clear=[tokens])
    stages.run("vocab", lambda: call("vocab", out=str(vocab), texts=[str(corpus / "manifest.jsonl")],
                                     vocab_size=t.text_vocab, n_hu=t.n_units), clear=[vocab])
    stages.run("shards_pretrain", lambda: call(
        "data_build", tokens=[str(tokens / "all.jsonl")], tokenizer=str(vocab), out=str(out / "shards" / "pretrain"),
        seq_len=cfg.seq_len, mixture=cfg.mixture, passes=4, seed=cfg.seed, packing=cfg.packing), clear=[out / "shards" / "pretrain"])
    stages.run("pretrain", lambda: call(
        "train", mode="pretrain", tokenizer=str(vocab), speech_tokenizer=str(units),
        model={"n_layers": t.n_layers, "width": t.width, "heads": t.heads, "kv_heads": t.heads, "ffn": t.ffn,
               "max_positions": max(1024, cfg.seq_len)},
        data={"shards": str(out / "shards" / "pretrain"), "batch_size": t.batch_size},
        optim={"lr": t.lr, "warmup_steps": max(1, t.steps // 15)},
        train={"out": str(out / "runs" / "pretrain"), "steps": t.steps, "seed": cfg.seed, "precision": precision,
               "log_every": 10, "ckpt_every": max(1, t.steps // 4), "resume": True}), clear=[out / "runs" / "pretrain"])
    stages.run("export_pretrain", lambda: call("export", checkpoint=str(out / "runs" / "pretrain"),
                                               out=str(out / "models" / "teacher_before_correction")))
    return out / "models" / "teacher_before_correction"


def _shipped_teacher(cfg: Config, stages: Stages, out: Path, precision: str) -> Path:
    """The shipped teacher after its fingerprints were checked, copied into the demo folder."""
    assets = resolve_assets(cfg.teacher.assets)
    provenance = check_assets(assets)

    def copy() -> dict[str, Any]:
        dst = out / "models" / "teacher_before_correction"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(assets / "teacher", dst)
        return {"assets": str(assets), "fingerprints": provenance["fingerprints"], "pretraining_scores": provenance["scores"],
                "teacher_steps": provenance.get("teacher_steps")}

    stages.run("assets", copy)
    teacher = out / "models" / "teacher_before_correction"
    stages.run("tokenize", lambda: call("tokenize", manifest=str(out / "corpus" / "manifest.jsonl"),
                                        tokenizer=str(teacher / "speech_tokenizer"), out=str(out / "tokens" / "all.jsonl"),
                                        workers=cfg.workers), clear=[out / "tokens"])
    return teacher


TEACHER_SOURCES: dict[str, Callable[..., Path]] = {"assets": _shipped_teacher, "scratch": _scratch_teacher}


def _correct(cfg: Config, teacher: Path, shards: Path, runs: Path, models: Path, precision: str) -> dict[str, Any]:
    """LoRA (or full) fine-tuning of the pretrained teacher on the target data, merged into models/teacher."""
    c = cfg.correction
    dst = models / "teacher"
    if dst.exists():
        shutil.rmtree(dst)
    if c.method == "none":
        shutil.copytree(teacher, dst)
        return {"method": "none"}
    call("train", mode="correct", teacher=str(teacher), method=c.method, lora={"r": c.r, "alpha": 2.0 * c.r, "mlp": c.mlp},
         data={"shards": str(shards), "batch_size": c.batch_size},
         optim={"lr": c.lr, "warmup_steps": max(1, c.steps // 10)},
         train={"out": str(runs / "teacher_correction"), "steps": c.steps, "seed": cfg.seed, "precision": precision,
                "log_every": 5, "ckpt_every": max(1, c.steps // 2), "resume": True})
    shutil.copytree(runs / "teacher_correction" / "model", dst)
    return {"method": c.method}


def mapped_layers(teacher_dir: Path, n_student: int, keep: list[int] | None = None) -> list[int]:
    """The teacher layers the student keeps: ``keep`` (checked), else uniform spacing, as `tinywave distill` chooses them."""
    # lazy: models.student imports torch (~1.4 s); recipe modules import without it
    from tinywave.models.student import check_keep_layers, uniform_layer_map

    config = json.loads((teacher_dir / "config.json").read_text(encoding="utf-8"))
    if keep:
        check_keep_layers(list(keep), n_student, int(config["num_hidden_layers"]))
        return list(keep)
    return uniform_layer_map(int(config["num_hidden_layers"]), n_student)


def _teacher_cache(cfg: Config, teacher_dir: Path, shards: Path, out: Path) -> dict[str, Any]:
    """One exact cache of the teacher over the students' shards (k = V, float16 logits), read by every seed."""
    layers = mapped_layers(teacher_dir, cfg.student.n_layers, cfg.student.keep_layers)
    call("teacher_cache", teacher=str(teacher_dir), shards=str(shards), out=str(out), top_k=0, temperatures=[cfg.student.temperature],
         logit_dtype="float16", hidden_layers=layers, attn_layers=layers)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return {"layers": layers, "gigabytes": round(size / 1e9, 2)}


def _student_run(cfg: Config, runs: Path, name: str, seed: int, shards: Path, teacher_dir: Path, *, precision: str,
                 cache: Path | None = None, threads: int = 0) -> None:
    """One student or baseline run; ``threads`` > 0 trains it in a child process with that many threads."""
    s = cfg.student
    none = {"kl_weight": 0.0, "hidden_weight": 0.0, "attn_weight": 0.0}
    losses = {
        "student": {"kl_weight": s.kl_weight, "temperature": s.temperature, "hidden_weight": s.hidden_weight,
                    "hidden_kind": s.hidden_kind, "attn_weight": s.attn_weight},
        "baseline_pruned_ce": none,
        "baseline_random_ce": none,
    }
    init = {"student": "pruned", "baseline_pruned_ce": "pruned", "baseline_random_ce": "random"}
    teacher = {"dir": str(teacher_dir), **({"cache": str(cache)} if cache and name == "student" else {})}
    out = runs / run_name(name, seed)
    sections = {
        "teacher": teacher,
        "student": {"n_layers": s.n_layers, "init": init[name], "keep_layers": list(s.keep_layers)},
        "loss": {"ce_weight": 1.0, **losses[name]},
        "data": {"shards": str(shards), "batch_size": s.batch_size},
        "optim": {"lr": s.lr, "warmup_steps": max(1, s.steps // 10)},
        "train": {"out": str(out), "steps": s.steps, "seed": seed, "precision": precision,
                  "log_every": 5, "ckpt_every": max(1, s.steps // 3), "resume": True, "parallel": "none"},
    }
    if threads:
        call_in_child("distill", threads, out / "stdout.log", **sections)
    else:
        call("distill", **sections)


def _eval_tokens(cfg: Config, dst: Path, bench: Path, tokenizer: Path) -> dict[str, Any]:
    """Every benchmark clip tokenized once into ``dst/cache``, which each model's evaluation then reads."""
    from tinywave.eval.layouts import discover  # lazy: eval.layouts imports soundfile (~0.1 s)
    from tinywave.eval.suite import fill_token_cache  # lazy: eval.suite imports torch and transformers (~3 s)

    return {"clips": fill_token_cache(discover(bench), tokenizer, dst / "cache", cfg.cross_modal)}


def _score_model(cfg: Config, dst: Path, name: str, folder: Path, bench: Path, heldout: Path, *, threads: int) -> None:
    """One model on the pairs and the held-out tokens -> ``dst/parts/<name>`` (its own results.json and scores/);
    ``threads`` > 0 scores it in a child process with that many threads."""
    part = dst / "parts" / name
    args = {"model": [f"{name}={folder}"], "out": str(part), "reference": name, "bench": [str(bench)],
            "cross_modal": cfg.cross_modal, "ppl": [f"heldout={heldout}"], "cache": str(dst / "cache")}
    if threads:
        call_in_child("evaluate", threads, part / "stdout.log", **args)
    else:
        call("evaluate", **args)


def _merge_scores(dst: Path, names: list[str]) -> dict[str, Any]:
    """The models' reports (``dst/parts/<name>``) merged into ``dst`` (results.json, results.md, scores/)."""
    parts = [dst / "parts" / n for n in names]
    reports = [json.loads((part / "results.json").read_text(encoding="utf-8")) for part in parts]
    merged = merge_reports([{k: v for k, v in r.items() if k != "format"} for r in reports], names, reference="teacher")
    for part in parts:
        for sub in ("scores", "submission"):
            if (part / sub).is_dir():
                shutil.copytree(part / sub, dst / sub, dirs_exist_ok=True)
    write_reports(dst, merged)
    return {"models": len(names)}


def first_seed_models(models: Path, seed: int) -> dict[str, Any]:
    """The first seed's students under their plain names (models/student ...), for tools that load one model."""
    for name in STUDENTS:
        if (models / name).exists():
            shutil.rmtree(models / name)
        shutil.copytree(models / run_name(name, seed), models / name)
    return {"seed": seed}


# ---------------------------------------------------------------- samples


def held_out_prompt(tokens: Path, corpus: Path, out: Path, seconds: float) -> tuple[str, Path]:
    """(first words of a held-out story, its first ``seconds`` of audio as a wav) for the samples."""
    held = {obj["id"] for _, obj, _ in read_jsonl(tokens) if obj}
    item = next((obj for _, obj, _ in read_jsonl(corpus / "manifest.jsonl") if obj and obj["id"] in held), None)
    if item is None:
        raise ValueError(f"no held-out utterance of {tokens} is in {corpus / 'manifest.jsonl'}; rerun the demo in a new --out")
    audio, _ = load_audio(corpus / item["audio"])  # [samples] at 16 kHz
    out.mkdir(parents=True, exist_ok=True)
    sf.write(out / "prompt0.wav", audio[: int(seconds * SAMPLE_RATE)], SAMPLE_RATE)
    return " ".join(item["text"].split()[:6]), out / "prompt0.wav"


def _samples(cfg: Config, out: Path, models: dict[str, Path], tokens: Path, corpus: Path) -> dict[str, Any]:
    # lazy: tinywave.generate imports torch and transformers (~3 s); recipe modules import without them
    from tinywave.generate.decode import Sampling
    from tinywave.generate.samples import default_specs, write_samples
    from tinywave.generate.speechlm import GenerationOptions

    text, wav = held_out_prompt(tokens / "heldout.jsonl", corpus, out / "samples" / "prompts", cfg.prompt_seconds)
    options = GenerationOptions(max_new_tokens=100, max_seconds=6.0,
                                sampling=Sampling(greedy=False, temperature=0.8, top_p=0.95, seed=cfg.seed))
    vocoder = sample_vocoder(out / "vocoder")
    index = write_samples(models, out / "samples", default_specs([text], [wav]), options, vocoder=vocoder)
    return {"index": str(index.relative_to(out)), "vocoder": str(vocoder.relative_to(out))}


def shipped_vocoder(cfg: Config) -> Path | None:
    """The assets' vocoder (checked against its provenance and the teacher's speech tokenizer) when the demo uses it."""
    if cfg.teacher.source != "assets" or cfg.vocoder_source != "assets":
        return None
    assets = resolve_assets(cfg.teacher.assets)
    return assets / VOCODER_DIR if check_assets(assets).get("vocoder") else None


def _vocoder(cfg: Config, dst: Path, corpus: Path, teacher: Path) -> dict[str, Any]:
    """The samples' vocoder: the shipped one (with its Griffin-Lim baseline and held-out figures), else trained here."""
    shipped = shipped_vocoder(cfg)
    if shipped is not None:
        shutil.copytree(shipped, dst)
        return {"source": str(shipped)}
    call("vocoder_train", manifest=str(corpus / "manifest.jsonl"), tokenizer=str(teacher / "speech_tokenizer"), out=str(dst),
         train={"steps": cfg.vocoder_steps, "seed": cfg.seed, "resume": True}, data={"max_items": cfg.vocoder_items, "heldout": 2}, eval={"samples": 1})
    return {"source": "trained here", "steps": cfg.vocoder_steps}


def _listening(cfg: Config, out: Path, tokens: Path, corpus: Path, tokenizer: Path) -> dict[str, Any]:
    """Recognizer figures of what the demo makes audible (tinywave/demo/listening.py), if PocketSphinx is installed."""
    try:
        # lazy: pocketsphinx is an optional extra (asr); this checks that it is installed
        import pocketsphinx  # noqa: F401
    except ImportError:
        log.warning("listening: pocketsphinx is not installed (pip install 'tinywave[asr]'); no word error rates")
        return {"skipped": "pocketsphinx is not installed (pip install 'tinywave[asr]')"}
    return measure_listening(out, corpus, tokens / "heldout.jsonl", tokens / "train.jsonl", tokenizer,
                             out / "vocoder", items=cfg.listening_items)


def sample_vocoder(folder: Path) -> Path:
    """The trained HiFi-GAN if its held-out MCD beat the Griffin-Lim baseline saved beside it, else that baseline."""
    report = json.loads((folder / "eval.json").read_text(encoding="utf-8"))
    return folder if report.get("lower_mcd") == "hifigan" else folder / "griffinlim"


# ---------------------------------------------------------------- the recipe


def run(cfg: Config) -> int:
    if cfg.fast:
        cfg = apply_fast(cfg, FAST, Config)
    if cfg.teacher.source not in TEACHER_SOURCES:
        raise ValueError(f"teacher.source={cfg.teacher.source!r} is not known; choose one of {sorted(TEACHER_SOURCES)}")
    if cfg.vocoder_source not in ("assets", "train"):
        raise ValueError(f"vocoder_source={cfg.vocoder_source!r} is not known; choose assets or train")
    if not cfg.student.seeds:
        raise ValueError("student.seeds is empty; give at least one seed (three for the report's statistics)")
    if cfg.student.parallel_runs < 1:
        raise ValueError(f"student.parallel_runs={cfg.student.parallel_runs} must be at least 1 (1: one run at a time)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    precision = choose_precision(cfg.precision)
    log.info("precision: %s (%s)", precision.name, precision.reason)
    machine = describe_machine()  # the report's wall time is read beside this machine's measured speed
    log.info("machine: %s, %d cores, float32 matmul chain %.0f GFLOP/s with %d thread(s)", machine["cpu"], machine["cores"],
             machine["fp32_gflops"], machine["torch_threads"])
    stages = Stages(out, to_dict(cfg), DEPENDS, UPSTREAM)
    corpus, bench, tokens, shards = out / "corpus", out / "benchmarks", out / "tokens", out / "shards"
    runs, models = out / "runs", out / "models"
    t = cfg.target

    # 1. target-domain data: stories the teacher never saw (after its pretraining stories), spoken faster
    first = 0
    if cfg.teacher.source == "assets":
        first = check_assets(resolve_assets(cfg.teacher.assets))["config"]["corpus"]["stories"]
    stages.run("corpus", lambda: call("corpus_synth", out=str(corpus), stories=t.stories, first=first, rate=t.rate,
                                      seed=cfg.seed, voices=t.voices, workers=cfg.workers), clear=[corpus])
    stages.run("benchmarks", lambda: call("corpus_benchmarks", out=str(bench), seed=cfg.seed, items=t.bench_items, rate=t.rate,
                                          only=["storycloze"], voices=t.voices, workers=cfg.workers), clear=[bench])

    # 2. the pretrained teacher (shipped and fingerprint-checked, or pretrained here) and the target tokens
    pretrained = TEACHER_SOURCES[cfg.teacher.source](cfg, stages, out, precision.name)
    stages.run("split", lambda: split_tokens(tokens / "all.jsonl", tokens, t.heldout, cfg.student.subset, cfg.seed))

    # 3. shards: the correction's from every target training story, the students' from the subset
    for name, src, passes in (("correction", "train", cfg.correction.passes), ("student", "subset", cfg.student.passes)):
        stages.run(f"shards_{name}", lambda name=name, src=src, passes=passes: call(
            "data_build", tokens=[str(tokens / f"{src}.jsonl")], tokenizer=str(pretrained), out=str(shards / name),
            seq_len=cfg.seq_len, mixture=cfg.mixture, passes=passes, seed=cfg.seed, packing=cfg.packing), clear=[shards / name])

    # 4. teacher correction on the target data (LoRA, merged), as in the paper
    stages.run("correction", lambda: _correct(cfg, pretrained, shards / "correction", runs, models, precision.name),
               clear=[runs / "teacher_correction"])

    # 5. the corrected teacher over the students' shards, once for every seed (exact: the losses equal the online ones);
    #    meanwhile every benchmark clip is tokenized once for the evaluations (one core: the cache leaves it idle)
    cache = out / "teacher_cache" if cfg.student.teacher_cache else None
    evaluation, heldout = out / "eval", tokens / "heldout.jsonl"
    jobs = [("eval_tokens", lambda: stages.run("eval_tokens", lambda: _eval_tokens(cfg, evaluation, bench, pretrained / "speech_tokenizer"),
                                               clear=[evaluation / "cache"]))]
    if cache:
        jobs.insert(0, ("cache", lambda: stages.run("cache", lambda: _teacher_cache(cfg, models / "teacher", shards / "student", cache),
                                                    clear=[cache, cache.with_name("teacher_cache.partial")])))
    run_jobs(jobs, min(cfg.student.parallel_runs, 2))

    # 6. per seed: the student (layer-aligned distillation) and both CE baselines, same architecture, data, steps, each
    #    exported and scored as soon as it is trained; both teachers' scores and the resynthesis measurements (which
    #    read no student) fill the end. student.parallel_runs jobs at once, each run in its own process with
    #    cores // parallel_runs threads (tinywave/demo/workers.py); the distilled students, the longest, go first
    at_once = min(cfg.student.parallel_runs, 3 * len(cfg.student.seeds))
    threads = threads_per_run(at_once) if at_once > 1 else 0
    stages.run("vocoder", lambda: _vocoder(cfg, out / "vocoder", corpus, pretrained), clear=[out / "vocoder"])

    def score(name: str) -> None:
        stages.run(f"scores:{name}", lambda: _score_model(cfg, evaluation, name, models / name, bench, heldout, threads=threads),
                   clear=[evaluation / "parts" / name])

    def train_export_score(name: str, seed: int) -> None:
        key = run_name(name, seed)
        stages.run(f"students:{key}", lambda: _student_run(cfg, runs, name, seed, shards / "student", models / "teacher",
                                                           precision=precision.name, cache=cache, threads=threads), clear=[runs / key])
        stages.run(f"export:{key}", lambda: call("export", checkpoint=str(runs / key), out=str(models / key)))
        score(key)

    def listening() -> None:
        with torch_threads(threads):
            stages.run("listening", lambda: _listening(cfg, out, tokens, corpus, pretrained / "speech_tokenizer"))

    pairs = [(name, seed) for name in STUDENTS for seed in cfg.student.seeds]
    trained = [run_name(name, seed) for name, seed in pairs]
    teachers = ["teacher_before_correction", "teacher"]
    if at_once > 1:
        log.info("students: %d runs, %d at a time with %d thread(s) each (logs: runs/*/stdout.log)", len(trained), at_once, threads)
    run_jobs([*((key, lambda n=n, sd=sd: train_export_score(n, sd)) for key, (n, sd) in zip(trained, pairs)),
              *((f"scores:{n}", lambda n=n: score(n)) for n in teachers), ("listening", listening)], at_once)
    stages.run("students_first_seed", lambda: first_seed_models(models, cfg.student.seeds[0]))

    # 7. evaluation: every model on the same pairs (speech-only and cross-modal) and held-out tokens, in one report
    names = [*teachers, *(run_name(name, seed) for seed in cfg.student.seeds for name in STUDENTS)]
    stages.run("eval", lambda: _merge_scores(evaluation, names), clear=[evaluation / "scores", evaluation / "submission"])

    # 8. listening samples from held-out prompts: text -> speech, speech -> speech / text, speech + text -> speech
    stages.run("samples", lambda: _samples(cfg, out, {n: models / n for n in ("teacher", "student")}, tokens, corpus),
               clear=[out / "samples"])
    if stages.done["listening"].get("utterances"):  # the recognizer ran (pocketsphinx installed)
        stages.run("samples_asr", lambda: transcribe_demo_samples(out))

    # 9. report: means over seeds, intervals, paired tests
    info = describe_models({n: models / n for n in ["teacher_before_correction", "teacher", *STUDENTS]})
    results = json.loads((out / "eval" / "results.json").read_text())
    report = write_demo_report(out, info, results, runs, stages.state, seeds=cfg.student.seeds, precision=precision.as_dict(),
                               machine=machine)
    log.info("demo report page -> %s", write_report_html(out, report))
    log.info("demo report -> %s (%s)", out / "report.md", ", ".join(f"{k}: {v}" for k, v in report["summary"].items()))
    return 0

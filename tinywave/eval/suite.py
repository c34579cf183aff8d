"""Score many models on many benchmarks in one run: ``evaluate(models, benches, out)``.

For each model (loaded one at a time): its speech tokenizer tokenizes every benchmark
clip (cached by content hash and tokenizer fingerprint, so models sharing a tokenizer
tokenize once), every sequence of every benchmark is scored in one batched pass, and
pair outcomes become each benchmark's score and breakdowns. Benchmarks whose items carry
texts and ending times (our sSC/tSC ``items.jsonl``) are also scored cross-modally:
``<bench>-t2s`` (text prompt, speech ending) and ``<bench>-s2t`` (speech prompt, text
ending), scoring only the ending. Reports: see :mod:`tinywave.eval.report`; per-item
scores under ``OUT/scores/`` (benchmark pairs and per-utterance perplexity): see
:mod:`tinywave.eval.scores`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinywave.data.token_corpus import load_token_corpus
from tinywave.eval.asr import Recognizer
from tinywave.eval.token_cache import SpeechTokenizerLike, TokenCache, tokenize_clips
from tinywave.eval.genppl import GenSettings, TextLM, generative_metrics
from tinywave.eval.layouts import Benchmark, Candidate, Clip, PairItem, load_benchmark
from tinywave.eval.metrics import summarize
from tinywave.eval.perplexity import check_tokenizer, normalized_perplexity
from tinywave.eval.report import write_reports
from tinywave.eval.resynthesis import Spoken, VocoderLike, resynthesis_wer
from tinywave.eval.scores import ppl_task, scores_path
from tinywave.eval.scoring import REDUCE, ScoreRequest, SequenceBuilder, log_likelihoods, pair_outcomes
from tinywave.files import atomic_write_text
from tinywave.precision_names import torch_dtype
from tinywave.hub import resolve_model_dir
from tinywave.progress import bar
from tinywave.speech.tokenizer import SpeechTokenizer
from tinywave.text.vocab import load_tokenizer

log = logging.getLogger(__name__)
SUBMISSION_TASK = {"swuggy": "lexical", "sblimp": "syntactic"}


@dataclass
class EvalSettings:
    reduce: str = "mean"  # mean | sum token log-likelihood
    batch_tokens: int = 4096  # padded tokens per forward pass; 0 = one sequence at a time
    append_eos: bool = True
    cross_modal: bool = True  # also score t2s / s2t where items carry texts and ending times
    submission: bool = False  # ZeroSpeech files for sWUGGY / sBLIMP
    device: str = "cpu"
    dtype: str = "fp32"  # fp32, bf16 or fp16 (float32, bfloat16, float16 also work)
    cache_dir: Path | None = None  # default OUT/cache


@dataclass
class GenerationSetup:
    """Everything GenPPL needs besides the model: prompt audio, vocoder, ASR, text LM."""

    prompts: list[Path]
    vocode: Callable[[str], np.ndarray]
    transcribe: Callable[[Sequence[np.ndarray]], list[str]]
    text_lm: TextLM
    settings: GenSettings = field(default_factory=GenSettings)


@dataclass
class ResynthesisSetup:
    """Resynthesis WER (:mod:`tinywave.eval.resynthesis`): held-out speech, a recognizer, the vocoder.

    ``vocoder`` is a vocoder directory, or None for each model's ``vocoder/`` folder;
    ``load_vocoder`` opens one (``tinywave.vocoder.backends.load_vocoder``).
    """

    utterances: list[Spoken]
    recognizer: Recognizer
    load_vocoder: Callable[[Path], VocoderLike]
    vocoder: Path | None = None
    deduplicated: bool = True


# ---------------------------------------------------------------- scoring modes


@dataclass(frozen=True)
class Mode:
    suffix: str
    available: Callable[[PairItem, Candidate], bool]
    clips: Callable[[Candidate], list[Clip]]
    request: Callable[[SequenceBuilder, PairItem, Candidate, dict[Clip, str]], ScoreRequest]


MODES: dict[str, Mode] = {
    "speech": Mode("", lambda it, c: True, lambda c: [Clip(c.audio)],
                   lambda b, it, c, s: b.speech(s[Clip(c.audio)])),
    "t2s": Mode("-t2s", lambda it, c: bool(it.prompt_text) and c.ending is not None, lambda c: [c.ending],
                lambda b, it, c, s: b.text_then_speech(it.prompt_text, s[c.ending])),
    "s2t": Mode("-s2t", lambda it, c: bool(c.text) and c.prompt is not None, lambda c: [c.prompt],
                lambda b, it, c, s: b.speech_then_text(s[c.prompt], c.text)),
}


@dataclass
class Task:
    """One results row: a benchmark scored in one mode."""

    name: str
    bench: Benchmark
    mode: Mode

    def clips(self) -> list[Clip]:
        return [clip for it in self.bench.items for c in (it.pos, it.neg) for clip in self.mode.clips(c)]

    def requests(self, builder: SequenceBuilder, strings: dict[Clip, str]) -> list[ScoreRequest]:
        return [self.mode.request(builder, it, c, strings) for it in self.bench.items for c in (it.pos, it.neg)]


def plan_tasks(benches: Sequence[Benchmark], cross_modal: bool) -> list[Task]:
    tasks = []
    for b in benches:
        for key, mode in MODES.items():
            if key != "speech" and not cross_modal:
                continue
            if all(mode.available(it, c) for it in b.items for c in (it.pos, it.neg)):
                tasks.append(Task(b.name + mode.suffix, b, mode))
    return tasks


# ---------------------------------------------------------------- loading


def load_speech_tokenizer(folder: str | Path) -> SpeechTokenizerLike:
    """``SpeechTokenizer.load`` of a tokenizer directory or a model directory holding ``speech_tokenizer/``."""
    return SpeechTokenizer.load(folder)


def load_model(folder: Path, settings: EvalSettings) -> tuple[torch.nn.Module, SequenceBuilder]:
    """A causal LM and its text+speech tokenizer from a plain Hugging Face directory."""
    from transformers import AutoModelForCausalLM  # lazy: transformers is heavy (~3 s); only loading a model needs it

    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model directory {folder} has no config.json; pass a Hugging Face model folder "
                                "(config.json, model.safetensors, tokenizer files)")
    dtype = torch_dtype(settings.dtype)
    from transformers.utils import logging as hf_logging  # lazy: transformers is heavy (~3 s); only loading a model needs it

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our own bars are enough
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    return model.to(settings.device).eval(), SequenceBuilder(load_tokenizer(folder), settings.append_eos)


def fill_token_cache(benches: dict[str, Path], speech_tokenizer: str | Path, cache_dir: Path, cross_modal: bool = True) -> int:
    """Tokenize every clip that :func:`evaluate` scores on ``benches`` into the token cache under ``cache_dir``
    (what evaluations given ``cache_dir`` then read), so that evaluations run at once do not each tokenize the
    same clips; the number of clips."""
    tasks = plan_tasks([load_benchmark(n, p) for n, p in benches.items()], cross_modal)
    tokenizer = load_speech_tokenizer(speech_tokenizer)
    clips = [c for t in tasks for c in t.clips()]
    tokenize_clips(clips, tokenizer, TokenCache(cache_dir, tokenizer.fingerprint), desc="tokenizing benchmarks")
    return len(set(clips))


# ---------------------------------------------------------------- one model


def score_tasks(model: torch.nn.Module, builder: SequenceBuilder, tasks: Sequence[Task], strings: dict[Clip, str],
                settings: EvalSettings, desc: str) -> dict[str, tuple[list[float], list[float]]]:
    """(positive LLs, negative LLs) per task; all tasks' sequences share one batched pass."""
    per_task = [t.requests(builder, strings) for t in tasks]
    flat = [r for reqs in per_task for r in reqs]
    lls = log_likelihoods(model, flat, settings.reduce, settings.batch_tokens, builder.pad, desc=desc)
    out, start = {}, 0
    for t, reqs in zip(tasks, per_task):
        chunk = lls[start : start + len(reqs)]
        out[t.name] = (chunk[0::2], chunk[1::2])
        start += len(reqs)
    return out


def record_task(report: dict[str, Any], out: Path, model_name: str, task: Task, pos: list[float], neg: list[float], *, submission: bool) -> None:
    """Summary and breakdown rows into ``report``; per-item scores (and submission files) under ``out``."""
    outcomes = pair_outcomes(pos, neg)
    summary = summarize(task.bench.kind, task.bench.items, outcomes)
    report["results"].setdefault(task.name, {})[model_name] = summary.score
    report["counts"][task.name] = summary.count
    for key, value in summary.breakdown.items():
        report["results"].setdefault(f"{task.name}/{key}", {})[model_name] = value
        report["counts"][f"{task.name}/{key}"] = summary.counts[key]
    lines = [{"id": it.id, "pos": p, "neg": n, "outcome": o, **{k: v for k, v in it.tags.items() if k in ("part", "kind", "type", "voice")}}
             for it, p, n, o in zip(task.bench.items, pos, neg, outcomes)]
    atomic_write_text(out / "scores" / task.name / f"{model_name}.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    if submission and task.bench.kind in SUBMISSION_TASK and not task.mode.suffix:
        stems = {}
        for it, p, n in zip(task.bench.items, pos, neg):
            stems[it.tags["pos_stem"]], stems[it.tags["neg_stem"]] = p, n
        path = out / "submission" / model_name / SUBMISSION_TASK[task.bench.kind] / "dev.txt"
        atomic_write_text(path, "".join(f"{s} {v:.6f}\n" for s, v in stems.items()))


def evaluate_model(name: str, folder: Path, tasks: Sequence[Task], tokenizer: SpeechTokenizerLike, cache: TokenCache,
                   corpora: dict[str, list[dict[str, Any]]], *, generation: GenerationSetup | None,
                   settings: EvalSettings, out: Path, report: dict[str, Any]) -> None:
    """Everything for one model, recorded into ``report``."""
    strings = tokenize_clips([c for t in tasks for c in t.clips()], tokenizer, cache, desc=f"tokenizing for {name}")
    model, builder = load_model(folder, settings)
    scores = score_tasks(model, builder, tasks, strings, settings, desc=f"scoring {name}")
    for t in tasks:
        record_task(report, out, name, t, *scores[t.name], submission=settings.submission)
    for corpus, records in corpora.items():
        check_tokenizer(records, tokenizer.fingerprint, f"token corpus {corpus}")
        ppl = normalized_perplexity(model, records, builder, settings.batch_tokens, desc=f"perplexity {name}")
        report["perplexity"].setdefault(corpus, {})[name] = ppl.to_json()
        lines = [{"id": u.id, "nll": u.nll, "tokens": u.tokens} for u in ppl.per_utterance]
        atomic_write_text(scores_path(out / "scores", ppl_task(corpus), name), "".join(json.dumps(x) + "\n" for x in lines))
    if generation is not None:
        g = generative_metrics(model, builder, tokenizer, generation.prompts, generation.vocode, generation.transcribe, text_lm=generation.text_lm, settings=generation.settings)
        report["generation"][name] = g.to_json()
    report["models"][name] = {"dir": str(folder), "speech_tokenizer": tokenizer.fingerprint,
                              "parameters": sum(p.numel() for p in model.parameters()), "vocab_size": builder.layout.size}


# ---------------------------------------------------------------- the run


def evaluate(models: dict[str, Path], benches: dict[str, Path], out: Path, *, reference: str | None = None,
             settings: EvalSettings | None = None, speech_tokenizer: str | Path | SpeechTokenizerLike | None = None,
             perplexity: dict[str, Path] | None = None, generation: GenerationSetup | None = None,
             resynthesis: ResynthesisSetup | None = None) -> dict[str, Any]:
    """Score every model on every benchmark (and corpus); write reports to ``out``; return the report.

    ``speech_tokenizer`` overrides each model's ``speech_tokenizer/`` (a directory, or any
    object with ``fingerprint``, ``rates`` and ``encode_string``).
    """
    settings = settings or EvalSettings()
    if settings.reduce not in REDUCE:
        raise ValueError(f"score={settings.reduce!r} is not known; choose one of {sorted(REDUCE)}")
    if not models:
        raise ValueError("no model to evaluate; pass --model NAME=DIR (a Hugging Face model folder with speech_tokenizer/)")
    if not benches and not perplexity and generation is None and resynthesis is None:
        raise ValueError("nothing to evaluate; pass --bench NAME=DIR, --ppl NAME=tokens.jsonl, GenPPL or resynthesis settings")
    reference = reference or next(iter(models))
    if reference not in models:
        raise ValueError(f"reference model {reference!r} is not one of the models {list(models)}; pass --reference NAME")
    out = Path(out)
    tasks = plan_tasks([load_benchmark(n, p) for n, p in benches.items()], settings.cross_modal)
    corpora = {n: load_token_corpus([p]) for n, p in (perplexity or {}).items()}
    report: dict[str, Any] = {"score": settings.reduce, "append_eos": settings.append_eos, "reference": reference, "models": {},
                              "benches": {t.name: {"kind": t.bench.kind, "dir": str(t.bench.root), "pairs": len(t.bench.items)} for t in tasks},
                              "results": {}, "counts": {}, "perplexity": {}, "generation": {}, "resynthesis": {}}
    caches: dict[str, TokenCache] = {}
    heard: dict[tuple[str, str], dict[str, Any]] = {}  # (tokenizer, vocoder) -> resynthesis report, shared by models
    override = load_speech_tokenizer(speech_tokenizer) if isinstance(speech_tokenizer, (str, Path)) else speech_tokenizer
    for name, folder in bar(list(models.items()), desc="models", unit="model"):
        folder = resolve_model_dir(folder)  # a directory, or a hub id in the local HF cache
        tokenizer = override or load_speech_tokenizer(folder)
        cache = caches.setdefault(tokenizer.fingerprint, TokenCache(settings.cache_dir or out / "cache", tokenizer.fingerprint))
        evaluate_model(name, folder, tasks, tokenizer, cache, corpora, generation=generation, settings=settings, out=out, report=report)
        if resynthesis is not None:
            report["resynthesis"][name] = record_resynthesis(name, folder, tokenizer, resynthesis, heard, out)
    report["models"] = {n: report["models"][n] for n in models}
    paths = write_reports(out, report)
    log.info("results -> %s", ", ".join(str(p) for p in paths.values()))
    return report


def record_resynthesis(name: str, folder: Path, tokenizer: Any, setup: ResynthesisSetup, heard: dict[tuple[str, str], dict[str, Any]],
                       out: Path) -> dict[str, Any]:
    """Resynthesis WER of one model's tokenizer and vocoder (computed once per pair); transcripts under ``out/scores/``."""
    vocoder = setup.vocoder or folder / "vocoder"
    if not vocoder.is_dir():
        raise FileNotFoundError(f"resynthesis: model {name!r} has no vocoder/ folder ({vocoder}); pass resynthesis.vocoder=DIR "
                                "(a `tinywave vocoder train` output trained with this model's speech tokenizer)")
    key = (tokenizer.fingerprint, str(vocoder.resolve()))
    if key not in heard:
        voc = {vocoder.name: setup.load_vocoder(vocoder)}
        heard[key] = resynthesis_wer(setup.utterances, tokenizer, voc, setup.recognizer, setup.deduplicated)
    result = dict(heard[key])
    lines = result.pop("transcripts")
    atomic_write_text(out / "scores" / "resynthesis" / f"{name}.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    return {**result, "vocoder_dir": str(vocoder)}

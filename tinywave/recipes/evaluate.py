"""Recipe: score models on sSC/tSC/SALMon/sWUGGY/sBLIMP, perplexity and GenPPL, side by side.

    tinywave eval --model teacher=runs/teacher --model student=runs/student \\
        --bench sSC=bench/sSC --bench tSC=bench/tSC --bench salmon=bench/salmon \\
        --bench swuggy=bench/sLM21/lexical --bench sblimp=bench/sLM21/syntactic \\
        --ppl libri=tokens.heldout.jsonl --out runs/eval [--reference teacher] [--score sum]
    tinywave eval --model a=DIR --bench bench/ --out OUT     # every standard folder under bench/

A bench NAME of sSC, tSC, salmon, swuggy (sWUGGY, lexical) or sblimp (sBLIMP, syntactic)
sets its layout; any other name has its layout detected from the folder. Writes
OUT/results.json, OUT/results.md (ratios to the reference model), OUT/results.png,
per-item scores in OUT/scores/ and the token cache in OUT/cache/.
GenPPL / Auto-BLEU run when generation.prompts, generation.asr, generation.text_lm and
generation.vocoder are all given; ``generation.asr=pocketsphinx`` needs no download
(``pip install 'tinywave[asr]'``).

Resynthesis intelligibility runs when ``resynthesis.manifest`` names held-out speech
with reference texts: each model's speech tokenizer tokenizes it, the vocoder
(``resynthesis.vocoder``, default ``<model>/vocoder``) speaks the units again, and the
recognizer's WER / CER on the original and on the resynthesis go to the reports:

    tinywave eval --model student=runs/student --out runs/eval \
        resynthesis.manifest=corpus/heldout.jsonl resynthesis.vocoder=runs/vocoder \
        resynthesis.asr=pocketsphinx resynthesis.lm_manifest=corpus/manifest.jsonl
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinywave.config import field
from tinywave.data.manifest import read_manifest
from tinywave.eval.layouts import discover
from tinywave.eval.wer import normalize_text

log = logging.getLogger(__name__)


@dataclass
class GenerationConfig:
    prompts: str = field("", help="folder of .wav files (searched recursively) whose first seconds prompt continuations")
    asr: str = field("", help="recognizer: pocketsphinx (offline, pip install 'tinywave[asr]'), whisper:DIR, ctc:DIR or a "
                              "local Hugging Face Whisper / CTC directory")
    text_lm: str = field("", help="local causal text LM directory (model + tokenizer)")
    vocoder: str = field("", help="unit vocoder directory (`tinywave vocoder train`)")
    max_files: int = field(100, help="prompt files used (slamkit uses 1000)")
    prompt_seconds: float = field(3.0, help="prompt length in seconds")
    new_tokens: int = field(150, help="speech tokens sampled per continuation")
    temperature: float = field(0.8, help="sampling temperature")
    top_k: int = field(25, help="top-k sampling")
    seed: int = field(0, help="sampling seed")
    batch_size: int = field(8, help="prompts sampled together")


@dataclass
class ResynthesisConfig:
    manifest: str = field("", help="held-out manifest (audio + 'text') to tokenize, vocode and transcribe; '' : no resynthesis WER")
    vocoder: str = field("", help="unit vocoder directory (default: each model's vocoder/ folder)")
    asr: str = field("pocketsphinx", help="recognizer: pocketsphinx (offline), pocketsphinx:LM.arpa, whisper:DIR, ctc:DIR or a directory")
    lm_manifest: str = field("", help="pocketsphinx: a manifest whose texts (e.g. the training corpus) build a domain language "
                                      "model; '' : its general English model")
    max_items: int = field(20, help="held-out utterances used (0: all)")
    units: str = field("deduplicated", help="deduplicated (speech strings, predicted durations: what an LM generates) or raw "
                                            "(unit frames at the original timing: the vocoder alone)")


@dataclass
class Config:
    model: list[str] = field([], help="NAME=DIR of a model folder (HF dir + speech_tokenizer/); repeat for more models")
    bench: list[str] = field([], help="NAME=DIR of a benchmark folder, or a benchmarks root DIR holding sSC/ tSC/ salmon/ sLM21/; repeat")
    out: str = field("", help="output folder for results.json, results.md, results.png, scores/ and cache/")
    reference: str = field("", help="model the ratios are relative to (default: the first --model)")
    score: str = field("mean", help="mean (length-normalized, the community default) or sum token log-likelihood")
    batch_tokens: int = field(4096, help="padded tokens per forward pass (0: one sequence at a time)")
    append_eos: bool = field(True, help="append EOS to scored sequences (slamkit does)")
    cross_modal: bool = field(True, help="also score text->speech and speech->text where items.jsonl gives texts and ending times")
    submission: bool = field(False, help="write ZeroSpeech submission files (<stem> <score>) for sWUGGY/sBLIMP")
    speech_tokenizer: str = field("", help="speech tokenizer directory used for every model instead of its speech_tokenizer/")
    ppl: list[str] = field([], help="NAME=tokens.jsonl held-out token corpus for normalized perplexity; repeat")
    cache: str = field("", help="token cache folder (default OUT/cache); share it between runs")
    device: str = field("cpu", help="cpu or cuda")
    dtype: str = field("fp32", help="model weights dtype: fp32, bf16 or fp16 (float32, bfloat16, float16 also work)")
    generation: GenerationConfig = field(default_factory=GenerationConfig, help="GenPPL / Auto-BLEU settings")
    resynthesis: ResynthesisConfig = field(default_factory=ResynthesisConfig, help="resynthesis WER settings")


def parse_named(values: list[str], what: str) -> dict[str, Path]:
    """``NAME=PATH`` strings -> {name: path}; a bare PATH is named after its folder."""
    named: dict[str, Path] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = Path(v).name, v
        if not name or not path:
            raise ValueError(f"--{what} {v!r} must look like NAME=DIR")
        if name in named:
            raise ValueError(f"--{what} name {name!r} is given twice; names must be unique")
        named[name] = Path(path)
    return named


def parse_benches(values: list[str]) -> dict[str, Path]:
    """NAME=DIR entries, plus every standard benchmark under each bare root DIR."""
    benches: dict[str, Path] = {}
    for v in values:
        found = parse_named([v], "bench") if "=" in v else discover(v)
        clash = set(found) & set(benches)
        if clash:
            raise ValueError(f"benchmark names {sorted(clash)} are given twice; name them apart with --bench NAME=DIR")
        benches.update(found)
    return benches


def generation_setup(cfg: GenerationConfig, device: str):
    """The GenPPL pieces when all four locations are given; None when none is; else an error."""
    # lazy: these import torch (~1.4 s; eval.genppl and eval.suite transformers too); recipe modules import without them
    from tinywave.eval.asr import load_recognizer
    from tinywave.eval.genppl import GenSettings, TextLM
    from tinywave.eval.suite import GenerationSetup

    given = {k: getattr(cfg, k) for k in ("prompts", "asr", "text_lm", "vocoder")}
    if not any(given.values()):
        return None
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise ValueError(f"GenPPL needs generation.prompts, .asr, .text_lm and .vocoder; missing {', '.join('generation.' + m for m in missing)}")
    prompts = sorted(Path(cfg.prompts).rglob("*.wav"))
    if not prompts:
        raise FileNotFoundError(f"generation.prompts={cfg.prompts} holds no .wav files; pass a folder of prompt audio")
    from tinywave.vocoder.backends import load_vocoder  # lazy: vocoder.backends imports torch (~1.4 s)

    vocoder = load_vocoder(cfg.vocoder)
    settings = GenSettings(cfg.prompt_seconds, cfg.new_tokens, cfg.temperature, cfg.top_k, cfg.seed, cfg.batch_size, cfg.max_files)
    return GenerationSetup(prompts, lambda s: vocoder.vocode(s), load_recognizer(cfg.asr, device), TextLM(cfg.text_lm, device), settings)


UNITS = {"deduplicated": True, "raw": False}


def resynthesis_setup(cfg: ResynthesisConfig, device: str, out: Path):
    """The resynthesis WER pieces when ``resynthesis.manifest`` is given, else None (a domain model goes to OUT/asr_lm.arpa)."""
    # lazy: these import torch (~1.4 s; eval.suite transformers too); recipe modules import without them
    from tinywave.eval.asr import build_language_model, load_recognizer
    from tinywave.eval.resynthesis import read_spoken
    from tinywave.eval.suite import ResynthesisSetup
    from tinywave.vocoder.backends import load_vocoder

    if not cfg.manifest:
        return None
    if cfg.units not in UNITS:
        raise ValueError(f"resynthesis.units={cfg.units!r} is not known; choose one of {sorted(UNITS)}")
    utts = read_spoken(cfg.manifest, cfg.max_items)
    asr = cfg.asr
    if cfg.lm_manifest:
        if asr != "pocketsphinx":
            raise ValueError(f"resynthesis.lm_manifest builds a PocketSphinx language model; set resynthesis.asr=pocketsphinx (not {asr!r})")
        asr = f"pocketsphinx:{build_language_model(lm_texts(cfg.lm_manifest, utts), out / 'asr_lm.arpa')}"
    vocoder = Path(cfg.vocoder) if cfg.vocoder else None
    return ResynthesisSetup(utts, load_recognizer(asr, device), load_vocoder, vocoder, UNITS[cfg.units])


def lm_texts(manifest: str, evaluated: list[Any]) -> list[str]:
    """The texts of a manifest without the evaluated utterances' (by id or text): the recognizer must not be handed them."""
    items, _ = read_manifest(manifest)
    ids, texts = {u.id for u in evaluated}, {normalize_text(u.text) for u in evaluated}
    return [it.text for it in items if it.text and it.id not in ids and normalize_text(it.text) not in texts]


def run(cfg: Config) -> int:
    from tinywave.eval.suite import EvalSettings, evaluate  # lazy: eval.suite imports torch and transformers

    if not cfg.out:
        raise ValueError("--out is required: the folder for results.json, results.md and results.png")
    models = parse_named(cfg.model, "model")
    benches = parse_benches(cfg.bench)
    ppl = parse_named(cfg.ppl, "ppl")
    settings = EvalSettings(cfg.score, cfg.batch_tokens, cfg.append_eos, cfg.cross_modal, cfg.submission, cfg.device, cfg.dtype,
                            Path(cfg.cache) if cfg.cache else None)
    report = evaluate(models, benches, Path(cfg.out), reference=cfg.reference or None, settings=settings,
                      speech_tokenizer=cfg.speech_tokenizer or None, perplexity=ppl,
                      generation=generation_setup(cfg.generation, cfg.device),
                      resynthesis=resynthesis_setup(cfg.resynthesis, cfg.device, Path(cfg.out)))
    for row, scores in report["results"].items():
        if "/" not in row:
            log.info("%-12s %s", row, "  ".join(f"{m}={100 * v:.2f}" for m, v in scores.items()))
    return 0

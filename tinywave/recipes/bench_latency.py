"""Recipe: CPU latency of teacher and student, side by side in one run.

    tinywave bench latency --model teacher=runs/models/teacher --model student=runs/models/student
    tinywave bench latency --model teacher=T --model student=S --batch-size 1 --batch-size 8 \
        --precision fp32 --precision bf16 --precision int8 --out bench.json

Prints time to first token, decode tokens/s (per sequence and per batch) and the
real-time factor (seconds of speech per wall second) for every model x precision x batch,
the quality of bf16/int8 against fp32, and the shallowest / deepest model speed ratios
against the target 0.9 x (layer ratio). Uses the models' own tokenizers; with
``--vocoder`` (or ``<model>/vocoder``), RTF includes vocoding the generated units.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tinywave.config import field
from tinywave.files import atomic_write_json
from tinywave.text.vocab import layout_from_tokenizer, load_tokenizer

log = logging.getLogger(__name__)


@dataclass
class Config:
    RENAMED: ClassVar[dict[str, str]] = {"batch": "batch_size"}
    model: list[str] = field([], help="NAME=DIR model directories, e.g. teacher=runs/models/teacher (repeatable)")
    vocoder: str = field("", help="vocoder directory to include in RTF ('' : <model>/vocoder if present; 'none': LM only)")
    batch_size: list[int] = field([1, 8], help="batch sizes to time (repeatable: --batch-size 1 --batch-size 8)")
    precision: list[str] = field(["fp32", "bf16", "int8"], help="fp32, bf16, int8 (dynamic int8 linears on fp32), int8-torchao (the same "
                                                                      "with torchao: pip install 'tinywave[torchao]'); bfloat16 also works")
    prompt_tokens: int = field(64, help="prompt length in tokens")
    new_tokens: int = field(64, help="tokens generated per row")
    repeats: int = field(3, help="timed runs per setting (median)")
    threads: int = field(0, help="torch threads (0: torch's default)")
    unit_rate: float = field(25.0, help="[Hu] tokens per second of speech when no vocoder is used")
    out: str = field("", help="write the results as JSON to this file")


def parse_models(specs: list[str]) -> list[tuple[str, Path]]:
    models = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--model {spec!r} must look like NAME=DIR (e.g. student=runs/models/student)")
        if not Path(path).is_dir():
            raise FileNotFoundError(f"model directory {path} (for {name}) not found")
        models.append((name, Path(path)))
    if not models:
        raise ValueError("bench latency needs at least one --model NAME=DIR (two to compare teacher and student)")
    return models


def _vocode_fn(vocoder_dir: Path | None, layout: Any) -> tuple[Any, int | None]:
    """(tokens -> (audio s, wall s)) and the vocoder's unit count, or (None, None)."""
    from tinywave.vocoder.backends import load_vocoder  # lazy: vocoder.backends imports torch (~1.4 s)

    if vocoder_dir is None:
        return None, None
    voc = load_vocoder(vocoder_dir)

    def vocode(tokens: list[int]) -> tuple[float, float]:
        t0 = time.perf_counter()
        wav = voc.vocode(layout.ids_to_speech_string(tokens))
        return len(wav) / 16000, time.perf_counter() - t0

    return vocode, int(voc.limits["hubert"])


def _vocoder_dir(cfg: Config, model_dir: Path) -> Path | None:
    if cfg.vocoder == "none":
        return None
    if cfg.vocoder:
        return Path(cfg.vocoder)
    return model_dir / "vocoder" if (model_dir / "vocoder").is_dir() else None


def run(cfg: Config) -> int:
    import torch  # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)

    # lazy: generate.bench and generate.deploy import torch and transformers (~3 s)
    from tinywave.generate.bench import Subject, format_table, measure, ratios
    from tinywave.generate.deploy import load_causal_lm

    models = parse_models(cfg.model)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    subjects = []
    for name, path in models:
        tok = load_tokenizer(path)
        layout = layout_from_tokenizer(tok)
        vocode, n_units = _vocode_fn(_vocoder_dir(cfg, path), layout)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        subjects.append(Subject(name, load_causal_lm(path, "fp32"), layout, tok.bos_token_id, pad, vocode, n_units))
    log.info("timing %s, interleaved", ", ".join(f"{s.name} ({s.model.config.num_hidden_layers} layers)" for s in subjects))
    results = measure(subjects, cfg.precision, cfg.batch_size, cfg.prompt_tokens, cfg.new_tokens, cfg.repeats, unit_rate=cfg.unit_rate)
    print(format_table(results))
    report: dict[str, Any] = {"results": [r.to_json() for r in results], "threads": torch.get_num_threads()}
    if len(models) >= 2:
        layers = {r.model: r.layers for r in results}
        slow, fast = max(layers, key=layers.get), min(layers, key=layers.get)  # deepest (teacher) vs shallowest (student)
        report["ratios"] = ratios(results, fast, slow)
        print(f"\n{fast} / {slow} (target: decode ratio >= 0.9 x layer ratio)")
        for r in report["ratios"]:
            print(f"  {r['precision']:<5} batch {r['batch']:>2}: decode x{r['decode_ratio']:.2f}, TTFT x{r['ttft_ratio']:.2f}, "
                  f"target x{r['target']:.2f} {'met' if r['meets_target'] else 'NOT met'}")
    if cfg.out:
        atomic_write_json(cfg.out, report)
    return 0

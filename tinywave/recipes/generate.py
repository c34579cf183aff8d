"""Recipe: prompt a model with text and/or audio; write wavs and token transcripts.

    tinywave generate --model runs/models/student --input text:"the cat" --modality speech --out gen/
    tinywave generate --model M --input audio:in.wav --modality text --out gen/ --greedy
    tinywave generate --model M --prompts prompts.jsonl --num-samples 4 --batch-size 8 --out gen/
    tinywave generate --model M --input audio:in.wav --input text:"and then" --modality arbitrary --stream --out gen/

Writes ``OUT/<i>.txt`` (the generated tokens as text, with the model's markers),
``OUT/<i>.wav`` (16 kHz, when the output holds speech), ``OUT/generations.jsonl`` and
``OUT/index.md`` (a table linking every sample, for reports).
Every input is checked (modality, empty prompt, unreadable audio, prompt longer than the
context) before any decoding, and files are written only once everything is generated,
each atomically: a failed run leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tinywave.config import field
from tinywave.files import read_jsonl
from tinywave.generate.outputs import generation_rows, write_outputs

log = logging.getLogger(__name__)


@dataclass
class Config:
    RENAMED: ClassVar[dict[str, str]] = {"batch": "batch_size"}
    model: str = field("", help="model directory (Hugging Face dir + speech_tokenizer/ [+ vocoder/])")
    vocoder: str = field("", help="vocoder directory (default <model>/vocoder; 'none': transcripts only)")
    input: list[str] = field([], help="prompt items in order: text:WORDS, audio:PATH.wav or tokens:[Hu..] (repeatable)")
    prompts: str = field("", help="JSON-lines file of prompts: {\"id\": ..., \"inputs\": [\"text:...\", \"audio:...\"]}")
    modality: str = field("speech", help="output modality: speech, text or arbitrary")
    out: str = field("", help="output folder")
    num_samples: int = field(1, help="continuations per prompt")
    batch_size: int = field(8, help="rows decoded together")
    stream: bool = field(False, help="stream tokens and audio chunks as they are produced (one prompt at a time)")
    max_new_tokens: int = field(200, help="maximum generated tokens")
    max_seconds: float = field(10.0, help="speech: stop after this many seconds of units (0: no limit)")
    allow_eos: bool = field(True, help="speech: let the model end the utterance with EOS")
    greedy: bool = field(False, help="greedy decoding instead of sampling")
    temperature: float = field(0.8, help="sampling temperature")
    top_k: int = field(0, help="sample from the k best tokens (0: all)")
    top_p: float = field(0.95, help="nucleus sampling mass")
    seed: int = field(0, help="sampling seed")
    speaker: str = field("0", help="vocoder speaker: index or name from speakers.txt")
    dtype: str = field("fp32", help="fp32 or bf16 (float32, bfloat16 also work)")
    int8: bool = field(False, help="dynamic int8 quantization of linear layers")
    int8_backend: str = field("tinywave", help="int8 quantizer: tinywave (torch alone) or torchao (pip install 'tinywave[torchao]'); "
                                               "tinywave/generate/int8.py compares them")
    chunk_units: int = field(25, help="streaming: units per audio chunk")


def read_prompts(cfg: Config) -> list[tuple[str, list[Any]]]:
    """(prompt id, PromptItems) from --input and/or --prompts."""
    from tinywave.generate.prompt import parse_input  # lazy: generate.prompt imports torch and transformers (~3 s)

    prompts: list[tuple[str, list[Any]]] = []
    if cfg.input:
        prompts.append(("input", [parse_input(s) for s in cfg.input]))
    if cfg.prompts:
        path = Path(cfg.prompts)
        if not path.is_file():
            raise FileNotFoundError(f"prompts file {path} not found")
        for n, obj, err in read_jsonl(path):
            if obj is None or not isinstance(obj.get("inputs"), list):
                why = err or 'needs an "inputs" list such as ["text:hello", "audio:a.wav"]'
                raise ValueError(f"{path}:{n}: {why}")
            items = [_relative_audio(parse_input(str(s)), path.parent) for s in obj["inputs"]]
            prompts.append((str(obj.get("id", f"p{n}")), items))
    if not prompts:
        raise ValueError("no prompt given; pass --input text:... / --input audio:FILE or --prompts FILE.jsonl")
    return prompts


def _relative_audio(item: Any, root: Path) -> Any:
    """Audio paths in a prompts file are relative to its folder."""
    from tinywave.generate.prompt import PromptItem  # lazy: as in read_prompts

    if item.kind == "audio" and not Path(item.content).is_absolute():
        return PromptItem("audio", str(root / item.content))
    return item


def _options(cfg: Config):
    # lazy: generate.decode and generate.speechlm import torch and transformers (~3 s); recipe modules import without them
    from tinywave.generate.decode import Sampling
    from tinywave.generate.speechlm import GenerationOptions

    speaker: int | str = int(cfg.speaker) if cfg.speaker.isdigit() else cfg.speaker
    sampling = Sampling(cfg.greedy, cfg.temperature, cfg.top_k, cfg.top_p, cfg.seed)
    return GenerationOptions(cfg.max_new_tokens, cfg.max_seconds, cfg.allow_eos, sampling, speaker, cfg.num_samples,
                             max(1, cfg.batch_size), cfg.chunk_units)


def _nth_sample(options: Any, k: int) -> Any:
    """Streaming decodes one row at a time: sample ``k`` of a prompt gets its own seed."""
    return dataclasses.replace(options, sampling=dataclasses.replace(options.sampling, seed=options.sampling.seed + k))


def _stream_one(lm: Any, items: list[Any], modality: str, options: Any) -> Any:
    """Stream one generation, echoing tokens to stdout and logging audio latency."""
    t0 = time.perf_counter()
    first_audio, audio_s, result = None, 0.0, None
    for event in lm.stream(items, modality, options):
        if event.kind == "token":
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif event.kind == "audio":
            first_audio = first_audio or time.perf_counter() - t0
            audio_s += len(event.audio) / 16000
        else:
            result = event.result
    wall = time.perf_counter() - t0
    sys.stdout.write("\n")
    if first_audio is not None:
        log.info("streamed %.2f s of audio in %.2f s (first chunk after %.2f s, %.1fx real time)", audio_s, wall, first_audio, audio_s / wall)
    return result


def run(cfg: Config) -> int:
    # lazy: generate.forcing and generate.speechlm import torch and transformers (~3 s); recipe modules import without them
    from tinywave.generate.forcing import check_modality
    from tinywave.generate.speechlm import SpeechLM

    # 1. arguments and prompts, checked before loading anything heavy
    if not cfg.model or not cfg.out:
        raise ValueError("generate needs --model DIR and --out DIR")
    check_modality(cfg.modality)
    prompts = read_prompts(cfg)
    options = _options(cfg)
    # 2. the model; every prompt is encoded (audio read and tokenized) before decoding starts
    lm = SpeechLM.load(cfg.model, cfg.vocoder or None, cfg.dtype, cfg.int8, int8_backend=cfg.int8_backend)
    prompts = [(pid, lm.encode(items, cfg.modality)) for pid, items in prompts]  # audio read and tokenized once
    if cfg.modality != "text" and lm.vocoder is None:
        log.warning("no vocoder: writing transcripts only")
    # 3. generation: batched, or streamed one prompt at a time
    t0 = time.perf_counter()
    if cfg.stream:
        results = [_stream_one(lm, items, cfg.modality, _nth_sample(options, k)) for _, items in prompts for k in range(cfg.num_samples)]
    else:
        results = lm.generate([items for _, items in prompts], cfg.modality, options)
    wall = time.perf_counter() - t0
    # 4. outputs, written only now
    rows = generation_rows(results, [pid for pid, _ in prompts for _ in range(cfg.num_samples)])
    write_outputs(Path(cfg.out), rows, results)
    audio_s = sum(r["seconds"] for r in rows)
    log.info("%d generation(s) -> %s in %.1f s (%d tokens, %.1f s of audio)", len(results), cfg.out, wall,
             sum(r["new_tokens"] for r in rows), audio_s)
    return 0

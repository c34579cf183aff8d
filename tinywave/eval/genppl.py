"""Generative metrics: GenPPL and Auto-BLEU of speech continuations (slamkit's recipe).

1. Cut a 3 s prompt from each audio file and tokenize it.
2. Sample a speech-only continuation (temperature 0.8, top-k 25, 150 new tokens; every
   non-speech id is banned, so EOS never ends a sample early).
3. Vocode prompt + continuation (``vocode(speech_string) -> 16 kHz waveform``).
4. Transcribe with a recognizer (:mod:`tinywave.eval.asr`: PocketSphinx offline, or a
   local Whisper / CTC directory).
5. GenPPL = exp(mean over samples of each transcript's mean token NLL under a local text
   LM); Auto-BLEU-n = mean over transcripts of the share of word n-grams that occur
   elsewhere in the same transcript (0 when there is no n-gram).

Transcripts are lower-cased without punctuation. A transcript with fewer than two text-LM
tokens has no scored token and is left out of GenPPL (counted in ``empty``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinywave.audio.io import SAMPLE_RATE, load_audio
from tinywave.eval.asr import WhisperRecognizer as Transcriber  # noqa: F401 (GenPPL's recognizer before asr.py)
from tinywave.eval.token_cache import SpeechTokenizerLike
from tinywave.eval.scoring import ScoreRequest, SequenceBuilder, log_likelihoods
from tinywave.eval.wer import normalize_text  # noqa: F401 (re-exported)
from tinywave.hub import resolve_model_dir
from tinywave.progress import bar
from tinywave.text.vocab import VocabLayout

log = logging.getLogger(__name__)
STREAM_RANGE = {"hubert": "hu", "pitch": "pi", "style": "st"}


@dataclass
class GenSettings:
    prompt_seconds: float = 3.0
    new_tokens: int = 150
    temperature: float = 0.8
    top_k: int = 25
    seed: int = 0
    batch_size: int = 8
    max_files: int = 100
    bleu_n: int = 2


@dataclass
class GenReport:
    genppl: float
    auto_bleu: float
    samples: int
    empty: int
    transcripts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"genppl": self.genppl, "auto_bleu": self.auto_bleu, "samples": self.samples, "empty": self.empty}


# ---------------------------------------------------------------- sampling


def speech_token_ids(layout: VocabLayout, streams: Sequence[str]) -> list[int]:
    """Ids of the speech tokens of the given streams (``hubert``, ``pitch``, ``style``)."""
    ranges = layout.ranges()
    return [i for s in streams for i in ranges[STREAM_RANGE[s]]]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


def _pick(logits: torch.Tensor, banned: torch.Tensor, temperature: float, top_k: int, gen: torch.Generator) -> torch.Tensor:
    """One sampled id per row from (B, V) logits: ban, temperature, top-k, multinomial."""
    scores = logits.float().masked_fill(banned, -math.inf) / temperature  # (B, V)
    k = min(top_k, int((~banned).sum()))
    kth = scores.topk(k, dim=-1).values[:, -1:]  # (B, 1)
    scores = scores.masked_fill(scores < kth, -math.inf)
    return torch.multinomial(scores.softmax(-1).cpu(), 1, generator=gen).to(logits.device)  # (B, 1)


@torch.inference_mode()
def _sample_batch(model: torch.nn.Module, rows: Sequence[Sequence[int]], banned: torch.Tensor, pad_id: int,
                  settings: GenSettings, gen: torch.Generator) -> list[list[int]]:
    device = next(model.parameters()).device
    ids, mask = (t.to(device) for t in left_pad(rows, pad_id))
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T): left padding shifts positions
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    new = []
    for _ in range(settings.new_tokens):
        tok = _pick(out.logits[:, -1], banned, settings.temperature, settings.top_k, gen)  # (B, 1)
        new.append(tok)
        mask = torch.cat([mask, torch.ones_like(tok)], dim=1)
        pos = pos[:, -1:] + 1
        out = model(input_ids=tok, attention_mask=mask, position_ids=pos, cache=out.cache, use_cache=True, logits_to_keep=1)
    return torch.cat(new, dim=1).tolist()


def sample_continuations(model: torch.nn.Module, prompts: Sequence[Sequence[int]], allowed_ids: Sequence[int],
                         pad_id: int, settings: GenSettings) -> list[list[int]]:
    """``settings.new_tokens`` sampled ids per prompt, drawn only from ``allowed_ids``."""
    vocab = model.get_output_embeddings().weight.shape[0]
    banned = torch.ones(vocab, dtype=torch.bool)
    banned[list(allowed_ids)] = False
    banned = banned.to(next(model.parameters()).device)
    gen = torch.Generator().manual_seed(settings.seed)
    out: list[list[int]] = []
    for i in bar(range(0, len(prompts), settings.batch_size), desc="sampling", unit="batch"):
        out += _sample_batch(model, prompts[i : i + settings.batch_size], banned, pad_id, settings, gen)
    return out


# ---------------------------------------------------------------- text LM, Auto-BLEU


def auto_bleu(text: str, n: int = 2) -> float:
    """Share of word n-grams that also occur at another position of the same text."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    counts: dict[tuple[str, ...], int] = {}
    for g in grams:
        counts[g] = counts.get(g, 0) + 1
    return sum(counts[g] > 1 for g in grams) / len(grams)


class TextLM:
    """A local causal text LM directory; mean token NLL of texts (the first token is context)."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        # lazy: transformers is heavy (~3 s) and only the text LM of GenPPL needs it
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = resolve_model_dir(folder, "text LM")  # a directory, or a hub id in the local HF cache
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"text LM directory {folder} has no config.json; pass a local causal LM directory")
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else (self.tokenizer.eos_token_id or 0)

    def mean_nll(self, texts: Sequence[str], batch_tokens: int = 4096) -> list[float | None]:
        ids = [tuple(self.tokenizer(t)["input_ids"]) for t in texts]
        scorable = [i for i, x in enumerate(ids) if len(x) >= 2]
        lls = log_likelihoods(self.model, [ScoreRequest(ids[i], 1) for i in scorable], "mean", batch_tokens, self.pad, desc="text LM") if scorable else []
        out: list[float | None] = [None] * len(texts)
        for i, ll in zip(scorable, lls):
            out[i] = -ll
        return out


# ---------------------------------------------------------------- the whole metric


def prompt_ids(files: Sequence[Path], tokenizer: SpeechTokenizerLike, builder: SequenceBuilder, seconds: float) -> tuple[list[list[int]], list[str]]:
    """[BOS] [Speech] units of the first ``seconds`` of each file, and the prompt strings."""
    rows, strings = [], []
    for path in files:
        wav, _ = load_audio(path)
        speech = tokenizer.encode_string(wav[: int(seconds * SAMPLE_RATE)])
        strings.append(speech)
        rows.append(list(builder.speech_window(builder.speech_ids(speech)).ids))
    return rows, strings


def generative_metrics(model: torch.nn.Module, builder: SequenceBuilder, tokenizer: SpeechTokenizerLike, files: Sequence[Path],
                       vocode: Callable[[str], np.ndarray], transcribe: Callable[[Sequence[np.ndarray]], list[str]],
                       *, text_lm: TextLM, settings: GenSettings) -> GenReport:
    """GenPPL and Auto-BLEU of continuations of ``files``; see the module docstring."""
    files = list(files)[: settings.max_files]
    if not files:
        raise ValueError("no prompt audio files for GenPPL; pass a folder of .wav files")
    rows, prompts = prompt_ids(files, tokenizer, builder, settings.prompt_seconds)
    allowed = speech_token_ids(builder.layout, list(tokenizer.rates))
    continuations = sample_continuations(model, rows, allowed, builder.pad, settings)
    speech = [p + builder.layout.ids_to_speech_string(c) for p, c in zip(prompts, continuations)]
    wavs = [np.asarray(vocode(s), dtype=np.float32) for s in bar(speech, desc="vocoding", unit="utt")]
    texts = transcribe(wavs)
    nlls = text_lm.mean_nll(texts)
    valid = [x for x in nlls if x is not None]
    genppl = math.exp(sum(valid) / len(valid)) if valid else math.nan
    bleu = sum(auto_bleu(t, settings.bleu_n) for t in texts) / len(texts)
    rows_out = [{"file": str(f), "transcript": t, "nll": x} for f, t, x in zip(files, texts, nlls)]
    log.info("GenPPL %.2f, Auto-BLEU-%d %.3f over %d samples (%d without a scorable transcript)",
             genppl, settings.bleu_n, bleu, len(texts), len(texts) - len(valid))
    return GenReport(genppl, bleu, len(texts), len(texts) - len(valid), rows_out)

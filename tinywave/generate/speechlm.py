"""Generation API: prompt a speech LM with interleaved text/audio, get text or speech back.

    lm = SpeechLM.load("runs/models/student")          # + <model>/vocoder, <model>/speech_tokenizer
    [out] = lm.generate([[PromptItem("text", "the cat")]], "speech", GenerationOptions(max_seconds=5))
    out.audio                                          # 16 kHz float32 waveform
    for event in lm.stream([PromptItem("audio", "in.wav")], "speech"):
        ...                                            # "token" events, then "audio" chunks as they are ready

Batches of prompts decode together (left padding); ``num_samples`` continuations per
prompt. Streaming reuses the KV cache step by step and vocodes speech in chunks.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinywave.generate.audio import ChunkedVocoder, classify, split_output
from tinywave.generate.decode import Sampling, Step, decode_steps
from tinywave.generate.deploy import load_causal_lm
from tinywave.generate.forcing import ModalityLogitsProcessor, SpeechDurationCriteria, check_modality
from tinywave.generate.prompt import PromptItem, last_speech_run, prompt_ids, prompt_segments, prompt_text, resolve
from tinywave.speech.tokenizer import SpeechTokenizer
from tinywave.text.vocab import layout_from_tokenizer, load_tokenizer
from tinywave.vocoder.backends import load_vocoder

log = logging.getLogger(__name__)
DEFAULT_UNIT_RATE = 25.0


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 200
    max_seconds: float = 0.0  # speech: stop a row after this many seconds of [Hu] units (0: no limit)
    allow_eos: bool = True  # speech: EOS may end the utterance (SpiritLM bans it)
    sampling: Sampling = field(default_factory=Sampling)
    speaker: int | str = 0
    num_samples: int = 1
    batch_size: int = 8
    chunk_units: int = 25  # streaming: units per audio chunk


@dataclass
class Generation:
    prompt: str
    ids: list[int]
    runs: list[tuple[str, str]]  # ('t', text) / ('s', speech string)
    transcript: str
    stop: str  # eos | max_seconds | max_new_tokens
    audio: np.ndarray | None = None

    @property
    def text(self) -> str:
        return "".join(c for k, c in self.runs if k == "t")

    @property
    def speech(self) -> str:
        return "".join(c for k, c in self.runs if k == "s")


@dataclass
class StreamEvent:
    kind: str  # "token" | "audio" | "done"
    token: int | None = None
    text: str = ""
    audio: np.ndarray | None = None
    result: Generation | None = None


@dataclass
class _Prepared:
    ids: list[int]
    prompt: str
    tail_speech: str  # the prompt's trailing speech: vocoder context for a continuation


class SpeechLM:
    """A causal LM over text + speech tokens, with its tokenizers and (optionally) a vocoder."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, speech_tokenizer: Any = None,
                 vocoder: Any = None, speech_tokenizer_loader: Callable[[], Any] | None = None,
                 vocoder_loader: Callable[[], Any] | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.layout = layout_from_tokenizer(tokenizer)
        self._speech_tokenizer, self._speech_loader = speech_tokenizer, speech_tokenizer_loader
        self._vocoder, self._vocoder_loader = vocoder, vocoder_loader
        self.vocab_size = int(model.config.vocab_size)
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 30)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @classmethod
    def load(cls, model_dir: str | Path, vocoder: str | Path | None = None, dtype: str = "fp32", int8: bool = False,
             speech_tokenizer: Any = None, *, int8_backend: str = "tinywave") -> "SpeechLM":
        """A model directory; the speech tokenizer and vocoder load on first use.

        ``vocoder``: a directory, None for ``<model>/vocoder``, or "none" for no audio output.
        """
        model_dir = Path(model_dir)
        model = load_causal_lm(model_dir, dtype, int8, int8_backend)
        tokenizer = load_tokenizer(model_dir)
        voc_dir = model_dir / "vocoder" if vocoder is None else Path(vocoder) if str(vocoder) != "none" else None
        return cls(model, tokenizer, speech_tokenizer=speech_tokenizer,
                   speech_tokenizer_loader=lambda: load_speech_tokenizer(model_dir / "speech_tokenizer"),
                   vocoder_loader=(lambda: _load_vocoder(voc_dir)) if voc_dir is not None else None)

    # --- lazily loaded parts --------------------------------------------------------
    @property
    def speech_tokenizer(self) -> Any:
        if self._speech_tokenizer is None and self._speech_loader is not None:
            self._speech_tokenizer = self._speech_loader()
        return self._speech_tokenizer

    @property
    def vocoder(self) -> Any:
        if self._vocoder is None and self._vocoder_loader is not None:
            self._vocoder = self._vocoder_loader()
        return self._vocoder

    def unit_rate(self) -> float:
        if self.vocoder is not None:
            return float(self.vocoder.unit_rate)
        tok = self._speech_tokenizer
        return float(tok.rates["hubert"]) if tok is not None else DEFAULT_UNIT_RATE

    # --- prompts ----------------------------------------------------------------------
    def prepare(self, items: Sequence[PromptItem], modality: str) -> _Prepared:
        """Validate and encode one prompt (reads and tokenizes audio); errors name the problem."""
        resolved = resolve(items, lambda: self.speech_tokenizer)
        segments = prompt_segments(resolved, modality)
        ids = prompt_ids(segments, self.tokenizer, self.layout)
        if len(ids) >= self.context:
            raise ValueError(f"the prompt is {len(ids)} tokens, longer than the model's context of {self.context}; "
                             f"shorten the text or audio (about {self.unit_rate():.0f} tokens per second of speech)")
        return _Prepared(ids, prompt_text(segments), last_speech_run(resolved))

    def encode(self, items: Sequence[PromptItem], modality: str) -> list[PromptItem]:
        """Check one prompt like :meth:`prepare` and return it with audio replaced by its speech tokens.

        Callers that validate every prompt before decoding pass the result on, so each audio
        file is read and tokenized once.
        """
        resolved = resolve(items, lambda: self.speech_tokenizer)
        encoded = [PromptItem("text" if kind == "t" else "tokens", content) for kind, content in resolved]
        self.prepare(encoded, modality)  # context and modality errors, before anything is decoded
        return encoded

    def forcing(self, modality: str, allow_eos: bool = True) -> ModalityLogitsProcessor:
        """The logits processor for ``modality``, limited to what the vocoder can synthesize."""
        check_modality(modality)
        kw: dict[str, Any] = {"eos_id": self.tokenizer.eos_token_id, "allow_eos": allow_eos}
        voc = self.vocoder if modality == "speech" else None
        if voc is not None:
            kw["streams"] = ["hubert"] + [s for s in ("pitch", "style") if voc.limits.get(s)]
            kw["n_units"] = min(int(voc.limits["hubert"]), self.layout.n_hu)
        return ModalityLogitsProcessor.for_modality(self.layout, modality, self.vocab_size, **kw)

    def _steps(self, rows: list[list[int]], modality: str, options: GenerationOptions, seed_offset: int = 0) -> Iterator[Step]:
        """Decoding steps for a batch of prompt ids: forcing, the duration stop, the context budget."""
        width = max(len(r) for r in rows)
        stopping = []
        if options.max_seconds > 0 and modality != "text":
            stopping.append(SpeechDurationCriteria(self.layout, options.max_seconds, self.unit_rate(), width))
        sampling = dataclasses.replace(options.sampling, seed=options.sampling.seed + seed_offset)
        budget = min(options.max_new_tokens, self.context - width)
        if budget < options.max_new_tokens:
            log.warning("max_new_tokens=%d does not fit the context (%d, prompt %d tokens); generating at most %d",
                        options.max_new_tokens, self.context, width, budget)
        return decode_steps(self.model, rows, max(1, budget), pad_id=self.pad_id, eos_id=self.tokenizer.eos_token_id,
                            processors=[self.forcing(modality, options.allow_eos)], stopping=stopping, sampling=sampling)

    # --- generation -------------------------------------------------------------------
    def generate(self, prompts: Sequence[Sequence[PromptItem]], modality: str = "speech",
                 options: GenerationOptions = GenerationOptions()) -> list[Generation]:
        """``num_samples`` generations per prompt, in prompt order, decoded in batches."""
        check_modality(modality)
        prepared = [self.prepare(p, modality) for p in prompts]  # all input errors before any decoding
        jobs = [p for p in prepared for _ in range(options.num_samples)]
        results: list[Generation] = []
        for start in range(0, len(jobs), options.batch_size):
            batch = jobs[start : start + options.batch_size]
            steps = self._steps([p.ids for p in batch], modality, options, seed_offset=start)
            new: list[list[int]] = [[] for _ in batch]
            last_done = torch.zeros(len(batch), dtype=torch.bool)
            for step in steps:
                for i in torch.nonzero(step.active).view(-1).tolist():
                    new[i].append(int(step.tokens[i]))
                last_done = step.done
            results += [self._finish(p, ids, bool(last_done[i]), options) for i, (p, ids) in enumerate(zip(batch, new))]
        return results

    def _stop_reason(self, ids: list[int], done: bool) -> str:
        if ids and ids[-1] == self.tokenizer.eos_token_id:
            return "eos"
        return "max_seconds" if done else "max_new_tokens"

    def _finish(self, prepared: _Prepared, ids: list[int], done: bool, options: GenerationOptions,
                audio: np.ndarray | None = None) -> Generation:
        runs, transcript = split_output(ids, self.layout, self.tokenizer)
        if audio is None and any(k == "s" for k, _ in runs) and self.vocoder is not None:
            continues = bool(ids) and classify(ids[0], self.layout) == "s"  # output starts right in the prompt's speech
            audio = self._vocode_runs(runs, prepared.tail_speech if continues else "", options)
        return Generation(prepared.prompt, ids, runs, transcript, self._stop_reason(ids, done), audio)

    def _vocode_runs(self, runs: list[tuple[str, str]], context: str, options: GenerationOptions) -> np.ndarray:
        """Audio of every speech run; ``context`` (speech tokens) conditions the first run only."""
        pieces = []
        for n, (kind, content) in enumerate(runs):
            if kind != "s":
                continue
            prefix = context if n == 0 else ""
            cv = ChunkedVocoder(self.vocoder, options.speaker, prefix, chunk_units=1 << 30, seed=options.sampling.seed)
            cv.push(content)
            pieces.append(cv.flush())
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def stream(self, items: Sequence[PromptItem], modality: str = "speech",
               options: GenerationOptions = GenerationOptions()) -> Iterator[StreamEvent]:
        """Token events as they are decoded, audio chunks as soon as enough units exist, then "done"."""
        check_modality(modality)
        prepared = self.prepare(items, modality)
        steps = self._steps([prepared.ids], modality, options)
        ids: list[int] = []
        chunks: list[np.ndarray] = []
        cv: ChunkedVocoder | None = None
        done = False
        text_run: list[int] = []  # current run of text ids, decoded incrementally (pieces carry their spacing)
        for step in steps:
            if not bool(step.active[0]):
                break
            tok = int(step.tokens[0])
            ids.append(tok)
            done = bool(step.done[0])
            kind = classify(tok, self.layout)
            text_run = text_run + [tok] if kind == "t" else []
            yield StreamEvent("token", tok, self._token_text(text_run, tok, kind))
            if kind == "s" and self.vocoder is not None:
                if cv is None:
                    prefix = prepared.tail_speech if len(ids) == 1 else ""
                    cv = ChunkedVocoder(self.vocoder, options.speaker, prefix, options.chunk_units, seed=options.sampling.seed)
                chunk = cv.push(self.layout.ids_to_speech_string([tok]))
            elif cv is not None and kind in ("t", "m"):
                chunk, cv = cv.flush(), None
            else:
                chunk = None
            if chunk is not None and len(chunk):
                chunks.append(chunk)
                yield StreamEvent("audio", audio=chunk)
        if cv is not None:
            chunk = cv.flush()
            if len(chunk):
                chunks.append(chunk)
                yield StreamEvent("audio", audio=chunk)
        audio = np.concatenate(chunks) if chunks else None
        yield StreamEvent("done", result=self._finish(prepared, ids, done, options, audio))

    def _token_text(self, text_run: list[int], tok: int, kind: str) -> str:
        if kind in ("s", "m"):
            return self.layout.ids_to_speech_string([tok])
        if kind != "t":
            return ""
        before = self.tokenizer.decode(text_run[:-1], skip_special_tokens=True)
        return self.tokenizer.decode(text_run, skip_special_tokens=True)[len(before):]


def load_speech_tokenizer(path: Path) -> Any:
    """``tinywave.speech.tokenizer.SpeechTokenizer.load(path)`` with errors that say what is missing."""
    if not path.is_dir():
        raise FileNotFoundError(f"speech tokenizer directory {path} not found; audio prompts need the model's "
                                f"speech_tokenizer/ (copy the `tinywave units train` output there)")
    return SpeechTokenizer.load(path)


def _load_vocoder(path: Path) -> Any:
    if not path.is_dir():
        raise FileNotFoundError(f"vocoder directory {path} not found; train one with `tinywave vocoder train --out {path}`, "
                                f"pass --vocoder DIR, or --vocoder none for token transcripts only")
    return load_vocoder(path)

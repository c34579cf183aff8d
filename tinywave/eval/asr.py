"""Speech recognizers for evaluation: 16 kHz waveforms in, normalized transcripts out.

    asr = load_recognizer("pocketsphinx")            # offline default: `pip install 'tinywave[asr]'`
    asr = load_recognizer("pocketsphinx:lm.arpa")    # ... with a domain language model
    asr = load_recognizer("whisper:runs/whisper")    # a local Hugging Face Whisper directory
    asr = load_recognizer("openai/whisper-small")    # a hub id already in the local HF cache (never downloaded)
    asr = load_recognizer("ctc:runs/wav2vec2")       # a local Hugging Face CTC directory (wav2vec 2.0, HuBERT)
    asr = load_recognizer("runs/whisper")            # a directory: the kind is read from its config.json
    texts = asr([wav1, wav2])                        # lower case, no punctuation (``normalize_text``)

Backends are registered in ``ASR_BACKENDS`` (name -> constructor taking the text after
``name:`` and a device). Every recognizer is a callable ``(wavs) -> list[str]``, so
GenPPL (:mod:`tinywave.eval.genppl`) and the resynthesis WER
(:mod:`tinywave.eval.resynthesis`) take any of them.

PocketSphinx 5 ships a US English acoustic model, the CMU dictionary and a general
English trigram model inside its PyPI wheel, so it needs no download. Its front end
breaks on digital silence (frames of exact zeros, as espeak-ng and vocoders produce:
the log energy of a zero frame is undefined and the cepstral mean goes astray), so
each waveform gets a fixed pseudo-random noise floor ``dither_db`` below its RMS
level, seeded per call, and the feature front end (whose live cepstral mean would
otherwise carry over) is reset before every utterance: a transcript depends only on
its waveform, not on what was decoded before.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from tinywave.audio.io import SAMPLE_RATE
from tinywave.eval.wer import normalize_text
from tinywave.files import atomic_write_text
from tinywave.hub import local_path, resolve_model_dir

INSTALL_HINT = "pip install 'tinywave[asr]' (PocketSphinx 5 with its English model, and jiwer)"


class Recognizer(Protocol):
    name: str

    def __call__(self, wavs: Sequence[np.ndarray]) -> list[str]: ...


class PocketSphinxRecognizer:
    """CMU PocketSphinx with its bundled US English model; ``lm``: an ARPA or binary n-gram file instead of its own."""

    name = "pocketsphinx"

    def __init__(self, lm: str | Path | None = None, dither_db: float = 50.0, pad_seconds: float = 0.2, seed: int = 0):
        try:
            import pocketsphinx  # lazy: optional extra (pip install 'tinywave[asr]')
        except ImportError:
            raise ValueError(f"the PocketSphinx recognizer needs the pocketsphinx package: {INSTALL_HINT}") from None
        kw: dict[str, Any] = {"samprate": SAMPLE_RATE, "loglevel": "FATAL"}
        if lm:
            if not Path(lm).is_file():
                raise FileNotFoundError(f"language model {lm} not found; pass an ARPA file (see build_language_model) or asr=pocketsphinx")
            kw["lm"] = str(lm)
            self.name = f"pocketsphinx:{Path(lm).name}"
        self.decoder = pocketsphinx.Decoder(**kw)
        self.dither_db, self.pad, self.seed = dither_db, int(pad_seconds * SAMPLE_RATE), seed

    def pcm(self, wav: np.ndarray) -> bytes:
        """16-bit PCM bytes: ``pad_seconds`` of silence each side, plus the noise floor."""
        x = np.asarray(wav, dtype=np.float64).reshape(-1)
        x = np.concatenate([np.zeros(self.pad), x, np.zeros(self.pad)])
        rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
        floor = max(rms, 1e-3) * 10.0 ** (-self.dither_db / 20.0)
        x = x + floor * np.random.default_rng(self.seed).standard_normal(len(x))
        return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()

    def transcribe(self, wav: np.ndarray) -> str:
        self.decoder.reinit_feat()  # forget the running cepstral mean of earlier utterances: as if freshly loaded
        self.decoder.start_utt()
        self.decoder.process_raw(self.pcm(wav), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return normalize_text(hyp.hypstr) if hyp is not None else ""

    def __call__(self, wavs: Sequence[np.ndarray]) -> list[str]:
        return [self.transcribe(w) for w in wavs]


def _hf_folder(folder: str | Path | None, kind: str) -> Path:
    """A local directory, or a hub id (``openai/whisper-small``) already in the local HF cache (``tinywave.hub``)."""
    if not folder:
        raise ValueError(f"asr={kind} needs a local model directory: write asr={kind}:DIR")
    folder = resolve_model_dir(folder, f"ASR model (asr={kind})")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"ASR directory {folder} has no config.json; pass a local Hugging Face {kind} directory "
                                "(save_pretrained of the model and its processor)")
    return folder


class WhisperRecognizer:
    """A local Whisper directory (``WhisperForConditionalGeneration`` + ``WhisperProcessor``)."""

    name = "whisper"

    def __init__(self, folder: str | Path | None, device: str = "cpu", max_new_tokens: int = 128):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor  # lazy: transformers is heavy (~3 s); PocketSphinx does not need it

        folder = _hf_folder(folder, "whisper")
        self.processor = WhisperProcessor.from_pretrained(str(folder), local_files_only=True)
        self.model = WhisperForConditionalGeneration.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        room = self.model.config.max_target_positions - 4  # the start, language, task and no-timestamps tokens come first
        self.max_new_tokens = min(max_new_tokens, room)

    @torch.inference_mode()
    def __call__(self, wavs: Sequence[np.ndarray], batch_size: int = 8) -> list[str]:
        texts: list[str] = []
        extra = {"language": "en", "task": "transcribe"} if getattr(self.model.generation_config, "is_multilingual", False) else {}
        for i in range(0, len(wavs), batch_size):
            feats = self.processor([np.asarray(w, np.float32) for w in wavs[i : i + batch_size]], sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
            ids = self.model.generate(feats.to(self.model.device), max_new_tokens=self.max_new_tokens, **extra)
            texts += self.processor.batch_decode(ids, skip_special_tokens=True)
        return [normalize_text(t) for t in texts]


class CtcRecognizer:
    """A local CTC directory (``AutoModelForCTC`` + ``AutoProcessor``: wav2vec 2.0, HuBERT, ...), greedy decoding."""

    name = "ctc"

    def __init__(self, folder: str | Path | None, device: str = "cpu"):
        from transformers import AutoModelForCTC, AutoProcessor  # lazy: transformers is heavy (~3 s); PocketSphinx does not need it

        folder = _hf_folder(folder, "ctc")
        self.processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModelForCTC.from_pretrained(str(folder), local_files_only=True).to(device).eval()

    @torch.inference_mode()
    def __call__(self, wavs: Sequence[np.ndarray]) -> list[str]:
        texts = []
        for w in wavs:  # one at a time: no padding to disturb the model's normalization
            inputs = self.processor(np.asarray(w, np.float32), sampling_rate=SAMPLE_RATE, return_tensors="pt")
            logits = self.model(inputs.input_values.to(self.model.device)).logits  # (1, frames, vocab)
            texts.append(self.processor.batch_decode(logits.argmax(-1))[0])
        return [normalize_text(t) for t in texts]


def _pocketsphinx(arg: str | None, device: str = "cpu") -> Recognizer:
    return PocketSphinxRecognizer(lm=arg or None)


ASR_BACKENDS: dict[str, Callable[[str | None, str], Recognizer]] = {
    "pocketsphinx": _pocketsphinx, "whisper": WhisperRecognizer, "ctc": CtcRecognizer,
}


def detect_hf_kind(folder: Path) -> str:
    """``whisper`` or ``ctc`` from a Hugging Face directory's config.json."""
    cfg = json.loads(_hf_folder(folder, "ASR").joinpath("config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") == "whisper":
        return "whisper"
    if any(str(a).endswith("ForCTC") for a in cfg.get("architectures") or []):
        return "ctc"
    raise ValueError(f"{folder / 'config.json'}: model_type={cfg.get('model_type')!r}, architectures={cfg.get('architectures')} is "
                     "neither Whisper nor a CTC model; pass asr=whisper:DIR, asr=ctc:DIR or asr=pocketsphinx")


def load_recognizer(spec: str, device: str = "cpu") -> Recognizer:
    """A recognizer from ``name``, ``name:ARG`` (see ``ASR_BACKENDS``), a model directory or a cached hub id."""
    name, sep, arg = spec.partition(":")
    if name in ASR_BACKENDS:
        return ASR_BACKENDS[name](arg if sep else None, device)
    folder = local_path(spec)  # a directory, or the cached snapshot of a hub id
    if folder.is_dir():
        kind = detect_hf_kind(folder)
        return ASR_BACKENDS[kind](str(folder), device)
    raise ValueError(f"asr={spec!r} is neither a recognizer ({', '.join(sorted(ASR_BACKENDS))}) nor a directory; "
                     f"write asr=pocketsphinx (offline: {INSTALL_HINT}) or asr=whisper:DIR")


def build_language_model(texts: Sequence[str], path: str | Path) -> Path:
    """Write a trigram ARPA model of ``texts`` (normalized, one sentence each) for ``asr=pocketsphinx:PATH``.

    Words missing from PocketSphinx's dictionary are left out of the texts: the decoder
    could not spell them anyway.
    """
    try:
        import pocketsphinx  # lazy: optional extra (pip install 'tinywave[asr]')
        from pocketsphinx.lm import ArpaBoLM  # lazy: optional extra (pip install 'tinywave[asr]')
    except ImportError:
        raise ValueError(f"building a PocketSphinx language model needs the pocketsphinx package: {INSTALL_HINT}") from None

    known = _dictionary_words(Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict")
    lines = [" ".join(w for w in normalize_text(t).split() if w in known) for t in texts]
    lines = [x for x in lines if x]
    if not lines:
        raise ValueError("no text to build a language model from: pass the corpus transcripts (manifest 'text')")
    lm = ArpaBoLM(add_start=True)
    lm.read_corpus(io.StringIO("\n".join(lines) + "\n"))
    lm.compute()
    buf = io.StringIO()
    lm.write(buf)
    atomic_write_text(Path(path), buf.getvalue())
    return Path(path)


def _dictionary_words(path: Path) -> set[str]:
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.add(line.split()[0].split("(")[0])
    return words

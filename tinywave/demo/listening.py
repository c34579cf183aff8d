"""What a listener would hear in the demo, measured by a recognizer: ``DIR/listening.json``.

Two figures with one offline recognizer (PocketSphinx's English acoustic model, decoding
with a trigram model of the target training stories; the held-out sentences never reach
that model, and the output says so):

- **resynthesis**: held-out target utterances -> the teacher's speech tokens -> the
  demo's HiFi-GAN and its Griffin-Lim baseline -> recognizer; WER against the text,
  beside the WER of the original audio (tinywave/eval/resynthesis.py);
- **samples**: the recognizer's transcript of every generated speech sample, written into
  ``samples/index.json`` as ``asr`` (report.html shows it beside the player) and into
  ``listening.json`` as ``samples``. A continuation has no reference text, so these are
  transcripts, not error rates.

The two are apart (:func:`measure_listening`, :func:`transcribe_demo_samples`) because the
resynthesis reads no trained student: the demo measures it while the students train.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tinywave.audio.io import load_audio
from tinywave.eval.wer import normalize_text
from tinywave.files import atomic_write_json, read_jsonl

log = logging.getLogger(__name__)

LM_NOTE = "PocketSphinx en-us acoustic model with a trigram model of the target training stories (held-out sentences excluded)"


def domain_recognizer(texts: list[str], held_texts: set[str], lm_path: Path) -> Any:
    """PocketSphinx decoding with a trigram model of ``texts`` minus the normalized ``held_texts``."""
    from tinywave.eval.asr import PocketSphinxRecognizer, build_language_model  # lazy: eval.asr imports torch (~1.4 s)

    kept = [t for t in texts if normalize_text(t) not in held_texts]
    return PocketSphinxRecognizer(lm=build_language_model(kept, lm_path))


def transcribe_samples(index_path: Path, root: Path, recognizer: Any) -> dict[str, list[str]]:
    """Add the recognizer's ``asr`` transcript to every sample of ``index.json`` that has audio; {model: transcripts}."""
    index = json.loads(index_path.read_text(encoding="utf-8"))
    heard: dict[str, list[str]] = {}
    for model, entries in index["models"].items():
        for entry in entries:
            if entry.get("wav"):
                audio, _ = load_audio(root / entry["wav"])  # (T,) 16 kHz
                entry["asr"] = recognizer([audio])[0]
                heard.setdefault(model, []).append(entry["asr"])
    atomic_write_json(index_path, index)
    return heard


def heldout_spoken(corpus: Path, heldout_tokens: Path, limit: int) -> list[Any]:
    """The first ``limit`` held-out utterances of the target corpus with their texts."""
    from tinywave.eval.resynthesis import read_spoken  # lazy: eval.resynthesis imports torch (~1.4 s)

    held = {obj["id"] for _, obj, _ in read_jsonl(heldout_tokens) if obj}
    train = {obj["id"] for _, obj, _ in read_jsonl(corpus / "manifest.jsonl") if obj} - held
    return read_spoken(corpus / "manifest.jsonl", max_items=limit, exclude=train)


def measure_listening(out: Path, corpus: Path, heldout_tokens: Path, train_tokens: Path, tokenizer_dir: Path,
                      vocoder_dir: Path, *, items: int) -> dict[str, Any]:
    """Resynthesis WER of ``items`` held-out utterances through the HiFi-GAN of ``vocoder_dir`` and its Griffin-Lim
    baseline (``vocoder_dir/griffinlim``) -> ``out/listening.json``; the recognizer's language model -> ``out/asr_lm.arpa``."""
    # lazy: eval.resynthesis and vocoder.backends import torch (~1.4 s), speech.tokenizer scipy (~0.2 s); recipes.demo imports this module at its top
    from tinywave.eval.resynthesis import resynthesis_wer
    from tinywave.speech.tokenizer import SpeechTokenizer
    from tinywave.vocoder.backends import load_vocoder

    spoken = heldout_spoken(corpus, heldout_tokens, items)
    if not spoken:
        raise ValueError(f"no held-out utterance of {heldout_tokens} has text in {corpus / 'manifest.jsonl'}; rerun the demo in a new --out")
    texts = {obj["id"]: obj["text"] for _, obj, _ in read_jsonl(corpus / "manifest.jsonl") if obj and obj.get("text")}
    train_ids = [obj["id"] for _, obj, _ in read_jsonl(train_tokens) if obj]
    recognizer = domain_recognizer([texts[i] for i in train_ids if i in texts], {normalize_text(u.text) for u in spoken},
                                   out / "asr_lm.arpa")
    vocoders = {"hifigan": load_vocoder(vocoder_dir), "griffinlim": load_vocoder(vocoder_dir / "griffinlim")}
    report = resynthesis_wer(spoken, SpeechTokenizer.load(tokenizer_dir), vocoders, recognizer)
    original = report["original"]["wer"]
    report["ratios"] = {name: (round(v["wer"] / original, 3) if original > 0 else None) for name, v in report["vocoders"].items()}
    report["recognizer"] = LM_NOTE
    report["vocoder_dir"] = str(vocoder_dir)
    atomic_write_json(out / "listening.json", report)
    log.info("listening: %d held-out utterances, WER original %.3f, %s", len(spoken), original,
             ", ".join(f"{k} {v['wer']:.3f} ({report['ratios'][k]}x)" for k, v in report["vocoders"].items()))
    return {"utterances": len(spoken), "wer_original": original,
            "wer": {k: v["wer"] for k, v in report["vocoders"].items()}, "ratios": report["ratios"]}


def transcribe_demo_samples(out: Path) -> dict[str, Any]:
    """The recognizer of :func:`measure_listening` (its ``out/asr_lm.arpa``) on every generated sample of
    ``out/samples/index.json``; the transcripts also go into ``out/listening.json`` as ``samples``."""
    from tinywave.eval.asr import PocketSphinxRecognizer  # lazy: eval.asr imports torch (~1.4 s)

    lm = out / "asr_lm.arpa"
    if not lm.is_file():
        raise FileNotFoundError(f"{lm} is missing: the listening stage writes it; rerun the demo with the same --out")
    heard = transcribe_samples(out / "samples" / "index.json", out, PocketSphinxRecognizer(lm=lm))
    report = json.loads((out / "listening.json").read_text(encoding="utf-8"))
    report["samples"] = heard
    atomic_write_json(out / "listening.json", report)
    return {"transcripts": sum(len(v) for v in heard.values())}

"""Probe sets for speech foundation models: ``probes/<task>/<split>.jsonl``.

- ``ks``: keyword spotting, SUPERB-style 12 classes: ten story words, ``_unknown_``
  (any other word) and ``_silence_`` (faint background noise); single-word clips.
- ``sid``: speaker identification over every corpus voice (label = voice).
- ``pr``: phoneme recognition; ``phones`` are the espeak phonemes actually spoken.

Each line is a manifest item (audio relative to the task folder) plus ``label`` or
``phones``. Sentences come from the held-out stories and are split by sentence, so
no sentence of ``test`` is in ``train``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.audio.io import SAMPLE_RATE
from tinywave.corpus.espeak import Piece, Synthesizer
from tinywave.corpus.noise import FAMILIES, make_noise
from tinywave.corpus.split import heldout_pool
from tinywave.corpus.stories import vocabulary
from tinywave.corpus.synth import Job, Renderer
from tinywave.corpus.voices import VOICES, jittered
from tinywave.files import atomic_write_text

KEYWORDS = ("ball", "kite", "book", "cake", "bus", "train", "rain", "sun", "shop", "garden")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
KS_CLASSES = KEYWORDS + (UNKNOWN, SILENCE)
SPLITS = ("train", "dev", "test")
SENTENCE_SHARES = (0.7, 0.1, 0.2)
CHUNK = 16


def split_sizes(items: int) -> dict[str, int]:
    """Items per split for a benchmark size: test = items, train = 3x, dev = half."""
    return {"train": 3 * items, "dev": max(2, items // 2), "test": items}


def sentence_splits(seed: int) -> dict[str, list[str]]:
    """Held-out sentences partitioned into train/dev/test, in a seeded order."""
    sentences = sorted({s for story in heldout_pool(seed) for s in story.sentences})
    random.Random(f"tinywave-probe-split/{seed}").shuffle(sentences)
    a = int(SENTENCE_SHARES[0] * len(sentences))
    b = a + int(SENTENCE_SHARES[1] * len(sentences))
    return {"train": sentences[:a], "dev": sentences[a:b], "test": sentences[b:]}


def _job(task: str, split: str, idx: int, kind: str, params: dict[str, Any], extra: dict[str, Any]) -> Job:
    name = f"{split}_{idx:05d}"
    return Job(f"{task}/{name}", kind, {**params, "probe": extra}, (f"probes/{task}/wavs/{name}.wav",))


def plan_ks(seed: int, items: int) -> list[Job]:
    unknown = sorted(w for w in vocabulary() if w not in KEYWORDS and len(w) >= 3)
    jobs = []
    for split, n in split_sizes(items).items():
        for idx in range(n):
            rng = random.Random(f"tinywave-ks/{seed}/{split}/{idx}")
            label = KS_CLASSES[idx % len(KS_CLASSES)]
            if label == SILENCE:
                params = {"family": rng.choice(sorted(FAMILIES)), "seed": rng.randrange(2**31), "level_db": rng.uniform(-50, -35)}
                jobs.append(_job("ks", split, idx, "silence", params, {"label": label}))
                continue
            word = rng.choice(unknown) if label == UNKNOWN else label
            delivery = dataclasses.asdict(jittered(rng.choice(sorted(VOICES)), rng))
            jobs.append(_job("ks", split, idx, "utterance", {"text": word, "delivery": delivery}, {"label": label}))
    return jobs


def plan_sentences(task: str, seed: int, items: int) -> list[Job]:
    """``sid`` (voices in turn, label = voice) or ``pr`` (random voice, label = phones)."""
    voices = sorted(VOICES)
    sentences = sentence_splits(seed)
    jobs = []
    for split, n in split_sizes(items).items():
        for idx in range(n):
            rng = random.Random(f"tinywave-{task}/{seed}/{split}/{idx}")
            voice = voices[idx % len(voices)] if task == "sid" else rng.choice(voices)
            text = rng.choice(sentences[split])
            delivery = dataclasses.asdict(jittered(voice, rng))
            extra = {"label": voice} if task == "sid" else {}
            jobs.append(_job(task, split, idx, "utterance", {"text": text, "delivery": delivery}, extra))
    return jobs


def plan_probes(seed: int, items: int) -> list[Job]:
    return plan_ks(seed, items) + plan_sentences("sid", seed, items) + plan_sentences("pr", seed, items)


def _silence(synth: Synthesizer, params: dict[str, Any], pieces: list[list[Piece]]) -> tuple[list[np.ndarray], dict[str, Any]]:
    wav = make_noise(params["family"], params["seed"], SAMPLE_RATE) * 10 ** (params["level_db"] / 20)
    return [wav.astype(np.float32)], {"words": [], "phones": [], "seconds": 1.0}


RENDERERS = {"silence": Renderer(lambda p: [], _silence)}


def probe_line(job: Job, meta: dict[str, Any]) -> dict[str, Any]:
    """The manifest item of one probe clip (audio relative to its task folder)."""
    task = job.id.split("/")[0]
    p = job.params
    line: dict[str, Any] = {"id": job.id.replace("/", "_"), "audio": job.outputs[0].split(f"probes/{task}/", 1)[1]}
    if "text" in p:
        d = p["delivery"]
        line.update({"text": p["text"], "words": meta["words"], "speaker": d["voice"], "voice": d["voice"],
                     "pitch": d["pitch"], "rate": d["rate"], "gender": VOICES[d["voice"]].gender})
    line["seconds"] = meta["output_seconds"][0]
    if task == "pr":
        line["phones"] = meta["phones"]
    else:
        line["label"] = p["probe"]["label"]
    return line


def write_probes(root: Path, jobs: list[Job], metas: dict[str, dict[str, Any]]) -> dict[str, int]:
    """``probes/<task>/<split>.jsonl`` for every rendered clip; returns line counts."""
    files: dict[tuple[str, str], list[str]] = {}
    for job in jobs:
        task, name = job.id.split("/")
        files.setdefault((task, name.split("_")[0]), [])
        if job.id in metas:
            files[(task, name.split("_")[0])].append(json.dumps(probe_line(job, metas[job.id]), ensure_ascii=False))
    for (task, split), lines in files.items():
        atomic_write_text(root / "probes" / task / f"{split}.jsonl", "".join(line + "\n" for line in lines))
    return {f"{t}/{s}": len(v) for (t, s), v in files.items()}

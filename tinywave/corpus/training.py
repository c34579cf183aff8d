"""The training corpus: whole stories, one voice each, with word timings.

``DIR/manifest.jsonl`` holds one item per story (the unit the LM is trained on):

    {"id": "s00012", "audio": "wavs/s00012.wav", "text": "...", "words": [...],
     "speaker": "en-us+f2", "voice": "en-us+f2", "pitch": 55, "rate": 170, "gender": "female",
     "story_id": "train000013", "story_type": "lost", "sentences": [five texts],
     "sentence_starts": [...], "ending_start": 14.2, "seconds": 17.9}
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from tinywave.corpus.split import training_stories
from tinywave.corpus.stories import Story
from tinywave.corpus.synth import Job
from tinywave.corpus.voices import Delivery, jittered
from tinywave.data.manifest import ManifestItem, Word, write_manifest

DEFAULT_STORIES = 500  # ~14 s each: about 2 hours of audio
SMALL_STORIES = 6
CHUNK = 8  # stories spoken per espeak child (fixed: part of what makes the audio reproducible)
JOURNAL = "corpus"


@dataclasses.dataclass(frozen=True)
class Planned:
    job: Job
    story: Story
    delivery: Delivery


def plan_corpus(seed: int, n_stories: int, voices: list[str]) -> list[Planned]:
    """Story i is spoken by voice i mod len(voices), with seeded pitch and rate."""
    out = []
    for i, story in enumerate(training_stories(seed, n_stories)):
        delivery = jittered(voices[i % len(voices)], random.Random(f"tinywave-delivery/{seed}/{story.key}"))
        uid = f"s{i:05d}"
        params = {"sentences": list(story.sentences), "delivery": dataclasses.asdict(delivery)}
        out.append(Planned(Job(uid, "story", params, (f"wavs/{uid}.wav",)), story, delivery))
    return out


def manifest_item(root: Path, planned: Planned, meta: dict[str, Any]) -> ManifestItem:
    story, d = planned.story, planned.delivery
    words = [Word(w["word"], w["start"], w["end"]) for w in meta["words"]]
    extra = {"voice": d.voice, "pitch": d.pitch, "rate": d.rate, "gender": d.gender, "story_id": story.key,
             "story_type": story.type, "sentences": list(story.sentences), "sentence_starts": meta["sentence_starts"],
             "ending_start": meta["sentence_starts"][-1], "seconds": meta["seconds"]}
    return ManifestItem(planned.job.id, root / planned.job.outputs[0], story.text, words, d.voice, extra)


def write_corpus_manifest(root: Path, plan: list[Planned], metas: dict[str, dict[str, Any]]) -> list[ManifestItem]:
    """``root/manifest.jsonl`` in plan order, for every story that was rendered."""
    items = [manifest_item(root, p, metas[p.job.id]) for p in plan if p.job.id in metas]
    write_manifest(root / "manifest.jsonl", items)
    return items

"""The training corpus: whole stories, one voice each, with word timings.

``DIR/manifest.jsonl`` holds one item per story (the unit the LM is trained on):

    {"id": "s00012", "audio": "wavs/s00012.wav", "text": "...", "words": [...],
     "speaker": "en-us+f2", "voice": "en-us+f2", "pitch": 55, "rate": 170, "rate_factor": 1.0,
     "first": 0, "gender": "female", "story_id": "train000013", "story_type": "lost",
     "sentences": [five texts], "sentence_starts": [...], "ending_start": 14.2, "seconds": 17.9}

``rate`` is the delivery's espeak words per minute, ``rate_factor`` the corpus's
speaking-rate factor (``corpus synth --rate``) and ``first`` the number of training
stories of the seed the corpus skipped (``corpus synth --first``). Ids are
``s{i:05d}`` with ``i`` the story's absolute index among the seed's training stories,
so corpora of one seed with disjoint ``first .. first+stories-1`` ranges never share an id.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from tinywave.corpus.split import training_stories
from tinywave.corpus.stories import Story
from tinywave.corpus.synth import Job
from tinywave.corpus.voices import Delivery, base_wpm, jittered
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
    rate_factor: float = 1.0  # the corpus's speaking-rate factor (`corpus synth --rate`)
    first: int = 0  # training stories of the seed the corpus skipped (`corpus synth --first`)


def check_first(first: int) -> int:
    """Validate ``corpus synth --first``: a number of stories to skip, >= 0."""
    if first < 0:
        raise ValueError(f"--first {first}: the number of training stories to skip must be >= 0 "
                         "(0 starts at the seed's first story)")
    return first


def plan_corpus(seed: int, n_stories: int, voices: list[str], rate: float = 1.0, first: int = 0) -> list[Planned]:
    """Training stories ``first .. first+n_stories-1`` of ``seed``, story i spoken by voice i mod len(voices).

    Pitch and rate are drawn from a per-story seeded rng; ``rate`` scales the base rate
    only (``voices.base_wpm``), so rate=1.0 and first=0 give the plan of every earlier corpus.
    """
    check_first(first)
    wpm = base_wpm(rate)
    out = []
    for i, story in enumerate(training_stories(seed, first + n_stories)[first:], start=first):
        delivery = jittered(voices[i % len(voices)], random.Random(f"tinywave-delivery/{seed}/{story.key}"), base_rate=wpm)
        uid = f"s{i:05d}"
        params = {"sentences": list(story.sentences), "delivery": dataclasses.asdict(delivery)}
        out.append(Planned(Job(uid, "story", params, (f"wavs/{uid}.wav",)), story, delivery, float(rate), first))
    return out


def manifest_item(root: Path, planned: Planned, meta: dict[str, Any]) -> ManifestItem:
    story, d = planned.story, planned.delivery
    words = [Word(w["word"], w["start"], w["end"]) for w in meta["words"]]
    extra = {"voice": d.voice, "pitch": d.pitch, "rate": d.rate, "rate_factor": planned.rate_factor, "first": planned.first,
             "gender": d.gender, "story_id": story.key, "story_type": story.type, "sentences": list(story.sentences),
             "sentence_starts": meta["sentence_starts"], "ending_start": meta["sentence_starts"][-1],
             "seconds": meta["seconds"]}
    return ManifestItem(planned.job.id, root / planned.job.outputs[0], story.text, words, d.voice, extra)


def write_corpus_manifest(root: Path, plan: list[Planned], metas: dict[str, dict[str, Any]]) -> list[ManifestItem]:
    """``root/manifest.jsonl`` in plan order, for every story that was rendered."""
    items = [manifest_item(root, p, metas[p.job.id]) for p in plan if p.job.id in metas]
    write_manifest(root / "manifest.jsonl", items)
    return items

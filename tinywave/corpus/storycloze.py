"""Spoken StoryCloze (sSC) and topic StoryCloze (tSC) folders from held-out stories.

    sSC/<name>_correct.wav    four prompt sentences + the coherent ending
    sSC/<name>_incorrect.wav  the same prompt audio + the wrong ending (outcome or entity)
    tSC/<name>_correct.wav    identical to the sSC one
    tSC/<name>_incorrect.wav  the same prompt audio + the ending of a story of another type
    sSC/items.jsonl, tSC/items.jsonl  (ours) texts, kinds, ending start times, voice, pitch,
                                      rate (words per minute) and rate_factor (`--rate`)

All three endings of an item are spoken in one request after the prompt, and every
wav reuses the same prompt samples, so a pair differs only in its ending.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.corpus.espeak import Piece, Segment, Synthesizer
from tinywave.corpus.split import heldout_pool
from tinywave.corpus.stories import Story
from tinywave.corpus.synth import Job, Renderer, request
from tinywave.corpus.voices import base_wpm, jittered
from tinywave.files import atomic_write_text

JOURNAL = "storycloze"
CHUNK = 4


def other_story(pool: tuple[Story, ...], story: Story, rng: random.Random) -> Story:
    """A pool story of another type (its ending is the tSC negative)."""
    return rng.choice([s for s in pool if s.type != story.type])


def plan_storycloze(seed: int, items: int, voices: list[str], rate: float = 1.0) -> list[Job]:
    """One job per held-out story; ``rate`` scales the base speaking rate only (``voices.base_wpm``)."""
    pool = heldout_pool(seed)
    if items > len(pool):
        raise ValueError(f"--items {items} exceeds the {len(pool)} held-out stories; ask for at most {len(pool)}")
    wpm = base_wpm(rate)
    jobs = []
    for k, story in enumerate(pool[:items]):
        rng = random.Random(f"tinywave-sc/{seed}/{story.key}")
        other = other_story(pool, story, rng)
        delivery = jittered(voices[k % len(voices)], rng, base_rate=wpm)
        name = story.key
        params = {"prompt": list(story.prompt), "endings": [story.ending, story.wrong_ending, other.ending],
                  "kind": story.wrong_kind, "story_type": story.type, "other_type": other.type,
                  "delivery": dataclasses.asdict(delivery)}
        outputs = (f"sSC/{name}_correct.wav", f"sSC/{name}_incorrect.wav", f"tSC/{name}_correct.wav", f"tSC/{name}_incorrect.wav")
        jobs.append(Job(name, "storycloze", params, outputs))
    return jobs


def _requests(params: dict[str, Any]) -> list:
    return [request(params["delivery"], [Segment(s) for s in params["prompt"] + params["endings"]])]


def _render(synth: Synthesizer, params: dict[str, Any], pieces: list[list[Piece]]) -> tuple[list[np.ndarray], dict[str, Any]]:
    p = pieces[0]
    prompt, (good, wrong, other) = p[:4], p[4:]
    rate = int(params["delivery"]["rate"])
    correct, starts = synth.join(prompt + [good], rate)
    incorrect, starts_wrong = synth.join(prompt + [wrong], rate)
    topic, starts_topic = synth.join(prompt + [other], rate)
    assert starts[-1] == starts_wrong[-1] == starts_topic[-1]  # identical prompt audio
    meta = {"ending_start": starts[-1], "seconds": [correct.seconds, incorrect.seconds, topic.seconds]}
    return [correct.wav, incorrect.wav, correct.wav, topic.wav], meta


RENDERERS = {"storycloze": Renderer(_requests, _render)}


def write_items(root: Path, jobs: list[Job], metas: dict[str, dict[str, Any]], rate: float = 1.0) -> None:
    """``sSC/items.jsonl`` and ``tSC/items.jsonl``: one line per pair, in plan order (``rate``: the plan's factor)."""
    lines: dict[str, list[str]] = {"sSC": [], "tSC": []}
    for job in jobs:
        if job.id not in metas:
            continue
        p, start = job.params, metas[job.id]["ending_start"]
        common = {"name": job.id, "prompt_text": " ".join(p["prompt"]), "prompt_sentences": p["prompt"],
                  "correct_text": p["endings"][0], "correct_ending_start": start, "incorrect_ending_start": start,
                  "story_type": p["story_type"], **{k: p["delivery"][k] for k in ("voice", "pitch", "rate")},
                  "rate_factor": rate}
        ssc = {**common, "kind": p["kind"], "incorrect_text": p["endings"][1]}
        tsc = {**common, "kind": "topic", "incorrect_text": p["endings"][2], "incorrect_story_type": p["other_type"]}
        lines["sSC"].append(json.dumps(ssc, ensure_ascii=False))
        lines["tSC"].append(json.dumps(tsc, ensure_ascii=False))
    for folder, rows in lines.items():
        atomic_write_text(root / folder / "items.jsonl", "".join(r + "\n" for r in rows))

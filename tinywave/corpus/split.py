"""Which stories are held out for the benchmarks and which may be spoken in training.

Both ``corpus synth`` and ``corpus benchmarks`` derive the split from the seed alone,
so neither reads the other's output and they can run in any order:

1. the *held-out pool* is the first ``POOL_SIZE`` distinct stories of the ``bench``
   stream; every benchmark (sSC, tSC, SALMon, sBLIMP, probes) takes its stories and
   sentences from it;
2. the training corpus takes stories of the ``train`` stream in order, rejecting any
   story that shares a sentence with the pool (prompt, ending or wrong ending) and
   any repeated story.

sWUGGY is kept apart by voices instead: its items are spoken only by held-out voices
(``voices.HELD_OUT``), which ``corpus synth`` refuses, so no word-voice pair of the
lexical benchmark can occur in training.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from tinywave.corpus.stories import Story, story_at

POOL_SIZE = 800  # held-out stories; bounds `corpus benchmarks --items` (400 for the demo, the rest for fresh pairs)
MAX_SCAN = 50  # give up after scanning this many candidates per requested story


@lru_cache(maxsize=8)
def heldout_pool(seed: int) -> tuple[Story, ...]:
    """The benchmark stories of ``seed``: distinct, in a fixed order."""
    stories, seen, i = [], set(), 0
    while len(stories) < POOL_SIZE:
        story = story_at(seed, "bench", i)
        i += 1
        if story.text not in seen:
            seen.add(story.text)
            stories.append(story)
    return tuple(stories)


@lru_cache(maxsize=8)
def heldout_sentences(seed: int) -> frozenset[str]:
    """Every sentence a benchmark of ``seed`` may speak: prompts, endings, wrong endings."""
    return frozenset(s for story in heldout_pool(seed) for s in (*story.sentences, story.wrong_ending))


def training_stories(seed: int, n: int) -> list[Story]:
    """The first ``n`` training stories of ``seed``: none shares a sentence with the held-out pool."""
    banned = heldout_sentences(seed)
    stories, seen, i = [], set(), 0
    while len(stories) < n:
        if i > MAX_SCAN * max(n, 100):
            raise ValueError(f"found only {len(stories)} training stories disjoint from the benchmarks after {i} tries; ask for fewer")
        story = story_at(seed, "train", i)
        i += 1
        if story.text in seen or any(s in banned for s in story.sentences):
            continue
        seen.add(story.text)
        stories.append(story)
    return stories


def word_counts(stories: list[Story]) -> Counter[str]:
    """How often each word is spoken in ``stories`` (the sWUGGY frequency column)."""
    return Counter(w for story in stories for w in story.text.split())

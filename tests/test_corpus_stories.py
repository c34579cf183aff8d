"""The story generator and the held-out split (text only, no audio)."""

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinywave.corpus.split import POOL_SIZE, heldout_pool, heldout_sentences, training_stories, word_counts
from tinywave.corpus.stories import HEROES, PRONOUNS, STORY_TYPES, count_stories, make_story, story_at, vocabulary
from tinywave.corpus.storycloze import other_story

OTHER_GENDER = {"female": set(PRONOUNS["male"]), "male": set(PRONOUNS["female"])}


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 10**6), stream=st.sampled_from(["train", "bench"]))
def test_story_shape_and_pronouns(seed, index, stream):
    story = story_at(seed, stream, index)
    assert len(story.prompt) == 4 and len(story.sentences) == 5
    for sentence in (*story.sentences, story.wrong_ending):
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", sentence), sentence  # lower-case, no punctuation
        words = set(sentence.split())
        assert not words & OTHER_GENDER[story.hero.gender], f"pronoun of the other gender in {sentence!r} ({story.hero})"
    assert story.hero.name in story.text
    assert story.wrong_ending != story.ending
    assert story_at(seed, stream, index) == story  # a pure function of its arguments


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_wrong_endings_contradict_outcome_or_swap_entity(data):
    kind = STORY_TYPES[data.draw(st.sampled_from(sorted(STORY_TYPES)))]
    values = {slot: data.draw(st.sampled_from(domain)) for slot, domain in kind.slots.items()}
    story = make_story(kind, values, "x", "outcome")
    flipped = make_story(kind, {**values, "ok": not values["ok"]}, "x", "outcome")
    assert story.wrong_ending == flipped.ending  # the ending of the opposite outcome
    assert story.prompt[3] != flipped.prompt[3] and story.prompt[:2] == flipped.prompt[:2]  # outcome stated last (weather: 3-4)
    swap = data.draw(st.sampled_from([v for v in kind.slots[kind.entity] if v != values[kind.entity]]))
    entity = make_story(kind, values, "x", "entity", swap)
    assert entity.wrong_ending != entity.ending and entity.wrong_ending == make_story(kind, {**values, kind.entity: swap}, "x", "outcome").ending
    with pytest.raises(ValueError, match="another"):
        make_story(kind, values, "x", "entity", values[kind.entity])


@pytest.mark.parametrize("name", sorted(STORY_TYPES))
def test_every_slot_shows_in_the_text(name):
    """Changing any one slot changes the story: the combinatorial count is not inflated."""
    kind, rng = STORY_TYPES[name], random.Random(name)
    for _ in range(5):
        base = {slot: rng.choice(domain) for slot, domain in kind.slots.items()}
        text = make_story(kind, base, "x", "outcome").text
        for slot, domain in kind.slots.items():
            for value in domain:
                if value != base[slot]:
                    assert make_story(kind, {**base, slot: value}, "x", "outcome").text != text, (slot, value)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_distinct_slot_values_give_distinct_stories(data):
    kind = STORY_TYPES[data.draw(st.sampled_from(sorted(STORY_TYPES)))]
    a = {slot: data.draw(st.sampled_from(domain)) for slot, domain in kind.slots.items()}
    b = {slot: data.draw(st.sampled_from(domain)) for slot, domain in kind.slots.items()}
    if a != b:
        assert make_story(kind, a, "x", "outcome").text != make_story(kind, b, "x", "outcome").text


def test_at_least_50k_stories_and_a_small_vocabulary():
    assert count_stories() >= 50_000
    assert all(t.count() >= 10_000 for t in STORY_TYPES.values())
    vocab = vocabulary()
    assert 150 <= len(vocab) <= 400
    sample = [story_at(1, "train", i) for i in range(3000)]
    assert len({s.text for s in sample}) >= 2950  # nearly all distinct in practice too
    assert {w for s in sample for w in (*s.text.split(), *s.wrong_ending.split())} <= vocab
    assert {s.type for s in sample} == set(STORY_TYPES)
    assert {s.hero.gender for s in sample} == {"female", "male"}


def test_wrong_kinds_are_mostly_outcome():
    kinds = [s.wrong_kind for s in heldout_pool(0)]
    share = kinds.count("entity") / len(kinds)
    assert 0.15 < share < 0.35


def test_topic_negative_is_another_storys_ending():
    pool = heldout_pool(0)
    rng = random.Random(0)
    for story in pool[:50]:
        other = other_story(pool, story, rng)
        assert other.type != story.type and other.ending != story.ending
        assert other.hero != story.hero or other.text != story.text


def test_training_stories_never_share_a_sentence_with_the_heldout_pool():
    pool = heldout_pool(3)
    assert len(pool) == POOL_SIZE and len({s.text for s in pool}) == POOL_SIZE
    banned = heldout_sentences(3)
    train = training_stories(3, 400)
    assert len(train) == 400 and len({s.text for s in train}) == 400
    assert not {s for story in train for s in story.sentences} & banned
    assert not {s.key for s in train} & {s.key for s in pool}
    assert training_stories(3, 50) == train[:50]  # prefix-stable: a bigger corpus extends a smaller one
    counts = word_counts(train)
    assert counts["the"] > 100 and sum(counts.values()) == sum(len(s.text.split()) for s in train)
    # every story type with both outcomes survives the filtering
    assert {(s.type, s.ok) for s in train} == {(t, ok) for t in STORY_TYPES for ok in (True, False)}


def test_heroes_cover_both_genders():
    assert {h.gender for h in HEROES} == {"female", "male"}
    assert len({h.name for h in HEROES}) == len(HEROES)

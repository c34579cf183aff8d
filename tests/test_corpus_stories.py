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


# ---------------------------------------------------------------- plans: speaking rate and first story

VOICES2 = ["en-us+m3", "en-us+f2"]


def test_rate_one_and_first_zero_reproduce_todays_plans():
    from tinywave.corpus import slm21
    from tinywave.corpus.storycloze import plan_storycloze
    from tinywave.corpus.synth import job_key
    from tinywave.corpus.training import plan_corpus

    corpus = plan_corpus(0, 40, VOICES2)
    assert plan_corpus(0, 40, VOICES2, rate=1.0, first=0) == corpus
    # deliveries and job keys of the plans made before `--rate`/`--first` existed: an old corpus resumes as it is
    assert [(p.job.id, p.delivery.pitch, p.delivery.rate) for p in corpus[:3]] == [
        ("s00000", 47, 180), ("s00001", 48, 175), ("s00002", 54, 168)]
    assert job_key(corpus[0].job) == "880f5e4ba9fcb5f9"
    sc = plan_storycloze(0, 40, VOICES2)
    assert plan_storycloze(0, 40, VOICES2, rate=1.0) == sc
    assert [j.params["delivery"]["rate"] for j in sc[:3]] == [175, 159, 161] and job_key(sc[0]) == "cb913c6a858e8f01"
    pairs = slm21.syntactic_pairs(0, 10)
    assert slm21.plan_syntactic(pairs, 0, VOICES2, rate=1.0) == slm21.plan_syntactic(pairs, 0, VOICES2)


def test_rate_scales_the_base_rate_and_keeps_stories_and_jitter():
    from tinywave.corpus import slm21
    from tinywave.corpus.storycloze import plan_storycloze
    from tinywave.corpus.training import plan_corpus
    from tinywave.corpus.voices import BASE_RATE

    slow, fast = plan_corpus(0, 40, VOICES2), plan_corpus(0, 40, VOICES2, rate=1.3)
    assert [p.story for p in fast] == [p.story for p in slow] and [p.job.id for p in fast] == [p.job.id for p in slow]
    assert [p.job.params["sentences"] for p in fast] == [p.job.params["sentences"] for p in slow]
    for a, b in zip(slow, fast):
        assert (b.delivery.voice, b.delivery.pitch) == (a.delivery.voice, a.delivery.pitch)  # same rng draws
        assert b.delivery.rate - round(BASE_RATE * 1.3) == a.delivery.rate - BASE_RATE  # same jitter (+-12)
        assert abs(b.delivery.rate / (1.3 * BASE_RATE) - 1) <= 12 / 221 + 1e-9
        assert b.rate_factor == 1.3 and a.rate_factor == 1.0
    mean = sum(p.delivery.rate for p in fast) / sum(p.delivery.rate for p in slow)
    assert 1.25 < mean < 1.35
    sc_slow, sc_fast = plan_storycloze(0, 40, VOICES2), plan_storycloze(0, 40, VOICES2, rate=1.3)
    assert [j.id for j in sc_fast] == [j.id for j in sc_slow]
    for a, b in zip(sc_slow, sc_fast):
        assert {k: v for k, v in a.params.items() if k != "delivery"} == {k: v for k, v in b.params.items() if k != "delivery"}
        assert b.params["delivery"]["rate"] - 221 == a.params["delivery"]["rate"] - BASE_RATE
    pairs = slm21.syntactic_pairs(0, 10)
    blimp_slow, _ = slm21.plan_syntactic(pairs, 0, VOICES2)
    blimp_fast, _ = slm21.plan_syntactic(pairs, 0, VOICES2, rate=1.3)
    assert [b.params["delivery"]["rate"] - 221 for b in blimp_fast] == [a.params["delivery"]["rate"] - BASE_RATE for a in blimp_slow]


def test_first_skips_stories_and_keeps_absolute_ids():
    from tinywave.corpus.training import plan_corpus

    head = plan_corpus(3, 30, VOICES2)
    tail = plan_corpus(3, 10, VOICES2, first=30)
    assert [p.job.id for p in tail] == [f"s{i:05d}" for i in range(30, 40)]
    assert [p.job.outputs for p in tail] == [(f"wavs/s{i:05d}.wav",) for i in range(30, 40)]
    assert not {p.story.key for p in head} & {p.story.key for p in tail}
    assert not {p.story.text for p in head} & {p.story.text for p in tail}
    assert [p.story for p in tail] == training_stories(3, 40)[30:]
    # a story is spoken the same whether its corpus starts at it or before it (jobs, hence wavs, are equal)
    assert [(p.job, p.delivery) for p in plan_corpus(3, 40, VOICES2)[30:]] == [(p.job, p.delivery) for p in tail]
    assert all(p.first == 30 for p in tail)
    assert plan_corpus(0, 1, VOICES2, first=5000)[0].job.id == "s05000"


@pytest.mark.parametrize("rate", [0.49, 2.51, 0.0, -1.0, float("nan")])
def test_rate_outside_its_range_is_refused(rate):
    from tinywave.corpus.storycloze import plan_storycloze
    from tinywave.corpus.training import plan_corpus

    with pytest.raises(ValueError, match=r"--rate .*0\.5\.\.2\.5"):
        plan_corpus(0, 2, VOICES2, rate=rate)
    with pytest.raises(ValueError, match=r"--rate .*0\.5\.\.2\.5"):
        plan_storycloze(0, 2, VOICES2, rate=rate)


def test_rate_bounds_and_negative_first():
    from tinywave.corpus.training import plan_corpus
    from tinywave.corpus.voices import MAX_RATE, MIN_RATE

    for rate in (0.5, 2.5):  # the bounds are valid; espeak's clamp still holds
        assert all(MIN_RATE <= p.delivery.rate <= MAX_RATE for p in plan_corpus(0, 10, VOICES2, rate=rate))
    with pytest.raises(ValueError, match=r"--first -1: .* >= 0"):
        plan_corpus(0, 2, VOICES2, first=-1)

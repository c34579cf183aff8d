"""Scoring: sequences, batched == one-at-a-time == a plain forward pass, ties, mean/sum."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from support.eval import eval_tokenizer, reference_ll
from support.models import tiny_llama
from tinywave.eval.scoring import (ScoreRequest, SequenceBuilder, Tree, log_likelihoods, pair_outcomes, plan_batches, plan_trees,
                                   tree_rows)
from tinywave.text.vocab import encode_text


@pytest.fixture(scope="module")
def lm():
    tok, layout = eval_tokenizer()
    return tok, layout, tiny_llama(tokenizer=tok, heads=2, seed=1)


def _random_requests(layout, n: int, seed: int) -> list[ScoreRequest]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(3, 40)
        ids = tuple(rng.randrange(layout.size) for _ in range(length))
        out.append(ScoreRequest(ids, rng.randint(1, length - 1)))
    return out


@given(st.lists(st.integers(1, 50), min_size=1, max_size=40), st.integers(0, 200))
@settings(max_examples=60, deadline=None)
def test_plan_batches_partitions_within_budget(lengths, budget):
    batches = plan_batches(lengths, budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert lengths[b[0]] == longest
        assert len(b) == 1 or (budget > 0 and len(b) * longest <= budget)


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_batched_equals_one_at_a_time_and_plain_forward(lm, reduce):
    tok, layout, model = lm
    reqs = _random_requests(layout, 24, seed=3)
    batched = log_likelihoods(model, reqs, reduce, batch_tokens=200, pad_id=tok.pad_token_id)
    single = log_likelihoods(model, reqs, reduce, batch_tokens=0, pad_id=tok.pad_token_id)
    plain = [reference_ll(model, list(r.ids), r.score_from, reduce) for r in reqs]
    assert batched == pytest.approx(single, abs=1e-4) and batched == pytest.approx(plain, abs=1e-4)
    assert pair_outcomes(batched[0::2], batched[1::2]) == pair_outcomes(plain[0::2], plain[1::2])


def test_sum_is_mean_times_scored_tokens(lm):
    tok, layout, model = lm
    reqs = _random_requests(layout, 6, seed=4)
    mean = log_likelihoods(model, reqs, "mean", pad_id=tok.pad_token_id)
    total = log_likelihoods(model, reqs, "sum", pad_id=tok.pad_token_id)
    for r, m, s in zip(reqs, mean, total):
        assert s == pytest.approx(m * r.n_scored, rel=1e-6)
    with pytest.raises(ValueError, match=r"score='max' is not known; choose one of \['mean', 'sum'\]"):
        log_likelihoods(model, reqs, "max")


def test_identical_sequences_tie_exactly_in_any_batch(lm):
    tok, layout, model = lm
    reqs = _random_requests(layout, 9, seed=5)
    twin = reqs[4]
    lls = log_likelihoods(model, reqs + [twin], "mean", batch_tokens=64, pad_id=tok.pad_token_id)
    assert lls[4] == lls[-1]
    assert pair_outcomes([lls[4], 1.0, 0.0], [lls[-1], 0.0, 1.0]) == [0.5, 1.0, 0.0]


def test_sequences_follow_the_spiritlm_layout(lm):
    tok, layout, _ = lm
    b = SequenceBuilder(tok)
    s = b.speech("[Hu3][Hu7]")
    assert s.ids == (tok.bos_token_id, layout.speech_id, layout.hu_offset + 3, layout.hu_offset + 7, tok.eos_token_id) and s.score_from == 1
    text = encode_text(tok, "the cat")
    t2s = b.text_then_speech("the cat", "[Hu1]")
    assert t2s.ids == (tok.bos_token_id, layout.text_id, *text, layout.speech_id, layout.hu_offset + 1, tok.eos_token_id)
    assert t2s.ids[t2s.score_from - 1] == layout.speech_id and t2s.n_scored == 2  # the ending and EOS; [Speech] is context
    s2t = b.speech_then_text("[Hu1][Hu2]", "the cat")
    assert s2t.ids[s2t.score_from - 1] == layout.text_id and s2t.n_scored == len(text) + 1
    assert SequenceBuilder(tok, append_eos=False).speech("[Hu3]").ids[-1] == layout.hu_offset + 3
    assert tok("[Speech][Hu3][Hu7]", add_special_tokens=False)["input_ids"] == list(s.ids[1:-1])


def test_cross_modal_scores_only_the_ending(lm):
    tok, layout, model = lm
    b = SequenceBuilder(tok)
    reqs = [b.text_then_speech("the cat sat on the mat", "[Hu1][Hu5][Hu2]"), b.text_then_speech("she went home", "[Hu1][Hu5][Hu2]"),
            b.speech_then_text("[Hu4][Hu9][Hu4]", "the cat"), b.speech_then_text("[Hu4][Hu9]", "the cat")]
    lls = log_likelihoods(model, reqs, "sum", batch_tokens=100, pad_id=tok.pad_token_id)
    for r, ll in zip(reqs, lls):
        assert ll == pytest.approx(reference_ll(model, list(r.ids), r.score_from, "sum"), abs=1e-4)
        assert ll != pytest.approx(reference_ll(model, list(r.ids), 1, "sum"), abs=1e-3)  # not the whole sequence
    # same ending after another prompt: same number of scored tokens, different context
    assert reqs[0].n_scored == reqs[1].n_scored and lls[0] != lls[1]


def test_cross_modal_leaves_the_modality_marker_out_of_the_mean(lm):
    """The marker opening the ending is predicted from the prompt alone: context, not a scored target."""
    tok, layout, model = lm
    b = SequenceBuilder(tok)
    for r, marker in ((b.text_then_speech("the cat sat", "[Hu1][Hu5][Hu2]"), layout.speech_id),
                      (b.speech_then_text("[Hu4][Hu9][Hu4]", "the cat"), layout.text_id)):
        ending_start = r.ids.index(marker, 2) + 1  # first token after the marker
        ll = log_likelihoods(model, [r], "mean", pad_id=tok.pad_token_id)[0]
        assert ll == pytest.approx(reference_ll(model, list(r.ids), ending_start, "mean"), abs=1e-5)
        assert ll != pytest.approx(reference_ll(model, list(r.ids), ending_start - 1, "mean"), abs=1e-4)  # the marker diluted it


def test_too_long_or_empty_sequences_are_errors(lm):
    tok, layout, model = lm
    with pytest.raises(ValueError, match="exceeds the model's context of 256"):
        log_likelihoods(model, [ScoreRequest(tuple([5] * 300))], pad_id=0)
    with pytest.raises(ValueError, match="has nothing to score"):
        log_likelihoods(model, [ScoreRequest((5, 6), 2)], pad_id=0)


def _pairs_with_prefixes(layout, n: int, seed: int) -> list[ScoreRequest]:
    """Pairs that share a prefix (as the files of a benchmark pair do), scored from inside or after it,
    plus a sequence that is the prefix of another and one sharing nothing."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prefix = [rng.randrange(layout.size) for _ in range(rng.randint(1, 40))]
        for _ in range(2):
            ids = tuple(prefix + [rng.randrange(layout.size) for _ in range(rng.randint(1, 20))])
            out.append(ScoreRequest(ids, rng.randint(1, len(ids) - 1)))
    long = out[0].ids + (7, 8, 9)
    out += [ScoreRequest(long, 2), ScoreRequest((3, 4), 1)]
    return out


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6)), min_size=1, max_size=30), st.integers(0, 8))
@settings(max_examples=80, deadline=None)
def test_plan_trees_groups_each_sequence_once_under_its_prefix(spec, min_saved):
    # short sequences over a tiny alphabet share prefixes often
    reqs = [ScoreRequest(tuple([a] * n + [n]), 1) for a, n in spec]
    trees = plan_trees(reqs, min_saved=min_saved, max_members=3)
    members = [r for t in trees for r in t.members]
    assert sorted(members, key=lambda r: r.ids) == sorted(set(reqs), key=lambda r: r.ids)  # each distinct one, once
    for t in trees:
        assert 1 <= len(t.members) <= 3
        assert all(r.ids[: t.shared] == t.members[0].ids[: t.shared] and t.shared <= len(r.ids) for r in t.members)
        assert t.length == t.shared + sum(len(r.ids) - t.shared for r in t.members)
        assert len(t.members) == 1 or sum(len(r.ids) for r in t.members) - t.length >= min_saved  # joins pay off


@pytest.mark.parametrize("reduce", ["mean", "sum"])
@pytest.mark.parametrize("budget", [0, 90, 4096])
def test_shared_prefix_scoring_equals_plain_rows(lm, reduce, budget):
    tok, layout, model = lm
    reqs = _pairs_with_prefixes(layout, 12, seed=7)
    trees = plan_trees(reqs)
    assert sum(len(t.members) > 1 for t in trees) >= 10  # the prefixes are really shared
    shared = log_likelihoods(model, reqs, reduce, batch_tokens=budget, pad_id=tok.pad_token_id)
    plain = log_likelihoods(model, reqs, reduce, batch_tokens=budget, pad_id=tok.pad_token_id, share_prefix=False)
    reference = [reference_ll(model, list(r.ids), r.score_from, reduce) for r in reqs]
    assert shared == pytest.approx(plain, abs=1e-4) and shared == pytest.approx(reference, abs=1e-4)


def test_tree_rows_mask_keeps_each_rest_to_the_prefix_and_itself():
    a, b = ScoreRequest((1, 2, 3, 4), 1), ScoreRequest((1, 2, 5), 2)
    rows = tree_rows([Tree((a, b), 2), Tree((ScoreRequest((9, 8), 1),), 2)], pad_id=0, dtype=torch.float32)
    assert rows["ids"].tolist() == [[1, 2, 3, 4, 5], [9, 8, 0, 0, 0]]
    assert rows["positions"].tolist()[0] == [0, 1, 2, 3, 2]  # b's rest continues from the prefix
    allowed = (rows["mask"][:, 0] == 0).int().tolist()
    assert allowed[0] == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 1]]
    assert allowed[1] == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]  # pads: only themselves
    # a's targets 2, 3, 4 from positions 0, 1, 2; b's target 5 from position 1 (its last shared token)
    picks = list(zip(rows["pick_row"].tolist(), rows["pick_pos"].tolist(), rows["pick_target"].tolist(), rows["pick_member"].tolist()))
    assert picks == [(0, 0, 2, 0), (0, 1, 3, 0), (0, 2, 4, 0), (0, 1, 5, 1), (1, 0, 8, 2)]

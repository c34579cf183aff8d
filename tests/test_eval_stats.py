"""Comparison statistics (tinywave/eval/stats.py), per-item score files (tinywave/eval/scores.py)
and per-utterance perplexity (tinywave/eval/perplexity.py)."""

import json
import math

import numpy as np
import pytest

from support.eval import EnergyTokenizer, eval_tokenizer, reference_ll, save_model_dir
from support.models import tiny_llama
from tinywave.eval import stats
from tinywave.eval.perplexity import normalized_perplexity
from tinywave.eval.scores import load_outcomes, load_ppl_rows
from tinywave.eval.scoring import SequenceBuilder
from tinywave.eval.stats import (
    binomial_two_sided_p, bootstrap_mean_ci, corpus_ppl, mcnemar_exact_p, paired_bootstrap_p, paired_ppl_p, ppl_ci, summarize,
)


def _outcomes(rng: np.random.Generator, shape: tuple[int, ...], rate: float = 0.7) -> np.ndarray:
    """1 / 0.5 / 0 outcomes, about ``rate`` correct and a few ties."""
    u = rng.random(shape)
    return np.where(u < rate, 1.0, np.where(u < rate + 0.05, 0.5, 0.0))


def _exact_rate(n: int, rate: float, seed: int) -> np.ndarray:
    """[n] outcomes with exactly round(rate * n) ones, shuffled."""
    x = np.zeros(n)
    x[: round(rate * n)] = 1.0
    return np.random.default_rng(seed).permutation(x)


def _ppl_rows(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Token counts [n] and exchangeable noisy NLL [n] (about 2 nats per token)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 50, size=n).astype(float)
    return tokens * (2.0 + 0.3 * rng.standard_normal(n)), tokens


# ---------------------------------------------------------------- paired tests


def test_identical_predictions_give_p_one():
    x = _outcomes(np.random.default_rng(0), (3, 200))
    assert paired_bootstrap_p(x, x.copy(), n_boot=500) == 1.0
    assert paired_bootstrap_p(x, x[::-1], n_boot=500) == 1.0  # same per-item means over seeds
    assert mcnemar_exact_p(x, x.copy()) == 1.0
    nll, tok = _ppl_rows(0)
    assert paired_ppl_p(nll, tok, nll.copy(), tok.copy(), n_boot=500) == 1.0
    assert paired_ppl_p(np.stack([nll, nll]), np.stack([tok, tok]), nll, tok, n_boot=500) == 1.0


def test_all_correct_vs_all_wrong_is_significant():
    ones, zeros = np.ones((1, 400)), np.zeros((1, 400))
    assert paired_bootstrap_p(ones, zeros) < 0.001
    assert paired_bootstrap_p(zeros, ones) < 0.001
    assert mcnemar_exact_p(ones, zeros) < 0.001
    assert paired_bootstrap_p(ones, zeros, n_boot=99) == pytest.approx(1 / 100)  # never exactly 0


def test_paired_bootstrap_allows_different_seed_counts_and_is_calibrated_under_the_null():
    rng = np.random.default_rng(3)
    better = np.where(rng.random((2, 500)) < 0.8, 1.0, 0.0)
    worse = np.where(rng.random((1, 500)) < 0.6, 1.0, 0.0)
    assert paired_bootstrap_p(better, worse, n_boot=2000) < 0.001
    ps = np.array([paired_bootstrap_p(_outcomes(np.random.default_rng(100 + s), (2, 200)),
                                      _outcomes(np.random.default_rng(500 + s), (1, 200)), n_boot=300, seed=s) for s in range(60)])
    assert 0.0 < (ps < 0.2).mean() < 0.4  # about 0.2 when the models are exchangeable


def _mcnemar_pair(n10: int, n01: int, concordant: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """a, b [items] with n10 pairs (a right, b wrong), n01 (a wrong, b right) and agreeing pairs."""
    a = [1.0] * n10 + [0.0] * n01 + [1.0, 0.0] * (concordant // 2)
    b = [0.0] * n10 + [1.0] * n01 + [1.0, 0.0] * (concordant // 2)
    return np.array(a), np.array(b)


def test_mcnemar_known_cases():
    a, b = _mcnemar_pair(10, 0)
    assert mcnemar_exact_p(a, b) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact_p(b, a) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact_p(*_mcnemar_pair(7, 7)) == 1.0
    assert mcnemar_exact_p(*_mcnemar_pair(0, 0)) == 1.0  # no discordant pair
    a, b = _mcnemar_pair(6, 2)
    assert mcnemar_exact_p(a.reshape(2, -1), b.reshape(2, -1)) == pytest.approx(2 * (1 + 8 + 28) / 2**8)  # pooled over seeds
    assert mcnemar_exact_p(np.full(10, 0.5), np.zeros(10)) == 1.0  # a tie counts as wrong
    assert mcnemar_exact_p(np.full(10, 0.5), np.ones(10)) == pytest.approx(2 * 0.5**10)


@pytest.mark.parametrize("n", [1, 2, 9, 30, 101])
def test_binomial_tail_matches_math_comb(n):
    for k in range(n + 1):
        expected = min(1.0, 2 * sum(math.comb(n, j) for j in range(k + 1)) / 2**n)
        assert binomial_two_sided_p(k, n) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- intervals


def test_ci_contains_the_mean_and_narrows_with_more_items():
    widths = {}
    for n in (100, 1600):
        x = _exact_rate(n, 0.7, seed=n)
        lo, hi = bootstrap_mean_ci(x, n_boot=1000)
        assert lo <= x.mean() <= hi
        widths[n] = hi - lo
    assert widths[1600] < widths[100] / 2.5  # about 1/4: width ~ 1/sqrt(items)
    x = _outcomes(np.random.default_rng(1), (3, 300))
    lo, hi = bootstrap_mean_ci(x, n_boot=1000, level=0.9)
    assert lo < x.mean() < hi
    assert bootstrap_mean_ci(x[0], n_boot=300, seed=4) == bootstrap_mean_ci(x[:1], n_boot=300, seed=4)  # [items] is one seed
    same = np.stack([x[0], x[0]])
    assert bootstrap_mean_ci(same, n_boot=300) == pytest.approx(bootstrap_mean_ci(x[0], n_boot=300))
    assert bootstrap_mean_ci(np.ones(50), n_boot=100) == (1.0, 1.0)


def test_ppl_ci_contains_the_point_estimate():
    nll, tok = _ppl_rows(2)
    point = corpus_ppl(nll, tok)
    assert point == pytest.approx(math.exp(nll.sum() / tok.sum()))
    lo, hi = ppl_ci(nll, tok, n_boot=1000)
    assert lo < point < hi
    nll2, _ = _ppl_rows(3)
    seeds, toks = np.stack([nll, nll2 * 1.1]), np.stack([tok, tok])
    point = corpus_ppl(seeds, toks)
    assert point == pytest.approx((math.exp(nll.sum() / tok.sum()) + math.exp(1.1 * nll2.sum() / tok.sum())) / 2)
    lo, hi = ppl_ci(seeds, toks, n_boot=1000)
    assert lo < point < hi


def test_paired_ppl_p_small_for_a_margin_and_large_for_exchangeable_noise():
    nll_b, tok = _ppl_rows(0)
    assert paired_ppl_p(nll_b - 0.2 * tok, tok, nll_b, tok, n_boot=2000) < 0.001
    assert paired_ppl_p(nll_b, tok, nll_b - 0.2 * tok, tok, n_boot=2000) < 0.001
    noise = np.random.default_rng(7).standard_normal((2, tok.size))
    nll_a, nll_b = tok * (2.0 + 0.3 * noise[0]), tok * (2.0 + 0.3 * noise[1])
    assert paired_ppl_p(nll_a, tok, nll_b, tok, n_boot=2000) > 0.2


def test_summarize_over_seeds():
    assert summarize([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
    got = summarize(np.array([1.0, 2.0, 3.0]))
    assert got == {"mean": 2.0, "std": pytest.approx(1.0), "n": 3}
    with pytest.raises(ValueError, match="one score per seed"):
        summarize([])


def test_t_interval_over_seeds():
    lo, hi = stats.t_interval([1.0, 2.0, 3.0])
    assert (lo, hi) == (pytest.approx(2.0 - 4.302653 / math.sqrt(3)), pytest.approx(2.0 + 4.302653 / math.sqrt(3)))
    assert stats.t_interval([0.7]) is None  # one seed: no interval


# ---------------------------------------------------------------- methods x seeds x items


def test_ratio_bootstrap_resamples_seeds_as_well_as_items():
    # seed 0 got every item right, seed 1 every item wrong: items alone carry no noise, seeds do
    correct = np.stack([np.ones(50), np.zeros(50)])[None]  # [1 method, 2 seeds, 50 items]
    boot = stats.ratio_bootstrap(correct, np.ones_like(correct), n_boot=400, seed=1)
    assert set(np.unique(boot)) == {0.0, 0.5, 1.0}  # the mean over resampled seeds
    assert stats.interval(boot[:, 0]) == (0.0, 1.0)
    one_seed = stats.ratio_bootstrap(correct[:, :1], np.ones((1, 1, 50)), n_boot=400)
    assert np.all(one_seed == 1.0)


def test_ratio_bootstrap_resamples_numerator_and_denominator_together():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=(2, 3, 200)).astype(float)  # reference phones per item
    errors = lengths.copy()  # every item's error rate is exactly 1 ...
    errors[1] = 0.5 * lengths[1]  # ... for method 0, and 0.5 for method 1
    boot = stats.ratio_bootstrap(errors, lengths, n_boot=300)
    assert np.allclose(boot[:, 0], 1.0) and np.allclose(boot[:, 1], 0.5)
    assert np.allclose(stats.ratio_of_sums(errors, lengths), [[1.0] * 3, [0.5] * 3])


def test_ratio_bootstrap_is_paired_and_its_width_matches_the_binomial():
    rng = np.random.default_rng(3)
    a = (rng.random((1, 1, 400)) < 0.7).astype(float)
    boot = stats.ratio_bootstrap(np.concatenate([a, a]), np.ones((2, 1, 400)), n_boot=2000, seed=2)
    assert np.all(boot[:, 0] == boot[:, 1])  # the same resamples for both methods: a paired difference of 0
    lo, hi = stats.interval(boot[:, 0])
    mean = float(a.mean())
    assert lo < mean < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * math.sqrt(mean * (1 - mean) / 400), rel=0.15)


def test_ratio_errors_name_the_shapes_and_the_fix():
    with pytest.raises(ValueError, match=r"num has shape \(2, 3\).*\[methods, seeds, items\]"):
        stats.ratio_bootstrap(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"num has shape \(1, 2, 3\) but den has shape \(1, 2, 4\); pass one num and one den per"):
        stats.ratio_of_sums(np.ones((1, 2, 3)), np.ones((1, 2, 4)))
    with pytest.raises(ValueError, match="positive denominator"):
        stats.ratio_bootstrap(np.ones((1, 1, 3)), np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match="every bootstrap replicate is undefined"):
        stats.interval(np.full(5, np.nan))


# ---------------------------------------------------------------- errors


def test_shape_and_argument_errors_name_the_bad_values():
    a, b = np.ones((2, 100)), np.ones((1, 120))
    with pytest.raises(ValueError, match=r"covers 100 items but b covers 120.*same benchmark pairs"):
        paired_bootstrap_p(a, b)
    with pytest.raises(ValueError, match=r"covers 100 items but b covers 120"):
        mcnemar_exact_p(a, b)
    with pytest.raises(ValueError, match=r"a has shape \(2, 100\).*b has shape \(1, 100\)"):
        mcnemar_exact_p(a, np.ones(100))
    with pytest.raises(ValueError, match=r"covers 100 utterances but nll_b covers 120"):
        paired_ppl_p(np.ones(100), np.ones(100), np.ones(120), np.ones(120))
    with pytest.raises(ValueError, match=r"nll has shape \(1, 5\) but tokens has shape \(1, 4\)"):
        ppl_ci(np.ones(5), np.ones(4))
    with pytest.raises(ValueError, match="whole token counts"):
        ppl_ci(np.ones(5), np.full(5, 2.5))
    with pytest.raises(ValueError, match="scores no token for seed rows"):
        corpus_ppl(np.ones((2, 3)), np.stack([np.ones(3), np.zeros(3)]))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\).*\[seeds, items\]"):
        bootstrap_mean_ci(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="no seeds or no items"):
        bootstrap_mean_ci([])
    with pytest.raises(ValueError, match="1 non-finite"):
        bootstrap_mean_ci([1.0, math.nan])
    with pytest.raises(ValueError, match=r"level=1\.5"):
        bootstrap_mean_ci([1.0, 0.0], level=1.5)
    with pytest.raises(ValueError, match="n_boot=0"):
        paired_bootstrap_p([1.0], [0.0], n_boot=0)


# ---------------------------------------------------------------- score files


def _write_scores(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_load_outcomes_aligns_by_id_and_refuses_different_items(tmp_path):
    scores = tmp_path / "scores"
    _write_scores(scores / "sSC" / "a.jsonl", [{"id": i, "pos": -1.0, "neg": -2.0, "outcome": o} for i, o in [("x", 1.0), ("y", 0.0), ("z", 0.5)]])
    _write_scores(scores / "sSC" / "b.jsonl", [{"id": i, "pos": -1.0, "neg": -2.0, "outcome": o} for i, o in [("z", 1.0), ("x", 0.0), ("y", 1.0)]])
    np.testing.assert_array_equal(load_outcomes(scores, "sSC", ["a", "b"]), [[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]])
    assert stats.load_outcomes is load_outcomes and stats.load_ppl_rows is load_ppl_rows  # also importable from stats
    _write_scores(scores / "sSC" / "c.jsonl", [{"id": i, "outcome": 1.0} for i in ("x", "y", "w", "v")])
    with pytest.raises(ValueError, match=r"c\.jsonl \(4 items\) and .*a\.jsonl \(3 items\) score different ids.*missing \['z'\]"):
        load_outcomes(scores, "sSC", ["a", "c"])
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl not found.*tinywave eval"):
        load_outcomes(scores, "sSC", ["a", "missing"])
    _write_scores(scores / "sSC" / "d.jsonl", [{"id": "x", "score": 1.0}])
    with pytest.raises(ValueError, match=r"d\.jsonl:1: line lacks \['outcome'\]"):
        load_outcomes(scores, "sSC", ["d"])


def test_per_utterance_nll_adds_up_to_the_corpus_totals():
    tok, layout = eval_tokenizer()
    model = tiny_llama(tokenizer=tok, heads=2, seed=2, max_positions=10)  # 8 speech tokens per window
    builder = SequenceBuilder(tok)
    records = [{"id": "long", "speech": "".join(f"[Hu{i % 16}]" for i in range(23))},
               {"id": "empty", "speech": ""},  # not scored
               {"id": "short", "speech": "[Hu1][Hu4][Hu2]"},
               {"id": "mid", "speech": "".join(f"[Hu{(3 * i) % 16}]" for i in range(9))}]
    ppl = normalized_perplexity(model, records, builder, batch_tokens=64)
    rows = ppl.per_utterance
    assert [u.id for u in rows] == ["long", "short", "mid"]
    assert [u.tokens for u in rows] == [23, 3, 9]
    assert sum(u.tokens for u in rows) == ppl.tokens
    assert sum(u.nll for u in rows) == pytest.approx(ppl.nll, rel=1e-9)
    head = [tok.bos_token_id, layout.speech_id]
    assert rows[1].nll == pytest.approx(-reference_ll(model, head + builder.speech_ids(records[2]["speech"]), 2, "sum"), rel=1e-5)
    units = builder.speech_ids(records[0]["speech"])
    windows = [-reference_ll(model, head + units[i : i + 8], 2, "sum") for i in range(0, 23, 8)]
    assert rows[0].nll == pytest.approx(sum(windows), rel=1e-5)
    assert set(ppl.to_json()) == {"ppl_per_token", "ppl_per_second", "nll_per_token", "nll_per_second", "tokens", "seconds",
                                  "utterances", "definition"}


def test_evaluate_writes_per_utterance_perplexity_files(tmp_path):
    from tinywave.eval.suite import evaluate

    folder = save_model_dir(tmp_path / "m", seed=3)
    stok = EnergyTokenizer()
    records = [{"id": f"u{i}", "speech": "".join(f"[Hu{(i + 5 * j) % 12}]" for j in range(3 + i)), "seconds": 0.1 * (3 + i),
                "tokenizer": stok.fingerprint} for i in range(5)]
    corpus = tmp_path / "tokens.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = evaluate({"a": folder, "b": folder}, {}, tmp_path / "out", perplexity={"held": corpus}, speech_tokenizer=stok)
    lines = [json.loads(x) for x in (tmp_path / "out" / "scores" / "ppl-held" / "a.jsonl").read_text().splitlines()]
    assert [set(x) for x in lines] == [{"id", "nll", "tokens"}] * 5
    assert [x["id"] for x in lines] == [r["id"] for r in records]
    nll, tokens = load_ppl_rows(tmp_path / "out" / "scores", "held", ["a", "b"])
    assert nll.shape == tokens.shape == (2, 5)
    assert tokens[0].tolist() == [3, 4, 5, 6, 7]
    got = report["perplexity"]["held"]["a"]
    assert got["tokens"] == tokens[0].sum()
    assert corpus_ppl(nll[0], tokens[0]) == pytest.approx(got["ppl_per_token"], rel=1e-9)
    assert paired_ppl_p(nll[0], tokens[0], nll[1], tokens[1], n_boot=200) == 1.0  # the same model twice

"""Statistics for comparing models: bootstrap intervals and paired tests (numpy; scipy for t quantiles).

Inputs are the per-item files :func:`tinywave.eval.suite.evaluate` writes under
``OUT/scores/``, loaded by ``load_outcomes`` / ``load_ppl_rows`` (:mod:`tinywave.eval.scores`,
re-exported here):

- pairwise benchmarks: one ``outcome`` per pair (1 correct, 0.5 tie, 0 wrong;
  :func:`tinywave.eval.scoring.pair_outcomes`), as arrays ``[seeds, items]``;
- perplexity: per-utterance summed NLL (nats) and scored token counts
  (:func:`tinywave.eval.perplexity.normalized_perplexity`), as arrays ``[seeds, utterances]``.

A 1-D array ``[items]`` is one seed. "Seeds" are independent training runs of one
model configuration scored on the same items; the item (or utterance) is the unit that
is resampled, always jointly across seeds (and across the two models of a paired test),
because the benchmark items, not the runs, are the sample from a larger population.

Paired p-values use a centred bootstrap: the resampled statistic minus the observed one
approximates the null distribution of the statistic, and

    p = (1 + #{b : |T*_b - T| >= |T|}) / (1 + n_boot)

so p is never exactly 0 and an observed difference of exactly 0 gives p = 1.

Training-method comparisons (:func:`ratio_bootstrap`) resample the seeds too: there the
question is about runs of a method, and a method's seed-to-seed spread is part of the noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinywave.eval.scores import load_outcomes, load_ppl_rows  # re-exported: the arrays these functions take

# Resampled index matrices are drawn in chunks of at most this many entries (int64),
# so a 60k-item benchmark with 10k resamples stays within a few tens of MB.
_CHUNK_ENTRIES = 4_000_000


# ---------------------------------------------------------------- validation


def as_seed_items(values: Any, name: str) -> np.ndarray:
    """``values`` as a float64 array [seeds, items]; a 1-D array is one seed."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} has shape {x.shape}; pass a 1-D array [items] or a 2-D array [seeds, items]")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} has shape {x.shape} (no seeds or no items); score at least one item with at least one model")
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} holds {bad} non-finite values (nan or inf); drop or re-score those items")
    return x


def _same_items(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, what: str = "items") -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} covers {a.shape[1]} {what} but {name_b} covers {b.shape[1]}; a paired comparison needs "
                         f"both models scored on the same benchmark pairs ({what} in the same order), e.g. via tinywave.eval.scores")


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {a.shape} [seeds, items] but {name_b} has shape {b.shape}; "
                         "they must match (the same seeds and the same benchmark pairs)")


def _check_boot(n_boot: int, level: float | None = None) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r} must be a positive integer (e.g. 2000 for intervals, 10000 for p-values)")
    if level is not None and not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be strictly between 0 and 1 (e.g. 0.95)")


def _check_tokens(tokens: np.ndarray, name: str) -> None:
    bad = tokens[(tokens < 0) | (tokens != np.round(tokens))]
    if bad.size:
        raise ValueError(f"{name} must hold non-negative whole token counts; got {bad[:3].tolist()}; "
                         "pass the 'tokens' field of the scores/ppl-<corpus>/ files, not per-token averages")
    empty = np.flatnonzero(tokens.sum(axis=1) <= 0)
    if empty.size:
        raise ValueError(f"{name} scores no token for seed rows {empty.tolist()}; every seed needs at least one scored token")


# ---------------------------------------------------------------- resampling


def resampled_sums(rows: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Sums of ``rows`` [K, N] over ``n_boot`` resamples of the N columns: [n_boot, K].

    Every resample draws N column indices with replacement, shared by all K rows (the
    rows are seeds, models or numerator/denominator of one item set).
    """
    k, n = rows.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ENTRIES // max(1, n * k))
    out = np.empty((n_boot, k), dtype=np.float64)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))  # [chunk, N]
        out[start:stop] = rows[:, idx].sum(axis=2).T  # [K, chunk, N] -> [chunk, K]
    return out


def percentile_interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [tail, 1.0 - tail])
    return float(lo), float(hi)


def centred_p(boot: np.ndarray, observed: float) -> float:
    """Two-sided p from bootstrap statistics ``boot`` [n_boot]; see the module docstring."""
    if observed == 0.0:
        return 1.0
    count = int(np.count_nonzero(np.abs(boot - observed) >= abs(observed)))
    return (count + 1) / (boot.size + 1)


# ---------------------------------------------------------------- pairwise benchmarks


def bootstrap_mean_ci(outcomes: Any, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean outcome over seeds and items.

    ``outcomes`` [seeds, items] or [items]. Items are resampled with replacement, the
    same resampled items for every seed; the statistic is the mean over seeds and items
    (equal to the mean over resampled items of each item's mean over seeds).
    """
    _check_boot(n_boot, level)
    x = as_seed_items(outcomes, "outcomes")
    per_item = x.mean(axis=0)  # [items]: mean over seeds
    boot = resampled_sums(per_item[None, :], n_boot, seed)[:, 0] / per_item.size  # [n_boot]
    return percentile_interval(boot, level)


def paired_bootstrap_p(a: Any, b: Any, n_boot: int = 10000, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value for mean(a) == mean(b) over the same items.

    ``a`` [seeds_a, items], ``b`` [seeds_b, items] (seed counts may differ). Each is
    averaged over its seeds per item; the per-item differences are resampled (items
    jointly) and the centred rule of the module docstring gives p. All-zero differences
    give exactly 1.0.
    """
    _check_boot(n_boot)
    xa, xb = as_seed_items(a, "a"), as_seed_items(b, "b")
    _same_items(xa, xb, "a", "b")
    diff = xa.mean(axis=0) - xb.mean(axis=0)  # [items]
    if not np.any(diff):
        return 1.0
    boot = resampled_sums(diff[None, :], n_boot, seed)[:, 0] / diff.size  # [n_boot]
    return centred_p(boot, float(diff.mean()))


def binomial_two_sided_p(k: int, n: int) -> float:
    """min(1, 2 P[X <= k]) for X ~ Bin(n, 1/2), exactly (integer arithmetic)."""
    if n == 0:
        return 1.0
    term, total = 1, 1  # C(n, 0); running sum of C(n, 0..j)
    for j in range(k):
        term = term * (n - j) // (j + 1)  # C(n, j+1), exact
        total += term
    return min(1.0, 2 * total / 2**n)


def mcnemar_exact_p(a: Any, b: Any) -> float:
    """Exact two-sided McNemar test of two models' outcomes on the same (seed, item) pairs.

    ``a`` and ``b`` have the same shape [seeds, items] (or [items]); a pair is counted
    correct when its outcome is >= 1, so a tie (0.5) counts as wrong for both models.
    With n01 = #(a wrong, b correct) and n10 = #(a correct, b wrong), the discordant
    count n = n01 + n10 and p = min(1, 2 P[X <= min(n01, n10)]), X ~ Bin(n, 1/2).
    """
    xa, xb = as_seed_items(a, "a"), as_seed_items(b, "b")
    _same_items(xa, xb, "a", "b")
    _same_shape(xa, xb, "a", "b")
    ca, cb = xa >= 1.0, xb >= 1.0  # [seeds, items] correct?
    n01 = int(np.count_nonzero(~ca & cb))
    n10 = int(np.count_nonzero(ca & ~cb))
    return binomial_two_sided_p(min(n01, n10), n01 + n10)


# ---------------------------------------------------------------- perplexity


def _ppl_arrays(nll: Any, tokens: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = as_seed_items(nll, f"nll{name}")
    t = as_seed_items(tokens, f"tokens{name}")
    if x.shape != t.shape:
        raise ValueError(f"nll{name} has shape {x.shape} but tokens{name} has shape {t.shape}; "
                         "pass one NLL and one token count per (seed, utterance)")
    _check_tokens(t, f"tokens{name}")
    return x, t


def _mean_log_ppl(nll_sums: np.ndarray, token_sums: np.ndarray) -> np.ndarray:
    """Mean over seeds of log-perplexity; inputs [..., seeds] -> [...]."""
    return (nll_sums / token_sums).mean(axis=-1)


def corpus_ppl(nll: Any, tokens: Any) -> float:
    """exp(sum NLL / sum tokens) per seed, averaged over seeds; arrays [seeds, utterances]."""
    x, t = _ppl_arrays(nll, tokens, "")
    return float(np.exp(x.sum(axis=1) / t.sum(axis=1)).mean())


def ppl_ci(nll: Any, tokens: Any, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`corpus_ppl`, resampling utterances jointly across seeds."""
    _check_boot(n_boot, level)
    x, t = _ppl_arrays(nll, tokens, "")
    seeds = x.shape[0]
    sums = resampled_sums(np.concatenate([x, t]), n_boot, seed)  # [n_boot, 2*seeds]: NLL sums then token sums
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample may hold only zero-token utterances
        ppl = np.exp(sums[:, :seeds] / sums[:, seeds:]).mean(axis=1)  # [n_boot]
    return percentile_interval(ppl[np.isfinite(ppl)], level)


def paired_ppl_p(nll_a: Any, tok_a: Any, nll_b: Any, tok_b: Any, n_boot: int = 10000, seed: int = 0) -> float:
    """Two-sided paired bootstrap p for equal log-perplexity of models a and b on the same utterances.

    Arrays [seeds_a, utterances] for a and [seeds_b, utterances] for b (seed counts may
    differ). Statistic: mean over a's seeds of log-ppl (sum NLL / sum tokens) minus the
    same for b; utterances are resampled jointly for every seed of both models; the
    centred rule of the module docstring gives p (an observed difference of 0 gives 1.0).
    """
    _check_boot(n_boot)
    xa, ta = _ppl_arrays(nll_a, tok_a, "_a")
    xb, tb = _ppl_arrays(nll_b, tok_b, "_b")
    _same_items(xa, xb, "nll_a", "nll_b", "utterances")
    sa, sb = xa.shape[0], xb.shape[0]
    observed = float(_mean_log_ppl(xa.sum(axis=1), ta.sum(axis=1)) - _mean_log_ppl(xb.sum(axis=1), tb.sum(axis=1)))
    if observed == 0.0:
        return 1.0
    sums = resampled_sums(np.concatenate([xa, ta, xb, tb]), n_boot, seed)  # [n_boot, 2*sa + 2*sb]
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = (_mean_log_ppl(sums[:, :sa], sums[:, sa : 2 * sa])
                - _mean_log_ppl(sums[:, 2 * sa : 2 * sa + sb], sums[:, 2 * sa + sb :]))  # [n_boot]
    boot = boot[np.isfinite(boot)]
    return centred_p(boot, observed)


# ---------------------------------------------------------------- across seeds


def summarize(values_per_seed: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Mean, standard deviation (ddof=1; 0.0 for one seed) and count of one score over seeds."""
    x = np.asarray(values_per_seed, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values_per_seed has shape {x.shape}; pass a non-empty 1-D list with one score per seed")
    n = int(x.size)
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    return {"mean": float(x.mean()), "std": std, "n": n}


def t_interval(values_per_seed: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean of one score over seeds; None from fewer than two seeds."""
    _check_boot(1, level)
    x = summarize(values_per_seed)
    if x["n"] < 2:
        return None
    from scipy.stats import t  # lazy: scipy.stats is heavy (~1 s); the rest of this module is numpy only

    half = float(t.ppf(0.5 + level / 2.0, x["n"] - 1)) * x["std"] / np.sqrt(x["n"])
    return x["mean"] - half, x["mean"] + half


# ---------------------------------------------------------------- methods x seeds x items


def _methods_seeds_items(values: Any, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"{name} has shape {x.shape}; pass a 3-D array [methods, seeds, items] with at least one of each")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds non-finite values (nan or inf); drop or re-score those items")
    return x


def ratio_of_sums(num: Any, den: Any) -> np.ndarray:
    """sum(num) / sum(den) over the items of every method and seed: [methods, seeds, items] -> [methods, seeds]."""
    x, d = _methods_seeds_items(num, "num"), _methods_seeds_items(den, "den")
    if x.shape != d.shape:
        raise ValueError(f"num has shape {x.shape} but den has shape {d.shape}; pass one num and one den per (method, seed, item)")
    totals = d.sum(axis=2)
    if np.any(totals <= 0):
        raise ValueError("den sums to <= 0 for some method and seed; every run needs a positive denominator "
                         "(1 per item for an accuracy, the reference length for an error rate)")
    return x.sum(axis=2) / totals


def ratio_bootstrap(num: Any, den: Any, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of each method's mean over seeds of sum(num) / sum(den): [n_boot, methods].

    ``num``, ``den`` [methods, seeds, items]: per-item outcomes of every method's run with
    every seed on the same items (an accuracy: correct / 1; an error rate: errors /
    reference length). Each replicate draws the items with replacement (the same items
    for every method and seed) and the seeds with replacement (the same seed indices for
    every method: seed s of every method saw the same batches), so an interval covers the
    items' sampling and the seed-to-seed spread, and ``boot[:, a] - boot[:, b]`` is a
    paired difference. With one seed only the items are resampled.
    """
    _check_boot(n_boot)
    x, d = _methods_seeds_items(num, "num"), _methods_seeds_items(den, "den")
    ratio_of_sums(x, d)  # validates shapes and denominators
    _, n_seeds, n_items = x.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, x.shape[0]), dtype=np.float64)
    chunk = max(1, _CHUNK_ENTRIES // n_items)
    for start in range(0, n_boot, chunk):
        b = min(n_boot, start + chunk) - start
        items = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=b).astype(np.float64)  # [b, N] counts
        seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=b).astype(np.float64)  # [b, S] counts
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample may draw only zero-length items
            ratio = np.einsum("msn,bn->bms", x, items) / np.einsum("msn,bn->bms", d, items)  # [b, M, S]
        out[start:start + b] = np.einsum("bms,bs->bm", ratio, seeds) / n_seeds
    return out


def interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates [n_boot], ignoring undefined (nan) ones."""
    _check_boot(1, level)
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        raise ValueError("every bootstrap replicate is undefined (nan); the denominators are all zero")
    return percentile_interval(finite, level)


__all__ = ["bootstrap_mean_ci", "corpus_ppl", "interval", "load_outcomes", "load_ppl_rows", "mcnemar_exact_p",
           "paired_bootstrap_p", "paired_ppl_p", "ppl_ci", "ratio_bootstrap", "ratio_of_sums", "summarize", "t_interval"]


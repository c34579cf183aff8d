"""Evaluation: pairwise-likelihood benchmarks (sSC, tSC, SALMon, sWUGGY, sBLIMP), normalized
perplexity, GenPPL / Auto-BLEU, and side-by-side reports.

Entry point: :func:`tinywave.eval.suite.evaluate` (what ``tinywave eval`` and the demo call).
Layouts: :mod:`tinywave.eval.layouts`; the scoring rule: :mod:`tinywave.eval.scoring`;
aggregation: :mod:`tinywave.eval.metrics`; report files: :mod:`tinywave.eval.report`;
per-item score files: :mod:`tinywave.eval.scores`; intervals and paired tests between
models: :mod:`tinywave.eval.stats`.
"""

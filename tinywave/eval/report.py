"""Reports of an evaluation run: results.json, results.md (with ratios), results.png.

``results.json``::

    {"format": "tinywave-eval-v1", "score": "mean", "reference": "teacher",
     "models": {...}, "benches": {...},
     "results": {"sSC": {"teacher": 0.61, "student": 0.57},          # accuracy in [0, 1]
                 "sSC-t2s": {...}, "sSC/outcome": {...},              # cross-modal, breakdowns
                 "salmon": {...}, "salmon/speaker_consistency": {...},
                 "swuggy": {...}, "swuggy/in-vocab": {...}, "swuggy/oov": {...},
                 "sblimp": {...}, "sblimp/<type>": {...}},
     "counts": {"sSC": 100, ...},                                     # pairs / ids per row
     "perplexity": {"<name>": {"<model>": {"ppl_per_token": ..., "ppl_per_second": ...}}},
     "generation": {"<model>": {"genppl": ..., "auto_bleu": ...}},
     "resynthesis": {"<model>": {"asr": "pocketsphinx", "units": "deduplicated", "utterances": 20,
                                 "original": {"wer": ..., "cer": ...}, "vocoders": {"<vocoder>": {"wer", "cer", "wer_delta", ...}},
                                 "vocoder_dir": ...}}}

A key without ``/`` is a headline score; ``<bench>/<part>`` is a breakdown row.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from tinywave.files import atomic_write_bytes, atomic_write_json, atomic_write_text

FORMAT = "tinywave-eval-v1"


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _ratio(x: float | None, ref: float | None) -> str:
    if x is None or ref is None or not ref or math.isnan(x) or math.isnan(ref):
        return "–"
    return f"{100 * x / ref:.1f}%"


def accuracy_table(results: dict[str, dict[str, float]], models: list[str], reference: str, rows: list[str]) -> str:
    """Markdown: one row per benchmark, accuracy (%) per model and each model's ratio to ``reference``."""
    others = [m for m in models if m != reference]
    head = ["benchmark", *models, *[f"{m}/{reference}" for m in others]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        scores = results.get(row, {})
        cells = [_pct(scores.get(m)) for m in models] + [_ratio(scores.get(m), scores.get(reference)) for m in others]
        lines.append("| " + " | ".join([row, *cells]) + " |")
    return "\n".join(lines)


def perplexity_table(perplexity: dict[str, dict[str, dict[str, Any]]], models: list[str], reference: str) -> str:
    """Markdown: per corpus and model, perplexity per token and per second (lower is better)."""
    head = ["corpus", "model", "ppl / token", "NLL / token", "ppl / second", "NLL / second", f"ppl/token ratio to {reference}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for corpus, by_model in perplexity.items():
        ref = by_model.get(reference, {}).get("ppl_per_token")
        for m in models:
            if m not in by_model:
                continue
            p = by_model[m]
            ratio = f"{p['ppl_per_token'] / ref:.3f}" if ref else "–"
            cells = [corpus, m, f"{p['ppl_per_token']:.3f}", f"{p['nll_per_token']:.4f}", f"{p['ppl_per_second']:.4g}", f"{p['nll_per_second']:.3f}", ratio]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def generation_table(generation: dict[str, dict[str, Any]]) -> str:
    lines = ["| model | GenPPL | Auto-BLEU | samples |", "|---|---|---|---|"]
    lines += [f"| {m} | {g['genppl']:.2f} | {g['auto_bleu']:.3f} | {g['samples']} |" for m, g in generation.items()]
    return "\n".join(lines)


def resynthesis_table(resynthesis: dict[str, dict[str, Any]]) -> str:
    """Markdown: per model, WER / CER (%) of the original held-out audio and of its resynthesis, and the differences."""
    lines = ["| model | vocoder | ASR | utterances | WER original | WER resynthesis | ΔWER | CER original | CER resynthesis | ΔCER |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m, r in resynthesis.items():
        for voc, v in r["vocoders"].items():
            o = r["original"]
            lines.append(f"| {m} | {r.get('vocoder_dir', voc)} | {r['asr']} | {r['utterances']} | {_pct(o['wer'])} | {_pct(v['wer'])} | "
                         f"{100 * v['wer_delta']:+.2f} | {_pct(o['cer'])} | {_pct(v['cer'])} | {100 * v['cer_delta']:+.2f} |")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    models, reference = list(report["models"]), report["reference"]
    results = report["results"]
    headline = [k for k in results if "/" not in k]
    breakdown = [k for k in results if "/" in k]
    parts = [f"# Evaluation\n\nAccuracy (%) on pairwise benchmarks, LL = {report['score']} token log-likelihood; "
             f"ratios are to **{reference}**.\n", accuracy_table(results, models, reference, headline)]
    if breakdown:
        parts += ["\n## Breakdowns\n", accuracy_table(results, models, reference, breakdown)]
    if report.get("perplexity"):
        parts += ["\n## Normalized perplexity\n\nper token: exp(summed NLL / speech tokens); per second: exp(summed NLL / seconds of audio), "
                  "NLL in nats (lower is better).\n",
                  perplexity_table(report["perplexity"], models, reference)]
    if report.get("generation"):
        parts += ["\n## Continuations\n", generation_table(report["generation"])]
    if report.get("resynthesis"):
        units = {r.get("units", "deduplicated") for r in report["resynthesis"].values()}
        parts += [f"\n## Resynthesis intelligibility\n\nHeld-out speech -> speech tokens ({', '.join(sorted(units))}) -> vocoder -> "
                  "recognizer; WER / CER in % against the reference texts (lower is better), Δ = resynthesis minus original.\n",
                  resynthesis_table(report["resynthesis"])]
    return "\n".join(parts) + "\n"


def bar_chart(results: dict[str, dict[str, float]], models: list[str], path: Path) -> None:
    """Grouped bars: headline benchmarks on x, one bar per model, accuracy in %."""
    import matplotlib  # lazy: matplotlib is heavy (~0.4 s) and only the chart needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy, and must come after matplotlib.use("Agg")

    rows = [k for k in results if "/" not in k]
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(4.0, 2.0 + len(rows) * (0.5 + 0.25 * len(models))), 3.6))
    for i, m in enumerate(models):
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(xs, [100 * results[r].get(m, math.nan) for r in rows], width, label=m)
    ax.axhline(50, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(rows)), rows, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_reports(out: Path, report: dict[str, Any]) -> dict[str, Path]:
    """results.json, results.md and (when there are accuracies) results.png under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "results.md"}
    atomic_write_json(paths["json"], {"format": FORMAT, **report})
    atomic_write_text(paths["md"], markdown(report))
    if report["results"]:
        paths["png"] = out / "results.png"
        bar_chart(report["results"], list(report["models"]), paths["png"])
    return paths


MODEL_KEYED = ("results", "perplexity")  # {row: {model: value}}
BY_MODEL = ("models", "generation", "resynthesis")  # {model: value}


def merge_reports(parts: list[dict[str, Any]], order: list[str], reference: str) -> dict[str, Any]:
    """One report from reports of disjoint sets of models scored with the same benchmarks and settings
    (`tinywave demo` scores its models in several processes), models in ``order``."""
    first = parts[0]
    for part in parts[1:]:
        for key in ("score", "append_eos", "benches", "counts"):
            if part.get(key) != first.get(key):
                raise ValueError(f"reports to merge differ in {key!r} ({first.get(key)!r} vs {part.get(key)!r}); "
                                 "score every part with the same benchmarks and settings")
    seen = [m for part in parts for m in part["models"]]
    if sorted(seen) != sorted(order) or len(set(seen)) != len(seen):
        raise ValueError(f"the parts hold models {seen}, expected each of {order} exactly once")
    merged = {k: v for k, v in first.items() if k not in (*MODEL_KEYED, *BY_MODEL)} | {"reference": reference}
    for key in BY_MODEL:
        union = {m: v for part in parts for m, v in part.get(key, {}).items()}
        merged[key] = {m: union[m] for m in order if m in union}
    for key in MODEL_KEYED:
        rows = {row: None for part in parts for row in part.get(key, {})}  # row order of first appearance
        merged[key] = {}
        for row in rows:
            union = {m: v for part in parts for m, v in part.get(key, {}).get(row, {}).items()}
            merged[key][row] = {m: union[m] for m in order if m in union}
    return merged

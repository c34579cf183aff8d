"""The demo's report: report.json (keys other tools read), report.md and plots.

report.json keys:

- ``models.<name>.{params, non_embedding_params, layers, width}``
- ``benchmarks.<bench>.<name>``: accuracy in [0, 1], the mean over seeds for students
- ``per_seed.<bench>.<name>``: the accuracy of each seed; ``std.<bench>.<name>``
- ``ci.<bench>.<name>``: [low, high], 95% bootstrap interval over the benchmark pairs
  (the seeds pooled: the same resampled pairs for every seed); ``ci.ppl.<name>`` likewise
  over held-out utterances
- ``p_values.<bench>.<baseline>``: two-sided paired bootstrap p of the student against
  each baseline on the same pairs, pooled over seeds (``p_values.ppl.<baseline>`` for
  held-out perplexity); ``mcnemar.<bench>.<baseline>``: exact McNemar p, pooled
- ``normalized_ppl.<name>``: held-out per-token perplexity (mean over seeds)
- ``ratios.<bench>``: student / teacher; ``ratios.ppl``: student / teacher perplexity
- ``wall_seconds`` (stages that ran at once counted once) beside ``machine`` (CPU model, cores,
  torch threads and a measured float32 matmul rate: tinywave/demo/machine.py)
- ``seeds``, ``precision``, ``teacher_before_correction`` (a model entry plus its scores),
  ``claims`` (each target of the demo: measured, held or not), ``config``, ``stages``
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.demo.stages import busy_seconds
from tinywave.eval.stats import bootstrap_mean_ci, load_outcomes, load_ppl_rows, mcnemar_exact_p, paired_bootstrap_p, paired_ppl_p, ppl_ci
from tinywave.files import atomic_write_json, atomic_write_text, read_jsonl

REPORT_FORMAT = "tinywave-demo-report/2"
PPL_CORPUS = "heldout"
PPL_KEY = "ppl_per_token"
STUDENTS = ("student", "baseline_pruned_ce", "baseline_random_ce")
BASELINES = ("baseline_pruned_ce", "baseline_random_ce")
TEACHERS = ("teacher_before_correction", "teacher")


def model_sizes(folder: Path) -> dict[str, int]:
    """Parameter counts and shape of one exported model folder."""
    from transformers import AutoConfig, LlamaForCausalLM  # lazy: transformers and torch (~4 s); only counting parameters needs them

    config = AutoConfig.from_pretrained(folder)
    model = LlamaForCausalLM.from_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    head = 0 if config.tie_word_embeddings else model.get_output_embeddings().weight.numel()
    return {"params": params, "non_embedding_params": params - embed - head,
            "layers": config.num_hidden_layers, "width": config.hidden_size}


def describe_models(folders: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {name: {**model_sizes(folder), "dir": str(folder)} for name, folder in folders.items()}


def _loss_rows(run: Path) -> list[dict[str, Any]]:
    path = run / "train_log.jsonl"
    return [obj for _, obj, _ in read_jsonl(path) if obj is not None] if path.is_file() else []


def plot_student_curves(runs: Path, names: list[str], png: Path) -> Path | None:
    """Ground-truth CE of the student and both baselines (first seed) over the same steps, one chart."""
    import matplotlib  # lazy: matplotlib is heavy (~0.5 s) and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy, and must come after matplotlib.use("Agg")

    curves = {n: [(r["step"], r["ce"]) for r in _loss_rows(runs / n) if "ce" in r] for n in names}
    if not any(curves.values()):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, points in curves.items():
        if points:
            ax.plot(*zip(*points), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy on the training tokens (nats)")
    ax.set_title("student vs CE-only baselines (same data and steps)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def plot_benchmarks(report: dict[str, Any], benches: list[str], png: Path) -> Path | None:
    """Accuracy per model with 95% intervals, one group of bars per benchmark."""
    import matplotlib  # lazy: matplotlib is heavy (~0.5 s) and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy, and must come after matplotlib.use("Agg")

    names = [n for n in (*TEACHERS, *STUDENTS) if any(n in report["benchmarks"].get(b, {}) for b in benches)]
    if not benches or not names:
        return None
    fig, ax = plt.subplots(figsize=(max(6.4, 1.4 * len(benches)), 4.2))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(benches))]
        means = [report["benchmarks"][b].get(name, math.nan) for b in benches]
        lows = [m - report["ci"][b][name][0] if name in report["ci"].get(b, {}) else 0 for b, m in zip(benches, means)]
        highs = [report["ci"][b][name][1] - m if name in report["ci"].get(b, {}) else 0 for b, m in zip(benches, means)]
        ax.bar(xs, means, width, yerr=[lows, highs], capsize=2, label=name)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(benches)), benches)
    ax.set_ylim(0.3, 1.0)
    ax.set_ylabel("accuracy (95% CI)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


# ---------------------------------------------------------------- statistics over seeds


def seed_names(name: str, seeds: list[int]) -> list[str]:
    """Evaluation names of a model: one per seed for students, the name itself for teachers."""
    return [f"{name}-s{s}" for s in seeds] if name in STUDENTS else [name]


def bench_stats(scores_dir: Path, bench: str, seeds: list[int], present: set[str]) -> dict[str, Any]:
    """Mean, per-seed, std and 95% CI of every model on ``bench``; paired p-values of the student against each baseline."""
    out: dict[str, Any] = {"mean": {}, "per_seed": {}, "std": {}, "ci": {}, "p": {}, "mcnemar": {}}
    outcomes: dict[str, np.ndarray] = {}
    for name in (*TEACHERS, *STUDENTS):
        names = seed_names(name, seeds)
        if not set(names) <= present:
            continue
        arr = load_outcomes(scores_dir, bench, names)  # [seeds, items]
        outcomes[name] = arr
        per_seed = arr.mean(axis=1)
        out["mean"][name] = float(per_seed.mean())
        out["per_seed"][name] = [float(v) for v in per_seed]
        out["std"][name] = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0
        out["ci"][name] = [float(v) for v in bootstrap_mean_ci(arr)]
    if "student" in outcomes:
        for base in BASELINES:
            if base in outcomes:
                out["p"][base] = float(paired_bootstrap_p(outcomes["student"], outcomes[base]))
                out["mcnemar"][base] = float(mcnemar_exact_p(outcomes["student"], outcomes[base]))
    return out


def ppl_stats(scores_dir: Path, seeds: list[int], present: set[str]) -> dict[str, Any]:
    """Held-out per-token perplexity: mean over seeds, per seed, 95% CI over utterances, paired p against each baseline."""
    out: dict[str, Any] = {"mean": {}, "per_seed": {}, "std": {}, "ci": {}, "p": {}}
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in (*TEACHERS, *STUDENTS):
        names = seed_names(name, seeds)
        if not set(names) <= present or not (scores_dir / f"ppl-{PPL_CORPUS}").is_dir():
            continue
        nll, tokens = load_ppl_rows(scores_dir, PPL_CORPUS, names)  # [seeds, utterances] each
        rows[name] = (nll, tokens)
        per_seed = np.exp(nll.sum(axis=1) / tokens.sum(axis=1))
        out["mean"][name] = float(per_seed.mean())
        out["per_seed"][name] = [float(v) for v in per_seed]
        out["std"][name] = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0
        out["ci"][name] = [float(v) for v in ppl_ci(nll, tokens)]
    if "student" in rows:
        for base in BASELINES:
            if base in rows:
                out["p"][base] = float(paired_ppl_p(*rows["student"], *rows[base]))
    return out


# ---------------------------------------------------------------- claims


WALL_TARGET_MIN = 30  # the default demo's budget on 2 cores in fp32 (less where bf16 is faster)


def _claim(text: str, target: str, measured: str, held: bool | None) -> dict[str, Any]:
    return {"claim": text, "target": target, "measured": measured, "held": held}


def claims(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The demo's targets, each with its measured figure and whether it held."""
    b, ppl, p = report["benchmarks"], report["normalized_ppl"], report["p_values"]
    before = report.get("teacher_before_correction", {})
    out = []

    def acc(bench: str, name: str) -> float:
        return b.get(bench, {}).get(name, math.nan)

    for bench, low in (("tSC", 0.85), ("sSC", 0.70)):
        v = acc(bench, "teacher")
        out.append(_claim(f"corrected teacher, speech-only {bench}", f">= {low}", f"{v:.3f}", v >= low))
        for mode in ("t2s", "s2t"):
            target = 0.75 if bench == "tSC" else 0.65
            v = acc(f"{bench}-{mode}", "teacher")
            if not math.isnan(v):
                out.append(_claim(f"corrected teacher, {bench} {mode}", f">= {target}", f"{v:.3f}", v >= target))
    if "ppl" in before and "teacher" in ppl:
        out.append(_claim("correction lowers the teacher's held-out perplexity", "after < before",
                          f"{before['ppl']:.3f} -> {ppl['teacher']:.3f}", ppl["teacher"] < before["ppl"]))
    for bench in ("tSC", "sSC"):
        r = report["ratios"].get(bench)
        if r is not None:
            out.append(_claim(f"student / teacher on {bench}", ">= 0.93 (aim 0.97)", f"{r:.3f}", r >= 0.93))
    if report["ratios"].get("ppl") is not None:
        r = report["ratios"]["ppl"]
        out.append(_claim("student / teacher held-out perplexity", "<= 1.25", f"{r:.3f}", r <= 1.25))
    for base in BASELINES:
        for bench in ("tSC", "ppl"):
            pv = p.get(bench, {}).get(base)
            if pv is None:
                continue
            better = (acc(bench, "student") > acc(bench, base)) if bench != "ppl" else (ppl.get("student", math.inf) < ppl.get(base, -math.inf))
            out.append(_claim(f"student beats {base} on {bench}", "better, paired p < 0.05", f"p = {pv:.4f}" + ("" if better else " (worse)"),
                              bool(better and pv < 0.05)))
    wall = report.get("wall_seconds")
    if wall:
        m, name = report.get("machine") or {}, (report.get("precision") or {}).get("name", "?")
        where = f" on {m['cpu']} x {m['cores']} cores ({m['fp32_gflops']:.0f} GFLOP/s fp32 matmul)" if m else ""
        # the budget is set for fp32; a bf16 run (chosen where it is measurably faster) is held to the same number, and
        # the label says that its fp32 time is not what was measured
        target = f"<= {WALL_TARGET_MIN} min on 2 cores in fp32" + ("" if name == "fp32" else f" (this run: {name}; fp32 not timed)")
        out.append(_claim("demo wall time", target, f"{wall / 60:.1f} min, {name}{where}", wall <= WALL_TARGET_MIN * 60))
    return out


# ---------------------------------------------------------------- report


def _ratios(benchmarks: dict[str, dict[str, float]], ppl: dict[str, float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for bench, scores in benchmarks.items():
        teacher, student = scores.get("teacher"), scores.get("student")
        out[bench] = student / teacher if teacher and student is not None else None
    if ppl.get("teacher") and ppl.get("student") is not None:
        out["ppl"] = ppl["student"] / ppl["teacher"]
    return out


def _summary(benchmarks: dict[str, dict[str, float]], ppl: dict[str, float]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for bench in ("tSC", "sSC"):
        if bench in benchmarks:
            s[bench] = {n: round(v, 3) for n, v in benchmarks[bench].items()}
    if ppl:
        s["ppl"] = {n: round(v, 2) for n, v in ppl.items()}
    return s


def _breakdowns(results: dict[str, Any], seeds: list[int]) -> dict[str, dict[str, float]]:
    """Per-kind breakdown rows (``sSC/outcome`` ...): the mean over seeds (no intervals)."""
    out: dict[str, dict[str, float]] = {}
    for bench, scores in results.get("results", {}).items():
        if "/" not in bench:
            continue
        for name in (*TEACHERS, *STUDENTS):
            vals = [scores[n] for n in seed_names(name, seeds) if n in scores]
            if vals:
                out.setdefault(bench, {})[name] = float(np.mean(vals))
    return out


def build_report(out: Path, models: dict[str, dict[str, Any]], results: dict[str, Any], stages: dict[str, Any],
                 seeds: list[int], precision: dict[str, Any], *, machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """report.json's content from the evaluation's results.json and its per-item scores."""
    scores_dir = out / "eval" / "scores"
    present = set(results.get("models", {}))
    benches = [b for b in results.get("results", {}) if "/" not in b]
    stats = {b: bench_stats(scores_dir, b, seeds, present) for b in benches}
    pstats = ppl_stats(scores_dir, seeds, present)
    benchmarks = {b: s["mean"] for b, s in stats.items()}
    benchmarks.update(_breakdowns(results, seeds))
    ppl = pstats["mean"]
    ppl_rows = results.get("perplexity", {}).get(PPL_CORPUS, {})
    before = "teacher_before_correction"
    report = {
        "format": REPORT_FORMAT, "models": {n: m for n, m in models.items() if n != before},
        "benchmarks": benchmarks, "per_seed": {b: s["per_seed"] for b, s in stats.items()},
        "std": {b: s["std"] for b, s in stats.items()},
        "ci": {**{b: s["ci"] for b, s in stats.items()}, "ppl": pstats["ci"]},
        "p_values": {**{b: s["p"] for b, s in stats.items()}, "ppl": pstats["p"]},
        "mcnemar": {b: s["mcnemar"] for b, s in stats.items()},
        "normalized_ppl": ppl, "normalized_ppl_per_seed": pstats["per_seed"], "normalized_ppl_std": pstats["std"],
        "normalized_ppl_definition": "per token: exp(summed NLL of held-out speech tokens / tokens)",
        "ppl_per_second": {n: ppl_rows[n].get("ppl_per_second") for n in ppl_rows},
        "ratios": _ratios(benchmarks, ppl), "seeds": list(seeds), "precision": precision,
        "pairs": {b: results.get("counts", {}).get(b) for b in benches},
        "samples": stages["done"].get("samples", {}).get("index"),
        "sample_vocoder": stages["done"].get("samples", {}).get("vocoder"),
        "listening": stages["done"].get("listening"),
        "wall_seconds": round(busy_seconds(stages["done"]), 1), "machine": machine or {},
        "stages": stages["done"], "config": stages["config"],
    }
    if before in models:
        report["teacher_before_correction"] = {**models[before], "benchmarks": {b: s["mean"].get(before) for b, s in stats.items()},
                                               "ci": {b: s["ci"].get(before) for b, s in stats.items()},
                                               "ppl": ppl.get(before), "ppl_ci": pstats["ci"].get(before)}
    report["summary"] = _summary({b: {n: v for n, v in s.items() if n != before} for b, s in benchmarks.items()},
                                 {n: v for n, v in ppl.items() if n != before})
    report["claims"] = claims(report)
    return report


def _cell(report: dict[str, Any], bench: str, name: str) -> str:
    mean = report["benchmarks"].get(bench, {}).get(name)
    if mean is None:
        return "-"
    std = report["std"].get(bench, {}).get(name)
    ci = report["ci"].get(bench, {}).get(name)
    text = f"{mean:.3f}"
    if std and name in STUDENTS:
        text += f" ± {std:.3f}"
    if ci:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def _machine_text(machine: dict[str, Any] | None) -> str:
    """" on <CPU> (<n> cores; ...)" for the report's first line, or nothing for a report without the machine."""
    if not machine:
        return ""
    return (f" on {machine['cpu']} ({machine['cores']} cores; a float32 matmul chain ran at {machine['fp32_gflops']:.0f} GFLOP/s "
            f"with {machine['torch_threads']} thread(s) at the start of the run that wrote this report: wall times compare "
            f"across machines only with it)")


def _markdown(report: dict[str, Any], eval_md: str) -> str:
    names = [n for n in (*TEACHERS, *STUDENTS) if any(n in s for s in report["benchmarks"].values())]
    seeds = report["seeds"]
    prec = report["precision"]
    lines = ["# TinyWave demo report", "",
             f"Wall time {report['wall_seconds'] / 60:.1f} min (stages running at once counted once){_machine_text(report.get('machine'))}; "
             f"precision {prec['name']} ({prec['reason']}). "
             f"The pretrained teacher is corrected on the target domain (LoRA, merged); the student keeps a subset of its layers at "
             f"full width and is distilled on a subset of the target stories; the two baselines train the same architecture "
             f"with CE only on the same data, steps and schedule. Students: seeds {seeds}; a cell is the mean over seeds ± their "
             f"standard deviation [95% bootstrap interval over the benchmark pairs, seeds pooled].", "",
             "| model | layers | width | params | non-embedding params |", "|---|---|---|---|---|"]
    for n, m in report["models"].items():
        lines.append(f"| {n} | {m['layers']} | {m['width']} | {m['params'] / 1e6:.2f}M | {m['non_embedding_params'] / 1e6:.2f}M |")
    benches = [b for b in report["benchmarks"] if "/" not in b]
    lines += ["", "## Benchmarks (accuracy; pairs per benchmark: "
              + ", ".join(f"{b} {report['pairs'].get(b)}" for b in benches) + ")", "",
              "| benchmark | " + " | ".join(names) + " | student / teacher |", "|---" * (len(names) + 2) + "|"]
    for bench in benches:
        ratio = report["ratios"].get(bench)
        lines.append(f"| {bench} | " + " | ".join(_cell(report, bench, n) for n in names) + f" | {ratio:.3f} |"
                     if ratio is not None else f"| {bench} | " + " | ".join(_cell(report, bench, n) for n in names) + " | - |")
    ppl, pci, pstd = report["normalized_ppl"], report["ci"].get("ppl", {}), report.get("normalized_ppl_std", {})
    lines += ["", f"## Normalized perplexity on held-out target stories ({report['normalized_ppl_definition']})", "",
              "| " + " | ".join(names) + " |", "|---" * len(names) + "|",
              "| " + " | ".join((f"{ppl[n]:.3f}" + (f" ± {pstd[n]:.3f}" if pstd.get(n) and n in STUDENTS else "")
                                 + (f" [{pci[n][0]:.3f}, {pci[n][1]:.3f}]" if n in pci else "")) if n in ppl else "-" for n in names) + " |"]
    lines += ["", "## Student against each baseline (paired over the same pairs / utterances, seeds pooled)", "",
              "| benchmark | baseline | student | baseline | paired bootstrap p | McNemar p |", "|---|---|---|---|---|---|"]
    for bench, ps in report["p_values"].items():
        for base, pv in ps.items():
            table = report["normalized_ppl"] if bench == "ppl" else report["benchmarks"][bench]
            mc = report["mcnemar"].get(bench, {}).get(base)
            lines.append(f"| {bench} | {base} | {table.get('student', math.nan):.3f} | {table.get(base, math.nan):.3f} | {pv:.4f} | "
                         + (f"{mc:.4f}" if mc is not None else "-") + " |")
    lines += ["", "## Claims", "", "| claim | target | measured | held |", "|---|---|---|---|"]
    lines += [f"| {c['claim']} | {c['target']} | {c['measured']} | {'yes' if c['held'] else 'no'} |" for c in report["claims"]]
    lines += ["", "## Stage times", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v.get('seconds', 0):.0f} |" for k, v in report["stages"].items()]
    if report.get("samples"):
        lines += ["", f"Generated samples (teacher and student, wav + token transcript): [{report['samples']}]({report['samples']})"]
        lines += ["", _SAMPLE_VOCODER.get(report.get("sample_vocoder") or "", "")]
    lines += _listening_lines(report.get("listening"))
    lines += ["", "Plots: `plots/benchmarks.png` (accuracies with intervals), `plots/student_ce.png` (CE curves), "
              "`plots/<run>_losses.png`.", "", "## Full evaluation tables (every seed)", "", eval_md]
    return "\n".join(lines) + "\n"


def _listening_lines(listening: dict[str, Any] | None) -> list[str]:
    """The recognizer's figures (tinywave/demo/listening.py), or why there are none."""
    if not listening:
        return []
    if listening.get("skipped"):
        return ["", f"No recognizer figures: {listening['skipped']}."]
    rows = [f"| {name} | {wer:.3f} | {listening['ratios'].get(name)} |" for name, wer in listening["wer"].items()]
    return ["", f"## Intelligibility ({listening['utterances']} held-out utterances, `listening.json`)", "",
            "Resynthesis through the teacher's speech tokens and the vocoder, transcribed by PocketSphinx with a trigram model "
            "of the target training stories (held-out sentences excluded); the samples' transcripts are in `samples/index.json` "
            "(`asr`) and beside each player in report.html.", "",
            "| audio | WER | x original |", "|---|---|---|", f"| original | {listening['wer_original']:.3f} | 1.0 |", *rows]


_SAMPLE_VOCODER = {
    "vocoder": "The samples are vocoded with the demo's trained unit HiFi-GAN (`vocoder/`, lower held-out MCD than Griffin-Lim).",
    "vocoder/griffinlim": "The samples are vocoded with the Griffin-Lim unit-mel baseline (`vocoder/griffinlim`): at `vocoder_steps` "
                          "the demo's HiFi-GAN is not yet better. `tinywave vocoder train` with its defaults (about 9 minutes "
                          "here) gives a vocoder with lower distortion than Griffin-Lim; see docs/GENERATION.md.",
}


def write_demo_report(out: Path, models: dict[str, dict[str, Any]], results: dict[str, Any], runs: Path,
                      stages: dict[str, Any], seeds: list[int], *, precision: dict[str, Any],
                      machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble report.json / report.md and collect the plots under ``out/plots``."""
    report = build_report(out, models, results, stages, seeds, precision, machine=machine)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    if (out / "eval" / "results.png").is_file():
        shutil.copyfile(out / "eval" / "results.png", plots / "results.png")
    for run in runs.iterdir() if runs.is_dir() else []:
        if (run / "loss_curves.png").is_file():
            shutil.copyfile(run / "loss_curves.png", plots / f"{run.name}_losses.png")
    plot_student_curves(runs, [f"{n}-s{seeds[0]}" for n in STUDENTS], plots / "student_ce.png")
    plot_benchmarks(report, [b for b in report["benchmarks"] if "/" not in b], plots / "benchmarks.png")
    atomic_write_json(out / "report.json", report)
    eval_md = (out / "eval" / "results.md").read_text() if (out / "eval" / "results.md").is_file() else ""
    atomic_write_text(out / "report.md", _markdown(report, eval_md))
    return report


def read_report(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())

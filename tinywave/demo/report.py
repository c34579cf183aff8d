"""The demo's report: report.json (keys other tools read), report.md and plots.

report.json keys (issue contract): ``models.<name>.{params, non_embedding_params, layers,
width}``, ``benchmarks.<bench>.<name>`` (accuracy in [0, 1]), ``normalized_ppl.<name>``,
``ratios.<bench>`` (student / teacher), ``config`` (the resolved configs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tinywave.files import atomic_write_json, atomic_write_text, read_jsonl

REPORT_FORMAT = "tinywave-demo-report/1"
PPL_CORPUS = "heldout"
PPL_KEY = "ppl_per_token"


def model_sizes(folder: Path) -> dict[str, int]:
    """Parameter counts and shape of one exported model folder."""
    from transformers import AutoConfig, LlamaForCausalLM

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
    """Ground-truth CE of the student and both baselines over the same steps, one chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def _ratios(benchmarks: dict[str, dict[str, float]]) -> dict[str, float | None]:
    out = {}
    for bench, scores in benchmarks.items():
        teacher, student = scores.get("teacher"), scores.get("student")
        out[bench] = student / teacher if teacher and student is not None else None
    return out


def _summary(benchmarks: dict[str, dict[str, float]], ppl: dict[str, float]) -> dict[str, Any]:
    s = {}
    for bench in ("tSC", "sSC"):
        if bench in benchmarks:
            s[bench] = {n: round(v, 3) for n, v in benchmarks[bench].items()}
    if ppl:
        s["ppl"] = {n: round(v, 2) for n, v in ppl.items()}
    return s


_SAMPLE_VOCODER = {
    "vocoder": "The samples are vocoded with the demo's trained unit HiFi-GAN (`vocoder/`, lower held-out MCD than Griffin-Lim).",
    "vocoder/griffinlim": "The samples are vocoded with the Griffin-Lim unit-mel baseline (`vocoder/griffinlim`): at `vocoder_steps` "
                          "the demo's HiFi-GAN is not yet better. `tinywave vocoder train` with its defaults (about 9 minutes "
                          "here) gives a vocoder with lower distortion than Griffin-Lim; see docs/GENERATION.md.",
}


def _markdown(report: dict[str, Any], eval_md: str) -> str:
    names = list(report["models"])
    lines = ["# TinyWave demo report", "",
             f"Wall time {report['wall_seconds'] / 60:.1f} min (sum of the stages). Teacher trained from scratch on the embedded corpus; "
             "the student keeps a subset of its layers at full width and is distilled on a subset of the training "
             "stories; the two baselines train the same architecture with CE only on the same data and steps.", "",
             "| model | layers | width | params | non-embedding params |", "|---|---|---|---|---|"]
    for n in names:
        m = report["models"][n]
        lines.append(f"| {n} | {m['layers']} | {m['width']} | {m['params'] / 1e6:.2f}M | {m['non_embedding_params'] / 1e6:.2f}M |")
    lines += ["", "## Benchmarks (speech-only, mean log-likelihood; accuracy)", "",
              "| benchmark | " + " | ".join(names) + " | student / teacher |", "|---" * (len(names) + 2) + "|"]
    for bench, scores in report["benchmarks"].items():
        ratio = report["ratios"].get(bench)
        cells = [f"{scores[n]:.3f}" if scores.get(n) is not None else "-" for n in names]
        ratio_cell = f"{ratio:.3f}" if ratio is not None else "-"
        lines.append(f"| {bench} | " + " | ".join(cells) + f" | {ratio_cell} |")
    lines += ["", f"## Normalized perplexity on held-out stories ({report['normalized_ppl_definition']})", "",
              "| " + " | ".join(names) + " |", "|---" * len(names) + "|",
              "| " + " | ".join(f"{report['normalized_ppl'].get(n, float('nan')):.2f}" for n in names) + " |", "",
              "## Stage times", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v.get('seconds', 0):.0f} |" for k, v in report["stages"].items()]
    if report.get("samples"):
        lines += ["", f"Generated samples (teacher and student, wav + token transcript): [{report['samples']}]({report['samples']})"]
        lines += ["", _SAMPLE_VOCODER.get(report.get("sample_vocoder") or "", "")]
    lines += ["", "Plots: `plots/results.png` (accuracies), `plots/student_ce.png` (CE curves), `plots/<run>_losses.png`.",
              "", "## Full evaluation tables", "", eval_md]
    return "\n".join(lines) + "\n"


def write_demo_report(out: Path, models: dict[str, dict[str, Any]], results: dict[str, Any], runs: Path,
                      stages: dict[str, Any]) -> dict[str, Any]:
    """Assemble report.json / report.md and collect the plots under ``out/plots``."""
    names = list(models)
    benchmarks = {b: {n: s[n] for n in names if n in s} for b, s in results["results"].items()}
    ppl_rows = results.get("perplexity", {}).get(PPL_CORPUS, {})
    ppl = {n: ppl_rows[n][PPL_KEY] for n in names if n in ppl_rows}
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    if (out / "eval" / "results.png").is_file():
        shutil.copyfile(out / "eval" / "results.png", plots / "results.png")
    for run in runs.iterdir() if runs.is_dir() else []:
        if (run / "loss_curves.png").is_file():
            shutil.copyfile(run / "loss_curves.png", plots / f"{run.name}_losses.png")
    plot_student_curves(runs, [n for n in names if n != "teacher"], plots / "student_ce.png")
    report = {"format": REPORT_FORMAT, "models": models, "benchmarks": benchmarks, "ratios": _ratios(benchmarks),
              "normalized_ppl": ppl, "normalized_ppl_definition": "per token: exp(mean NLL of held-out speech tokens)",
              "ppl_per_second": {n: ppl_rows[n].get("ppl_per_second") for n in names if n in ppl_rows},
              "summary": _summary(benchmarks, ppl), "samples": stages["done"].get("samples", {}).get("index"),
              "sample_vocoder": stages["done"].get("samples", {}).get("vocoder"),
              "wall_seconds": round(sum(v.get("seconds", 0.0) for v in stages["done"].values()), 1),
              "stages": stages["done"], "config": stages["config"]}
    atomic_write_json(out / "report.json", report)
    eval_md = (out / "eval" / "results.md").read_text() if (out / "eval" / "results.md").is_file() else ""
    atomic_write_text(out / "report.md", _markdown(report, eval_md))
    return report


def read_report(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())

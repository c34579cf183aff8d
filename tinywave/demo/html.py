"""The demo's report as one HTML page: ``report.html`` beside ``report.md``.

    from tinywave.demo.report import read_report
    write_report_html(Path("demo_out"), read_report("demo_out/report.json"))   # -> demo_out/report.html

The input is report.json's dict (keys in the docstring of tinywave/demo/report.py). The page
is self-contained: inline CSS, no script, no external address; ``plots/*.png`` are embedded
as base64 data URIs; the audio players point at the wavs under ``samples/`` by paths
relative to the report folder, so the folder can be zipped and opened anywhere. Samples are
read from ``samples/index.json`` (tinywave/generate/samples.py), or from each model's
``generations.jsonl`` (tinywave/generate/outputs.py) for a demo run before index.json existed.
Every optional key may be missing (no samples, no interval, one seed): its section then says
so or shows "-". All text goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from tinywave.demo.report import STUDENTS, TEACHERS
from tinywave.files import atomic_write_text, read_jsonl

REPORT_HTML = "report.html"
SIDE_BY_SIDE = ("teacher", "student")  # sample columns first, other models after


class Raw(str):
    """Markup built here and already escaped: table cells of this type are inserted as they are."""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 3, sign: bool = False) -> str:
    """A number with ``digits`` decimals (4 significant digits from a million up); "-" for None, NaN or a non-number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return "-"
    plus = "+" if sign else ""
    return f"{value:{plus}.4g}" if abs(value) >= 1e6 else f"{value:{plus}.{digits}f}"


def interval(ci: Any, digits: int = 3) -> str:
    """``[low, high]`` or "" when there is no interval."""
    if isinstance(ci, Sequence) and not isinstance(ci, str) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return ""


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], table_id: str = "",
          row_classes: Sequence[str] | None = None) -> str:
    """An HTML table: ``str`` cells are escaped, :class:`Raw` cells inserted as they are."""
    def cell(value: Any, tag: str) -> str:
        return f"<{tag}>{value if isinstance(value, Raw) else esc(value)}</{tag}>"

    head = "<tr>" + "".join(cell(h, "th") for h in headers) + "</tr>"
    body = []
    for i, row in enumerate(rows):
        cls = row_classes[i] if row_classes and i < len(row_classes) else ""
        attr = f' class="{esc(cls)}"' if cls else ""
        body.append(f"<tr{attr}>" + "".join(cell(v, "td") for v in row) + "</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def model_names(report: Mapping[str, Any]) -> list[str]:
    """Models that have a score anywhere, teachers then students then any other, in report.py's order."""
    seen: dict[str, None] = {}
    for scores in report.get("benchmarks", {}).values():
        seen.update(dict.fromkeys(scores))
    seen.update(dict.fromkeys(report.get("normalized_ppl", {})))
    known = [n for n in (*TEACHERS, *STUDENTS) if n in seen]
    return known + [n for n in seen if n not in known]


def score_cell(mean: Any, std: Any, ci: Any, name: str) -> str:
    """``mean ± std [low, high]``: the spread over seeds for students only (teachers have one run)."""
    if fmt(mean) == "-":
        return "-"
    text = fmt(mean)
    if name in STUDENTS and isinstance(std, (int, float)) and std > 0:
        text += f" ± {std:.3f}"
    return text + interval(ci)


# ---------------------------------------------------------------- sections


def summary_section(report: Mapping[str, Any]) -> str:
    """Wall time, precision and its reason, seeds, and how many claims held."""
    parts = []
    wall = report.get("wall_seconds")
    parts.append(f"wall time {fmt(wall / 60, 1)} min (stages running at once counted once)" if isinstance(wall, (int, float)) else "wall time -")
    prec = report.get("precision") or {}
    if isinstance(prec, Mapping) and prec.get("name"):
        parts.append(f"precision {prec['name']}" + (f" ({prec['reason']})" if prec.get("reason") else ""))
    else:
        parts.append("precision -")
    seeds = report.get("seeds") or []
    parts.append(f"student seeds {', '.join(str(s) for s in seeds)}" if seeds else "student seeds -")
    claims = report.get("claims") or []
    if claims:
        parts.append(f"{sum(1 for c in claims if c.get('held'))} of {len(claims)} claims held")
    cells = ("A score cell is the mean over seeds ± their standard deviation (students) "
             "[95% bootstrap interval over the pairs, seeds pooled].")
    return f'<p class="summary" id="summary">{esc("; ".join(parts) + ".")}</p>{note(cells)}'


def models_section(report: Mapping[str, Any]) -> str:
    models = report.get("models") or {}
    if not models:
        return section("models", "Models", note("report.json lists no models."))
    rows = [[name, m.get("layers", "-"), m.get("width", "-"), millions(m.get("params")), millions(m.get("non_embedding_params"))]
            for name, m in models.items()]
    return section("models", "Models", table(["model", "layers", "width", "params", "non-embedding params"], rows, "model-table"))


def millions(count: Any) -> str:
    return f"{count / 1e6:.2f}M" if isinstance(count, (int, float)) and not isinstance(count, bool) else "-"


def benchmarks_section(report: Mapping[str, Any]) -> str:
    """Accuracy per benchmark and model, then the student / teacher ratio and the pair count."""
    benches = [b for b in report.get("benchmarks", {}) if "/" not in b]
    if not benches:
        return section("benchmarks", "Benchmarks (accuracy)", note("No benchmark scores in report.json."))
    names = [n for n in model_names(report) if any(n in report["benchmarks"][b] for b in benches)]
    std, ci = report.get("std", {}), report.get("ci", {})
    ratios, pairs = report.get("ratios", {}), report.get("pairs", {})
    rows = [[bench, *(score_cell(report["benchmarks"][bench].get(n), std.get(bench, {}).get(n), ci.get(bench, {}).get(n), n)
                      for n in names), fmt(ratios.get(bench)), pairs.get(bench) if pairs.get(bench) is not None else "-"]
            for bench in benches]
    return section("benchmarks", "Benchmarks (accuracy)",
                   table(["benchmark", *names, "student / teacher", "pairs"], rows, "benchmark-table"))


def perplexity_section(report: Mapping[str, Any]) -> str:
    """Held-out per-token perplexity with its interval; the student / teacher ratio."""
    ppl = report.get("normalized_ppl") or {}
    if not ppl:
        return section("perplexity", "Held-out perplexity", note("No held-out perplexity in report.json."))
    std, ci = report.get("normalized_ppl_std", {}), report.get("ci", {}).get("ppl", {})
    per_second = report.get("ppl_per_second") or {}
    rows = [[n, score_cell(ppl.get(n), std.get(n), ci.get(n), n), fmt(per_second.get(n))] for n in model_names(report) if n in ppl]
    definition = report.get("normalized_ppl_definition", "per token")
    ratio = report.get("ratios", {}).get("ppl")
    body = (note(f"Normalized perplexity on held-out target stories ({definition}); lower is better.")
            + table(["model", "perplexity per token", "perplexity per second"], rows, "ppl-table")
            + note(f"student / teacher perplexity: {fmt(ratio)}"))
    return section("perplexity", "Held-out perplexity", body)


def pvalues_section(report: Mapping[str, Any]) -> str:
    """Paired tests of the student against each baseline; p < 0.05 highlighted."""
    rows, classes = [], []
    for bench, ps in (report.get("p_values") or {}).items():
        values = report.get("normalized_ppl", {}) if bench == "ppl" else report.get("benchmarks", {}).get(bench, {})
        for base, p in (ps or {}).items():
            mc = report.get("mcnemar", {}).get(bench, {}).get(base)
            rows.append([bench, base, fmt(values.get("student")), fmt(values.get(base)), fmt(p, 4), fmt(mc, 4)])
            classes.append("significant" if isinstance(p, (int, float)) and p < 0.05 else "")
    if not rows:
        return section("pvalues", "Student against each baseline", note("No paired tests in report.json (no student or no baseline)."))
    return section("pvalues", "Student against each baseline",
                   note("Paired over the same pairs / utterances, seeds pooled; highlighted: p < 0.05.")
                   + table(["benchmark", "baseline", "student", "baseline score", "paired bootstrap p", "McNemar p"],
                           rows, "pvalue-table", classes))


def claims_section(report: Mapping[str, Any]) -> str:
    """Each target of the demo with its measured figure; held ones green, missed ones red."""
    claims = report.get("claims") or []
    if not claims:
        return section("claims", "Claims", note("No claims in report.json."))
    held = {True: ("yes", "held"), False: ("no", "missed")}
    rows = [[c.get("claim", "-"), c.get("target", "-"), c.get("measured", "-"),
             Raw(f'<span class="badge">{held.get(c.get("held"), ("n/a", ""))[0]}</span>')] for c in claims]
    classes = [held.get(c.get("held"), ("", "unknown"))[1] for c in claims]
    return section("claims", "Claims", table(["claim", "target", "measured", "held"], rows, "claims-table", classes))


def correction_section(report: Mapping[str, Any]) -> str:
    """The teacher before and after its correction on the target domain, per benchmark and perplexity."""
    before = report.get("teacher_before_correction")
    if not isinstance(before, Mapping):
        return section("correction", "Teacher before / after correction", note("No uncorrected teacher in report.json."))
    ci = report.get("ci", {})
    rows = []
    for bench, value in (before.get("benchmarks") or {}).items():
        after = report.get("benchmarks", {}).get(bench, {}).get("teacher")
        change = fmt(after - value, sign=True) if fmt(after) != "-" and fmt(value) != "-" else "-"
        rows.append([bench, fmt(value) + interval((before.get("ci") or {}).get(bench)),
                     fmt(after) + interval(ci.get(bench, {}).get("teacher")) if fmt(after) != "-" else "-", change])
    after_ppl = report.get("normalized_ppl", {}).get("teacher")
    if before.get("ppl") is not None:
        change = fmt(after_ppl - before["ppl"], sign=True) if fmt(after_ppl) != "-" and fmt(before["ppl"]) != "-" else "-"
        rows.append(["held-out perplexity", fmt(before["ppl"]) + interval(before.get("ppl_ci")),
                     fmt(after_ppl) + interval(ci.get("ppl", {}).get("teacher")) if fmt(after_ppl) != "-" else "-", change])
    if not rows:
        return section("correction", "Teacher before / after correction", note("The uncorrected teacher has no scores."))
    return section("correction", "Teacher before / after correction",
                   table(["measure", "before correction", "after correction", "change"], rows, "correction-table"))


def breakdown_section(report: Mapping[str, Any]) -> str:
    """Per-kind rows (``sSC/outcome`` ...): the mean over seeds, no intervals."""
    benches = [b for b in report.get("benchmarks", {}) if "/" in b]
    if not benches:
        return ""
    names = [n for n in model_names(report) if any(n in report["benchmarks"][b] for b in benches)]
    rows = [[bench, *(fmt(report["benchmarks"][bench].get(n)) for n in names)] for bench in benches]
    return section("breakdown", "Per-kind breakdown (accuracy, mean over seeds)",
                   table(["benchmark / kind", *names], rows, "breakdown-table"))


def plot_order(path: Path) -> tuple[int, str]:
    """benchmarks and results first, then the loss curves (student_ce, then each run's), then anything else."""
    rank = {"benchmarks": 0, "results": 1, "student_ce": 2}
    return (rank.get(path.stem, 3 if path.stem.endswith("_losses") else 4), path.name)


def plot_title(path: Path) -> str:
    titles = {"benchmarks": "Accuracy per benchmark with 95% intervals", "results": "Evaluation results (every seed)",
              "student_ce": "Loss curves: student against the CE-only baselines"}
    if path.stem in titles:
        return titles[path.stem]
    return f"Loss curves: {path.stem[: -len('_losses')]}" if path.stem.endswith("_losses") else path.stem


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None when ``data`` is not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def figure(png: Path, title: str) -> str:
    """A ``<figure>`` with the PNG inlined as a base64 data URI; wide plots (over 2:1) span the whole row."""
    data = png.read_bytes()
    size = png_size(data)
    if size is None:
        return f'<figure>{note(f"plots/{png.name} is not a PNG file; not shown")}</figure>'
    wide = ' class="wide"' if size[0] > 2 * size[1] else ""
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    img = f'<img alt="{esc(title)}" width="{size[0]}" height="{size[1]}" src="{uri}">'
    return f'<figure{wide}>{img}<figcaption>{esc(title)} ({esc("plots/" + png.name)})</figcaption></figure>'


def plots_section(out_dir: Path) -> str:
    """Every ``plots/*.png``, embedded: accuracy plots first, then the loss curves under their own heading."""
    pngs = sorted((out_dir / "plots").glob("*.png"), key=plot_order)
    if not pngs:
        return section("plots", "Plots and loss curves", note("No plots under plots/."))
    groups = {"Accuracy": [p for p in pngs if plot_order(p)[0] < 2], "Loss curves": [p for p in pngs if plot_order(p)[0] in (2, 3)],
              "Other plots": [p for p in pngs if plot_order(p)[0] > 3]}
    body = "".join(f'<h3>{esc(name)}</h3><div class="plots">{"".join(figure(p, plot_title(p)) for p in group)}</div>'
                   for name, group in groups.items() if group)
    return section("plots", "Plots and loss curves", body)


def stages_section(report: Mapping[str, Any]) -> str:
    stages = report.get("stages") or {}
    rows = [[name, fmt(info.get("seconds"), 0) if isinstance(info, Mapping) else "-"] for name, info in stages.items()]
    if not rows:
        return ""
    seconds = [info.get("seconds") for info in stages.values() if isinstance(info, Mapping)]
    total = sum(v for v in seconds if isinstance(v, (int, float)))
    return section("stages", "Stage times", f"<details><summary>{esc(f'{len(rows)} stages, {total:.0f} s in all')}</summary>"
                   f"{table(['stage', 'seconds'], rows, 'stage-table')}</details>")


# ---------------------------------------------------------------- samples


def samples_folder(out_dir: Path, report: Mapping[str, Any]) -> Path:
    """The folder of ``report["samples"]`` (``samples/index.md``), or ``out_dir/samples``."""
    index = report.get("samples")
    return out_dir / Path(index).parent if isinstance(index, str) and index else out_dir / "samples"


def load_samples(out_dir: Path, report: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """model -> entries (one per prompt) from ``samples/index.json``, else from each model's generations.jsonl."""
    folder = samples_folder(out_dir, report)
    index = folder / "index.json"
    if index.is_file():
        data = json.loads(index.read_text(encoding="utf-8"))
        models = data.get("models") if isinstance(data, Mapping) else None
        if not isinstance(models, Mapping):
            raise ValueError(f"{index} has no 'models' mapping; rewrite it with tinywave/generate/samples.py (rerun the samples stage)")
        return {str(n): [dict(e) for e in entries] for n, entries in models.items()}
    out: dict[str, list[dict[str, Any]]] = {}
    for jsonl in sorted(folder.glob("*/generations.jsonl")) if folder.is_dir() else []:
        rel = Path(os.path.relpath(jsonl.parent, out_dir)).as_posix()
        rows = [obj for _, obj, _ in read_jsonl(jsonl) if isinstance(obj, dict)]
        out[jsonl.parent.name] = [{**r, "wav": f"{rel}/{r['wav']}" if r.get("wav") else None} for r in rows]
    return out


def inside(out_dir: Path, rel: str) -> Path | None:
    """``out_dir/rel`` when ``rel`` is a relative path that stays inside ``out_dir``, else None."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not rel:
        return None
    return out_dir.joinpath(*path.parts)


def audio_player(out_dir: Path, rel: Any, label: str) -> str:
    """``<audio>`` for a wav given relative to the report folder; a note when it is absent or outside the folder."""
    if not isinstance(rel, str) or not rel:
        return ""
    path = inside(out_dir, rel)
    if path is None:
        return note(f"{label}: {rel} is outside the report folder (not playable from here)")
    if not path.is_file():
        return note(f"{label}: {rel} is missing")
    return (f'<div class="player"><span class="label">{esc(label)}</span>'
            f'<audio controls preload="none" src="{esc(quote(rel))}"></audio></div>')


def transcript_block(label: str, text: Any, css: str) -> str:
    if text is None or (isinstance(text, str) and not text.strip()):
        return ""
    return f'<div class="{esc(css)}"><span class="label">{esc(label)}</span><pre>{esc(text)}</pre></div>'


def text_output(entry: Mapping[str, Any]) -> str | None:
    """The generated text, unless the token transcript already reads the same."""
    text, transcript = entry.get("text"), entry.get("transcript")
    if not isinstance(text, str) or not text.strip():
        return None
    return None if isinstance(transcript, str) and " ".join(transcript.split()) == " ".join(text.split()) else text


def sample_card(out_dir: Path, model: str, entry: Mapping[str, Any]) -> str:
    """One model's output for one prompt: player, token transcript, text output, recognizer transcript."""
    meta = [f"{fmt(entry['seconds'], 1)} s" if isinstance(entry.get("seconds"), (int, float)) and entry.get("wav") else "",
            f"stop: {entry['stop']}" if entry.get("stop") else ""]
    parts = [f'<h4>{esc(model)}</h4>', audio_player(out_dir, entry.get("wav"), "output"),
             note(" · ".join(m for m in meta if m)) if any(meta) else "",
             transcript_block("token transcript", entry.get("transcript"), "transcript"),
             transcript_block("text output", text_output(entry), "text-output"),
             transcript_block("recognizer (ASR) transcript", entry.get("asr"), "asr")]
    return f'<div class="card" data-model="{esc(model)}">{"".join(parts)}</div>'


def prompt_header(out_dir: Path, prompt_id: str, entry: Mapping[str, Any]) -> str:
    """The prompt's name, kind, text and audio (taken from the first model's entry)."""
    kind = entry.get("kind") or entry.get("modality") or ""
    title = f"{prompt_id} ({str(kind).replace('_to_', ' → ').replace('+', ' + ')})" if kind else prompt_id
    text = entry.get("prompt_text")
    label = "prompt text"
    if not text and not entry.get("prompt_audio"):
        text, label = entry.get("prompt"), "prompt"
    return (f'<h3>{esc(title)}</h3>'
            + transcript_block(label, text.strip() if isinstance(text, str) else text, "prompt-text")
            + transcript_block("prompt speech tokens", entry.get("prompt_tokens"), "prompt-tokens")
            + audio_player(out_dir, entry.get("prompt_audio"), "prompt audio"))


def samples_section(out_dir: Path, report: Mapping[str, Any]) -> str:
    """Per prompt, the teacher and the student side by side (then any other model)."""
    samples = load_samples(out_dir, report)
    if not samples:
        return section("samples", "Samples", note("No generated samples in this report folder."))
    names = [n for n in SIDE_BY_SIDE if n in samples] + [n for n in samples if n not in SIDE_BY_SIDE]
    by_prompt: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name in names:
        for i, entry in enumerate(samples[name]):
            by_prompt.setdefault(str(entry.get("prompt_id") or f"prompt {i}"), {})[name] = entry
    blocks = []
    for prompt_id, entries in by_prompt.items():
        cards = "".join(sample_card(out_dir, n, entries[n]) for n in names if n in entries)
        blocks.append(f'<div class="prompt">{prompt_header(out_dir, prompt_id, next(iter(entries.values())))}'
                      f'<div class="side-by-side">{cards}</div></div>')
    vocoder = report.get("sample_vocoder")
    head = note(f"Vocoder of the samples: {vocoder}." if vocoder else "Vocoder of the samples: not recorded.")
    return section("samples", "Samples: listen and read", head + "".join(blocks))


# ---------------------------------------------------------------- page

CSS = """
:root { color-scheme: light; --fg: #1d232a; --muted: #5b6570; --line: #d8dee4; --bg-alt: #f5f7f9;
        --ok: #e3f5e6; --ok-fg: #17692b; --bad: #fde7e7; --bad-fg: #a31b1b; --hi: #fff6d6; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1200px; padding: 1.5rem; line-height: 1.45; }
h1 { margin: 0 0 .4rem; font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
h3 { margin: 1.2rem 0 .4rem; } h4 { margin: 0 0 .4rem; }
nav a { margin-right: .8rem; color: #0b5cad; }
.summary { font-size: 1.05rem; background: var(--bg-alt); border-left: 4px solid #0b5cad; padding: .6rem .8rem; }
.note { color: var(--muted); margin: .3rem 0; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .92rem; }
th, td { border: 1px solid var(--line); padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: var(--bg-alt); } tbody tr:nth-child(even) { background: #fafbfc; }
td { font-variant-numeric: tabular-nums; }
tr.held { background: var(--ok) !important; } tr.held .badge { color: var(--ok-fg); font-weight: 700; }
tr.missed { background: var(--bad) !important; } tr.missed .badge { color: var(--bad-fg); font-weight: 700; }
tr.significant { background: var(--hi) !important; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1rem; }
figure.wide { grid-column: 1 / -1; }
summary { cursor: pointer; color: #0b5cad; }
figure { margin: 0; border: 1px solid var(--line); padding: .5rem; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .88rem; margin-top: .3rem; }
.prompt { border: 1px solid var(--line); border-radius: 6px; padding: .6rem .9rem .9rem; margin: 1rem 0; }
.side-by-side { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: .8rem; margin-top: .6rem; }
.card { background: var(--bg-alt); border-radius: 6px; padding: .6rem .8rem; min-width: 0; }
.label { display: block; font-size: .8rem; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
pre { white-space: pre-wrap; word-break: break-word; margin: .15rem 0 .5rem; font-size: .85rem; background: #fff;
      border: 1px solid var(--line); padding: .35rem .5rem; max-height: 12rem; overflow: auto; }
audio { width: 100%; max-width: 420px; height: 2.2rem; margin: .15rem 0 .4rem; }
"""

SECTION_LINKS = (("models", "Models"), ("benchmarks", "Benchmarks"), ("perplexity", "Perplexity"), ("pvalues", "Paired tests"),
                 ("claims", "Claims"), ("correction", "Teacher correction"), ("breakdown", "Per kind"), ("plots", "Plots"),
                 ("samples", "Samples"), ("stages", "Stages"))


def render_report_html(out_dir: Path, report: Mapping[str, Any]) -> str:
    """The whole page as a string (see the module docstring)."""
    sections = [models_section(report), benchmarks_section(report), perplexity_section(report), pvalues_section(report),
                claims_section(report), correction_section(report), breakdown_section(report), plots_section(out_dir),
                samples_section(out_dir, report), stages_section(report)]
    body = "".join(s for s in sections if s)
    links = " ".join(f'<a href="#{k}">{esc(v)}</a>' for k, v in SECTION_LINKS if f'<section id="{k}"' in body)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,"><title>TinyWave demo report</title>'
            f"<style>{CSS}</style></head><body><header><h1>TinyWave demo report</h1>{summary_section(report)}"
            f"<nav>{links}</nav></header><main>{body}</main></body></html>\n")


def write_report_html(out_dir: Path, report: Mapping[str, Any]) -> Path:
    """Write ``out_dir/report.html`` (atomically) from report.json's dict; returns its path."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"report folder {out_dir} does not exist; pass the demo's --out folder (it holds report.json)")
    if not isinstance(report, Mapping):
        raise TypeError(f"report must be report.json's dict (tinywave.demo.report.read_report), got {type(report).__name__}")
    path = out_dir / REPORT_HTML
    atomic_write_text(path, render_report_html(out_dir, report))
    return path

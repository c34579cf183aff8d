"""Generate ``benchmarks/results/TABLE.md``: every figure of every results file, with its target and conditions.

    .venv/bin/python benchmarks/table.py                   # all results/*.json
    .venv/bin/python benchmarks/table.py --committed       # only the results files git tracks

One row per figure: its name, value and unit, its target if the script states one, marked
``met`` or ``MISSED``, the conditions it was measured under and the results file. Files
written by ``record.write_results`` carry a ``figures`` list. Older files have none: their
numbers are listed by their path in the file (under ``table``, else ``summary`` -- its
strings too, e.g. "98.3%" --, else the whole file), with a 95% interval or ± std shown
beside the value they belong to, and no target. Conditions fields a file does not record are named as "not recorded", never
filled in.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from record import RESULTS, met  # noqa: E402

CONDITIONS = ("cpu", "cpu_flags", "cores", "threads", "precision", "torch", "commit", "date")
LEGACY_SECTIONS = ("table", "summary")
MAIN_KEYS = ("mean", "value", "acc", "accuracy")  # the value a bare "ci" / "std" belongs to


# --- figures of one file ------------------------------------------------------------------------------

def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _interval(x: Any) -> bool:
    return isinstance(x, list) and len(x) == 2 and all(_is_number(v) for v in x)


def _companions(node: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """Notes for the value keys of a dict from the keys that qualify them (``ci`` / ``std`` -> the
    mean, ``x_ci`` -> ``x``), and the qualifying keys so used."""
    main = next((k for k in MAIN_KEYS if k in node), None)
    notes: dict[str, list[str]] = {}
    used = set()
    for key, value in node.items():
        owner = main if key in ("ci", "ci95", "std") else key.rsplit("_", 1)[0] if key.endswith(("_ci", "_ci95")) else None
        if owner not in node or owner == key:
            continue
        if key == "std" and _is_number(value):
            notes.setdefault(owner, []).insert(0, f"± {value:.4g}")
        elif key != "std" and _interval(value):
            notes.setdefault(owner, []).append(f"[{value[0]:.4g}, {value[1]:.4g}]")
        else:
            continue
        used.add(key)
    return {k: " ".join(v) for k, v in notes.items()}, used


def flatten(node: Any, path: str = "", strings: bool = False) -> list[dict[str, Any]]:
    """Rows ``{"name", "value", "note"}`` for every number (or bool; with ``strings``, every string)
    under ``node``, named by their path."""
    if isinstance(node, bool) or _is_number(node) or (strings and isinstance(node, str)):
        return [{"name": path, "value": node, "unit": "", "target": None, "note": ""}]
    if _interval(node):
        return [{"name": path, "value": None, "unit": "", "target": None, "note": f"[{node[0]:.4g}, {node[1]:.4g}]"}]
    if not isinstance(node, dict):
        return []  # strings, long lists: not figures
    notes, used = _companions(node)
    rows = []
    for key, value in node.items():
        if key in used:
            continue
        sub = flatten(value, f"{path}.{key}" if path else str(key), strings)
        if key in notes and len(sub) == 1:
            sub[0]["note"] = notes[key]
        rows += sub
    return rows


def figures_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The file's ``figures``, or its numbers flattened (files written before ``record.py``)."""
    if isinstance(data.get("figures"), list):
        return data["figures"]
    section = next((k for k in LEGACY_SECTIONS if isinstance(data.get(k), dict)), None)
    if section:
        return flatten(data[section], section, strings=section == "summary")  # a summary's strings carry their units
    return flatten({k: v for k, v in data.items() if k != "conditions"})


# --- conditions ---------------------------------------------------------------------------------------

def describe_conditions(data: dict[str, Any]) -> str:
    """A short line of the recorded conditions, and which of the required fields are not recorded."""
    c = data.get("conditions")
    if not isinstance(c, dict) or not c:
        return "conditions not recorded"
    parts = []
    if "cpu" in c:
        parts.append(str(c["cpu"]) + (f" ({', '.join(c['cpu_flags']) or 'none of avx2/avx512/amx'})" if "cpu_flags" in c else ""))
    parts.append(", ".join(f"{c[k]} {k}" for k in ("cores", "threads") if k in c))
    parts += [str(c[k]) for k in ("precision",) if k in c]
    parts += [f"torch {c['torch']}" if "torch" in c else "", f"commit {c['commit']}" if "commit" in c else "",
              str(c["date"])[:16] if "date" in c else "", f"load {c['load_average'][0]}" if c.get("load_average") else ""]
    missing = [k for k in CONDITIONS if k not in c]
    if missing:
        parts.append("not recorded: " + ", ".join(missing))
    return "; ".join(p for p in parts if p)


def is_quick(data: dict[str, Any]) -> bool:
    return bool(data.get("quick") or (isinstance(data.get("settings"), dict) and data["settings"].get("quick")) or data.get("tiny"))


# --- the table ----------------------------------------------------------------------------------------

def _value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def _target(t: dict[str, Any] | None) -> str:
    return "" if not t else f"{t['op']} {_value(t['value'])}"


def _status(fig: dict[str, Any]) -> str:
    verdict = met(fig)
    return "" if verdict is None else "met" if verdict else "**MISSED**"


def rows_of(path: Path) -> tuple[list[str], str]:
    """Markdown rows of one results file, and its conditions line."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"| (unreadable: {exc}) | | | | | [{path.name}]({path.name}) |"], "unreadable"
    if not isinstance(data, dict):
        return [f"| (not a results object: {type(data).__name__}) | | | | | [{path.name}]({path.name}) |"], "unreadable"
    cond = describe_conditions(data) + ("; QUICK / tiny smoke run: figures mean little" if is_quick(data) else "")
    rows = []
    for fig in figures_of(data):
        value = _value(fig.get("value")) + (f" {fig['unit']}" if fig.get("unit") and fig.get("value") is not None else "")
        note = f" ({fig['note']})" if fig.get("note") else ""
        rows.append(f"| {fig['name']} | {value}{note} | {_target(fig.get('target'))} | {_status(fig)} | {cond} | "
                    f"[{path.name}]({path.name}) |")
    return rows, cond


def committed(results: Path) -> set[str]:
    """Names of the results files git tracks."""
    out = subprocess.run(["git", "ls-files", "--", str(results)], capture_output=True, text=True, cwd=results)
    return {Path(line).name for line in out.stdout.splitlines()}


def build(results: Path, only_committed: bool = False) -> str:
    files = sorted(results.glob("*.json"))
    if only_committed:
        tracked = committed(results)
        files = [f for f in files if f.name in tracked]
    lines = ["# Benchmark figures", "",
             "Generated by `benchmarks/table.py` from " + ("the committed" if only_committed else "the") + " files in "
             "`benchmarks/results/`; do not edit by hand. One row per figure; *met* / **MISSED** against the target "
             "the script states (blank: it states none). Files written before the scripts recorded their conditions "
             "say which fields are \"not recorded\".", "",
             "| figure | value | target | | conditions | results file |", "|---|---|---|---|---|---|"]
    summary = []
    for path in files:
        rows, cond = rows_of(path)
        lines += rows
        summary.append(f"- [{path.name}]({path.name}): {len(rows)} figures; {cond}")
    if not files:
        lines.append("| (no results files) | | | | | |")
    return "\n".join(lines + ["", "## Files", "", *summary]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(RESULTS), help="folder of the results JSON files")
    ap.add_argument("--out", default="", help="Markdown to write (default: RESULTS/TABLE.md)")
    ap.add_argument("--committed", action="store_true", help="only the results files git tracks")
    args = ap.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        raise SystemExit(f"--results {results} is not a folder; pass the folder the benchmark scripts write to (benchmarks/results)")
    out = Path(args.out) if args.out else results / "TABLE.md"
    out.write_text(build(results, args.committed))
    print(f"{out}: {sum(1 for line in out.read_text().splitlines() if line.startswith('| ') and '](' in line)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

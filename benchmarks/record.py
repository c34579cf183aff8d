"""How a benchmark script writes its results: named figures with their targets, plus the conditions.

    from conditions import conditions               # scripts in benchmarks/ put their folder on sys.path
    from record import figure, write_results

    figures = [figure("batched / one-at-a-time, 2048 tokens", 4.2, "x", target=(">=", 3.0))]
    write_results("scoring_throughput", figures, conditions("fp32", threads=2), out=args.out, rows=rows)

Every script writes ``benchmarks/results/<script>.json`` (or ``--out``)::

    {"script": ..., "figures": [{"name", "value", "unit", "target": {"op", "value"} | null, "note"}],
     "conditions": {...}, ...whatever else the script keeps}

A target is what the script states it should reach; ``met`` decides it the same way for
every reader (``benchmarks/table.py`` turns all results files into ``results/TABLE.md``).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
OPS: dict[str, Callable[[Any, Any], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
                                              "==": operator.eq}


def figure(name: str, value: Any, unit: str = "", target: tuple[str, Any] | None = None, note: str = "") -> dict[str, Any]:
    """One figure; ``target`` as ``(op, value)`` with op one of ``OPS``."""
    if target is not None and target[0] not in OPS:
        raise ValueError(f"figure {name!r}: target operator {target[0]!r} is not known; use one of {sorted(OPS)}")
    return {"name": name, "value": value, "unit": unit,
            "target": None if target is None else {"op": target[0], "value": target[1]}, "note": note}


def met(fig: dict[str, Any]) -> bool | None:
    """True / False against the figure's target; None when it states none. A missing value misses its target."""
    target = fig.get("target")
    if not target:
        return None
    if fig.get("value") is None:
        return False
    return bool(OPS[target["op"]](fig["value"], target["value"]))


def default_out(script: str) -> Path:
    return RESULTS / f"{script}.json"


def write_results(script: str, figures: list[dict[str, Any]], conditions: dict[str, Any], out: str | Path | None = None,
                  **extra: Any) -> Path:
    """Write ``{"script", "figures", "conditions", **extra}`` to ``out`` (default results/<script>.json); its path."""
    path = Path(out) if out else default_out(script)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"script": script, "figures": figures, "conditions": conditions, **extra}, indent=1) + "\n")
    print(f"results -> {path}")
    return path


def write_report(script: str, figures: list[dict[str, Any]], conditions: dict[str, Any], out: str | Path | None,
                 result: dict[str, Any], markdown: Any) -> Path:
    """:func:`write_results` with ``result`` as the extra fields, then ``markdown(result + conditions)`` beside it (.md), printed."""
    path = write_results(script, figures, conditions, out, **result)
    text = markdown({**result, "conditions": conditions})
    path.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return path

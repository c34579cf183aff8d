"""The stacking study's figures from its run records: speed, probe quality, the teacher's layers, the verdict.

Used by ``benchmarks/sfm_stacking.py``; a record is one (seed, mode) with the cached and the
online run's log rows (``step``, ``loss``, ``train_seconds``, ``cpu_seconds``) and the cached
run's probes (per-item test outcomes ``num`` / ``den`` per task).

- Speed: per seed, the reference is the none (full-depth) run's final loss (moving average
  over ``window`` steps); each run's time is the wall / CPU seconds of its first step whose
  moving average is at or below it; the speed-up is none's time over the mode's. Over
  seeds: mean, std and a Student-t 95% interval.
- Quality: per task and mode, the metric per seed; the 95% interval resamples the test
  items and the seeds (``ratio_bootstrap``); the difference from none uses the same
  resamples (paired). A mode is *worse* / *better* on a task when the difference's interval
  lies wholly on that side of 0, else *within noise*.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinywave.eval.stats import interval, ratio_bootstrap, ratio_of_sums, summarize, t_interval

TASKS = ("ks", "sid", "pr")
METRIC = {"ks": "accuracy", "sid": "accuracy", "pr": "per"}
HIGHER_IS_BETTER = {"ks": True, "sid": True, "pr": False}
CLOCKS = {"wall": "train_seconds", "cpu": "cpu_seconds"}
TEACHER = ("cached", "online")
OTHERS = ("top", "gradual", "middle")
N_BOOT = 2000
TARGET_SPEEDUP, TARGET_RELATIVE_GAP = 1.2, 0.02  # the issue's targets for interleaved


# --- speed ------------------------------------------------------------------------------------------

def smooth(values: list[float], window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start)."""
    c = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def final_loss(rows: list[dict], window: int) -> float:
    return float(smooth([r["loss"] for r in rows], window)[-1])


def time_to_reach(rows: list[dict], target: float, window: int, column: str) -> float | None:
    """``column`` at the first step whose moving-average loss is <= ``target``; None if never."""
    s = smooth([r["loss"] for r in rows], window)
    hit = np.nonzero(s <= target + 1e-6 * abs(target))[0]  # the tolerance absorbs float noise of an online rerun
    return None if len(hit) == 0 else float(rows[int(hit[0])][column])


def describe(values: list[float | None]) -> dict[str, Any]:
    """Mean, std and t-interval over the seeds that have a value; ``n`` of ``of`` seeds."""
    got = [v for v in values if v is not None]
    if not got:
        return {"mean": None, "std": None, "ci95": None, "n": 0, "of": len(values)}
    s = summarize(got)
    return {"mean": s["mean"], "std": s["std"], "ci95": t_interval(got), "n": s["n"], "of": len(values)}


def speed(by: dict[tuple[int, str], dict], modes: list[str], seeds: list[int], window: int) -> dict[str, Any]:
    out = {}
    for mode in modes:
        per_seed = []
        for seed in seeds:
            rec, ref = by[(seed, mode)], by[(seed, "none")]
            target = final_loss(ref["cached"]["rows"], window)
            row: dict[str, Any] = {"seed": seed, "reference_loss": target, "steps": len(rec["cached"]["rows"]),
                                   "final_loss": final_loss(rec["cached"]["rows"], window)}
            for teacher in TEACHER:
                for clock, column in CLOCKS.items():
                    t, t_ref = (time_to_reach(r[teacher]["rows"], target, window, column) for r in (rec, ref))
                    row[f"{teacher}_{clock}_to_ref"] = t
                    row[f"{teacher}_{clock}_speedup"] = None if t is None or t_ref is None else t_ref / t
                    row[f"{teacher}_{clock}_total"] = rec[teacher]["rows"][-1][column]
            per_seed.append(row)
        keys = [k for k in per_seed[0] if k != "seed"]
        out[mode] = {"per_seed": per_seed, "summary": {k: describe([r[k] for r in per_seed]) for k in keys}}
    return out


# --- quality ----------------------------------------------------------------------------------------

def outcomes(results: list[dict], task: str) -> tuple[np.ndarray, np.ndarray]:
    """[methods, seeds, items] num and den from per-seed probe results ``results[method][seed]``."""
    num = np.array([[r[task]["test_items"]["num"] for r in seeds] for seeds in results], dtype=np.float64)
    den = np.array([[r[task]["test_items"]["den"] for r in seeds] for seeds in results], dtype=np.float64)
    return num, den


def side(ci: tuple[float, float], higher_is_better: bool) -> str:
    """'better' / 'worse' when the difference's interval excludes 0, else 'within noise'."""
    if ci[0] > 0 or ci[1] < 0:
        return "better" if (ci[0] > 0) == higher_is_better else "worse"
    return "within noise"


def quality(by: dict[tuple[int, str], dict], modes: list[str], seeds: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ref = modes.index("none")
    for task in TASKS:
        num, den = outcomes([[by[(s, m)]["probe"] for s in seeds] for m in modes], task)
        per_seed = ratio_of_sums(num, den)  # [modes, seeds]
        boot = ratio_bootstrap(num, den, N_BOOT, seed=0)  # [n_boot, modes], items and seeds resampled
        for i, mode in enumerate(modes):
            row = {**summarize(per_seed[i]), "per_seed": per_seed[i].tolist(), "ci95": interval(boot[:, i])}
            if mode != "none":
                delta = float(per_seed[i].mean() - per_seed[ref].mean())
                ci = interval(boot[:, i] - boot[:, ref])
                row.update({"delta_vs_none": delta, "delta_ci95": ci, "vs_none": side(ci, HIGHER_IS_BETTER[task]),
                            "relative_gap": abs(delta) / max(abs(float(per_seed[ref].mean())), 1e-9)})
            out.setdefault(mode, {})[task] = row
    return out


# --- the teacher ------------------------------------------------------------------------------------

def single_run(result: dict, task: str) -> dict[str, Any]:
    num, den = outcomes([[result]], task)
    return {"metric": result[task]["metric"], "ci95": interval(ratio_bootstrap(num, den, N_BOOT)[:, 0])}


def teacher_layers(tp: dict, targets: list[int]) -> dict[str, Any]:
    """Each layer alone per task with intervals; best vs worst layer and neighbouring target layers, paired."""
    out: dict[str, Any] = {}
    for task in TASKS:
        layers = tp["layers"][task]
        num, den = outcomes([[{task: layer}] for layer in layers], task)
        boot = ratio_bootstrap(num, den, N_BOOT)  # [n_boot, layers]
        metric = [layer["metric"] for layer in layers]
        rows = [{"layer": k, "metric": m, "ci95": interval(boot[:, k])} for k, m in enumerate(metric)]
        order = np.argsort(metric)
        best, worst = (int(order[-1]), int(order[0])) if HIGHER_IS_BETTER[task] else (int(order[0]), int(order[-1]))
        pairs = [(best, worst)] + [(a, b) for a, b in zip(targets, targets[1:])]
        diffs = []
        for a, b in pairs:
            ci = interval(boot[:, a] - boot[:, b])
            diffs.append({"layers": [a, b], "difference": metric[a] - metric[b], "ci95": ci, "differs": not ci[0] <= 0 <= ci[1]})
        out[task] = {"layers": rows, "best_vs_worst": diffs[0], "target_neighbours": diffs[1:]}
    return out


# --- the verdict ------------------------------------------------------------------------------------

def faster(s: dict[str, Any]) -> str:
    """Is a speed-up (summary over seeds) above 1? 'yes' / 'no' / 'within noise' / 'never reached'."""
    if s["mean"] is None:
        return "never reached none's final loss"
    lo, hi = s["ci95"] if s["ci95"] else (s["mean"], s["mean"])
    verdict = "yes" if lo > 1 else "no" if hi < 1 else "within noise"
    return verdict + ("" if s["n"] == s["of"] else f" (reached in {s['n']} of {s['of']} seeds)") + ("" if s["ci95"] else " (one seed)")


def verdict(sp: dict, q: dict, modes: list[str]) -> dict[str, Any]:
    worse = {m: [t for t in TASKS if q[m][t]["vs_none"] == "worse"] for m in modes if m != "none"}
    fastest = {}
    for teacher in TEACHER:
        for clock in CLOCKS:
            key = f"{teacher}_{clock}_to_ref"
            full = {m: sp[m]["summary"][key]["mean"] for m in modes
                    if sp[m]["summary"][key]["n"] == sp[m]["summary"][key]["of"]}  # reached in every seed
            fastest[f"{teacher}_{clock}"] = min(full, key=full.get) if full else None
    others = [m for m in OTHERS if m in modes]
    keeps = "interleaved" in modes and not worse["interleaved"]
    lose = {m: bool(worse[m]) for m in others}
    if "interleaved" in modes and not keeps:
        claim = "contradicted: interleaved is worse than none on " + ", ".join(worse["interleaved"])
    elif keeps and others and all(lose.values()):
        claim = "supported: interleaved within noise of none (or better); top, gradual and middle each worse on some task"
    else:
        claim = ("not shown: " + ("interleaved keeps none's quality, but " if keeps else "")
                 + ", ".join(f"{m} is not worse on any task" for m, v in lose.items() if not v) + " at this resolution")
    return {"claim": claim, "worse_than_none": worse, "interleaved_keeps_quality": keeps, "others_lose_quality": lose,
            "faster_than_none": {m: faster(sp[m]["summary"]["cached_cpu_speedup"]) for m in modes if m != "none"},
            "faster_than_none_online": {m: faster(sp[m]["summary"]["online_cpu_speedup"]) for m in modes if m != "none"},
            "fastest": fastest}


def analyse(records: list[dict], teacher_probes: dict, modes: list[str], seeds: list[int], window: int) -> dict[str, Any]:
    by = {(r["seed"], r["mode"]): r for r in records}
    sp, q = speed(by, modes, seeds, window), quality(by, modes, seeds)
    targets = list(records[0]["sizes"]["targets"])
    teacher = {"weighted": {t: single_run(teacher_probes["weighted"], t) for t in TASKS},
               "random_init": {t: single_run(teacher_probes["random_init"], t) for t in TASKS},
               "single_layers": teacher_layers(teacher_probes, targets), "student_targets": targets}
    parity = max(r["max_loss_difference_online_vs_cached"] for r in records)
    return {"speed": sp, "quality": q, "teacher": teacher, "verdict": verdict(sp, q, modes), "modes": modes,
            "seeds": seeds, "window": window, "max_loss_difference_online_vs_cached": parity,
            "probe_items": {t: len(records[0]["probe"][t]["test_items"]["num"]) for t in TASKS}}


# --- output -----------------------------------------------------------------------------------------

def study_figures(a: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of benchmarks/results/TABLE.md (targets: the issue's, for interleaved)."""
    from record import figure

    figs = [figure("claim: interleaved keeps quality, top/gradual/middle lose some", a["verdict"]["claim"])]
    for mode in a["modes"]:
        s = a["speed"][mode]["summary"]
        for teacher in TEACHER:
            tgt = (">=", TARGET_SPEEDUP) if mode == "interleaved" and teacher == "cached" else None
            figs.append(figure(f"{mode}: CPU speed-up to none's final loss, {teacher} teacher", s[f"{teacher}_cpu_speedup"]["mean"],
                               "x", tgt, f"mean of {s[f'{teacher}_cpu_speedup']['n']} seeds"))
        for task in TASKS:
            r = a["quality"][mode][task]
            figs.append(figure(f"{mode}: {task} {METRIC[task]}", r["mean"], "", None, f"± {r['std']:.3f} over {r['n']} seeds"))
            if mode == "interleaved":
                figs.append(figure(f"interleaved: {task} gap to none, relative", r["relative_gap"], "", ("<=", TARGET_RELATIVE_GAP)))
    return figs


def _ci(ci, spec: str = ".3f") -> str:
    return "" if not ci else f" [{format(ci[0], spec)}, {format(ci[1], spec)}]"


def _num(x, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _speed_cell(s: dict) -> str:
    reached = "" if s["n"] == s["of"] else f" ({s['n']}/{s['of']})"
    return f"{_num(s['mean'], '.1f')} ± {_num(s['std'], '.1f')}{reached}"


def markdown(a: dict[str, Any], settings: dict, cond: dict, total: dict) -> str:
    v, modes = a["verdict"], a["modes"]
    lines = ["# Stacking study: does interleaved stacking keep the quality of no stacking?", "",
             f"Seeds {a['seeds']}; test items per task {a['probe_items']}; budget `{settings['budget']}` (steps "
             f"{settings['steps']}){'; QUICK smoke run: figures mean little' if settings['quick'] else ''}.",
             f"Conditions: {cond}. Whole study: {total['wall']:.0f} s wall, {total['cpu']:.0f} s CPU.", "",
             f"**Claim: {v['claim']}.**", "", "| question | answer |", "|---|---|",
             "| interleaved keeps none's quality (no task worse beyond the 95% interval) | "
             + ("yes" if v["interleaved_keeps_quality"] else "no: worse on " + ", ".join(v["worse_than_none"].get("interleaved", []))) + " |"]
    lines += [f"| {m} loses quality | " + (", ".join(v["worse_than_none"][m]) or "no task worse") + " |" for m in v["others_lose_quality"]]
    lines += [f"| {m} faster than none (CPU, cached / online teacher) | {v['faster_than_none'][m]} / {v['faster_than_none_online'][m]} |"
              for m in modes if m != "none"]
    lines += [f"| fastest to none's final loss, {k.replace('_', ' ')} | {m} |" for k, m in v["fastest"].items()]
    lines += ["", "## Time to the full-depth run's final loss (seconds, mean ± std over seeds; (k/n): reached in k of n seeds)", "",
              "| mode | steps | CPU cached | speed-up [95%] | wall cached | CPU online | speed-up [95%] | wall online | final loss |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in modes:
        s = a["speed"][m]["summary"]
        lines.append(f"| {m} | {_num(s['steps']['mean'], '.0f')} | {_speed_cell(s['cached_cpu_to_ref'])} | "
                     f"{_num(s['cached_cpu_speedup']['mean'], '.2f')}x{_ci(s['cached_cpu_speedup']['ci95'], '.2f')} | "
                     f"{_speed_cell(s['cached_wall_to_ref'])} | {_speed_cell(s['online_cpu_to_ref'])} | "
                     f"{_num(s['online_cpu_speedup']['mean'], '.2f')}x{_ci(s['online_cpu_speedup']['ci95'], '.2f')} | "
                     f"{_speed_cell(s['online_wall_to_ref'])} | {_num(s['final_loss']['mean'], '.4f')} |")
    lines += ["", f"Online and cached runs give the same losses up to {a['max_loss_difference_online_vs_cached']:.1e}.", "",
              "## Probes (mean ± std over seeds [95% interval, items and seeds resampled]; Δ vs none [95%])", "",
              "| mode | " + " | ".join(f"{t} {METRIC[t]}" for t in TASKS) + " |", "|---" * (len(TASKS) + 1) + "|"]
    for m in modes:
        cells = []
        for t in TASKS:
            r = a["quality"][m][t]
            cell = f"{r['mean']:.3f} ± {r['std']:.3f}{_ci(r['ci95'])}"
            if m != "none":
                cell += f"; Δ {r['delta_vs_none']:+.3f}{_ci(r['delta_ci95'])} {r['vs_none']}"
            cells.append(cell)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    tch = a["teacher"]
    for name in ("weighted", "random_init"):
        lines.append(f"| teacher {name.replace('_', ' ')} | " + " | ".join(
            f"{tch[name][t]['metric']:.3f}{_ci(tch[name][t]['ci95'])}" for t in TASKS) + " |")
    lines += ["", f"## The teacher's layers alone (students regress hidden states {tch['student_targets']})", "",
              "| hidden state | " + " | ".join(f"{t} {METRIC[t]}" for t in TASKS) + " |", "|---" * (len(TASKS) + 1) + "|"]
    layers = tch["single_layers"]
    for k in range(len(layers["ks"]["layers"])):
        lines.append(f"| {k} | " + " | ".join(f"{layers[t]['layers'][k]['metric']:.3f}{_ci(layers[t]['layers'][k]['ci95'])}"
                                             for t in TASKS) + " |")
    lines.append("")
    for t in TASKS:
        d = [layers[t]["best_vs_worst"], *layers[t]["target_neighbours"]]
        lines.append(f"- {t}: " + "; ".join(f"layer {x['layers'][0]} − {x['layers'][1]}: {x['difference']:+.3f}{_ci(x['ci95'])} "
                                            f"({'differs' if x['differs'] else 'within noise'})" for x in d)
                     + " (first pair: best vs worst layer)")
    return "\n".join(lines) + "\n"

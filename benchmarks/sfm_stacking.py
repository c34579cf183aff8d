"""Benchmark: SFM distillation with each stacking operator on the same step budget.

    .venv/bin/python benchmarks/sfm_stacking.py                  # ~10-15 min on 2 CPU cores
    .venv/bin/python benchmarks/sfm_stacking.py --quick          # a smoke run (~2 min)

Steps (all cached under --work, so a rerun skips what exists):
1. a spoken corpus and probe sets synthesized with espeak-ng (tinywave.sfm.synth);
2. a small HuBERT-style teacher pretrained by masked prediction of MFCC k-means units
   (`tinywave sfm pretrain`), probed against a random-init encoder of the same shape;
3. the teacher's targets AND its CNN features are computed once per step and shared by
   every run (stated: cached teacher targets; the students' CNN is the teacher's, frozen),
   so the measured time is the student's own training time, the part stacking shrinks;
4. for op in none / top / gradual / middle / interleaved: a layer-to-layer student
   (3 -> 12 layers; top: 3 -> 6 -> 12) trained with the Prop-1 schedule on the same
   budget, then probed (KS accuracy, SID accuracy, PR PER). ``--budget compute``
   (default): the same transformer compute (layer-steps) as the full-depth run's
   ``--steps``, so stacked runs take more, cheaper steps (interleaved: 1.33x as many);
   ``--budget steps``: the same number of steps for every run.

Printed: wall time (student training seconds) to reach the full-depth run's final loss
(moving average), speed-up vs none, final losses and probe metrics, and the targets of
the issue (interleaved >= 1.2x faster than none, probes within 2 % relative of none and
better than top and gradual). Figures are measured side by side in one run; nothing here
is asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tinywave.cli import main as cli  # noqa: E402
from tinywave.files import load_jsonl  # noqa: E402
from tinywave.sfm.data import load_bank, sample_batch  # noqa: E402
from tinywave.sfm.distill import GrowthPlan, LoopSettings, TeacherTargets, distill  # noqa: E402
from tinywave.sfm.models import build_student, freeze, load_encoder, student_config  # noqa: E402
from tinywave.sfm.probes import ProbeSettings, probe_task  # noqa: E402
from tinywave.sfm.student import Student, uniform_targets  # noqa: E402
from tinywave.sfm.synth import synth_corpus, synth_probes  # noqa: E402
from tinywave.stacking import final_depth, growth_steps, plan_growth, stage_lengths  # noqa: E402

OPS = ("none", "top", "gradual", "middle", "interleaved")


def prepare(work: Path, a: argparse.Namespace) -> tuple[Path, Path, Path]:
    corpus = work / "corpus"
    if not (corpus / "manifest.jsonl").is_file():
        synth_corpus(corpus, a.utterances, seed=0)
    if not (corpus / "probes" / "pr" / "test.jsonl").is_file():
        synth_probes(corpus, per_class=a.per_class, n_pr=a.n_pr, seed=0)
    teacher = work / "teacher"
    if not (teacher / "teacher" / "config.json").is_file():
        t0 = time.perf_counter()
        cli(["sfm", "pretrain", "--manifest", str(corpus / "manifest.jsonl"), "--out", str(teacher),
             f"model.hidden_size={a.teacher_width}", f"model.num_layers={a.teacher_layers}", "model.heads=4",
             f"model.intermediate_size={4 * a.teacher_width}", "model.conv_channels=64", f"train.steps={a.teacher_steps}",
             "train.batch_size=8", "train.crop_seconds=1.5", "train.lr=1e-3", "train.warmup=50", "n_units=50"])
        print(f"teacher pretraining: {time.perf_counter() - t0:.0f} s")
    return corpus / "manifest.jsonl", corpus / "probes", teacher / "teacher"


def probe(encoder, probes: Path, epochs: int) -> dict[str, float]:
    out = {}
    for task in ("ks", "sid", "pr"):
        res = probe_task(encoder, probes, task, ProbeSettings(epochs=epochs, lr=1e-2, seed=0))
        out[task] = res["per"] if task == "pr" else res["accuracy"]
    return out


def op_shape(op: str, a: argparse.Namespace) -> tuple[int, int]:
    """(initial depth, stages) of an operator's run; every run ends at ``a.depth`` layers."""
    init, stages = (a.depth, 1) if op == "none" else (a.init, a.stages if op != "top" else a.top_stages)
    assert final_depth(op, init, stages) == a.depth, (op, init, stages)
    return init, stages


def op_steps(op: str, a: argparse.Namespace) -> int:
    """Steps of an operator's run. ``--budget steps``: ``a.steps`` for all. ``--budget compute``: as many
    steps as make the layer-steps (sum over steps of the depth) equal to the full-depth run's
    ``a.steps * a.depth``, so a shallower start buys more steps for the same transformer compute."""
    if a.budget == "steps" or op == "none":
        return a.steps
    init, stages = op_shape(op, a)
    depths = [init] + [d for d in _depths(op, init, stages)]
    lengths = stage_lengths(10**6, stages, "prop1")
    mean_depth = sum(n * d for n, d in zip(lengths, depths)) / 10**6
    return int(round(a.steps * a.depth / mean_depth))


def _depths(op: str, init: int, stages: int) -> list[int]:
    return [final_depth(op, init, s) for s in range(2, stages + 1)]


def op_plan(op: str, a: argparse.Namespace) -> tuple[int, int, GrowthPlan]:
    init, stages = op_shape(op, a)
    steps = op_steps(op, a)
    plan = GrowthPlan(op, growth_steps(steps, stages, "prop1") if stages > 1 else [],
                      plan_growth(op, init, stages), a.optimizer)
    return init, steps, plan


def finished_run(op: str, a: argparse.Namespace, work: Path) -> dict | None:
    """With ``--reuse``: a run of ``op`` finished earlier (full log + final checkpoint), probed if not yet."""
    out = work / "runs" / op
    _, steps, plan = op_plan(op, a)
    final = out / "checkpoints" / f"step_{steps:07d}"
    if not a.reuse or not (out / "log.jsonl").is_file() or not (final / "trainer_state.json").is_file():
        return None
    rows = load_jsonl(out / "log.jsonl")
    if len(rows) != steps:
        return None
    if not (out / "probe.json").is_file():
        (out / "probe.json").write_text(json.dumps(probe(Student.load(final).encoder.eval(), a.probes, a.epochs)))
    return {"op": op, "plan": plan.steps, "rows": rows, "probe": json.loads((out / "probe.json").read_text())}


def run_op(op: str, teacher, bank, cache: dict, a: argparse.Namespace, work: Path) -> dict:
    init, steps, plan = op_plan(op, a)
    encoder = build_student(teacher, student_config(teacher, a.width, init, 4, 4 * a.width), True, seed=0)
    freeze(encoder.feature_extractor)
    layers = a.targets
    student = Student(encoder, "layer2layer", layers, teacher.config.hidden_size, uniform_targets(init, layers))
    out = work / "runs" / op
    if out.exists():
        import shutil

        shutil.rmtree(out)
    settings = LoopSettings(steps=steps, batch_size=8, crop_samples=32000, lr=1e-3, warmup=40, seed=0,
                            log_every=10**9, save_every=10**9, keep=1)
    summary = distill(student, TeacherTargets(teacher, layers, cache, share_front_end=True), bank, plan, settings, out)
    rows = load_jsonl(out / "log.jsonl")
    metrics = probe(student.encoder.eval(), a.probes, a.epochs)
    (out / "probe.json").write_text(json.dumps(metrics))
    return {"op": op, "plan": plan.steps, "rows": rows, "summary": summary, "probe": metrics}


def smooth(values: list[float], window: int) -> np.ndarray:
    v = np.asarray(values)
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    for i in range(len(v)):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def time_to_reach(rows: list[dict], target: float, window: int, clock: str) -> float | None:
    """``clock`` value (or ``"step"``) at the first step whose moving-average loss is <= ``target``."""
    s = smooth([r["loss"] for r in rows], window)
    hit = np.nonzero(s <= target)[0]
    return None if len(hit) == 0 else float(rows[int(hit[0])][clock])


def _fmt(x: float | None, spec: str) -> str:
    return format(float("nan") if x is None else x, spec)


def report(results: dict[str, dict], a: argparse.Namespace, teacher_probe: dict, random_probe: dict) -> dict:
    ref_rows = results["none"]["rows"]
    ref_loss = float(smooth([r["loss"] for r in ref_rows], a.window)[-1])
    table = {}
    print(f"\nreference: full-depth (none) final loss {ref_loss:.4f} (moving average over {a.window} steps)")
    print("times: wall = student training wall seconds; cpu = process CPU seconds (robust to other jobs)")
    print(f"{'op':<12}{'steps':>6}{'wall s':>8}{'cpu s':>8}{'wall->ref':>10}{'cpu->ref':>10}{'speed-up':>10}{'(cpu)':>8}"
          f"{'final loss':>11}{'KS acc':>8}{'SID acc':>8}{'PR PER':>8}")
    for op, r in results.items():
        row = {"final_loss": float(smooth([x["loss"] for x in r["rows"]], a.window)[-1]), **r["probe"],
               "growth_steps": r["plan"], "steps": len(r["rows"]),
               "step_to_ref": time_to_reach(r["rows"], ref_loss, a.window, "step")}
        for clock in ("train_seconds", "cpu_seconds"):
            ref_time = time_to_reach(ref_rows, ref_loss, a.window, clock)
            reach = time_to_reach(r["rows"], ref_loss, a.window, clock)
            row[f"{clock}_total"] = r["rows"][-1][clock]
            row[f"{clock}_to_ref"] = reach
            row[f"{clock}_speedup"] = None if reach is None else ref_time / reach
            row[f"{clock}_total_ratio"] = ref_rows[-1][clock] / r["rows"][-1][clock]
        table[op] = row
        print(f"{op:<12}{row['steps']:>6}{row['train_seconds_total']:>8.1f}{row['cpu_seconds_total']:>8.1f}"
              f"{_fmt(row['train_seconds_to_ref'], '>10.1f')}{_fmt(row['cpu_seconds_to_ref'], '>10.1f')}"
              f"{_fmt(row['train_seconds_speedup'], '>9.2f')}x{_fmt(row['cpu_seconds_speedup'], '>7.2f')}x"
              f"{row['final_loss']:>11.4f}{row['ks']:>8.3f}{row['sid']:>8.3f}{row['pr']:>8.3f}")
    for name, p in (("teacher", teacher_probe), ("random init", random_probe)):
        print(f"{name:<12}{'':>71}{p['ks']:>8.3f}{p['sid']:>8.3f}{p['pr']:>8.3f}")
    inter, none = table["interleaved"], table["none"]
    rel = {t: abs(inter[t] - none[t]) / max(abs(none[t]), 1e-9) for t in ("ks", "sid", "pr")}
    better = {f"{t} vs {o}": (inter[t] < table[o][t]) if t == "pr" else (inter[t] > table[o][t])
              for o in ("top", "gradual") if o in table for t in ("ks", "sid", "pr")}
    print("\ntargets:")
    print(f"  interleaved speed-up to the full-depth loss: wall {_fmt(inter['train_seconds_speedup'], '.2f')}x, "
          f"cpu {_fmt(inter['cpu_seconds_speedup'], '.2f')}x (target >= 1.2x); whole-run time ratio none/interleaved: "
          f"wall {inter['train_seconds_total_ratio']:.2f}x, cpu {inter['cpu_seconds_total_ratio']:.2f}x")
    if inter["cpu_seconds_to_ref"] is not None:  # the teacher's cost per step is the same for every operator
        online = ((none["cpu_seconds_to_ref"] + a.teacher_cpu_per_step * none["step_to_ref"])
                  / (inter["cpu_seconds_to_ref"] + a.teacher_cpu_per_step * inter["step_to_ref"]))
        print(f"  the same with an online teacher ({a.teacher_cpu_per_step:.3f} cpu s per step added): {online:.2f}x")
    print("  probes within 2 % (relative) of none: " + ", ".join(f"{t} {100 * v:.1f} %" for t, v in rel.items()))
    print("  interleaved better than: " + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in better.items()))
    return {"table": table, "reference_loss": ref_loss, "relative_probe_gap": rel, "better": better,
            "teacher_probe": teacher_probe, "random_init_probe": random_probe, "teacher_cpu_seconds_per_step": a.teacher_cpu_per_step,
            "budget": a.budget}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/tinywave-bench-sfm", help="cache folder (corpus, teacher, runs)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, figures mean little")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--optimizer", default="copy")
    ap.add_argument("--budget", choices=("compute", "steps"), default="compute",
                    help="compute: every run gets the full-depth run's layer-steps (stacked runs take more, "
                         "cheaper steps); steps: the same number of steps for all")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse runs finished earlier in --work (full log + final checkpoint) instead of retraining; "
                         "lets several processes each train some --ops, then one report over all")
    a = ap.parse_args()
    a.utterances, a.per_class, a.n_pr, a.teacher_steps, a.teacher_width, a.teacher_layers = 240, 24, 120, 400, 192, 4
    a.width, a.depth, a.init, a.stages, a.top_stages, a.targets = 128, 12, 3, 4, 3, [2, 3, 4]
    a.epochs, a.window = 40, 20
    if a.quick:
        a.utterances, a.per_class, a.n_pr, a.teacher_steps, a.steps, a.epochs, a.window = 40, 6, 20, 20, 40, 10, 5
        a.work = a.work + "-quick"
    logging.basicConfig(level=logging.WARNING)
    # one thread: on a shared 2-core machine two OpenMP threads spin against other jobs (3-5x slower)
    torch.set_num_threads(a.threads)
    sys.stdout.reconfigure(line_buffering=True)
    torch.manual_seed(0)
    work = Path(a.work)
    manifest, a.probes, teacher_dir = prepare(work, a)
    teacher = freeze(load_encoder(teacher_dir))
    t0 = time.perf_counter()
    cached = work / "teacher_probes.json"
    if cached.is_file():
        teacher_probe, random_probe = json.loads(cached.read_text())
    else:
        teacher_probe = probe(teacher, a.probes, a.epochs)
        torch.manual_seed(0)
        random_probe = probe(type(teacher)(teacher.config).eval(), a.probes, a.epochs)
        cached.write_text(json.dumps([teacher_probe, random_probe]))
    print(f"teacher probes {teacher_probe}; random-init encoder {random_probe} ({time.perf_counter() - t0:.0f} s)")
    results = {op: r for op in a.ops.split(",") if (r := finished_run(op, a, work)) is not None}
    todo = [op for op in a.ops.split(",") if op not in results]
    print(f"reused finished runs: {sorted(results) or 'none'}; to train: {todo or 'none'}")
    bank = load_bank(manifest)
    cache: dict = {}
    t0, c0 = time.perf_counter(), time.process_time()
    targets = TeacherTargets(teacher, a.targets, cache, share_front_end=True)
    n_cached = max([op_steps(op, a) for op in todo], default=0)
    for step in range(n_cached):  # the same batches every run sees (a pure function of seed and step)
        targets(step, sample_batch(bank, 8, 32000, 0, step, 320))
    cost_file = work / "teacher_cost.json"
    if n_cached:
        a.teacher_cpu_per_step = (time.process_time() - c0) / n_cached
        cost_file.write_text(json.dumps({"cpu_seconds_per_step": a.teacher_cpu_per_step}))
        print(f"teacher targets + CNN features for {n_cached} steps: {time.perf_counter() - t0:.1f} s wall, "
              f"{a.teacher_cpu_per_step * n_cached:.1f} s cpu (a fixed cost of every run, cached)")
    else:
        a.teacher_cpu_per_step = json.loads(cost_file.read_text())["cpu_seconds_per_step"] if cost_file.is_file() else 0.0
    for op in todo:
        t1 = time.perf_counter()
        results[op] = run_op(op, teacher, bank, cache, a, work)
        last = results[op]["rows"][-1]
        print(f"{op}: done in {time.perf_counter() - t1:.0f} s (student training {last['train_seconds']:.1f} s wall, "
              f"{last['cpu_seconds']:.1f} s cpu); probes {results[op]['probe']}")
    print(f"all runs: {time.perf_counter() - t0:.0f} s")
    results = {op: results[op] for op in a.ops.split(",")}  # table in --ops order
    if {"none", "interleaved"} - set(results):
        print("the report needs the none and interleaved runs; rerun with them in --ops (and --reuse)")
        return
    summary = report(results, a, teacher_probe, random_probe)
    (work / "results.json").write_text(json.dumps(summary, indent=1))
    print(f"\nresults -> {work / 'results.json'}")


if __name__ == "__main__":
    main()

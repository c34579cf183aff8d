"""Study: does interleaved stacking keep the quality of full-depth SFM distillation while the
other stacking methods (top, gradual, middle) lose some, and which is fastest?

    nice -n 19 .venv/bin/python benchmarks/sfm_stacking.py --seeds 0 1 2     # the full study, ~3 h of one core
    .venv/bin/python benchmarks/sfm_stacking.py --quick --work /tmp/q --out /tmp/q/sfm_stacking.json  # ~20 CPU s

The claim (interleaved stacking, arXiv 2606.11766): existing stacking methods speed SFM
distillation up but lose quality; interleaved stacking keeps each layer's position (its
teacher target) and so keeps the quality. Everything is cached under ``--work``:

1. data: a training corpus (``tinywave corpus synth``, the six training voices) and probe
   sets (``tinywave corpus benchmarks --only probes --items N``: N test items per task,
   3N train, N/2 dev; test sentences never in train);
2. a HuBERT-style teacher (``tinywave sfm pretrain``, seed 0), probed on the weighted sum
   of its layers, on each layer alone (do its layers differ enough for layer positions to
   matter?) and next to a random-init encoder of its shape;
3. for each seed (student init, batch order, probe heads), the modes in order none, top,
   gradual, middle, interleaved, each trained twice under the same conditions: with the
   teacher's targets cached for the seed's batches before the runs, and with the teacher
   run online inside every step (the two must give the same losses: checked); the cached
   run's student is probed (KS accuracy, SID accuracy, PR PER).

Reported (printed, ``--out`` JSON and a Markdown file beside it): per mode, wall and CPU
seconds to reach the full-depth (none) run's final loss of the same seed (moving average),
cached and online, and the speed-up over none; probe metrics as mean ± std over seeds with
95% intervals (items and seeds resampled, ``tinywave.eval.stats.ratio_bootstrap``); the
difference from none with its interval; and the verdict against the claim. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
import transformers  # noqa: E402

from stacking_report import METRIC, TASKS, analyse, markdown, study_figures  # noqa: E402
from tinywave.cli import main as cli  # noqa: E402
from tinywave.corpus.voices import TRAINING_POOL  # noqa: E402
from tinywave.files import load_jsonl  # noqa: E402
from tinywave.sfm.data import load_bank, sample_batch  # noqa: E402
from tinywave.sfm.distill import GrowthPlan, LoopSettings, TeacherTargets, distill  # noqa: E402
from tinywave.sfm.models import build_student, downsample_rate, freeze, load_encoder, student_config  # noqa: E402
from tinywave.sfm.probes import ProbeSettings, probe_each_layer, task_data, train_head  # noqa: E402
from tinywave.sfm.student import Student, uniform_targets  # noqa: E402
from tinywave.stacking import final_depth, growth_steps, plan_growth, stage_lengths  # noqa: E402

MODES = ("none", "top", "gradual", "middle", "interleaved")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size of the study in one place (``FULL``, or ``QUICK`` for a smoke run)."""

    stories: int = 120  # training corpus, ~14 s each
    probe_items: int = 500  # test items per probe task
    teacher_width: int = 192
    teacher_layers: int = 4
    teacher_steps: int = 400
    teacher_batch: int = 8
    teacher_crop: float = 1.5
    conv_channels: int = 64
    n_units: int = 50
    width: int = 128  # student
    depth: int = 12
    init: int = 3  # initial depth of the stacked runs
    stages: int = 4  # 3 -> 6 -> 9 -> 12
    top_stages: int = 3  # top doubles: 3 -> 6 -> 12
    targets: tuple[int, ...] = (2, 3, 4)  # teacher hidden states the student regresses
    steps: int = 300  # the full-depth run's steps
    batch: int = 8
    crop: int = 32000
    warmup: int = 40
    epochs: int = 40  # probe heads
    window: int = 20  # moving average of the loss


FULL = Sizes()
# quick: 1 -> 2 -> 3 -> 4 layers (top 1 -> 2 -> 4), so every operator grows differently
QUICK = Sizes(stories=6, probe_items=4, teacher_width=32, teacher_layers=2, teacher_steps=20, teacher_batch=4,
              teacher_crop=1.0, conv_channels=16, n_units=8, width=16, depth=4, init=1, stages=4, top_stages=3,
              targets=(2,), steps=24, batch=4, crop=8000, warmup=2, epochs=3, window=3)


def cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (resource usage: user + system)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _run_cli(argv: list[str]) -> None:
    code = cli(argv)
    if code:
        raise SystemExit(f"`tinywave {' '.join(argv)}` failed with exit code {code}")


def prepare(work: Path, z: Sizes) -> tuple[Path, Path, Path, dict]:
    """(training manifest, probe sets folder, teacher folder, seconds spent) under ``work``, built once."""
    spent, t0, c0 = {}, time.perf_counter(), cpu_seconds()
    corpus, bench, teacher = work / "corpus", work / "bench", work / "teacher"
    if not (corpus / "manifest.jsonl").is_file():
        _run_cli(["corpus", "synth", "--out", str(corpus), "--stories", str(z.stories), "--workers", "1",
                  *[a for v in TRAINING_POOL for a in ("--voices", v)]])
    if not (bench / "probes" / "pr" / "test.jsonl").is_file():
        _run_cli(["corpus", "benchmarks", "--out", str(bench), "--only", "probes", "--items", str(z.probe_items),
                  "--workers", "1"])
    spent["data"] = {"wall": time.perf_counter() - t0, "cpu": cpu_seconds() - c0}
    t0, c0 = time.perf_counter(), cpu_seconds()
    if not (teacher / "teacher" / "config.json").is_file():
        _run_cli(["sfm", "pretrain", "--manifest", str(corpus / "manifest.jsonl"), "--out", str(teacher),
                  f"model.width={z.teacher_width}", f"model.n_layers={z.teacher_layers}",
                  f"model.heads={max(2, z.teacher_width // 48)}", f"model.ffn={4 * z.teacher_width}",
                  f"model.conv_channels={z.conv_channels}", f"train.steps={z.teacher_steps}",
                  f"data.batch_size={z.teacher_batch}", f"data.crop_seconds={z.teacher_crop}", "optim.lr=1e-3",
                  f"optim.warmup_steps={min(50, z.teacher_steps // 4)}", f"n_units={z.n_units}"])
    spent["teacher"] = {"wall": time.perf_counter() - t0, "cpu": cpu_seconds() - c0}
    return corpus / "manifest.jsonl", bench / "probes", teacher / "teacher", spent


# --- the modes' growth plans --------------------------------------------------------------------

def mode_shape(mode: str, z: Sizes) -> tuple[int, int]:
    """(initial depth, stages) of a mode's run; every run ends at ``z.depth`` layers."""
    init, stages = (z.depth, 1) if mode == "none" else (z.init, z.top_stages if mode == "top" else z.stages)
    if final_depth(mode, init, stages) != z.depth:
        raise ValueError(f"{mode}: {init} layers in {stages} stages do not end at depth {z.depth}; change Sizes")
    return init, stages


def mode_steps(mode: str, z: Sizes, budget: str) -> int:
    """``budget="steps"``: ``z.steps`` for every mode. ``"compute"``: as many steps as give the same
    layer-steps (sum over steps of the depth) as the full-depth run's ``z.steps * z.depth``."""
    init, stages = mode_shape(mode, z)
    if budget == "steps" or stages == 1:
        return z.steps
    depths = [init] + [final_depth(mode, init, s) for s in range(2, stages + 1)]
    lengths = stage_lengths(10**6, stages, "prop1")
    mean_depth = sum(n * d for n, d in zip(lengths, depths)) / 10**6
    return int(round(z.steps * z.depth / mean_depth))


def mode_plan(mode: str, z: Sizes, budget: str) -> tuple[int, int, GrowthPlan]:
    init, stages = mode_shape(mode, z)
    steps = mode_steps(mode, z, budget)
    grows = growth_steps(steps, stages, "prop1") if stages > 1 else []
    return init, steps, GrowthPlan(mode, grows, plan_growth(mode, init, stages), "copy")


# --- one (seed, mode): cached run, online run, probes ----------------------------------------------

def train(mode: str, seed: int, teacher, bank, cache: dict | None, z: Sizes, budget: str, out: Path) -> tuple[Student, dict]:
    """One distillation run from scratch; (final student, its log rows and whole-run seconds)."""
    import shutil

    init, steps, plan = mode_plan(mode, z, budget)
    encoder = build_student(teacher, student_config(teacher, z.width, init, max(2, z.width // 32), 4 * z.width), True, seed=seed)
    freeze(encoder.feature_extractor)
    student = Student(encoder, "layer2layer", list(z.targets), teacher.config.hidden_size, uniform_targets(init, list(z.targets)))
    shutil.rmtree(out, ignore_errors=True)
    settings = LoopSettings(steps=steps, batch_size=z.batch, crop_samples=z.crop, lr=1e-3, warmup_steps=z.warmup, seed=seed,
                            log_every=1, ckpt_every=10**9, keep_checkpoints=1)
    load, t0, c0 = os.getloadavg()[0], time.perf_counter(), cpu_seconds()
    distill(student, TeacherTargets(teacher, list(z.targets), cache, share_front_end=True), bank, plan, settings, out)
    rows = [{k: r[k] for k in ("step", "loss", "depth", "train_seconds", "cpu_seconds")} for r in load_jsonl(out / "train_log.jsonl")]
    return student, {"rows": rows, "growth_steps": plan.steps, "run_wall": time.perf_counter() - t0,
                     "run_cpu": cpu_seconds() - c0, "load_average_at_start": load}


def probe(encoder, probes: Path, z: Sizes, seed: int) -> dict:
    """Weighted-sum probes of every task: metric, per-item test outcomes, layer weights."""
    out = {}
    for task in TASKS:
        data, n = task_data(encoder, probes, task)
        res = train_head(data, task, n, ProbeSettings(epochs=z.epochs, lr=1e-2, seed=seed))
        out[task] = {"metric": res[METRIC[task]], "test_items": res["test_items"], "layer_weights": res["layer_weights"]}
    return out


def fill_cache(teacher, bank, z: Sizes, seed: int, steps: int) -> tuple[dict, dict]:
    """The teacher's targets + CNN features of the seed's first ``steps`` batches, and what they cost."""
    cache: dict = {}
    targets = TeacherTargets(teacher, list(z.targets), cache, share_front_end=True)
    stride = downsample_rate(teacher.config)
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(steps):  # the batches every run sees: a pure function of (seed, step)
        targets(step, sample_batch(bank, z.batch, z.crop, seed, step, stride))
    return cache, {"steps": steps, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}


def record_path(work: Path, seed: int, mode: str) -> Path:
    return work / "runs" / f"seed{seed}" / mode / "record.json"


def run_seed_mode(mode: str, seed: int, teacher, bank, cache: dict, ctx: argparse.Namespace) -> dict:
    """Cached run, online run and probes of one (seed, mode); reused from ``--work`` with ``--reuse``."""
    record_file = record_path(ctx.work, seed, mode)
    folder = record_file.parent
    if ctx.reuse and record_file.is_file():
        record = json.loads(record_file.read_text())
        if record["sizes"] != json.loads(json.dumps(dataclasses.asdict(ctx.sizes))) or record["budget"] != ctx.budget:  # as JSON: tuples are lists
            raise SystemExit(f"{record_file} was made with other sizes or budget; delete {ctx.work / 'runs'} "
                             "or choose another --work")
        return record
    student, cached = train(mode, seed, teacher, bank, cache, ctx.sizes, ctx.budget, folder / "cached")
    _, online = train(mode, seed, teacher, bank, None, ctx.sizes, ctx.budget, folder / "online")
    parity = max(abs(a["loss"] - b["loss"]) for a, b in zip(cached["rows"], online["rows"]))
    t0 = time.perf_counter()
    probes = probe(student.encoder.eval(), ctx.probes, ctx.sizes, seed)
    record = {"seed": seed, "mode": mode, "sizes": dataclasses.asdict(ctx.sizes), "budget": ctx.budget,
              "cached": cached, "online": online, "max_loss_difference_online_vs_cached": parity,
              "probe": probes, "probe_wall": time.perf_counter() - t0}
    record_file.write_text(json.dumps(record))
    last = cached["rows"][-1]
    print(f"seed {seed} {mode:<12} {len(cached['rows'])} steps: cached {last['cpu_seconds']:.1f} cpu s, online "
          f"{online['rows'][-1]['cpu_seconds']:.1f} cpu s (|loss diff| {parity:.1e}); "
          + ", ".join(f"{t} {probes[t]['metric']:.3f}" for t in TASKS))
    return record


# --- the teacher: weighted, layer by layer, random init -------------------------------------------

def probe_teacher(teacher, ctx: argparse.Namespace) -> dict:
    """Weighted-sum and single-layer probes of the teacher, and a random-init encoder of its shape."""
    cached = ctx.work / "teacher_probes.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    settings = ProbeSettings(epochs=ctx.sizes.epochs, lr=1e-2, seed=0)
    out: dict = {"weighted": {}, "layers": {}}
    for task in TASKS:
        data, n = task_data(teacher, ctx.probes, task)
        res = train_head(data, task, n, settings)
        out["weighted"][task] = {"metric": res[METRIC[task]], "test_items": res["test_items"], "layer_weights": res["layer_weights"]}
        out["layers"][task] = [{"layer": r["layer"], "metric": r[METRIC[task]], "test_items": r["test_items"]}
                               for r in probe_each_layer(data, task, n, settings)]
    torch.manual_seed(0)
    out["random_init"] = probe(type(teacher)(teacher.config).eval(), ctx.probes, ctx.sizes, 0)
    cached.write_text(json.dumps(out))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="student seeds (default: 0 1 2; --quick: 0)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="modes to run (none is the reference)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one seed, 4 probe items: checks the study runs")
    ap.add_argument("--work", default="", help="cache folder (default: /tmp/tinywave-sfm-stacking[-quick])")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/sfm_stacking.json; "
                                              "the Markdown goes beside it)")
    ap.add_argument("--budget", choices=("compute", "steps"), default="compute",
                    help="compute: every run gets the full-depth run's layer-steps (stacked runs take more, cheaper "
                         "steps); steps: the same number of steps for every run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: two threads thrash on a shared 2-core box)")
    ap.add_argument("--reuse", action="store_true", help="keep (seed, mode) runs finished earlier in --work")
    a = ap.parse_args(argv)
    if "none" not in a.modes:
        ap.error("--modes must include none: every time and quality is measured against the full-depth run")
    a.seeds = a.seeds if a.seeds is not None else ([0] if a.quick else [0, 1, 2])
    a.sizes = QUICK if a.quick else FULL
    a.work = Path(a.work or f"/tmp/tinywave-sfm-stacking{'-quick' if a.quick else ''}")
    a.out = Path(a.out) if a.out else HERE / "results" / "sfm_stacking.json"
    return a


def main(argv: list[str] | None = None) -> int:
    from conditions import conditions
    from record import write_results

    ctx = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()  # no bar per checkpoint written
    torch.set_num_threads(ctx.threads)
    sys.stdout.reconfigure(line_buffering=True)
    t_start, c_start, load_start = time.perf_counter(), cpu_seconds(), os.getloadavg()
    manifest, ctx.probes, teacher_dir, spent = prepare(ctx.work, ctx.sizes)
    teacher = freeze(load_encoder(teacher_dir))
    teacher_probes = probe_teacher(teacher, ctx)
    bank = load_bank(manifest)
    records, costs = [], {}
    for seed in ctx.seeds:  # modes interleaved seed by seed, so a change of load hits every mode alike
        todo = [m for m in ctx.modes if not (ctx.reuse and record_path(ctx.work, seed, m).is_file())]
        steps = max([mode_steps(m, ctx.sizes, ctx.budget) for m in todo], default=0)
        cache, costs[seed] = fill_cache(teacher, bank, ctx.sizes, seed, steps)
        records += [run_seed_mode(mode, seed, teacher, bank, cache, ctx) for mode in ctx.modes]
        del cache
    analysis = analyse(records, teacher_probes, ctx.modes, ctx.seeds, ctx.sizes.window)
    total = {"wall": time.perf_counter() - t_start, "cpu": cpu_seconds() - c_start}
    settings = {"quick": ctx.quick, "seeds": ctx.seeds, "modes": ctx.modes, "budget": ctx.budget,
                "sizes": dataclasses.asdict(ctx.sizes), "work": str(ctx.work),
                "steps": {m: mode_steps(m, ctx.sizes, ctx.budget) for m in ctx.modes},
                "probe_items": {t: analysis["probe_items"][t] for t in TASKS}}
    cond = conditions("fp32", ctx.threads, load_average_at_start=[round(x, 2) for x in load_start])
    text = markdown(analysis, settings, cond, total)
    print(text)
    write_results("sfm_stacking", study_figures(analysis), cond, ctx.out, settings=settings, analysis=analysis,
                  seconds={"prepare": spent, "teacher_targets_cache": costs, "total": total})
    ctx.out.with_suffix(".md").write_text(text)
    print(f"markdown -> {ctx.out.with_suffix('.md')}; whole study {total['wall']:.0f} s wall, {total['cpu']:.0f} s cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The stacking study (benchmarks/sfm_stacking.py): its verdict logic on made-up run records, and
the real script end to end in --quick mode, checked through the JSON it writes."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from stacking_report import TASKS, analyse, markdown, study_figures, time_to_reach  # noqa: E402

MODES = ["none", "top", "gradual", "middle", "interleaved"]
N_ITEMS = 200


def _rows(losses: list[float]) -> list[dict]:
    return [{"step": i + 1, "loss": x, "depth": 4, "train_seconds": 0.2 * (i + 1), "cpu_seconds": 0.1 * (i + 1)}
            for i, x in enumerate(losses)]


def _probe(correct: int, pr_errors: int) -> dict:
    """``correct`` of N_ITEMS right on ks and sid; pr: ``pr_errors`` edits over 10 phones per item."""
    hits = [1.0] * correct + [0.0] * (N_ITEMS - correct)
    edits = [float(pr_errors)] * N_ITEMS
    return {"ks": {"metric": correct / N_ITEMS, "test_items": {"num": hits, "den": [1.0] * N_ITEMS}},
            "sid": {"metric": correct / N_ITEMS, "test_items": {"num": hits, "den": [1.0] * N_ITEMS}},
            "pr": {"metric": pr_errors / 10, "test_items": {"num": edits, "den": [10.0] * N_ITEMS}}}


def _records(quality: dict[str, tuple[int, int]], reach: dict[str, int | None]) -> list[dict]:
    """Two seeds; none's loss falls 2 -> 1 over 100 steps; a mode reaches 1.0 at step ``reach[mode]`` (None: never)."""
    out = []
    for seed in (0, 1):
        for mode in MODES:
            end = reach[mode]
            losses = (list(np.linspace(2.0, 1.0, end)) + [1.0] * (100 - end)) if end else list(np.linspace(2.0, 1.5, 100))
            out.append({"seed": seed, "mode": mode, "sizes": {"targets": [1, 2]}, "cached": {"rows": _rows(losses)},
                        "online": {"rows": _rows(losses)}, "max_loss_difference_online_vs_cached": 0.0,
                        "probe": _probe(*quality[mode])})
    return out


def _teacher() -> dict:
    layer = lambda c, e: {task: r for task, r in _probe(c, e).items()}  # noqa: E731
    layers = [layer(60, 9), layer(120, 6), layer(180, 3)]
    return {"weighted": _probe(180, 3), "random_init": _probe(40, 9),
            "layers": {t: [{"layer": k, **layers[k][t]} for k in range(3)] for t in TASKS}}


def test_time_to_reach_reads_the_clock_at_the_first_step_of_the_moving_average():
    rows = _rows([3.0, 2.0, 1.0, 1.0, 1.0])
    assert time_to_reach(rows, 1.0, 1, "cpu_seconds") == pytest.approx(0.3)
    assert time_to_reach(rows, 1.0, 2, "step") == 4  # (1 + 1) / 2 first at step 4
    assert time_to_reach(rows, 0.5, 1, "cpu_seconds") is None


def test_verdict_supports_the_claim_when_only_interleaved_keeps_quality():
    quality = {"none": (140, 3), "top": (100, 3), "gradual": (140, 5), "middle": (100, 5), "interleaved": (140, 3)}
    a = analyse(_records(quality, {"none": 100, "top": None, "gradual": 40, "middle": 60, "interleaved": 50}),
                _teacher(), MODES, [0, 1], window=1)
    v = a["verdict"]
    assert v["claim"].startswith("supported")
    assert v["worse_than_none"] == {"top": ["ks", "sid"], "gradual": ["pr"], "middle": ["ks", "sid", "pr"], "interleaved": []}
    assert a["quality"]["interleaved"]["ks"]["vs_none"] == "within noise"
    assert a["speed"]["interleaved"]["summary"]["cached_cpu_speedup"]["mean"] == pytest.approx(2.0)
    assert v["faster_than_none"]["top"].startswith("never reached")
    assert v["faster_than_none"]["interleaved"] == "yes"
    assert v["fastest"]["cached_cpu"] == "gradual"
    layers = a["teacher"]["single_layers"]["ks"]
    assert layers["best_vs_worst"]["layers"] == [2, 0] and layers["best_vs_worst"]["differs"]
    text = markdown(a, {"budget": "compute", "steps": {}, "quick": False}, {"cpu": "test"}, {"wall": 1.0, "cpu": 1.0})
    assert "**Claim: supported" in text and "| top loses quality | ks, sid |" in text
    gap = next(f for f in study_figures(a) if f["name"] == "interleaved: ks gap to none, relative")
    assert gap["value"] == 0.0 and gap["target"] == {"op": "<=", "value": 0.02}


def test_verdict_contradicts_the_claim_when_interleaved_is_worse():
    quality = {"none": (140, 3), "top": (100, 5), "gradual": (100, 5), "middle": (100, 5), "interleaved": (140, 4)}
    a = analyse(_records(quality, dict.fromkeys(MODES, 100)), _teacher(), MODES, [0, 1], window=1)
    assert a["verdict"]["claim"] == "contradicted: interleaved is worse than none on pr"
    assert a["quality"]["interleaved"]["pr"]["delta_vs_none"] == pytest.approx(0.1)


def test_verdict_does_not_show_the_claim_when_the_others_keep_quality_too():
    quality = dict.fromkeys(MODES, (140, 3))
    a = analyse(_records(quality, dict.fromkeys(MODES, 100)), _teacher(), MODES, [0, 1], window=1)
    assert a["verdict"]["claim"].startswith("not shown: interleaved keeps none's quality, but top is not worse")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~20 CPU seconds; the wall time is whatever share of the CPU the machine gives
def test_quick_study_writes_every_mode_s_figures(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path / "results" / "sfm_stacking.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sfm_stacking.py"), "--quick", "--work",
                           str(tmp_path / "work"), "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["script"] == "sfm_stacking" and r["settings"]["quick"] and r["settings"]["seeds"] == [0]
    assert {"cpu", "cpu_flags", "cores", "threads", "precision", "torch", "commit", "date"} <= set(r["conditions"])
    a = r["analysis"]
    assert a["modes"] == MODES
    assert a["max_loss_difference_online_vs_cached"] == 0.0  # the online teacher gives the cached targets exactly
    for mode in MODES:
        run = a["speed"][mode]["per_seed"][0]
        assert run["steps"] == r["settings"]["steps"][mode]
        assert run["cached_cpu_total"] > 0 and run["online_cpu_total"] > 0 and run["final_loss"] > 0
        for task in TASKS:
            q = a["quality"][mode][task]
            assert np.isfinite(q["mean"]) and len(q["ci95"]) == 2
            assert mode == "none" or q["vs_none"] in ("better", "worse", "within noise")
        assert sum(f["name"].startswith(f"{mode}:") for f in r["figures"]) >= 5
    assert r["settings"]["steps"]["none"] < r["settings"]["steps"]["interleaved"]  # same compute, cheaper steps
    assert a["speed"]["none"]["summary"]["cached_cpu_speedup"]["mean"] == 1.0
    assert all(len(a["teacher"]["single_layers"][t]["layers"]) == 3 for t in TASKS)  # 2-layer teacher: 3 hidden states
    assert a["probe_items"] == {"ks": 4, "sid": 4, "pr": 4}
    assert a["verdict"]["claim"].split(":")[0] in ("supported", "contradicted", "not shown")
    assert "# Stacking study" in out.with_suffix(".md").read_text()
    # a rerun with --reuse reads every (seed, mode) record back (JSON turns the sizes' tuples into lists) and trains nothing
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sfm_stacking.py"), "--quick", "--reuse", "--work",
                            str(tmp_path / "work"), "--out", str(tmp_path / "again.json")], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "again.json").read_text())["analysis"]["quality"] == a["quality"]

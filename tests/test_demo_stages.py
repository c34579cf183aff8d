"""Stage bookkeeping of `tinywave demo` / `demo-assets` (tinywave/demo/stages.py), with stages that
write small files: a stage reruns when its configuration changed or a stage it reads ran after
it, and nothing else reruns."""

from __future__ import annotations

import json

import pytest

from tinywave.demo.stages import Stages, busy_seconds

DEPENDS = {
    "corpus": lambda c: c["stories"],
    "teacher": lambda c: c["teacher_steps"],
    "students": lambda c: c["student_steps"],
    "eval": lambda c: c["seeds"],
}
UPSTREAM = {
    "corpus": (),
    "vocoder": ("corpus",),
    "teacher": ("corpus",),
    "students": ("teacher",),
    "export": ("students:{instance}",),
    "eval": ("export:*", "teacher"),
}


def pipeline(out, config: dict, ran: list[str]) -> Stages:
    """A small demo-shaped pipeline; every stage appends its name to ``ran`` and writes a file into its folder."""
    stages = Stages(out, config, DEPENDS, UPSTREAM)

    def stage(name: str) -> None:
        folder = out / name.replace(":", "_")

        def fn() -> dict:
            ran.append(name)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "made").write_text(json.dumps(config))
            return {}

        stages.run(name, fn, clear=[folder])

    for name in ("corpus", "vocoder", "teacher"):
        stage(name)
    for seed in config["seeds"]:
        stage(f"students:s{seed}")
        stage(f"export:s{seed}")
    stage("eval")
    return stages


CONFIG = {"stories": 10, "teacher_steps": 5, "student_steps": 3, "seeds": [0, 1]}
EVERYTHING = ["corpus", "vocoder", "teacher", "students:s0", "export:s0", "students:s1", "export:s1", "eval"]


def test_a_finished_pipeline_reruns_nothing(tmp_path):
    ran: list[str] = []
    pipeline(tmp_path, CONFIG, ran)
    assert ran == EVERYTHING
    ran.clear()
    pipeline(tmp_path, CONFIG, ran)
    assert ran == []


@pytest.mark.parametrize("change, expected", [
    ({"student_steps": 4}, ["students:s0", "export:s0", "students:s1", "export:s1", "eval"]),  # not the teacher or vocoder
    ({"teacher_steps": 6}, ["teacher", "students:s0", "export:s0", "students:s1", "export:s1", "eval"]),  # not the vocoder
    ({"stories": 11}, EVERYTHING),
    ({"seeds": [0, 1, 2]}, ["students:s2", "export:s2", "eval"]),  # only the new seed's runs, then what reads every seed
    ({"seeds": [0]}, ["eval"]),
])
def test_a_change_reruns_its_stage_and_downstream_only(tmp_path, change, expected):
    ran: list[str] = []
    pipeline(tmp_path, CONFIG, ran)
    ran.clear()
    pipeline(tmp_path, {**CONFIG, **change}, ran)
    assert ran == expected


def test_a_rerun_stage_starts_from_a_cleared_folder_and_an_interrupted_one_keeps_its_files(tmp_path):
    pipeline(tmp_path, CONFIG, [])
    leftover = tmp_path / "students_s0" / "old_checkpoint"
    leftover.write_text("from the 3-step run")
    pipeline(tmp_path, {**CONFIG, "student_steps": 4}, [])
    assert not leftover.exists()  # outputs of the old configuration never mix with the new

    stages = Stages(tmp_path, CONFIG, DEPENDS, UPSTREAM)
    partial = tmp_path / "vocoder_new"
    partial.mkdir()
    (partial / "checkpoint").write_text("half done")
    with pytest.raises(RuntimeError):
        stages.run("vocoder:new", lambda: (_ for _ in ()).throw(RuntimeError("killed")), clear=[partial])
    stages.run("vocoder:new", lambda: {"resumed": (partial / "checkpoint").read_text()}, clear=[partial])
    assert stages.done["vocoder:new"]["resumed"] == "half done"  # a stage never finished is resumed, not cleared


def test_a_stage_without_an_upstream_entry_is_refused(tmp_path):
    ran: list[str] = []
    with pytest.raises(KeyError, match="UPSTREAM"):
        Stages(tmp_path, CONFIG, DEPENDS, UPSTREAM).run("mystery", lambda: ran.append("mystery"))
    assert ran == []


def test_a_stages_file_of_an_earlier_version_is_adopted_without_rerunning(tmp_path):
    ran: list[str] = []
    stages = pipeline(tmp_path, CONFIG, ran)
    saved = json.loads(stages.path.read_text())
    stages.path.write_text(json.dumps({"config": CONFIG, "done": saved["done"], "stale": []}))  # no inputs, no order
    ran.clear()
    pipeline(tmp_path, CONFIG, ran)
    assert ran == []


def test_the_demo_names_the_upstream_of_every_stage_it_can_run():
    from tinywave.recipes import demo, demo_assets

    for recipe in (demo, demo_assets):
        for family in recipe.DEPENDS:
            assert family in recipe.UPSTREAM or any(k.startswith(family + "_") for k in recipe.UPSTREAM), family


def test_stages_run_from_several_threads_are_all_recorded(tmp_path):
    """The demo trains students in threads (tinywave/demo/workers.py): concurrent stages each land in stages.json once."""
    import threading

    stages = Stages(tmp_path, CONFIG, DEPENDS, UPSTREAM)
    stages.run("teacher", lambda: {})
    barrier = threading.Barrier(4)

    def student(seed: int) -> None:
        barrier.wait()  # all four start their stage together
        stages.run(f"students:s{seed}", lambda: {"seed": seed})

    threads = [threading.Thread(target=student, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = json.loads((tmp_path / "stages.json").read_text())
    assert {f"students:s{s}" for s in range(4)} <= set(saved["done"])
    assert [saved["done"][f"students:s{s}"]["seed"] for s in range(4)] == [0, 1, 2, 3]
    orders = [saved["order"][n] for n in saved["done"]]
    assert len(set(orders)) == len(orders)  # each finish has its own place in the order


def test_busy_seconds_count_stages_run_at_once_once():
    done = {"a": {"seconds": 10, "span": [100.0, 110.0]},
            "b": {"seconds": 30, "span": [105.0, 135.0]},  # overlaps a and c
            "c": {"seconds": 5, "span": [120.0, 125.0]},
            "d": {"seconds": 4, "span": [200.0, 204.0]},
            "old": {"seconds": 7}}  # recorded before spans: its own seconds
    assert busy_seconds(done) == 35 + 4 + 7


def test_finished_stages_record_their_span(tmp_path):
    stages = Stages(tmp_path, CONFIG, DEPENDS, UPSTREAM)
    info = stages.run("corpus", lambda: {})
    a, b = info["span"]
    assert 0 <= b - a < 5 and a > 1.7e9  # epoch seconds

"""The demo report's machine: CPU model, cores, threads and a measured float32 matmul rate."""

import math

import torch

from tinywave.demo.machine import cpu_model, describe_machine, fp32_gflops
from tinywave.demo.report import _machine_text, claims


def test_machine_names_the_cpu_and_measures_a_rate_at_the_current_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        machine = describe_machine()
    finally:
        torch.set_num_threads(before)
    assert machine["cpu"] == cpu_model() and machine["cpu"].strip()
    assert machine["torch_threads"] == 1 and machine["cores"] >= 1
    assert math.isfinite(machine["fp32_gflops"]) and machine["fp32_gflops"] > 0
    assert fp32_gflops(reps=1) > 0


def test_report_line_names_the_machine_or_nothing():
    machine = {"cpu": "Test CPU", "cores": 2, "torch_threads": 2, "fp32_gflops": 71.6}
    text = _machine_text(machine)
    assert text.startswith(" on Test CPU (2 cores;") and "72 GFLOP/s with 2 thread(s)" in text
    assert _machine_text({}) == "" and _machine_text(None) == ""


def test_wall_time_claim_holds_at_the_budget_and_names_the_machine():
    base = {"benchmarks": {}, "normalized_ppl": {}, "p_values": {}, "ratios": {}, "precision": {"name": "fp32"},
            "machine": {"cpu": "Test CPU", "cores": 2, "torch_threads": 2, "fp32_gflops": 168.2}}
    by_wall = {}
    for seconds in (1740.0, 1800.0, 1801.0):
        (claim,) = [c for c in claims({**base, "wall_seconds": seconds}) if c["claim"] == "demo wall time"]
        by_wall[seconds] = claim
    assert [by_wall[s]["held"] for s in (1740.0, 1800.0, 1801.0)] == [True, True, False]
    assert by_wall[1740.0]["measured"] == "29.0 min, fp32 on Test CPU x 2 cores (168 GFLOP/s fp32 matmul)"
    assert by_wall[1740.0]["target"] == "<= 30 min on 2 cores in fp32"
    (bf16,) = [c for c in claims({**base, "precision": {"name": "bf16"}, "wall_seconds": 1356.0}) if c["claim"] == "demo wall time"]
    assert bf16["held"] and bf16["target"] == "<= 30 min on 2 cores in fp32 (this run: bf16; fp32 not timed)"
    assert bf16["measured"].startswith("22.6 min, bf16 on Test CPU")
    assert not [c for c in claims({**base, "wall_seconds": 0.0, "machine": {}}) if c["claim"] == "demo wall time"]

"""The demo report's machine: CPU model, cores, threads and a measured float32 matmul rate."""

import math

import torch

from tinywave.demo.machine import cpu_model, describe_machine, fp32_gflops
from tinywave.demo.report import _machine_text


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

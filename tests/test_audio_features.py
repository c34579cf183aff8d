"""Audio features and F0: vectorized fast paths against plain loops, known signals."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import ROOT
from tinywave.audio import f0 as f0_module
from tinywave.audio.f0 import F0Settings, extract_f0, normalized_log_f0
from tinywave.audio.features import dct_matrix, deltas, frame_count, mel_filterbank, pool, power_spectrum, window_stats


def harmonic(f0: float, seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


# ---------------------------------------------------------------- features: fast paths against plain loops


def test_frame_counts_and_power_spectrum():
    for n in (1, 159, 160, 161, 16000, 16001):
        spec = power_spectrum(np.random.default_rng(n).normal(size=n).astype(np.float32))
        assert spec.shape == (frame_count(n), 257) == (math.ceil(n / 160), 257)
    # a 1 kHz tone peaks in the 1 kHz bin (bin width 31.25 Hz)
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    assert np.all(power_spectrum(tone)[2:-2].argmax(axis=1) == 32)


def test_power_spectrum_matches_a_frame_by_frame_loop():
    wav = np.random.default_rng(0).normal(size=2345).astype(np.float32)
    emph = np.concatenate([wav[:1], wav[1:] - 0.97 * wav[:-1]]).astype(np.float64)
    padded = np.concatenate([np.zeros(120), emph, np.zeros(400)])
    fast = power_spectrum(wav)
    for i in range(frame_count(len(wav))):
        frame = padded[160 * i : 160 * i + 400] * np.hamming(400)  # samples [160 i - 120, 160 i + 280)
        np.testing.assert_allclose(fast[i], np.abs(np.fft.rfft(frame, n=512)) ** 2, rtol=1e-3, atol=1e-3)


def test_mel_filterbank_is_a_partition_of_triangles():
    fb = mel_filterbank(40)  # (257, 40)
    assert fb.shape == (257, 40) and fb.min() >= 0 and np.all(fb.max(axis=0) > 0.5)
    assert np.all(np.diff(fb.argmax(axis=0)) >= 0)  # centres rise with the band index


def test_dct_is_orthonormal():
    d = dct_matrix(40, 40)
    np.testing.assert_allclose(d.T @ d, np.eye(40), atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(0, 30), st.integers(1, 4)), elements=st.floats(-100, 100, width=32)), st.integers(1, 7))
def test_pool_and_window_stats_match_loops(x, size):
    pooled = pool(x, size)
    assert pooled.shape == (len(x) // size, x.shape[1])
    for i in range(len(pooled)):
        np.testing.assert_allclose(pooled[i], x[i * size : (i + 1) * size].mean(axis=0), rtol=1e-5, atol=1e-4)
    if len(x) == 0:
        return
    mean, std = window_stats(x, size)
    assert len(mean) == math.ceil(len(x) / size)  # the partial last window is kept
    for i in range(len(mean)):
        block = x[i * size : (i + 1) * size].astype(np.float64)
        np.testing.assert_allclose(mean[i], block.mean(axis=0), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(std[i], block.std(axis=0), rtol=1e-3, atol=1e-2)


def test_deltas_match_regression_formula():
    x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    d = deltas(x, 2)
    padded = np.concatenate([x[:1], x[:1], x, x[-1:], x[-1:]])
    for t in range(len(x)):
        want = sum(k * (padded[t + 2 + k] - padded[t + 2 - k]) for k in (1, 2)) / 10
        np.testing.assert_allclose(d[t], want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- F0 and pitch


def test_f0_of_a_harmonic_tone_and_interpolation():
    wav = np.concatenate([harmonic(150.0, 0.5), np.zeros(4000, np.float32), harmonic(150.0, 0.5)])
    f0 = extract_f0(wav, F0Settings())
    assert len(f0) == len(wav) // 80 + 1
    voiced = f0 > 0
    assert voiced.mean() > 0.6 and not voiced[110:125].any()  # the silence in the middle is unvoiced
    assert abs(np.median(f0[voiced]) - 150.0) < 3.0
    lf0, mask = normalized_log_f0(f0)
    assert np.all(np.isfinite(lf0)) and abs(lf0[mask].mean()) < 1e-5 and np.abs(lf0[~mask]).max() < 0.05


def test_f0_of_silence_is_unvoiced():
    lf0, mask = normalized_log_f0(extract_f0(np.zeros(8000, np.float32)))
    assert not mask.any() and np.all(lf0 == 0)


def test_f0_module_quotes_the_measured_accuracy():
    """Every figure of benchmarks/results/f0_accuracy.json's summary appears in tinywave/audio/f0.py as measured."""
    report = json.loads((ROOT / "benchmarks" / "results" / "f0_accuracy.json").read_text())
    assert {"cpu", "cores", "threads", "torch", "commit", "date"} <= set(report["conditions"])
    missing = {k: v for k, v in report["summary"].items() if v not in f0_module.__doc__}
    assert not missing, f"tinywave/audio/f0.py does not quote these figures of benchmarks/results/f0_accuracy.json: {missing}"


@pytest.mark.slow
def test_f0_benchmark_runs_and_recovers_known_f0(tmp_path):
    out = tmp_path / "f0.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "f0_accuracy.py"), "--quick", "--out", str(out)], check=True,
                   capture_output=True, timeout=600)
    truth = json.loads(out.read_text())["synthetic"]["vs_truth"]["speed=4"]
    assert truth["voicing_accuracy"] > 0.9 and truth["missed_voiced"] < 0.02
    assert truth["cents_p90"] < 5.0 and truth["gross_error_rate"] < 0.01

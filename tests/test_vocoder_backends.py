"""Vocoder backends, unit handling, the Griffin-Lim baseline, MCD and chunked (streaming) vocoding."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinywave.generate.audio import ChunkedVocoder
from tinywave.spiritlm.fixtures import write_vocoder
from tinywave.vocoder.backends import HifiGanVocoder, load_vocoder, save_hifigan
from tinywave.vocoder.griffinlim import GriffinLimVocoder, MelSettings, fit_unit_mels, griffin_lim
from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config
from tinywave.vocoder.spectral import MelSpec, dtw_path, mel_cepstral_distortion
from tinywave.vocoder.units import Units, as_units, deduplicate

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)

RATE = 16000


def tone(freqs, seconds=0.04, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)


@pytest.fixture(scope="module")
def hifigan(tmp_path_factory):
    torch.manual_seed(0)
    model = UnitHiFiGAN(small_config(16, 640, channels=16, embedding_dim=8, num_speakers=2, num_f0_tokens=4))
    path = tmp_path_factory.mktemp("voc")
    save_hifigan(path, model, ["alice", "bob"])
    return path


def test_units_from_strings_and_dicts():
    u = as_units("[St2][Pi1][Hu5][Hu5][Pi3][Hu7]")
    assert u.deduplicated and u.hubert == (5, 5, 7) and u.pitch == (1, 1, 3) and u.style == (2, 2, 2)
    raw = as_units({"hubert": "3 3 -1 4", "pitch": [1, 2]})
    assert not raw.deduplicated and raw.hubert == (3, 3, 4) and raw.pitch == (1, 2)
    with pytest.raises(ValueError, match="'hubert' stream"):
        as_units({"pitch": [1]})


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60))
def test_deduplicate_keeps_run_starts_and_lengths(frames):
    pitch = [f % 3 for f in range(0, len(frames), 2)]  # one pitch code per 2 frames
    dedup, runs = deduplicate(Units(tuple(frames), tuple(pitch)))
    assert int(runs.sum()) == len(frames) and all(a != b for a, b in zip(dedup.hubert, dedup.hubert[1:]))
    assert list(np.repeat(dedup.hubert, runs)) == frames
    starts = np.concatenate([[0], np.cumsum(runs)[:-1]])
    assert list(dedup.pitch) == [pitch[s // 2] for s in starts]


def test_hifigan_directory_round_trip_and_speakers(hifigan):
    voc = load_vocoder(hifigan)
    assert isinstance(voc, HifiGanVocoder) and voc.speakers == ["alice", "bob"] and voc.unit_rate == 25.0
    raw = {"hubert": [1, 1, 2, 3, 3, 3], "pitch": [0, 1, 2]}
    wav = voc.vocode(raw, "bob")
    assert wav.dtype == np.float32 and wav.shape == (6 * 640,) and np.abs(wav).max() <= 1.0
    assert np.array_equal(wav, load_vocoder(hifigan, "hifigan").vocode(raw, 1))
    wav2, per_unit = voc.vocode_aligned("[Pi1][Hu1][Hu2][Pi2][Hu3]", 0)
    assert len(per_unit) == 3 and int(per_unit.sum()) == len(wav2) and (per_unit % 640 == 0).all()
    with pytest.raises(ValueError, match="outside this vocoder's 16 codes"):
        voc.vocode({"hubert": [3, 16], "pitch": [0]})
    with pytest.raises(ValueError, match="'carol' is not one of"):
        voc.vocode(raw, "carol")


def test_load_vocoder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_vocoder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="holds no vocoder"):
        load_vocoder(tmp_path)
    tmp_path.joinpath("generator.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="backend 'wavenet' is not known"):
        load_vocoder(tmp_path, "wavenet")


def test_griffin_lim_recovers_a_signal_from_its_magnitude():
    wav = torch.from_numpy(tone([300, 500, 800], 0.2))
    spec = MelSpec()
    mag = spec.magnitude(wav[None])[0]
    rec = griffin_lim(mag, 1024, 160, 640, n_iter=48, length=len(wav))
    err = torch.linalg.norm(spec.magnitude(rec[None])[0] - mag) / torch.linalg.norm(mag)
    assert err < 0.15


def test_griffin_lim_baseline_learns_unit_spectra(tmp_path):
    freqs = {0: 300.0, 1: 1200.0, 2: 3000.0}  # unit k sounds like a tone at freqs[k]
    rng = np.random.default_rng(0)
    items = []
    for _ in range(4):
        units = rng.integers(0, 3, 30)
        items.append((units, tone([freqs[int(u)] for u in units]), 0))
    table, runs = fit_unit_mels(items, 4, 1, 640)
    centers = MelSpec().fb.numpy().argmax(1)  # FFT bin at the peak of each mel band
    for k, f in freqs.items():
        band = int(table[0, k].argmax())
        assert abs(centers[band] * RATE / 1024 - f) < 0.15 * f
    assert np.allclose(table[0, 3], table[0, :3].mean(0), atol=2.0)  # an unseen unit falls back to the mean frame
    voc = GriffinLimVocoder(table, runs, 640, ["v"], MelSettings(), n_iter=8)
    voc.save(tmp_path / "gl")
    loaded = load_vocoder(tmp_path / "gl")
    assert isinstance(loaded, GriffinLimVocoder)
    assert np.allclose(loaded.vocode({"hubert": [0, 1, 2]}), voc.vocode({"hubert": [0, 1, 2]}))
    assert len(voc.vocode("[Hu0][Hu2]")) == 640 * int(sum(max(round(runs[u]), 1) for u in (0, 2)))


def test_mcd_is_zero_for_identical_audio_and_grows_with_noise():
    rng = np.random.default_rng(0)
    ref = tone([200, 350, 500, 650] * 3, 0.05) + 0.01 * rng.standard_normal(9600).astype(np.float32)
    assert mel_cepstral_distortion(ref, ref) == pytest.approx(0.0, abs=1e-6)
    scores = [mel_cepstral_distortion(ref, ref + s * rng.standard_normal(len(ref)).astype(np.float32)) for s in (0.01, 0.05, 0.2)]
    assert scores[0] < scores[1] < scores[2]
    stretched = np.repeat(ref, 2)[::2].copy()
    slowed = np.interp(np.arange(0, len(ref), 0.8), np.arange(len(ref)), ref).astype(np.float32)  # 25% slower
    assert mel_cepstral_distortion(ref, slowed) < mel_cepstral_distortion(ref, slowed, align=False)
    assert mel_cepstral_distortion(ref, stretched) == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 1000))
def test_dtw_path_is_monotonic_and_optimal_on_small_matrices(n, m, seed):
    cost = np.random.default_rng(seed).random((n, m))
    path = dtw_path(cost)
    assert path[0] == (0, 0) and path[-1] == (n - 1, m - 1)
    assert all((a2 - a1, b2 - b1) in ((1, 0), (0, 1), (1, 1)) for (a1, b1), (a2, b2) in zip(path, path[1:]))
    best = np.full((n, m), np.inf)  # brute-force dynamic programme, written independently
    for i in range(n):
        for j in range(m):
            prev = 0.0 if i == j == 0 else min(best[i - 1, j] if i else np.inf, best[i, j - 1] if j else np.inf,
                                              best[i - 1, j - 1] if i and j else np.inf)
            best[i, j] = cost[i, j] + prev
    assert sum(cost[i, j] for i, j in path) == pytest.approx(best[-1, -1])


def _chunked(voc, speech, **kw):
    cv = ChunkedVocoder(voc, 1, chunk_units=6, **kw)
    chunks = [c for tok in speech.split("]")[:-1] if (c := cv.push(tok + "]")) is not None] + [cv.flush()]
    return chunks


def test_chunked_vocoding_matches_one_shot_synthesis(hifigan):
    voc = load_vocoder(hifigan)
    speech = "".join(f"[Pi{i % 4}][Hu{(i * 7) % 16}]" for i in range(40))
    one_shot, _ = voc.vocode_aligned(speech, 1)
    exact = _chunked(voc, speech, lookahead=voc.model.receptive_units())  # full receptive field both sides: exact
    assert len(exact) > 3 and np.allclose(np.concatenate(exact), one_shot, atol=1e-5)
    quick = np.concatenate(_chunked(voc, speech, lookahead=4))  # the default: durations exact, waveform nearly
    assert len(quick) == len(one_shot) and np.abs(quick - one_shot).max() < 0.01 * np.abs(one_shot).max()
    prefix = "[Pi0][Hu1][Hu2][Hu3]"
    cont = ChunkedVocoder(voc, 1, prefix=prefix)
    cont.push("[Hu4][Hu5]")
    assert len(cont.flush()) == int(voc.vocode_aligned(prefix + "[Hu4][Hu5]", 1)[1][-2:].sum())  # the prefix is context only


def test_chunked_vocoding_is_exact_with_the_istft_head(tmp_path):
    torch.manual_seed(0)
    model = UnitHiFiGAN(small_config(16, 640, channels=32, embedding_dim=8, num_speakers=2, num_f0_tokens=4, istft_hop=80))
    save_hifigan(tmp_path, model, ["alice", "bob"])
    voc = load_vocoder(tmp_path)
    assert voc.cfg.istft and voc.model.receptive_units() >= 1
    speech = "".join(f"[Pi{i % 4}][Hu{(i * 5) % 16}]" for i in range(60))
    one_shot, _ = voc.vocode_aligned(speech, 1)  # _chunked vocodes for speaker 1
    exact = _chunked(voc, speech, lookahead=voc.model.receptive_units())
    assert len(exact) > 3 and np.allclose(np.concatenate(exact), one_shot, atol=1e-5)


def test_a_vocoder_made_from_a_training_model_leaves_it_trainable():
    model = UnitHiFiGAN(small_config(8, 80, channels=16, embedding_dim=8)).train()
    code = torch.randint(0, 8, (1, 5))
    voc = HifiGanVocoder(model)
    model(code).sum().backward()  # still weight-normed and differentiable
    assert model.conv_pre.parametrizations.weight.original1.grad is not None
    model.eval()
    assert np.allclose(voc.vocode({"hubert": code[0].tolist()}), model(code).detach().view(-1).numpy(), atol=1e-5)
    folded = HifiGanVocoder(voc.model)  # from an already folded model too
    assert np.allclose(folded.vocode({"hubert": [1, 2]}), voc.vocode({"hubert": [1, 2]}), atol=1e-6)


@pytest.mark.parametrize("expressive", [False, True])
def test_spiritlm_generator_pt_is_a_backend(tmp_path, expressive):
    folder = write_vocoder(tmp_path / "hifigan", expressive)  # SpiritLM's layout: config.json + generator.pt
    voc = load_vocoder(folder)
    assert isinstance(voc, HifiGanVocoder) and voc.limits["hubert"] == 501
    speech = "[St3][Pi5][Hu10][Hu400][Pi6][Hu7]" if expressive else "[Hu10][Hu400][Hu7]"
    wav = voc.vocode(speech, speaker=1)
    assert wav.dtype == np.float32 and len(wav) >= 3 * 640 and np.isfinite(wav).all()

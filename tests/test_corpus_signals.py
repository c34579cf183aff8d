"""Noise families, rooms, splicing, non-words and ungrammatical variants (no espeak needed)."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinywave.corpus.lexicon import CLASSES, base, is_vowel, nonword, tokenize
from tinywave.corpus.noise import FAMILIES, SNR_BANDS, draw_snr, make_noise, noise_gain, shape_spectrum
from tinywave.corpus.room import ROOM_SIZES, impulse_response, reverberate
from tinywave.corpus.salmon import splice, switch_index
from tinywave.corpus.slm21 import TRANSFORMS
from tinywave.data.manifest import Word

RATE = 16000


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_noise_clips_are_seeded_unit_rms_and_distinct(family):
    a, b, c = make_noise(family, 1, RATE), make_noise(family, 1, RATE), make_noise(family, 2, RATE)
    assert a.dtype == np.float32 and len(a) == RATE and np.isfinite(a).all()
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)


def test_noise_families_sound_different():
    def low_share(x):  # share of power below 500 Hz
        p = np.abs(np.fft.rfft(x)) ** 2
        return p[np.fft.rfftfreq(len(x), 1 / RATE) < 500].sum() / p.sum()
    hum = np.mean([low_share(make_noise("hum", s, RATE)) for s in range(5)])
    clicks = np.mean([low_share(make_noise("clicks", s, RATE)) for s in range(5)])
    assert hum > 0.9 and clicks < 0.3
    babble = make_noise("babble", 0, 2 * RATE)
    env = np.sqrt(np.convolve(babble**2, np.ones(800) / 800, mode="valid"))
    assert env.std() / env.mean() > 0.15  # syllable-rate amplitude modulation


@settings(max_examples=50, deadline=None)
@given(snr=st.floats(-5, 20), seed=st.integers(0, 1000))
def test_noise_gain_hits_the_snr(snr, seed):
    rng = np.random.default_rng(seed)
    speech = rng.standard_normal(4000).astype(np.float32) * rng.uniform(0.01, 0.5)
    noise = make_noise("coloured", seed, 4000)
    g = noise_gain(speech, snr)
    measured = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean((g * noise.astype(np.float64)) ** 2))
    assert measured == pytest.approx(snr, abs=1e-3)


def test_snr_draws_stay_in_salmon_bands():
    rng = np.random.default_rng(0)
    draws = [draw_snr(rng) for _ in range(400)]
    assert all(any(lo <= d <= hi for lo, hi in SNR_BANDS) for d in draws)
    assert {next(i for i, (lo, hi) in enumerate(SNR_BANDS) if lo <= d <= hi) for d in draws} == set(range(len(SNR_BANDS)))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3000), m=st.integers(1, 400), seed=st.integers(0, 100))
def test_fft_reverb_matches_direct_convolution(n, m, seed):
    """Parity of the fast path: FFT convolution == np.convolve, truncated to the input."""
    rng = np.random.default_rng(seed)
    dry, rir = rng.standard_normal(n).astype(np.float32), rng.standard_normal(m).astype(np.float32)
    expected = 0.2 * np.convolve(dry.astype(np.float64), rir.astype(np.float64))[:n] + 0.8 * dry
    np.testing.assert_allclose(reverberate(dry, rir), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(shape_spectrum(dry.astype(np.float64), RATE, np.ones_like), dry, atol=1e-9)


@pytest.mark.parametrize("size", sorted(ROOM_SIZES))
def test_impulse_response_decays_at_its_rt60(size):
    lo, hi = ROOM_SIZES[size]
    rt60 = (lo + hi) / 2
    assert impulse_response(7, rt60).tobytes() == impulse_response(7, rt60).tobytes() != impulse_response(8, rt60).tobytes()
    h = impulse_response(7, rt60).astype(np.float64)
    assert np.sum(h**2) == pytest.approx(1.0, rel=1e-4)
    edc = np.cumsum((h**2)[::-1])[::-1]  # Schroeder energy decay
    db = 10 * np.log10(edc / edc[0] + 1e-30)
    t5, t25 = np.argmax(db < -5) / RATE, np.argmax(db < -25) / RATE
    measured = 3.0 * (t25 - t5)  # T20 extrapolated to 60 dB
    assert 0.5 * rt60 < measured < 1.5 * rt60


@settings(max_examples=50, deadline=None)
@given(n=st.integers(10, 500), i_frac=st.floats(0, 1), fade=st.integers(0, 50))
def test_splice_identity_and_lengths(n, i_frac, fade):
    a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    b = np.random.default_rng(n + 1).standard_normal(n + 7).astype(np.float32)
    i = int(i_frac * n)
    np.testing.assert_allclose(splice(a, i, a, i, fade), a, atol=1e-6)  # splicing a signal into itself changes nothing
    out = splice(a, i, b, 3, fade)
    assert len(out) == i + len(b) - 3
    np.testing.assert_array_equal(out[:i], a[:i])


def test_switch_index_is_near_the_middle():
    words = [Word(str(k), k * 0.3, k * 0.3 + 0.25) for k in range(9)]
    assert switch_index(words) == 4
    assert switch_index(words[:2]) == 1


PHONES = [["b", "'O:", "l"], ["k", "'eI", "k"], ["g", "r", "'a", "n", "d", "m", "A:"], ["p", "'I", "k", "n", "I", "k"],
          ["t", "@", "m", "'eI", "t", "oU", "z"], ["h", "'a", "p", "i"], ["d", "'0", "l"], ["s", "'i:", "d", "z"]]
INVENTORY = {base(p) for ph in PHONES for p in ph} | {p for cls in CLASSES for p in cls}


@settings(max_examples=200, deadline=None)
@given(word=st.sampled_from(PHONES), seed=st.integers(0, 10**6))
def test_nonwords_change_one_or_two_phonemes_within_their_class(word, seed):
    taken = {tuple(base(p) for p in ph) for ph in PHONES}
    made = nonword(word, random.Random(seed), taken, INVENTORY)
    assert made is not None and len(made) == len(word)
    changed = [i for i, (a, b) in enumerate(zip(word, made)) if a != b]
    assert 1 <= len(changed) <= (1 if len(word) <= 4 else 2)
    for i in changed:
        old, new = base(word[i]), base(made[i])
        assert any(old in cls and new in cls for cls in CLASSES)  # same class
        assert word[i][: len(word[i]) - len(old)] == made[i][: len(made[i]) - len(new)]  # stress kept
        if not is_vowel(old):
            assert all(is_vowel(word[j]) for j in (i - 1, i + 1) if 0 <= j < len(word))  # singleton consonant
    assert tuple(base(p) for p in made) not in taken
    assert tokenize("".join(made), INVENTORY) == made  # espeak reads back the same phonemes


def test_tokenize_prefers_longest_symbols():
    assert tokenize("t@m'eIt#oUz", {"t", "@", "m", "e", "I", "eI", "t#", "o", "U", "oU", "z"}) == ["t", "@", "m", "'eI", "t#", "oU", "z"]
    with pytest.raises(ValueError, match="cannot split"):
        tokenize("bQ", {"b"})


@pytest.mark.parametrize("sentence", ["mia was happy to have her red ball back", "she looked for the red ball everywhere",
                                      "they looked under a big rock but did not find the blue kite",
                                      "tom wanted to bake a cake for his mom all by himself"])
def test_ungrammatical_variants_are_minimal(sentence):
    words = sentence.split()
    made = 0
    for kind, subtypes in TRANSFORMS.items():
        for subtype, change in subtypes.items():
            bad = change(words)
            if bad is None:
                continue
            made += 1
            assert bad != words and len(bad) == len(words)
            diff = [i for i, (a, b) in enumerate(zip(words, bad)) if a != b]
            if kind == "word_order":
                assert len(diff) == 2 and diff[1] == diff[0] + 1 and sorted(bad) == sorted(words)
            else:
                assert len(diff) == 1
    assert made >= 2

"""SpiritLM string format: conformance vectors and property-based round trips."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from tinywave.speech.format import (
    dedup_with_index,
    ends_with_speech,
    last_speech_start,
    parse_speech_and_text,
    split_tokens,
    starts_with_speech,
    string_to_units,
    units_to_string,
)

VECTORS = json.loads((FIXTURES / "spiritlm_tokenizer.json").read_text())


def test_base_string_matches_reference():
    assert units_to_string(VECTORS["units"]["hubert"]) == VECTORS["base_string"]


def test_expressive_string_matches_reference():
    u = VECTORS["units"]
    s = units_to_string(u["hubert"], u["pitch"], u["style"], VECTORS["rates"])
    assert s == VECTORS["expressive_string"]
    tokens = split_tokens(s)
    assert len(tokens) == 259
    assert sum(t.startswith("[St") for t in tokens) == 10 and sum(t.startswith("[Pi") for t in tokens) == 82


def test_rate_24_99_matters_for_long_audio():
    # beyond ~100 s rate 25 and 24.99 order a pitch token differently
    hubert = list(range(6000))
    pitch = [i % 7 for i in range(3000)]
    assert units_to_string(hubert, pitch, rates={"hubert": 24.99}) != units_to_string(hubert, pitch, rates={"hubert": 25.0})


def test_parse_cases():
    for text, expected in VECTORS["parse_cases"]:
        assert [list(x) for x in parse_speech_and_text(text)] == expected


def test_helper_cases():
    assert all(ends_with_speech(s) == e for s, e in VECTORS["ends_with_speech"])
    assert all(starts_with_speech(s) == e for s, e in VECTORS["starts_with_speech"])
    assert all(last_speech_start(s) == e for s, e in VECTORS["last_speech_start"])


def test_inverse_of_expressive_string_is_aligned():
    out = string_to_units(VECTORS["expressive_string"])
    assert len(out["hubert"]) == len(out["pitch"]) == len(out["style"]) == 167
    assert out["hubert"] == [u for _, u in dedup_with_index(VECTORS["units"]["hubert"], True)]
    assert out["style"][0] == 71 and out["style"][-1] == 83


def test_inverse_defaults():
    assert string_to_units("[Hu1][Hu2]") == {"hubert": [1, 2]}
    # leading hubert before the first pitch takes the first pitch value
    assert string_to_units("[Hu1][Pi5][Hu2][Pi6][Hu3]", seed=0)["pitch"] == [5, 5, 6]
    # pitch without style: a common style is chosen
    assert set(string_to_units("[Pi5][Hu2]", seed=1)["style"]) <= {71, 68, 98}
    assert string_to_units("[Pi5][Pi6][Hu2]", duplicate_hubert_for_multiple_pitch=True)["hubert"] == [2]
    out = string_to_units("[Hu2][Pi5][Pi6]", duplicate_hubert_for_multiple_pitch=True, seed=0)
    assert out["hubert"] == [2, 2] and out["pitch"] == [5, 6] and len(out["style"]) == 2
    # text around tokens and cut-off tokens are ignored
    assert string_to_units("hi[Hu4]there[Text]x[Hu12")["hubert"] == [4]


units = st.lists(st.integers(0, 500), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(units)
def test_base_round_trip(hubert):
    s = units_to_string(hubert)
    assert string_to_units(s)["hubert"] == [u for _, u in dedup_with_index(hubert, True)]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_expressive_round_trip(data):
    n = data.draw(st.integers(2, 300))
    hubert = data.draw(st.lists(st.integers(0, 500), min_size=n, max_size=n))
    pitch = data.draw(st.lists(st.integers(0, 63), min_size=n // 2, max_size=n // 2))
    style = data.draw(st.lists(st.integers(0, 99), min_size=max(1, n // 25), max_size=max(1, n // 25)))
    s = units_to_string(hubert, pitch, style)
    out = string_to_units(s)
    kept = dedup_with_index(hubert, True)
    assert out["hubert"] == [u for _, u in kept]
    # every hubert token carries the pitch/style whose frame most recently started (ties: Pi before Hu)
    for (i, _), p, sty in zip(kept, out["pitch"], out["style"]):
        t = i / 24.99
        p_idx = [j for j, _ in dedup_with_index(pitch, True) if j / 12.5 <= t]
        s_idx = [j for j in range(len(style)) if j <= t]
        assert p == (pitch[p_idx[-1]] if p_idx else pitch[0])
        assert sty == (style[s_idx[-1]] if s_idx else style[0])
    assert units_to_string(hubert, pitch, style) == s  # deterministic

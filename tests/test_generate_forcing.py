"""Modality forcing (logits processor), the duration stop, prompt construction and output parsing."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from support.models import tiny_tokenizer
from tinywave.generate.audio import split_output
from tinywave.generate.decode import Sampling, next_tokens
from tinywave.generate.forcing import ModalityLogitsProcessor, SpeechDurationCriteria, banned_ids
from tinywave.generate.prompt import PromptItem, parse_input, prompt_ids, prompt_segments, prompt_text, resolve
from tinywave.text.vocab import VocabLayout

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)

LAYOUT = VocabLayout(text_size=40, n_hu=20, n_pi=6, n_st=4)  # ids: text 0-39, markers 40-41, Hu 42-61, Pi 62-67, St 68-71
VOCAB = LAYOUT.size + 5  # padding rows past the layout, as in SpiritLM's 32512-row embedding
EOS = 2


def test_spiritlm_ranges_with_llama_layout():
    lay = VocabLayout(32000)
    text = set(banned_ids(lay, "text", 32768))
    assert {32000, 32001, 32002, 32502, 32503, 32566, 32567, 32666} <= text and 31999 not in text and 2 not in text
    speech = set(banned_ids(lay, "speech", 32768, eos_id=2, allow_eos=False))
    assert set(range(0, 32002)) <= speech and not speech & set(range(32002, 32667))
    assert banned_ids(lay, "arbitrary", 32768) == []


@settings(max_examples=60, deadline=None)
@given(
    modality=st.sampled_from(["text", "speech"]),
    allow_eos=st.booleans(),
    streams=st.sampled_from([("hubert",), ("hubert", "pitch"), ("hubert", "pitch", "style")]),
    n_units=st.one_of(st.none(), st.integers(1, 20)),
    seed=st.integers(0, 2**31 - 1),
    greedy=st.booleans(),
)
def test_forcing_never_emits_a_banned_id(modality, allow_eos, streams, n_units, seed, greedy):
    proc = ModalityLogitsProcessor.for_modality(LAYOUT, modality, VOCAB, eos_id=EOS, allow_eos=allow_eos, streams=streams, n_units=n_units)
    banned = set(proc.banned.tolist())
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, VOCAB, generator=g) * 20  # (B, V), wild scales
    logits[:, sorted(banned)[: len(banned) // 2]] += 1000.0  # banned ids made the most likely
    out = next_tokens(proc(torch.zeros(16, 1, dtype=torch.long), logits), Sampling(greedy=greedy, temperature=1.3, seed=seed), g)
    assert not set(out.tolist()) & banned
    # and what is allowed is exactly the modality's ids
    allowed = set(range(VOCAB)) - banned
    r = LAYOUT.ranges()
    if modality == "text":
        assert allowed == set(r["text"])
    else:
        hu = set(r["hu"]) if n_units is None else set(range(LAYOUT.hu_offset, LAYOUT.hu_offset + n_units))
        expect = hu | (set(r["pi"]) if "pitch" in streams else set()) | (set(r["st"]) if "style" in streams else set())
        assert allowed == expect | ({EOS} if allow_eos else set())


def test_unknown_modality_and_impossible_forcing_are_errors():
    with pytest.raises(ValueError, match="unknown output modality 'video'"):
        banned_ids(LAYOUT, "video")
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        banned_ids(LAYOUT, "text", LAYOUT.size - 1)


def test_duration_criteria_counts_only_new_hu_tokens():
    crit = SpeechDurationCriteria(LAYOUT, max_seconds=0.2, rate=25.0, prompt_length=3)  # 5 units
    hu, pi = LAYOUT.hu_offset, LAYOUT.pi_offset
    ids = torch.tensor([[hu, hu, hu, hu, pi, hu, hu, pi, hu],  # 4 new Hu: not yet
                        [1, 2, 3, hu, hu, hu, hu, hu, pi]])  # 5 new Hu: stop
    assert crit(ids, None).tolist() == [False, True]


def test_prompt_follows_spiritlm_marker_rules():
    items = [("t", "the cat"), ("t", " sat"), ("s", "[Hu1][Hu2]"), ("t", "and")]
    assert prompt_text(prompt_segments(items, "speech")) == "[Text]the cat sat[Speech][Hu1][Hu2][Text]and[Speech]"
    assert prompt_text(prompt_segments(items, "text")) == "[Text]the cat sat[Speech][Hu1][Hu2][Text]and"
    assert prompt_text(prompt_segments(items, "arbitrary")).endswith("[Text]and")
    assert prompt_text(prompt_segments([("s", "[Hu3]")], "speech")) == "[Speech][Hu3]"
    assert prompt_text(prompt_segments([("s", "[Hu3]")], "text")) == "[Speech][Hu3][Text]"


def test_prompt_ids_start_with_bos_and_use_the_layout():
    tok, lay = tiny_tokenizer()
    segs = prompt_segments(resolve([PromptItem("tokens", "[Hu4][Hu5]"), PromptItem("text", "the cat")]), "speech")
    ids = prompt_ids(segs, tok, lay)
    assert ids[:4] == [tok.bos_token_id, lay.speech_id, lay.hu_offset + 4, lay.hu_offset + 5]
    assert ids[4] == lay.text_id and ids[-1] == lay.speech_id
    assert tok.decode(ids[5:-1]).strip() == "the cat"


def test_bad_prompt_items_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="prompt is empty"):
        resolve([])
    with pytest.raises(ValueError, match="empty text"):
        resolve([PromptItem("text", "  ")])
    with pytest.raises(ValueError, match="unknown content type 'video'"):
        parse_input("video:x.mp4")
    with pytest.raises(ValueError, match="content type prefix"):
        parse_input("hello")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(ValueError, match="bad.wav"):
        resolve([PromptItem("audio", str(bad))], lambda: None)
    with pytest.raises(ValueError, match="speech tokenizer"):
        resolve([PromptItem("audio", np.zeros(1600, np.float32))], lambda: None)


def test_split_output_parses_runs_and_keeps_markers_in_transcript():
    tok, lay = tiny_tokenizer()
    text_ids = tok("the cat", add_special_tokens=False)["input_ids"]
    ids = [lay.speech_id, lay.hu_offset + 3, lay.pi_offset + 1, lay.hu_offset + 4, lay.text_id, *text_ids,
           lay.speech_id, lay.hu_offset + 7, tok.eos_token_id]
    runs, transcript = split_output(ids, lay, tok)
    assert [k for k, _ in runs] == ["s", "t", "s"]
    assert runs[0][1] == "[Hu3][Pi1][Hu4]" and runs[1][1].strip() == "the cat" and runs[2][1] == "[Hu7]"
    assert transcript.startswith("[Speech][Hu3][Pi1][Hu4][Text]") and transcript.endswith("[Speech][Hu7]")

"""SpiritLM release folders on tiny fixtures: vocoders (strict generator.pt, backend ``spiritlm``),
the tokenize -> string -> vocoder round trip, the LM folders' ids, tokenize through the CLI,
and the conformance report."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from support.audio import speechlike
from tinywave.cli import main
from tinywave.speech.format import split_tokens, units_to_string
from tinywave.speech.tokenizer import SpeechTokenizer
from tinywave.spiritlm import fixtures
from tinywave.spiritlm.conformance import compare_units, load_vectors
from tinywave.spiritlm.lm import check_spiritlm_ids, load_lm
from tinywave.spiritlm.release import component
from tinywave.text.vocab import VocabLayout, layout_from_tokenizer, load_tokenizer
from tinywave.vocoder.backends import HifiGanVocoder, load_vocoder

HOP = 640


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return fixtures.make_release(tmp_path_factory.mktemp("release"), lms=True)


def test_vocoders_load_strictly_as_the_spiritlm_backend(release, tmp_path):
    base = load_vocoder(component(release, "vocoder_base"))  # auto: recognized by generator.pt
    expressive = load_vocoder(component(release, "vocoder_expressive"), "spiritlm")
    assert isinstance(base, HifiGanVocoder) and base.speakers == list(fixtures.SPEAKERS) and base.unit_rate == 25.0
    assert base.default_style == 8 and len(base.styles) == 10 and expressive.default_style == 0
    assert (expressive.f0_ratio, expressive.style_ratio) == (2, 25)
    folder = fixtures.write_vocoder(tmp_path / "voc", expressive=False)
    state = torch.load(folder / "generator.pt", weights_only=True)["generator"]
    torch.save({"generator": {k: v for k, v in state.items() if k != "ups.1.weight_g"}}, folder / "generator.pt")
    with pytest.raises(ValueError, match=r"missing keys \['ups.1.weight_g'\]"):
        load_vocoder(folder)
    torch.save({"generator": {**state, "f0_dict.weight": torch.zeros(64, 8)}}, folder / "generator.pt")
    with pytest.raises(ValueError, match=r"unexpected keys \['f0_dict.weight'\]"):
        load_vocoder(folder)
    torch.save({"generator": {**state, "dict.weight": torch.zeros(500, 8)}}, folder / "generator.pt")
    with pytest.raises(ValueError, match="dict.weight"):
        load_vocoder(folder)


def test_base_vocoder_uses_the_reference_default_style(release):
    voc = load_vocoder(component(release, "vocoder_base"))
    units = {"hubert": [3, 3, 7, 9]}
    styled = voc.vocode(units, 2)
    voc.default_style = 0
    assert styled.shape == (4 * HOP,) and not np.allclose(styled, voc.vocode(units, 2))


@pytest.mark.parametrize("kind, vocoder", [("spiritlm-base", "vocoder_base"), ("spiritlm-expressive", "vocoder_expressive")])
def test_tokenize_string_vocoder_round_trip(release, kind, vocoder):
    tok = SpeechTokenizer.load(f"{kind}:{release}")
    voc = load_vocoder(component(release, vocoder))
    wav = speechlike(3.0, 7)
    units = tok.encode_units(wav)
    n = len(units["hubert"])
    assert n == tok.streams["hubert"].features.n_frames(len(wav)) == 74
    raw = voc.vocode(units, 2)  # raw frames: pitch x2 and style x25 stretched to the hubert frames
    assert raw.dtype == np.float32 and raw.shape == (n * HOP,) and np.abs(raw).max() <= 1.0
    string = tok.encode_string(wav)
    assert string == units_to_string(units["hubert"], units.get("pitch"), units.get("style"), rates=tok.rates)
    audio, per_unit = voc.vocode_aligned(string, 2)  # deduplicated units: durations predicted
    n_hu = sum(t.startswith("[Hu") for t in split_tokens(string))
    assert len(per_unit) == n_hu and int(per_unit.sum()) == len(audio) and (per_unit % HOP == 0).all() and (per_unit >= HOP).all()


@pytest.mark.parametrize("variant, location, n_st", [("spirit-lm-base-7b", "tokenizer.model", 0),
                                                    ("spirit-lm-expressive-7b", "tokenizer_config.json", 100)])
def test_lm_folders_have_spiritlms_ids(release, variant, location, n_st):
    model, tok, info = load_lm(release / "spiritlm_model" / variant, dtype="float32")
    assert info.speech_tokens_in == location and info.variant == variant and info.layout.n_st == n_st
    assert model.get_input_embeddings().weight.shape[0] == (32768 if n_st else 32512)
    text = "[Speech][Hu0][Hu12][Hu500][Text]the cat"
    ids = tok(text)["input_ids"]
    assert ids[:6] == [1, 32001, 32002, 32014, 32502, 32000]  # BOS, no EOS: SpiritLM's ids
    assert ids[-1] != 2 and tok.decode(ids, skip_special_tokens=True) == text  # markers survive decoding
    if n_st:
        assert tok("[Pi0][Pi63][St0][St99]", add_special_tokens=False)["input_ids"] == [32503, 32566, 32567, 32666]
    with torch.no_grad():
        assert model(torch.tensor([ids])).logits.shape == (1, len(ids), model.config.vocab_size)
    assert layout_from_tokenizer(load_tokenizer(release / "spiritlm_model" / variant)) == info.layout  # what data build reads


def test_spiritlm_id_check_rejects_other_layouts():
    check_spiritlm_ids(VocabLayout(32000, 501, 64, 100), "spirit-lm-expressive-7b")
    for layout, variant in [(VocabLayout(31999), None), (VocabLayout(32000, 500, 0, 0), None), (VocabLayout(32000, 501, 0, 0), "spirit-lm-expressive-7b")]:
        with pytest.raises(ValueError, match="SpiritLM's are"):
            check_spiritlm_ids(layout, variant)


def test_conformance_report_on_the_vectors_own_units(tmp_path):
    vectors = load_vectors(Path(__file__).parent / "fixtures" / "spiritlm_tokenizer.json")
    exact = compare_units(dict(vectors["units"]), vectors)
    assert exact.exact and exact.string_kind == "expressive" and exact.lines()[-1] == "CONFORMANT"
    base = compare_units({"hubert": vectors["units"]["hubert"]}, vectors)
    assert base.exact and base.string_kind == "base"
    off = dict(vectors["units"], pitch=[(p + 1) % 64 if i == 5 else p for i, p in enumerate(vectors["units"]["pitch"])])
    report = compare_units(off, vectors)
    assert not report.exact and [s.equal for s in report.streams] == [228, 113, 10] and not report.string_equal


@pytest.mark.slow
def test_tokenize_cli_with_a_spiritlm_release(release, tmp_path):
    import soundfile as sf

    wav = speechlike(1.5, 8)
    sf.write(tmp_path / "a.wav", wav, 16000, subtype="FLOAT")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav", "text": "hello"}) + "\n")
    out = tmp_path / "tokens.jsonl"
    assert main(["tokenize", "--manifest", str(tmp_path / "m.jsonl"), "--tokenizer", f"spiritlm-expressive:{release}",
                 "--out", str(out), "workers=1"]) == 0
    rec = json.loads(out.read_text())
    tok = SpeechTokenizer.load(f"spiritlm-expressive:{release}")
    assert rec["speech"] == tok.encode_string(wav) and rec["tokenizer"] == tok.fingerprint
    assert rec["rates"] == {"hubert": 24.99, "pitch": 12.5, "style": 1.0} and rec["frames"] == {"hubert": 37, "pitch": 18, "style": 2}

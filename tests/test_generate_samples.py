"""Listening samples for reports: several models, fixed prompts, wavs + transcripts + one index page."""

import json

import pytest
import soundfile as sf
import torch

from support.models import tiny_model_dir
from tinywave.generate.prompt import PromptItem
from tinywave.generate.samples import SampleSpec, default_specs, write_samples
from tinywave.generate.speechlm import GenerationOptions
from tinywave.vocoder.backends import save_hifigan
from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)


def test_default_specs_cover_the_four_directions(tmp_path):
    specs = default_specs(["the cat"], [tmp_path / "a.wav"])
    assert [(s.name, s.modality) for s in specs] == [("text0_to_speech", "speech"), ("audio0_to_speech", "speech"),
                                                     ("audio0_to_text", "text"), ("audio0_text_to_speech", "speech")]
    assert [i.kind for i in specs[-1].items] == ["audio", "text"]
    with pytest.raises(ValueError, match="no sample prompts"):
        default_specs([], [])


def test_samples_for_two_models_are_written_and_linked(tmp_path):
    teacher = tiny_model_dir(tmp_path / "teacher", layers=3, seed=1, lm_head_scale=8.0)
    student = tiny_model_dir(tmp_path / "student", layers=2, seed=2, lm_head_scale=8.0)
    torch.manual_seed(0)
    save_hifigan(tmp_path / "voc", UnitHiFiGAN(small_config(32, 640, channels=16, embedding_dim=8)), [])
    specs = [SampleSpec("t2s", "speech", (PromptItem("text", "the cat sat"),)),
             SampleSpec("s2t", "text", (PromptItem("tokens", "[Hu1][Hu4][Hu9]"),))]
    options = GenerationOptions(max_new_tokens=12, max_seconds=0.4, allow_eos=False)
    index = write_samples({"teacher": teacher, "student": student}, tmp_path / "samples", specs, options, tmp_path / "voc")
    page = index.read_text()
    assert index == tmp_path / "samples" / "index.md" and "## t2s (speech output)" in page and "## s2t (text output)" in page
    for name in ("teacher", "student"):
        rows = [json.loads(line) for line in (tmp_path / "samples" / name / "generations.jsonl").read_text().splitlines()]
        assert [r["prompt_id"] for r in rows] == ["t2s", "s2t"]
        wav, rate = sf.read(str(tmp_path / "samples" / name / rows[0]["wav"]))
        assert rate == 16000 and len(wav) >= 10 * 640 and rows[0]["stop"] == "max_seconds"
        assert "wav" not in rows[1] and "[Hu" not in rows[1]["transcript"]
        assert f"]({name}/0.wav)" in page and f"]({name}/1.txt)" in page  # links relative to the samples folder
        assert (tmp_path / "samples" / name / "1.txt").read_text().strip() == rows[1]["transcript"]


def test_a_bad_prompt_writes_no_samples(tmp_path):
    model = tiny_model_dir(tmp_path / "m", lm_head_scale=8.0)
    specs = [SampleSpec("ok", "text", (PromptItem("text", "the cat"),)),
             SampleSpec("bad", "speech", (PromptItem("audio", str(tmp_path / "missing.wav")),))]
    with pytest.raises(ValueError, match="missing.wav"):
        write_samples({"m": model}, tmp_path / "samples", specs, vocoder="none")
    assert not (tmp_path / "samples").exists()

"""Vocoder training pieces, and `tinywave vocoder train` end to end (real speech tokenizer, real CLI)."""

import json
import random

import numpy as np
import pytest
import soundfile as sf
import torch

from support.audio import UNIT_SENTENCES, utterance
from support.models import tiny_model_dir
from tinywave.cli import main
from tinywave.vocoder import train as T
from tinywave.vocoder.backends import load_vocoder
from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config
from tinywave.vocoder.units import Units

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)

def test_segments_are_aligned_with_their_audio():
    utts = [utterance("a", 30, 0, 1), utterance("b", 5, 1, 2)]
    sampler = T.SegmentSampler(utts, segment_units=8, hop=80, f0_ratio=2, style_ratio=25, seed=0)
    for _ in range(10):
        b = sampler.sample(4)
        assert b["code"].shape == (4, 8) and b["f0_code"].shape == (4, 8) and b["audio"].shape == (4, 640) and b["style_code"] is None
        for row in range(4):
            utt = utts[int(b["speaker"][row])]
            codes = list(b["code"][row])
            starts = [s for s in range(max(len(utt.units) - 8, 0) + 1)
                      if [utt.units.hubert[min(s + i, len(utt.units) - 1)] for i in range(8)] == codes]
            assert starts, "segment codes are not a window of the utterance"
            s = starts[0]
            chunk = utt.wav[s * 80 : (s + 8) * 80]
            assert np.allclose(b["audio"][row, : len(chunk)].numpy(), chunk)
            assert list(b["f0_code"][row]) == [utt.units.pitch[min(s + i, len(utt.units) - 1) // 2] for i in range(8)]


def test_duration_targets_are_log_run_lengths():
    utt = T.Utterance("u", np.zeros(800, np.float32), Units((1, 1, 1, 4, 2, 2)), 0)
    codes, target, mask = T.duration_batch([utt], 2, random.Random(0))
    assert codes[0, :3].tolist() == [1, 4, 2] and mask[0].tolist() == [True, True, True]
    assert torch.allclose(target[0, :3], torch.log1p(torch.tensor([3.0, 1.0, 2.0])))


def test_training_steps_lower_the_loss_and_checkpoints_resume_exactly(tmp_path):
    torch.manual_seed(0)
    utts = [utterance(str(i), 20, i % 2, i) for i in range(4)]
    cfg = small_config(6, 80, channels=16, embedding_dim=8, num_speakers=2, num_f0_tokens=3, kernels=(3,))

    def steps(model, opt, sampler, rng, n):
        out = []
        for _ in range(n):
            losses = T.loss_step(model, T.VocoderLoss(), sampler.sample(2), T.duration_batch(utts, 2, rng))
            opt.zero_grad()
            losses["total"].backward()
            opt.step()
            out.append(losses["total"].detach().item())
        return out

    model = UnitHiFiGAN(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sampler, rng = T.SegmentSampler(utts, 8, 80, 2, 25, 0), random.Random(0)
    first = steps(model, opt, sampler, rng, 12)
    assert np.mean(first[-3:]) < np.mean(first[:3])
    T.save_weights(tmp_path, {"generator": model})
    restored = UnitHiFiGAN(cfg)  # fresh weights, then the checkpoint's
    T.load_weights(tmp_path, {"generator": restored})
    a, b = model.state_dict(), restored.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(FileNotFoundError, match="discriminators.safetensors"):
        T.load_weights(tmp_path, {"discriminators": torch.nn.Linear(2, 2)})


def test_segment_stream_resumes_with_the_segments_of_an_uninterrupted_run():
    utts = [utterance(str(i), 20, i % 2, i) for i in range(4)]

    def stream():
        return T.SegmentStream(utts, T.SegmentSampler(utts, 8, 80, 2, 25, 3), 2, seed=3)

    straight, cut = stream(), stream()
    for _ in range(3):
        straight.next(), cut.next()
    saved = json.loads(json.dumps(cut.state()))  # as stored in state.json
    resumed = stream()
    resumed.restore(saved)
    a, b = straight.next(), resumed.next()
    assert a.keys() == b.keys() and int(b["step"]) == 3 and int(b["n_targets"]) == 2
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lr_schedule_warms_up_then_decays():
    from tinywave.training.schedules import schedule_named, warmup_cosine

    lrs = [1e-3 * warmup_cosine(s, 10, 200, 0.05) for s in range(200)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-3) and lrs[-1] < 0.1e-3 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    # a wall-time budget further spent than the step budget drives the decay: a timed run ends at the floor
    assert warmup_cosine(20, 10, 200, 0.05, spent=1.0) == pytest.approx(0.05)
    assert warmup_cosine(20, 10, 200, 0.05, spent=0.5) < warmup_cosine(20, 10, 200, 0.05) < 1.0
    clock = iter([0.0, 1.0])
    timed = schedule_named("cosine", 10, 200, 0.05, spent=lambda: next(clock))
    assert timed(20) == pytest.approx(warmup_cosine(20, 10, 200, 0.05)) and timed(20) == pytest.approx(0.05)


def mcd_on_training_utterances(corpus, out, voc) -> tuple[float, float]:
    """Mean MCD (dB) over the utterances `vocoder train` trained on: of ``voc``, and of a randomly initialised twin."""
    from tinywave.audio.io import load_audio
    from tinywave.speech.tokenizer import SpeechTokenizer
    from tinywave.vocoder.backends import HifiGanVocoder
    from tinywave.vocoder.spectral import mel_cepstral_distortion

    torch.manual_seed(123)
    twin = HifiGanVocoder(UnitHiFiGAN(voc.cfg), voc.speakers)
    tokenizer = SpeechTokenizer.load(corpus / "tok")
    held = set(json.loads((out / "eval.json").read_text())["heldout"])
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    scores = {"trained": [], "random": []}
    for row in rows:
        if row["id"] in held or not (corpus / row["audio"]).is_file():
            continue
        wav, _ = load_audio(corpus / row["audio"])
        units = tokenizer.encode_units(wav)
        ref = wav[: len(units["hubert"]) * voc.hop]
        for name, v in (("trained", voc), ("random", twin)):
            scores[name].append(mel_cepstral_distortion(ref, v.vocode(units, row["speaker"], deduplicated=False)))
    assert len(scores["trained"]) == len(UNIT_SENTENCES) - len(held)
    return float(np.mean(scores["trained"])), float(np.mean(scores["random"]))


@pytest.mark.slow
def test_vocoder_train_cli_end_to_end_and_resume(unit_corpus, tmp_path):
    out = tmp_path / "voc"
    args = ["vocoder", "train", "--manifest", str(unit_corpus / "manifest.jsonl"), "--tokenizer", str(unit_corpus / "tok"), "--out", str(out),
            "data.batch_size=2", "data.segment_units=8", "model.channels=16", "model.embedding_dim=8", "model.kernels=[3]",
            "data.heldout=2", "eval.samples=1", "train.ckpt_every=2"]
    assert main(args + ["train.steps=3"]) == 0
    for name in ("config.json", "generator.safetensors", "speakers.txt", "eval.json", "griffinlim/unit_mels.npy", "units.jsonl", "errors.json"):
        assert (out / name).is_file(), name
    assert (out / "speakers.txt").read_text().split() == ["en-us", "en-us+f2"]
    report = json.loads((out / "eval.json").read_text())
    assert set(report["mcd_db"]) == {"hifigan", "hifigan+durations", "griffinlim", "griffinlim+durations"}
    assert all(np.isfinite(v) and v > 0 for v in report["mcd_db"].values())
    assert set(report["unit_accuracy"]) == {"hifigan", "griffinlim"} and all(0 <= v <= 1 for v in report["unit_accuracy"].values())
    assert report["lower_mcd"] in ("hifigan", "griffinlim")
    assert json.loads((out / "errors.json").read_text())[0]["id"] == "broken"
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert len(samples) == 3 and sf.info(str(out / "samples" / samples[0])).samplerate == 16000
    # resume: a rerun with more steps continues from the checkpoint (asked for), and only runs the remaining steps
    assert main(args + ["train.steps=60"]) == 2  # checkpoints in OUT: refused without train.resume=true, naming it
    assert main(args + ["train.steps=60", "train.resume=true"]) == 0
    logged = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 61))  # steps done, counted from 1 as in the LM trainer's log
    voc = load_vocoder(out)
    assert voc.limits["hubert"] == 24 and voc.speakers == ["en-us", "en-us+f2"]
    # it learned: on its own training utterances it is closer to the real audio than a random generator of its shape
    trained, untrained = mcd_on_training_utterances(unit_corpus, out, voc)
    assert trained < untrained - 3.0, (trained, untrained)
    # the trained vocoder and the real speech tokenizer in a model directory: audio in, speech out
    model = tiny_model_dir(tmp_path / "model", lm_head_scale=8.0)  # 32 [Hu] ids; the vocoder knows 24: forcing allows only those
    (model / "speech_tokenizer").symlink_to(unit_corpus / "tok")
    (model / "vocoder").symlink_to(out)
    gen = tmp_path / "gen"
    assert main(["generate", "--model", str(model), "--input", f"audio:{unit_corpus / 'wavs' / 'u0.wav'}", "--input", "text:and then",
                 "--modality", "speech", "--out", str(gen), "max_new_tokens=20", "speaker=en-us+f2"]) == 0
    wav, rate = sf.read(str(gen / "0.wav"))
    assert rate == 16000 and len(wav) > 0
    row = json.loads((gen / "generations.jsonl").read_text())
    assert row["prompt"].startswith("[Speech][Hu") and "[Text]and then[Speech]" in row["prompt"]
    # a checked prompt carries the audio as speech tokens, so decoding does not read the file again
    from tinywave.audio.io import load_audio
    from tinywave.generate.prompt import PromptItem
    from tinywave.generate.speechlm import SpeechLM
    from tinywave.speech.tokenizer import SpeechTokenizer

    lm = SpeechLM.load(model)
    wav0, _ = load_audio(unit_corpus / "wavs" / "u0.wav")  # resampled to 16 kHz, as the prompt reader does
    encoded = lm.encode([PromptItem("audio", str(unit_corpus / "wavs" / "u0.wav")), PromptItem("text", "and then")], "speech")
    assert [i.kind for i in encoded] == ["tokens", "text"]
    assert encoded[0].content == SpeechTokenizer.load(unit_corpus / "tok").encode_string(wav0)
    assert row["prompt"] == lm.prepare(encoded, "speech").prompt

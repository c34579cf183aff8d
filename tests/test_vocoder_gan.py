"""HiFi-GAN adversarial training: discriminator shapes, LSGAN and feature-matching losses, steps, exact resume."""

import math
import random

import numpy as np
import pytest
import torch

from support.audio import UNIT_SENTENCES, utterance
from tinywave.vocoder import train as T
from tinywave.vocoder.adversarial import Adversary, discriminator_loss, feature_matching_loss, generator_loss
from tinywave.vocoder.discriminators import MPD_CHANNELS, MSD_CHANNELS, DiscriminatorConfig, Discriminators, Judgement, PeriodDiscriminator
from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)

TINY = DiscriminatorConfig(width=1 / 32)  # MPD 1..32 channels, MSD 4..32


def strided(length: int, times: int, stride: int = 3) -> int:
    """Length after ``times`` convolutions of kernel 5, padding 2, stride ``stride``."""
    for _ in range(times):
        length = (length - 1) // stride + 1
    return length


@pytest.mark.parametrize("t, period", [(12, 3), (10, 3), (11, 2), (7, 11)])
def test_period_fold_puts_every_pth_sample_in_a_column(t, period):
    wav = torch.arange(t, dtype=torch.float32).view(1, 1, t)
    folded = PeriodDiscriminator(period, [2, 2]).fold(wav)
    rows = math.ceil(t / period)
    assert folded.shape == (1, 1, rows, period)
    flat = folded.reshape(-1)
    assert torch.equal(flat[:t], wav.view(-1))  # row-major: row r holds samples r*p .. r*p + p - 1
    for j in range(period):
        assert torch.equal(folded[0, 0, :, j][: len(range(j, t, period))], wav.view(-1)[j::period])
    pad = rows * period - t
    if 0 < pad < t:  # reflect padding mirrors the last samples (without repeating the edge)
        assert flat[t:].tolist() == [float(t - 2 - i) for i in range(pad)]


def test_discriminator_scores_and_features_have_hifigan_shapes():
    disc = Discriminators(TINY)
    b, t = 2, 4096
    outs = disc(torch.randn(b, 1, t))
    mpd, msd = outs["mpd"], outs["msd"]
    assert len(mpd.scores) == 5 and len(msd.scores) == 3
    for period, scores, feats in zip((2, 3, 5, 7, 11), mpd.scores, mpd.features):
        rows = strided(math.ceil(t / period), 4)  # four strided (5 x 1) convolutions, then stride 1
        assert scores.shape == (b, rows * period)
        assert len(feats) == 6 and [f.shape[1] for f in feats] == [1, 4, 16, 32, 32, 1]
        assert all(f.shape[-2:] == (rows, period) for f in feats[3:])
    lengths = [t, t // 2 + 1, (t // 2 + 1) // 2 + 1]  # AvgPool1d(4, 2, padding 2) between scales
    for n, scores, feats in zip(lengths, msd.scores, msd.features):
        assert len(feats) == 8 and [f.shape[1] for f in feats] == [4, 4, 8, 16, 32, 32, 32, 1]
        assert scores.shape == (b, math.ceil(n / 64))  # strides 1, 2, 2, 4, 4
    # the first scale is spectrally normalized, the others weight-normalized (as in HiFi-GAN)
    first, second = (d.convs[0].parametrizations.weight[0] for d in disc.msd.discriminators[:2])
    assert type(first).__name__ == "_SpectralNorm" and type(second).__name__ == "_WeightNorm"


def test_widths_follow_hifigan_v1_and_the_width_dial():
    assert DiscriminatorConfig().channels(MPD_CHANNELS) == [32, 128, 512, 1024, 1024]  # HiFi-GAN V1, paper section 2.2
    assert DiscriminatorConfig().channels(MSD_CHANNELS) == [128, 128, 256, 512, 1024, 1024, 1024]
    quarter = Discriminators(DiscriminatorConfig(width=0.25))
    mpd = quarter.mpd.discriminators[0]
    assert [c.out_channels for c in mpd.convs] == [8, 32, 128, 256, 256]
    assert [c.kernel_size for c in mpd.convs] == [(5, 1)] * 5 and [c.stride[0] for c in mpd.convs] == [3, 3, 3, 3, 1]
    msd = quarter.msd.discriminators[0]
    assert [c.out_channels for c in msd.convs] == [32, 32, 64, 128, 256, 256, 256]
    assert [c.kernel_size[0] for c in msd.convs] == [15, 41, 41, 41, 41, 41, 5]
    assert [c.stride[0] for c in msd.convs] == [1, 2, 2, 4, 4, 1, 1] and [c.groups for c in msd.convs] == [1, 4, 16, 16, 16, 16, 1]
    assert [c.groups for c in Discriminators(TINY).msd.discriminators[0].convs] == [1, 4, 4, 8, 16, 16, 1]  # gcd with the channels
    with pytest.raises(ValueError, match="disc_width=0"):
        Discriminators(DiscriminatorConfig(width=0))


def judgement(scores, features=()):
    return Judgement([torch.tensor(s, dtype=torch.float32) for s in scores], [[torch.tensor(f) for f in fs] for fs in features])


def test_lsgan_losses_on_known_scores():
    real = judgement([[1.0, 1.0], [0.5, 1.5]])
    fake = judgement([[0.0, 0.0], [0.5, -0.5]])
    # D: mean((1 - r)^2) + mean(f^2) per sub-discriminator, summed
    assert discriminator_loss(real, fake).item() == pytest.approx((0 + 0) + (0.25 + 0.25))
    # G: mean((1 - f)^2), summed
    assert generator_loss(fake).item() == pytest.approx(1.0 + (0.25 + 2.25) / 2)
    perfect = judgement([[1.0], [1.0]])
    assert generator_loss(perfect).item() == 0.0 and discriminator_loss(perfect, judgement([[0.0], [0.0]])).item() == 0.0


def test_feature_matching_is_zero_for_identical_features_and_sums_mean_absolute_differences():
    feats = [[[1.0, -2.0], [0.5]], [[3.0, 3.0, 3.0]]]
    a, b = judgement([[0.0], [0.0]], feats), judgement([[0.0], [0.0]], feats)
    assert feature_matching_loss(a, b).item() == 0.0
    shifted = judgement([[0.0], [0.0]], [[[1.5, -2.5], [0.5]], [[3.0, 3.0, 0.0]]])
    assert feature_matching_loss(a, shifted).item() == pytest.approx(0.5 + 0.0 + 1.0)
    disc = Discriminators(TINY)
    wav = torch.randn(1, 1, 2048)
    outs = disc(wav)
    assert feature_matching_loss(outs["mpd"], disc(wav.clone())["mpd"]).item() == 0.0


def test_discriminator_steps_lower_its_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    disc = Discriminators(TINY)
    adversary = Adversary(disc, torch.optim.AdamW(disc.parameters(), lr=2e-3, betas=(0.8, 0.99)), segment=0)
    t = torch.arange(4096) / 16000
    real = (0.3 * torch.sin(2 * math.pi * 220 * t)).expand(2, 1, -1).contiguous()  # a tone vs white noise
    fake = 0.3 * torch.randn(2, 1, 4096)
    losses = [adversary.discriminator_step(real, fake)["d/loss"] for _ in range(15)]
    assert losses[-1] < 0.7 * losses[0], losses
    record = adversary.discriminator_step(real, fake)
    assert record["d/loss"] == pytest.approx(record["d/mpd"] + record["d/msd"])


def test_generator_terms_reach_the_generator_only():
    torch.manual_seed(0)
    disc = Discriminators(TINY)
    adversary = Adversary(disc, torch.optim.AdamW(disc.parameters()), segment=0)
    fake = torch.randn(2, 1, 2048, requires_grad=True)
    terms = adversary.generator_terms(torch.randn(2, 1, 2048), fake)
    adversary.weighted(terms).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters()) and all(p.requires_grad for p in disc.parameters())
    assert terms["g/adv"].item() > 0 and terms["g/fm"].item() > 0


def test_crop_takes_the_same_window_of_real_and_generated_audio():
    adversary = Adversary(Discriminators(TINY), None, segment=100)
    real = torch.arange(3 * 1000, dtype=torch.float32).view(3, 1, 1000)
    r, f = adversary.crop(real, real + 0.5)
    assert r.shape == (3, 1, 100) and torch.equal(f, r + 0.5)
    assert all(torch.equal(r[i, 0], torch.arange(int(r[i, 0, 0]), int(r[i, 0, 0]) + 100, dtype=torch.float32)) for i in range(3))
    assert adversary.crop(real[..., :80], real[..., :80])[0].shape[-1] == 80  # shorter than the window: whole segment


def gan_setup(seed=0):
    torch.manual_seed(seed)
    model = UnitHiFiGAN(small_config(6, 80, channels=16, embedding_dim=8, num_speakers=2, num_f0_tokens=3, kernels=(3,)))
    disc = Discriminators(TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(disc.parameters(), lr=2e-3, betas=(0.8, 0.99))
    return model, opt, Adversary(disc, opt_d, segment=480), opt_d


def run_steps(model, opt, adversary, utts, start, n):
    sampler, rng = T.SegmentSampler(utts, 8, 80, 2, 25, start), random.Random(start)
    loss_fn = T.VocoderLoss(45.0, 4.5)
    return [T.train_step(model, opt, loss_fn, sampler.sample(2), T.duration_batch(utts, 2, rng), 45.0, adversary=adversary) for _ in range(n)]


def test_generator_losses_carry_every_term_and_only_the_total_has_a_graph():
    utts = [utterance(str(i), 20, i % 2, i) for i in range(4)]
    model, opt, adversary, _ = gan_setup()
    sampler, rng = T.SegmentSampler(utts, 8, 80, 2, 25, 0), random.Random(0)
    losses = T.generator_losses(model, T.VocoderLoss(45.0, 4.5), sampler.sample(2), T.duration_batch(utts, 2, rng), adversary)
    assert {"loss", "mel", "stft", "duration", "g/adv", "g/fm", "d/loss", "d/mpd", "d/msd"} <= set(losses)
    assert losses["loss"].requires_grad and not any(v.requires_grad for k, v in losses.items() if k != "loss")
    assert all(math.isfinite(float(v.detach())) for v in losses.values())


def test_training_with_the_adversary_still_lowers_the_mel_loss():
    utts = [utterance(str(i), 20, i % 2, i) for i in range(4)]
    model, opt, adversary, _ = gan_setup()
    records = run_steps(model, opt, adversary, utts, 0, 12)
    mel = [r["mel"] for r in records]
    assert np.mean(mel[-3:]) < np.mean(mel[:3]), mel


# ---------------------------------------------------------------- `tinywave vocoder train` with the discriminators

GAN_ARGS = ["data.batch_size=2", "data.segment_units=8", "model.channels=16", "model.embedding_dim=8", "model.kernels=[3]",
            "data.heldout=2", "eval.samples=1", "loss.adversarial_start=2", "model.disc_width=0.03", "model.disc_segment=2048"]


def train_cli(corpus, out, *extra):
    from tinywave.cli import main

    return main(["vocoder", "train", "--manifest", str(corpus / "manifest.jsonl"), "--tokenizer", str(corpus / "tok"),
                 "--out", str(out), *GAN_ARGS, *extra])


def log_rows(out):
    import json

    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_vocoder_train_cli_with_discriminators_resumes_like_an_uninterrupted_run(unit_corpus, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from tinywave.vocoder.backends import HifiGanVocoder, load_vocoder

    straight = tmp_path / "straight"
    assert train_cli(unit_corpus, straight, "train.steps=5") == 0
    rows = log_rows(straight)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert "d/loss" not in rows[1] and {"g/adv", "g/fm", "d/loss", "d/mpd", "d/msd", "mel", "stft", "loss", "lr"} <= set(rows[2])
    last = straight / "checkpoints" / "step_00000005"  # the shared loop's layout (tinywave/training/checkpoint.py)
    assert any(k.startswith("mpd.") for k in load_file(str(last / "discriminators.safetensors")))
    assert {"optimizer.pt", "optimizer.disc.pt", "scheduler.disc.pt", "rng.pt", "state.json"} <= {p.name for p in last.iterdir()}
    generator = load_file(str(straight / "generator.safetensors"))
    assert not any("mpd" in k or "msd" in k for k in generator)  # the vocoder folder holds the generator only
    assert isinstance(load_vocoder(straight), HifiGanVocoder) and (straight / "loss_curves.png").is_file()
    # interrupted in step 4 (after the checkpoint of step 2), then rerun: the same weights and log as the straight run
    crashed = tmp_path / "crashed"
    real_losses, calls = T.generator_losses, []

    def crash_in_step_4(*args, **kw):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_losses(*args, **kw)

    monkeypatch.setattr(T, "generator_losses", crash_in_step_4)
    assert train_cli(unit_corpus, crashed, "train.steps=5", "train.ckpt_every=2") == 130  # "interrupted; rerun with train.resume=true"
    assert [r["step"] for r in log_rows(crashed)] == [1, 2, 3]
    monkeypatch.setattr(T, "generator_losses", real_losses)
    assert train_cli(unit_corpus, crashed, "train.steps=5", "train.ckpt_every=2") == 2  # checkpoints there: continuing is asked for
    assert train_cli(unit_corpus, crashed, "train.steps=5", "train.ckpt_every=2", "train.resume=true") == 0
    from tinywave.training.runlog import CLOCK_FIELDS

    assert [{k: v for k, v in r.items() if k not in CLOCK_FIELDS} for r in log_rows(crashed)] == [
        {k: v for k, v in r.items() if k not in CLOCK_FIELDS} for r in rows]
    resumed = load_file(str(crashed / "generator.safetensors"))
    assert resumed.keys() == generator.keys() and all(torch.equal(resumed[k], generator[k]) for k in generator)


@pytest.mark.slow
def test_vocoder_train_cli_reports_heldout_word_error_rates(unit_corpus, tmp_path):
    pytest.importorskip("pocketsphinx", reason="PocketSphinx is not installed: pip install 'tinywave[asr]'")
    import json

    out = tmp_path / "voc"
    assert train_cli(unit_corpus, out, "train.steps=2", "eval.asr=pocketsphinx") == 0
    evaluation = json.loads((out / "eval.json").read_text())
    report = evaluation["intelligibility"]
    assert report["asr"] == "pocketsphinx:asr_lm.arpa" and report["utterances"] == len(evaluation["heldout"]) == 1
    assert set(report["vocoders"]) == {"hifigan", "hifigan+durations", "griffinlim", "griffinlim+durations"}
    assert all(math.isfinite(v) for r in report["vocoders"].values() for v in r.values())
    # (no bound on the WER itself: five training sentences make a language model without most held-out words)
    held = {t["reference"] for t in report["transcripts"]}
    only_held = {w for t in held for w in t.split()} - {w for t in UNIT_SENTENCES if t not in held for w in t.split()}
    assert only_held and not only_held & arpa_unigrams(out / "asr_lm.arpa")  # held-out words never reach the language model
    assert train_cli(unit_corpus, tmp_path / "bad", "train.steps=1", "eval.asr=kaldi") == 2


def arpa_unigrams(path):
    lines = path.read_text().splitlines()
    start = lines.index("\\1-grams:") + 1
    return {line.split()[1] for line in lines[start : lines.index("", start)]}

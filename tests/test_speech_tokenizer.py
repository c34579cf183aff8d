"""Speech tokenizer: features, quantizers, HuBERT extractor, train -> save -> load."""

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from support.audio import espeak_corpus
from support.models import tiny_hubert
from support.speech import random_tokenizer
from tinywave.audio.features import Analysis
from tinywave.audio.io import load_audio
from tinywave.cli import main
from tinywave.speech.builtin import FrameFeatures
from tinywave.speech.extractor import QuantizedExtractor
from tinywave.speech.format import units_to_string
from tinywave.speech.hubert import HubertFeatures, fill_blanks, load_quantizer
from tinywave.speech.kmeans import Codebook, nearest_centroid
from tinywave.speech.tokenizer import SpeechTokenizer

# ---------------------------------------------------------------- helpers


def harmonic(f0: float, seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return espeak_corpus(tmp_path_factory.mktemp("espeak"))


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "speech_tokenizer"
    rc = main(["units", "train", "--manifest", str(corpus), "--out", str(out), "n_units=24", "--pitch", "--style",
               "n_pitch=8", "n_style=4", "workers=1", "seed=3"])
    assert rc == 0
    return out


# ---------------------------------------------------------------- quantizers


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 20), st.integers(1, 6), st.integers(0, 10_000))
def test_nearest_centroid_matches_brute_force(n, k, dim, seed):
    rng = np.random.default_rng(seed)
    x, c = rng.normal(size=(n, dim)), rng.normal(size=(k, dim)).astype(np.float32)
    brute = ((x[:, None, :] - c[None].astype(np.float64)) ** 2).sum(-1).argmin(axis=1)
    assert np.array_equal(nearest_centroid(x, c), brute)


# ---------------------------------------------------------------- counts and rates


@pytest.mark.parametrize("n", [1280, 1281, 16000, 16001, 23456, 40000])
def test_stream_counts(n):
    wav = np.random.default_rng(n).normal(scale=0.1, size=n).astype(np.float32)
    tok = random_tokenizer()
    units = tok.encode_units(wav)
    assert len(units["hubert"]) == n // 640
    assert len(units["pitch"]) == (n // 80 + 1) // 16
    assert len(units["style"]) == math.ceil(n / 16000)
    assert tok.rates == {"hubert": 25.0, "pitch": 12.5, "style": 1.0}
    assert len(random_tokenizer(rate=12.5, pitch=False, style=False).encode_units(wav)["hubert"]) == n // 1280


def test_chunks_are_tokenized_independently_and_short_tails_skipped():
    rng = np.random.default_rng(1)
    a, b = (rng.normal(scale=0.1, size=32000).astype(np.float32) for _ in range(2))
    tail = rng.normal(scale=0.1, size=1000).astype(np.float32)  # < 1280 samples: skipped
    tok = random_tokenizer()
    whole = tok.encode_units(np.concatenate([a, b, tail]), chunk_seconds=2.0)
    parts = [tok.encode_units(a), tok.encode_units(b)]
    assert whole == {k: parts[0][k] + parts[1][k] for k in whole}


def test_string_uses_the_tokenizer_rates():
    tok = random_tokenizer(rate=12.5)
    wav = harmonic(120.0, 1.3)
    units = tok.encode_units(wav)
    assert tok.encode_string(wav) == units_to_string(units["hubert"], units["pitch"], units["style"], rates={"hubert": 12.5, "pitch": 12.5, "style": 1.0})


def test_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(ValueError, match="must divide 100"):
        FrameFeatures("mfcc_kmeans", 30.0)
    with pytest.raises(ValueError, match="not known"):
        FrameFeatures("fbank", 25.0)
    with pytest.raises(ValueError, match="vocabulary block"):
        SpeechTokenizer(QuantizedExtractor(FrameFeatures(), Codebook(np.zeros((600, 40), np.float32))))
    with pytest.raises(FileNotFoundError, match="units train"):
        SpeechTokenizer.load(tmp_path)
    with pytest.raises(ValueError, match="2-D|1-D"):
        random_tokenizer().encode_units(np.zeros((2, 16000), np.float32))
    assert main(["units", "train", "--out", str(tmp_path / "t"), "n_units=900", "--manifest", "x.jsonl"]) == 2


# ---------------------------------------------------------------- built-in training, save, load


def test_train_save_load_same_codes(trained, corpus):
    tok = SpeechTokenizer.load(trained)
    assert tok.rates == {"hubert": 25.0, "pitch": 12.5, "style": 1.0}
    assert tok.n_codes == {"hubert": 24, "pitch": 8, "style": 4} and (tok.n_units, tok.n_pitch, tok.n_style) == (24, 8, 4)
    spec = json.loads((trained / "speech_tokenizer.json").read_text())
    assert spec["fingerprint"] == tok.fingerprint and not list(trained.glob("*.pkl"))
    wav, _ = load_audio(corpus.parent / "u1.wav")
    units = tok.encode_units(wav)
    assert len(set(units["hubert"])) > 5 and len(units["hubert"]) == len(wav) // 640
    # save again -> load -> identical codes and fingerprint
    again = SpeechTokenizer.load(tok.save(trained.parent / "copy"))
    assert again.fingerprint == tok.fingerprint and again.encode_units(wav) == units
    # the fingerprint follows the arrays
    again.streams["pitch"].quantizer.centroids[0, 0] += 1.0
    del again.__dict__["fingerprint"]
    assert again.fingerprint != tok.fingerprint


def test_training_is_deterministic_across_worker_counts(trained, corpus, tmp_path):
    out = tmp_path / "tok2"
    rc = main(["units", "train", "--manifest", str(corpus), "--out", str(out), "n_units=24", "--pitch", "--style",
               "n_pitch=8", "n_style=4", "workers=2", "seed=3"])
    assert rc == 0
    assert SpeechTokenizer.load(out).fingerprint == SpeechTokenizer.load(trained).fingerprint


# ---------------------------------------------------------------- HuBERT extractor


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hubert") / "model"
    tiny_hubert(layers=3, width=32, ffn=37, conv_dim=(16, 16, 16, 16, 16), conv_stride=(5, 4, 4, 4, 2), conv_kernel=(10, 8, 4, 4, 2),
                pos_kernel=16).save_pretrained(folder)  # the 320-sample hop of a real HuBERT front end
    return folder


@functools.lru_cache(maxsize=2)
def full_model(model_dir: Path):
    from transformers import HubertModel

    return HubertModel.from_pretrained(str(model_dir)).eval()


def full_hidden(model_dir: Path, wav: np.ndarray, layer: int) -> np.ndarray:
    """The reference: the untruncated model's ``hidden_states[layer]``."""
    with torch.no_grad():
        return full_model(model_dir)(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states[layer][0].numpy()


def roll_fill(codes: np.ndarray, blank: int) -> np.ndarray:
    """SpiritLM's reference rule, literally: repeated roll-by-one until no blank is left."""
    x = torch.as_tensor(codes).clone()
    for _ in range(10_000):
        if not (x == blank).any():
            break
        x = torch.where(x == blank, torch.roll(x, 1), x)
    return x.numpy()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=0, max_size=40))
def test_fill_blanks_matches_reference_roll(codes):
    codes = np.array(codes, dtype=np.int64)
    assert np.array_equal(fill_blanks(codes, 4), roll_fill(codes, 4))


@pytest.mark.parametrize("layer", [0, 2, 3])
def test_hubert_features_match_full_model(hubert_dir, layer):
    wav = harmonic(140.0, 1.1)
    feats = HubertFeatures(hubert_dir, layer)
    assert feats.rate == 25.0 and feats.dim == 32
    x = feats.vectors(Analysis(wav))
    assert x.shape == (feats.n_frames(len(wav)), 32)
    np.testing.assert_allclose(x, full_hidden(hubert_dir, wav, layer), atol=1e-5)  # truncated model == full model's layer
    with pytest.raises(ValueError, match="out of range"):
        HubertFeatures(hubert_dir, 4)


def test_hubert_kmeans_tokenizer_roundtrip_and_chunking(hubert_dir, tmp_path):
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(12, 32)).astype(np.float32)
    np.save(tmp_path / "centroids.npy", centroids)
    feats = HubertFeatures(hubert_dir, 2)
    tok = SpeechTokenizer(QuantizedExtractor(feats, load_quantizer(tmp_path / "centroids.npy")))
    a, b = harmonic(130.0, 1.28), harmonic(210.0, 1.28)  # 1.28 s = 32 frames: chunk boundary on a frame boundary
    codes = tok.encode_units(a)["hubert"]
    assert codes == nearest_centroid(full_hidden(hubert_dir, a, 2), centroids).tolist()
    whole = tok.encode_units(np.concatenate([a, b]), chunk_seconds=1.28)["hubert"]
    assert whole == codes + tok.encode_units(b)["hubert"]
    loaded = SpeechTokenizer.load(tok.save(tmp_path / "tok"))
    assert (tmp_path / "tok" / "hubert" / "config.json").is_file()
    assert loaded.fingerprint == tok.fingerprint and loaded.encode_units(a) == tok.encode_units(a)


def linear_quantizer_file(path: Path, hidden: np.ndarray, vocab: int = 6, dim: int = 32) -> Path:
    """A SpiritLM-format quantizer (.pt, tensors only) whose blank class wins on ~40% of frames."""
    torch.manual_seed(1)
    out, mid = vocab + 1, dim - (vocab + 1)
    h1, h2 = dim - mid // 4, dim - mid // 2
    net = torch.nn.Sequential(torch.nn.Linear(dim, h1), torch.nn.LeakyReLU(), torch.nn.Linear(h1, h2), torch.nn.LeakyReLU(), torch.nn.Linear(h2, out))
    with torch.no_grad():
        logits = net(torch.from_numpy(hidden))
        margin = logits[:, :vocab].max(dim=1).values - logits[:, vocab]
        net[4].bias[vocab] += torch.quantile(margin, 0.4)
    torch.save({"model_cfg": {"vocab_size": vocab, "dim": dim, "upstream_dim": dim}, "model_weight": net.state_dict()}, path)
    return path


def test_hubert_linear_quantizer_blank_rule(hubert_dir, tmp_path):
    wav = harmonic(170.0, 2.0) + np.random.default_rng(2).normal(scale=0.05, size=32000).astype(np.float32)
    hidden = full_hidden(hubert_dir, wav, 3)
    path = linear_quantizer_file(tmp_path / "L3_quantizer_6.pt", hidden)
    quant = load_quantizer(path)
    ckpt = torch.load(path, weights_only=True)
    w = ckpt["model_weight"]
    with torch.no_grad():  # the MLP written out: Linear, LeakyReLU, Linear, LeakyReLU, Linear, log_softmax, argmax
        h = torch.nn.functional.leaky_relu(torch.from_numpy(hidden) @ w["0.weight"].T + w["0.bias"])
        h = torch.nn.functional.leaky_relu(h @ w["2.weight"].T + w["2.bias"])
        raw = torch.log_softmax(h @ w["4.weight"].T + w["4.bias"], dim=-1).argmax(dim=-1).numpy()
    assert 0.2 < (raw == 6).mean() < 0.6  # blanks really occur
    tok = SpeechTokenizer(QuantizedExtractor(HubertFeatures(hubert_dir, 3), quant))
    codes = np.array(tok.encode_units(wav)["hubert"])
    assert np.array_equal(codes, roll_fill(raw, 6)) and codes.max() < 6
    loaded = SpeechTokenizer.load(tok.save(tmp_path / "tok"))
    assert loaded.encode_units(wav)["hubert"] == codes.tolist() and loaded.fingerprint == tok.fingerprint
    # the same through the CLI: a given quantizer needs no manifest
    assert main(["units", "train", "--out", str(tmp_path / "cli"), "kind=hubert", f"hubert.model={hubert_dir}",
                 "hubert.layer=3", f"hubert.quantizer={path}"]) == 0
    assert SpeechTokenizer.load(tmp_path / "cli").fingerprint == tok.fingerprint


def test_bad_quantizer_files(tmp_path, hubert_dir):
    torch.save({"model_cfg": {"vocab_size": 4}, "model_weight": {}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="model_cfg"):
        load_quantizer(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        load_quantizer(tmp_path / "none.npy")
    np.save(tmp_path / "wide.npy", np.zeros((4, 48), np.float32))
    with pytest.raises(ValueError, match="48"):
        QuantizedExtractor(HubertFeatures(hubert_dir, 1), load_quantizer(tmp_path / "wide.npy"))


def test_units_train_fits_kmeans_on_a_hubert_layer(hubert_dir, corpus, tmp_path):
    out = tmp_path / "hubert_tok"
    rc = main(["units", "train", "--manifest", str(corpus), "--out", str(out), "kind=hubert", f"hubert.model={hubert_dir}",
               "hubert.layer=2", "n_units=10", "workers=1", "string_rate=24.99"])
    assert rc == 0
    tok = SpeechTokenizer.load(out)
    assert tok.rates == {"hubert": 24.99} and tok.n_codes == {"hubert": 10}
    wav, _ = load_audio(corpus.parent / "u2.wav")
    codes = tok.encode_units(wav)["hubert"]
    assert codes == nearest_centroid(full_hidden(hubert_dir, wav, 2), tok.streams["hubert"].quantizer.centroids).tolist()
    assert len(set(codes)) > 2
    # the token corpus job with a HuBERT tokenizer: strings carry the string rate
    tokens = tmp_path / "tokens.jsonl"
    assert main(["tokenize", "--manifest", str(corpus), "--tokenizer", str(out), "--out", str(tokens), "workers=1"]) == 0
    rec = [json.loads(line) for line in tokens.read_text().splitlines()][2]
    assert rec["rates"] == {"hubert": 24.99} and rec["speech"] == units_to_string(codes, rates={"hubert": 24.99})

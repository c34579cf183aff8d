"""SpiritLM speech components on tiny fixtures with the release's structure: mHuBERT against a
fairseq-style reference forward written here, strict keys, the VQ-VAE and its pickle opt-in,
the style classifier, and the tokenizers' shapes and rates."""

import argparse
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from support.audio import speechlike
from tinywave.audio.features import Analysis
from tinywave.safeload import UnsafeFileError
from tinywave.speech.tokenizer import SpeechTokenizer
from tinywave.spiritlm import fixtures, mhubert
from tinywave.spiritlm.f0_vqvae import F0VQVAE, VQVAEConfig, load_f0_vqvae, main as vqvae_main, vqvae_input
from tinywave.spiritlm.mhubert import MHubertFeatures, load_hubert_model, parse_conv_layers
from tinywave.spiritlm.release import speech_tokenizer
from tinywave.spiritlm.style_encoder import W2V2StyleFeatures, load_style_model, normalize

RATE = 16000


# --- a fairseq-style HuBERT forward, from the fairseq key names (docs/SPIRITLM.md 2.1) ---------
def _ln(x, w, p):
    return F.layer_norm(x, x.shape[-1:], w[f"{p}.weight"], w[f"{p}.bias"], eps=1e-5)


def _attention(x, w, p, heads, key_pad):
    b, t, e = x.shape
    hd = e // heads
    q = F.linear(x, w[f"{p}.q_proj.weight"], w[f"{p}.q_proj.bias"]) * hd**-0.5
    k = F.linear(x, w[f"{p}.k_proj.weight"], w[f"{p}.k_proj.bias"])
    v = F.linear(x, w[f"{p}.v_proj.weight"], w[f"{p}.v_proj.bias"])
    q, k, v = (z.view(b, t, heads, hd).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hd)
    scores = (q @ k.transpose(-1, -2)).masked_fill(key_pad[None, None, None, :], float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, e)
    return F.linear(out, w[f"{p}.out_proj.weight"], w[f"{p}.out_proj.bias"])


def reference_hubert(w, cfg, wav, output_layer):
    """fairseq HubertModel.extract_features(output_layer=...) on one chunk, padding odd T with a masked frame."""
    x = torch.from_numpy(wav)[None, None]  # (1, 1, N)
    for i, (c, _, s) in enumerate(parse_conv_layers(cfg["conv_feature_layers"])):
        x = F.conv1d(x, w[f"feature_extractor.conv_layers.{i}.0.weight"], w.get(f"feature_extractor.conv_layers.{i}.0.bias"), stride=s)
        if cfg["extractor_mode"] == "layer_norm":
            x = _ln(x.transpose(1, 2), w, f"feature_extractor.conv_layers.{i}.2.1").transpose(1, 2)
        elif i == 0:
            x = F.group_norm(x, c, w["feature_extractor.conv_layers.0.2.weight"], w["feature_extractor.conv_layers.0.2.bias"])
        x = F.gelu(x)
    x = _ln(x.transpose(1, 2), w, "layer_norm")  # (1, T, C)
    if "post_extract_proj.weight" in w:
        x = F.linear(x, w["post_extract_proj.weight"], w["post_extract_proj.bias"])
    g, v, k = w["encoder.pos_conv.0.weight_g"], w["encoder.pos_conv.0.weight_v"], cfg["conv_pos"]
    pos = F.conv1d(x.transpose(1, 2), g * v / v.norm(dim=(0, 1), keepdim=True), w["encoder.pos_conv.0.bias"], padding=k // 2, groups=cfg["conv_pos_groups"])
    x = x + F.gelu(pos[:, :, :-1] if k % 2 == 0 else pos).transpose(1, 2)
    if not cfg["layer_norm_first"]:
        x = _ln(x, w, "encoder.layer_norm")
    t = x.shape[1]
    pad = (-t) % 2  # required_seq_len_multiple = 2
    x = F.pad(x, (0, 0, 0, pad))
    key_pad = torch.arange(t + pad) >= t
    for j in range(output_layer):
        p = f"encoder.layers.{j}"
        ffn = lambda h: F.linear(F.gelu(F.linear(h, w[f"{p}.fc1.weight"], w[f"{p}.fc1.bias"])), w[f"{p}.fc2.weight"], w[f"{p}.fc2.bias"])  # noqa: E731
        if cfg["layer_norm_first"]:
            x = x + _attention(_ln(x, w, f"{p}.self_attn_layer_norm"), w, f"{p}.self_attn", cfg["encoder_attention_heads"], key_pad)
            x = x + ffn(_ln(x, w, f"{p}.final_layer_norm"))
        else:
            x = _ln(x + _attention(x, w, f"{p}.self_attn", cfg["encoder_attention_heads"], key_pad), w, f"{p}.self_attn_layer_norm")
            x = _ln(x + ffn(x), w, f"{p}.final_layer_norm")
    return x[0, :t]  # (T, E)


VARIANTS = {
    "base": ({}, True),
    "layer_norm_first": ({"extractor_mode": "layer_norm", "layer_norm_first": True, "conv_bias": True}, True),
    "no_post_extract_proj": ({"dim": 16}, False),  # conv dim == embed dim: fairseq has no projection
}


@pytest.fixture(scope="module")
def hubert_files(tmp_path_factory):
    out = {}
    for name, (kw, proj) in VARIANTS.items():
        cfg = fixtures.mhubert_config(**kw)
        w = fixtures.mhubert_weights(cfg, seed=len(out), post_extract_proj=proj)
        out[name] = (fixtures.write_mhubert(tmp_path_factory.mktemp(name) / "mhubert_base_25hz.pt", cfg, weights=w), cfg, w)
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_mhubert_matches_the_reference_forward(hubert_files, variant):
    path, cfg, w = hubert_files[variant]
    feats = MHubertFeatures(path, 11)
    assert feats.rate == 25.0 and feats.hop == 640
    for seconds in (1.0, 1.04):  # 24 and 25 frames: even, and odd (padded by the reference)
        wav = speechlike(seconds, 1)
        got = feats.vectors(Analysis(wav))
        assert got.shape == (feats.n_frames(len(wav)), cfg["encoder_embed_dim"])
        np.testing.assert_allclose(got, reference_hubert(w, cfg, wav, 11).numpy(), atol=2e-4, rtol=1e-4)
    low = MHubertFeatures(path, 3).vectors(Analysis(wav))  # a lower layer, without any final norm
    np.testing.assert_allclose(low, reference_hubert(w, cfg, wav, 3).numpy(), atol=2e-4, rtol=1e-4)


def test_mhubert_normalize_and_chunking_follow_the_reference(hubert_files, tmp_path, monkeypatch):
    _, cfg, w = hubert_files["base"]
    path = fixtures.write_mhubert(tmp_path / "norm.pt", cfg, normalize=True, weights=w)
    feats = MHubertFeatures(path, 11)
    wav = 3.0 * speechlike(1.3, 2) + 0.4
    normed = F.layer_norm(torch.from_numpy(wav)[None], (len(wav),))[0].numpy()  # whole waveform first
    monkeypatch.setattr(mhubert, "MAX_CHUNK", 6400)  # 3 chunks of 6400 samples and a 1600-sample tail, each on its own
    expected = [reference_hubert(w, cfg, normed[s : s + 6400], 11) for s in range(0, len(wav), 6400)]
    np.testing.assert_allclose(feats.vectors(Analysis(wav)), torch.cat(expected).numpy(), atol=2e-4, rtol=1e-4)
    monkeypatch.setattr(mhubert, "MIN_CHUNK", 2000)  # a tail under min_chunk is skipped
    assert len(feats.vectors(Analysis(wav))) == 3 * feats.n_frames(6400) == len(torch.cat(expected[:3]))


def test_mhubert_strict_keys(hubert_files, tmp_path):
    path, cfg, w = hubert_files["base"]
    model, _, _ = load_hubert_model(path)
    assert model.config.conv_stride == [5, 4, 4, 2, 2, 2] and model.config.num_hidden_layers == 11
    removed = {k: v for k, v in w.items() if k != "encoder.layers.3.fc1.weight"}
    with pytest.raises(ValueError, match=r"missing keys \['encoder.layers.3.feed_forward.intermediate_dense.weight'\]"):
        load_hubert_model(fixtures.write_mhubert(tmp_path / "removed.pt", cfg, weights=removed))
    renamed = {k.replace("encoder.layers.3.fc1.", "encoder.layers.3.fc_1."): v for k, v in w.items()}
    with pytest.raises(ValueError, match=r"unexpected keys \['encoder.layers.3.fc_1.bias', 'encoder.layers.3.fc_1.weight'\]"):
        load_hubert_model(fixtures.write_mhubert(tmp_path / "renamed.pt", cfg, weights=renamed))
    with pytest.raises(ValueError, match="shape mismatches"):
        load_hubert_model(fixtures.write_mhubert(tmp_path / "wide.pt", {**cfg, "encoder_ffn_embed_dim": 64}, weights=w))
    with pytest.raises(ValueError, match="converted HuBERT format"):
        torch.save({"model": w}, tmp_path / "fairseq.pt")
        load_hubert_model(tmp_path / "fairseq.pt")


def test_conv_feature_layers_are_parsed_without_eval():
    assert parse_conv_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 3") == [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 3
    assert math.prod(s for _, _, s in parse_conv_layers(fixtures.CONV_LAYERS)) == 640
    for bad in ("__import__('os').system('true')", "[(1, 2)]", "[(1,2,3)] * 2.5", "[]"):
        with pytest.raises(ValueError, match="conv_feature_layers"):
            parse_conv_layers(bad)


# --- VQ-VAE -------------------------------------------------------------------------------------
def reference_vqvae_keys(cfg):
    """Key -> shape of the reference VQ-VAE (docs/SPIRITLM.md 2.4), written out from the spec."""
    enc, dec, vq = cfg["encoder_params"], cfg["decoder_params"], cfg["vq_params"]
    width, emb, depth, inner = enc["width"], enc["output_emb_width"], enc["depth"], int(enc["m_conv"] * enc["width"])
    keys = {}

    def resnet(p):
        for d in range(depth):
            keys.update({f"{p}.model.{d}.model.1.weight": (inner, width, 3), f"{p}.model.{d}.model.1.bias": (inner,),
                         f"{p}.model.{d}.model.3.weight": (width, inner, 1), f"{p}.model.{d}.model.3.bias": (width,)})

    for lvl, (down, s) in enumerate(zip(enc["downs_t"], enc["strides_t"])):
        for i in range(down):
            p = f"encoder.level_blocks.{lvl}.model.{i}"
            keys.update({f"{p}.0.weight": (width, 2 if (lvl == 0 and i == 0) else width if i else emb, 2 * s), f"{p}.0.bias": (width,)})
            resnet(f"{p}.1")
        keys.update({f"encoder.level_blocks.{lvl}.model.{down}.weight": (emb, width, 3), f"encoder.level_blocks.{lvl}.model.{down}.bias": (emb,)})
        keys[f"vq.level_blocks.{lvl}.k"] = (vq["l_bins"], vq["emb_width"])
        keys.update({f"decoder.level_blocks.{lvl}.model.0.weight": (width, emb, 3), f"decoder.level_blocks.{lvl}.model.0.bias": (width,)})
        for i in range(dec["downs_t"][lvl]):
            p, out = f"decoder.level_blocks.{lvl}.model.{1 + i}", emb if i == dec["downs_t"][lvl] - 1 else width
            resnet(f"{p}.0")
            keys.update({f"{p}.1.weight": (width, out, 2 * s), f"{p}.1.bias": (out,)})
    keys.update({"decoder.out.weight": (2, emb, 3), "decoder.out.bias": (2,)})
    return keys


@pytest.mark.parametrize("levels", [1, 2])
def test_vqvae_state_dict_matches_the_reference_layout(levels):
    cfg = fixtures.vqvae_config(levels=levels)
    got = {k: tuple(v.shape) for k, v in F0VQVAE(VQVAEConfig.from_dict(cfg)).state_dict().items()}
    assert got == reference_vqvae_keys(cfg)


def test_vqvae_codes_rate_and_pickle_opt_in(tmp_path):
    folder = fixtures.write_f0_vqvae(tmp_path / "vq")
    model = load_f0_vqvae(folder)
    x = torch.randn(1, 2, 1828)
    codes = torch.cdist(model.encode_level0(x)[0].T, model.codebook).argmin(dim=1)  # nearest row, squared L2
    assert codes.shape == (1828 // 16,)
    fixtures.write_f0_vqvae(tmp_path / "pickled", extra={"args": argparse.Namespace(lr=1.0)})
    with pytest.raises(UnsafeFileError, match="argparse.Namespace") as err:
        load_f0_vqvae(tmp_path / "pickled")
    assert "--trust-pickle" in str(err.value)
    assert torch.equal(load_f0_vqvae(tmp_path / "pickled", allow_pickle=True).codebook, model.codebook)
    assert vqvae_main([str(tmp_path / "pickled"), "--trust-pickle"]) == 0  # one-time conversion
    assert torch.equal(load_f0_vqvae(tmp_path / "pickled").codebook, model.codebook)  # now without unpickling
    bad = fixtures.vqvae_config()
    bad["encoder_params"]["downs_t"] = [[2, 2]]
    with pytest.raises(ValueError, match="flat list of ints"):
        VQVAEConfig.from_dict(bad)


@settings(max_examples=25, deadline=None)
@given(st.floats(-80, 200), st.lists(st.booleans(), min_size=4, max_size=40))
def test_norm_features_ignore_the_speakers_register(offset, voiced):
    vuv = np.array(voiced, dtype=np.float32)
    f0 = np.linspace(120, 180, len(vuv)).astype(np.float32)  # interpolated: never 0
    a, b = vqvae_input(f0, vuv, True), vqvae_input(f0 + offset, vuv, True)
    assert torch.allclose(a, b, atol=1e-3) if vuv.any() else torch.equal(a[0, 1], b[0, 1])


# --- style encoder ------------------------------------------------------------------------------
def test_style_normalization_equals_the_hf_feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    wav = 0.3 * speechlike(0.7, 3) + 0.1
    hf = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False)
    np.testing.assert_allclose(normalize(wav), hf(wav, sampling_rate=16000, return_tensors="np").input_values[0], atol=1e-6)


def test_style_codes_pool_one_second_windows(tmp_path):
    folder = fixtures.write_style_encoder(tmp_path / "style")
    model = load_style_model(folder)
    feats = W2V2StyleFeatures(folder, model)
    assert feats.rate == 1.0 and feats.dim == 12
    wav = speechlike(2.3, 4)
    with torch.no_grad():
        h = model.projector(model.wav2vec2(torch.from_numpy(normalize(wav))[None]).last_hidden_state)[0]  # (T50, P)
    pooled = torch.stack([h[:50].mean(0), h[50:100].mean(0), h[100:].mean(0)])  # last partial window kept
    assert len(h) == 114 and math.ceil(len(h) / 50) == 3
    np.testing.assert_allclose(feats.vectors(Analysis(wav)), pooled.numpy(), atol=1e-5)
    broken = tmp_path / "broken"  # (a new folder: the loaded weights are memory-mapped from the old file)
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    torch.save({k: v.clone() for k, v in model.state_dict().items() if k != "classifier.bias"}, broken / "pytorch_model.bin")
    with pytest.raises(ValueError, match="classifier.bias"):
        load_style_model(broken)


# --- tokenizers from a release ------------------------------------------------------------------
@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return fixtures.make_release(tmp_path_factory.mktemp("release"), vocoders=False)


def test_expressive_tokenizer_counts_and_rates(release):
    tok = SpeechTokenizer.load(f"spiritlm-expressive:{release}")
    assert tok.rates == {"hubert": 24.99, "pitch": 12.5, "style": 1.0}
    assert tok.n_codes == {"hubert": 501, "pitch": 64, "style": 100}
    assert {k: ex.rate for k, ex in tok.streams.items()} == {"hubert": 25.0, "pitch": 12.5, "style": 1.0}
    units = tok.encode_units(speechlike(146160 / RATE, 5))  # the LibriSpeech test clip's length
    assert {k: len(v) for k, v in units.items()} == {"hubert": 228, "pitch": 114, "style": 10}
    assert max(units["hubert"]) < 500 and len(set(units["hubert"])) > 5
    base = speech_tokenizer("spiritlm-base", release)
    assert base.rates == {"hubert": 24.99} and base.encode_units(speechlike(146160 / RATE, 5))["hubert"] == units["hubert"]


def test_release_tokenizer_saves_as_a_safe_directory(release, tmp_path):
    tok = SpeechTokenizer.load(f"spiritlm-expressive:{release}")
    wav = speechlike(2.2, 6)
    loaded = SpeechTokenizer.load(tok.save(tmp_path / "tok"))
    assert loaded.fingerprint == tok.fingerprint and loaded.rates == tok.rates
    assert loaded.encode_string(wav) == tok.encode_string(wav)
    files = sorted(p.name for p in (tmp_path / "tok").rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith((".pt", ".bin", ".pkl"))], files  # safe files only


def test_missing_release_files_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    with pytest.raises(ValueError, match="SPIRITLM_CHECKPOINTS_DIR"):
        SpeechTokenizer.load("spiritlm-base:")
    fixtures.write_mhubert(tmp_path / "speech_tokenizer/hubert_25hz/mhubert_base_25hz.pt")
    with pytest.raises(FileNotFoundError, match="L11_quantizer_500.pt"):
        SpeechTokenizer.load(f"spiritlm-base:{tmp_path}")
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vqvae_f0_quantizer/config.yaml"):
        SpeechTokenizer.load("spiritlm-expressive:")

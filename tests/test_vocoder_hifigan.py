"""The unit HiFi-GAN: SpiritLM's state-dict names and shapes, checkpoint loading, forward paths."""

import dataclasses
import io

import pytest
import torch
from torch import nn

from tinywave.vocoder.hifigan import HifiGanConfig, UnitHiFiGAN, small_config, upsample_plan

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)

# A SpiritLM-like base vocoder config.json (the release's hifigan_spiritlm_base; speech-resynthesis' expresso config)
SPIRIT_BASE = {
    "resblock": "1", "upsample_rates": [5, 4, 4, 2, 2, 2], "upsample_kernel_sizes": [11, 8, 8, 4, 4, 4],
    "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3,
    "num_embeddings": 501, "embedding_dim": 128, "model_in_dim": 384, "code_hop_size": 640, "sampling_rate": 16000,
    "multispkr": "from_input_file", "num_speakers": 4, "multistyle": True, "num_styles": 100,
    "dur_predictor_params": {"encoder_embed_dim": 128, "var_pred_hidden_dim": 128, "var_pred_kernel_size": 3, "var_pred_dropout": 0.5},
}


def reference_keys(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape, written out from the release's state-dict key list, independently of the module."""
    e, c, hd = cfg["embedding_dim"], cfg["upsample_initial_channel"], cfg["dur_predictor_params"]["var_pred_hidden_dim"]
    keys = {"dict.weight": (cfg["num_embeddings"], e)}
    if cfg.get("num_f0_tokens"):
        keys["f0_dict.weight"] = (cfg["num_f0_tokens"], e)
    if cfg.get("num_style_tokens"):
        keys["style_dict.weight"] = (cfg["num_style_tokens"], e)
    keys["spkr.weight"] = (cfg["num_speakers"], e)
    if cfg.get("multistyle"):
        keys["style.weight"] = (cfg["num_styles"], e)
    keys |= {"dur_predictor.conv1.0.weight": (hd, e, 3), "dur_predictor.conv1.0.bias": (hd,),
             "dur_predictor.ln1.weight": (hd,), "dur_predictor.ln1.bias": (hd,),
             "dur_predictor.conv2.0.weight": (hd, hd, 3), "dur_predictor.conv2.0.bias": (hd,),
             "dur_predictor.ln2.weight": (hd,), "dur_predictor.ln2.bias": (hd,),
             "dur_predictor.proj.weight": (1, hd), "dur_predictor.proj.bias": (1,)}
    keys |= {"conv_pre.weight_g": (c, 1, 1), "conv_pre.weight_v": (c, cfg["model_in_dim"], 7), "conv_pre.bias": (c,)}
    nk = len(cfg["resblock_kernel_sizes"])
    for i, k in enumerate(cfg["upsample_kernel_sizes"]):
        cin, cout = c // 2**i, c // 2 ** (i + 1)
        keys |= {f"ups.{i}.weight_g": (cin, 1, 1), f"ups.{i}.weight_v": (cin, cout, k), f"ups.{i}.bias": (cout,)}
        for j, kr in enumerate(cfg["resblock_kernel_sizes"]):
            for conv in ("convs1", "convs2"):
                for m in range(3):
                    p = f"resblocks.{i * nk + j}.{conv}.{m}"
                    keys |= {f"{p}.weight_g": (cout, 1, 1), f"{p}.weight_v": (cout, cout, kr), f"{p}.bias": (cout,)}
    c_last = c // 2 ** len(cfg["upsample_rates"])
    keys |= {"conv_post.weight_g": (1, 1, 1), "conv_post.weight_v": (1, c_last, 7), "conv_post.bias": (1,)}
    return keys


@pytest.mark.parametrize("variant", ["base", "expressive"])
def test_state_dict_keys_and_shapes_match_spiritlm(variant):
    cfg = dict(SPIRIT_BASE)
    if variant == "expressive":  # code + f0 code + style code + speaker, no global style
        cfg |= {"num_f0_tokens": 64, "f0_hop_size": 1280, "num_style_tokens": 100, "style_hop_size": 16000,
                "multistyle": False, "model_in_dim": 512}
    model = UnitHiFiGAN(HifiGanConfig.from_json(cfg))
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == reference_keys(cfg)
    assert 13.5e6 < sum(v.numel() for v in model.state_dict().values()) < 15.5e6  # MODEL_CARD: 14 M / 15 M


def test_spiritlm_style_generator_pt_loads_strictly_with_weights_only():
    cfg = small_config(20, 40, channels=16, embedding_dim=8, num_speakers=3, num_f0_tokens=6)
    src = UnitHiFiGAN(cfg).eval()
    buf = io.BytesIO()
    torch.save({"generator": src.state_dict()}, buf)  # SpiritLM's container
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["generator"]
    dst = UnitHiFiGAN(cfg).eval()
    assert dst.load_state_dict(state, strict=True).missing_keys == []
    code, f0 = torch.randint(0, 20, (1, 12)), torch.randint(0, 6, (1, 6))
    spk = torch.tensor([2])
    assert torch.equal(src(code, f0, speaker=spk), dst(code, f0, speaker=spk))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        UnitHiFiGAN(cfg).load_state_dict({**state, "extra.weight": torch.zeros(1)}, strict=True)


def test_weight_g_and_weight_v_mean_what_old_style_weight_norm_means():
    model = UnitHiFiGAN(small_config(10, 40, channels=16, embedding_dim=8)).eval()
    state = model.state_dict()
    legacy = nn.Conv1d(8, 16, 7, padding=3)
    with pytest.warns(FutureWarning):
        legacy = torch.nn.utils.weight_norm(legacy)  # the layout SpiritLM's checkpoints were saved with
    legacy.load_state_dict({k[len("conv_pre."):]: v for k, v in state.items() if k.startswith("conv_pre.")}, strict=True)
    x = torch.randn(2, 8, 5)
    assert torch.allclose(legacy(x), model.conv_pre(x), atol=1e-6)


def test_removing_weight_norm_keeps_the_output():
    model = UnitHiFiGAN(small_config(10, 80, channels=16, embedding_dim=8, num_speakers=2)).eval()
    code, spk = torch.randint(0, 10, (1, 9)), torch.tensor([1])
    before = model(code, speaker=spk)
    model.remove_weight_norm()
    assert torch.allclose(before, model(code, speaker=spk), atol=1e-5)
    assert "conv_pre.weight" in model.state_dict() and "conv_pre.weight_g" not in model.state_dict()


def test_forward_lengths_raw_streams_and_predicted_durations():
    cfg = small_config(12, 80, channels=16, embedding_dim=8, num_f0_tokens=5, num_style_tokens=4)
    model = UnitHiFiGAN(cfg).eval()
    code = torch.randint(0, 12, (1, 10))
    f0, style = torch.randint(0, 5, (1, 5)), torch.randint(0, 4, (1, 1))  # 2 and 25 units per code
    assert model(code, f0, style).shape == (1, 1, 10 * 80)
    dur = model.predict_durations(code)
    assert dur.shape == (10,) and int(dur.min()) >= 1
    aligned = model(code, torch.randint(0, 5, (1, 10)), torch.randint(0, 4, (1, 10)), durations=dur)
    assert aligned.shape == (1, 1, int(dur.sum()) * 80)
    with pytest.raises(ValueError, match="not aligned"):
        model(code, torch.randint(0, 5, (1, 9)), style)
    with pytest.raises(ValueError, match="pitch/style codes"):
        model(code)


def test_config_round_trip_and_errors():
    cfg = HifiGanConfig.from_json(SPIRIT_BASE)
    assert HifiGanConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="model_in_dim=256 must equal"):
        HifiGanConfig.from_json({**SPIRIT_BASE, "model_in_dim": 256})
    with pytest.raises(ValueError, match="var_pred_kernel_size == 3"):
        HifiGanConfig.from_json({**SPIRIT_BASE, "dur_predictor_params": {**SPIRIT_BASE["dur_predictor_params"], "var_pred_kernel_size": 5}})
    with pytest.raises(ValueError, match="continuous f0"):
        HifiGanConfig.from_json({**SPIRIT_BASE, "f0": True})
    with pytest.raises(ValueError, match="missing vocoder config fields"):
        HifiGanConfig.from_json({"embedding_dim": 8})


@pytest.mark.parametrize("hop", [640, 1280, 320, 160, 120])
def test_upsample_plan_reaches_the_unit_hop(hop):
    rates, kernels = upsample_plan(hop)
    assert torch.tensor(rates).prod().item() == hop and all(r <= 8 for r in rates)
    cfg = dataclasses.replace(small_config(4, hop, channels=32, embedding_dim=4, kernels=(3,)), dur_predictor_params=None)
    assert UnitHiFiGAN(cfg)(torch.zeros(1, 3, dtype=torch.long)).shape[-1] == 3 * hop
    with pytest.raises(ValueError, match="prime factor"):
        upsample_plan(7 * 64)


@pytest.mark.parametrize("hop, istft_hop", [(320, 40), (1280, 160), (640, 640)])
def test_istft_head_upsamples_to_the_frame_rate_and_keeps_lengths(hop, istft_hop):
    cfg = small_config(10, hop, channels=32, embedding_dim=8, num_speakers=2, kernels=(3,), istft_hop=istft_hop)
    assert cfg.gen_istft_n_fft == 4 * istft_hop and torch.tensor(cfg.upsample_rates).prod().item() * istft_hop == hop
    assert HifiGanConfig.from_json(cfg.to_json()) == cfg
    model = UnitHiFiGAN(cfg).eval()
    assert model.conv_post.weight.shape[0] == cfg.gen_istft_n_fft + 2  # log magnitude + phase per bin
    code, spk = torch.randint(0, 10, (2, 7)), torch.tensor([0, 1])
    wav = model(code, speaker=spk)
    assert wav.shape == (2, 1, 7 * hop) and torch.isfinite(wav).all()
    dur = model.predict_durations(code[:1])
    assert model(code[:1], speaker=spk[:1], durations=dur).shape[-1] == int(dur.sum()) * hop
    before = model(code, speaker=spk)
    model.remove_weight_norm()  # folding weight norm keeps the output with the head too
    assert torch.allclose(before, model(code, speaker=spk), atol=1e-5)


def test_istft_head_config_errors_name_the_fields():
    good = small_config(10, 320, channels=32, embedding_dim=8, istft_hop=40).to_json()
    with pytest.raises(ValueError, match="set both gen_istft_n_fft and gen_istft_hop_size"):
        HifiGanConfig.from_json({k: v for k, v in good.items() if k != "gen_istft_n_fft"})
    with pytest.raises(ValueError, match="must equal code_hop_size=320"):
        HifiGanConfig.from_json({**good, "gen_istft_hop_size": 80})
    with pytest.raises(ValueError, match="must be even and >= gen_istft_hop_size"):
        HifiGanConfig.from_json({**good, "gen_istft_n_fft": 20})
    with pytest.raises(ValueError, match="must divide the unit hop"):
        small_config(10, 320, istft_hop=48)
    plain = HifiGanConfig.from_json(SPIRIT_BASE)  # SpiritLM configs have no head: unchanged behaviour
    assert not plain.istft and "gen_istft_n_fft" not in plain.to_json()


def test_pitch_and_style_codes_follow_the_tokenizers_rates_also_at_fractional_ratios():
    from tinywave.vocoder.hifigan import code_index
    from tinywave.vocoder.units import Units, deduplicate

    # SpiritLM: 25 Hz units, 12.5 Hz pitch, 1 Hz style (2 and 25 frames per code); the demo's: 12.5 Hz units, 12.5 Hz pitch, 1 Hz style
    spirit = small_config(10, 640, channels=16, embedding_dim=4, num_f0_tokens=5, num_style_tokens=3)
    demo = small_config(10, 1280, channels=16, embedding_dim=4, num_f0_tokens=5, num_style_tokens=3, f0_hop_size=1280, style_hop_size=16000)
    assert (spirit.hubert_to_f0, spirit.hubert_to_style) == (2, 25) and (demo.hubert_to_f0, demo.hubert_to_style) == (1, 12.5)
    assert HifiGanConfig.from_json(dataclasses.asdict(demo)).hubert_to_style == 12.5  # config.json keeps the hops
    assert code_index(30, 12.5, 3).tolist() == [0] * 13 + [1] * 12 + [2] * 5  # frame t hears code floor(t / 12.5)
    model = UnitHiFiGAN(demo).eval()
    code, f0, style = torch.randint(0, 10, (1, 25)), torch.randint(0, 5, (1, 25)), torch.tensor([[0, 2]])
    x = model.embed(code, f0, style)  # (1, 3 * 4, 25): units, pitch, style tables
    assert torch.equal(x[0, 4:8], model.f0_dict(f0)[0].T)  # one pitch code per unit frame
    assert torch.equal(x[0, 8:12, :13], model.style_dict(torch.tensor([0]))[0][:, None].expand(4, 13))
    assert torch.equal(x[0, 8:12, 13:], model.style_dict(torch.tensor([2]))[0][:, None].expand(4, 12))
    with pytest.raises(ValueError, match="not aligned"):
        model.embed(code, f0[:, :20], style)  # 20 pitch codes under 25 frames at 1 per frame
    # deduplicated units take the code under each kept unit's first frame
    units = Units((1, 1, 2, 2, 2, 3), pitch=(4, 4, 0, 1, 1, 2), style=(7,))
    dedup, runs = deduplicate(units, demo.hubert_to_f0, demo.hubert_to_style)
    assert dedup.hubert == (1, 2, 3) and dedup.pitch == (4, 0, 2) and dedup.style == (7, 7, 7) and runs.tolist() == [2, 3, 1]

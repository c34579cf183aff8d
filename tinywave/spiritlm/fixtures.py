"""Tiny SpiritLM releases: the release's file names, containers, dict nesting, key names and
config fields, with random weights and small sizes. Used by the tests and the docs example:

    from tinywave.spiritlm.fixtures import make_release
    root = make_release("/tmp/spiritlm_tiny")           # speech_tokenizer/ + spiritlm_model/
    tok = SpeechTokenizer.load(f"spiritlm-expressive:{root}")

Sizes: mHuBERT 11 layers x 32 wide with a 640-sample hop (25 Hz), a 500-unit linear
quantizer, a VQ-VAE with four stride-2 levels of downsampling (12.5 Hz) and 64 bins, a
wav2vec2 style classifier with 100 labels (320-sample hop, 1 Hz codes), HiFi-GAN
vocoders with a 640-sample hop, and Llama LMs 16 wide over SpiritLM's exact vocabularies
(32000 SentencePiece text pieces + speech tokens; 32512 / 32768 embedding rows).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import torch
import yaml
from sentencepiece import sentencepiece_model_pb2 as pb

from tinywave.spiritlm.f0_vqvae import F0VQVAE, VQVAEConfig
from tinywave.spiritlm.mhubert import parse_conv_layers
from tinywave.spiritlm.release import COMPONENTS
from tinywave.text.vocab import VocabLayout
from tinywave.vocoder.hifigan import HifiGanConfig, UnitHiFiGAN, small_config

CONV_LAYERS = "[(16,10,5)] + [(16,4,4)] * 2 + [(16,2,2)] * 3"  # hop 5*4*4*8 = 640: 25 Hz
SPEAKERS = ("ex01", "ex02", "ex03", "ex04")


def mhubert_config(layers: int = 11, dim: int = 32, extractor_mode: str = "default", layer_norm_first: bool = False,
                   conv_bias: bool = False) -> dict[str, Any]:
    """A fairseq-style ``model_cfg`` dict (plus fields the loader must ignore)."""
    return {"_name": "hubert", "label_rate": 25.0, "extractor_mode": extractor_mode, "conv_feature_layers": CONV_LAYERS,
            "conv_bias": conv_bias, "encoder_layers": layers, "encoder_embed_dim": dim, "encoder_ffn_embed_dim": 48,
            "encoder_attention_heads": 4, "activation_fn": "gelu", "layer_norm_first": layer_norm_first, "conv_pos": 8,
            "conv_pos_groups": 4, "dropout": 0.1, "encoder_layerdrop": 0.05, "required_seq_len_multiple": 2,
            "logit_temp": 0.1, "skip_masked": False}


def mhubert_weights(cfg: dict[str, Any], seed: int = 0, post_extract_proj: bool = True) -> dict[str, torch.Tensor]:
    """Random weights under fairseq's key names (docs/SPIRITLM.md 2.1), built from the config alone."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def norm(prefix: str, n: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": 1 + rnd(n, scale=0.1), f"{prefix}.bias": rnd(n, scale=0.1)}

    conv, e, f = parse_conv_layers(cfg["conv_feature_layers"]), cfg["encoder_embed_dim"], cfg["encoder_ffn_embed_dim"]
    w: dict[str, torch.Tensor] = {"mask_emb": rnd(e)}
    c_in = 1
    for i, (c, k, _) in enumerate(conv):
        w[f"feature_extractor.conv_layers.{i}.0.weight"] = rnd(c, c_in, k, scale=1.0 / (c_in * k) ** 0.5)
        if cfg["conv_bias"]:
            w[f"feature_extractor.conv_layers.{i}.0.bias"] = rnd(c, scale=0.05)
        if cfg["extractor_mode"] == "layer_norm":
            w |= norm(f"feature_extractor.conv_layers.{i}.2.1", c)
        elif i == 0:
            w |= norm("feature_extractor.conv_layers.0.2", c)
        c_in = c
    w |= norm("layer_norm", c_in)
    if post_extract_proj:
        w |= {"post_extract_proj.weight": rnd(e, c_in, scale=c_in ** -0.5), "post_extract_proj.bias": rnd(e, scale=0.05)}
    v = rnd(e, e // cfg["conv_pos_groups"], cfg["conv_pos"], scale=0.1)
    w |= {"encoder.pos_conv.0.weight_v": v, "encoder.pos_conv.0.weight_g": v.norm(dim=(0, 1), keepdim=True) * 0.5,
          "encoder.pos_conv.0.bias": rnd(e, scale=0.05)}
    w |= norm("encoder.layer_norm", e)
    for j in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{j}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):  # small residual branches: frames stay distinct
            scale = e ** -0.5 * (0.3 if proj == "out_proj" else 1.0)
            w |= {f"{p}.self_attn.{proj}.weight": rnd(e, e, scale=scale), f"{p}.self_attn.{proj}.bias": rnd(e, scale=0.05)}
        w |= norm(f"{p}.self_attn_layer_norm", e) | norm(f"{p}.final_layer_norm", e)
        w |= {f"{p}.fc1.weight": rnd(f, e, scale=e ** -0.5), f"{p}.fc1.bias": rnd(f, scale=0.05),
              f"{p}.fc2.weight": rnd(e, f, scale=0.3 * f ** -0.5), f"{p}.fc2.bias": rnd(e, scale=0.05)}
    w |= {"label_embs_concat": rnd(504, 16), "final_proj.weight": rnd(16, e), "final_proj.bias": rnd(16)}  # dropped on load
    return w


def write_mhubert(path: Path, cfg: dict[str, Any] | None = None, seed: int = 0, normalize: bool = False,
                  weights: dict[str, torch.Tensor] | None = None) -> Path:
    cfg = cfg or mhubert_config()
    ckpt = {"model_cfg": cfg, "task_cfg": {"_name": "hubert_pretraining", "sample_rate": 16000, "normalize": normalize,
                                           "label_rate": 25.0}, "model_weight": weights if weights is not None else mhubert_weights(cfg, seed),
            "dictionaries_symbols": [[str(i) for i in range(500)]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def write_unit_quantizer(path: Path, dim: int = 32, vocab: int = 500, seed: int = 1) -> Path:
    """``{model_cfg, model_weight}`` with h1 = dim - mid//4, h2 = dim - mid//2 (mid = upstream_dim - vocab - 1)."""
    upstream = vocab + 1 + 40  # mid 40: h1 = dim - 10, h2 = dim - 20
    mid = upstream - vocab - 1
    h1, h2 = dim - mid // 4, dim - mid // 2
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(dim, h1), torch.nn.LeakyReLU(), torch.nn.Linear(h1, h2), torch.nn.LeakyReLU(),
                              torch.nn.Linear(h2, vocab + 1))
    with torch.no_grad():  # no bias towards one class: codes follow the features
        for i in (0, 2, 4):
            net[i].weight.mul_(3.0)
            net[i].bias.zero_()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_cfg": {"vocab_size": vocab, "dim": dim, "upstream_dim": upstream}, "model_weight": net.state_dict()}, path)
    return path


def vqvae_config(width: int = 8, emb: int = 8, levels: int = 1) -> dict[str, Any]:
    block = {"width": width, "depth": 2, "m_conv": 1.0, "dilation_growth_rate": 2, "dilation_cycle": None, "zero_out": False, "res_scale": False}
    common = {"input_emb_width": 2, "output_emb_width": emb, "levels": levels, "downs_t": [4] * levels, "strides_t": [2] * levels}
    return {"encoder_params": {**common, **block}, "decoder_params": {**common, **block, "reverse_decoder_dilation": True, "checkpoint_res": 0},
            "vq_params": {"l_bins": 64, "emb_width": emb, "mu": 0.99, "levels": levels}, "features": "norm_f0_interp,vuv",
            "speaker_norm": False, "speaker_stats": None, "learning_rate": 0.0002}


def write_f0_vqvae(folder: Path, config: dict[str, Any] | None = None, seed: int = 2, extra: dict[str, Any] | None = None) -> Path:
    """``config.yaml`` + ``model.pt`` = {"model": state_dict, **extra} (``extra`` may hold non-tensor objects)."""
    config = config or vqvae_config()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    torch.manual_seed(seed)
    model = F0VQVAE(VQVAEConfig.from_dict(config))
    with torch.no_grad():
        for block in model.vq.level_blocks:  # codebook rows spread like encoder outputs
            block.k.copy_(torch.randn_like(block.k) * 0.3)
    torch.save({"model": model.state_dict(), **(extra or {})}, folder / "model.pt")
    return folder


def write_style_encoder(folder: Path, seed: int = 3, labels: int = 100) -> Path:
    """A ``Wav2Vec2ForSequenceClassification`` folder (config.json + pytorch_model.bin), 320-sample hop."""
    # lazy: transformers is heavy (~3 s); the vocoder and VQ-VAE fixtures are used without it (tests/test_vocoder_backends.py)
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    cfg = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                         conv_dim=(8,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                         num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, num_labels=labels, classifier_proj_size=12)
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification(cfg).eval()
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(str(folder))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def vocoder_config(expressive: bool) -> dict[str, Any]:
    """A SpiritLM-style ``config.json``: 640-sample hop, speaker table, base: global styles; expressive: f0/style codes."""
    cfg = small_config(501, 640, channels=16, embedding_dim=8, num_speakers=len(SPEAKERS), kernels=(3, 5), dur_hidden=8,
                       num_f0_tokens=64 if expressive else None, num_style_tokens=100 if expressive else None).to_json()
    cfg |= {"resblock": "1", "multispkr": "from_input_file", "segment_size": 8960, "sampling_rate": 16000, "num_gpus": 0}
    if not expressive:
        cfg |= {"multistyle": "from_input_file", "num_styles": 10, "model_in_dim": 3 * cfg["embedding_dim"]}
    return cfg


def write_vocoder(folder: Path, expressive: bool, seed: int = 4) -> Path:
    cfg = vocoder_config(expressive)
    torch.manual_seed(seed)
    model = UnitHiFiGAN(HifiGanConfig.from_json(cfg))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    torch.save({"generator": model.state_dict()}, folder / "generator.pt")
    (folder / "speakers.txt").write_text("".join(f"{s}\n" for s in SPEAKERS), encoding="utf-8")
    if not expressive:
        (folder / "styles.txt").write_text("".join(f"style{i}\n" for i in range(10)), encoding="utf-8")
    return folder


def sentencepiece_model(path: Path, speech_tokens: list[str] = ()) -> Path:
    """A Llama-2-shaped BPE SentencePiece model: <unk> <s> </s>, 256 byte pieces, 31741 text pieces
    (32000 in all), then ``speech_tokens`` as user-defined pieces (ids 32000...)."""
    m = pb.ModelProto()
    m.trainer_spec.model_type, m.trainer_spec.byte_fallback, m.trainer_spec.vocab_size = pb.TrainerSpec.BPE, True, 32000
    m.normalizer_spec.name, m.normalizer_spec.add_dummy_prefix, m.normalizer_spec.remove_extra_whitespaces = "identity", True, False
    kinds = pb.ModelProto.SentencePiece

    def add(piece: str, score: float, kind: int) -> None:
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, kind

    for piece in ("<unk>", "<s>", "</s>"):
        add(piece, 0.0, kinds.UNKNOWN if piece == "<unk>" else kinds.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, kinds.BYTE)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = (a + "".join(rest) for n in (2, 3, 4) for a in ("\u2581",) + tuple(letters) for rest in itertools.product(letters, repeat=n - 1))
    merged = list(itertools.islice(words, 32000 - 259 - 27))
    for i, piece in enumerate(merged):
        add(piece, -float(i), kinds.NORMAL)
    for i, ch in enumerate("\u2581" + letters):
        add(ch, -float(len(merged) + i), kinds.NORMAL)
    for token in speech_tokens:
        add(token, 0.0, kinds.USER_DEFINED)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(m.SerializeToString())
    return path


def write_lm(folder: Path, expressive: bool, tokens_in: str = "tokenizer.model", seed: int = 5) -> Path:
    """A SpiritLM LM folder: tiny Llama (pytorch_model.bin) + SentencePiece tokenizer with the speech tokens
    as pieces of ``tokenizer.model`` or as ``added_tokens_decoder`` entries of ``tokenizer_config.json``."""
    # lazy: transformers is heavy (~3 s); the vocoder and VQ-VAE fixtures are used without it (tests/test_vocoder_backends.py)
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    layout = VocabLayout(32000, 501, 64 if expressive else 0, 100 if expressive else 0)
    speech = layout.speech_tokens()
    sentencepiece_model(folder / "tokenizer.model", speech if tokens_in == "tokenizer.model" else [])
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    tok_cfg: dict[str, Any] = {"add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False, "legacy": False,
                               "model_max_length": 1000000000000000019884624838656, "pad_token": None, "sp_model_kwargs": {},
                               "tokenizer_class": "LlamaTokenizer", **special}
    if tokens_in == "tokenizer_config.json":
        entry = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
        tok_cfg["added_tokens_decoder"] = {str(i): {"content": t, **entry, "special": i < 3} for i, t in enumerate(("<unk>", "<s>", "</s>"))}
        tok_cfg["added_tokens_decoder"] |= {str(layout.text_id + i): {"content": t, **entry, "special": False} for i, t in enumerate(speech)}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    config = LlamaConfig(vocab_size=32768 if expressive else 32512, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    config.save_pretrained(str(folder))
    GenerationConfig(bos_token_id=1, eos_token_id=2).save_pretrained(str(folder))
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    return folder


def make_release(root: str | Path, speech: bool = True, vocoders: bool = True, lms: bool = False, normalize: bool = False) -> Path:
    """A tiny release under ``root`` (the folder to pass as ``spiritlm-base:ROOT``)."""
    root = Path(root)
    path = {name: root / rel for name, (rel, _) in COMPONENTS.items()}
    if speech:
        write_mhubert(path["mhubert"], normalize=normalize)
        write_unit_quantizer(path["unit_quantizer"])
        write_f0_vqvae(path["f0_vqvae"])
        write_style_encoder(path["style_encoder"])
    if vocoders:
        write_vocoder(path["vocoder_base"], expressive=False)
        write_vocoder(path["vocoder_expressive"], expressive=True)
    if lms:
        write_lm(path["lm_base"], expressive=False)
        write_lm(path["lm_expressive"], expressive=True, tokens_in="tokenizer_config.json")
    return root

"""HuBERT-family encoders: loading teachers, building teacher/student configs, hidden states.

Teachers are ``HubertModel``, ``WavLMModel`` or ``Wav2Vec2Model`` directories; students
are always ``HubertModel`` (so a distilled student loads with
``HubertModel.from_pretrained`` and nothing of ours). Hidden states follow the HF/s3prl
convention: index 0 is the input of the first transformer layer (CNN features after the
projection and positional convolution), index k the output of layer k.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import HubertConfig, HubertModel, PreTrainedModel, Wav2Vec2Model, WavLMModel

from tinywave.hub import resolve_model_dir

FAMILIES: dict[str, type[PreTrainedModel]] = {"hubert": HubertModel, "wavlm": WavLMModel, "wav2vec2": Wav2Vec2Model}
# the HuBERT-Base CNN: 400-sample receptive field, 320-sample (20 ms) stride
BASE_CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
BASE_CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)
_NO_DROPOUT = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
                   final_dropout=0.0, layerdrop=0.0)


def load_encoder(path: str | Path) -> PreTrainedModel:
    """A HuBERT-family model from a local Hugging Face directory (or a hub id in the local HF cache), in eval mode."""
    path = resolve_model_dir(path, "encoder")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a model directory (no config.json); pass a directory written by "
                                f"`tinywave sfm pretrain`/`sfm distill` or a Hugging Face HuBERT/WavLM/wav2vec2 checkpoint")
    model_type = json.loads(cfg_file.read_text()).get("model_type", "")
    if model_type not in FAMILIES:
        raise ValueError(f"{cfg_file}: model_type {model_type!r} is not a supported encoder; expected one of {sorted(FAMILIES)}")
    return FAMILIES[model_type].from_pretrained(str(path)).eval()


def teacher_config(hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
                   conv_channels: int = 128, pos_conv_kernel: int = 32) -> HubertConfig:
    """A small HuBERT-style config with the Base CNN strides (320-sample frames).

    ``feat_extract_norm="layer"`` (per-frame LayerNorm in every conv layer) so padding a
    batch never changes the features of the real frames.
    """
    return HubertConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size, conv_dim=(conv_channels,) * len(BASE_CONV_KERNEL),
        conv_kernel=BASE_CONV_KERNEL, conv_stride=BASE_CONV_STRIDE, feat_extract_norm="layer", conv_bias=True,
        num_conv_pos_embeddings=pos_conv_kernel, num_conv_pos_embedding_groups=min(16, num_heads * 2),
        mask_time_prob=0.05, mask_time_length=5, **_NO_DROPOUT)


def student_config(teacher: PreTrainedModel, hidden_size: int, num_layers: int, num_heads: int,
                   intermediate_size: int) -> HubertConfig:
    """A HuBERT config sharing the teacher's CNN front end, with its own transformer size."""
    t = teacher.config
    groups = math.gcd(t.num_conv_pos_embedding_groups, hidden_size)
    return HubertConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size, conv_dim=tuple(t.conv_dim), conv_kernel=tuple(t.conv_kernel),
        conv_stride=tuple(t.conv_stride), feat_extract_norm=t.feat_extract_norm, conv_bias=t.conv_bias,
        feat_extract_activation=t.feat_extract_activation, num_conv_pos_embeddings=t.num_conv_pos_embeddings,
        num_conv_pos_embedding_groups=groups, do_stable_layer_norm=t.do_stable_layer_norm,
        feat_proj_layer_norm=getattr(t, "feat_proj_layer_norm", True), mask_time_prob=0.0, **_NO_DROPOUT)


def build_student(teacher: PreTrainedModel, config: HubertConfig, init_layers_from_teacher: bool, seed: int) -> HubertModel:
    """A ``HubertModel`` student: the teacher's CNN copied; projection, positional conv and
    (DistilHuBERT-style) the first transformer layers copied too when the widths match."""
    torch.manual_seed(seed)
    student = HubertModel(config)
    student.feature_extractor.load_state_dict(teacher.feature_extractor.state_dict())
    same_width = config.hidden_size == teacher.config.hidden_size
    if same_width and type(teacher) is HubertModel:
        student.feature_projection.load_state_dict(teacher.feature_projection.state_dict())
        student.encoder.pos_conv_embed.load_state_dict(teacher.encoder.pos_conv_embed.state_dict())
        student.encoder.layer_norm.load_state_dict(teacher.encoder.layer_norm.state_dict())
        if init_layers_from_teacher and config.intermediate_size == teacher.config.intermediate_size:
            for dst, src in zip(student.encoder.layers, teacher.encoder.layers):
                dst.load_state_dict(src.state_dict())
    return student


def downsample_rate(config) -> int:
    """Samples per output frame: the product of the CNN strides (320 for HuBERT-Base)."""
    return int(math.prod(config.conv_stride))


def frame_lengths(config, n_samples: torch.Tensor) -> torch.Tensor:
    """Number of CNN output frames for ``n_samples`` input samples (floor conv arithmetic)."""
    n = n_samples.clone()
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        n = torch.div(n - kernel, stride, rounding_mode="floor") + 1
    return n.clamp(min=0)


def frame_mask(config, lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, T) bool: True on the real frames of each padded item."""
    return torch.arange(n_frames)[None, :] < frame_lengths(config, lengths)[:, None]


def sample_mask(lengths: torch.Tensor, n_samples: int) -> torch.Tensor:
    """(B, N) long attention mask over padded waveforms."""
    return (torch.arange(n_samples)[None, :] < lengths[:, None]).long()


def hidden_states(model: PreTrainedModel, wav: torch.Tensor, lengths: torch.Tensor | None = None,
                  mask_time_indices: torch.Tensor | None = None,
                  features: torch.Tensor | None = None) -> list[torch.Tensor]:
    """All hidden states, each (B, T, D): index 0 = front end, k = output of layer k.

    The padding mask is passed only to models whose CNN normalizes per frame
    (``feat_extract_norm="layer"``); group-norm CNNs (HuBERT-Base) get zero-padded input
    without a mask, as they were trained. ``features`` (B, C, T): the CNN output for
    ``wav`` computed beforehand (e.g. by a teacher sharing the same frozen CNN); the
    model's own CNN is then skipped and everything after it runs unchanged.
    """
    use_mask = lengths is not None and getattr(model.config, "feat_extract_norm", "layer") == "layer"
    attn = sample_mask(lengths, wav.shape[1]) if use_mask else None
    with precomputed_front_end(model, features):
        out = model(wav, attention_mask=attn, mask_time_indices=mask_time_indices, output_hidden_states=True)
    return list(out.hidden_states)


class _Precomputed(nn.Module):
    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.features = features

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.features  # (B, C, T)


@contextlib.contextmanager
def precomputed_front_end(model: PreTrainedModel, features: torch.Tensor | None) -> Iterator[None]:
    """Within the block, ``model.feature_extractor`` returns ``features`` instead of running the CNN."""
    if features is None:
        yield
        return
    original = model.feature_extractor
    model.feature_extractor = _Precomputed(features)
    try:
        yield
    finally:
        model.feature_extractor = original


@torch.no_grad()
def front_end(model: PreTrainedModel, wav: torch.Tensor) -> torch.Tensor:
    """The CNN features (B, C, T) of a zero-padded batch of waveforms (no gradient)."""
    return model.feature_extractor(wav)


def same_front_end(a: PreTrainedModel, b: PreTrainedModel) -> bool:
    """True when both CNN front ends hold identical weights (so features can be shared)."""
    sa, sb = a.feature_extractor.state_dict(), b.feature_extractor.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()

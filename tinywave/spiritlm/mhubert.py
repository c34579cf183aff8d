"""SpiritLM's mHuBERT 25 Hz encoder (``hubert_25hz/mhubert_base_25hz.pt``) as a transformers ``HubertModel``.

The file is SpiritLM's "converted" format: ``{"model_cfg": dict, "task_cfg": dict,
"model_weight": state dict, "dictionaries_symbols": ...}`` holding tensors and builtins
only (read with ``weights_only=True``). ``model_cfg`` uses fairseq's ``HubertConfig``
field names; :func:`hubert_config` maps them to transformers' ``HubertConfig`` and
:func:`map_state_dict` renames every fairseq key to its transformers twin:

==============================================  ==================================================
fairseq (``model_weight``)                      transformers ``HubertModel``
==============================================  ==================================================
``feature_extractor.conv_layers.{i}.0.*``       ``feature_extractor.conv_layers.{i}.conv.*``
``feature_extractor.conv_layers.0.2.*``         ``...conv_layers.0.layer_norm.*`` (GroupNorm, mode ``default``)
``feature_extractor.conv_layers.{i}.2.1.*``     ``...conv_layers.{i}.layer_norm.*`` (mode ``layer_norm``)
``layer_norm.*``                                ``feature_projection.layer_norm.*``
``post_extract_proj.*``                         ``feature_projection.projection.*`` (identity if absent)
``encoder.pos_conv.0.weight_g / weight_v``      ``encoder.pos_conv_embed.conv`` weight-norm g / v
``encoder.pos_conv.0.bias``                     ``encoder.pos_conv_embed.conv.bias``
``encoder.layer_norm.*``                        ``encoder.layer_norm.*``
``encoder.layers.{j}.self_attn.{q,k,v,out}_proj``  ``encoder.layers.{j}.attention.{q,k,v,out}_proj``
``encoder.layers.{j}.self_attn_layer_norm``     ``encoder.layers.{j}.layer_norm``
``encoder.layers.{j}.fc1 / fc2``                ``encoder.layers.{j}.feed_forward.intermediate_dense / output_dense``
``encoder.layers.{j}.final_layer_norm``         ``encoder.layers.{j}.final_layer_norm``
``mask_emb``                                    ``masked_spec_embed`` (unused at inference)
==============================================  ==================================================

``label_embs_concat`` and ``final_proj.*`` are dropped (as the reference does); every
other missing or unexpected key is an error listing them (the reference loads with
``strict=False`` and would silently run with random weights).

Features (:class:`MHubertFeatures`) follow the reference tokenizer: optional
whole-waveform layer norm (``task_cfg.normalize``), 100 s chunks (chunks under 400
samples skipped), the output of the 1-based ``output_layer`` (11) without a final layer
norm. The reference pads an odd frame count to ``required_seq_len_multiple`` = 2 with a
zero frame that is masked as an attention key and cut off afterwards: the real frames'
outputs are exactly those of the unpadded sequence, so no padding is done here (a test
checks this against a reference forward that pads).
"""

from __future__ import annotations

import ast
import hashlib
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinywave.audio.features import SAMPLE_RATE, Analysis
from tinywave.safeload import load_torch

FILE = "mhubert_base_25hz.pt"
CONTAINER_KEYS = ("model_cfg", "task_cfg", "model_weight")
DROPPED = ("label_embs_concat", "final_proj.weight", "final_proj.bias")
MAX_CHUNK = 1_600_000  # samples (100 s)
MIN_CHUNK = 400
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_accurate": "gelu_new", "tanh": "tanh", "linear": "linear"}
EXTRACTOR_NORMS = {"default": "group", "layer_norm": "layer"}
# fairseq HubertConfig defaults of the fields that shape the model
DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default", "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False, "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12, "activation_fn": "gelu", "layer_norm_first": False, "conv_pos": 128,
    "conv_pos_groups": 16, "conv_pos_batch_norm": False, "layer_type": "transformer",
}

_RENAMES: list[tuple[str, str]] = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.weight_g", "{pos_g}"),
    (r"encoder\.pos_conv\.0\.weight_v", "{pos_v}"),
    (r"encoder\.pos_conv\.0\.bias", "encoder.pos_conv_embed.conv.bias"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)", r"encoder.layers.\1.attention.\2_proj.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"mask_emb", "masked_spec_embed"),
]


# --- conv_feature_layers: a Python expression, evaluated without eval() -----------------
def _literal(node: ast.AST) -> Any:
    """Ints, lists/tuples of them, ``list + list`` and ``list * int``; anything else is refused."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _literal(node.left), _literal(node.right)
        ops = {ast.Add: lambda a, b: a + b, ast.Mult: lambda a, b: a * b}
        if isinstance(node.op, ast.Mult) and not (isinstance(left, list) and isinstance(right, int) or isinstance(left, int) and isinstance(right, list)):
            raise ValueError("only list * int is allowed")
        return ops[type(node.op)](left, right)
    raise ValueError(f"{type(node).__name__} is not allowed")


def parse_conv_layers(text: str) -> list[tuple[int, int, int]]:
    """``"[(512,10,5)] + [(512,3,2)] * 4"`` -> [(dim, kernel, stride), ...], safely."""
    try:
        value = _literal(ast.parse(str(text), mode="eval").body)
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"conv_feature_layers {text!r} is not a list of (dim, kernel, stride) literals ({exc})") from None
    if not isinstance(value, list) or not value or not all(isinstance(t, tuple) and len(t) == 3 for t in value):
        raise ValueError(f"conv_feature_layers {text!r} must be a non-empty list of (dim, kernel, stride) tuples")
    return [tuple(int(v) for v in t) for t in value]  # type: ignore[misc]


# --- config ------------------------------------------------------------------------------
def hubert_config(model_cfg: dict[str, Any], where: str = "model_cfg"):
    """transformers ``HubertConfig`` equal to fairseq's ``model_cfg`` (inference settings, no dropout)."""
    from transformers import HubertConfig  # lazy: transformers (~3 s); spiritlm.plugin loads this module on every tokenizer/vocoder load

    cfg = {**DEFAULTS, **{k: v for k, v in model_cfg.items() if k in DEFAULTS and v is not None}}
    unsupported = {"layer_type": cfg["layer_type"] != "transformer", "conv_pos_batch_norm": bool(cfg["conv_pos_batch_norm"]),
                   "activation_fn": cfg["activation_fn"] not in ACTIVATIONS, "extractor_mode": cfg["extractor_mode"] not in EXTRACTOR_NORMS}
    bad = [f"{k}={cfg[k]!r}" for k, is_bad in unsupported.items() if is_bad]
    if bad:
        raise ValueError(f"{where}: {', '.join(bad)} is not supported (transformer layers, weight-normed positional conv, "
                         f"activation in {sorted(ACTIVATIONS)}, extractor_mode in {sorted(EXTRACTOR_NORMS)})")
    conv = parse_conv_layers(cfg["conv_feature_layers"])
    dim, heads, groups = int(cfg["encoder_embed_dim"]), int(cfg["encoder_attention_heads"]), int(cfg["conv_pos_groups"])
    if dim % heads or dim % groups:
        raise ValueError(f"{where}: encoder_embed_dim={dim} must be divisible by encoder_attention_heads={heads} and conv_pos_groups={groups}")
    return HubertConfig(
        hidden_size=dim, num_hidden_layers=int(cfg["encoder_layers"]), num_attention_heads=heads,
        intermediate_size=int(cfg["encoder_ffn_embed_dim"]), hidden_act=ACTIVATIONS[cfg["activation_fn"]],
        feat_extract_norm=EXTRACTOR_NORMS[cfg["extractor_mode"]], feat_extract_activation="gelu",
        conv_dim=[c[0] for c in conv], conv_kernel=[c[1] for c in conv], conv_stride=[c[2] for c in conv],
        conv_bias=bool(cfg["conv_bias"]), num_conv_pos_embeddings=int(cfg["conv_pos"]), num_conv_pos_embedding_groups=groups,
        do_stable_layer_norm=bool(cfg["layer_norm_first"]), feat_proj_layer_norm=True, layer_norm_eps=1e-5,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0, layerdrop=0.0,
    )


# --- weights -----------------------------------------------------------------------------
def _rename(key: str, names: dict[str, str]) -> str | None:
    for pattern, repl in _RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(f"^{pattern}$", repl.format(**names), key)
    return None


def map_state_dict(state: dict[str, Any], target: dict[str, Any], where: str = "model_weight") -> dict[str, Any]:
    """fairseq keys -> the keys of ``target`` (a HubertModel state dict); strict, with shapes checked."""
    conv = "encoder.pos_conv_embed.conv"
    parametrized = f"{conv}.parametrizations.weight.original0" in target
    names = {"pos_g": f"{conv}.parametrizations.weight.original0" if parametrized else f"{conv}.weight_g",
             "pos_v": f"{conv}.parametrizations.weight.original1" if parametrized else f"{conv}.weight_v"}
    out: dict[str, Any] = {}
    unexpected = []
    for key, value in state.items():
        new = None if key in DROPPED else _rename(key, names)
        if new is None or new not in target:
            unexpected += [] if key in DROPPED else [key]
            continue
        out[new] = value
    proj, width = "feature_projection.projection", target["masked_spec_embed"].shape[0]
    if f"{proj}.weight" not in out and target[f"{proj}.weight"].shape == (width, width):  # no post_extract_proj: dims equal
        out[f"{proj}.weight"], out[f"{proj}.bias"] = torch.eye(width), torch.zeros(width)
    out.setdefault("masked_spec_embed", torch.zeros(width))  # unused at inference
    missing, unexpected = sorted(set(target) - set(out)), sorted(unexpected)
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in out.items() if tuple(v.shape) != tuple(target[k].shape)]
    if missing or unexpected or shapes:
        raise ValueError(f"{where}: the weights do not fit model_cfg — missing keys {missing[:8]} ({len(missing)}), unexpected keys "
                         f"{unexpected[:8]} ({len(unexpected)}), shape mismatches {shapes[:4]} ({len(shapes)}); this is not SpiritLM's "
                         "converted mHuBERT checkpoint or its model_cfg does not describe its weights")
    return out


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The converted checkpoint dict (tensors only), checked for its container keys."""
    path = Path(path)
    ckpt = load_torch(path, what="mHuBERT checkpoint")
    if not isinstance(ckpt, dict) or not set(CONTAINER_KEYS) <= set(ckpt) or not isinstance(ckpt["model_cfg"], dict):
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not SpiritLM's converted HuBERT format (a dict with {list(CONTAINER_KEYS)} and "
                         f"dictionaries_symbols, model_cfg a dict); found {keys}. fairseq-format checkpoints are not supported")
    return ckpt


def load_hubert_model(path: str | Path):
    """(transformers HubertModel in eval mode, model_cfg, task_cfg) from ``mhubert_base_25hz.pt``."""
    from transformers import HubertModel  # lazy: transformers (~3 s); spiritlm.plugin loads this module on every tokenizer/vocoder load

    ckpt = read_checkpoint(path)
    config = hubert_config(ckpt["model_cfg"], f"{path}: model_cfg")
    model = HubertModel(config).eval()
    state = map_state_dict(ckpt["model_weight"], model.state_dict(), f"{path}: model_weight")
    model.load_state_dict(state, strict=True)
    return model, dict(ckpt["model_cfg"]), dict(ckpt.get("task_cfg") or {})


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class MHubertFeatures:
    """Hidden states of the 1-based ``layer`` (SpiritLM: 11) of the converted mHuBERT; loaded lazily."""

    kind = "spiritlm_mhubert"

    def __init__(self, path: str | Path, layer: int = 11, saved: dict[str, Any] | None = None):
        """``path``: the release's ``.pt``; or, with ``saved`` (a saved tokenizer's spec), the
        transformers folder :meth:`copy_model` wrote (safetensors, no pickle)."""
        self.path = Path(path)
        if saved is None:
            ckpt = read_checkpoint(self.path)
            self.model_cfg, self.task_cfg = dict(ckpt["model_cfg"]), dict(ckpt.get("task_cfg") or {})
        else:
            self.model_cfg, self.task_cfg = dict(saved["model_cfg"]), dict(saved["task_cfg"])
        self.conv = parse_conv_layers(self.model_cfg.get("conv_feature_layers", DEFAULTS["conv_feature_layers"]))
        n_layers = int(self.model_cfg.get("encoder_layers", DEFAULTS["encoder_layers"]))
        if not 1 <= layer <= n_layers:
            raise ValueError(f"output layer {layer} is out of range for {self.path} ({n_layers} layers); use 1..{n_layers} (SpiritLM: 11)")
        if int(self.task_cfg.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise ValueError(f"{self.path}: task_cfg.sample_rate={self.task_cfg['sample_rate']}; only 16 kHz models are supported")
        self.layer, self.normalize = layer, bool(self.task_cfg.get("normalize", False))
        self._model = None
        self.file = saved["file"] if saved else self.path.name
        self._digest: str | None = saved["digest"] if saved else None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    @property
    def hop(self) -> int:
        return math.prod(s for _, _, s in self.conv)  # 640 samples for the 25 Hz model

    @property
    def rate(self) -> float:
        return SAMPLE_RATE / self.hop

    @property
    def dim(self) -> int:
        return int(self.model_cfg.get("encoder_embed_dim", DEFAULTS["encoder_embed_dim"]))

    @property
    def model(self):
        """The HubertModel with only the first ``layer`` blocks and no final layer norm (fairseq's output_layer)."""
        if self._model is None:
            if self.path.is_dir():
                from transformers import HubertModel  # lazy: transformers (~3 s); spiritlm.plugin loads this module on every tokenizer/vocoder load

                from tinywave.models.hf import quiet_transformers  # lazy: models.hf imports transformers (see above)

                with quiet_transformers():
                    model = HubertModel.from_pretrained(str(self.path), local_files_only=True).eval()
            else:
                model, _, _ = load_hubert_model(self.path)
            model.encoder.layers = model.encoder.layers[: self.layer]
            if model.config.do_stable_layer_norm:  # fairseq skips the final norm when a layer is asked for
                model.encoder.layer_norm = torch.nn.Identity()
            self._model = model
        return self._model

    def n_frames(self, n_samples: int) -> int:
        for _, k, s in self.conv:
            n_samples = (n_samples - k) // s + 1 if n_samples >= k else 0
        return n_samples

    def hidden(self, wav: np.ndarray):
        """(T, D) torch features of a 16 kHz waveform: normalize, 100 s chunks, concatenate."""
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]  # (1, N)
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])  # whole waveform, before chunking
        parts = []
        with torch.inference_mode():
            for start in range(0, x.shape[1], MAX_CHUNK):
                chunk = x[:, start : start + MAX_CHUNK]  # (1, n)
                if chunk.shape[1] >= MIN_CHUNK and self.n_frames(chunk.shape[1]) > 0:
                    parts.append(self.model(chunk).last_hidden_state[0])  # (T_chunk, D)
        return torch.cat(parts) if parts else torch.zeros(0, self.dim)

    def vectors(self, an: Analysis) -> np.ndarray:
        return self.hidden(an.wav).float().numpy()

    def digest(self) -> str:
        if self._digest is None:
            self._digest = file_digest(self.path)
        return self._digest

    def to_spec(self) -> dict[str, Any]:
        """Settings and the release file's digest (equal for the release and a saved copy)."""
        return {"file": self.file, "layer": self.layer, "normalize": self.normalize, "digest": self.digest(),
                "model_cfg": self.model_cfg, "task_cfg": self.task_cfg}

    def copy_model(self, folder: Path, name: str = "mhubert") -> str:
        """The full converted model as a transformers folder (config.json + safetensors)."""
        from transformers import HubertModel  # lazy: transformers (~3 s); spiritlm.plugin loads this module on every tokenizer/vocoder load

        from tinywave.models.hf import quiet_transformers  # lazy: models.hf imports transformers (see above)

        with quiet_transformers():  # the full model (self.model keeps only `layer` blocks)
            model = HubertModel.from_pretrained(str(self.path)) if self.path.is_dir() else load_hubert_model(self.path)[0]
            model.save_pretrained(str(folder / name), safe_serialization=True)
        return name

    @classmethod
    def from_spec(cls, spec: dict[str, Any], folder: Path) -> "MHubertFeatures":
        feats = spec["features"]
        return cls(folder / spec.get("model_dir", "mhubert"), int(feats["layer"]), saved=feats)

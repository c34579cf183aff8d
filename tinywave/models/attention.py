"""Attention maps for the mapped layers only, while every other layer keeps SDPA.

Fused attention (SDPA, flash) never builds the attention probabilities, and in
transformers ``output_attentions=True`` under SDPA returns nothing. Switching the whole
model to eager attention would make every layer slow. Instead we register one
attention function, ``"tinywave_mapped"``, with transformers' ``AttentionInterface``:

* a layer whose attention module carries a recording dict (set by :func:`capture`)
  computes ``logp = log_softmax(QK^T * scale + mask)`` explicitly in float32, stores it
  in that dict under its ``layer_idx`` (gradients flow through it), and returns
  ``exp(logp) @ V``;
* every other layer (and every layer outside :func:`capture`) calls the SDPA function
  unchanged, with the same boolean mask SDPA would get.

The mask interface registered for the name is SDPA's, so masks are built exactly as
under ``attn_implementation="sdpa"``. Exported models are reset to ``"sdpa"`` and do
not depend on this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from tinywave.models.windowed import repeat_heads

MAPPED_ATTENTION = "tinywave_mapped"
_RECORD_ATTR = "_tinywave_attn_record"


def _allowed(mask: torch.Tensor | None, q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
    """Boolean (B|1, 1, Tq, Tk) mask, True where a query may attend to a key.

    ``None`` means plain causal attention (SDPA's ``is_causal`` skip); the queries are
    the last ``q_len`` positions of the ``kv_len`` keys. A float mask is additive.
    """
    if mask is None:
        q_pos = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
        return (q_pos >= torch.arange(kv_len, device=device)[None, :])[None, None]
    if mask.dtype == torch.bool:
        return mask[..., :kv_len]
    return mask[..., :kv_len] > torch.finfo(mask.dtype).min / 2


def explicit_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, allowed: torch.Tensor, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with its log-probabilities. Returns (output (B, Tq, H, D), logp (B, H, Tq, Tk) float32).

    query: (B, H, Tq, D); key, value: (B, H, Tk, D) (kv heads already repeated);
    allowed: boolean, broadcastable to (B, H, Tq, Tk). A fully masked row gets a
    uniform distribution, as eager attention gives it.
    """
    with torch.autocast(device_type=query.device.type, enabled=False):  # the maps stay float32 under bf16 autocast
        scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scaling  # (B, H, Tq, Tk)
        scores = scores.masked_fill(~allowed, torch.finfo(torch.float32).min)
        logp = torch.log_softmax(scores, dim=-1)  # (B, H, Tq, Tk) float32
    out = torch.matmul(logp.exp().to(value.dtype), value)  # (B, H, Tq, D)
    return out.transpose(1, 2).contiguous(), logp


def mapped_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    *, dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The ``"tinywave_mapped"`` attention function (transformers' AttentionInterface signature)."""
    # lazy: transformers is heavy (~3 s); this module serves distill/ and models.student on any torch model without it
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    record = getattr(module, _RECORD_ATTR, None)
    if record is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    key, value = repeat_heads(key, query.shape[1]), repeat_heads(value, query.shape[1])  # (B, H, Tk, D)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    allowed = _allowed(attention_mask, query.shape[2], key.shape[2], query.device)
    if dropout > 0.0 and module.training:
        raise ValueError("attention dropout is not supported on mapped layers; set attention_dropout=0 in the model config")
    out, logp = explicit_attention(query, key, value, allowed, scale)
    record[module.layer_idx] = logp
    return out, logp.exp()


def register_mapped_attention() -> str:
    """Register the mapped attention function and its mask builder (idempotent); returns its name."""
    from transformers import AttentionInterface  # lazy: transformers is heavy (~3 s); only registering with it needs it
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask  # lazy: as above

    AttentionInterface.register(MAPPED_ATTENTION, mapped_attention_forward)
    AttentionMaskInterface.register(MAPPED_ATTENTION, sdpa_mask)
    return MAPPED_ATTENTION


def use_mapped_attention(model: nn.Module) -> None:
    """Switch a transformers model to the mapped attention function (SDPA outside :func:`capture`)."""
    model.set_attn_implementation(register_mapped_attention())


def backbone(model: nn.Module) -> nn.Module:
    """The decoder stack (``LlamaModel``) of a Llama-family causal LM, also through a peft wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    if not isinstance(getattr(inner, "layers", None), nn.ModuleList):
        raise ValueError(f"{type(base).__name__} has no .model.layers: only Llama-family causal LMs are supported")
    return inner


def mask_inputs(attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
    """The masking arguments of a decoder forward for a batch of shard rows.

    Plain rows: the padding mask. Segmented rows (``position_ids`` restarting at each document,
    ``tinywave.data.shards`` ``packing=split``): the position ids and *no* attention mask, from
    which transformers builds the block-causal mask (no attention across segments).
    """
    if position_ids is None:
        return {"attention_mask": attention_mask}
    return {"attention_mask": None, "position_ids": position_ids}


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a Llama-family causal LM (also through a peft wrapper)."""
    return backbone(model).layers


@dataclass
class Captured:
    """What :func:`capture` recorded during one forward pass."""

    hidden: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (B, T, D) output of that decoder layer
    attn_logp: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (B, H, T, T) float32 log-probs


@contextlib.contextmanager
def capture(model: nn.Module, hidden_layers: Iterable[int] = (), attn_layers: Iterable[int] = ()) -> Iterator[Captured]:
    """Record decoder-layer outputs and attention log-probabilities of the given layers.

    Attention maps need the model to use the mapped attention function
    (:func:`use_mapped_attention`); other layers keep SDPA. Hooks and records are
    removed on exit.
    """
    layers = decoder_layers(model)
    hidden_layers, attn_layers = sorted(set(hidden_layers)), sorted(set(attn_layers))
    for i in hidden_layers + attn_layers:
        if not 0 <= i < len(layers):
            raise ValueError(f"layer {i} is out of range: the model has layers 0..{len(layers) - 1}")
    if attn_layers and layers[0].self_attn.config._attn_implementation != MAPPED_ATTENTION:
        raise ValueError("attention maps need use_mapped_attention(model) first (SDPA does not produce them)")
    out = Captured()
    handles = [layers[i].register_forward_hook(_keep_output(out.hidden, i)) for i in hidden_layers]
    for i in attn_layers:
        setattr(layers[i].self_attn, _RECORD_ATTR, out.attn_logp)
    try:
        yield out
    finally:
        for h in handles:
            h.remove()
        for i in attn_layers:
            delattr(layers[i].self_attn, _RECORD_ATTR)


def _keep_output(store: dict[int, torch.Tensor], i: int):
    def hook(module: nn.Module, args, output) -> None:
        store[i] = output[0] if isinstance(output, tuple) else output  # (B, T, D)

    return hook

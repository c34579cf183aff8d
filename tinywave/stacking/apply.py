"""Growing a whole model in place, and carrying its optimizer across the growth.

    from tinywave.stacking import apply_growth, carry_optimizer_state, layer_list, parameter_sources

    old_layers = list(layer_list(model))
    growth = apply_growth(model, "interleaved", targets={2: 11}, every=1)
    new_opt = make_optimizer(model)                 # however the caller builds it
    carry_optimizer_state(old_opt, new_opt, parameter_sources(old_layers, growth), "copy")

``apply_growth`` works on any model whose layers sit in one ``nn.ModuleList`` at a known
path (``HubertModel``/``WavLMModel``/``Wav2Vec2Model``: ``encoder.layers``;
``LlamaForCausalLM``: ``model.layers``; ``LlamaModel``: ``layers``). It replaces the list,
sets ``config.num_hidden_layers`` and renumbers every ``layer_idx`` attribute inside the
layers (Llama attention uses it to address the KV cache), and reorders a per-layer
``config.layer_types`` list when the config has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tinywave.stacking.operators import Growth, grow

LAYER_PATHS = ("encoder.layers", "model.layers", "layers", "transformer.h")
OPTIMIZER_MODES = ("reset", "copy")


def _resolve(model: nn.Module, dotted: str) -> tuple[nn.Module, str] | None:
    parent = model
    *head, last = dotted.split(".")
    for name in head:
        parent = getattr(parent, name, None)
        if not isinstance(parent, nn.Module):
            return None
    return (parent, last) if isinstance(getattr(parent, last, None), nn.ModuleList) else None


def layer_list(model: nn.Module) -> nn.ModuleList:
    """The model's stack of layers (the ``nn.ModuleList`` the operators grow)."""
    return getattr(*_locate(model))


def _locate(model: nn.Module) -> tuple[nn.Module, str]:
    for path in LAYER_PATHS:
        found = _resolve(model, path)
        if found is not None:
            return found
    raise ValueError(f"{type(model).__name__} has no layer list at any of {LAYER_PATHS}; pass a model with one of them")


def renumber_layers(model: nn.Module) -> None:
    """Set ``layer_idx`` of every submodule of layer i to i (Llama attention and decoder layers)."""
    for i, layer in enumerate(layer_list(model)):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = i


renumber_llama_layers = renumber_layers


def apply_growth(model: nn.Module, op: str, targets: dict[int, int] | None = None, **params: int) -> Growth:
    """Grow ``model``'s layer stack in place with operator ``op``; returns the ``Growth``.

    Updates ``model.config.num_hidden_layers`` (and ``layer_types`` if present) and
    renumbers ``layer_idx``; zero the gradients before calling (copies get none).
    """
    parent, name = _locate(model)
    growth = grow(getattr(parent, name), op, targets, **params)
    setattr(parent, name, growth.layers)
    config = getattr(model, "config", None)
    if config is not None:
        config.num_hidden_layers = len(growth.layers)
        layer_types = getattr(config, "layer_types", None)
        if isinstance(layer_types, list) and len(layer_types) == len(set(growth.provenance)):
            config.layer_types = [layer_types[p] for p in growth.provenance]
    renumber_layers(model)
    return growth


def parameter_sources(old_layers: Sequence[nn.Module], growth: Growth) -> dict[nn.Parameter, nn.Parameter]:
    """For each parameter of a copied layer, the original parameter it was copied from."""
    sources: dict[nn.Parameter, nn.Parameter] = {}
    for new_layer, p in zip(growth.layers, growth.provenance):
        if new_layer is old_layers[p]:
            continue
        for new, old in zip(new_layer.parameters(), old_layers[p].parameters()):
            sources[new] = old
    return sources


def _clone_state(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def carry_optimizer_state(
    old: torch.optim.Optimizer, new: torch.optim.Optimizer, sources: dict[nn.Parameter, nn.Parameter], mode: str
) -> None:
    """Fill ``new`` (built over the grown model) from ``old``.

    ``reset``: leave ``new`` empty (Gong et al. reset the optimizer at each growth).
    ``copy``: every kept parameter keeps its state; every copied layer's parameter gets a
    clone of its original's state (Adam moments and step), so the copy starts where its
    original is.
    """
    if mode not in OPTIMIZER_MODES:
        raise ValueError(f"optimizer mode {mode!r} is not known; choose one of {list(OPTIMIZER_MODES)}")
    if mode == "reset":
        return
    for group in new.param_groups:
        for param in group["params"]:
            src = sources.get(param, param)
            if src in old.state and len(old.state[src]) > 0:
                new.state[param] = _clone_state(old.state[src])

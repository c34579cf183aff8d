"""Teacher targets: what the distillation losses need from the teacher for one batch.

The losses only see a :class:`TeacherBatch` — hidden states and attention maps of the
mapped teacher layers, and ``logits(rows)`` for the vocabulary losses — so an offline
cache of teacher outputs can replace :class:`OnlineTeacher` without touching the
training step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from tinywave.distill.fused import record_qk, use_qk_attention
from tinywave.models.attention import backbone, capture, decoder_layers, mask_inputs


@dataclass
class TeacherBatch:
    """Teacher outputs for one batch. Logits are produced on demand, a chunk of rows at a time."""

    hidden: dict[int, torch.Tensor] = field(default_factory=dict)  # teacher layer -> (B, T, Dt)
    attn_logp: dict[int, torch.Tensor] = field(default_factory=dict)  # teacher layer -> (B, H, T, T) float32
    attn_qk: dict[int, tuple] = field(default_factory=dict)  # teacher layer -> (query, key, scale) (tinywave.distill.fused)
    final_hidden: torch.Tensor | None = None  # (B*T, Dt) after the final norm
    head_weight: torch.Tensor | None = None  # (V, Dt)

    def logits(self, rows: torch.Tensor) -> torch.Tensor:
        """Teacher logits (n, V) float32 at flat positions ``rows`` (n,) into B*T."""
        if self.final_hidden is None or self.head_weight is None:
            raise ValueError("these teacher targets carry no logits; set loss.kl_weight=0 or use an online teacher")
        return F.linear(self.final_hidden[rows], self.head_weight).float()

    def vocab_targets(self, rows: torch.Tensor):
        """What the fused vocabulary losses take: logits (n, V), or a sparse form (a top-k cache)."""
        return self.logits(rows)


class TeacherTargets(Protocol):
    """``rows``: the dataset rows of the batch ((B,) LongTensor), for teachers read from a cache;
    ``position_ids``: (B, T) of segmented rows (``packing=split``), else None."""

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None) -> TeacherBatch: ...


class OnlineTeacher:
    """Runs the frozen teacher under ``no_grad`` and keeps only what the losses need.

    For the attention loss it records the mapped layers' queries and keys (every layer
    keeps SDPA; ``tinywave.distill.fused``), not their probability maps.
    """

    def __init__(self, model: nn.Module, hidden_layers: Iterable[int] = (), attn_layers: Iterable[int] = (), logits: bool = True):
        self.model = model.eval().requires_grad_(False)
        self.hidden_layers, self.attn_layers, self.want_logits = sorted(hidden_layers), sorted(attn_layers), logits
        if self.attn_layers:
            use_qk_attention(self.model)

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None) -> TeacherBatch:
        with capture(self.model, self.hidden_layers) as got, record_qk(decoder_layers(self.model), self.attn_layers) as qk:
            out = backbone(self.model)(input_ids=input_ids, **mask_inputs(attention_mask, position_ids), use_cache=False)
        batch = TeacherBatch(hidden=got.hidden, attn_qk=qk)
        if self.want_logits:
            batch.final_hidden = out.last_hidden_state.flatten(0, 1)  # (B*T, Dt)
            batch.head_weight = self.model.get_output_embeddings().weight  # (V, Dt)
        return batch

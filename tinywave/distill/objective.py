"""The training objective: student forward pass and the weighted sum of the four losses.

``DistillObjective(batch, normalizer)`` returns every loss separately (for logs) and
their weighted sum under ``"loss"``. With only the CE weight set and no teacher it is
plain language-model training (``tinywave train`` and the CE-only baselines): the
teacher is never run when every teacher-dependent weight is 0.

Layer pairs ``(student, teacher)`` drive the hidden-state and attention losses; each
of those is averaged over the pairs. When the student is narrower than the teacher a
bias-free linear projection per pair maps student hidden states to the teacher's width.

The fast paths of ``tinywave.distill.fused`` compute the losses: CE and KL fused with the
LM head (their values come detached, their gradient is inside ``"loss"``) and the attention
KL from the mapped layers' queries and keys. The objective switches the student to
``use_qk_attention``: SDPA that records those queries and keys and, on segmented rows, runs
over key windows (tinywave/models/windowed.py) -- the same outputs, a fraction of the work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tinywave.distill.defaults import DISTILL_LOSS  # noqa: F401  (re-exported: the loss defaults live without torch)
from tinywave.distill.fused import attention_kl_from_qk, fused_vocab_losses, record_qk, use_qk_attention
from tinywave.distill.losses import HIDDEN_LOSSES, IGNORE_INDEX, hidden_loss
from tinywave.distill.teacher import TeacherBatch, TeacherTargets
from tinywave.models.attention import backbone, capture, decoder_layers, mask_inputs




@dataclass
class LossWeights:
    ce: float = 1.0
    kl: float = 0.0
    hidden: float = 0.0
    attn: float = 0.0
    temperature: float = 1.0
    hidden_kind: str = "mse"
    chunk_size: int = 256  # tokens per chunk of the vocabulary losses: 1.5x faster than 1024 at V = 32,667 (benchmarks/results/vocab_chunks.json)

    @property
    def needs_teacher(self) -> bool:
        return self.kl > 0 or self.hidden > 0 or self.attn > 0

    def check(self) -> None:
        for name in ("ce", "kl", "hidden", "attn"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name}_weight={getattr(self, name)} is negative; loss weights must be >= 0")
        if self.ce == 0 and not self.needs_teacher:
            raise ValueError("every loss weight is 0: nothing to train; set loss.ce_weight or a distillation weight above 0")
        if self.temperature <= 0:
            raise ValueError(f"loss.temperature={self.temperature} must be > 0 (typical: 1-4)")
        if self.hidden_kind not in HIDDEN_LOSSES:
            raise ValueError(f"loss.hidden_kind={self.hidden_kind!r} is not known; choose one of {sorted(HIDDEN_LOSSES)}")
        if self.chunk_size < 1:
            raise ValueError(f"loss.chunk_size={self.chunk_size} must be a positive number of tokens (e.g. 256)")


def make_projections(pairs: list[tuple[int, int]], student_width: int, teacher_width: int) -> nn.ModuleDict:
    """One bias-free Linear(student_width -> teacher_width) per student layer of the map."""
    return nn.ModuleDict({str(s): nn.Linear(student_width, teacher_width, bias=False) for s, _ in pairs})


class DistillObjective(nn.Module):
    def __init__(
        self,
        student: nn.Module,
        weights: LossWeights,
        layer_map: list[tuple[int, int]] = (),
        teacher: TeacherTargets | None = None,
        projections: nn.ModuleDict | None = None,
    ):
        super().__init__()
        weights.check()
        if weights.needs_teacher and teacher is None:
            raise ValueError("kl/hidden/attn losses need a teacher; set teacher.dir or set those weights to 0")
        if (weights.hidden > 0 or weights.attn > 0) and not layer_map:
            raise ValueError("hidden/attn losses need a layer_map with at least one [student, teacher] pair")
        if hasattr(student, "set_attn_implementation"):  # transformers models (and peft wrappers of them)
            use_qk_attention(student)  # records the mapped layers' queries and keys; windowed on segmented rows
        self.student, self.weights, self.teacher = student, weights, teacher
        self.pairs = [(int(s), int(t)) for s, t in layer_map]
        self.projections = projections if projections is not None else nn.ModuleDict()

    def remap_layers(self, moved: dict[int, int]) -> None:
        """After the student grew (``tinywave.distill.growth``): student layer s of each pair, and its
        projection, is now layer ``moved[s]``; the teacher layers stay."""
        self.pairs = sorted((moved[s], t) for s, t in self.pairs)
        self.projections = nn.ModuleDict({str(moved[int(s)]): proj for s, proj in self.projections.items()})

    def _student_layers(self, active: float) -> list[int]:
        return [s for s, _ in self.pairs] if active > 0 else []

    def forward(self, batch: dict[str, torch.Tensor], normalizer: float) -> dict[str, torch.Tensor]:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]  # (B, T) each
        pos = batch.get("position_ids")  # (B, T) for segmented rows (one attention segment per document), else None
        w = self.weights
        attn_layers = self._student_layers(w.attn)
        with capture(self.student, self._student_layers(w.hidden)) as got, record_qk(decoder_layers(self.student), attn_layers) as qk:
            out = backbone(self.student)(input_ids=ids, **mask_inputs(mask, pos), use_cache=False)
        teacher = self.teacher(ids, mask, batch.get("rows"), position_ids=pos) if w.needs_teacher else TeacherBatch()
        tmask = labels != IGNORE_INDEX  # (B, T) real target tokens
        rows = tmask.flatten().nonzero().squeeze(1)  # (N,) flat positions of real targets
        hidden = out.last_hidden_state.flatten(0, 1)[rows]  # (N, D)
        head = self.student.get_output_embeddings().weight  # (V, D)
        # CE and KL in one fused pass (tinywave.distill.fused; reference: losses.chunked_vocab_losses)
        vocab, ce, kl = fused_vocab_losses(
            hidden, head, labels.flatten()[rows], teacher.vocab_targets if w.kl > 0 else None, rows,
            w.temperature, chunk_size=w.chunk_size, normalizer=normalizer, ce_weight=w.ce, kl_weight=w.kl,
        )
        losses = {"ce": ce}
        if w.kl > 0:
            losses["kl"] = kl
        if w.hidden > 0:
            losses["hidden"] = self._hidden(got.hidden, teacher, tmask, normalizer)
        if w.attn > 0:
            losses["attn"] = self._attention(qk, teacher, tmask, mask.bool(), normalizer, pos)
        weight_of = {"hidden": w.hidden, "attn": w.attn}  # ce and kl are inside ``vocab`` with their weights
        losses["loss"] = vocab + sum(weight_of[k] * v for k, v in losses.items() if weight_of.get(k, 0) > 0)
        return losses

    def _hidden(self, student: dict[int, torch.Tensor], teacher: TeacherBatch, tmask: torch.Tensor, normalizer: float) -> torch.Tensor:
        per_pair = []
        for s, t in self.pairs:
            h = student[s]  # (B, T, Ds)
            if str(s) in self.projections:
                h = self.projections[str(s)](h)  # (B, T, Dt)
            per_pair.append(hidden_loss(h, teacher.hidden[t], tmask, self.weights.hidden_kind, normalizer))
        return torch.stack(per_pair).mean()

    def _attention(self, student: dict[int, tuple], teacher: TeacherBatch, tmask: torch.Tensor, kmask: torch.Tensor, normalizer: float,
                   positions: torch.Tensor | None = None) -> torch.Tensor:
        """Attention KL per pair from recorded queries and keys (reference: losses.attention_loss on full maps)."""
        segments = None if positions is None else (positions == 0).cumsum(-1)  # (B, T) segment index of each token
        per_pair = [attention_kl_from_qk(student[s], teacher.attn_qk[t], tmask, kmask, normalizer, segments=segments) for s, t in self.pairs]
        return torch.stack(per_pair).mean()

"""The distillation student: a ``HubertModel`` plus prediction heads / projections.

Two kinds (``KINDS``):

- ``distilhubert``: every head reads the student's LAST layer and regresses one teacher
  layer (DistilHuBERT: 2 layers, heads for teacher layers 4, 8, 12);
- ``layer2layer``: ``targets = {student_layer_index: teacher_layer}``; the head for
  teacher layer t projects the student layer mapped to t. The last student layer must
  carry a target (the output-level pair).

Teacher layers are hidden-state indices (0 = front end, k = output of layer k); student
layer indices are 0-based (layer j's output is hidden state j + 1).

On disk (``save``/``load``) a student is a plain Hugging Face directory (``config.json``,
``model.safetensors``; loads with ``HubertModel.from_pretrained``) plus
``heads.safetensors`` and ``sfm_student.json`` (kind, targets, growth history).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import HubertModel

from tinywave.files import atomic_write_json
from tinywave.sfm.models import frame_mask, hidden_states

KINDS = ("distilhubert", "layer2layer")
STUDENT_FORMAT = "tinywave-sfm-student-v1"


class Student(nn.Module):
    def __init__(self, encoder: HubertModel, kind: str, teacher_layers: list[int], teacher_hidden: int,
                 targets: dict[int, int] | None = None, history: list[dict[str, Any]] | None = None):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"student kind {kind!r} is not known; choose one of {list(KINDS)}")
        self.encoder, self.kind = encoder, kind
        self.teacher_layers = sorted(teacher_layers)
        self.targets = dict(targets or {})
        self.history = list(history or [])
        width = encoder.config.hidden_size
        self.heads = nn.ModuleDict({str(t): nn.Linear(width, teacher_hidden) for t in self.teacher_layers})
        self.check_targets()

    @property
    def depth(self) -> int:
        return len(self.encoder.encoder.layers)

    def check_targets(self) -> None:
        if self.kind != "layer2layer":
            return
        if sorted(self.targets.values()) != self.teacher_layers:
            raise ValueError(f"layer2layer targets {self.targets} must map onto the teacher layers {self.teacher_layers} once each")
        if self.depth - 1 not in self.targets:
            raise ValueError(f"layer2layer: the last student layer ({self.depth - 1}) needs a target; got {self.targets}")

    @property
    def output_layer(self) -> int:
        """The teacher layer matched at the output (last student layer, or the deepest head)."""
        return self.targets[self.depth - 1] if self.kind == "layer2layer" else self.teacher_layers[-1]

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor,
                features: torch.Tensor | None = None) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """wav (B, N), lengths (B,) -> ({teacher layer: prediction (B, T, D_teacher)}, frame mask (B, T)).

        ``features`` (B, C, T): precomputed output of the (frozen, shared) CNN front end.
        """
        states = hidden_states(self.encoder, wav, lengths, features=features)  # L + 1 x (B, T, D)
        if self.kind == "distilhubert":
            preds = {t: self.heads[str(t)](states[-1]) for t in self.teacher_layers}
        else:
            preds = {t: self.heads[str(t)](states[j + 1]) for j, t in self.targets.items()}
        return preds, frame_mask(self.encoder.config, lengths, states[0].shape[1])

    def save(self, path: str | Path) -> None:
        path = Path(path)
        self.encoder.save_pretrained(str(path))
        save_file({k: v.detach().contiguous() for k, v in self.heads.state_dict().items()}, str(path / "heads.safetensors"))
        atomic_write_json(path / "sfm_student.json", {
            "format": STUDENT_FORMAT, "kind": self.kind, "teacher_layers": self.teacher_layers,
            "teacher_hidden": next(iter(self.heads.values())).out_features,
            "targets": {str(j): t for j, t in sorted(self.targets.items())}, "depth": self.depth,
            "history": self.history})

    @classmethod
    def load(cls, path: str | Path) -> "Student":
        path = Path(path)
        meta_file = path / "sfm_student.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{path} is not an SFM student checkpoint (no sfm_student.json)")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != STUDENT_FORMAT:
            raise ValueError(f"{meta_file}: format {meta.get('format')!r}, expected {STUDENT_FORMAT!r}")
        encoder = HubertModel.from_pretrained(str(path))
        student = cls(encoder, meta["kind"], meta["teacher_layers"], meta["teacher_hidden"],
                      {int(j): t for j, t in meta["targets"].items()}, meta["history"])
        student.heads.load_state_dict(load_file(str(path / "heads.safetensors")))
        return student


def uniform_targets(depth: int, teacher_layers: list[int]) -> dict[int, int]:
    """Spread K teacher layers over a depth-L student: layer round((k + 1) L / K) - 1 -> k-th."""
    k = len(teacher_layers)
    if k > depth:
        raise ValueError(f"{k} teacher layers {teacher_layers} cannot map onto a {depth}-layer student; use at most {depth}")
    return {int((i + 1) * depth / k + 0.5) - 1: t for i, t in enumerate(sorted(teacher_layers))}

"""Students built from a teacher: a subset of its layers, optionally narrower.

``build_student(teacher, n_layers, keep_layers)`` makes a model of the teacher's own
class and configuration with ``n_layers`` decoder layers and, with ``init="pruned"``,
copies into student layer ``i`` the weights of teacher layer ``keep_layers[i]``, plus
the token embeddings, final norm and LM head. The student's layers are freshly
constructed, so each attention module's ``layer_idx`` is its new position (the KV
cache indexes layers by it). ``init="random"`` gives the same architecture with a fresh
initialisation (the CE-from-scratch baseline).

A narrower student (``width`` < teacher width) keeps the head size; the numbers of
query and key/value heads and the FFN size shrink in proportion. With
``init="pruned"`` it keeps the *leading* hidden channels, heads and FFN units of each
copied tensor (a crude width prune that distillation then repairs); its hidden states
are compared with the teacher's through learned projections (see
``tinywave.distill.objective``).
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from tinywave.models.attention import decoder_layers

log = logging.getLogger(__name__)

INITS = ("pruned", "random")


def uniform_layer_map(n_teacher: int, n_student: int) -> list[int]:
    """Teacher layer of each student layer: round((i+1) * L_t / L_s) - 1, halves rounded up."""
    if not 0 < n_student <= n_teacher:
        raise ValueError(f"a student of {n_student} layers cannot be taken from a {n_teacher}-layer teacher; use 1..{n_teacher} layers")
    return [(2 * (i + 1) * n_teacher + n_student) // (2 * n_student) - 1 for i in range(n_student)]


def check_keep_layers(keep_layers: list[int], n_layers: int, n_teacher: int) -> None:
    """keep_layers must name ``n_layers`` distinct teacher layers in 0..n_teacher-1."""
    if len(keep_layers) != n_layers:
        raise ValueError(f"student.keep_layers={keep_layers} names {len(keep_layers)} layers but student.n_layers={n_layers}; give one teacher layer per student layer")
    for t in keep_layers:
        if not 0 <= t < n_teacher:
            raise ValueError(f"student.keep_layers holds {t}, out of range: the teacher has layers 0..{n_teacher - 1}")
    if len(set(keep_layers)) != len(keep_layers):
        raise ValueError(f"student.keep_layers={keep_layers} repeats a layer; each teacher layer can be kept once")


def check_layer_map(pairs: list[tuple[int, int]], n_student: int, n_teacher: int) -> None:
    """Each (student, teacher) pair must be in range; a student layer is mapped at most once."""
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"layer_map entry {list(pair)} must be a [student_layer, teacher_layer] pair")
        s, t = pair
        if not 0 <= s < n_student:
            raise ValueError(f"layer_map pair [{s}, {t}]: student layer {s} is out of range; the student has layers 0..{n_student - 1}")
        if not 0 <= t < n_teacher:
            raise ValueError(f"layer_map pair [{s}, {t}]: teacher layer {t} is out of range; the teacher has layers 0..{n_teacher - 1}")
    students = [s for s, _ in pairs]
    if len(set(students)) != len(students):
        raise ValueError(f"layer_map {[list(p) for p in pairs]} maps a student layer twice; give each student layer one teacher layer")


def student_config(teacher_config, n_layers: int, keep_layers: list[int], width: int | None = None):
    """The teacher's configuration with ``n_layers`` layers (and ``width`` channels if given)."""
    cfg = copy.deepcopy(teacher_config)
    cfg.num_hidden_layers = n_layers
    layer_types = getattr(cfg, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == teacher_config.num_hidden_layers:
        cfg.layer_types = [layer_types[t] for t in keep_layers]
    if width and width != teacher_config.hidden_size:
        _narrow(cfg, teacher_config, width)
    return cfg


def _narrow(cfg, teacher_config, width: int) -> None:
    head_dim = getattr(teacher_config, "head_dim", None) or teacher_config.hidden_size // teacher_config.num_attention_heads
    heads, kv = teacher_config.num_attention_heads, teacher_config.num_key_value_heads
    groups = heads // kv
    if width > teacher_config.hidden_size or width % (head_dim * groups):
        raise ValueError(
            f"student.width={width} must be at most the teacher's {teacher_config.hidden_size} and a multiple of "
            f"head_dim x query groups = {head_dim} x {groups} = {head_dim * groups}"
        )
    cfg.hidden_size = width
    cfg.head_dim = head_dim
    cfg.num_attention_heads = width // head_dim
    cfg.num_key_value_heads = cfg.num_attention_heads // groups
    cfg.intermediate_size = max(1, teacher_config.intermediate_size * width // teacher_config.hidden_size)


def _leading_slice(src: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The leading block of ``src`` with ``shape`` (equal to ``src`` at full width)."""
    return src[tuple(slice(0, n) for n in shape)]


def _copy_into(dst: nn.Module, src: nn.Module) -> None:
    state = {k: _leading_slice(v, dst.state_dict()[k].shape) for k, v in src.state_dict().items()}
    dst.load_state_dict(state, strict=True)


def build_student(
    teacher: nn.Module, n_layers: int, keep_layers: list[int] | None = None, width: int | None = None, init: str = "pruned"
) -> nn.Module:
    """A student of the teacher's class with ``n_layers`` layers (see the module docstring).

    keep_layers: the teacher layer copied into each student layer (default: uniform
    spacing, :func:`uniform_layer_map`). Random parts follow torch's global seed.
    """
    if init not in INITS:
        raise ValueError(f"student.init={init!r} is not known; choose one of {list(INITS)}")
    t_layers = decoder_layers(teacher)
    keep = list(keep_layers) if keep_layers else uniform_layer_map(len(t_layers), n_layers)
    check_keep_layers(keep, n_layers, len(t_layers))
    cfg = student_config(teacher.config, n_layers, keep, width)
    student = type(teacher)(cfg).to(next(teacher.parameters()).dtype)
    if getattr(teacher, "generation_config", None) is not None:
        student.generation_config = copy.deepcopy(teacher.generation_config)
    if init == "pruned":
        with torch.no_grad():
            _copy_into(student.get_input_embeddings(), teacher.get_input_embeddings())
            _copy_into(student.model.norm, teacher.model.norm)
            if not cfg.tie_word_embeddings:
                _copy_into(student.get_output_embeddings(), teacher.get_output_embeddings())
            s_layers = decoder_layers(student)
            for i, t in enumerate(keep):
                _copy_into(s_layers[i], t_layers[t])
    log.info("student: %d layers, width %d, init %s from teacher layers %s", n_layers, cfg.hidden_size, init, keep)
    return student

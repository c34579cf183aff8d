"""Recipe: layer-aligned distillation of a teacher into a student.

    tinywave distill --config configs/distill-tiny.yaml teacher.dir=runs/teacher/model \
        data.shards=runs/shards train.out=runs/student loss.kl_weight=0.5
    torchrun --nproc_per_node 2 -m tinywave.cli distill ... train.parallel=fsdp   # see docs/DISTRIBUTED.md

The student keeps a subset of the teacher's layers (uniform spacing by default) and
learns from CE on the ground truth + KL on temperature-softened logits (x T^2) +
hidden-state loss + attention-map loss per mapped layer pair, each with its own
weight. The CE-only baselines are this recipe with kl/hidden/attn weights 0 and
``student.init=pruned`` or ``random`` (the teacher is then never run).
Writes ``train.out/model`` (a plain HF folder) when the run completes. With
``teacher.cache`` (from ``tinywave teacher-cache``) the teacher's logits and hidden states
are read from disk instead of recomputed every epoch. Under torchrun each process takes
its slice of every global batch (global batch = processes x data.batch_size).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import ClassVar

from tinywave.config import field, to_dict
from tinywave.distill.defaults import DISTILL_LOSS
from tinywave.models import estimate
from tinywave.text.vocab import layout_from_tokenizer, load_tokenizer, vocab_fingerprint
from tinywave.training.settings import TRACKER_RENAMES, DataSettings, OptimSettings, RunSettings

log = logging.getLogger(__name__)
PROJECTIONS_FILE = "projections.safetensors"


@dataclass
class TeacherSection:
    dir: str = field("", help="teacher model folder: a Llama-family HF causal LM with the speech vocabulary")
    dtype: str = field("fp32", help="teacher weights dtype: fp32, bf16 or fp16 (float32, bfloat16, float16 also work)")
    cache: str = field("", help="read teacher outputs from this `tinywave teacher-cache` folder instead of running the teacher "
                                "(the attention loss needs one built with attn_layers)")
    cache_tail: str = field("modality", help="cached top-k: where the rest mass goes: modality (the ids of the top-1 token's "
                                              "modality: text, markers or speech units) or uniform (every other id)")


@dataclass
class StudentSection:
    n_layers: int = field(2, help="number of student layers")
    keep_layers: list[int] = field([], help="teacher layer copied into each student layer (empty: uniform spacing)")
    width: int = field(0, help="student hidden size (0: the teacher's); a narrower student gets learned projections")
    init: str = field("pruned", help="pruned: copy kept teacher layers, embeddings, norm, head; random: fresh init (baseline)")
    dir: str = field("", help="start from this student model folder instead of building one from the teacher")


@dataclass
class LossSection:
    ce_weight: float = field(1.0, help="weight of the ground-truth cross-entropy")
    kl_weight: float = field(DISTILL_LOSS["kl_weight"], help="weight of KL(teacher || student) on softened logits (x T^2)")
    temperature: float = field(DISTILL_LOSS["temperature"], help="softmax temperature T of the KL loss")
    hidden_weight: float = field(DISTILL_LOSS["hidden_weight"], help="weight of the hidden-state loss (mean over mapped pairs)")
    hidden_kind: str = field(DISTILL_LOSS["hidden_kind"], help="hidden-state loss: mse or cosine")
    attn_weight: float = field(DISTILL_LOSS["attn_weight"], help="weight of the attention-map KL (mean over mapped pairs)")
    chunk_size: int = field(256, help="tokens per chunk of the vocabulary losses (bounds the logits' memory; 256: their passes stay in cache, 1.5x faster than 1024 at V = 32,667)")
    projections: bool = field(True, help="learn a bias-free projection per pair when student and teacher widths differ")


@dataclass
class TrainSection(RunSettings):
    parallel: str = field("auto", help="auto (ddp under torchrun), none, ddp or fsdp (FSDP2: student sharded per layer, teacher replicated)")
    ckpt_format: str = field("auto", help="checkpoints: auto (sharded under fsdp, else full), sharded (each rank writes its shard with "
                                          "torch.distributed.checkpoint) or full (gathered on rank 0 into a plain HF folder)")


@dataclass
class GrowthSection:
    op: str = field("none", help="grow the student during distillation (stacking): none, top, gradual, middle or interleaved; "
                                 "the student starts shallow and reaches student.n_layers in growth.stages stages")
    stages: int = field(2, help="number of growth stages (the student grows at the start of stages 2..S)")
    schedule: str = field("equal", help="stage lengths: equal, or prop1 (stage s lasts in proportion to s)")
    every: int = field(0, help="interleaved: duplicate every b-th layer at each growth (0: planned, one copy per initial layer)")
    n: int = field(0, help="gradual/middle: layers copied at each growth (0: planned, the initial depth)")
    optimizer: str = field("copy", help="AdamW state at a growth: copy (each copy gets its original's moments) or reset")


@dataclass
class Config:
    RENAMED: ClassVar[dict[str, str]] = dict(TRACKER_RENAMES)
    teacher: TeacherSection = dc_field(default_factory=TeacherSection, metadata={"help": "the teacher"})
    student: StudentSection = dc_field(default_factory=StudentSection, metadata={"help": "the student"})
    layer_map: list[list[int]] = field([], help="[[student, teacher], ...] pairs for the hidden/attn losses (empty: each student layer <-> its kept teacher layer)")
    loss: LossSection = dc_field(default_factory=LossSection, metadata={"help": "loss weights"})
    data: DataSettings = dc_field(default_factory=DataSettings, metadata={"help": "training shards"})
    optim: OptimSettings = dc_field(default_factory=OptimSettings, metadata={"help": "optimizer"})
    train: TrainSection = dc_field(default_factory=TrainSection, metadata={"help": "run"})
    growth: GrowthSection = dc_field(default_factory=GrowthSection, metadata={"help": "depth growth of the student (docs/SFM.md)"})
    resume: bool = field(False, help="continue from the newest checkpoint in train.out (same as train.resume)")
    dry_run: bool = field(False, help="validate the config on a scaled-down teacher of the same shape and print parameter, memory, "
                                      "FLOP and GPU estimates for the real sizes; trains nothing")


def _dry_run(cfg: Config) -> int:
    """Build the student from a 64-wide teacher with the real layer count and vocabulary, run one
    step of the configured objective on it, and print the full-size estimates (tinywave.models.estimate)."""
    # lazy: torch and transformers are heavy (~3 s); recipe modules import without them (tinywave/recipes/__init__.py)
    import torch
    from transformers import LlamaForCausalLM

    # lazy: these import torch (~1.4 s)
    from tinywave.data.shards import labels_from_batch
    from tinywave.models.student import build_student, student_config

    shape, source = estimate.teacher_shape(cfg.teacher.dir)
    real = estimate.scaled_config(shape, shape.hidden, shape.head_dim)  # the real config (no weights) checks the width
    keep = _student_plan(cfg, shape.layers)
    student_config(real, cfg.student.n_layers, keep, cfg.student.width or None)
    tiny_cfg = estimate.scaled_config(shape)
    torch.manual_seed(cfg.train.seed)
    teacher = LlamaForCausalLM(tiny_cfg)
    width = cfg.student.width * tiny_cfg.hidden_size // shape.hidden if cfg.student.width else None
    student = build_student(teacher, cfg.student.n_layers, keep, width, cfg.student.init)
    pairs = _layer_pairs(cfg, keep, cfg.student.n_layers, shape.layers)
    online = dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher, cache=""))  # the scaled teacher runs online
    objective, _ = _objective(online, student, teacher, None, pairs, None, device=torch.device("cpu"))
    ids = torch.randint(0, shape.vocab, (2, 16))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels_from_batch(ids, torch.ones_like(ids))}
    losses = objective(batch, float((batch["labels"] != -100).sum()))
    losses["loss"].backward()
    print(f"teacher shape from {source}: {shape}")
    print(f"student keeps teacher layers {keep}; layer map (student <- teacher) {pairs}")
    print("validation step on the scaled-down models: " + ", ".join(f"{k} {v.item():.3f}" for k, v in losses.items()))
    settings = estimate.StepSettings(cfg.data.batch_size, cfg.data.seq_len or 2048, cfg.optim.accum_steps, cfg.train.precision,
                                     cfg.teacher.dtype, objective.teacher is not None, len(pairs) if cfg.loss.hidden_weight > 0 else 0,
                                     len(pairs) if cfg.loss.attn_weight > 0 else 0, cfg.loss.chunk_size)
    print("\n".join(estimate.report(shape, shape.student(cfg.student.n_layers, cfg.student.width), settings, cfg.train.steps)))
    return 0


def _student_plan(cfg: Config, n_teacher: int) -> list[int]:
    """Teacher layer behind each student layer: keep_layers, else uniform spacing."""
    from tinywave.models.student import check_keep_layers, uniform_layer_map  # lazy: models.student imports torch (~1.4 s)

    if cfg.student.keep_layers:
        check_keep_layers(cfg.student.keep_layers, cfg.student.n_layers, n_teacher)
        return list(cfg.student.keep_layers)
    return uniform_layer_map(n_teacher, cfg.student.n_layers)


def _make_student(cfg: Config, teacher, keep: list[int], resume_from: Path | None):
    """(student, its tokenizer folder): the checkpoint's on resume, student.dir, or built from the teacher.

    A sharded checkpoint's student is built from its config.json; the trainer loads the weights from the shards.
    """
    # lazy: these import torch (models.hf transformers too, ~4 s); recipe modules import without them
    from tinywave.training.sharded import is_sharded
    from tinywave.models.hf import load_causal_lm, model_from_config
    from tinywave.models.student import build_student

    if resume_from is not None:
        return (model_from_config if is_sharded(resume_from) else load_causal_lm)(resume_from), resume_from
    if cfg.student.dir:
        return load_causal_lm(cfg.student.dir), Path(cfg.student.dir)
    width = cfg.student.width or None
    return build_student(teacher, len(keep), keep, width, cfg.student.init), Path(cfg.teacher.dir)


# --- depth growth (stacking; tinywave.distill.growth) -----------------------------------------

def _growth_plan(cfg: Config, keep: list[int], n_teacher: int, parallel):
    """The growth plan (None with growth.op=none): layer map and teacher layers are those of the FINAL student."""
    from tinywave.distill.growth import describe, plan_student_growth  # lazy: distill.growth imports torch (~1.4 s)

    g = cfg.growth
    if g.op == "none":
        return None
    if parallel.sharded:
        raise ValueError(f"growth.op={g.op} writes full checkpoints only; set train.ckpt_format=full (or auto), or growth.op=none")
    if parallel.mode != "none" or parallel.world_size > 1:
        raise ValueError(f"growth.op={g.op} grows the student in one process only; run without torchrun and with "
                         f"train.parallel=none (or auto), or set growth.op=none (train.parallel={cfg.train.parallel})")
    final = _layer_pairs(cfg, keep, len(keep), n_teacher)
    plan = plan_student_growth(g.op, g.stages, g.schedule, cfg.train.steps, final, keep, explicit=bool(cfg.layer_map), every=g.every, n=g.n, optimizer=g.optimizer)
    log.info("%s", describe(plan))
    return plan


def _stage_pairs(cfg: Config, plan, keep: list[int], n_student: int, n_teacher: int, resume_from: Path | None):
    """Layer pairs of the student as built or loaded: the fixed map, or that of its growth stage."""
    # lazy: these import torch (~1.4 s)
    from tinywave.training.checkpoint import read_state
    from tinywave.distill.growth import resume_stage

    if plan is None:
        return _layer_pairs(cfg, keep, n_student, n_teacher)
    step = read_state(resume_from)["step"] if resume_from is not None else 0
    source = str(resume_from or cfg.student.dir or "the student built from the teacher")
    return plan.pairs[resume_stage(plan, n_student, step, source)]


def _layer_pairs(cfg: Config, keep: list[int], n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    from tinywave.models.student import check_layer_map  # lazy: models.student imports torch (~1.4 s)

    pairs = [tuple(p) for p in cfg.layer_map] if cfg.layer_map else [(i, keep[i]) for i in range(min(n_student, len(keep)))]
    check_layer_map(pairs, n_student, n_teacher)
    return pairs


def _projections(cfg: Config, pairs, student, teacher, resume_from: Path | None):
    from safetensors.torch import load_file  # lazy: safetensors.torch imports torch (~1.4 s)

    # lazy: these import torch
    from tinywave.distill.objective import make_projections
    from tinywave.training.sharded import is_sharded

    s_width, t_width = student.config.hidden_size, teacher.config.hidden_size
    if s_width == t_width or cfg.loss.hidden_weight == 0:
        return None
    if not cfg.loss.projections:
        raise ValueError(f"student width {s_width} differs from the teacher's {t_width}: the hidden loss needs loss.projections=true (or loss.hidden_weight=0)")
    proj = make_projections(pairs, s_width, t_width)
    if resume_from is not None and not is_sharded(resume_from):  # sharded: the trainer loads them with the student
        proj.load_state_dict(load_file(str(Path(resume_from) / PROJECTIONS_FILE)))
    return proj


def _modality_ranges(teacher_dir: str) -> list[tuple[int, int]]:
    """Text / marker / speech-unit id ranges of the teacher folder's tokenizer (for the cache's modality tail)."""
    from tinywave.distill.teacher_cache import modality_ranges  # lazy: distill.teacher_cache imports torch (~1.4 s)

    try:
        layout = layout_from_tokenizer(load_tokenizer(teacher_dir))  # local files only (a folder or a cached hub id)
    except (OSError, ValueError) as err:
        raise ValueError(f"teacher.cache_tail=modality needs the speech-LM tokenizer of teacher.dir={teacher_dir!r} ({err}); "
                         "set teacher.cache_tail=uniform for a vocabulary without speech tokens") from err
    return modality_ranges(layout)


def _teacher_targets(cfg: Config, teacher, dataset, mapped: list[int], device):
    """The teacher run online (on ``device``), or its outputs read from ``teacher.cache``."""
    # lazy: these import torch (~1.4 s)
    from tinywave.distill.teacher_cache import open_cache
    from tinywave.distill.teacher import OnlineTeacher

    loss = cfg.loss
    hidden, attn = (mapped if w > 0 else [] for w in (loss.hidden_weight, loss.attn_weight))
    if cfg.teacher.cache:
        ranges = _modality_ranges(cfg.teacher.dir) if cfg.teacher.cache_tail == "modality" else None
        return open_cache(cfg.teacher.cache, teacher, dataset, loss.temperature, hidden, loss.kl_weight > 0, attn_layers=attn,
                          tail=cfg.teacher.cache_tail, ranges=ranges)
    return OnlineTeacher(teacher.to(device), hidden, attn, logits=loss.kl_weight > 0)


def _objective(cfg: Config, student, teacher, dataset, pairs, resume_from: Path | None, *, device):
    """(DistillObjective on ``device``, projections or None) for the configured loss weights."""
    import torch  # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)

    # lazy: these import torch
    from tinywave.distill.objective import DistillObjective, LossWeights

    loss = cfg.loss
    weights = LossWeights(loss.ce_weight, loss.kl_weight, loss.hidden_weight, loss.attn_weight, loss.temperature, loss.hidden_kind, loss.chunk_size)
    weights.check()
    targets = _teacher_targets(cfg, teacher, dataset, [t for _, t in pairs], device) if weights.needs_teacher else None
    projections = _projections(cfg, pairs, student, teacher, resume_from)
    objective = DistillObjective(student.to(device, torch.float32).train(), weights, pairs, targets, projections)
    return objective.to(device), projections


def run(cfg: Config) -> int:
    # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)
    import torch
    from safetensors.torch import save_file

    # lazy: these import torch (models.hf and models.export transformers too, ~4 s)
    from tinywave.data.shards import ShardDataset
    from tinywave.training.batches import BatchStream
    from tinywave.training.distributed import Parallel
    from tinywave.distill.growth import StudentGrowth, read_history
    from tinywave.training.trainer import fit, resolve_device, resume_point
    from tinywave.models.attention import decoder_layers
    from tinywave.models.checks import check_same_vocabulary, check_shards_fit, check_tokenizer_fits
    from tinywave.models.export import export_model
    from tinywave.models.hf import load_causal_lm, write_model_dir

    if cfg.dry_run:
        return _dry_run(cfg)
    if not cfg.teacher.dir or not cfg.data.shards:
        raise ValueError("distill needs teacher.dir (the teacher model folder) and data.shards (the shard folder)")
    cfg.train.resume = cfg.train.resume or cfg.resume
    resume_from = resume_point(cfg.train, to_dict(cfg))
    torch.manual_seed(cfg.train.seed)
    parallel = Parallel.setup(cfg.train.parallel, resolve_device(cfg.train.device), cfg.train.ckpt_format)  # under torchrun: joins the others
    device = parallel.device

    # 1. teacher and its vocabulary (the reference every other check compares with)
    teacher = load_causal_lm(cfg.teacher.dir, cfg.teacher.dtype)
    tokenizer = load_tokenizer(cfg.teacher.dir)
    check_tokenizer_fits(teacher, tokenizer, f"teacher {cfg.teacher.dir}")
    fingerprint = vocab_fingerprint(tokenizer)
    n_teacher = len(decoder_layers(teacher))

    # 2. student (built from the teacher, or loaded), same vocabulary
    keep = _student_plan(cfg, n_teacher)
    plan = _growth_plan(cfg, keep, n_teacher, parallel)  # growth.op: the student starts shallow, grows to n_layers
    student, student_src = _make_student(cfg, teacher, plan.init_keep if plan else keep, resume_from)
    check_same_vocabulary(teacher, student, fingerprint, vocab_fingerprint(load_tokenizer(student_src)), str(student_src))
    n_student = len(decoder_layers(student))

    # 3. layer map, validated and printed
    pairs = _stage_pairs(cfg, plan, keep, n_student, n_teacher, resume_from)
    log.info("layer map (student <- teacher): %s", ", ".join(f"{s} <- {t}" for s, t in pairs) or "none")

    # 4. data, refused unless built with the teacher's vocabulary
    dataset = ShardDataset(cfg.data.shards, expected_fingerprint=fingerprint)
    check_shards_fit(dataset.index, dataset.seq_len, cfg.data.seq_len, {"teacher": teacher, "student": student}, cfg.data.shards)
    stream = BatchStream(dataset, cfg.data.batch_size, cfg.train.seed, rank=parallel.rank, world_size=parallel.world_size)

    # 5. objective: the teacher runs only when a teacher-dependent loss is on (or is read from its cache)
    objective, projections = _objective(cfg, student, teacher, dataset, pairs, resume_from, device=device)
    model = parallel.wrap(objective, decoder_layers(student))  # ddp / fsdp under torchrun, else unchanged
    params = [p for p in model.parameters() if p.requires_grad]
    teacher_kind = ("cached" if cfg.teacher.cache else "online") if objective.teacher else "not run (CE only)"
    log.info("student: %.2fM trainable parameters; teacher %s", sum(p.numel() for p in params) / 1e6, teacher_kind)

    # 6. train (rank 0 writes; sharded checkpoints: every rank writes its shards, rank 0 the model files without weights;
    #    full checkpoints under FSDP: from the weights gathered for the checkpoint)
    grow = StudentGrowth(plan, objective, cfg.optim, cfg.train.steps, cfg.train.out, read_history(resume_from)) if plan else None

    def save_model(folder: Path) -> None:
        if parallel.sharded:
            write_model_dir(objective.student, tokenizer, folder, speech_src=cfg.teacher.dir, weights=False)
            return
        plain = parallel.plain(objective)
        write_model_dir(plain.student, tokenizer, folder, speech_src=cfg.teacher.dir)
        if projections is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in plain.projections.state_dict().items()}, str(folder / PROJECTIONS_FILE))
        if grow is not None:
            grow.save(folder)  # growth.json: depth, layer map and growth history

    result = fit(model, params, stream, cfg.optim, cfg.train, save_model, config=to_dict(cfg), resume_from=resume_from, parallel=parallel, growth=grow)

    # 7. the student as a plain HF folder (from a sharded checkpoint: gathered here, in one process)
    if result.finished and result.checkpoint is not None and parallel.is_main:
        export_model(result.checkpoint, Path(cfg.train.out) / "model")
        log.info("student -> %s", Path(cfg.train.out) / "model")
    parallel.close()
    return 0

"""Recipe: distil a HuBERT-like teacher into a small student, optionally growing its depth.

    tinywave sfm distill --config configs/sfm-stacking.yaml --teacher runs/sfm-teacher/teacher \
        --manifest corpus/manifest.jsonl --out runs/sfm-student growth.op=interleaved

Students (``student.kind``): ``distilhubert`` (teacher CNN + few layers, heads regressing
teacher layers from the last layer; L1 - log sigmoid(cos)) or ``layer2layer`` (deeper,
narrower; each target's student layer regresses its teacher layer through a projection;
MSE(output) + w * MSE(intermediate), w = ``loss.intermediate_weight``). Stacking
(``growth.op``): none, top, gradual, middle, interleaved; the student starts with
``growth.init_layers`` and grows at the stage boundaries of ``growth.schedule``
(equal | prop1) to ``student.n_layers``. The sections and key names are the LM distill
recipe's (``student.width/n_layers/ffn``, ``growth``, ``data``, ``optim``, ``loss``, ``train``);
the keys they replaced are listed in ``Config.RENAMED`` and refused with the new name.

Trains on the shared loop (tinywave/training/trainer.py). Writes OUT/train_log.jsonl,
OUT/checkpoints/ (a rerun with ``train.resume=true`` continues, across growth steps too),
OUT/loss.png, OUT/summary.json and OUT/student/: a plain HF HubertModel directory (usable
as an s3prl upstream, a probe upstream and by the HuBERT unit extractor) with the
heads in heads.safetensors and the targets/growth history in sfm_student.json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tinywave.config import field, to_dict
from tinywave.files import atomic_dir, atomic_write_json
from tinywave.training.settings import REPORT_TO_HELP, TRACKER_RENAMES, RunSettings

log = logging.getLogger(__name__)


@dataclass
class StudentSection:
    kind: str = field("layer2layer", help="layer2layer | distilhubert")
    width: int = field(96, help="student hidden size")
    n_layers: int = field(6, help="final student depth (after all growth stages)")
    heads: int = field(4, help="attention heads")
    ffn: int = field(384, help="feed-forward width")
    teacher_layers: list[int] = field([2, 3, 4], help="teacher hidden-state indices to regress (k = output of layer k)")
    init_from_teacher: bool = field(True, help="copy the teacher's first layers when the widths match (DistilHuBERT)")
    freeze_front_end: bool = field(True, help="keep the copied CNN front end frozen (then it runs once per batch for both)")


@dataclass
class GrowthSection:
    op: str = field("interleaved", help="none | top | gradual | middle | interleaved")
    init_layers: int = field(3, help="starting depth (ignored for op=none, which starts at student.n_layers)")
    stages: int = field(2, help="growth stages (the model grows stages-1 times)")
    schedule: str = field("prop1", help="equal | prop1 (stage s lasts in proportion to s)")
    optimizer: str = field("copy", help="on growth: reset the optimizer, or copy each original layer's state to its copies")


@dataclass
class DataSection:
    batch_size: int = field(8, help="crops per step (per process under ddp)")
    crop_seconds: float = field(2.0, help="random crop length")


@dataclass
class OptimSection:
    lr: float = field(5e-4, help="peak learning rate (AdamW)")
    warmup_steps: int = field(50, help="linear warm-up steps")
    weight_decay: float = field(0.01, help="AdamW weight decay on matrices")


@dataclass
class LossSection:
    # w = 0.5: the interleaved-stacking paper's best value (docs/SFM.md, "Benchmark: the stacking study")
    intermediate_weight: float = field(0.5, help="w in MSE(output) + w * MSE(intermediate) (layer2layer)")


@dataclass
class TrainSection:
    steps: int = field(1000, help="optimizer steps")
    seed: int = field(0, help="seed for init and batches")
    log_every: int = field(1, help="write every N-th step's record to train_log.jsonl")
    ckpt_every: int = field(100, help="checkpoint every N steps")
    keep_checkpoints: int = field(2, help="checkpoints kept")
    stop_after_steps: int = field(0, help="run at most N steps in this invocation, then checkpoint and stop (a rerun with "
                                          "train.resume=true continues); 0: no limit")
    resume: bool = field(False, help="continue from the newest checkpoint in OUT/checkpoints (required when there is one)")
    report_to: list[str] = field(["tensorboard"], help=REPORT_TO_HELP)
    parallel: str = field("auto", help="auto (ddp under torchrun), none or ddp; data.batch_size is per process")


@dataclass
class Config:
    RENAMED: ClassVar[dict[str, str]] = {
        "student.hidden_size": "student.width", "student.num_layers": "student.n_layers", "student.intermediate_size": "student.ffn",
        "stacking": "growth", "train.batch_size": "data.batch_size", "train.crop_seconds": "data.crop_seconds",
        "train.lr": "optim.lr", "train.warmup": "optim.warmup_steps", "train.weight_decay": "optim.weight_decay",
        "train.intermediate_weight": "loss.intermediate_weight", "train.save_every": "train.ckpt_every",
        "train.keep": "train.keep_checkpoints", "train.stop_at": "train.stop_after_steps",
        **TRACKER_RENAMES,
    }
    teacher: str = field("", help="teacher directory (HubertModel / WavLMModel / Wav2Vec2Model, Hugging Face format)")
    manifest: str = field("", help="training manifest (JSON lines; docs/FORMATS.md)")
    out: str = field("", help="output directory")
    resume: bool = field(False, help="continue from the newest checkpoint in OUT/checkpoints (same as train.resume)")
    max_items: int = field(0, help="use at most this many utterances (0: all)")
    student: StudentSection = field(default_factory=StudentSection, help="student")
    growth: GrowthSection = field(default_factory=GrowthSection, help="depth growth (stacking)")
    data: DataSection = field(default_factory=DataSection, help="batches")
    optim: OptimSection = field(default_factory=OptimSection, help="optimizer")
    loss: LossSection = field(default_factory=LossSection, help="loss weights")
    train: TrainSection = field(default_factory=TrainSection, help="run")


def growth_plan(cfg: Config):
    """(initial depth, GrowthPlan) from the config; checks the plan reaches student.n_layers."""
    # lazy: these import torch (sfm.distill transformers too, ~4.5 s); recipe modules import without them
    from tinywave.sfm.distill import GrowthPlan
    from tinywave.stacking import OPTIMIZER_MODES, final_depth, growth_steps, plan_growth

    g = cfg.growth
    if g.optimizer not in OPTIMIZER_MODES:
        raise ValueError(f"growth.optimizer={g.optimizer!r}; choose one of {list(OPTIMIZER_MODES)}")
    if g.op == "none":
        return cfg.student.n_layers, GrowthPlan("none", [], [], g.optimizer)
    reached = final_depth(g.op, g.init_layers, g.stages)
    if reached != cfg.student.n_layers:
        raise ValueError(f"growth.op={g.op} from {g.init_layers} layers in {g.stages} stages reaches {reached} layers, "
                         f"not student.n_layers={cfg.student.n_layers}; change growth.init_layers/stages or student.n_layers")
    steps = growth_steps(cfg.train.steps, g.stages, g.schedule)
    return g.init_layers, GrowthPlan(g.op, steps, plan_growth(g.op, g.init_layers, g.stages), g.optimizer)


def build(cfg: Config, teacher, depth: int):
    """A fresh student at ``depth`` layers (targets spread uniformly for layer2layer)."""
    # lazy: these import torch and transformers (~4.5 s)
    from tinywave.sfm.models import build_student, student_config
    from tinywave.sfm.student import Student, uniform_targets

    st = cfg.student
    config = student_config(teacher, st.width, depth, st.heads, st.ffn)
    encoder = build_student(teacher, config, st.init_from_teacher, cfg.train.seed)
    targets = uniform_targets(depth, st.teacher_layers) if st.kind == "layer2layer" else {}
    return Student(encoder, st.kind, st.teacher_layers, teacher.config.hidden_size, targets)


def _check(cfg: Config, teacher) -> None:
    if not cfg.teacher or not cfg.manifest or not cfg.out:
        raise ValueError("--teacher, --manifest and --out are required")
    n = teacher.config.num_hidden_layers
    bad = [t for t in cfg.student.teacher_layers if not 1 <= t <= n]
    if bad or not cfg.student.teacher_layers:
        raise ValueError(f"student.teacher_layers {cfg.student.teacher_layers}: each must be in 1..{n} (the teacher has {n} layers)")


def run(cfg: Config) -> int:
    import torch  # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)

    # lazy: these import torch (sfm.distill, sfm.models and sfm.student transformers too, ~4.5 s)
    from tinywave.sfm.data import load_bank
    from tinywave.sfm.distill import TeacherTargets, distill
    from tinywave.sfm.models import freeze, load_encoder, same_front_end
    from tinywave.sfm.student import Student
    from tinywave.training.distributed import Parallel
    from tinywave.training.trainer import resume_point

    if not cfg.teacher:
        raise ValueError("--teacher is required: a HuBERT-family model directory (e.g. from `tinywave sfm pretrain`)")
    if cfg.train.parallel == "fsdp":
        raise ValueError("sfm distill supports train.parallel=ddp (or auto/none); FSDP is for the language-model distillation")
    # 1. frozen teacher, data, growth plan; checkpoints in OUT need train.resume=true
    teacher = freeze(load_encoder(cfg.teacher))
    _check(cfg, teacher)
    out = Path(cfg.out)
    resume_from = resume_point(RunSettings(out=str(out), resume=cfg.train.resume or cfg.resume), to_dict(cfg))
    parallel = Parallel.setup(cfg.train.parallel, torch.device("cpu"))  # under torchrun: DDP over the processes
    bank = load_bank(cfg.manifest, cfg.max_items)
    init_depth, plan = growth_plan(cfg)
    # 2. student: resumed at its recorded (possibly grown) depth, or fresh at the initial depth
    if resume_from is not None:
        student = Student.load(resume_from)
        _check_resumable(cfg, plan, student, resume_from)
        log.info("resuming from %s at depth %d", resume_from, student.depth)
    else:
        student = build(cfg, teacher, init_depth)
        if parallel.is_main:
            atomic_write_json(out / "config.json", to_dict(cfg))
    if cfg.student.freeze_front_end:
        freeze(student.encoder.feature_extractor)
    # 3. train, growing at the planned steps
    share = cfg.student.freeze_front_end and same_front_end(teacher, student.encoder)  # run the CNN once for both
    targets = TeacherTargets(teacher, cfg.student.teacher_layers, share_front_end=share)
    summary = distill(student, targets, bank, plan, loop_settings(cfg), out, resume_from=resume_from, parallel=parallel, config=to_dict(cfg))
    if parallel.is_main:  # rank 0 writes the plot, the student and the summary
        _write_outputs(out, plan, student, summary, cfg.train.steps)
    parallel.close()
    return 0


def _check_resumable(cfg: Config, plan, student, checkpoint: Path) -> None:
    """A checkpoint of another growth operator or student kind cannot continue this run."""
    from tinywave.training.checkpoint import read_config  # lazy: training.checkpoint imports torch (~1.4 s)

    saved = read_config(checkpoint)
    op = saved.get("growth", {}).get("op")
    if op != plan.op or student.kind != cfg.student.kind:
        raise ValueError(f"{checkpoint} was written by a {op}/{student.kind} run, not {plan.op}/{cfg.student.kind}; "
                         f"use another --out or the same config to resume")


def loop_settings(cfg: Config):
    """The training loop's settings from the config's sections."""
    from tinywave.sfm.distill import LoopSettings  # lazy: sfm.distill imports torch and transformers (~4.5 s)

    t, d, o = cfg.train, cfg.data, cfg.optim
    return LoopSettings(steps=t.steps, batch_size=d.batch_size, crop_samples=int(d.crop_seconds * 16000), lr=o.lr,
                        warmup_steps=o.warmup_steps, weight_decay=o.weight_decay, seed=t.seed,
                        intermediate_weight=cfg.loss.intermediate_weight, log_every=t.log_every,
                        ckpt_every=t.ckpt_every, keep_checkpoints=t.keep_checkpoints, stop_after_steps=t.stop_after_steps,
                        report_to=tuple(t.report_to))


def _write_outputs(out: Path, plan, student, summary: dict, steps: int) -> None:
    """The loss plot; when finished, the student (plain HF HubertModel dir + heads + targets) and summary.json."""
    from tinywave.sfm.distill import plot_losses  # lazy: sfm.distill imports torch and transformers (~4.5 s)

    plot_losses(out / "train_log.jsonl", plan.steps, out / "loss.png", f"sfm distill: {plan.op}, {student.kind}")
    if not summary["finished"]:
        log.info("stopped at step %d of %d; rerun with train.resume=true to continue", summary["step"], steps)
        return
    with atomic_dir(out / "student") as tmp:
        student.save(tmp)
    atomic_write_json(out / "summary.json", {**summary, "growth_steps": plan.steps, "history": student.history})
    log.info("student (%d layers) -> %s; final loss %.4f", student.depth, out / "student", summary["loss"])

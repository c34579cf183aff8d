"""Recipe: write a plain Hugging Face directory from a checkpoint.

    tinywave export --checkpoint runs/student --out models/student
    tinywave export --checkpoint runs/student/checkpoints/step_00000200 --out models/s200 dtype=bfloat16

The folder loads with ``LlamaForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` alone (SDPA attention, safetensors, tokenizer files,
``speech_tokenizer/``). LoRA checkpoints are merged into their base model. ``README.md`` is
the model card: licence (students of SpiritLM inherit its FAIR Noncommercial Research
License), teacher and kept layers, the run's data and steps, and the scores of a
``tinywave eval`` report given with ``eval=``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinywave.config import field


@dataclass
class Config:
    checkpoint: str = field("", help="a checkpoint folder (checkpoints/step_*), a run folder (its newest checkpoint) or a model folder")
    out: str = field("", help="output model folder")
    dtype: str = field("float32", help="weights dtype: float32, bfloat16 or float16")
    eval: str = field("", help="a `tinywave eval` results.json (or its folder): its scores go into the model card README.md")
    eval_model: str = field("student", help="the name of this model in that report")


def run(cfg: Config) -> int:
    from tinywave.models.export import export_model

    if not cfg.checkpoint or not cfg.out:
        raise ValueError("export needs --checkpoint DIR and --out DIR")
    export_model(cfg.checkpoint, cfg.out, cfg.dtype, cfg.eval or None, cfg.eval_model)
    return 0

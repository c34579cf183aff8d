"""Recipe: write a plain Hugging Face directory from a checkpoint.

    tinywave export --checkpoint runs/student --out models/student
    tinywave export --checkpoint runs/student/checkpoints/step_00000200 --out models/s200 dtype=bf16

The folder loads with ``LlamaForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` alone (SDPA attention, safetensors, tokenizer files,
``speech_tokenizer/``). LoRA checkpoints are merged into their base model. ``README.md`` is
the model card: licence (students of SpiritLM inherit its FAIR Noncommercial Research
License), teacher and kept layers, the run's data and steps, and the scores of a
``tinywave eval`` report given with ``eval=``.

``push=owner/name`` then uploads the folder to the Hugging Face Hub (private unless
``push_private=false``; needs network and `huggingface-cli login`); ``push_dry_run=true``
checks the folder and lists what would be uploaded, with its licence, sending nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tinywave.config import field
from tinywave.models.push import check_repo_id, push, push_plan

log = logging.getLogger(__name__)


@dataclass
class Config:
    checkpoint: str = field("", help="a checkpoint folder (checkpoints/step_*), a run folder (its newest checkpoint) or a model folder")
    out: str = field("", help="output model folder")
    dtype: str = field("fp32", help="weights dtype: fp32, bf16 or fp16 (float32, bfloat16, float16 also work)")
    eval: str = field("", help="a `tinywave eval` results.json (or its folder): its scores go into the model card README.md")
    eval_model: str = field("student", help="the name of this model in that report")
    push: str = field("", help="after exporting, upload the folder to this Hugging Face Hub repository (owner/name)")
    push_private: bool = field(True, help="create the Hub repository as private")
    push_dry_run: bool = field(False, help="check the folder and list what push would upload, without sending anything")


def run(cfg: Config) -> int:
    from tinywave.models.export import export_model  # lazy: models.export imports torch and transformers (~4 s)

    if not cfg.checkpoint or not cfg.out:
        raise ValueError("export needs --checkpoint DIR and --out DIR")
    if cfg.push_dry_run and not cfg.push:
        raise ValueError("push_dry_run=true needs push=owner/name (the Hub repository it would upload to)")
    if cfg.push:
        check_repo_id(cfg.push)  # before any work
    export_model(cfg.checkpoint, cfg.out, cfg.dtype, cfg.eval or None, cfg.eval_model)
    if cfg.push:
        log.info("%s", push(push_plan(cfg.out, cfg.push, cfg.push_private), cfg.push_dry_run))
    return 0

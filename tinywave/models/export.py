"""Export a training checkpoint as a plain Hugging Face directory.

The result holds ``config.json`` (SDPA attention, the chosen dtype),
``model.safetensors``, the tokenizer files, ``speech_tokenizer/`` and a model card
``README.md`` (licence, teacher, kept layers, training run, scores); it loads with
``LlamaForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` alone. A LoRA
checkpoint is merged into its base model on the way out; a sharded checkpoint (FSDP) has its
weights read from every rank's shard file in one process.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from torch import nn

from tinywave.training.checkpoint import latest_checkpoint
from tinywave.training.sharded import is_sharded, read_model_weights
from tinywave.files import atomic_dir
from tinywave.models.card import eval_scores, gather_facts, write_card
from tinywave.models.hf import check_model_dir, load_causal_lm, model_from_config, torch_dtype, write_model_dir
from tinywave.models.lora import ADAPTER_CONFIG, is_adapter_dir, load_lora, merge_lora
from tinywave.text.vocab import load_tokenizer

log = logging.getLogger(__name__)


def find_model_folder(path: str | Path) -> Path:
    """A checkpoint folder, the newest checkpoint of a run folder, or a model folder."""
    path = Path(path)
    if is_adapter_dir(path) or (path / "config.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(
            f"{path} holds no model: expected a checkpoint folder (checkpoints/step_*), a run folder "
            "(train.out of `tinywave train`/`distill`) or a Hugging Face model folder"
        )
    return latest


def load_trained_model(path: str | Path, dtype: str = "fp32") -> tuple[nn.Module, object, Path]:
    """(model, tokenizer, folder) of a checkpoint/run/model folder; LoRA adapters are merged."""
    folder = find_model_folder(path)
    if is_adapter_dir(folder):
        base_dir = json.loads((folder / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path", "")
        if not base_dir or not Path(base_dir).is_dir():
            raise FileNotFoundError(f"LoRA checkpoint {folder} names base model {base_dir!r}, which is not a folder here; restore the teacher folder it was trained from")
        model = merge_lora(load_lora(load_causal_lm(check_model_dir(base_dir), dtype), folder, trainable=False))
    elif is_sharded(folder):  # written under FSDP: the weights are gathered from the ranks' shards here
        model = read_model_weights(folder, model_from_config(folder)).to(torch_dtype(dtype))
    else:
        model = load_causal_lm(folder, dtype)
    return model.eval(), load_tokenizer(folder), folder


def export_model(checkpoint: str | Path, out: str | Path, dtype: str = "fp32", eval_report: str | Path | None = None,
                 eval_model: str = "student") -> Path:
    """Write ``out`` atomically as a plain HF model folder from a checkpoint/run/model folder, with its model card
    (``README.md``; ``tinywave.models.card``), which lists the scores of ``eval_model`` in ``eval_report`` when given."""
    torch_dtype(dtype)  # refuse an unknown dtype before loading anything
    scores = eval_scores(eval_report, eval_model) if eval_report else {}
    model, tokenizer, folder = load_trained_model(checkpoint)
    facts = gather_facts(folder, model, Path(out).name, scores)
    with atomic_dir(out) as tmp:
        write_model_dir(model, tokenizer, tmp, speech_src=folder, dtype=dtype)
        write_card(tmp, facts)
    log.info("exported %s -> %s (%s)", folder, out, dtype)
    return Path(out)

"""LoRA teacher correction through peft: wrap, save/restore the adapter, merge on save."""

from __future__ import annotations

from pathlib import Path

from torch import nn

ATTENTION_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_TARGETS = ["gate_proj", "up_proj", "down_proj"]
ADAPTER_CONFIG = "adapter_config.json"


def lora_targets(mlp: bool) -> list[str]:
    return ATTENTION_TARGETS + (MLP_TARGETS if mlp else [])


def apply_lora(model: nn.Module, r: int, alpha: float, dropout: float, targets: list[str], base_dir: str | Path) -> nn.Module:
    """Wrap ``model`` with fresh LoRA adapters on ``targets``; only the adapters train."""
    # lazy: peft is heavy (~2 s); models.export imports this module for merge_lora/is_adapter_dir on models without adapters
    from peft import LoraConfig, get_peft_model

    if r < 1:
        raise ValueError(f"lora.r={r} must be at least 1 (typical: 8-64)")
    base = str(Path(base_dir).resolve())
    model.name_or_path = base  # peft records it in adapter_config.json: export finds the base model there
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none",
        task_type="CAUSAL_LM", base_model_name_or_path=base,
    )
    return get_peft_model(model, config)


def load_lora(model: nn.Module, adapter_dir: str | Path, trainable: bool) -> nn.Module:
    """Put the adapter saved in ``adapter_dir`` back onto the base ``model``."""
    from peft import PeftModel  # lazy: peft is heavy (~2 s); only loading an adapter needs it

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def is_adapter_dir(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def merge_lora(model: nn.Module) -> nn.Module:
    """The plain model with the adapters folded into its weights (peft ``merge_and_unload``)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model

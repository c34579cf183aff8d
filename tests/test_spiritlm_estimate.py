"""Full-scale recipes: parameter counts of the real shapes, the estimates, and ``distill --dry-run``."""

from pathlib import Path

import pytest

from tinywave.cli import main
from tinywave.config import load_config
from tinywave.models import estimate
from tinywave.models.estimate import LLAMA_2_7B, PRESETS, LlamaShape, StepSettings, param_count
from tinywave.recipes import distill

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_llama_2_7b_and_the_students_parameter_counts():
    assert param_count(LLAMA_2_7B).total == 6_738_415_616  # Llama-2-7B, vocabulary 32000
    base, expressive = PRESETS["spirit-lm-base-7b"], PRESETS["spirit-lm-expressive-7b"]
    assert param_count(base).total == 6_738_415_616 + 2 * 512 * 4096  # 32512 rows in embedding and head
    assert param_count(expressive).total == 6_738_415_616 + 2 * 768 * 4096
    for shape in (base, expressive):
        student = param_count(shape.student(10))
        assert round(student.total / 1e9, 2) == 2.29  # TinyWave's 2.29B students
        assert student.non_embedding == 10 * 202_383_360 + 4096
    narrow = LLAMA_2_7B.student(10, 2048)
    assert (narrow.heads, narrow.kv_heads, narrow.ffn, narrow.head_dim) == (16, 16, 5504, 128)


def test_counts_match_a_real_model_and_lora_adapters():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=8,
                      num_key_value_heads=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    shape = LlamaShape.from_config(cfg)
    assert param_count(shape).total == sum(p.numel() for p in model.parameters())
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    assert estimate.lora_params(shape, 4) == sum(p.numel() for p in lora.parameters() if p.requires_grad)
    per_token = estimate.activation_bytes_per_token_layer(shape, 2)
    assert per_token == 4 * 64 + 2 * (3 * 64 + 2 * 16) + 4 * 64 + 2 * (64 + 4 * 96)


def test_memory_flops_and_layout_scale_as_expected():
    teacher, student = PRESETS["spirit-lm-base-7b"], PRESETS["spirit-lm-base-7b"].student(10)
    st = StepSettings(4, 1024, 16, "bf16", "bfloat16", True, 10, 10, 2048)
    mem = estimate.memory(student, teacher, st)
    assert mem["AdamW states (fp32)"] == 8 * param_count(student).total and mem["teacher weights"] == 2 * param_count(teacher).total
    maps = 10 * 3 * 4 * 32 * 1024**2 * 4
    assert mem["activations / micro-batch"] == 4096 * 10 * estimate.activation_bytes_per_token_layer(student, 2) + maps
    flops = estimate.step_flops(student, teacher, st)
    assert flops["teacher fwd"] / flops["student fwd+bwd"] == pytest.approx((2 * 6.61e9 + 4 * 32 * 4096 * 1024) / (6 * 2.16e9 + 12 * 10 * 4096 * 1024), rel=0.02)
    lay = estimate.suggest_layout(mem, 80)
    assert lay.fits and lay.per_gpu_bytes <= 72e9 and (lay.gpus == 1 or estimate.suggest_layout(mem, 80, max_gpus=lay.gpus // 2).fits is False)
    assert estimate.suggest_layout(mem, 24).gpus > lay.gpus  # smaller GPUs need more of them
    no_teacher = estimate.memory(student, teacher, StepSettings(4, 1024, teacher_runs=False))
    assert no_teacher["teacher weights"] == 0


@pytest.mark.parametrize("name, vocab", [("spiritlm-base-2b.yaml", 32512), ("spiritlm-expressive-2b.yaml", 32768)])
def test_shipped_full_scale_configs(name, vocab):
    cfg = load_config(distill.Config, CONFIGS / name)
    assert (cfg.student.n_layers, cfg.student.width, cfg.student.init) == (10, 0, "pruned")
    assert cfg.loss.kl_weight > 0 and cfg.loss.hidden_weight > 0 and cfg.loss.attn_weight > 0 and cfg.loss.ce_weight > 0
    shape, source = estimate.teacher_shape(cfg.teacher.dir)
    assert shape.vocab == vocab and shape.layers == 32 and "preset" in source
    text = (CONFIGS / name).read_text()
    assert "teacher-correct-lora.yaml" in text and "mixture.speech" in text


@pytest.mark.slow
def test_distill_dry_run_prints_the_real_sizes(capsys, tmp_path):
    assert main(["distill", "--config", str(CONFIGS / "spiritlm-expressive-2b.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "teacher (32 layers)     6.74 B" in out and "student (10 layers)     2.29 B" in out
    assert "keeps teacher layers [2, 5, 9, 12, 15, 18, 21, 25, 28, 31]" in out and "validation step" in out
    assert "layout on H100-80GB: FSDP over" in out and "LoRA r=16" in out
    # a teacher folder's config.json wins over the presets; a bad student width is a user error
    (tmp_path / "config.json").write_text('{"vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32, '
                                          '"num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336}')
    assert main(["distill", "--dry-run", f"teacher.dir={tmp_path}", "student.n_layers=8", "loss.attn_weight=0"]) == 0
    assert "kv_heads=8" in capsys.readouterr().out
    assert main(["distill", "--dry-run", f"teacher.dir={tmp_path}", "student.n_layers=8", "student.width=1000"]) == 2
    assert "student.width=1000" in capsys.readouterr().err

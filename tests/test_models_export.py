"""Export round trip: the exported folder loads with transformers alone and reproduces the training logits."""

import json
from functools import partial

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from support.models import tiny_llama, tiny_tokenizer
from tinywave.models.attention import capture, use_mapped_attention
from tinywave.models.export import export_model
from tinywave.models.hf import write_model_dir
from tinywave.models.lora import apply_lora
from tinywave.text.vocab import vocab_fingerprint

# new_llama(len(tok), 2, 32, 4, 2, 48, 64) with the tokenizer's special ids, in train mode
llama = partial(tiny_llama, width=32, heads=4, kv_heads=2, ffn=48, max_positions=64, training=True)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(["the cat sat on the mat"] * 5, vocab=40, n_hu=16, n_pi=4, n_st=2)[0]


def speech_tokenizer_dir(tmp_path):
    d = tmp_path / "units"
    d.mkdir()
    (d / "speech_tokenizer.json").write_text(json.dumps({"kind": "test"}))
    return d


def test_export_round_trip_reproduces_training_logits(tmp_path, tok):
    model = llama(tokenizer=tok).eval()
    use_mapped_attention(model)  # as during distillation with the attention loss
    ids = torch.tensor([[1, 5, 9, 30, 41, 2], [1, 7, 3, 3, 3, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    with torch.no_grad(), capture(model, attn_layers=[1]):
        train_logits = model(ids, attention_mask=mask).logits
    ckpt = tmp_path / "ckpt"
    write_model_dir(model, tok, ckpt, speech_src=speech_tokenizer_dir(tmp_path))
    export_model(ckpt, tmp_path / "out", dtype="float32")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "tinywave" not in json.dumps(config)
    assert config["dtype"] == "float32" and config["vocab_size"] == len(tok)
    loaded = LlamaForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert loaded.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, attention_mask=mask).logits, train_logits, rtol=1e-5, atol=1e-5)
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert vocab_fingerprint(tok2) == vocab_fingerprint(tok)
    assert tok2.convert_tokens_to_ids("[Hu3]") == tok.convert_tokens_to_ids("[Hu3]")
    assert (tmp_path / "out" / "speech_tokenizer" / "speech_tokenizer.json").is_file()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.safetensors")) == ["model.safetensors"]


def test_export_bfloat16_casts_weights(tmp_path, tok):
    write_model_dir(llama(tokenizer=tok), tok, tmp_path / "ckpt")
    export_model(tmp_path / "ckpt", tmp_path / "out", dtype="bfloat16")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"
    assert LlamaForCausalLM.from_pretrained(tmp_path / "out").lm_head.weight.dtype == torch.bfloat16


def test_lora_checkpoint_is_merged_on_export(tmp_path, tok):
    base = llama(tokenizer=tok, seed=1)
    write_model_dir(base, tok, tmp_path / "teacher")
    peft_model = apply_lora(base, r=4, alpha=8, dropout=0.0, targets=["q_proj", "v_proj"], base_dir=tmp_path / "teacher")
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)  # as after some training; B starts at zero
    ids = torch.tensor([[1, 4, 8, 20, 33]])
    with torch.no_grad():
        want = peft_model(ids).logits
        plain = LlamaForCausalLM.from_pretrained(tmp_path / "teacher")(ids).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    tok.save_pretrained(tmp_path / "adapter")
    export_model(tmp_path / "adapter", tmp_path / "out")
    with torch.no_grad():
        got = LlamaForCausalLM.from_pretrained(tmp_path / "out")(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)
    assert not (tmp_path / "out" / "adapter_config.json").exists()


def test_export_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no model"):
        export_model(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="dtype 'int8' is not known"):
        export_model(tmp_path, tmp_path / "out", dtype="int8")

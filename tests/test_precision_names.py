"""One precision spelling (fp32 / bf16 / fp16) everywhere, the long torch names still accepted,
and teacher caches written with the long names still read and match."""

import json

import pytest
import torch

from support.models import cache_teacher
from tinywave.distill.teacher_cache import CacheSettings, build_cache, open_cache, read_index, teacher_fingerprint
from tinywave.precision_names import canonical, long_name, same_precision, short_or_same, torch_dtype


def test_both_spellings_name_one_precision():
    for short, long, dtype in (("fp32", "float32", torch.float32), ("bf16", "bfloat16", torch.bfloat16), ("fp16", "float16", torch.float16)):
        assert canonical(short) == canonical(long) == canonical(long.upper()) == short
        assert long_name(short) == long_name(long) == long
        assert torch_dtype(short) is torch_dtype(long) is dtype
        assert same_precision(short, long) and short_or_same(long) == short
    assert not same_precision("fp32", "bf16") and not same_precision("int8", "int8") and short_or_same("int8") == "int8"


def test_unknown_or_unsupported_precisions_name_the_choices():
    with pytest.raises(ValueError, match=r"dtype 'int8' is not known; choose one of fp32, bf16, fp16 \(or the long spelling"):
        canonical("int8")
    with pytest.raises(ValueError, match=r"teacher.dtype 'float16' is not supported here; choose one of fp32, bf16 \("):
        canonical("float16", ("fp32", "bf16"), key="teacher.dtype")


def test_every_dtype_parser_takes_both_spellings():
    from tinywave.generate.deploy import check_dtype
    from tinywave.models.estimate import BYTES, StepSettings
    from tinywave.models.hf import torch_dtype as hf_dtype
    from tinywave.training.trainer import autocast_context, config_changes

    assert hf_dtype("bf16") is hf_dtype("bfloat16") is torch.bfloat16
    assert check_dtype("bfloat16") is check_dtype("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="not supported here"):
        check_dtype("fp16")  # not a CPU deployment option
    cpu = torch.device("cpu")
    assert autocast_context("bfloat16", cpu).keywords == autocast_context("bf16", cpu).keywords == {"device_type": "cpu", "dtype": torch.bfloat16}
    with pytest.raises(ValueError, match="use fp32 or bf16"):
        autocast_context("float16", cpu)
    assert BYTES == {"fp32": 4, "bf16": 2, "fp16": 2} and StepSettings(1, 8).teacher_dtype == "bf16"
    # a checkpoint written with teacher.dtype: float32 resumes under fp32 without a "config differs" warning
    assert config_changes({"teacher": {"dtype": "float32"}}, {"teacher": {"dtype": "fp32"}}) == []
    assert config_changes({"teacher": {"dtype": "float32"}}, {"teacher": {"dtype": "bf16"}}) == ["teacher.dtype: 'float32' -> 'bf16'"]


def test_memory_estimate_is_the_same_in_either_spelling():
    from tinywave.models.estimate import LlamaShape, StepSettings, memory

    shape = LlamaShape(vocab=100, hidden=64, layers=2, heads=4, kv_heads=4, ffn=128)
    assert memory(shape, shape, StepSettings(1, 8, 1, "bf16", "bfloat16")) == memory(shape, shape, StepSettings(1, 8, 1, "bf16", "bf16"))
    assert memory(shape, shape, StepSettings(1, 8, 1, "float32", "fp16")) == memory(shape, shape, StepSettings(1, 8, 1, "fp32", "float16"))


def test_a_cache_written_with_the_long_names_still_matches_the_short_ones(cache_shards, tmp_path):
    """Caches record dtypes with their long names (index.json, the teacher fingerprint): one built with
    teacher dtype float32 and float16 / bfloat16 storage (every cache before the short names) is complete
    for the same settings spelled fp16 / bf16, and opens for a teacher loaded with fp32."""
    from tinywave.models.hf import load_causal_lm

    _, ds = cache_shards
    cache_teacher().save_pretrained(str(tmp_path / "teacher"))
    as_long, as_short = (load_causal_lm(tmp_path / "teacher", d) for d in ("float32", "fp32"))
    assert teacher_fingerprint(as_long) == teacher_fingerprint(as_short) and teacher_fingerprint(as_short)["dtype"] == "float32"
    old = tmp_path / "old"
    build_cache(as_long, ds, old, CacheSettings(top_k=8, temperatures=(2.0,), logit_dtype="float16", hidden_layers=(1,),
                                                hidden_dtype="bfloat16", block_rows=32))
    index = read_index(old)
    assert (index["logit_dtype"], index["hidden_dtype"], index["teacher"]["dtype"]) == ("float16", "bfloat16", "float32")
    # the same settings in the short spelling: the finished cache is recognized, not refused as "other settings"
    short = CacheSettings(top_k=8, temperatures=(2.0,), logit_dtype="fp16", hidden_layers=(1,), hidden_dtype="bf16", block_rows=32)
    assert build_cache(as_short, ds, old, short)["complete"]
    assert open_cache(old, as_short, ds, 2.0, hidden_layers=[1]).index["teacher"] == teacher_fingerprint(as_short)
    new = tmp_path / "new"
    build_cache(as_short, ds, new, short)  # a new cache in the short spelling writes the same index
    assert json.loads((new / "index.json").read_text())["arrays"] == index["arrays"]
    assert {k: v for k, v in read_index(new).items() if k != "shards"} == {k: v for k, v in index.items() if k != "shards"}


def test_teacher_cache_recipe_defaults_write_the_long_names_to_disk(cache_shards, tmp_path):
    from tinywave.recipes import teacher_cache

    cfg = teacher_cache.Config()
    assert (cfg.dtype, cfg.logit_dtype, cfg.hidden_dtype, cfg.attn_dtype) == ("fp32", "fp16", "bf16", "fp16")
    _, ds = cache_shards
    settings = CacheSettings(top_k=4, temperatures=(1.0,), logit_dtype=cfg.logit_dtype, hidden_layers=(0,),
                             hidden_dtype=cfg.hidden_dtype, attn_layers=(0,), attn_dtype=cfg.attn_dtype, block_rows=32)
    build_cache(cache_teacher(), ds, tmp_path / "c", settings)
    index = read_index(tmp_path / "c")
    assert (index["logit_dtype"], index["hidden_dtype"], index["attn_dtype"]) == ("float16", "bfloat16", "float16")
    with pytest.raises(ValueError, match=r"logit_dtype 'int4' is not known; choose one of fp32, bf16, fp16"):
        build_cache(cache_teacher(), ds, tmp_path / "bad", CacheSettings(top_k=4, logit_dtype="int4"))

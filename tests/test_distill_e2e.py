"""End to end through the real CLI: teacher training, distillation, resume, baselines, LoRA correction, export."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

from support.shards import speech_shards
from tinywave.cli import main
from tinywave.training.checkpoint import list_checkpoints, read_state
from tinywave.files import load_jsonl
from tinywave.models.attention import capture, use_mapped_attention
from tinywave.models.hf import load_causal_lm
from tinywave.text.vocab import train_bpe_tokenizer

pytestmark = pytest.mark.slow
LOSSES = ("loss", "ce", "kl", "hidden", "attn")
# first and last step of test_distill_resume_continues_the_same_curve (1 thread, CPU; identical across runs)
GOLDEN = {
    0: {"loss": 4.1171112, "ce": 4.1034913, "kl": 0.0013243388, "hidden": 0.012072070, "attn": 0.00022375790},
    3: {"loss": 4.0736804, "ce": 4.0083561, "kl": 0.054428544, "hidden": 0.010600612, "attn": 0.00029511956},
}



@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tokenizer (+ speech tokenizer folder), shards, and a 4-layer teacher trained for 2 steps by `tinywave train`."""
    root = tmp_path_factory.mktemp("e2e")
    words = "tom went to the park and found a red ball under the old tree".split()
    tok, layout = train_bpe_tokenizer([" ".join(words)] * 10, vocab_size=60, n_hu=32, n_pi=4, n_st=4)
    tok.save_pretrained(root / "vocab")
    (root / "vocab" / "speech_tokenizer").mkdir()
    (root / "vocab" / "speech_tokenizer" / "speech_tokenizer.json").write_text(json.dumps({"kind": "test"}))
    speech_shards(root / "shards", tok, layout, n_docs=60, n_units=32, seq_len=32)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    rc = main(["train", f"tokenizer={root / 'vocab'}", f"data.shards={root / 'shards'}", f"train.out={root / 'teacher'}",
               "model.n_layers=4", "model.width=32", "model.heads=4", "model.kv_heads=2", "model.max_positions=64",
               "train.steps=2", "data.batch_size=4", "optim.lr=1e-2", "optim.warmup_steps=1"])
    torch.set_num_threads(n)
    assert rc == 0
    return root


def distill(ws, out, *extra):
    base = [f"teacher.dir={ws / 'teacher' / 'model'}", f"data.shards={ws / 'shards'}", f"train.out={out}",
            "student.n_layers=2", "data.batch_size=4", "loss.chunk_size=16", "optim.lr=5e-3", "optim.warmup_steps=1",
            "train.ckpt_every=2", "train.report_to=[]",
            "loss.hidden_kind=mse", "loss.hidden_weight=1.0", "loss.attn_weight=1.0"]  # the weights GOLDEN was recorded with
    return main(["distill", *base, *extra])


def curve(run_dir):
    return [{k: r[k] for k in ("step", *LOSSES, "lr") if k in r} for r in load_jsonl(run_dir / "train_log.jsonl")]


def test_teacher_folder_is_a_plain_hf_model(ws):
    model_dir = ws / "teacher" / "model"
    model = LlamaForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.num_hidden_layers == 4 and model.config.vocab_size == len(tok)
    assert not model.config.tie_word_embeddings
    assert (model_dir / "speech_tokenizer" / "speech_tokenizer.json").is_file()
    assert [r["step"] for r in load_jsonl(ws / "teacher" / "train_log.jsonl")] == [1, 2]
    assert (ws / "teacher" / "loss_curves.png").stat().st_size > 1000
    assert list((ws / "teacher" / "tensorboard").glob("events.out.tfevents.*"))


def test_distill_resume_continues_the_same_curve(ws, tmp_path):
    assert distill(ws, tmp_path / "full", "train.steps=4") == 0
    # interrupted after 2 steps, then resumed with the same command + train.resume
    assert distill(ws, tmp_path / "cut", "train.steps=4", "train.stop_after_steps=2") == 0
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step_00000002"]
    assert not (tmp_path / "cut" / "model").exists()  # not finished yet
    assert distill(ws, tmp_path / "cut", "train.steps=4", "--resume") == 0
    full, cut = curve(tmp_path / "full"), curve(tmp_path / "cut")
    assert [r["step"] for r in cut] == [1, 2, 3, 4]
    assert set(LOSSES) <= set(full[0])
    for a, b in zip(full, cut):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), (a["step"], key)
    # the resumed invocation ran exactly steps 3 and 4
    assert read_state(list_checkpoints(tmp_path / "cut")[-1])["tokens_seen"] == read_state(list_checkpoints(tmp_path / "full")[-1])["tokens_seen"]
    history = read_state(list_checkpoints(tmp_path / "cut")[-1])["history_tail"]
    assert [r["step"] for r in history] == [3, 4]
    ckpt = list_checkpoints(tmp_path / "cut")[-1]
    assert {"model.safetensors", "config.json", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json", "config.yaml",
            "tokenizer.json", "speech_tokenizer"} <= {p.name for p in ckpt.iterdir()}
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # golden losses of this tiny setup (stable across runs on CPU)
    for step, tol in ((0, 1e-4), (3, 1e-3)):
        for key, value in GOLDEN[step].items():
            assert full[step][key] == pytest.approx(value, rel=tol), (step + 1, key)
    # export through the CLI reproduces the training model's logits
    assert main(["export", "--checkpoint", str(tmp_path / "cut"), "--out", str(tmp_path / "exported")]) == 0
    exported = LlamaForCausalLM.from_pretrained(tmp_path / "exported").eval()
    trained = load_causal_lm(ckpt).eval()
    use_mapped_attention(trained)
    ids = torch.tensor([[1, 70, 71, 72, 80, 2]])
    with torch.no_grad(), capture(trained, attn_layers=[0, 1]):
        want = trained(ids).logits
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("init", ["pruned", "random"])
def test_ce_only_baselines(ws, tmp_path, init):
    assert distill(ws, tmp_path / init, "train.steps=2", f"student.init={init}", "loss.kl_weight=0", "loss.hidden_weight=0", "loss.attn_weight=0") == 0
    records = load_jsonl(tmp_path / init / "train_log.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert not {"kl", "hidden", "attn"} & set(records[0])  # the teacher was never run
    student = LlamaForCausalLM.from_pretrained(tmp_path / init / "model")
    teacher = LlamaForCausalLM.from_pretrained(ws / "teacher" / "model")
    assert student.config.num_hidden_layers == 2
    # pruned starts from the teacher's embeddings (then 2 small steps); random does not
    diff = (student.model.embed_tokens.weight - teacher.model.embed_tokens.weight).abs().max().item()
    assert (diff < 0.05) if init == "pruned" else (diff > 0.05)


def test_narrow_student_learns_projections(ws, tmp_path):
    assert distill(ws, tmp_path / "narrow", "train.steps=2", "student.width=16", "loss.attn_weight=1") == 0
    ckpt = list_checkpoints(tmp_path / "narrow")[-1]
    proj = load_file(str(ckpt / "projections.safetensors"))
    assert sorted(proj) == ["0.weight", "1.weight"] and proj["0.weight"].shape == (32, 16)
    assert LlamaForCausalLM.from_pretrained(tmp_path / "narrow" / "model").config.hidden_size == 16


def test_lora_correction_resumes_and_merges_into_the_teacher(ws, tmp_path):
    out = tmp_path / "corrected"
    args = ["train", "mode=correct", f"teacher={ws / 'teacher' / 'model'}", "method=lora", "lora.r=4", "lora.mlp=true",
            f"data.shards={ws / 'shards'}", f"train.out={out}", "train.steps=2", "data.batch_size=4", "optim.lr=1e-2",
            "optim.warmup_steps=1", "train.report_to=[]"]
    assert main([*args, "train.stop_after_steps=1"]) == 0
    assert main([*args, "train.resume=true"]) == 0  # the adapter comes back from the step-1 checkpoint
    assert [r["step"] for r in load_jsonl(out / "train_log.jsonl")] == [1, 2]
    ckpt = list_checkpoints(out)[-1]
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    merged = LlamaForCausalLM.from_pretrained(out / "model")
    teacher = LlamaForCausalLM.from_pretrained(ws / "teacher" / "model")
    assert not (out / "model" / "adapter_config.json").exists()
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, teacher.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(merged.model.embed_tokens.weight, teacher.model.embed_tokens.weight)  # only adapted weights move
    assert (out / "model" / "speech_tokenizer" / "speech_tokenizer.json").is_file()

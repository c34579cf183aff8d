"""Distillation under torchrun with 2 CPU processes (gloo): FSDP2 and DDP follow the 1-process loss curve.

The global batch is the same in every run (1 process x 4 rows == 2 processes x 2 rows),
so every step sees the same rows and the curves agree up to float summation order.
Gathered checkpoints (train.ckpt_format=full): a run cut by 2 FSDP ranks resumes under 2
DDP ranks and in 1 process, and both finish on the uninterrupted curve. Sharded checkpoints
(the FSDP default): each rank writes its own file, the run resumes under FSDP bit for bit,
in 1 process on the curve, and exports a plain folder. (Few launches: starting the
processes costs more than the steps.)
"""

import collections
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from support.shards import speech_shards
from tinywave.cli import main
from tinywave.training.checkpoint import list_checkpoints
from tinywave.training.sharded import read_metadata, shard_files
from tinywave.models.export import export_model
from tinywave.files import load_jsonl
from tinywave.models.hf import new_llama, write_model_dir
from tinywave.text.vocab import train_bpe_tokenizer

pytestmark = [pytest.mark.distributed, pytest.mark.slow]
LOSSES = ("loss", "ce", "kl", "hidden", "attn", "tokens")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tokenizer, shards and a random 4-layer teacher folder; the 1-process reference run."""
    root = tmp_path_factory.mktemp("dist")
    tok, layout = train_bpe_tokenizer(["tom went to the park and found a red ball"] * 10, vocab_size=60, n_hu=32, n_pi=4, n_st=4)
    speech_shards(root / "shards", tok, layout, n_docs=40, n_units=32, seq_len=32)
    torch.manual_seed(0)
    teacher = new_llama(len(tok), 4, 32, 4, 2, 64, max_positions=64, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    write_model_dir(teacher, tok, root / "teacher")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(distill_args(root, root / "single", 4)) == 0
    finally:
        torch.set_num_threads(n)
    return root


def distill_args(ws, out, batch_size, *extra):
    return ["distill", f"teacher.dir={ws / 'teacher'}", f"data.shards={ws / 'shards'}", f"train.out={out}",
            "student.n_layers=2", f"data.batch_size={batch_size}", "loss.chunk_size=16", "optim.lr=5e-3",
            "optim.warmup_steps=1", "train.steps=4", "train.ckpt_every=2", "train.report_to=[]", *extra]


def torchrun(ws, out, parallel, *extra):
    """`torchrun --nproc_per_node 2 -m tinywave.cli distill ...` with 2 rows per rank."""
    env = {**os.environ, "TINYWAVE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "tinywave.cli", *distill_args(ws, out, 2, f"train.parallel={parallel}", *extra)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)  # startup alone can take minutes on a loaded CPU
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def curve(run_dir):
    return [{k: r[k] for k in ("step", *LOSSES) if k in r} for r in load_jsonl(run_dir / "train_log.jsonl")]


def assert_same_curve(got, want, rel=1e-4):
    assert [r["step"] for r in got] == [r["step"] for r in want] == [1, 2, 3, 4]
    assert set(LOSSES) <= set(want[0])
    for a, b in zip(want, got):
        for key in LOSSES:
            assert b[key] == pytest.approx(a[key], rel=rel, abs=1e-7), (a["step"], key, a[key], b[key])


def assert_close_weights(a_dir, b_dir, atol=1e-4):
    a, b = load_file(str(a_dir / "model.safetensors")), load_file(str(b_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=atol, msg=k)


def test_fsdp_then_ddp_resume_follow_the_one_process_curve(ws, tmp_path):
    """2 FSDP ranks run steps 1-2; their gathered checkpoint resumes under 2 DDP ranks and in 1 process."""
    out = tmp_path / "fsdp_ddp"
    torchrun(ws, out, "fsdp", "train.stop_after_steps=2", "train.ckpt_format=full")
    ckpt = list_checkpoints(out)[-1]
    assert [p.name for p in list_checkpoints(out)] == ["step_00000002"]
    assert (ckpt / "config.json").is_file()  # a plain HF folder, gathered on rank 0
    assert [r["step"] for r in load_jsonl(out / "train_log.jsonl")] == [1, 2]  # rank 0 alone writes the log
    assert_close_weights(list_checkpoints(ws / "single")[0], ckpt)
    one = tmp_path / "one_process"
    shutil.copytree(out, one)

    torchrun(ws, out, "ddp", "train.resume=true")  # resumed under DDP (steps 3-4)
    assert_same_curve(curve(out), curve(ws / "single"))
    state = json.loads((list_checkpoints(out)[-1] / "state.json").read_text())
    assert state["position"] == json.loads((list_checkpoints(ws / "single")[-1] / "state.json").read_text())["position"]
    assert state["tokens_seen"] == sum(r["tokens"] for r in curve(ws / "single"))
    assert_close_weights(ws / "single" / "model", out / "model")

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(distill_args(ws, one, 4, "train.resume=true")) == 0  # the sharded run continues in one process
    finally:
        torch.set_num_threads(n)
    assert_same_curve(curve(one), curve(ws / "single"))
    assert_close_weights(ws / "single" / "model", one / "model")


def elements_per_file(ckpt):
    """({rank file: tensor elements it stores}, elements of the whole state) from a sharded checkpoint's metadata."""
    md = read_metadata(ckpt / "sharded" / ".metadata")
    held = collections.Counter()
    for index, info in md.storage_data.items():
        meta = md.state_dict_metadata[index.fqn]
        if hasattr(meta, "chunks"):  # a tensor entry: the chunk starting at this offset
            chunk = next(c for c in meta.chunks if tuple(c.offsets) == tuple(index.offset))
            held[info.relative_path] += math.prod(chunk.sizes)
    total = sum(math.prod(m.size) for m in md.state_dict_metadata.values() if hasattr(m, "chunks"))
    return dict(held), total


def test_fsdp_sharded_checkpoints_resume_exactly_and_export(ws, tmp_path):
    """2 FSDP ranks write one shard file each (nothing gathered); resumed under FSDP the run equals the
    uninterrupted one bit for bit; resumed in 1 process it follows the 1-process curve; export loads in HF."""
    from transformers import LlamaForCausalLM

    whole = tmp_path / "whole"
    torchrun(ws, whole, "fsdp")  # uninterrupted, sharded checkpoints at steps 2 and 4
    out = tmp_path / "cut"
    torchrun(ws, out, "fsdp", "train.stop_after_steps=2")
    [ckpt] = list_checkpoints(out)
    shards = shard_files(ckpt)
    assert [p.name for p in shards] == ["__0_0.distcp", "__1_0.distcp"]  # one file per rank
    assert not [p.name for p in ckpt.iterdir() if p.name in ("model.safetensors", "optimizer.pt", "projections.safetensors")]
    full = list_checkpoints(ws / "single")[0]  # the same state, written by one process in the full format
    full_bytes = (full / "model.safetensors").stat().st_size + (full / "optimizer.pt").stat().st_size
    held, total = elements_per_file(ckpt)
    print(f"\n[sharded checkpoint] tensor elements per rank file {held} of {total}; file bytes "
          f"{[p.stat().st_size for p in shards]} vs the full state {full_bytes} (at this tiny size DCP's per-entry headers dominate)")
    assert sorted(held) == ["__0_0.distcp", "__1_0.distcp"] and max(held.values()) < 0.6 * total  # no rank holds it all
    one = tmp_path / "one_process"
    shutil.copytree(out, one)

    torchrun(ws, out, "fsdp", "train.resume=true")  # steps 3-4 from the shards
    assert curve(out) == curve(whole)  # bit for bit: same losses, same token counts
    a, b = load_file(str(whole / "model" / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert LlamaForCausalLM.from_pretrained(str(out / "model")).config.num_hidden_layers == 2

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(distill_args(ws, one, 4, "train.resume=true")) == 0  # 2 ranks' shards read by 1 process
    finally:
        torch.set_num_threads(n)
    assert_same_curve(curve(one), curve(ws / "single"))
    assert_close_weights(ws / "single" / "model", one / "model")
    exported = export_model(ckpt, tmp_path / "export")  # the step-2 sharded checkpoint, gathered only here
    assert_close_weights(list_checkpoints(ws / "single")[0], exported)

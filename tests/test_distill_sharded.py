"""Sharded checkpoints (torch.distributed.checkpoint) in one process: exact resume, export, refusal of tampered files.

The 2-process FSDP run that writes one shard file per rank is in test_distributed_distill.py.
"""

import pickle
import random

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

from support.models import trainer_llama
from tinywave.data.shards import ShardDataset, write_shards
from tinywave.training.checkpoint import list_checkpoints, load_training_state
from tinywave.training.batches import BatchStream
from tinywave.training.distributed import Parallel, resolve_ckpt_format
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.training.sharded import SHARDED_DIR, is_sharded, shard_files
from tinywave.training.trainer import fit, make_optimizer
from tinywave.models.export import export_model
from tinywave.models.hf import model_from_config, write_model_dir
from tinywave.safeload import UnsafeFileError
from tinywave.text.vocab import train_bpe_tokenizer

OPTIM = OptimSettings(lr=5e-3, warmup_steps=1)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A tokenizer with speech tokens and token shards of its vocabulary."""
    root = tmp_path_factory.mktemp("sharded")
    tok, _ = train_bpe_tokenizer(["tom went to the park and found a red ball"] * 10, vocab_size=60, n_hu=8, n_pi=2, n_st=2)
    rng = random.Random(0)
    docs = [[tok.bos_token_id] + [rng.randrange(4, len(tok)) for _ in range(rng.randint(5, 30))] + [tok.eos_token_id] for _ in range(40)]
    write_shards(root / "shards", docs, 16, "fp", len(tok), tok.pad_token_id, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id)
    return root, tok, ShardDataset(root / "shards")


def train(ws, out, resume_from=None, stop=0, model=None):
    """fit() in one process with sharded checkpoints; returns (result, model)."""
    _, tok, dataset = ws
    model = model if model is not None else trainer_llama(vocab=len(tok))
    parallel = Parallel("none", ckpt_format="sharded")
    objective = parallel.wrap(DistillObjective(model, LossWeights(ce=1.0, chunk_size=8)))
    run = RunSettings(out=str(out), steps=4, ckpt_every=2, report_to=[], stop_after_steps=stop)
    save = lambda folder: write_model_dir(model, tok, folder, weights=False)  # noqa: E731
    result = fit(objective, list(objective.parameters()), BatchStream(dataset, 4, seed=0), OPTIM, run, save, config={}, resume_from=resume_from, parallel=parallel)
    return result, model


def test_auto_format_is_sharded_under_fsdp_only():
    assert [resolve_ckpt_format("auto", m) for m in ("none", "ddp", "fsdp")] == ["full", "full", "sharded"]
    with pytest.raises(ValueError, match=r"train.ckpt_format='zip' is not known; choose one of \['auto', 'full', 'sharded'\]"):
        resolve_ckpt_format("zip", "fsdp")


def test_sharded_resume_is_bit_identical_and_exports_a_plain_folder(ws, tmp_path):
    """Steps 1-2, checkpoint, a new process-like start from the shards, steps 3-4 == the uninterrupted run, bit for bit."""
    _, tok, _ = ws
    whole, whole_model = train(ws, tmp_path / "whole")
    cut, _ = train(ws, tmp_path / "cut", stop=2)
    assert cut.step == 2 and not cut.finished
    ckpt = list_checkpoints(tmp_path / "cut")[-1]
    assert is_sharded(ckpt) and [p.name for p in shard_files(ckpt)] == ["__0_0.distcp"]
    assert not (ckpt / "model.safetensors").exists() and not (ckpt / "optimizer.pt").exists()  # no full-state file
    assert (ckpt / "config.json").is_file() and (ckpt / "tokenizer.json").is_file()

    # the resumed student starts from random weights of another seed: everything must come from the shards
    resumed, resumed_model = train(ws, tmp_path / "cut", resume_from=ckpt, model=model_from_config(ckpt))
    assert [r["step"] for r in resumed.history] == [3, 4]
    for a, b in zip(whole.history[2:], resumed.history):
        assert {k: a[k] for k in ("loss", "ce", "grad_norm", "tokens")} == {k: b[k] for k in ("loss", "ce", "grad_norm", "tokens")}
    for (name, a), b in zip(whole_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name

    out = export_model(tmp_path / "cut", tmp_path / "export")  # the run folder: its newest (sharded) checkpoint
    exported = LlamaForCausalLM.from_pretrained(str(out))
    saved = load_file(str(out / "model.safetensors"))
    assert set(saved) == set(whole_model.state_dict())
    for name, value in whole_model.state_dict().items():
        assert torch.equal(exported.state_dict()[name], value), name


def test_sharded_checkpoint_needs_a_loader_and_refuses_tampered_metadata(ws, tmp_path):
    _, tok, _ = ws
    train(ws, tmp_path / "run", stop=2)
    ckpt = list_checkpoints(tmp_path / "run")[-1]
    model = trainer_llama(vocab=len(tok))
    opt, sched = make_optimizer(list(model.parameters()), OPTIM, 4)
    with pytest.raises(ValueError, match=r"is sharded \(written under FSDP\); this recipe cannot resume it: export it"):
        load_training_state(ckpt, opt, sched)

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'PWNED')!r}, 'w').close()",))

    (ckpt / SHARDED_DIR / ".metadata").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UnsafeFileError, match=r"\.metadata was refused: this sharded checkpoint's metadata .*builtins\.exec"):
        export_model(ckpt, tmp_path / "export")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "export").exists()

"""Bad input is refused before any training step, with a message naming the value and the fix."""

import random
import re

import pytest
import torch

from tinywave.cli import main
from tinywave.data.shards import write_shards
from tinywave.training.checkpoint import list_checkpoints
from tinywave.models.hf import new_llama, write_model_dir
from tinywave.text.vocab import train_bpe_tokenizer, vocab_fingerprint



def _shards(out, tok, seq_len=16, fingerprint=None):
    rng = random.Random(0)
    docs = [[tok.bos_token_id] + [rng.randrange(5, len(tok)) for _ in range(10)] + [tok.eos_token_id] for _ in range(12)]
    write_shards(out, docs, seq_len, fingerprint or vocab_fingerprint(tok), len(tok), tok.pad_token_id, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id)
    return str(out)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    tok, _ = train_bpe_tokenizer(["a cat and a dog sat"] * 5, vocab_size=30, n_hu=8, n_pi=2, n_st=2)
    other, _ = train_bpe_tokenizer(["the red ball fell down"] * 5, vocab_size=30, n_hu=8, n_pi=2, n_st=2)
    tok.save_pretrained(root / "vocab")
    torch.manual_seed(0)
    write_model_dir(new_llama(len(tok), 4, 32, 4, 2, 32, max_positions=32), tok, root / "teacher")
    write_model_dir(new_llama(len(other), 2, 32, 4, 2, 32, max_positions=32), other, root / "foreign_student")
    write_model_dir(new_llama(len(tok), 2, 32, 4, 2, 32, max_positions=32), other, root / "retokenized_student")  # same size, other ids
    return {
        "root": root, "teacher": str(root / "teacher"), "vocab": str(root / "vocab"),
        "shards": _shards(root / "shards", tok), "foreign_shards": _shards(root / "foreign", other),
        "long_shards": _shards(root / "long", tok, seq_len=64),
    }


def distill(ws, out, *extra):
    base = [f"teacher.dir={ws['teacher']}", f"data.shards={ws['shards']}", f"train.out={out}", "student.n_layers=2",
            "train.steps=2", "data.batch_size=2", "train.report_to=[]"]
    return main(["distill", *base, *extra])


CASES = {
    "shards of another vocabulary": (lambda ws: [f"data.shards={ws['foreign_shards']}"], "vocabulary fingerprint .* rebuild them with `tinywave data build"),
    "layer map out of range": (lambda ws: ["layer_map=[[0, 1], [1, 9]]"], r"teacher layer 9 is out of range; the teacher has layers 0\.\.3"),
    "student layer out of range": (lambda ws: ["layer_map=[[2, 1]]"], r"student layer 2 is out of range; the student has layers 0\.\.1"),
    "keep_layers out of range": (lambda ws: ["student.keep_layers=[0, 4]"], r"keep_layers holds 4, out of range"),
    "unknown key": (lambda ws: ["loss.kl_wieght=0.5"], "unknown config key 'loss.kl_wieght'. Did you mean 'kl_weight'"),
    "student of another vocabulary": (lambda ws: [f"student.dir={ws['root'] / 'foreign_student'}"], r"teacher vocabulary has \d+ ids but student .* has \d+"),
    "student of another tokenizer": (lambda ws: [f"student.dir={ws['root'] / 'retokenized_student'}"], "tokenizer fingerprint .* differs"),
    "sequence length": (lambda ws: ["data.seq_len=32"], r"rows of 16 tokens, but data.seq_len=32"),
    "rows longer than positions": (lambda ws: [f"data.shards={ws['long_shards']}"], "more than the teacher's max_position_embeddings=32"),
    "narrow student without projections": (lambda ws: ["student.width=16", "loss.projections=false"], "needs loss.projections=true"),
    "missing teacher": (lambda ws: [f"teacher.dir={ws['root'] / 'nope'}"], "model directory .*nope does not exist"),
    "fp16": (lambda ws: ["train.precision=fp16"], "use fp32 or bf16"),
    "negative weight": (lambda ws: ["loss.kl_weight=-1"], "must be >= 0"),
    "unknown hidden loss": (lambda ws: ["loss.hidden_kind=l1"], "loss.hidden_kind='l1' is not known"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_distill_refuses_bad_input_before_any_step(ws, tmp_path, capsys, case):
    extra, message = CASES[case]
    assert distill(ws, tmp_path / "run", *extra(ws)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert list_checkpoints(tmp_path / "run") == []
    assert not (tmp_path / "run" / "train_log.jsonl").exists()


def test_train_refuses_bad_input(ws, tmp_path, capsys):
    assert main(["train", f"tokenizer={ws['vocab']}", f"data.shards={ws['foreign_shards']}", f"train.out={tmp_path}"]) == 2
    assert "vocabulary fingerprint" in capsys.readouterr().err
    assert main(["train", "mode=correct", f"data.shards={ws['shards']}", f"train.out={tmp_path}"]) == 2
    assert "mode=correct needs teacher=DIR" in capsys.readouterr().err
    assert main(["train", "mode=correct", f"teacher={ws['teacher']}", "method=qlora", f"data.shards={ws['shards']}", f"train.out={tmp_path}"]) == 2
    assert "method='qlora' is not known" in capsys.readouterr().err
    assert list_checkpoints(tmp_path) == []

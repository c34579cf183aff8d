"""Model cards written by export: the demo's own models say what they are; SpiritLM students carry its licence."""

import json
import shutil

import pytest
import torch
import yaml
from transformers import LlamaForCausalLM

from support.shards import speech_shards
from tinywave.cli import main
from tinywave.training.checkpoint import list_checkpoints
from tinywave.models.card import read_front_matter, teacher_lineage
from tinywave.models.hf import new_llama, write_model_dir
from tinywave.spiritlm.fixtures import write_lm
from tinywave.text.vocab import train_bpe_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A demo-style teacher (assets folder with provenance.json) distilled for 2 steps by `tinywave distill`."""
    root = tmp_path_factory.mktemp("card")
    tok, layout = train_bpe_tokenizer(["tom went to the park and found a red ball"] * 10, vocab_size=60, n_hu=16, n_pi=2, n_st=2)
    speech_shards(root / "shards", tok, layout, n_docs=24, n_units=16, seq_len=32)
    torch.manual_seed(0)
    teacher = new_llama(len(tok), 4, 32, 4, 2, 64, max_positions=64, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    write_model_dir(teacher, tok, root / "assets" / "teacher")
    (root / "assets" / "provenance.json").write_text(json.dumps({"format": "tinywave-demo-assets/1", "teacher_steps": 10}))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["distill", f"teacher.dir={root / 'assets' / 'teacher'}", f"data.shards={root / 'shards'}",
                     f"train.out={root / 'run'}", "student.n_layers=2", "data.batch_size=4", "loss.chunk_size=16",
                     "train.steps=2", "train.report_to=[]", "loss.attn_weight=0"]) == 0
    finally:
        torch.set_num_threads(n)
    return root


def card(folder):
    text = (folder / "README.md").read_text()
    return read_front_matter(folder / "README.md"), text


def test_demo_student_card_says_what_it_is(run):
    model_dir = run / "run" / "model"
    front, text = card(model_dir)
    assert front["license"] == "apache-2.0" and "license_name" not in front
    assert front["base_model"] == "TinyWave demo teacher" and front["language"] == ["en"]
    assert {"tinywave", "tinywave-demo", "knowledge-distillation"} <= set(front["tags"])
    assert "toy model of the TinyWave demo" in text and "espeak-ng" in text and "Noncommercial" not in text
    assert "kept teacher layers (student <- teacher): 0 <- 1, 1 <- 3" in text  # uniform map of 2 out of 4
    rows = json.loads((run / "shards" / "index.json").read_text())["count"]
    assert "optimizer steps: 2 of 2 planned" in text and f"token shards `{run / 'shards'}`: {rows} rows of 32 tokens" in text
    assert "Not given at export" in text
    assert LlamaForCausalLM.from_pretrained(str(model_dir)).config.num_hidden_layers == 2  # the card changes nothing else


def test_spiritlm_student_card_carries_the_noncommercial_licence_and_scores(run, tmp_path, capsys):
    """The same checkpoint, its run config pointing at a SpiritLM-layout teacher (SentencePiece + speech pieces)."""
    write_lm(tmp_path / "teacher", expressive=False)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(list_checkpoints(run / "run")[-1], ckpt)
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    config["teacher"]["dir"] = str(tmp_path / "teacher")
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    report = {"format": "tinywave-eval-v1", "results": {"sSC": {"teacher": 0.7, "student": 0.61},
                                                         "sSC/outcome": {"student": 0.6}, "tSC": {"student": 0.8}}}
    (tmp_path / "results.json").write_text(json.dumps(report))
    out = tmp_path / "spirit-student"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), f"eval={tmp_path / 'results.json'}"]) == 0

    front, text = card(out)
    assert front["license"] == "other" and front["license_name"] == "fair-noncommercial-research-license"
    assert front["license_link"].endswith("spiritlm/blob/main/LICENSE") and front["base_model"] == "SpiritLM"
    assert "spiritlm-derived" in front["tags"] and "tinywave-demo" not in front["tags"]
    assert "FAIR Noncommercial Research License" in text and "no commercial use" in text
    assert "speech tokens are defined in tokenizer.model" in text  # how the teacher was recognised
    assert "| sSC | 61.00 |" in text and "| tSC | 80.00 |" in text and "sSC/outcome" not in text
    assert "kept teacher layers (student <- teacher): 0 <- 0, 1 <- 1" in text  # the 2-layer SpiritLM fixture

    again = tmp_path / "again"  # re-exported from the model folder: the licence follows its card
    assert main(["export", "--checkpoint", str(out), "--out", str(again), "dtype=bfloat16"]) == 0
    assert read_front_matter(again / "README.md")["license_name"] == "fair-noncommercial-research-license"
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x"), f"eval={tmp_path / 'results.json'}",
                 "eval_model=baseline"]) != 0
    assert "has no scores for eval_model='baseline'; it scores ['student', 'teacher']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_lineage_of_named_and_unknown_teachers(tmp_path):
    assert teacher_lineage(tmp_path / "spirit-lm-expressive-7b").kind == "spiritlm"  # named like the release
    (tmp_path / "mine").mkdir()
    unknown = teacher_lineage(tmp_path / "mine")
    assert unknown.kind == "unknown" and unknown.base_model == str(tmp_path / "mine")


def test_push_dry_run_lists_the_export_and_bad_pushes_fail_before_sending(run, tmp_path, capsys, monkeypatch, caplog):
    from tinywave.models.push import push, push_plan

    out = tmp_path / "student"
    with caplog.at_level("INFO"):
        assert main(["export", "--checkpoint", str(run / "run"), "--out", str(out), "push=me/tiny-student", "push_dry_run=true"]) == 0
    plan = push_plan(out, "me/tiny-student")
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert [name for name, _ in plan.files] == on_disk and "model.safetensors" in on_disk and "README.md" in on_disk
    assert plan.total_bytes == sum((out / name).stat().st_size for name in on_disk)
    assert plan.private and plan.license.split(" / ")[0] == read_front_matter(out / "README.md")["license"]
    assert "dry run, nothing sent" in caplog.text and "me/tiny-student" in caplog.text
    # a bad id is refused before exporting anything; an incomplete folder and offline mode are refused before sending
    assert main(["export", "--checkpoint", str(run / "run"), "--out", str(tmp_path / "never"), "push=not a repo"]) == 2
    assert not (tmp_path / "never").exists() and "owner/name" in capsys.readouterr().err
    (out / "model.safetensors").rename(tmp_path / "moved.safetensors")
    with pytest.raises(ValueError, match="lacks model.safetensors"):
        push_plan(out, "me/tiny-student")
    (tmp_path / "moved.safetensors").rename(out / "model.safetensors")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set"):
        push(plan)

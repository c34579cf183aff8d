"""Hub ids (``org/name[@rev]``) resolve from a local Hugging Face cache built here; nothing is downloaded."""

import shutil
from pathlib import Path

import pytest
import torch

from support.models import tiny_whisper_dir
from tinywave.eval.asr import WhisperRecognizer, load_recognizer
from tinywave.generate.deploy import load_causal_lm as load_for_decoding
from tinywave.models.hf import load_causal_lm, new_llama, write_model_dir
from tinywave.hub import hub_cache_dir, resolve_model_dir
from tinywave.text.vocab import load_tokenizer, train_bpe_tokenizer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "tiny-org/tiny-llama"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A tiny model folder, saved the way the hub cache stores a snapshot's files."""
    root = tmp_path_factory.mktemp("hubmodel")
    tok, _ = train_bpe_tokenizer(["the cat sat on the mat"] * 5, vocab_size=40, n_hu=4, n_pi=2, n_st=2)
    torch.manual_seed(0)
    write_model_dir(new_llama(len(tok), 1, 16, 2, 1, 32, max_positions=32), tok, root / "model")
    return root / "model"


def fake_cache(hub: Path, files: Path, repo_id: str = REPO) -> Path:
    """hub/models--tiny-org--tiny-llama/{refs/main, snapshots/<commit>/...} as huggingface_hub lays it out."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(files, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return repo / "snapshots" / COMMIT


@pytest.fixture
def offline(monkeypatch):
    """Any network request would fail: offline mode and an endpoint nobody listens on."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_hub_id_loads_from_the_cache_named_by_hf_hub_cache(model_files, tmp_path, offline):
    snapshot = fake_cache(tmp_path / "hub", model_files)
    offline.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_dir(REPO) == snapshot and resolve_model_dir(f"{REPO}@main") == snapshot
    assert resolve_model_dir(f"{REPO}@{COMMIT}") == snapshot
    model = load_causal_lm(REPO)
    reference = load_causal_lm(model_files)
    ids = torch.tensor([[1, 5, 7, 9]])
    torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=0)
    assert len(load_tokenizer(REPO)) == len(load_tokenizer(model_files))
    assert load_for_decoding(REPO).config.num_hidden_layers == 1  # tinywave generate / bench latency


def test_whisper_recognizer_by_hub_id(tmp_path, offline):
    """`asr=org/whisper-tiny` and `asr=whisper:org/whisper-tiny` load the cached snapshot; a missing id says how to get it."""
    import numpy as np

    offline.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = fake_cache(tmp_path / "hub", tiny_whisper_dir(tmp_path / "whisper"), "tiny-org/whisper-tiny")
    for spec in ("tiny-org/whisper-tiny", "whisper:tiny-org/whisper-tiny"):
        asr = load_recognizer(spec)
        assert isinstance(asr, WhisperRecognizer) and asr.model.name_or_path == str(snapshot)
    [text] = asr([np.zeros(1600, np.float32)])
    assert isinstance(text, str)
    with pytest.raises(FileNotFoundError, match=r"ASR model \(asr=whisper\) 'openai/whisper-small' is not a local folder"):
        load_recognizer("whisper:openai/whisper-small")


def test_hf_home_is_read_when_the_id_is_resolved(model_files, tmp_path, offline):
    snapshot = fake_cache(tmp_path / "home" / "hub", model_files)
    offline.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    assert resolve_model_dir(REPO) == snapshot


def test_missing_id_names_the_id_the_cache_and_the_fix(model_files, tmp_path, offline):
    fake_cache(tmp_path / "hub", model_files)
    offline.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as info:
        load_causal_lm("openai/whisper-small")
    message = str(info.value)
    assert "'openai/whisper-small' is not a local folder" in message
    assert str(tmp_path / "hub" / "models--openai--whisper-small") in message
    assert "huggingface-cli download openai/whisper-small" in message and "local model folder" in message
    with pytest.raises(FileNotFoundError, match=r"at revision 'v2' is in the Hugging Face cache"):
        resolve_model_dir(f"{REPO}@v2")  # a revision that was never downloaded


def test_a_local_folder_wins_and_paths_are_never_taken_for_ids(model_files, tmp_path, offline, monkeypatch):
    fake_cache(tmp_path / "hub", model_files)
    offline.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    local = tmp_path / "work"
    (local / "tiny-org").mkdir(parents=True)
    shutil.copytree(model_files, local / REPO)
    monkeypatch.chdir(local)
    assert resolve_model_dir(REPO).resolve() == (local / REPO).resolve()  # ./tiny-org/tiny-llama exists: used as is
    for path in (tmp_path / "nope", "./a/b", "a/b/c"):
        assert resolve_model_dir(path) == Path(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_causal_lm(tmp_path / "nope")  # the loader's own message for a missing folder

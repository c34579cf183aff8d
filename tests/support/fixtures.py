"""Pytest fixtures used by several test modules; tests/conftest.py registers this module, so every
test module can name them as arguments (nothing to import). Module-scoped ones are built once per module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from support.audio import UNIT_SENTENCES, espeak_wav
from support.shards import CACHE_SEQ, CACHE_VOCAB, tiny_shards
from tinywave.data.shards import ShardDataset


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other jobs for cores); restored after the module.
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> ShardDataset:
    """Shards of 40 random documents over ``support.shards.VOCAB`` ids, 16 tokens a row (the trainer tests')."""
    return tiny_shards(tmp_path_factory.mktemp("shards") / "s")


@pytest.fixture(scope="module")
def cache_shards(tmp_path_factory) -> tuple[Path, ShardDataset]:
    """(root, ShardDataset of root/shards): 30 random documents over CACHE_VOCAB ids (the teacher-cache tests')."""
    root = tmp_path_factory.mktemp("cache")
    return root, tiny_shards(root / "shards", n_docs=30, vocab=CACHE_VOCAB, seq_len=CACHE_SEQ, max_len=25)


@pytest.fixture(scope="module")
def unit_corpus(tmp_path_factory) -> Path:
    """espeak-ng utterances of UNIT_SENTENCES in two voices, a manifest (with one missing file) and a speech
    tokenizer trained on them (``tok/``): the vocoder trainer's corpus."""
    from tinywave.cli import main

    root = tmp_path_factory.mktemp("corpus")
    (root / "wavs").mkdir()
    lines = []
    for i, text in enumerate(UNIT_SENTENCES):
        voice = ("en-us", "en-us+f2")[i % 2]
        espeak_wav(root / "wavs" / f"u{i}.wav", text, voice)
        lines.append({"id": f"u{i}", "audio": f"wavs/u{i}.wav", "text": text, "speaker": voice})
    lines.append({"id": "broken", "audio": "wavs/missing.wav", "speaker": "en-us"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["units", "train", "--manifest", str(root / "manifest.jsonl"), "--out", str(root / "tok"), "n_units=24",
                 "workers=1", "max_frames=5000"]) == 0
    return root

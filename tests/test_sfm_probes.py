"""SUPERB-style probe heads on tiny synthetic features: the layer weighting finds the informative
layer, the classifier and the CTC head learn; label encoding; probe sets read from the documented layout."""

import json

import numpy as np
import pytest
import torch

from tinywave.audio.io import save_wav
from tinywave.sfm.probes import (
    ProbeData, ProbeSettings, _encode_labels, probe_each_layer, probe_task, train_classifier, train_ctc,
)

SPLIT_SIZES = {"train": 48, "dev": 12, "test": 12}


def _pooled_data(n_classes: int = 3, n_layers: int = 3, signal_layer: int = 1, dim: int = 8, seed: int = 0):
    """Per item (L+1, D) features; only ``signal_layer`` carries the class (a shifted one-hot)."""
    g = torch.Generator().manual_seed(seed)
    data = {}
    for split, n in SPLIT_SIZES.items():
        labels = torch.arange(n) % n_classes
        feats = torch.randn(n, n_layers, dim, generator=g)
        feats[:, signal_layer, :n_classes] += 3.0 * torch.nn.functional.one_hot(labels, n_classes)
        data[split] = ProbeData(list(feats), labels.tolist())
    return data


def test_classifier_learns_and_weights_the_informative_layer():
    res = train_classifier(_pooled_data(), 3, ProbeSettings(epochs=40, lr=3e-2, batch_size=16))
    assert res["accuracy"] >= 0.9
    weights = res["layer_weights"]
    assert len(weights) == 3 and sum(weights) == pytest.approx(1.0, abs=1e-3)
    assert int(np.argmax(weights)) == 1


def test_classifier_is_at_chance_without_signal():
    data = _pooled_data()
    for split, d in data.items():  # labels no longer match the features
        d.labels = list(np.random.default_rng(len(split)).permutation(d.labels))
    res = train_classifier(data, 3, ProbeSettings(epochs=20, lr=3e-2, batch_size=16))
    assert res["accuracy"] <= 0.75


def _ctc_data(n_symbols: int = 4, hold: int = 3, seed: int = 0):
    """Frame features (L+1, T, D): each phone is held for ``hold`` frames, written in layer 2 only."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in SPLIT_SIZES.items():
        feats, labels = [], []
        for _ in range(n):
            seq = [int(rng.integers(1, n_symbols + 1))]
            while len(seq) < int(rng.integers(2, 6)):
                seq.append(int(rng.choice([s for s in range(1, n_symbols + 1) if s != seq[-1]])))
            frames = np.repeat(seq, hold)
            x = rng.standard_normal((3, len(frames), 8)).astype(np.float32) * 0.3
            x[2, np.arange(len(frames)), frames] += 3.0
            feats.append(torch.from_numpy(x).half())
            labels.append(seq)
        data[split] = ProbeData(feats, labels)
    return data


def test_ctc_head_learns_phones_from_the_informative_layer():
    res = train_ctc(_ctc_data(), 4, ProbeSettings(epochs=60, lr=3e-2, batch_size=16))
    assert res["per"] <= 0.2
    assert int(np.argmax(res["layer_weights"])) == 2


def test_test_items_add_up_to_the_reported_metrics():
    acc = train_classifier(_pooled_data(), 3, ProbeSettings(epochs=5, lr=3e-2, batch_size=16))
    items = acc["test_items"]
    assert len(items["num"]) == SPLIT_SIZES["test"] and set(items["num"]) <= {0.0, 1.0} and items["den"] == [1.0] * 12
    assert sum(items["num"]) / sum(items["den"]) == pytest.approx(acc["accuracy"])
    data = _ctc_data()
    per = train_ctc(data, 4, ProbeSettings(epochs=5, lr=3e-2, batch_size=16))
    assert per["test_items"]["den"] == [float(len(seq)) for seq in data["test"].labels]  # reference phones per item
    assert sum(per["test_items"]["num"]) / sum(per["test_items"]["den"]) == pytest.approx(per["per"])


def test_each_layer_alone_finds_the_one_that_carries_the_signal():
    results = probe_each_layer(_pooled_data(signal_layer=2), "ks", 3, ProbeSettings(epochs=30, lr=3e-2, batch_size=16))
    assert [r["layer"] for r in results] == [0, 1, 2]
    assert all(r["layer_weights"] == [1.0] for r in results)  # one hidden state per head, nothing to weigh
    assert results[2]["accuracy"] >= 0.9
    assert results[0]["accuracy"] <= 0.75 and results[1]["accuracy"] <= 0.75


def test_encode_labels():
    labels, n = _encode_labels({"train": ["yes", "no", "yes"], "dev": ["no"], "test": ["maybe"]}, "ks")
    assert n == 2 and labels == {"train": [1, 0, 1], "dev": [0], "test": [-1]}
    phones, n = _encode_labels({"train": [["a", "b"]], "dev": [["b"]], "test": [["c", "a"]]}, "pr")
    assert n == 3 and phones["test"] == [[3, 1]]  # ids 1..S, 0 is the CTC blank


def _write_split(root, task, split, rows):
    (root / task).mkdir(parents=True, exist_ok=True)
    with open(root / task / f"{split}.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def test_probe_task_reads_the_documented_layout(tmp_path):
    from transformers import HubertModel

    from tinywave.sfm.models import teacher_config

    rng = np.random.default_rng(0)
    for split in ("train", "dev", "test"):
        rows = []
        for k, label in enumerate(["lo", "hi"] * 2):
            wav = np.sin(np.arange(4000) * (0.05 if label == "lo" else 0.6)).astype(np.float32) * 0.3
            save_wav(tmp_path / "ks" / "wavs" / f"{split}{k}.wav", wav + 0.01 * rng.standard_normal(4000).astype(np.float32))
            rows.append({"id": f"{split}{k}", "audio": f"wavs/{split}{k}.wav", "label": label})
        _write_split(tmp_path, "ks", split, rows)
    torch.manual_seed(0)
    encoder = HubertModel(teacher_config(16, 2, 2, 32, conv_channels=8, pos_conv_kernel=4)).eval()
    res = probe_task(encoder, tmp_path, "ks", ProbeSettings(epochs=5))
    assert res["n_classes"] == 2 and res["n_train"] == 4 and res["n_test"] == 4
    assert len(res["layer_weights"]) == 3 and 0.0 <= res["accuracy"] <= 1.0
    with pytest.raises(FileNotFoundError, match="corpus benchmarks"):
        probe_task(encoder, tmp_path, "sid", ProbeSettings(epochs=1))

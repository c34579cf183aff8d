"""SUPERB-style probes on a frozen upstream: keyword spotting, speaker id, phoneme recognition.

Protocol (SUPERB): the upstream is frozen; a learned softmax weighting of ALL its
hidden states (each layer-normalized, as s3prl's featurizer can) feeds a small head.
Features are extracted once per upstream (``extract``); heads train in seconds.

- ``ks`` / ``sid``: mean-pool over real frames + linear classifier; metric accuracy.
  Pooling commutes with the layer weighting, so only pooled (L+1, D) features are kept.
- ``pr``: per-frame linear layer + CTC (blank 0), greedy decoding, PER = edit distance /
  reference length over the test set.

The model is chosen on dev (best epoch) and scored on test. Probe sets follow
docs/FORMATS.md: ``DIR/<task>/<split>.jsonl`` with ``label`` (ks, sid) or ``phones`` (pr).

Every result carries its per-item test outcomes, ``test_items = {"num": [...], "den": [...]}``
(ks, sid: 1 if correct / 1; pr: edit errors / reference phones), so the metric is
``sum(num) / sum(den)`` and intervals can resample items (``tinywave.eval.stats``).
``probe_each_layer`` trains one head per single hidden state (no weighting) on features
extracted once (``task_data``): how much each layer alone knows of the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from tinywave.audio.io import AudioError, load_audio
from tinywave.data.manifest import read_manifest
from tinywave.sfm.data import collate
from tinywave.sfm.models import frame_lengths, hidden_states

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")


@dataclass
class ProbeData:
    feats: list[torch.Tensor]  # per item: pooled (L+1, D) or frames (L+1, T, D)
    labels: list  # class id (ks, sid) or list of phone ids (pr)


def read_split(probe_dir: str | Path, task: str, split: str) -> tuple[list[np.ndarray], list]:
    """Waveforms and raw labels (``label`` string or ``phones`` list) of one probe split."""
    path = Path(probe_dir) / task / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"probe split {path} not found; build probe sets with `tinywave corpus benchmarks` "
                                f"(layout DIR/probes/<task>/<split>.jsonl)")
    items, bad = read_manifest(path)
    key = "phones" if task == "pr" else "label"
    wavs, labels = [], []
    for item in items:
        if key not in item.extra:
            log.warning("%s: item %s has no %r; skipped", path, item.id, key)
            continue
        try:
            wavs.append(load_audio(item.audio)[0])
        except AudioError as exc:
            log.warning("%s: skipped (%s)", item.id, exc)
            continue
        labels.append(item.extra[key])
    for b in bad:
        log.warning("%s: skipped (%s)", b.where, b.detail)
    return wavs, labels


@torch.no_grad()
def extract(encoder: PreTrainedModel, wavs: list[np.ndarray], pooled: bool, batch_size: int = 16) -> list[torch.Tensor]:
    """Per waveform, all hidden states on its real frames: pooled (L+1, D) or (L+1, T, D) fp16."""
    encoder.eval()
    order = sorted(range(len(wavs)), key=lambda i: len(wavs[i]))  # similar lengths per batch
    out: list[torch.Tensor | None] = [None] * len(wavs)
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        batch = collate([wavs[i] for i in idx])
        states = torch.stack(hidden_states(encoder, batch.wav, batch.lengths), dim=1)  # (B, L+1, T, D)
        n_frames = frame_lengths(encoder.config, batch.lengths).clamp(min=1)
        for b, i in enumerate(idx):
            x = states[b, :, : int(n_frames[b])]  # (L+1, T_i, D)
            out[i] = x.mean(1) if pooled else x.half()
    return out  # type: ignore[return-value]


class WeightedSum(nn.Module):
    """Softmax-weighted sum over the layer axis of (..., L+1, [T,] D) features."""

    def __init__(self, n_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_layers))

    def forward(self, x: torch.Tensor, layer_dim: int) -> torch.Tensor:
        x = F.layer_norm(x.float(), x.shape[-1:])
        w = torch.softmax(self.weights, 0)
        shape = [1] * x.dim()
        shape[layer_dim] = -1
        return (x * w.view(shape)).sum(layer_dim)


class PooledClassifier(nn.Module):
    def __init__(self, n_layers: int, width: int, n_classes: int):
        super().__init__()
        self.mix, self.out = WeightedSum(n_layers), nn.Linear(width, n_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.out(self.mix(feats, layer_dim=1))  # (B, L+1, D) -> (B, C)


class CtcHead(nn.Module):
    def __init__(self, n_layers: int, width: int, n_symbols: int, hidden: int = 0):
        super().__init__()
        self.mix = WeightedSum(n_layers)
        self.rnn = nn.LSTM(width, hidden, batch_first=True, bidirectional=True) if hidden > 0 else None
        self.out = nn.Linear(2 * hidden if hidden > 0 else width, n_symbols + 1)  # + blank (id 0)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.mix(feats, layer_dim=1)  # (B, L+1, T, D) -> (B, T, D)
        if self.rnn is not None:
            x = self.rnn(x)[0]
        return self.out(x).log_softmax(-1)  # (B, T, S+1)


def edit_distance(ref: list, hyp: list) -> int:
    """Levenshtein distance (substitutions, insertions, deletions cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def greedy_ctc(log_probs: torch.Tensor, n_frames: list[int]) -> list[list[int]]:
    """Collapse repeats and drop blanks (0) of the per-frame argmax; (B, T, S+1) -> symbol ids."""
    out = []
    for row, n in zip(log_probs.argmax(-1).tolist(), n_frames):
        seq, last = [], 0
        for s in row[:n]:
            if s != last and s != 0:
                seq.append(s)
            last = s
        out.append(seq)
    return out


def _pad_frames(feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    n = [f.shape[1] for f in feats]
    x = torch.zeros(len(feats), feats[0].shape[0], max(n), feats[0].shape[-1])
    for k, f in enumerate(feats):
        x[k, :, : f.shape[1]] = f.float()
    return x, n  # (B, L+1, T, D)


@dataclass
class ProbeSettings:
    epochs: int = 60
    lr: float = 1e-2
    batch_size: int = 32
    weight_decay: float = 1e-4
    ctc_hidden: int = 0  # > 0: a small BiLSTM before the CTC output layer
    seed: int = 0


def _batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    perm = rng.permutation(n)
    return [perm[k:k + size] for k in range(0, n, size)]


Outcomes = tuple[np.ndarray, np.ndarray]  # per item (num, den); the metric is num.sum() / den.sum()


def _metric(outcomes: Outcomes) -> float:
    num, den = outcomes
    return float(num.sum() / max(1.0, float(den.sum())))


def _fit(model: nn.Module, train_step: Callable[[np.ndarray], torch.Tensor], n_train: int,
         evaluate: Callable[[str], Outcomes], higher_is_better: bool, cfg: ProbeSettings) -> dict:
    """Adam over epochs; keep the epoch best on dev; return dev and test metric at that epoch,
    and the test split's per-item outcomes."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    best, best_state = None, None
    for _ in range(cfg.epochs):
        model.train()
        for idx in _batches(n_train, cfg.batch_size, rng):
            loss = train_step(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        score = _metric(evaluate("dev"))
        if best is None or (score > best if higher_is_better else score < best):
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    num, den = evaluate("test")
    return {"dev": float(best), "test": _metric((num, den)), "test_items": {"num": num.tolist(), "den": den.tolist()}}


def train_classifier(data: dict[str, ProbeData], n_classes: int, cfg: ProbeSettings) -> dict:
    """Pooled features -> accuracy on test at the best dev epoch, and the learned layer weights."""
    torch.manual_seed(cfg.seed)
    x = {s: torch.stack(d.feats).float() for s, d in data.items()}  # (N, L+1, D)
    y = {s: torch.tensor(d.labels) for s, d in data.items()}
    model = PooledClassifier(x["train"].shape[1], x["train"].shape[2], n_classes)

    def step(idx: np.ndarray) -> torch.Tensor:
        return F.cross_entropy(model(x["train"][idx]), y["train"][idx])

    @torch.no_grad()
    def correct(split: str) -> Outcomes:
        model.eval()
        hits = (model(x[split]).argmax(-1) == y[split]).double().numpy()  # (N,)
        return hits, np.ones_like(hits)

    res = _fit(model, step, len(y["train"]), correct, True, cfg)
    return {"accuracy": res["test"], "dev_accuracy": res["dev"], "layer_weights": _weights(model.mix),
            "test_items": res["test_items"]}


def train_ctc(data: dict[str, ProbeData], n_symbols: int, cfg: ProbeSettings) -> dict:
    """Frame features -> CTC; PER on test at the best dev epoch, and the learned layer weights."""
    torch.manual_seed(cfg.seed)
    model = CtcHead(data["train"].feats[0].shape[0], data["train"].feats[0].shape[-1], n_symbols, cfg.ctc_hidden)

    def step(idx: np.ndarray) -> torch.Tensor:
        x, n = _pad_frames([data["train"].feats[i] for i in idx])
        targets = [torch.tensor(data["train"].labels[i]) for i in idx]
        lp = model(x).transpose(0, 1)  # (T, B, S+1)
        return F.ctc_loss(lp, torch.cat(targets), torch.tensor(n), torch.tensor([len(t) for t in targets]),
                          blank=0, zero_infinity=True)

    @torch.no_grad()
    def errors(split: str) -> Outcomes:
        model.eval()
        edits, lengths = [], []
        d = data[split]
        for k in range(0, len(d.feats), cfg.batch_size):
            x, n = _pad_frames(d.feats[k:k + cfg.batch_size])
            for ref, hyp in zip(d.labels[k:k + cfg.batch_size], greedy_ctc(model(x), n)):
                edits.append(edit_distance(ref, hyp))
                lengths.append(len(ref))
        return np.asarray(edits, dtype=np.float64), np.asarray(lengths, dtype=np.float64)

    res = _fit(model, step, len(data["train"].labels), errors, False, cfg)
    return {"per": res["test"], "dev_per": res["dev"], "layer_weights": _weights(model.mix), "test_items": res["test_items"]}


def _weights(mix: WeightedSum) -> list[float]:
    return [round(float(w), 4) for w in torch.softmax(mix.weights.detach(), 0)]


def _encode_labels(raw: dict[str, list], task: str) -> tuple[dict[str, list], int]:
    """String labels -> ids from the train split (ks, sid; unseen -> -1), or phones -> 1..S (pr)."""
    if task == "pr":
        symbols = sorted({p for labels in raw.values() for seq in labels for p in seq})
        ids = {p: k + 1 for k, p in enumerate(symbols)}
        return {s: [[ids[p] for p in seq] for seq in labels] for s, labels in raw.items()}, len(symbols)
    classes = sorted({str(v) for v in raw["train"]})
    ids = {c: k for k, c in enumerate(classes)}
    return {s: [ids.get(str(v), -1) for v in labels] for s, labels in raw.items()}, len(classes)


TRAINERS: dict[str, Callable[[dict[str, ProbeData], int, ProbeSettings], dict]] = {
    "ks": train_classifier, "sid": train_classifier, "pr": train_ctc}


def task_data(encoder: PreTrainedModel, probe_dir: str | Path, task: str) -> tuple[dict[str, ProbeData], int]:
    """The encoder's features and encoded labels of the task's three splits, and the class
    (ks, sid) or phone (pr) count: what every head of the task trains on."""
    if task not in TRAINERS:
        raise ValueError(f"probe task {task!r} is not known; choose from {sorted(TRAINERS)}")
    wavs, raw = {}, {}
    for split in SPLITS:
        wavs[split], raw[split] = read_split(probe_dir, task, split)
        if not wavs[split]:
            raise ValueError(f"{Path(probe_dir) / task / (split + '.jsonl')} has no usable items")
    labels, n = _encode_labels(raw, task)
    return {s: ProbeData(extract(encoder, wavs[s], pooled=task != "pr"), labels[s]) for s in SPLITS}, n


def train_head(data: dict[str, ProbeData], task: str, n: int, cfg: ProbeSettings) -> dict:
    """The task's head on extracted features: its metrics, layer weights and per-item test outcomes."""
    result = TRAINERS[task](data, n, cfg)
    result.update({"n_train": len(data["train"].labels), "n_test": len(data["test"].labels), "n_classes": n})
    return result


def probe_task(encoder: PreTrainedModel, probe_dir: str | Path, task: str, cfg: ProbeSettings) -> dict:
    """Extract features of the three splits once, train the task's head, return its metrics."""
    data, n = task_data(encoder, probe_dir, task)
    return train_head(data, task, n, cfg)


def probe_each_layer(data: dict[str, ProbeData], task: str, n: int, cfg: ProbeSettings) -> list[dict]:
    """One head per hidden state alone (index 0 = front end, k = layer k), on features of ``task_data``."""
    n_states = data["train"].feats[0].shape[0]
    out = []
    for layer in range(n_states):
        single = {s: ProbeData([f[layer:layer + 1] for f in d.feats], d.labels) for s, d in data.items()}  # (1, [T,] D)
        out.append({"layer": layer, **train_head(single, task, n, cfg)})
    return out

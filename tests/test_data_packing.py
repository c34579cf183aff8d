"""Padding-free packing (shards ``packing=split``): rows cut from one document stream, one
attention segment per document, and every loss equal to running each segment alone."""

from functools import partial

import pytest
import torch

from support.models import tiny_llama
from support.shards import token_docs
from tinywave.data.shards import ShardDataset, labels_from_batch, segment_positions, split_rows, write_shards
from tinywave.distill.teacher_cache import CacheSettings, build_cache, open_cache
from tinywave.training.batches import BatchStream
from tinywave.distill.fused import use_qk_attention
from tinywave.distill.losses import IGNORE_INDEX
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.distill.teacher import OnlineTeacher
from tinywave.models import windowed
from tinywave.models.student import build_student

VOCAB, SEQ, BOS, EOS, PAD = 48, 24, 1, 2, 3
PAIRS = [(0, 0), (1, 2)]


# new_llama(VOCAB, 3, 16, 2, 1, 32, 64) with peaked distributions, like a trained teacher
make_teacher = partial(tiny_llama, vocab=VOCAB, layers=3, width=16, heads=2, kv_heads=1, ffn=32, max_positions=64, bos_id=None, eos_id=None,
                       lm_head_scale=20.0)


def make_docs(n=30, seed=0):
    return token_docs(n, VOCAB, min_len=2, max_len=20, seed=seed, bos=BOS, eos=EOS)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("packing")
    write_shards(root / "split", make_docs(), SEQ, "fp", VOCAB, PAD, bos_id=BOS, eos_id=EOS, packing="split")
    write_shards(root / "whole", make_docs(), SEQ, "fp", VOCAB, PAD, bos_id=BOS, eos_id=EOS)
    return root


def test_split_rows_keep_every_token_and_fill_every_row_but_the_last():
    docs = make_docs()
    rows = list(split_rows(docs, SEQ))
    assert [t for r in rows for t in r] == [t for d in docs for t in d]
    assert all(len(r) == SEQ for r in rows[:-1]) and 0 < len(rows[-1]) <= SEQ


def test_split_shards_have_no_padding_but_in_the_last_row_and_whole_shards_do(packed):
    split, whole = ShardDataset(packed / "split"), ShardDataset(packed / "whole")
    assert split.packing == "split" and whole.packing == "whole"
    fill = {name: ds.index["tokens"] / (len(ds) * SEQ) for name, ds in {"split": split, "whole": whole}.items()}
    assert split.index["tokens"] == whole.index["tokens"]  # the same documents
    assert fill["split"] > (len(split) - 1) / len(split) and fill["whole"] < fill["split"]
    assert "position_ids" in split[0] and "position_ids" not in whole[0]


def test_positions_restart_at_each_document_at_the_row_start_and_at_padding():
    ids = torch.tensor([[7, 8, EOS, BOS, 9, EOS, BOS, 5, PAD, PAD]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 0, 0]])
    assert segment_positions(ids, mask, BOS).tolist() == [[0, 1, 2, 0, 1, 2, 0, 1, 0, 1]]
    labels = labels_from_batch(ids, mask, position_ids=segment_positions(ids, mask, BOS))
    # no document predicts the next one's BOS; padding has no targets
    assert labels.tolist() == [[8, EOS, IGNORE_INDEX, 9, EOS, IGNORE_INDEX, 5, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]


def one_segment_per_row(batch):
    """The reference: every segment of a segmented batch alone in its own padded row (plain masks, no position ids)."""
    pieces = []
    for ids, mask, pos in zip(batch["input_ids"], batch["attention_mask"], batch["position_ids"]):
        starts = (pos == 0).nonzero().squeeze(1).tolist() + [len(ids)]
        for a, b in zip(starts[:-1], starts[1:]):
            if mask[a]:
                pieces.append(ids[a:b][mask[a:b].bool()])
    width = max(len(p) for p in pieces)
    ids = torch.full((len(pieces), width), PAD)
    mask = torch.zeros((len(pieces), width), dtype=torch.long)
    for i, p in enumerate(pieces):
        ids[i, : len(p)], mask[i, : len(p)] = p, 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels_from_batch(ids, mask)}, len(pieces)


def losses_and_grads(teacher, batch, normalizer):
    student = build_student(make_teacher(), 2, [0, 2])
    use_qk_attention(student)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # a student that differs from the teacher
    w = LossWeights(ce=1.0, kl=1.0, hidden=1.0, attn=1.0, temperature=2.0, chunk_size=7)
    losses = DistillObjective(student, w, PAIRS, teacher)(batch, normalizer)
    losses["loss"].backward()
    return {k: float(v.detach()) for k, v in losses.items()}, {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}


@pytest.fixture(params=[128, 8], ids=["one-block", "key-windows"])
def block(request, monkeypatch):
    """Rows of 24 tokens fit one block of 128 (plain SDPA); blocks of 8 cut them into key windows,
    as the demo's rows of 512 are cut (tinywave/models/windowed.py)."""
    monkeypatch.setattr(windowed, "BLOCK", request.param)
    return request.param


def test_packed_rows_give_the_losses_and_gradients_of_each_segment_alone(packed, block):
    batch = BatchStream(ShardDataset(packed / "split"), 4, seed=0).next()
    reference, n_pieces = one_segment_per_row(batch)
    assert n_pieces > 2 * 4  # several document boundaries inside the rows
    n = int((batch["labels"] != IGNORE_INDEX).sum())
    assert n == int((reference["labels"] != IGNORE_INDEX).sum())
    teacher = OnlineTeacher(make_teacher(), [0, 2], [0, 2], logits=True)
    got, got_grads = losses_and_grads(teacher, batch, float(n))
    want, want_grads = losses_and_grads(teacher, reference, float(n))
    assert want["kl"] > 1e-3 and want["attn"] > 1e-4 and want["hidden"] > 1e-4  # not a comparison between zeros
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    for name, g in want_grads.items():
        torch.testing.assert_close(got_grads[name], g, rtol=1e-3, atol=1e-5, msg=name)


def test_without_segments_the_packed_rows_would_attend_across_documents(packed):
    """The masking matters: the same rows with a plain padding mask give other losses."""
    batch = BatchStream(ShardDataset(packed / "split"), 4, seed=0).next()
    n = float((batch["labels"] != IGNORE_INDEX).sum())
    teacher = OnlineTeacher(make_teacher(), [0, 2], [0, 2], logits=True)
    segmented, _ = losses_and_grads(teacher, batch, n)
    plain, _ = losses_and_grads(teacher, {k: v for k, v in batch.items() if k != "position_ids"}, n)
    assert abs(segmented["ce"] - plain["ce"]) > 1e-3


def test_a_cache_of_segmented_rows_gives_the_online_losses(packed, tmp_path, block):
    """The cache runs the teacher under inference_mode, whose masks have no version counter (key_windows)."""
    ds = ShardDataset(packed / "split")
    settings = CacheSettings(top_k=0, temperatures=(2.0,), logit_dtype="float32", hidden_layers=(0, 2), hidden_dtype="float32",
                             attn_layers=(0, 2), attn_dtype="float32", batch_size=3, block_rows=4, chunk_size=7)
    build_cache(make_teacher(), ds, tmp_path / "cache", settings)
    batch = BatchStream(ds, 4, seed=0).next()
    n = float((batch["labels"] != IGNORE_INDEX).sum())
    online, _ = losses_and_grads(OnlineTeacher(make_teacher(), [0, 2], [0, 2], logits=True), batch, n)
    cached, _ = losses_and_grads(open_cache(tmp_path / "cache", make_teacher(), ds, 2.0, [0, 2], attn_layers=[0, 2]), batch, n)
    for key, value in online.items():
        assert cached[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key

"""Offline teacher cache: parity with the online teacher (k = V), top-k accuracy, resume, refusals."""

import numpy as np
import pytest
import torch

from support.models import cache_teacher
from support.shards import CACHE_SEQ as SEQ, CACHE_VOCAB as VOCAB, speech_shards
from tinywave.data.shards import ShardDataset, write_shards
from tinywave.distill.teacher_cache import CacheSettings, CachedTeacher, build_cache, open_cache, read_index, tail_ranges, topk_targets
from tinywave.distill.fused import fused_vocab_losses
from tinywave.training.batches import BatchStream
from tinywave.distill.losses import IGNORE_INDEX
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.distill.teacher import OnlineTeacher
from tinywave.models.hf import new_llama
from tinywave.models.student import build_student

PAIRS = [(0, 0), (1, 2)]


@pytest.fixture(scope="module")
def full_cache(cache_shards):
    root, ds = cache_shards
    settings = CacheSettings(top_k=0, temperatures=(2.0,), logit_dtype="float32", hidden_layers=(0, 2), hidden_dtype="float32",
                             attn_layers=(0, 2), attn_dtype="float32", batch_size=3, block_rows=8, chunk_size=7)
    build_cache(cache_teacher(), ds, root / "full", settings)
    return root / "full"


def losses_and_grads(teacher_targets, ds, temperature=2.0, weights=(1.0, 1.0, 1.0, 0.0), noise=0.02):
    from tinywave.distill.fused import use_qk_attention

    student = build_student(cache_teacher(), 2, [0, 2])
    weights = (*weights, 0.0)[:4]  # ce, kl, hidden, attn
    if weights[3] > 0:
        use_qk_attention(student)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * noise)  # a student that differs from the teacher
    w = LossWeights(ce=weights[0], kl=weights[1], hidden=weights[2], attn=weights[3], temperature=temperature, chunk_size=5)
    objective = DistillObjective(student, w, PAIRS, teacher_targets)
    batch = BatchStream(ds, 4, seed=0).next()
    n = float((batch["labels"] != IGNORE_INDEX).sum())
    losses = objective(batch, n)
    losses["loss"].backward()
    grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
    return {k: float(v.detach()) for k, v in losses.items()}, grads


def test_full_vocabulary_cache_gives_the_online_losses(cache_shards, full_cache):
    _, ds = cache_shards
    online = losses_and_grads(OnlineTeacher(cache_teacher(), [0, 2], (), logits=True), ds)
    cached = losses_and_grads(open_cache(full_cache, cache_teacher(), ds, 2.0, [0, 2]), ds)
    assert online[0]["kl"] > 1e-3 and online[0]["hidden"] > 1e-4  # the comparison is not between zeros
    assert "topk_ids" not in read_index(full_cache)["arrays"]  # k = V: logits in vocabulary order, no id permutation stored
    for key, value in online[0].items():
        assert cached[0][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    for name, g in online[1].items():
        torch.testing.assert_close(cached[1][name], g, rtol=1e-4, atol=1e-6)  # float32 summation order differs
    # k = V serves any temperature: the normalizer is recomputed from the stored logits
    at3 = losses_and_grads(OnlineTeacher(cache_teacher(), [0, 2], (), logits=True), ds, temperature=3.0)[0]
    assert losses_and_grads(CachedTeacher(full_cache, 3.0, [0, 2]), ds, temperature=3.0)[0]["kl"] == pytest.approx(at3["kl"], rel=1e-5)


def test_cached_queries_and_keys_give_the_online_attention_loss(cache_shards, full_cache, tmp_path):
    _, ds = cache_shards
    every = (1.0, 1.0, 1.0, 1.0)
    online = losses_and_grads(OnlineTeacher(cache_teacher(), [0, 2], [0, 2], logits=True), ds, weights=every, noise=0.3)
    cached = losses_and_grads(open_cache(full_cache, cache_teacher(), ds, 2.0, [0, 2], attn_layers=[0, 2]), ds, weights=every, noise=0.3)
    assert online[0]["attn"] > 1e-3  # the student's attention differs from the teacher's: not a comparison of zeros
    for key, value in online[0].items():
        assert cached[0][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    for name, g in online[1].items():
        torch.testing.assert_close(cached[1][name], g, rtol=1e-4, atol=1e-6)
    # stored at float16 (the default) the attention loss moves by far less than its size
    build_cache(cache_teacher(), ds, tmp_path / "fp16", CacheSettings(top_k=0, temperatures=(2.0,), attn_layers=(0, 2), block_rows=16))
    half = losses_and_grads(open_cache(tmp_path / "fp16", cache_teacher(), ds, 2.0, attn_layers=[0, 2]), ds, weights=(1.0, 0.0, 0.0, 1.0), noise=0.3)
    assert half[0]["attn"] == pytest.approx(online[0]["attn"], rel=1e-2)
    index = read_index(full_cache)
    assert index["attn_layers"] == [0, 2] and index["arrays"]["query_2"]["shape"] == [len(ds), 2, SEQ, 8]
    assert index["attn_scale"]["2"] == pytest.approx(8 ** -0.5)


def test_topk_cache_is_close_and_improves_with_k(cache_shards, tmp_path):
    _, ds = cache_shards
    online = losses_and_grads(OnlineTeacher(cache_teacher(), (), (), logits=True), ds, weights=(1.0, 1.0, 0.0))[0]["kl"]
    errors = []
    for k in (1, 4, 16, VOCAB):
        out = tmp_path / f"k{k}"
        build_cache(cache_teacher(), ds, out, CacheSettings(top_k=k, temperatures=(1.0, 2.0), logit_dtype="float32", block_rows=16))
        cached = losses_and_grads(open_cache(out, cache_teacher(), ds, 2.0), ds, weights=(1.0, 1.0, 0.0))[0]["kl"]
        errors.append(abs(cached - online))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[0] > 1e-3 and errors[-1] < 1e-6 * online
    assert errors[2] < 0.05 * online  # 16 of 48 ids already carry almost all of the mass
    # half-precision storage of the logits stays close to the float32 cache
    for dtype in ("float16", "bfloat16"):
        out = tmp_path / dtype
        build_cache(cache_teacher(), ds, out, CacheSettings(top_k=16, temperatures=(2.0,), logit_dtype=dtype, block_rows=16))
        kl = losses_and_grads(open_cache(out, cache_teacher(), ds, 2.0), ds, weights=(1.0, 1.0, 0.0))[0]["kl"]
        assert kl == pytest.approx(online, rel=0.05 + errors[2] / online)


RANGES = [(0, 20), (20, 22), (22, VOCAB)]  # "text", "markers", "speech units" of the toy vocabulary


def test_modality_tail_puts_the_rest_mass_only_on_the_top1_modality(cache_shards, tmp_path):
    """Tail mass lands only on the non-top-k ids of the top-1 id's range, and the sparse KL (and its
    gradients) equal a dense reference built from the same sparse targets."""
    _, ds = cache_shards
    out = tmp_path / "k4"
    build_cache(cache_teacher(), ds, out, CacheSettings(top_k=4, temperatures=(2.0,), logit_dtype="float32", block_rows=16))
    batch = BatchStream(ds, 4, seed=0).next()
    uniform = CachedTeacher(out, 2.0)(batch["input_ids"], batch["attention_mask"], batch["rows"])
    tb = CachedTeacher(out, 2.0, tail="modality", ranges=RANGES)(batch["input_ids"], batch["attention_mask"], batch["rows"])
    real = batch["attention_mask"].flatten().nonzero().squeeze(1)  # positions the teacher saw
    p = torch.softmax(tb.logits(real) / 2.0, -1)  # (n, V) the teacher distribution it stands for
    p_uniform = torch.softmax(uniform.logits(real) / 2.0, -1)
    torch.testing.assert_close(p.sum(-1), torch.ones(len(real)))
    ids = tb.ids[real]  # (n, k)
    top1 = ids[:, 0]
    torch.testing.assert_close(p.gather(1, ids), p_uniform.gather(1, ids))  # the top k are untouched
    cols = torch.arange(VOCAB)
    checked = 0
    for i in range(len(real)):
        lo, hi = next((a, b) for a, b in RANGES if a <= int(top1[i]) < b)
        tail = torch.ones(VOCAB, dtype=torch.bool)
        tail[ids[i]] = False
        inside = tail & (cols >= lo) & (cols < hi)
        if not inside.any():  # the top k use the range up: whole-vocabulary fallback
            torch.testing.assert_close(p[i], p_uniform[i])
            continue
        assert float(p[i][tail & ~inside].sum()) < 1e-30  # nothing outside the modality
        rest = 1 - float(p[i][ids[i]].sum())
        torch.testing.assert_close(p[i][inside], torch.full((int(inside.sum()),), rest / int(inside.sum())))
        checked += 1
    assert checked > len(real) // 2
    assert (p - p_uniform).abs().max() > 1e-3  # the tail really moved
    # KL and gradients: sparse (fused, TopKTargets with ranges) == dense (the same distribution over V)
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(len(real), 6, generator=g).requires_grad_()
    weight = torch.randn(VOCAB, 6, generator=g).requires_grad_()
    targets = torch.randint(0, VOCAB, (len(real),), generator=g)
    results = []
    for teacher in (lambda r: tb.logits(real[r]), lambda r: tb.vocab_targets(real[r])):
        total, _, kl = fused_vocab_losses(hidden, weight, targets, teacher, None, 2.0, chunk_size=5, normalizer=None, ce_weight=0.5, kl_weight=1.0)
        total.backward()
        results.append((kl, hidden.grad.clone(), weight.grad.clone()))
        hidden.grad = weight.grad = None
    assert float(results[0][0]) > 1e-3
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_tail_ranges_fall_back_to_the_whole_vocabulary():
    ids = torch.tensor([[0, 1], [20, 21], [30, 5], [47, 46]])  # rows: text top-1, markers used up, speech, speech
    lo, hi, count = tail_ranges(ids[:, 0], ids, RANGES, VOCAB)
    assert lo.tolist() == [0, 0, 22, 22] and hi.tolist() == [20, VOCAB, VOCAB, VOCAB]
    assert count.tolist() == [18, VOCAB - 2, VOCAB - 22 - 1, VOCAB - 22 - 2]


def test_modality_tail_needs_ranges(full_cache):
    with pytest.raises(ValueError, match="modality ranges"):
        CachedTeacher(full_cache, 2.0, tail="modality")
    with pytest.raises(ValueError, match="not known"):
        CachedTeacher(full_cache, 2.0, tail="even")


def test_topk_targets_store_exact_log_probabilities_and_rest_mass():
    logits = torch.randn(5, 11) * 3
    got = topk_targets(logits, 4, [1.0, 2.5])
    for j, temp in enumerate((1.0, 2.5)):
        logp = torch.log_softmax(logits / temp, -1)
        torch.testing.assert_close(got["topk_logits"] / temp - got["logz"][:, j:j + 1], logp.gather(1, got["topk_ids"].long()))
        top_mass = logp.gather(1, got["topk_ids"].long()).exp().sum(-1)
        torch.testing.assert_close(got["rest"][:, j].exp(), 1 - top_mass, atol=1e-6, rtol=1e-5)
    assert (got["topk_logits"][:, :-1] >= got["topk_logits"][:, 1:]).all()  # most likely first
    assert torch.isinf(topk_targets(logits, 11, [1.0])["rest"]).all()  # k = V: nothing left


def test_interrupted_cache_resumes_to_the_same_arrays(cache_shards, full_cache, tmp_path):
    _, ds = cache_shards
    settings = CacheSettings(top_k=0, temperatures=(2.0,), logit_dtype="float32", hidden_layers=(0, 2), hidden_dtype="float32",
                             attn_layers=(0, 2), attn_dtype="float32", batch_size=3, block_rows=8, chunk_size=7)
    out = tmp_path / "resumed"
    first = build_cache(cache_teacher(), ds, out, settings, stop_after_blocks=2)
    assert not first["complete"] and first["blocks_done"] == 2 and not out.exists()
    with pytest.raises(FileNotFoundError, match="unfinished one: rerun"):
        read_index(out)
    with pytest.raises(ValueError, match="other settings"):
        build_cache(cache_teacher(), ds, out, CacheSettings(top_k=5, block_rows=8))
    second = build_cache(cache_teacher(), ds, out, settings)
    assert second["complete"] and second["blocks_done"] == second["blocks"] - 2
    assert not out.with_name("resumed.partial").exists()
    for name in read_index(full_cache)["arrays"]:
        a = np.load(full_cache / f"{name}.npy", allow_pickle=False)
        b = np.load(out / f"{name}.npy", allow_pickle=False)
        assert np.array_equal(a, b), name
    assert build_cache(cache_teacher(), ds, out, settings)["blocks_done"] == 0  # already complete: nothing redone


def test_mismatched_cache_is_refused(cache_shards, full_cache, tmp_path):
    root, ds = cache_shards
    changed = cache_teacher()
    with torch.no_grad():
        changed.model.layers[1].mlp.up_proj.weight[3, 5] += 1e-3
    with pytest.raises(ValueError, match="another teacher .*weights differ"):
        open_cache(full_cache, changed, ds, 2.0)
    with pytest.raises(ValueError, match="dtype differ"):
        open_cache(full_cache, cache_teacher().to(torch.bfloat16), ds, 2.0)
    docs = [[1, 5, 6, 7, 2]] * 12
    write_shards(tmp_path / "other", docs, SEQ, "fp", VOCAB, 3, bos_id=1, eos_id=2)
    with pytest.raises(ValueError, match="other shards"):
        open_cache(full_cache, cache_teacher(), ShardDataset(tmp_path / "other"), 2.0)
    with pytest.raises(ValueError, match=r"queries and keys of layers \[0, 2\], not \[1\].*attn_layers=\[0, 1, 2\]"):
        open_cache(full_cache, cache_teacher(), ds, 2.0, attn_layers=[1])
    with pytest.raises(ValueError, match=r"stores hidden states of layers \[0, 2\], not \[1\]"):
        open_cache(full_cache, cache_teacher(), ds, 2.0, hidden_layers=[1])
    topk = tmp_path / "topk"
    build_cache(cache_teacher(), ds, topk, CacheSettings(top_k=8, temperatures=(1.0,), block_rows=32))
    with pytest.raises(ValueError, match=r"temperatures \[1.0\] only; loss.temperature=2.0"):
        open_cache(topk, cache_teacher(), ds, 2.0)
    with pytest.raises(ValueError, match="top_k=99 must be in"):
        build_cache(cache_teacher(), ds, tmp_path / "bad", CacheSettings(top_k=99))


def test_ranks_fill_their_blocks_and_the_last_one_finishes(cache_shards, full_cache, tmp_path):
    from tinywave.distill.teacher_cache import finish_if_complete

    _, ds = cache_shards
    settings = CacheSettings(top_k=0, temperatures=(2.0,), logit_dtype="float32", hidden_layers=(0, 2), hidden_dtype="float32",
                             attn_layers=(0, 2), attn_dtype="float32", batch_size=3, block_rows=8, chunk_size=7)
    out = tmp_path / "ranks"
    one = build_cache(cache_teacher(), ds, out, settings, rank=1, world_size=2)
    assert not one["complete"] and one["blocks_done"] == one["blocks"] // 2 and not finish_if_complete(out)
    build_cache(cache_teacher(), ds, out, settings, rank=0, world_size=2)
    assert finish_if_complete(out)  # what rank 0 does after the barrier
    for name in read_index(full_cache)["arrays"]:
        assert np.array_equal(np.load(full_cache / f"{name}.npy"), np.load(out / f"{name}.npy")), name


@pytest.mark.slow
def test_cli_cache_then_distill_reproduces_the_online_run(tmp_path):
    """`tinywave teacher-cache` (k = V, queries and keys) then `tinywave distill teacher.cache=...`: the online loss curve,
    attention term included."""
    from tinywave.cli import main
    from tinywave.files import load_jsonl
    from tinywave.models.hf import write_model_dir
    from tinywave.text.vocab import train_bpe_tokenizer

    tok, layout = train_bpe_tokenizer(["tom went to the park"] * 10, vocab_size=50, n_hu=24, n_pi=4, n_st=4)
    speech_shards(tmp_path / "shards", tok, layout, n_docs=24, n_units=24, seq_len=32, seed=1)
    torch.manual_seed(0)
    write_model_dir(new_llama(len(tok), 4, 32, 4, 2, 64, max_positions=64), tok, tmp_path / "teacher")
    common = [f"teacher.dir={tmp_path / 'teacher'}", f"data.shards={tmp_path / 'shards'}", "student.n_layers=2",
              "data.batch_size=4", "loss.attn_weight=1", "loss.chunk_size=16", "train.steps=3", "train.report_to=[]"]
    assert main(["teacher-cache", "--teacher", str(tmp_path / "teacher"), "--shards", str(tmp_path / "shards"),
                 "--out", str(tmp_path / "cache"), "top_k=0", "temperatures=[2.0]", "logit_dtype=float32",
                 "hidden_layers=[1,3]", "hidden_dtype=float32", "attn_layers=[1,3]", "attn_dtype=float32", "block_rows=8"]) == 0
    assert main(["distill", *common, f"train.out={tmp_path / 'online'}"]) == 0
    assert main(["distill", *common, f"train.out={tmp_path / 'cached'}", f"teacher.cache={tmp_path / 'cache'}"]) == 0
    online, cached = (load_jsonl(tmp_path / name / "train_log.jsonl") for name in ("online", "cached"))
    assert [r["step"] for r in cached] == [1, 2, 3] and {"kl", "hidden", "attn"} <= set(cached[0])
    for a, b in zip(online, cached):
        for key in ("loss", "ce", "kl", "hidden", "attn", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["step"], key)  # teacher batches differ: rounding only
    # a cache without the mapped layers' queries and keys refuses the attention loss, with the fix in the message
    assert main(["teacher-cache", "--teacher", str(tmp_path / "teacher"), "--shards", str(tmp_path / "shards"),
                 "--out", str(tmp_path / "no_attn"), "top_k=0", "temperatures=[2.0]", "hidden_layers=[1,3]", "block_rows=8"]) == 0
    assert main(["distill", *common[:-1], "train.steps=1", f"train.out={tmp_path / 'attn'}", f"teacher.cache={tmp_path / 'no_attn'}"]) == 2

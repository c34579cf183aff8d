"""SFM library: student building, shared front end parity, losses vs plain code, save/load, units, probes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import HubertModel

from tinywave.sfm.data import collate
from tinywave.sfm.losses import distilhubert_loss, layer_to_layer_loss
from tinywave.sfm.models import (
    build_student,
    downsample_rate,
    frame_lengths,
    front_end,
    hidden_states,
    same_front_end,
    student_config,
    teacher_config,
)
from tinywave.sfm.probes import WeightedSum, edit_distance, greedy_ctc
from tinywave.sfm.pretrain import batch_labels, span_mask
from tinywave.sfm.student import Student, uniform_targets
from tinywave.sfm.units import align_labels


def tiny_teacher(layers: int = 2, hidden: int = 32) -> HubertModel:
    torch.manual_seed(0)
    return HubertModel(teacher_config(hidden, layers, 2, 64, conv_channels=16, pos_conv_kernel=8)).eval()


def test_student_copies_teacher_front_end_and_first_layers():
    teacher = tiny_teacher()
    same = build_student(teacher, student_config(teacher, 32, 1, 2, 64), True, seed=1)
    assert same_front_end(teacher, same)
    assert torch.equal(same.encoder.layers[0].attention.q_proj.weight, teacher.encoder.layers[0].attention.q_proj.weight)
    narrow = build_student(teacher, student_config(teacher, 16, 3, 2, 32), True, seed=1)
    assert same_front_end(teacher, narrow) and narrow.config.hidden_size == 16
    assert narrow.config.conv_stride == teacher.config.conv_stride


def test_precomputed_front_end_matches_full_forward():
    teacher = tiny_teacher()
    batch = collate([np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1 for n in (4000, 2900)])
    plain = hidden_states(teacher, batch.wav, batch.lengths)
    fast = hidden_states(teacher, batch.wav, batch.lengths, features=front_end(teacher, batch.wav))
    assert len(plain) == 3
    for a, b in zip(plain, fast):
        assert torch.allclose(a, b, atol=1e-6)


def _masked_batch(b=3, t=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    return torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g), mask


def test_distilhubert_loss_matches_plain_computation():
    preds, targets, mask = {}, {}, None
    for layer in (2, 4):
        p, t, mask = _masked_batch(seed=layer)
        preds[layer], targets[layer] = p, t
    loss, parts = distilhubert_loss(preds, targets, mask)
    expected = 0.0
    for layer in (2, 4):
        frames_p = torch.cat([preds[layer][b, mask[b]] for b in range(3)])  # only real frames
        frames_t = torch.cat([targets[layer][b, mask[b]] for b in range(3)])
        expected += F.l1_loss(frames_p, frames_t) - F.logsigmoid(F.cosine_similarity(frames_p, frames_t, dim=-1)).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert set(parts) == {"l1/2", "cos/2", "l1/4", "cos/4"}


def test_layer_to_layer_loss_matches_plain_computation():
    preds, targets = {}, {}
    for layer in (1, 2, 3):
        p, t, mask = _masked_batch(seed=10 + layer)
        preds[layer], targets[layer] = p, t

    def mse(layer):
        return F.mse_loss(torch.cat([preds[layer][b, mask[b]] for b in range(3)]),
                          torch.cat([targets[layer][b, mask[b]] for b in range(3)]))

    loss, parts = layer_to_layer_loss(preds, targets, 3, mask, intermediate_weight=0.5)
    assert torch.allclose(loss, mse(3) + 0.5 * (mse(1) + mse(2)) / 2, atol=1e-6)
    assert parts["mse/output"] == pytest.approx(float(mse(3)), rel=1e-5)


def test_student_forward_save_load_and_plain_hf_loading(tmp_path):
    teacher = tiny_teacher(layers=4)
    encoder = build_student(teacher, student_config(teacher, 16, 2, 2, 32), True, seed=0)
    student = Student(encoder, "layer2layer", [2, 4], 32, uniform_targets(2, [2, 4])).eval()
    assert student.targets == {0: 2, 1: 4} and student.output_layer == 4
    batch = collate([np.ones(3000, np.float32) * 0.01, np.linspace(-0.1, 0.1, 2400).astype(np.float32)])
    preds, mask = student(batch.wav, batch.lengths)
    assert set(preds) == {2, 4} and preds[2].shape[-1] == 32
    assert mask.sum(1).tolist() == frame_lengths(encoder.config, batch.lengths).tolist()
    student.save(tmp_path / "s")
    again = Student.load(tmp_path / "s").eval()
    assert again.targets == student.targets
    assert torch.allclose(again(batch.wav, batch.lengths)[0][4], preds[4], atol=1e-6)
    plain = HubertModel.from_pretrained(str(tmp_path / "s"))  # what the HuBERT unit extractor does
    assert plain.config.num_hidden_layers == 2


def test_student_rejects_targets_without_output_layer():
    teacher = tiny_teacher()
    encoder = build_student(teacher, student_config(teacher, 16, 3, 2, 32), True, seed=0)
    with pytest.raises(ValueError, match="last student layer"):
        Student(encoder, "layer2layer", [1, 2], 32, {0: 1, 1: 2})


def test_uniform_targets():
    assert uniform_targets(3, [4, 8, 12]) == {0: 4, 1: 8, 2: 12}
    assert uniform_targets(12, [4, 8, 12]) == {3: 4, 7: 8, 11: 12}
    assert uniform_targets(6, [1, 2]) == {2: 1, 5: 2}
    with pytest.raises(ValueError):
        uniform_targets(1, [1, 2])


def test_align_labels_maps_unit_rate_onto_encoder_frames():
    labels = np.arange(10)  # 25 Hz units over 0.4 s
    aligned = align_labels(labels, 20, 25.0, 50.0)  # 50 Hz encoder frames: each unit covers two frames
    assert aligned.tolist() == [i // 2 for i in range(20)]
    assert align_labels(labels, 3, 25.0, 50.0).tolist() == [0, 0, 1]
    assert align_labels(labels, 25, 25.0, 50.0)[-1] == 9  # frames past the last unit take the last one


def test_span_mask_and_batch_labels():
    valid = torch.ones(2, 40, dtype=torch.bool)
    valid[1, 25:] = False
    mask = span_mask(valid, 0.5, 5, np.random.default_rng(0))
    assert not mask[1, 25:].any() and 0 < int(mask.sum()) <= 40
    batch = collate([np.zeros(3000, np.float32)] * 2, index=[0, 1], start=[320, 0])
    labels = batch_labels([np.arange(20), np.arange(4)], batch, 6, 320)
    assert labels[0].tolist() == [1, 2, 3, 4, 5, 6] and labels[1].tolist() == [0, 1, 2, 3, -100, -100]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=8), st.lists(st.integers(0, 3), max_size=8))
def test_edit_distance_properties(a, b):
    d = edit_distance(a, b)
    assert d == edit_distance(b, a)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))
    assert (d == 0) == (a == b)


def test_greedy_ctc_and_weighted_sum():
    frames = torch.tensor([[0, 2, 2, 0, 2, 3, 3, 1]])
    log_probs = F.one_hot(frames, 4).float().log_softmax(-1)
    assert greedy_ctc(log_probs, [8]) == [[2, 2, 3, 1]]
    assert greedy_ctc(log_probs, [3]) == [[2]]
    mix = WeightedSum(3)
    x = torch.randn(2, 3, 5)
    assert torch.allclose(mix(x, layer_dim=1), F.layer_norm(x, (5,)).mean(1), atol=1e-6)  # uniform at init


def test_downsample_rate_of_base_cnn():
    assert downsample_rate(teacher_config(32, 1, 2, 64)) == 320


def test_distill_loop_distilhubert_student_grows_with_reset_optimizer(tmp_path):
    from tinywave.sfm.data import WaveBank
    from tinywave.sfm.distill import GrowthPlan, LoopSettings, TeacherTargets, distill

    teacher = tiny_teacher(layers=2)
    rng = np.random.default_rng(0)
    bank = WaveBank(["a", "b"], [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (3000, 2500)])
    encoder = build_student(teacher, student_config(teacher, 32, 1, 2, 64), True, seed=0)
    student = Student(encoder, "distilhubert", [1, 2], 32)
    before = {k: v.clone() for k, v in student.heads.state_dict().items()}
    plan = GrowthPlan("gradual", [2], [{"n": 1}], "reset")
    cfg = LoopSettings(steps=3, batch_size=2, crop_samples=2400, warmup_steps=1, ckpt_every=100)
    summary = distill(student, TeacherTargets(teacher, [1, 2]), bank, plan, cfg, tmp_path)
    assert summary["finished"] and summary["depth"] == 2 and np.isfinite(summary["loss"])
    assert student.history[0]["provenance"] == [0, 0]
    assert not torch.equal(student.heads.state_dict()["1.weight"], before["1.weight"])  # heads trained
    assert {"l1/1", "cos/2"} <= set(summary["parts"])
    assert (tmp_path / "checkpoints" / "step_00000003" / "optimizer.pt").is_file()

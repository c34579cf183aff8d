"""The HuBERT unit extractor (tinywave.speech.hubert) on SFM models: truncation parity, distilled students."""

import numpy as np
import pytest
import torch
from transformers import HubertConfig, HubertModel

from tinywave.audio.features import Analysis
from tinywave.sfm.models import build_student, student_config, teacher_config
from tinywave.sfm.student import Student, uniform_targets
from tinywave.speech.hubert import HubertFeatures


def _save_hubert(path, stable: bool) -> HubertModel:
    cfg = HubertConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                       conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=4,
                       num_conv_pos_embedding_groups=2, do_stable_layer_norm=stable,
                       feat_extract_norm="layer" if stable else "group")
    torch.manual_seed(0)
    model = HubertModel(cfg).eval()
    with torch.no_grad():  # untrained LayerNorms are identities; make the final one matter
        model.encoder.layer_norm.weight.uniform_(0.5, 2.0)
        model.encoder.layer_norm.bias.uniform_(-1.0, 1.0)
    model.save_pretrained(str(path))
    return model


@pytest.mark.parametrize("stable", [True, False], ids=["pre-norm", "post-norm"])
@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_truncated_features_equal_full_model_hidden_states(tmp_path, stable, layer):
    full = _save_hubert(tmp_path / "m", stable)
    wav = np.random.default_rng(layer).standard_normal(2400).astype(np.float32) * 0.1
    with torch.no_grad():
        expected = full(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states[layer][0]  # (T, D)
    features = HubertFeatures(tmp_path / "m", layer=layer)
    got = features.vectors(Analysis(wav))
    assert len(features.model.encoder.layers) == max(layer, 1)  # later blocks never run
    assert got.shape == (features.n_frames(len(wav)), 16) == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


def test_pre_norm_final_layer_norm_only_dropped_when_truncated(tmp_path):
    _save_hubert(tmp_path / "m", stable=True)
    assert isinstance(HubertFeatures(tmp_path / "m", layer=2).model.encoder.layer_norm, torch.nn.Identity)
    assert isinstance(HubertFeatures(tmp_path / "m", layer=3).model.encoder.layer_norm, torch.nn.LayerNorm)


def test_distilled_student_directory_is_an_extractor_upstream(tmp_path):
    torch.manual_seed(0)
    teacher = HubertModel(teacher_config(32, 2, 2, 64, conv_channels=16, pos_conv_kernel=8)).eval()
    encoder = build_student(teacher, student_config(teacher, 16, 3, 2, 32), True, seed=0)
    student = Student(encoder, "layer2layer", [1, 2], 32, uniform_targets(3, [1, 2])).eval()
    student.save(tmp_path / "student")
    wav = np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1
    with torch.no_grad():
        expected = encoder(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states[2][0]
    got = HubertFeatures(tmp_path / "student", layer=2).vectors(Analysis(wav))
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)

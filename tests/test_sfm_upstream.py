"""The s3prl upstream contract: list of unpadded 1-D tensors in, equal-shape hidden states out."""

import pytest
import torch
from transformers import HubertModel

from tinywave.sfm.models import teacher_config
from tinywave.sfm.upstream import Upstream


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("up") / "model"
    HubertModel(teacher_config(32, 3, 2, 64, conv_channels=16, pos_conv_kernel=8)).save_pretrained(str(path))
    return Upstream(str(path))


def test_list_input_and_equal_shape_hidden_states(upstream):
    wavs = [torch.randn(16000) * 0.1, torch.randn(9000) * 0.1, torch.randn(4321) * 0.1]
    with torch.no_grad():
        out = upstream(wavs)
    states = out["hidden_states"]
    assert len(states) == 3 + 1  # layer 0 = front end, then one per transformer layer
    assert all(h.shape == states[0].shape for h in states)
    assert states[0].shape[0] == 3 and states[0].shape[2] == 32
    assert torch.equal(out["last_hidden_state"], states[-1])


def test_downsample_rate_consistent_with_output_length(upstream):
    rate = upstream.get_downsample_rates("hidden_states")
    assert rate == 320
    for n in (400, 3200, 16000, 16123):
        with torch.no_grad():
            out = upstream([torch.randn(n) * 0.1])
        t = out["hidden_states"][0].shape[1]
        assert t == (n - 400) // rate + 1  # 400-sample receptive field, 320-sample stride
        assert abs(t - n / rate) <= 2  # s3prl tolerates a few frames of difference


def test_batched_equals_one_at_a_time_on_real_frames(upstream):
    wavs = [torch.randn(12000) * 0.1, torch.randn(5000) * 0.1]
    with torch.no_grad():
        batched = upstream(wavs)
        singles = [upstream([w]) for w in wavs]
    for b, single in enumerate(singles):
        n = int(batched["frame_lengths"][b])
        for h_batch, h_single in zip(batched["hidden_states"], single["hidden_states"]):
            assert h_single.shape[1] == n
            assert torch.allclose(h_batch[b, :n], h_single[0], atol=1e-4)


def test_bad_inputs_are_value_errors(upstream, tmp_path):
    with pytest.raises(ValueError, match="1-D"):
        upstream([torch.randn(2, 8000)])
    with pytest.raises(ValueError, match="list"):
        upstream(torch.randn(8000))
    with pytest.raises(FileNotFoundError, match="config.json"):
        Upstream(str(tmp_path))

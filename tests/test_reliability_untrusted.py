"""Untrusted files: a pickle payload in a checkpoint, quantizer or array file is refused, nothing runs.

Every payload here would create a marker file when unpickled. The tests assert the marker
never appears, the message names the file, what it would import and how to opt in, and
that the opt-in loads a legitimate file that merely holds non-tensor objects.
"""

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from support.models import tiny_hubert
from tinywave.cli import main
from tinywave.training.checkpoint import load_training_state, save_checkpoint
from tinywave.training.settings import OptimSettings
from tinywave.training.trainer import make_optimizer
from tinywave.models.hf import load_causal_lm, new_llama
from tinywave.safeload import UnsafeFileError, load_json, load_numpy, load_torch, pickle_globals, torch_file_imports
from tinywave.speech.hubert import load_quantizer

ROOT = Path(__file__).resolve().parents[1]
FIGURES: dict[str, int] = {"payloads refused": 0, "payloads executed": 0}


class SystemPayload:
    """Unpickling calls os.system("touch MARKER")."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecPayload:
    """Unpickling calls builtins.exec(...) which creates MARKER."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


PAYLOADS = {"os.system": (SystemPayload, "posix.system"), "exec": (ExecPayload, "builtins.exec")}


def refused(call, path: Path, marker: Path, imports: str):
    with pytest.raises(UnsafeFileError) as info:
        call()
    message = str(info.value)
    FIGURES["payloads refused"] += 1
    FIGURES["payloads executed"] += marker.exists()
    assert not marker.exists(), "the payload ran"
    assert str(path) in message and imports in message
    assert "Nothing in it was executed" in message and ("--trust-pickle" in message or "convert it" in message)
    return message


@pytest.fixture(autouse=True)
def report_figures():
    yield
    print(f"\n[reliability] untrusted files: {FIGURES}")


# ---------------------------------------------------------------- the loader itself


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_payload_is_refused_and_never_runs(tmp_path, kind, zip_format):
    cls, imports = PAYLOADS[kind]
    marker = tmp_path / "PWNED"
    path = tmp_path / "quantizer.pt"
    obj = {"model_cfg": {"vocab_size": 4}, "model_weight": {"0.weight": torch.zeros(2, 2)}, "extra": cls(marker)}
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    refused(lambda: load_torch(path), path, marker, imports)
    refused(lambda: load_quantizer(path), path, marker, imports)  # the real quantizer loader
    # the opt-in really unpickles (proof that the file was live): the marker appears
    load_torch(path, allow_pickle=True)
    assert marker.exists()


def test_raw_pickle_is_refused(tmp_path):
    marker, path = tmp_path / "PWNED", tmp_path / "state.pt"
    path.write_bytes(pickle.dumps(SystemPayload(marker)))
    refused(lambda: load_torch(path), path, marker, "posix.system")


def test_pickle_globals_reads_opcodes_only(tmp_path):
    marker = tmp_path / "PWNED"
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps([1, {"a": ExecPayload(marker)}, SystemPayload(marker)], protocol=protocol)
        assert {"builtins.exec", "posix.system"} <= set(pickle_globals(data)), protocol
    assert pickle_globals(b"\x80\x04garbage") == [] and not marker.exists()


def test_torch_file_imports_name_only_what_weights_only_refuses(tmp_path):
    """Zip files: torch's public scanner (its allowlist, plus the user's safe globals); legacy files: the payload first."""
    marker = tmp_path / "PWNED"
    obj = {"w": torch.zeros(2, 2), "extra": SystemPayload(marker)}
    torch.save(obj, tmp_path / "zip.pt")
    torch.save(obj, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch_file_imports(tmp_path / "zip.pt") == ["posix.system"]  # no torch._utils rebuild functions
    with torch.serialization.safe_globals([os.system]):
        assert torch_file_imports(tmp_path / "zip.pt") == []
    legacy = torch_file_imports(tmp_path / "legacy.pt")
    others = [n for n in legacy if not n.startswith("torch.")]
    assert "posix.system" in others and legacy[: len(others)] == others  # torch's own names come last
    assert not marker.exists()


def test_weights_only_file_loads_without_opt_in(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "cfg": {"n": 3, "name": "x", "betas": [0.9, 0.95]}}
    torch.save(state, tmp_path / "ok.pt")
    got = load_torch(tmp_path / "ok.pt")
    assert torch.equal(got["w"], state["w"]) and got["cfg"] == state["cfg"]


def test_corrupt_and_missing_files_are_named(tmp_path):
    torch.save({"w": torch.zeros(100)}, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.pt cannot be read as a torch checkpoint .*truncated"):
        load_torch(tmp_path / "cut.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt not found"):
        load_torch(tmp_path / "nope.pt")
    np.save(tmp_path / "a.npy", np.ones((3, 2), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:70])
    with pytest.raises(ValueError, match=r"cut\.npy cannot be read as a numpy"):
        load_numpy(tmp_path / "cut.npy")
    (tmp_path / "bad.json").write_bytes(b'{"a": 1,\n "b": }')
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON .* line 2"):
        load_json(tmp_path / "bad.json")
    (tmp_path / "latin.json").write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(ValueError, match=r"latin\.json is not UTF-8"):
        load_json(tmp_path / "latin.json")


def test_numpy_object_array_payload(tmp_path):
    marker, path = tmp_path / "PWNED", tmp_path / "centroids.npy"
    np.save(path, np.array([SystemPayload(marker), 1.0], dtype=object), allow_pickle=True)
    refused(lambda: load_numpy(path), path, marker, "posix.system")
    refused(lambda: load_quantizer(path), path, marker, "posix.system")
    # a legitimate object array (lists of floats) loads with the opt-in only
    np.save(tmp_path / "lists.npy", np.array([[0.5, 1.5], [2.5]], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeFileError, match="object array"):
        load_numpy(tmp_path / "lists.npy")
    assert load_numpy(tmp_path / "lists.npy", allow_pickle=True)[1] == [2.5]
    np.save(tmp_path / "plain.npy", np.ones((4, 3), np.float32))
    assert load_quantizer(tmp_path / "plain.npy").centroids.shape == (4, 3)


# ---------------------------------------------------------------- checkpoints and model folders


def test_poisoned_optimizer_state_is_refused_on_resume(tmp_path):
    model = new_llama(20, 1, 8, 2, 1, 16, max_positions=16)
    opt, sched = make_optimizer(list(model.parameters()), OptimSettings(), 4)
    folder = save_checkpoint(tmp_path, 1, lambda d: None, opt, sched, {"step": 1}, config={})
    marker = tmp_path / "PWNED"
    state = torch.load(folder / "optimizer.pt", weights_only=True)
    state["param_groups"][0]["hook"] = SystemPayload(marker)
    torch.save(state, folder / "optimizer.pt")
    message = refused(lambda: load_training_state(folder, opt, sched), folder / "optimizer.pt", marker, "posix.system")
    assert "optimizer state" in message


def test_model_folder_with_pickled_weights(tmp_path):
    model = new_llama(20, 1, 8, 2, 1, 16, max_positions=16)
    folder = tmp_path / "teacher"
    model.config.save_pretrained(folder)
    marker = tmp_path / "PWNED"
    torch.save({**model.state_dict(), "evil": SystemPayload(marker)}, folder / "pytorch_model.bin")
    message = refused(lambda: load_causal_lm(folder), folder, marker, "posix.system")
    assert "pytorch_model.bin" in message and "save_pretrained" in message


# ---------------------------------------------------------------- the CLI opt-in


def quantizer_state(vocab: int = 4, dim: int = 16) -> dict:
    out, mid = vocab + 1, dim - (vocab + 1)
    h1, h2 = dim - mid // 4, dim - mid // 2
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(dim, h1), torch.nn.LeakyReLU(), torch.nn.Linear(h1, h2), torch.nn.LeakyReLU(), torch.nn.Linear(h2, out))
    return net.state_dict()


def test_units_train_refuses_then_accepts_with_trust_pickle(tmp_path, capsys):
    hubert = tmp_path / "hubert"
    tiny_hubert(layers=1, ffn=24, conv_kernel=(10, 8), pos_kernel=8).save_pretrained(hubert)
    # a legitimate SpiritLM-style quantizer whose config holds numpy integers (not tensors)
    legit = tmp_path / "L1_quantizer_4.pt"
    torch.save({"model_cfg": {"vocab_size": np.int64(4), "dim": np.int64(16), "upstream_dim": np.int64(16)},
                "model_weight": quantizer_state()}, legit)
    args = ["units", "train", "--out", str(tmp_path / "tok"), "kind=hubert", f"hubert.model={hubert}", "hubert.layer=1", f"hubert.quantizer={legit}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(r"error: .*L1_quantizer_4\.pt was refused: this linear quantizer needs Python objects unpickled "
                     r"\(it would import numpy\..*\).*Nothing in it was executed.*--trust-pickle", err), err
    assert "Traceback" not in err and not (tmp_path / "tok").exists()
    assert main([*args, "--trust-pickle"]) == 0
    assert (tmp_path / "tok" / "speech_tokenizer.json").is_file()
    # a live payload with the same layout: refused through the CLI, the payload never runs
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"model_cfg": {"vocab_size": 4, "dim": 16, "upstream_dim": 16, "x": SystemPayload(marker)}, "model_weight": quantizer_state()}, evil)
    assert main([*args[:-1], f"hubert.quantizer={evil}", f"--out={tmp_path / 'tok2'}"]) == 2
    err = capsys.readouterr().err
    assert "posix.system" in err and "was refused" in err and not marker.exists()
    FIGURES["payloads refused"] += 1


@pytest.mark.slow
def test_tokenize_with_a_pickled_spiritlm_vqvae_needs_trust_pickle(tmp_path, capsys):
    """SpiritLM's F0 VQ-VAE ``model.pt`` pickles its training args: `tinywave tokenize` refuses it by default."""
    import argparse
    import json

    import soundfile as sf

    from tinywave.spiritlm import fixtures

    release = fixtures.make_release(tmp_path / "release", vocoders=False)
    vq = release / "speech_tokenizer" / "vqvae_f0_quantizer"
    fixtures.write_f0_vqvae(vq, extra={"args": argparse.Namespace(lr=1.0, seed=3)})  # what the real release holds
    t = np.arange(24000) / 16000
    sf.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * (120 + 40 * t) * t)).astype(np.float32), 16000)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    out = tmp_path / "tokens.jsonl"
    args = ["tokenize", "--manifest", str(tmp_path / "m.jsonl"), "--tokenizer", f"spiritlm-expressive:{release}", "--out", str(out), "workers=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(r"error: .*model\.pt was refused: this VQ-VAE checkpoint \(model\.pt\) needs Python objects unpickled "
                     r"\(it would import argparse\.Namespace\).*Nothing in it was executed.*--trust-pickle", err), err
    assert "Traceback" not in err and not out.exists()
    assert main([*args, "--trust-pickle"]) == 0  # the explicit opt-in
    rec = json.loads(out.read_text())
    assert rec["id"] == "a" and "[Pi" in rec["speech"] and "[St" in rec["speech"]
    # a live payload in the same place: refused through the CLI, it never runs
    marker = tmp_path / "PWNED"
    fixtures.write_f0_vqvae(vq, extra={"args": SystemPayload(marker)})
    assert main([*args[:-2], str(tmp_path / "tokens2.jsonl"), "workers=1"]) == 2
    err = capsys.readouterr().err
    assert "posix.system" in err and "was refused" in err and not marker.exists()
    FIGURES["payloads refused"] += 2


# ---------------------------------------------------------------- audit of the package


UNSAFE_CALLS = {
    r"torch\.load\((?![^)]*weights_only=True)": "torch.load without weights_only=True",
    r"np\.load\((?![^)]*allow_pickle=False)": "np.load without allow_pickle=False",
    r"\bpickle\.loads?\(": "pickle.load",
    r"\byaml\.load\(|yaml\.unsafe_load|yaml\.full_load|yaml\.Loader\b|UnsafeLoader": "unsafe YAML loading",
    r"trust_remote_code\s*=\s*True": "trust_remote_code=True",
    r"\bweights_only\s*=\s*False": "weights_only=False",
}


def test_package_has_no_unsafe_loads():
    """Every loader outside tinywave/safeload.py keeps the safe flags (a new unsafe call fails here)."""
    found = []
    for path in sorted((ROOT / "tinywave").rglob("*.py")):
        if path.name == "safeload.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern, what in UNSAFE_CALLS.items():
            for m in re.finditer(pattern, text):
                found.append(f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}: {what}")
    assert found == []

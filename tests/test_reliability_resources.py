"""Resource faults while checkpointing: disk full, file-size limit, permission denied, NaN/inf.

In every case the newest complete checkpoint stays byte-for-byte intact, no half-written
``step_*`` folder appears, the error names the folder and the fix, and a rerun with
``train.resume=true`` (after the fault is gone) ends with the same weights as a run that
never failed.
"""

import errno
import hashlib
import logging
import os
import resource
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from support.models import trainer_llama
from support.workspace import lm_workspace, train_args
from tinywave.cli import main
from tinywave.training.checkpoint import list_checkpoints, read_state
from tinywave.training.batches import BatchStream
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.training.trainer import NonFiniteLossError, fit
from tinywave.files import atomic_dir

FIGURES: dict[str, int] = {"faults injected": 0, "checkpoints damaged": 0, "resumes to identical weights": 0}


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(run: Path) -> list[str]:
    root = run / "checkpoints"
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".")) if root.is_dir() else []


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(autouse=True)
def report_figures():
    yield
    print(f"\n[reliability] resource faults: {FIGURES}")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("resources")
    ws = lm_workspace(root)
    assert main(train_args(ws, root / "reference", 3)) == 0  # the run that never failed
    ws["reference"] = root / "reference"
    return ws


# ---------------------------------------------------------------- disk full / file too large / permission denied


def enospc_torch_save(monkeypatch, after_bytes: int = 64):
    """torch.save writes ``after_bytes`` of the real file, then fails like a full disk."""
    real = torch.save

    def full_disk(obj, f, *args, **kw):
        import io

        buf = io.BytesIO()
        real(obj, buf, *args, **kw)
        with open(f, "wb") as out:
            out.write(buf.getvalue()[:after_bytes])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)


def interrupted_then_faulty(ws, tmp_path, fault, capsys) -> tuple[Path, str]:
    """Step 1 checkpointed normally; step 2's checkpoint hits ``fault``; returns (run, stderr)."""
    run = tmp_path / "run"
    assert main(train_args(ws, run, 3) + ["train.stop_after_steps=1"]) == 0
    before = tree_digest(list_checkpoints(run)[-1])
    capsys.readouterr()
    with fault():
        rc = main(train_args(ws, run, 3) + ["train.resume=true"])
    err = capsys.readouterr().err
    FIGURES["faults injected"] += 1
    assert rc == 2, err
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001"]
    intact = tree_digest(run / "checkpoints" / "step_00000001") == before
    FIGURES["checkpoints damaged"] += not intact
    assert intact and leftovers(run) == [] and not (run / "model").exists()
    assert "Traceback" not in err and str(run / "checkpoints" / "step_00000002") in err
    # the fault is gone: resume finishes with the weights of the run that never failed
    assert main(train_args(ws, run, 3) + ["train.resume=true"]) == 0
    assert same_weights(run / "model", ws["reference"] / "model")
    FIGURES["resumes to identical weights"] += 1
    return run, err


def test_disk_full_while_writing_a_checkpoint(ws, tmp_path, capsys, monkeypatch):
    import contextlib

    @contextlib.contextmanager
    def fault():
        with monkeypatch.context() as m:
            enospc_torch_save(m)
            yield

    _, err = interrupted_then_faulty(ws, tmp_path, fault, capsys)
    assert "No space left on device" in err and "previous version is intact" in err and "free disk space" in err


def test_file_size_limit_hits_the_native_writers(ws, tmp_path, capsys):
    """A real OS fault (RLIMIT_FSIZE -> EFBIG) inside safetensors' Rust writer, not a Python mock."""
    import contextlib

    @contextlib.contextmanager
    def fault():
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, hard))  # the log fits, model.safetensors does not
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)

    _, err = interrupted_then_faulty(ws, tmp_path, fault, capsys)
    assert "File too large" in err and "ulimit" in err


def test_permission_denied_is_explained(ws, tmp_path, capsys, monkeypatch):
    """Simulated (the tests may run as root, where chmod does not stop writes)."""
    import contextlib
    import tempfile

    real = tempfile.mkdtemp

    def denied(*args, dir=None, **kw):
        if dir is not None and Path(dir).name == "checkpoints":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*args, dir=dir, **kw)

    @contextlib.contextmanager
    def fault():
        with monkeypatch.context() as m:
            m.setattr(tempfile, "mkdtemp", denied)
            yield

    _, err = interrupted_then_faulty(ws, tmp_path, fault, capsys)
    assert "Permission denied" in err and "fix the folder's permissions" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the simulated test covers this case")
def test_read_only_checkpoint_folder(ws, tmp_path, capsys):
    import contextlib

    @contextlib.contextmanager
    def fault():
        folder = tmp_path / "run" / "checkpoints"
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)

    _, err = interrupted_then_faulty(ws, tmp_path, fault, capsys)
    assert "Permission denied" in err


def test_crash_inside_a_save_leaves_the_old_folder(tmp_path):
    """Any exception (even KeyboardInterrupt) while filling the folder: old content stays, no temp left."""
    target = tmp_path / "step_00000007"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("old")
    for exc in (KeyboardInterrupt(), RuntimeError("boom"), OSError(errno.ENOSPC, "No space left on device")):
        with pytest.raises(type(exc) if not isinstance(exc, OSError) else OSError):
            with atomic_dir(target) as tmp:
                (tmp / "a.txt").write_text("half")
                raise exc
        assert (target / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["step_00000007"]
    # a kill between the two renames of a replacement leaves only ".old": the next writer restores it
    os.replace(target, tmp_path / ".step_00000007.old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target):
            raise RuntimeError("crash before the rename")
    assert (target / "a.txt").read_text() == "old"


def test_leftovers_of_a_killed_save_are_ignored_then_removed(ws, tmp_path):
    run = tmp_path / "run"
    assert main(train_args(ws, run, 3) + ["train.stop_after_steps=2"]) == 0
    root = run / "checkpoints"
    half = root / ".step_00000003.x1y2.tmp"  # what kill -9 in the middle of a save leaves
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\0" * 10)
    deleting = root / ".step_00000001.deleting.tmp"  # killed while dropping an old checkpoint
    deleting.mkdir()
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001", "step_00000002"]
    assert main(train_args(ws, run, 3) + ["train.resume=true"]) == 0
    assert leftovers(run) == [] and same_weights(run / "model", ws["reference"] / "model")


# ---------------------------------------------------------------- NaN / inf


class FaultyLoss:
    """A real DistillObjective whose loss is multiplied by ``value`` (nan/inf) on the given calls."""

    def __init__(self, model, faults: dict[int, float]):
        self.inner, self.faults, self.calls = DistillObjective(model, LossWeights(ce=1.0)), faults, 0

    def __call__(self, batch, normalizer):
        self.calls += 1
        losses = self.inner(batch, normalizer)
        if self.calls in self.faults:
            losses["loss"] = losses["loss"] * self.faults[self.calls]
        return losses


def settings(out: Path, **kw) -> RunSettings:
    return RunSettings(**{"out": str(out), "steps": 4, "ckpt_every": 1, "report_to": [], **kw})


def run_fit(out: Path, shards, faults: dict[int, float], **kw):
    model = trainer_llama()
    objective = FaultyLoss(model, faults)
    save = lambda d: torch.save({k: v.clone() for k, v in model.state_dict().items()}, d / "weights.pt")  # noqa: E731
    result = fit(objective, list(model.parameters()), BatchStream(shards, 2, seed=0), OptimSettings(warmup_steps=1), settings(out, **kw), save, config={})
    return model, result


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")], ids=["inf", "-inf", "nan"])
def test_nonfinite_loss_stops_before_any_bad_save(tmp_path, shards, value):
    with pytest.raises(NonFiniteLossError, match=r"the loss is (-?inf|nan) at step 3 .*stopped without saving this state.*train.resume=true"):
        run_fit(tmp_path, shards, {3: value})
    FIGURES["faults injected"] += 1
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000001", "step_00000002"]
    saved = torch.load(list_checkpoints(tmp_path)[-1] / "weights.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in saved.values())


def test_skip_policy_drops_only_the_bad_steps(tmp_path, shards, caplog):
    with caplog.at_level(logging.WARNING):
        model, result = run_fit(tmp_path / "skip", shards, {2: float("nan"), 3: float("inf")}, on_nonfinite="skip", steps=3)
    FIGURES["faults injected"] += 2
    assert result.finished and [r["step"] for r in result.history] == [1]
    assert "skipping this step's update (train.on_nonfinite=skip): the loss is nan at step 2" in caplog.text
    assert "the loss is inf at step 3" in caplog.text
    assert read_state(list_checkpoints(tmp_path / "skip")[-1])["skipped_steps"] == [2, 3]
    # the skipped step left the weights exactly as one clean step made them
    clean, _ = run_fit(tmp_path / "clean", shards, {}, steps=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), clean.parameters()))
    # the same data position is reached as by a run that never skipped: the bad batch is consumed, not retried
    assert read_state(list_checkpoints(tmp_path / "skip")[-1])["position"] == {"epoch": 0, "batch": 3}


def test_skip_policy_gives_up_after_too_many_in_a_row(tmp_path, shards):
    with pytest.raises(NonFiniteLossError, match=r"3 steps in a row had a non-finite loss .*max_skipped_steps=2"):
        run_fit(tmp_path, shards, {i: float("nan") for i in range(1, 10)}, on_nonfinite="skip", max_skipped_steps=2)
    first = torch.load(list_checkpoints(tmp_path)[0] / "weights.pt", weights_only=True)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000001", "step_00000002"]  # skipped: weights untouched
    assert all(torch.equal(v, trainer_llama().state_dict()[k]) for k, v in first.items())
    with pytest.raises(ValueError, match="train.on_nonfinite='ignore' is not known"):
        run_fit(tmp_path, shards, {}, on_nonfinite="ignore")


def test_weights_corrupted_by_an_update_are_never_checkpointed(tmp_path, shards, monkeypatch):
    """A finite loss and gradient but an optimizer step that writes NaN (a faulty kernel, a bit flip)."""
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def faulty_step(self, *args, **kw):
        out = real_step(self, *args, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("nan")
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", faulty_step)
    with pytest.raises(NonFiniteLossError, match=r"1 of \d+ trained tensors hold NaN/inf after step 2; this state was not saved"):
        run_fit(tmp_path, shards, {})
    FIGURES["faults injected"] += 1
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000001"]

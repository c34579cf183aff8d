"""The demo's shipped assets: a pretrained teacher folder and its provenance.

    assets/demo/teacher/          plain HF LlamaForCausalLM folder (bf16 safetensors), its
                                  text+speech tokenizer and speech_tokenizer/
    assets/demo/provenance.json   how it was made (command, commit, steps, seed), the
                                  fingerprints of speech tokenizer / vocabulary / weights,
                                  and the teacher's measured scores

`tinywave demo-assets` writes them; `tinywave demo` checks them with ``check_assets``
before use: a fingerprint computed by today's code from the shipped files must equal
the recorded one, so a tokenizer whose codes the code would now compute differently
(or a swapped weights file) is refused with the command that rebuilds the assets.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tinywave.files import atomic_write_json
from tinywave.text.vocab import load_tokenizer, vocab_fingerprint

PROVENANCE = "provenance.json"
FORMAT = "tinywave-demo-assets/1"
REBUILD = "rebuild them with `tinywave demo-assets --out {out}` (about 1.5 hours on 2 cores), or run the demo from scratch with teacher.source=scratch"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def fingerprints(teacher: Path) -> dict[str, str]:
    """Speech tokenizer codes, vocabulary ids and weights of a teacher folder, as today's code sees them."""
    # lazy: models.hf imports torch and transformers (~4 s), speech.tokenizer scipy (~0.2 s); the demo recipes import this module at their top
    from tinywave.models.hf import SPEECH_TOKENIZER_DIR
    from tinywave.speech.tokenizer import SpeechTokenizer

    weights = sorted(teacher.glob("*.safetensors"))
    if not weights:
        raise ValueError(f"{teacher} has no *.safetensors weights; {REBUILD.format(out=teacher.parent)}")
    h = hashlib.sha256("".join(file_digest(w) for w in weights).encode())
    return {"speech_tokenizer": SpeechTokenizer.load(teacher / SPEECH_TOKENIZER_DIR).fingerprint,
            "vocab": vocab_fingerprint(load_tokenizer(teacher)), "teacher": h.hexdigest()[:16]}


def copy_teacher(src: Path, dst: Path) -> Path:
    """Copy an exported teacher folder into the assets (replacing an older copy)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def git_commit(written: Path | None = None) -> str:
    """HEAD of the code's checkout, with ``+uncommitted-changes`` when tracked files differ from it; files under
    ``written`` (the assets folder being made, which replaces tracked files by design) do not count."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=here)
        root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True,
                                   cwd=here).stdout.strip())
        spec = []
        if written is not None and Path(written).resolve().is_relative_to(root):
            spec = ["--", ".", f":(exclude){Path(written).resolve().relative_to(root).as_posix()}"]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", *spec], capture_output=True, text=True,
                               cwd=root).stdout.strip()
        return out.stdout.strip() + ("+uncommitted-changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def teacher_scores(results: dict[str, Any], name: str = "teacher") -> dict[str, float]:
    """Top-level benchmark scores of ``name`` from an evaluation's results.json (breakdowns left out)."""
    return {bench: round(scores[name], 4) for bench, scores in results.get("results", {}).items()
            if "/" not in bench and name in scores}


def build_provenance(out: Path, command: list[str], config: dict[str, Any], precision: dict[str, Any],
                     results: dict[str, Any], stages: dict[str, Any]) -> dict[str, Any]:
    import torch  # lazy: torch is heavy (~1.4 s); only recording the machine's threads and version needs it

    teacher = out / "teacher"
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"format": FORMAT, "command": command, "commit": git_commit(written=out), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data_seed": config["seed"], "teacher_steps": config["teacher"]["steps"], "config": config,
            "fingerprints": fingerprints(teacher), "scores": teacher_scores(results), "counts": results.get("counts", {}),
            "precision": precision, "stage_seconds": {k: v.get("seconds") for k, v in stages.items()},
            "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                        "torch": torch.__version__},
            "bytes": size}


def write_provenance(out: Path, provenance: dict[str, Any]) -> Path:
    atomic_write_json(out / PROVENANCE, provenance)
    return out / PROVENANCE


def read_provenance(folder: str | Path) -> dict[str, Any]:
    """``folder/provenance.json`` as written (no checks; ``check_assets`` checks)."""
    folder = Path(folder)
    path = folder / PROVENANCE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {folder} holds no demo assets; {REBUILD.format(out=folder)}")
    provenance = json.loads(path.read_text())
    if provenance.get("format") != FORMAT:
        raise ValueError(f"{path}: format {provenance.get('format')!r}, expected {FORMAT!r}; {REBUILD.format(out=folder)}")
    return provenance


def check_assets(folder: str | Path) -> dict[str, Any]:
    """The provenance of ``folder`` after checking its fingerprints against the shipped files (the teacher's, and the
    vocoder's when the assets ship one: tinywave/demo/vocoder_asset.py); else a clear error."""
    from tinywave.demo.vocoder_asset import check_vocoder  # lazy: a cycle (vocoder_asset imports file_digest from here at its top)
    # lazy: torch and transformers (models.hf), scipy (speech.tokenizer): as in fingerprints
    from tinywave.models.hf import SPEECH_TOKENIZER_DIR
    from tinywave.speech.tokenizer import SpeechTokenizer

    folder = Path(folder)
    provenance = read_provenance(folder)
    got = fingerprints(folder / "teacher")
    bad = {k: (v, got.get(k)) for k, v in provenance["fingerprints"].items() if got.get(k) != v}
    if bad:
        what = ", ".join(f"{k}: recorded {want}, computed {have}" for k, (want, have) in bad.items())
        raise ValueError(f"demo assets {folder} do not match this code's tokenizer/weights ({what}); {REBUILD.format(out=folder)}")
    n_units = SpeechTokenizer.load(folder / "teacher" / SPEECH_TOKENIZER_DIR).n_units
    check_vocoder(folder, provenance, got["speech_tokenizer"], n_units)
    return provenance

"""The demo's shipped unit vocoder: ``assets/demo/vocoder/`` and its entry in ``provenance.json``.

    assets/demo/vocoder/              a `tinywave vocoder train` folder, generator in float16:
        config.json, generator.safetensors, speakers.txt
        griffinlim/                   the Griffin-Lim baseline fitted on the same utterances
        eval.json                     held-out MCD (ours vs Griffin-Lim), unit accuracy, WER

`tinywave demo-assets parts=[vocoder]` trains it on the pretraining corpus's units of the
shipped speech tokenizer (the teacher's), measures it and records in ``provenance.json``
under ``vocoder``: the command, commit, steps, the speech tokenizer's fingerprint it was
trained on, the folder's fingerprint, the held-out figures and the real-time factor of one
CPU thread. ``check_vocoder`` refuses a folder whose files or unit table do not match.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.demo.assets import file_digest
from tinywave.files import atomic_write_bytes

VOCODER_DIR = "vocoder"
SHIPPED = ("config.json", "generator.safetensors", "speakers.txt", "eval.json", "griffinlim")
REBUILD = "rebuild it with `tinywave demo-assets --out {out} parts=[vocoder]` (trains the vocoder only)"


def vocoder_fingerprint(folder: Path) -> str:
    """Digest of the files a vocoder folder synthesizes with (generator, config, speakers, Griffin-Lim table)."""
    files = [folder / "config.json", folder / "generator.safetensors", folder / "speakers.txt", *sorted((folder / "griffinlim").glob("*"))]
    missing = [str(f) for f in files[:3] if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"vocoder folder {folder} lacks {', '.join(missing)}")
    return hashlib.sha256("".join(f"{f.name}:{file_digest(f)}" for f in files if f.is_file()).encode()).hexdigest()[:16]


def ship_vocoder(trained: Path, dst: Path) -> Path:
    """Copy the files of a trained vocoder folder that synthesis needs into ``dst``, the generator as float16."""
    # lazy: torch is heavy (~1.4 s); the demo recipes import this module at their top without it
    import torch
    from safetensors.torch import load_file, save

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in SHIPPED:
        src = trained / name
        if name == "generator.safetensors":
            state = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in load_file(str(src)).items()}
            atomic_write_bytes(dst / name, save(state))
        elif src.is_dir():
            shutil.copytree(src, dst / name)
        elif src.is_file():
            shutil.copy2(src, dst / name)
    return dst


def real_time_factor(folder: Path, seconds: float = 10.0, repeats: int = 3) -> float:
    """Wall seconds per second of audio, one CPU thread, for random units (< 1: faster than real time)."""
    import torch  # lazy: torch is heavy (~1.4 s); the demo recipes import this module at their top without it

    from tinywave.vocoder.backends import load_vocoder  # lazy: vocoder.backends imports torch (as above)

    voc = load_vocoder(folder)
    units = {"hubert": np.random.default_rng(0).integers(0, voc.limits["hubert"], int(seconds * voc.unit_rate)).tolist()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        voc.vocode(units)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            voc.vocode(units)
        return (time.perf_counter() - start) / (repeats * seconds)
    finally:
        torch.set_num_threads(threads)


def vocoder_provenance(folder: Path, command: list[str], commit: str, tokenizer_fingerprint: str, settings: dict[str, Any],
                       seconds: float | None) -> dict[str, Any]:
    """The ``vocoder`` entry of provenance.json for a shipped vocoder folder."""
    report = json.loads((folder / "eval.json").read_text(encoding="utf-8"))
    mcd = report.get("mcd_db", {})
    return {"command": command, "commit": commit, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "steps": report.get("steps"), "train_seconds": report.get("train_seconds"), "stage_seconds": seconds,
            "settings": settings, "speech_tokenizer": tokenizer_fingerprint, "fingerprint": vocoder_fingerprint(folder),
            "dtype": "fp16", "heldout_utterances": len(report.get("heldout", [])),
            "mcd_db": mcd, "mcd_below_griffinlim": round(1.0 - mcd["hifigan"] / mcd["griffinlim"], 4) if {"hifigan", "griffinlim"} <= set(mcd) else None,
            "unit_accuracy": report.get("unit_accuracy"), "intelligibility": report.get("intelligibility"),
            "real_time_factor_1_thread": round(real_time_factor(folder), 4)}


def check_vocoder(assets: Path, provenance: dict[str, Any], tokenizer_fingerprint: str, n_units: int) -> Path | None:
    """The shipped vocoder folder after checking it against its provenance and the speech tokenizer; None when
    the assets ship none. Errors name the file and the rebuild command."""
    entry = provenance.get("vocoder")
    if not entry:
        return None
    folder = assets / VOCODER_DIR
    fix = REBUILD.format(out=assets)
    if not folder.is_dir():
        raise FileNotFoundError(f"{assets / 'provenance.json'} records a vocoder but {folder} is missing; {fix}")
    got = vocoder_fingerprint(folder)
    if got != entry["fingerprint"]:
        raise ValueError(f"vocoder {folder}: fingerprint {got}, provenance.json records {entry['fingerprint']} (files changed); {fix}")
    if entry["speech_tokenizer"] != tokenizer_fingerprint:
        raise ValueError(f"vocoder {folder} was trained on speech tokenizer {entry['speech_tokenizer']}, the teacher's is "
                         f"{tokenizer_fingerprint}; {fix}")
    table = int(json.loads((folder / "config.json").read_text(encoding="utf-8"))["num_embeddings"])
    if table != n_units:
        raise ValueError(f"vocoder {folder} has a table of {table} units, the speech tokenizer has {n_units}; {fix}")
    return folder

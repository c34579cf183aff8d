"""Recipe: SUPERB-style probes (KS, SID, PR) on a frozen upstream.

    tinywave sfm probe --upstream runs/sfm-student/student --probes corpus/probes --out runs/probe

The upstream is any HuBERT-family directory (a distilled student, a pretrained teacher,
a Hugging Face HuBERT/WavLM/wav2vec2 checkpoint). Features of every probe split are
extracted once; a learned softmax weighting of all layers feeds a small head per task.
With ``random_init`` (default) an encoder of the same shape with random weights is
probed too, as the floor that shows whether the upstream's layers carry structure.
Writes OUT/probe_results.json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tinywave.config import field
from tinywave.files import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class Config:
    upstream: str = field("", help="encoder directory (HubertModel / WavLMModel / Wav2Vec2Model)")
    probes: str = field("", help="probe sets folder: <task>/<split>.jsonl (tinywave corpus benchmarks: DIR/probes)")
    out: str = field("", help="output directory for probe_results.json")
    tasks: list[str] = field(["ks", "sid", "pr"], help="tasks to run: ks, sid, pr")
    random_init: bool = field(True, help="also probe a randomly initialised encoder of the same shape")
    epochs: int = field(60, help="training epochs per probe head")
    lr_ks: float = field(1e-2, help="learning rate, keyword spotting")
    lr_sid: float = field(1e-2, help="learning rate, speaker identification (SUPERB: 1e-2 or more)")
    lr_pr: float = field(1e-2, help="learning rate, phoneme recognition")
    ctc_hidden: int = field(0, help="PR head: BiLSTM width before CTC (0: linear)")
    seed: int = field(0, help="seed for the heads and the random-init encoder")


def probe_all(encoder, cfg: Config) -> dict:
    from tinywave.sfm.probes import ProbeSettings, probe_task  # lazy: sfm.probes imports torch and transformers (~4 s)

    lrs = {"ks": cfg.lr_ks, "sid": cfg.lr_sid, "pr": cfg.lr_pr}
    results = {}
    for task in cfg.tasks:
        settings = ProbeSettings(epochs=cfg.epochs, lr=lrs.get(task, 1e-2), ctc_hidden=cfg.ctc_hidden, seed=cfg.seed)
        results[task] = probe_task(encoder, cfg.probes, task, settings)
        metric = {k: v for k, v in results[task].items() if k in ("accuracy", "per")}
        log.info("%s: %s", task, metric)
    return results


def run(cfg: Config) -> int:
    import torch  # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)

    from tinywave.sfm.models import load_encoder  # lazy: sfm.models imports torch and transformers (~4 s)

    if not cfg.upstream or not cfg.probes or not cfg.out:
        raise ValueError("--upstream, --probes and --out are required")
    if not Path(cfg.probes).is_dir():
        raise FileNotFoundError(f"--probes {cfg.probes} is not a directory; expected <task>/<split>.jsonl inside")
    encoder = load_encoder(cfg.upstream)
    report = {"upstream": cfg.upstream, "tasks": cfg.tasks, "results": probe_all(encoder, cfg)}
    if cfg.random_init:
        torch.manual_seed(cfg.seed)
        report["random_init"] = probe_all(type(encoder)(encoder.config).eval(), cfg)
    atomic_write_json(Path(cfg.out) / "probe_results.json", report)
    log.info("probe results -> %s", Path(cfg.out) / "probe_results.json")
    return 0

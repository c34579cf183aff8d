"""Run logs: a progress bar with each loss, ``train_log.jsonl``, TensorBoard events, a PNG of the curves,
and optionally Weights & Biases.

On resume the JSONL log is cut back to the checkpoint's step and TensorBoard purges
later events, so a resumed run's curves continue exactly where the checkpoint left them.

Weights & Biases (``train.report_to=[tensorboard,wandb]``; ``pip install 'tinywave[wandb]'``) writes under
``train.out/wandb/``. ``WANDB_MODE=offline`` needs no network or account (``wandb sync
train.out/wandb/offline-run-*`` uploads later); the project is ``$WANDB_PROJECT`` (default
``tinywave``). Each invocation is one W&B run named after ``train.out``, grouped by it, with
``job_type=resume`` when it continued from a checkpoint; its steps are the run's own.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from tinywave.files import JsonlAppender, atomic_write_bytes, atomic_write_text, load_jsonl
from tinywave.progress import bar

LOG_NAME = "train_log.jsonl"
PLOT_NAME = "loss_curves.png"
CLOCK_FIELDS = ("tokens_per_s", "train_seconds", "cpu_seconds")  # record fields measured by the clock: differ between runs
NOT_LOSSES = {"step", "lr", "grad_norm", "tokens", "tokens_per_s", "tokens_seen", "elapsed_s", "depth", "train_seconds", "cpu_seconds"}


def loss_keys(records: list[dict[str, Any]]) -> list[str]:
    """The loss names present in a log, ``loss`` (the weighted total) first."""
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in NOT_LOSSES and k not in keys]
    return sorted(keys, key=lambda k: (k != "loss", k))


WANDB_INSTALL = "pip install 'tinywave[wandb]'"


def require_wandb() -> Any:
    """The wandb module, or a ValueError naming the extra to install."""
    try:
        import wandb  # lazy: wandb is an optional extra (tinywave[wandb]); this checks that it is installed
    except ImportError:
        raise ValueError(f"train.report_to with wandb needs the wandb package, which is not installed: {WANDB_INSTALL} "
                         "(then WANDB_MODE=offline logs without network), or leave wandb out of train.report_to") from None
    return wandb


def start_wandb(out_dir: Path, start_step: int, config: dict[str, Any] | None = None) -> Any:
    """A W&B run writing under ``out_dir/wandb`` (offline with ``WANDB_MODE=offline``)."""
    wandb = require_wandb()
    out_dir.mkdir(parents=True, exist_ok=True)
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "tinywave"), name=out_dir.name, group=out_dir.name,
                      dir=str(out_dir), config=config or {}, job_type="resume" if start_step else "train")


class RunLogger:
    def __init__(self, out_dir: str | Path, start_step: int, total_steps: int, report_to: tuple[str, ...] | list[str] = ("tensorboard",),
                 config: dict[str, Any] | None = None):
        self.out_dir = Path(out_dir)
        # first: a missing package stops here
        self.wandb = start_wandb(self.out_dir, start_step, config) if "wandb" in report_to else None
        self.log_path = self.out_dir / LOG_NAME
        self._truncate_after(start_step)
        self.jsonl = JsonlAppender(self.log_path)
        self.tb = None
        if "tensorboard" in report_to:
            # lazy: loads torch and the tensorboard package, needed only when reporting to tensorboard (this module imports without torch)
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        self.bar = bar(total=total_steps, initial=start_step, desc="train", unit="step")

    def _truncate_after(self, step: int) -> None:
        if not self.log_path.exists():
            return
        kept = [r for r in load_jsonl(self.log_path) if r.get("step", 0) <= step]
        atomic_write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in kept))

    def step(self, record: dict[str, Any], write: bool) -> None:
        """Advance the bar by one step; write the record to JSONL/TensorBoard when ``write``."""
        self.bar.update(1)
        self.bar.set_postfix({k: f"{record[k]:.4g}" for k in loss_keys([record])}, refresh=False)
        if not write:
            return
        self.jsonl.write(record)
        if self.tb is not None:
            for key, value in record.items():
                if key != "step":
                    self.tb.add_scalar(key if key in NOT_LOSSES else f"loss/{key}", value, record["step"])
        if self.wandb is not None:
            self.wandb.log({k if k in NOT_LOSSES else f"loss/{k}": v for k, v in record.items() if k != "step"}, step=record["step"])

    def close(self) -> None:
        self.bar.close()
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def plot_loss_curves(log_path: str | Path, png_path: str | Path, title: str = "") -> Path | None:
    """One panel per loss (each on its own scale) from a JSONL log; returns the PNG path (None if empty)."""
    import matplotlib  # lazy: matplotlib is heavy (~0.5 s with pyplot) and only the loss plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after matplotlib.use("Agg"), so no display backend is picked

    records = load_jsonl(log_path) if Path(log_path).exists() else []
    keys = loss_keys(records)
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r["step"], r[key]) for r in records if key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(png_path, buf.getvalue())
    return Path(png_path)

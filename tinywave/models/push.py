"""Publishing an exported model folder to the Hugging Face Hub (for users with network).

``push_plan`` checks the folder is a complete export (weights, config, tokenizer, model card)
and lists what would be uploaded; ``push`` uploads it with ``huggingface_hub`` (a private
repository by default). A dry run needs no network and no account, and neither do the
checks: bad input fails before anything is sent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tinywave.models.card import read_front_matter
from tinywave.hub import looks_like_hub_id

REQUIRED = ("config.json", "model.safetensors", "README.md")


@dataclass
class PushPlan:
    repo_id: str
    folder: Path
    private: bool
    files: list[tuple[str, int]] = field(default_factory=list)  # (path relative to the folder, bytes)
    license: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    def describe(self) -> str:
        lines = [f"push {self.folder} -> https://huggingface.co/{self.repo_id} ({'private' if self.private else 'public'}, "
                 f"licence {self.license or 'not stated'}): {len(self.files)} files, {self.total_bytes / 1e6:.1f} MB"]
        lines += [f"  {name}  {size / 1e6:.2f} MB" for name, size in self.files]
        return "\n".join(lines)


def card_license(card: Path) -> str:
    """The ``license`` (and ``license_name``) of a model card's YAML front matter."""
    meta = read_front_matter(card)
    return " / ".join(str(meta[k]) for k in ("license", "license_name") if meta.get(k))


def check_repo_id(repo_id: str) -> None:
    if not looks_like_hub_id(repo_id) or "@" in repo_id:
        raise ValueError(f"push={repo_id!r} is not a Hub repository id; write it as owner/name (e.g. my-org/tinywave-student)")


def push_plan(folder: str | Path, repo_id: str, private: bool = True) -> PushPlan:
    """What ``push`` would upload; ValueError naming what is wrong with the id or the folder."""
    folder = Path(folder)
    check_repo_id(repo_id)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder} lacks {', '.join(missing)}: it is not a complete export; write it with `tinywave export --out {folder}`")
    files = sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return PushPlan(repo_id, folder, private, files, card_license(folder / "README.md"))


def push(plan: PushPlan, dry_run: bool = False) -> str:
    """Upload the plan's folder (nothing when ``dry_run``); returns what was (or would be) done."""
    if dry_run:
        return "dry run, nothing sent:\n" + plan.describe()
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ValueError("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it on a machine with network, "
                         "or use push_dry_run=true to see what would be uploaded")
    from huggingface_hub import HfApi  # lazy: only a real upload needs huggingface_hub (dry runs and checks do not)

    api = HfApi()
    try:
        api.create_repo(plan.repo_id, private=plan.private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(plan.folder), repo_id=plan.repo_id, repo_type="model",
                          commit_message="tinywave export")
    except OSError as exc:  # requests' connection errors are OSErrors
        raise ValueError(f"pushing to {plan.repo_id} failed ({exc}); check the network and `huggingface-cli login`, "
                         "or use push_dry_run=true") from exc
    return "pushed:\n" + plan.describe()

"""Model cards: the ``README.md`` that ``tinywave export`` writes beside the weights.

The card starts with YAML front matter (what the Hugging Face Hub reads: ``license``,
``base_model``, ``tags``, ``language``) and then says what the model is, its teacher and
kept layers, the training data and steps of the run, evaluation scores when a
``tinywave eval`` report is given, the intended use, and the licence.

The licence follows the teacher's lineage (:func:`teacher_lineage`):

* ``spiritlm``: a SpiritLM teacher, or a model derived from one. Students inherit the
  FAIR Noncommercial Research License of SpiritLM's weights (``license: other``,
  ``license_name: fair-noncommercial-research-license``). Recognised by the teacher's own
  card, by SpiritLM's vocabulary (32000 text ids followed by ``[Text] [Speech]`` and 501
  ``[Hu]`` units: docs/SPIRITLM.md), by a SentencePiece ``tokenizer.model`` carrying the
  speech tokens, or by a folder named like a SpiritLM release.
* ``demo``: the demo's own teacher (``tinywave demo-assets``: pretrained from scratch on
  the espeak-ng corpus, ``provenance.json`` beside it) and everything made from it; they
  carry the toolkit's licence (Apache-2.0) and say they are toy models.
* ``unknown``: any other teacher; the card says that the teacher's licence applies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tinywave.hub import local_path
from tinywave.text.vocab import layout_from_tokenizer, load_tokenizer, speech_tokens_location

CARD_NAME = "README.md"
SPIRITLM_LICENSE = {"license": "other", "license_name": "fair-noncommercial-research-license",
                    "license_link": "https://github.com/facebookresearch/spiritlm/blob/main/LICENSE"}
SPIRITLM_FOLDERS = ("spirit-lm-base-7b", "spirit-lm-expressive-7b")
DEMO_PROVENANCE = "tinywave-demo-assets"
_FRONT = re.compile(r"^---\n(.*?)\n---\n", re.S)


@dataclass(frozen=True)
class Lineage:
    kind: str  # spiritlm, demo or unknown
    base_model: str  # the original model's name
    why: str  # how it was recognised


@dataclass
class CardFacts:
    """Everything a card says, gathered from the export's checkpoint, run config and teacher."""

    name: str
    lineage: Lineage
    teacher: str = ""  # the teacher folder or hub id of the run ("" if unknown)
    role: str = "student"  # student (distilled), teacher (trained or corrected) or model
    layers: int = 0
    width: int = 0
    vocab: int = 0
    parameters: int = 0
    teacher_layers: int = 0
    kept_layers: list[int] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)  # shards, rows, steps, tokens_seen, loss weights
    scores: dict[str, float] = field(default_factory=dict)  # benchmark -> accuracy in [0, 1]


def read_front_matter(path: str | Path) -> dict[str, Any]:
    """The YAML front matter of a model card ({} without a card or front matter)."""
    path = Path(path)
    if not path.is_file():
        return {}
    match = _FRONT.match(path.read_text(encoding="utf-8", errors="replace"))
    try:
        data = yaml.safe_load(match.group(1)) if match else {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _vocabulary_is_spiritlm(folder: Path) -> str:
    """Why the folder's tokenizer is SpiritLM's ("" if it is not)."""
    try:
        where = speech_tokens_location(folder)
        if where != "tokenizer.json":  # speech tokens inside SentencePiece's files: the release's own layout
            return f"SpiritLM's tokenizer files (the speech tokens are defined in {where})"
        layout = layout_from_tokenizer(load_tokenizer(folder))
    except (OSError, ValueError):
        return ""
    if layout.text_size == 32000 and layout.n_hu == 501:
        return "SpiritLM's vocabulary (32000 text ids, then [Text] [Speech] and 501 [Hu] units)"
    return ""


def teacher_lineage(teacher: str | Path) -> Lineage:
    """Where a teacher comes from: its card, a demo provenance.json beside it, SpiritLM's vocabulary or name."""
    folder = local_path(teacher) if str(teacher) else Path()
    front = read_front_matter(folder / CARD_NAME) if str(teacher) else {}
    tags = set(front.get("tags") or [])
    if front.get("license_name") == SPIRITLM_LICENSE["license_name"] or "spiritlm-derived" in tags:
        return Lineage("spiritlm", str(front.get("base_model") or "SpiritLM"), f"the card of {teacher}")
    if "tinywave-demo" in tags:
        return Lineage("demo", str(front.get("base_model") or "TinyWave demo teacher"), f"the card of {teacher}")
    provenance = folder.parent / "provenance.json"
    if str(teacher) and provenance.is_file() and str(_json(provenance).get("format", "")).startswith(DEMO_PROVENANCE):
        return Lineage("demo", "TinyWave demo teacher", f"{provenance} (made by `tinywave demo-assets`)")
    names = {folder.name, str(teacher).rstrip("/").split("/")[-1]}
    if names & set(SPIRITLM_FOLDERS):
        return Lineage("spiritlm", (names & set(SPIRITLM_FOLDERS)).pop(), "the folder is named like a SpiritLM release")
    why = _vocabulary_is_spiritlm(folder) if str(teacher) and folder.is_dir() else ""
    if why:
        return Lineage("spiritlm", "SpiritLM", why)
    return Lineage("unknown", str(teacher) or "unknown", "no card, demo provenance or SpiritLM vocabulary found")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- facts of an export ---------------------------------------------------------------------


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_role(config: dict[str, Any]) -> tuple[str, str]:
    """(role, teacher or base folder) from a checkpoint's config.yaml (distill or train)."""
    teacher = config.get("teacher")
    if isinstance(teacher, dict):  # tinywave distill
        return "student", str(teacher.get("dir") or "")
    if config.get("mode") == "correct":  # tinywave train mode=correct
        return "corrected teacher", str(teacher or "")
    if config.get("mode") == "pretrain":
        return "pretrained model", ""
    return "model", ""


def _kept_layers(config: dict[str, Any], n_layers: int, teacher_layers: int) -> list[int]:
    from tinywave.models.student import uniform_layer_map  # lazy: models.student imports torch; card and push stay torch-free

    keep = (config.get("student") or {}).get("keep_layers") or []
    if keep or not teacher_layers or n_layers > teacher_layers:
        return list(keep)
    return uniform_layer_map(teacher_layers, n_layers)


def _training(config: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """Data, steps and loss weights of the run that made the checkpoint."""
    data = config.get("data") or {}
    facts: dict[str, Any] = {"steps": state.get("step"), "tokens_seen": state.get("tokens_seen"),
                             "planned_steps": (config.get("train") or {}).get("steps")}
    if data.get("shards"):
        index = _json(Path(data["shards"]) / "index.json")
        facts.update(shards=data["shards"], rows=index.get("count"), seq_len=index.get("seq_len"), shard_tokens=index.get("tokens"))
    if config.get("loss"):
        facts["loss"] = {k: v for k, v in config["loss"].items() if k.endswith("_weight") or k in ("temperature", "hidden_kind")}
    if (config.get("growth") or {}).get("op", "none") != "none":
        facts["growth"] = config["growth"]["op"]
    return {k: v for k, v in facts.items() if v not in (None, "", {})}


def gather_facts(source: Path, model: Any, name: str, scores: dict[str, float] | None = None) -> CardFacts:
    """What the card of a model exported from ``source`` (a checkpoint or model folder) says."""
    config, state = _yaml(source / "config.yaml"), _json(source / "state.json")
    role, teacher = _run_role(config)
    lineage = teacher_lineage(teacher) if teacher else teacher_lineage(source)  # a model folder: its own card
    if role == "pretrained model":
        lineage = Lineage("scratch", "", "pretrained from scratch by `tinywave train mode=pretrain`")
    cfg = model.config
    teacher_layers = _json(_local(teacher) / "config.json").get("num_hidden_layers", 0) if teacher else 0
    return CardFacts(
        name=name, lineage=lineage, teacher=teacher, role=role, layers=cfg.num_hidden_layers, width=cfg.hidden_size,
        vocab=cfg.vocab_size, parameters=sum(p.numel() for p in model.parameters()), teacher_layers=teacher_layers,
        kept_layers=_kept_layers(config, cfg.num_hidden_layers, teacher_layers) if role == "student" else [],
        training=_training(config, state), scores=dict(scores or {}),
    )


def _local(name: str) -> Path:
    return local_path(name)


def eval_scores(report: str | Path, model: str) -> dict[str, float]:
    """Headline accuracies of ``model`` in a ``tinywave eval`` results.json (keys without ``/``)."""
    path = Path(report)
    if path.is_dir():
        path = path / "results.json"
    data = _json(path)
    if not data:
        raise FileNotFoundError(f"evaluation report {path} not found or not JSON; pass the results.json written by `tinywave eval`")
    results = data.get("results") or {}
    names = sorted({m for row in results.values() for m in row})
    if model not in names:
        raise ValueError(f"{path} has no scores for eval_model={model!r}; it scores {names}: set eval_model to one of them")
    return {bench: row[model] for bench, row in results.items() if "/" not in bench and model in row}


# --- rendering ---------------------------------------------------------------------------------

WHAT = {
    "spiritlm": "an interleaved speech-text language model derived from {base}: a Llama-architecture decoder "
                "over text tokens and SpiritLM's speech tokens ([Hu] phonetic units; [Pi] pitch and [St] style when the "
                "vocabulary has them)",
    "demo": "a toy model of the TinyWave demo: a small interleaved speech-text language model whose whole lineage was "
            "trained from scratch on a synthetic English corpus spoken by espeak-ng (no human recordings, no external "
            "weights). It shows the pipeline working end to end; it is not a useful speech model",
    "scratch": "an interleaved speech-text language model pretrained from scratch with TinyWave",
    "unknown": "an interleaved speech-text language model made with TinyWave from {base}",
}
LICENCE_NOTE = {
    "spiritlm": "This model is derived from SpiritLM's weights and inherits their licence, the **FAIR Noncommercial "
                "Research License** ({link}): research use only, **no commercial use**; redistribute it only under the "
                "same licence, with this notice.",
    "demo": "Made only from data and weights the TinyWave demo generated itself; released under the toolkit's licence, "
            "Apache-2.0.",
    "scratch": "Trained from scratch: its terms follow from the licences of the training data. Set the licence here "
               "before sharing it.",
    "unknown": "Derived from the teacher {base}: the teacher's licence applies to this model. Check it before use or "
               "redistribution.",
}
USE = {
    "demo": "Trying TinyWave: generation, evaluation and the listening app on the demo's own data. Not for any real use.",
}
DEFAULT_USE = ("Research on compact speech language models: likelihood benchmarks (spoken/topic StoryCloze, SALMon, "
               "sWUGGY, sBLIMP), speech-only and mixed speech-text continuation, latency studies. Not instruction-tuned, "
               "not evaluated for safety or fairness; generated speech can be unintelligible or wrong.")


def front_matter(facts: CardFacts) -> dict[str, Any]:
    kind = facts.lineage.kind
    licence = SPIRITLM_LICENSE if kind == "spiritlm" else {"license": "apache-2.0"} if kind == "demo" else {"license": "other"}
    tags = ["tinywave", "speech-language-model", "spoken-language-modeling"]
    tags += ["knowledge-distillation"] if facts.role == "student" else []
    tags += {"spiritlm": ["spiritlm-derived"], "demo": ["tinywave-demo"]}.get(kind, [])
    base = facts.lineage.base_model if kind in ("spiritlm", "demo") else facts.teacher
    return {**licence, **({"base_model": base} if base else {}), "library_name": "transformers",
            "pipeline_tag": "text-generation", "tags": tags, "language": ["en"]}


def _architecture(f: CardFacts) -> list[str]:
    lines = [f"- {f.layers} decoder layers, width {f.width}, vocabulary {f.vocab}, {f.parameters / 1e6:.2f} M parameters "
             "(`LlamaForCausalLM`)"]
    if f.role == "student":
        lines.append(f"- teacher: `{f.teacher}`" + (f" ({f.teacher_layers} layers)" if f.teacher_layers else ""))
        if f.kept_layers:
            pairs = ", ".join(f"{i} <- {t}" for i, t in enumerate(f.kept_layers))
            lines.append(f"- kept teacher layers (student <- teacher): {pairs}")
    elif f.teacher:
        lines.append(f"- fine-tuned from `{f.teacher}`")
    return lines


def _training_lines(t: dict[str, Any]) -> list[str]:
    if not t:
        return ["- not recorded (exported from a model folder, not from a training checkpoint)"]
    lines = []
    if "shards" in t:
        size = f": {t['rows']} rows of {t['seq_len']} tokens" if t.get("rows") else ""
        lines.append(f"- data: token shards `{t['shards']}`{size}")
    if "steps" in t:
        planned = f" of {t['planned_steps']} planned" if t.get("planned_steps") else ""
        seen = f", {t['tokens_seen']:,} target tokens seen" if t.get("tokens_seen") else ""
        lines.append(f"- optimizer steps: {t['steps']}{planned}{seen}")
    if "loss" in t:
        lines.append("- loss: " + ", ".join(f"{k} {v}" for k, v in t["loss"].items()))
    if "growth" in t:
        lines.append(f"- depth grown during training (growth.op={t['growth']})")
    return lines


def _scores(scores: dict[str, float]) -> list[str]:
    if not scores:
        return ["Not given at export (`tinywave export ... eval=RUN/results.json` adds the `tinywave eval` scores)."]
    rows = ["| benchmark | accuracy |", "|---|---|"] + [f"| {k} | {100 * v:.2f} |" for k, v in sorted(scores.items())]
    return rows


def render_card(f: CardFacts) -> str:
    kind, base = f.lineage.kind, f.lineage.base_model or f.teacher
    what = WHAT[kind].format(base=base if kind != "spiritlm" or base == "SpiritLM" else f"SpiritLM ({base})")
    parts = [
        "---\n" + yaml.safe_dump(front_matter(f), sort_keys=False) + "---",
        f"# {f.name}",
        f"A TinyWave {f.role}. It is {what}. It loads with `LlamaForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` "
        "alone; `speech_tokenizer/` turns audio into its speech tokens.",
        "## Model\n\n" + "\n".join(_architecture(f)),
        "## Training\n\n" + "\n".join(_training_lines(f.training)),
        "## Evaluation\n\n" + "\n".join(_scores(f.scores)),
        "## Intended use\n\n" + USE.get(kind, DEFAULT_USE),
        "## Licence\n\n" + LICENCE_NOTE[kind].format(link=SPIRITLM_LICENSE["license_link"], base=base)
        + f"\n\n(Lineage recognised from {f.lineage.why}.)",
        "## Use\n\n```python\nfrom transformers import AutoTokenizer, LlamaForCausalLM\n\n"
        f"model = LlamaForCausalLM.from_pretrained(\"{f.name}\")\ntokenizer = AutoTokenizer.from_pretrained(\"{f.name}\")\n```\n\n"
        f"or `tinywave generate --model {f.name} --input text:\"once upon a time\" --modality speech --out gen/`.",
    ]
    return "\n\n".join(parts) + "\n"


def write_card(folder: str | Path, facts: CardFacts) -> Path:
    path = Path(folder) / CARD_NAME
    path.write_text(render_card(facts), encoding="utf-8")
    return path

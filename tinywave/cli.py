"""The one ``tinywave`` command: subcommands map to recipe modules.

Each recipe module (``tinywave/recipes/<job>.py``) exposes ``Config`` (a dataclass)
and ``run(cfg) -> int``. The command line of every subcommand is the same:

    tinywave <subcommand> [--config FILE.yaml] [--key VALUE | --flag]... [dotted.key=VALUE]...

``--key VALUE`` is shorthand for ``key=VALUE`` (dashes become underscores); a bare
``--flag`` sets a boolean to true; repeating ``--key`` on a list field appends.
``--print-config`` prints the resolved configuration as YAML and exits (it can be saved
and passed back with ``--config``); ``tinywave --version`` prints the version;
``tinywave <group> --help`` (``sfm``, ``corpus``, ...) lists the group's subcommands.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys
import typing
from typing import Any

import yaml

from tinywave.config import ConfigError, check_renamed, describe, field_type, load_config, renamed_keys, to_dict

# subcommand -> (recipe module, one-line help). Dispatch by dict, imported lazily so
# `tinywave --help` stays fast and a stage never imports another stage's code.
COMMANDS: dict[str, tuple[str, str]] = {
    # speech tokenizer and corpus
    "vocab": ("tinywave.recipes.vocab", "build a text+speech tokenizer directory (BPE or Llama SentencePiece)"),
    "units train": ("tinywave.recipes.units_train", "train the built-in unit, pitch and style quantizers on a manifest"),
    "tokenize": ("tinywave.recipes.tokenize", "manifest of audio -> token corpus (SpiritLM speech strings)"),
    "corpus synth": ("tinywave.recipes.corpus_synth", "synthesize the embedded spoken story corpus with espeak-ng"),
    "corpus benchmarks": ("tinywave.recipes.corpus_benchmarks", "build sSC/tSC/SALMon/sLM21 benchmark folders and probe sets"),
    "manifest align": ("tinywave.recipes.manifest_align", "word timings by CTC forced alignment with a local CTC model (wav2vec 2.0 style)"),
    "manifest import": ("tinywave.recipes.manifest_import", "LibriSpeech / fairseq tsv / HF datasets (+ MFA TextGrid or CTM words) -> manifest"),
    # language-model distillation
    "data build": ("tinywave.recipes.data_build", "token corpus -> interleaved, packed memory-mapped training shards"),
    "train": ("tinywave.recipes.train", "pretrain a teacher from a config, or correct an existing one (full or LoRA)"),
    "teacher-cache": ("tinywave.recipes.teacher_cache", "run the teacher once over shards: top-k logits, mapped layers' hidden states, queries and keys"),
    "distill": ("tinywave.recipes.distill", "layer-aligned distillation of a teacher into a student"),
    "export": ("tinywave.recipes.export", "write a plain Hugging Face directory from a checkpoint"),
    "eval": ("tinywave.recipes.evaluate", "score models on sSC/tSC/SALMon/sWUGGY/sBLIMP and perplexity"),
    "generate": ("tinywave.recipes.generate", "text/speech -> speech/text continuation, wav + transcript"),
    "vocoder train": ("tinywave.recipes.vocoder_train", "train the unit HiFi-GAN vocoder on a corpus"),
    "bench latency": ("tinywave.recipes.bench_latency", "time to first token, decode tokens/s, real-time factor"),
    "demo": ("tinywave.recipes.demo", "the whole pipeline on the embedded default, with a report"),
    "app": ("tinywave.recipes.app", "local web app: teacher and student side by side, speech streamed (default: the demo's)"),
    "demo-assets": ("tinywave.recipes.demo_assets", "pretrain the demo teacher and its tokenizers once, with provenance, to ship"),
    # speech foundation models
    "sfm pretrain": ("tinywave.recipes.sfm_pretrain", "train a small HuBERT-style teacher by masked unit prediction"),
    "sfm distill": ("tinywave.recipes.sfm_distill", "distil a HuBERT-like teacher, optionally growing depth by stacking"),
    "sfm probe": ("tinywave.recipes.sfm_probe", "SUPERB-style probes (KS, SID, PR) on a frozen upstream"),
    # operations
    "doctor": ("tinywave.recipes.doctor", "check the environment and say what to fix"),
}


def _find_command(argv: list[str]) -> tuple[str | None, list[str]]:
    for n in (2, 1):
        name = " ".join(argv[:n])
        if len(argv) >= n and name in COMMANDS:
            return name, argv[n:]
    return None, argv


def _usage(group: str = "") -> str:
    """The subcommands (of one group, e.g. ``sfm``, when given)."""
    names = sorted(k for k in COMMANDS if not group or k.split(" ", 1)[0] == group)
    width = max(len(k) for k in names)
    lines = [f"usage: tinywave {group + ' ' if group else ''}<subcommand> [--config FILE] [--key VALUE] [key=value ...] [--print-config]",
             "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {COMMANDS[name][1]}" for name in names]
    lines += ["", "`tinywave <subcommand> --help` lists every key with its default; `tinywave --version` prints the version."]
    return "\n".join(lines)


def _groups() -> set[str]:
    return {k.split(" ", 1)[0] for k in COMMANDS if " " in k}


def _version() -> str:
    # lazy: importlib.metadata takes ~20 ms to import, half again the CLI's own import; only --version needs it
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tinywave")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed: pip install -e .)"


def _print_config(cfg: Any) -> None:
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")


def _is_bool(tp: Any) -> bool:
    return tp is bool or (typing.get_origin(tp) is typing.Union and bool in typing.get_args(tp))


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) is list


def split_args(cfg_cls: type, args: list[str]) -> tuple[str | None, list[str]]:
    """Turn ``--config F --key V --flag k=v`` into (yaml path, ['key=V', 'flag=true', 'k=v'])."""
    yaml_path, overrides, lists = None, [], {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--config":
            if i + 1 >= len(args):
                raise ConfigError("--config needs a YAML file path")
            yaml_path, i = args[i + 1], i + 2
            continue
        if arg.startswith("--"):
            key = arg[2:].replace("-", "_")
            if "=" in key:
                key, value = key.split("=", 1)
                i += 1
            else:
                tp = field_type(cfg_cls, key)
                if tp is None:
                    check_renamed(cfg_cls, key)  # an old key: name its new one
                    overrides.append(f"{key}=")  # let load_config name the unknown key
                    i += 1
                    continue
                if _is_bool(tp) and (i + 1 >= len(args) or args[i + 1].startswith("--") or "=" in args[i + 1]):
                    value, i = "true", i + 1
                else:
                    if i + 1 >= len(args):
                        raise ConfigError(f"--{key.replace('_', '-')} needs a value")
                    value, i = args[i + 1], i + 2
            if _is_list(field_type(cfg_cls, key)):
                lists.setdefault(key, []).append(value)
            else:
                overrides.append(f"{key}={value}")
            continue
        if "=" not in arg:
            raise ConfigError(f"unexpected argument '{arg}': write key=value or --key value")
        overrides.append(arg)
        i += 1
    for key, values in lists.items():
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        overrides.append(f"{key}=[{quoted}]")
    return yaml_path, overrides


def _print_help(name: str, cfg_cls: type, help_: str) -> None:
    print(f"tinywave {name}: {help_}\n")
    print(f"usage: tinywave {name} [--config FILE.yaml] [--key VALUE] [key=value ...]\n")
    for key, type_name, default, text in describe(cfg_cls):
        print(f"  {key} ({type_name}, default {default!r})" + (f": {text}" if text else ""))
    renamed = renamed_keys(cfg_cls)
    if renamed:
        print("\nrenamed keys (the old names are refused):")
        for old, new in renamed.items():
            print(f"  {old} -> {new}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("TINYWAVE_LOG", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("--version", "-V"):
        print(f"tinywave {_version()}")
        return 0
    if argv[0] in _groups() and (len(argv) == 1 or argv[1] in ("-h", "--help")):
        print(_usage(argv[0]))
        return 0
    name, rest = _find_command(argv)
    if name is None:
        close = difflib.get_close_matches(" ".join(argv[:2]), list(COMMANDS), n=1, cutoff=0.4)
        hint = f" Did you mean 'tinywave {close[0]}'?" if close else ""
        print(f"error: unknown subcommand '{' '.join(argv[:2])}'.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"error: 'tinywave {name}' is not available in this build yet", file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in rest):
        _print_help(name, module.Config, help_)
        return 0
    try:
        printing = "--print-config" in rest
        yaml_path, overrides = split_args(module.Config, [a for a in rest if a != "--print-config"])
        cfg = load_config(module.Config, yaml_path, overrides)
        if printing:
            _print_config(cfg)
            return 0
        return int(module.run(cfg) or 0)
    except (ConfigError, ValueError, FileNotFoundError, PermissionError, OSError) as exc:
        if os.environ.get("TINYWAVE_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Teacher vs student decoding latency on CPU, measured side by side in one run (run by hand).

    .venv/bin/python benchmarks/latency.py                      # ~3-6 min on 2 idle cores
    .venv/bin/python benchmarks/latency.py --quick              # smaller widths, fewer settings
    .venv/bin/python benchmarks/latency.py --hidden 1024 --teacher-layers 6 --student-layers 2 --threads 2

Builds a teacher (LlamaForCausalLM, ``--teacher-layers``) and a student that keeps
``--student-layers`` of its layers at the same width (copied weights, as distillation
initializes it), with the SpiritLM-style speech vocabulary over a small BPE text
tokenizer, and optionally a small unit HiFi-GAN in ``<model>/vocoder`` so the real-time
factor includes vocoding. Then runs ``tinywave bench latency`` on both: time to first
token, decode tokens/s, RTF, at batch 1 and 8, in fp32 / bf16 / dynamic int8, plus the
quality of bf16 and int8 against fp32. Target: student/teacher decode tokens/s >=
0.9 x (teacher layers / student layers) at batch 1. Nothing is asserted. Writes the
figures, the full report of ``tinywave bench latency`` and the conditions to
``benchmarks/results/latency.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402

TEXTS = ["the cat sat on the mat", "a dog ran to the park and the cat followed it home", "tom found a red ball"] * 20


def build(out: Path, hidden: int, teacher_layers: int, student_layers: int, vocoder: bool) -> tuple[Path, Path]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tinywave.text.vocab import train_bpe_tokenizer
    from tinywave.vocoder.backends import save_hifigan
    from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

    tok, layout = train_bpe_tokenizer(TEXTS, vocab_size=1000, n_hu=500)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=int(hidden * 8 / 3) // 64 * 64,
                      num_hidden_layers=teacher_layers, num_attention_heads=max(1, hidden // 128),
                      max_position_embeddings=2048, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    teacher = LlamaForCausalLM(cfg).eval()
    keep = sorted({round(i * (teacher_layers - 1) / max(student_layers - 1, 1)) for i in range(student_layers)})
    student = copy.deepcopy(teacher)
    student.model.layers = torch.nn.ModuleList(student.model.layers[i] for i in keep)
    for i, layer in enumerate(student.model.layers):
        layer.self_attn.layer_idx = i
    student.config.num_hidden_layers = len(keep)
    paths = []
    for name, model in (("teacher", teacher), ("student", student)):
        path = out / name
        model.save_pretrained(str(path))
        tok.save_pretrained(str(path))
        if vocoder:
            # the shape `tinywave vocoder train` trains by default (iSTFT head, 512 channels)
            voc_cfg = small_config(500, 640, channels=512, embedding_dim=64, kernels=(3,), istft_hop=160)
            save_hifigan(path / "vocoder", UnitHiFiGAN(voc_cfg), [])
        paths.append(path)
    print(f"teacher: {teacher_layers} layers, student: layers {keep} of it; width {hidden}, vocabulary {len(tok)}")
    return paths[0], paths[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--teacher-layers", type=int, default=6)
    ap.add_argument("--student-layers", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-vocoder", action="store_true", help="RTF of the LM alone (25 [Hu] tokens = 1 s)")
    ap.add_argument("--precision", action="append", choices=["fp32", "bf16", "int8"], help="repeatable (default: all three)")
    ap.add_argument("--quick", action="store_true", help="width 512, fp32 and int8 only, 24 tokens")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/latency.json)")
    args = ap.parse_args()
    if args.quick:
        args.hidden, args.new_tokens, args.repeats = 512, 24, 2
    from tinywave.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        teacher, student = build(Path(tmp), args.hidden, args.teacher_layers, args.student_layers, not args.no_vocoder)
        argv = ["bench", "latency", "--model", f"teacher={teacher}", "--model", f"student={student}",
                f"prompt_tokens={args.prompt_tokens}", f"new_tokens={args.new_tokens}", f"repeats={args.repeats}"]
        precisions = args.precision or (["fp32", "int8"] if args.quick else [])
        argv += [a for p in precisions for a in ("--precision", p)]
        argv += [f"threads={args.threads}"] if args.threads else []
        argv += ["--out", str(Path(tmp) / "report.json")]
        argv += ["vocoder=none"] if args.no_vocoder else []
        code = cli(argv)
        if code == 0:
            write(args, json.loads((Path(tmp) / "report.json").read_text()))
        sys.exit(code)


def write(args: argparse.Namespace, report: dict) -> None:
    """The ratios against their targets and every row's decode speed and RTF, with the conditions."""
    from conditions import conditions
    from record import figure, write_results

    figures = [figure(f"student / teacher decode tokens/s, {r['precision']}, batch {r['batch']}", r["decode_ratio"], "x",
                      (">=", r["target"]) if r["batch"] == 1 else None, "target 0.9 x layer ratio at batch 1")
               for r in report.get("ratios", [])]
    for r in report["results"]:
        name = f"{r['model']} ({r['layers']} layers), {r['precision']}, batch {r['batch']}"
        figures += [figure(f"{name}: decode tokens/s per sequence", r["decode_tok_s"], "tok/s"),
                    figure(f"{name}: time to first token", r["ttft_s"], "s"),
                    figure(f"{name}: real-time factor", r["rtf"], "x real time")]
    precisions = ", ".join(sorted({r["precision"] for r in report["results"]}))
    write_results("latency", figures, conditions(f"{precisions} (one row each)", report["threads"]), args.out,
                  quick=args.quick, shape={"hidden": args.hidden, "teacher_layers": args.teacher_layers,
                                           "student_layers": args.student_layers, "vocoder": not args.no_vocoder}, report=report)


if __name__ == "__main__":
    main()

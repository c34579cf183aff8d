"""Latency measurement: time to first token, decode tokens/s and real-time factor.

Every measurement decodes forced speech (EOS banned, so exactly ``new_tokens`` come out)
from a fixed speech prompt through our decoding loop, the path ``tinywave generate`` uses.
Precisions: ``fp32``, ``bf16`` and ``int8`` (fp32 with dynamic int8 linears); each
variant's quality is compared with fp32 on the same tokens (teacher-forced top-1 agreement
and mean KL of the next-token distributions).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from tinywave.generate.decode import decode_steps
from tinywave.generate.deploy import prepare
from tinywave.generate.forcing import ModalityLogitsProcessor
from tinywave.precision_names import short_or_same
from tinywave.text.vocab import VocabLayout

# precision -> variant of an fp32 model (fp32 is the model itself; the others are copies)
PRECISIONS: dict[str, Callable[[torch.nn.Module], torch.nn.Module]] = {
    "fp32": lambda m: m,
    "bf16": lambda m: prepare(copy.deepcopy(m), "bf16"),
    "int8": lambda m: prepare(copy.deepcopy(m), "fp32", int8=True),
    "int8-torchao": lambda m: prepare(copy.deepcopy(m), "fp32", int8=True, int8_backend="torchao"),
}


@dataclass
class Latency:
    model: str
    precision: str
    batch: int
    layers: int
    prompt_tokens: int
    new_tokens: int
    ttft_s: float  # prompt prefill + first token, median over repeats
    decode_tok_s: float  # tokens per second per sequence after the first token
    batch_tok_s: float  # decode_tok_s x batch
    rtf: float  # seconds of speech produced per wall second (all rows; units at unit_rate, plus vocoding if given)
    top1_agree: float = 1.0  # vs fp32, teacher-forced
    kl: float = 0.0  # mean KL(fp32 || this) per position

    def to_json(self) -> dict[str, float | int | str]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def speech_prompt(layout: VocabLayout, length: int, bos: int, seed: int = 0) -> list[int]:
    """BOS, [Speech], then pseudo-random [Hu] ids: a fixed, realistic-length speech prompt."""
    g = torch.Generator().manual_seed(seed)
    units = torch.randint(0, layout.n_hu, (max(length - 2, 1),), generator=g)
    return [bos, layout.speech_id] + (units + layout.hu_offset).tolist()


def time_decode(model: torch.nn.Module, rows: list[list[int]], new_tokens: int, processor: ModalityLogitsProcessor,
                pad_id: int) -> tuple[float, float, list[list[int]]]:
    """(seconds to the first token, seconds for the rest, tokens per row) for one run."""
    t0 = time.perf_counter()
    first, out = None, [[] for _ in rows]
    for step in decode_steps(model, rows, new_tokens, pad_id=pad_id, eos_id=None, processors=[processor]):
        first = first if first is not None else time.perf_counter() - t0
        for i, tok in enumerate(step.tokens.tolist()):
            out[i].append(tok)
    return float(first), time.perf_counter() - t0 - float(first), out


@torch.inference_mode()
def quality_vs_reference(reference: torch.nn.Module, model: torch.nn.Module, ids: list[int]) -> tuple[float, float]:
    """(top-1 agreement, mean KL(reference || model)) of next-token distributions over ``ids``."""
    x = torch.tensor([ids])
    p = reference(input_ids=x).logits.float().log_softmax(-1)[0]  # (T, V)
    q = model(input_ids=x).logits.float().log_softmax(-1)[0]
    agree = (p.argmax(-1) == q.argmax(-1)).float().mean().item()
    kl = (p.exp() * (p - q)).sum(-1).mean().item()
    return agree, kl


@dataclass
class Subject:
    """One model to time, with what its prompts and outputs need."""

    name: str
    model: torch.nn.Module  # fp32
    layout: VocabLayout
    bos: int
    pad_id: int
    vocode: Callable[[list[int]], tuple[float, float]] | None = None  # tokens -> (audio s, wall s)
    n_units: int | None = None  # [Hu] ids the vocoder knows
    processor: ModalityLogitsProcessor = field(init=False)  # forced speech, EOS banned: exactly new_tokens per row

    def __post_init__(self) -> None:
        self.model = prepare(self.model, "fp32")
        self.processor = ModalityLogitsProcessor.for_modality(self.layout, "speech", int(self.model.config.vocab_size),
                                                              allow_eos=False, streams=("hubert",), n_units=self.n_units)


def _result(s: Subject, precision: str, batch: int, prompt: list[int], new_tokens: int, runs: list[tuple[float, float, list[list[int]]]],
            *, unit_rate: float, quality: tuple[float, float]) -> Latency:
    ttft = statistics.median(r[0] for r in runs)
    rest = statistics.median(r[1] for r in runs)
    speech_s, vocoder_s = batch * new_tokens / unit_rate, 0.0
    if s.vocode is not None:
        timed = [s.vocode(toks) for toks in runs[0][2]]
        speech_s, vocoder_s = sum(t[0] for t in timed), sum(t[1] for t in timed)
    per_seq = (new_tokens - 1) / rest if rest > 0 else float("inf")
    return Latency(s.name, precision, batch, int(s.model.config.num_hidden_layers), len(prompt), new_tokens, ttft, per_seq,
                   per_seq * batch, speech_s / (ttft + rest + vocoder_s), *quality)


def measure(subjects: Sequence[Subject], precisions: Sequence[str], batches: Sequence[int], prompt_tokens: int,
            new_tokens: int, repeats: int, *, unit_rate: float = 25.0) -> list[Latency]:
    """Every subject x precision x batch. Within a setting the subjects' timed runs alternate
    (A, B, A, B, ...) and medians are taken, so a load change on a shared machine hits all alike.

    RTF counts the real audio duration and the vocoding time when a subject has ``vocode``;
    otherwise one [Hu] token = 1 / ``unit_rate`` seconds of speech.
    """
    precisions = [short_or_same(p) for p in precisions]  # bfloat16 -> bf16
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision(s) {unknown}; choose from {sorted(PRECISIONS)}")
    prompts = {s.name: speech_prompt(s.layout, prompt_tokens, s.bos) for s in subjects}
    # fp32 greedy continuations: the tokens bf16 / int8 quality is judged on
    refs = {s.name: time_decode(s.model, [prompts[s.name]], min(new_tokens, 32), s.processor, s.pad_id)[2][0] for s in subjects}
    results = []
    for precision in precisions:
        variants = {s.name: PRECISIONS[precision](s.model) for s in subjects}
        quality = {s.name: quality_vs_reference(s.model, variants[s.name], prompts[s.name] + refs[s.name]) for s in subjects}
        for batch in batches:
            runs: dict[str, list] = {s.name: [] for s in subjects}
            for s in subjects:  # warm-up
                time_decode(variants[s.name], [prompts[s.name]] * batch, min(new_tokens, 8), s.processor, s.pad_id)
            for _ in range(repeats):
                for s in subjects:
                    runs[s.name].append(time_decode(variants[s.name], [prompts[s.name]] * batch, new_tokens, s.processor, s.pad_id))
            results += [_result(s, precision, batch, prompts[s.name], new_tokens, runs[s.name], unit_rate=unit_rate, quality=quality[s.name])
                        for s in subjects]
        del variants
    return results


def format_table(results: Sequence[Latency]) -> str:
    head = f"{'model':<10} {'prec':<5} {'batch':>5} {'layers':>6} {'TTFT ms':>8} {'tok/s/seq':>10} {'tok/s':>9} {'RTF':>7} {'top1':>6} {'KL':>8}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.model:<10} {r.precision:<5} {r.batch:>5} {r.layers:>6} {1000 * r.ttft_s:>8.1f} {r.decode_tok_s:>10.1f} "
                     f"{r.batch_tok_s:>9.1f} {r.rtf:>7.1f} {r.top1_agree:>6.3f} {r.kl:>8.5f}")
    return "\n".join(lines)


def ratios(results: Sequence[Latency], fast: str, slow: str) -> list[dict[str, float | int | str]]:
    """Per (precision, batch): decode-speed ratio fast/slow, and the target 0.9 x layer ratio."""
    by = {(r.model, r.precision, r.batch): r for r in results}
    out = []
    for (model, precision, batch), f in by.items():
        s = by.get((slow, precision, batch))
        if model != fast or s is None:
            continue
        target = 0.9 * s.layers / f.layers
        ratio = f.decode_tok_s / s.decode_tok_s
        out.append({"precision": precision, "batch": batch, "decode_ratio": round(ratio, 3), "ttft_ratio": round(s.ttft_s / f.ttft_s, 3),
                    "target": round(target, 3), "meets_target": ratio >= target})
    return out

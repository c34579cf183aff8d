"""Whole-sequence log-likelihood scoring, batched, and the sequences it scores.

The shared rule (docs/FORMATS.md): a file's token sequence is scored by the LM as
a whole; LL = -(sum of per-token cross-entropy over the scored targets), divided by the
number of scored targets for ``mean`` (the default, ``mean_nll``) or not for ``sum``.
A pair is correct when LL(positive) > LL(negative); a tie counts 0.5.

Sequences (SpiritLM format, our training documents are BOS ... EOS):

    speech only      [BOS] [Speech] s1 .. sn [EOS]               targets 1..end
    text -> speech   [BOS] [Text] t1 .. tm [Speech] s1 .. sn [EOS]   targets s1 .. EOS
    speech -> text   [BOS] [Speech] s1 .. sn [Text] t1 .. tm [EOS]   targets t1 .. EOS

Cross-modal scoring leaves the modality marker that opens the ending out of the scored
targets: the marker is predicted from the prompt alone, so it says nothing about the
ending being compared. In text -> speech both files of a pair share the prompt and the
marker's log-probability would only dilute the mean; in speech -> text each file has its
own prompt audio, so the marker would add a term about the prompt, not the ending.
Speech-only sequences keep scoring their ``[Speech]`` (predicted from [BOS] alone, the
same constant for every file), as the published speech-only figures were measured so.

Batching right-pads with the pad id under an attention mask, sorts by length and fills
batches up to a token budget; identical sequences are scored once (so identical files
tie exactly). ``batch_tokens=0`` scores one row per forward pass.

Shared prefixes (``share_prefix``, the default): the two files of a pair often begin with
the same tokens (the text prompt of text -> speech, the story's opening in text StoryCloze),
and a causal LM gives those tokens the same logits in both. :func:`plan_trees` groups
sequences that share a prefix into one row, the prefix once and then each sequence's own
rest, under a mask where each rest sees the prefix and itself only and positions continue
from the prefix (:func:`tree_rows`). The scores equal the plain rows' up to float rounding
(tests/test_eval_scoring.py); the demo's pair benchmarks score 30% fewer tokens so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tinywave.progress import bar
from tinywave.text.vocab import encode_text, layout_from_tokenizer

REDUCE: dict[str, Callable[[float, int], float]] = {
    "mean": lambda total, n: total / n,
    "sum": lambda total, n: total,
}


@dataclass(frozen=True)
class ScoreRequest:
    """Token ids and the index of the first scored token (>= 1: it has a context)."""

    ids: tuple[int, ...]
    score_from: int = 1

    @property
    def n_scored(self) -> int:
        return len(self.ids) - self.score_from


class SequenceBuilder:
    """Builds the scored id sequences for one text+speech tokenizer (``tinywave vocab``)."""

    def __init__(self, tokenizer, append_eos: bool = True):
        self.tokenizer = tokenizer
        self.layout = layout_from_tokenizer(tokenizer)
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id if append_eos else None
        if append_eos and self.eos is None:
            raise ValueError("the tokenizer has no EOS token, so it cannot be appended; pass append_eos=false (--append-eos false)")
        pad = tokenizer.pad_token_id
        self.pad = pad if pad is not None else (tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0)

    def _head(self) -> list[int]:
        return [self.bos] if self.bos is not None else []

    def _tail(self) -> list[int]:
        return [self.eos] if self.eos is not None else []

    def speech_ids(self, speech: str) -> list[int]:
        return self.layout.speech_string_to_ids(speech)

    def speech(self, speech: str) -> ScoreRequest:
        """[BOS] [Speech] units [EOS], every target scored."""
        return ScoreRequest(tuple(self._head() + [self.layout.speech_id] + self.speech_ids(speech) + self._tail()), 1)

    def text_then_speech(self, prompt_text: str, speech_ending: str) -> ScoreRequest:
        """[BOS] [Text] prompt [Speech] ending [EOS]; only the ending and EOS are scored, not [Speech]."""
        prompt = self._head() + [self.layout.text_id] + encode_text(self.tokenizer, prompt_text) + [self.layout.speech_id]
        return ScoreRequest(tuple(prompt + self.speech_ids(speech_ending) + self._tail()), len(prompt))

    def speech_then_text(self, speech_prompt: str, text_ending: str) -> ScoreRequest:
        """[BOS] [Speech] prompt [Text] ending [EOS]; only the ending and EOS are scored, not [Text]."""
        prompt = self._head() + [self.layout.speech_id] + self.speech_ids(speech_prompt) + [self.layout.text_id]
        return ScoreRequest(tuple(prompt + encode_text(self.tokenizer, text_ending) + self._tail()), len(prompt))

    def speech_window(self, unit_ids: Sequence[int]) -> ScoreRequest:
        """[BOS] [Speech] units, scoring only the speech tokens (for perplexity)."""
        head = self._head() + [self.layout.speech_id]
        return ScoreRequest(tuple(head + list(unit_ids)), len(head))


def plan_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest first so that rows x longest length <= ``batch_tokens``.

    A sequence longer than the budget gets a batch of its own; ``batch_tokens <= 0``
    gives one sequence per batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (batch_tokens <= 0 or (len(current) + 1) * lengths[current[0]] > batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


@torch.inference_mode()
def batch_totals(model: torch.nn.Module, requests: Sequence[ScoreRequest], pad_id: int) -> list[float]:
    """Summed log-probability of each request's scored tokens, in one forward pass."""
    rows, length = len(requests), max(len(r.ids) for r in requests)
    ids = torch.full((rows, length), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((rows, length), dtype=torch.long)  # (B, T)
    scored = torch.zeros((rows, length - 1), dtype=torch.bool)  # (B, T-1): which targets count
    for row, r in enumerate(requests):
        n = len(r.ids)
        ids[row, :n] = torch.tensor(r.ids, dtype=torch.long)
        mask[row, :n] = 1
        scored[row, r.score_from - 1 : n - 1] = True
    device = next(model.parameters()).device
    ids, mask, scored = ids.to(device), mask.to(device), scored.to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
    nll = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none")  # (B*(T-1),)
    totals = -(nll.view(rows, length - 1).double() * scored).sum(dim=1)  # (B,)
    return totals.tolist()


@dataclass(frozen=True)
class Tree:
    """Sequences scored in one row: their first ``shared`` tokens once, then each one's own rest."""

    members: tuple[ScoreRequest, ...]
    shared: int

    @property
    def length(self) -> int:
        return self.shared + sum(len(r.ids) - self.shared for r in self.members)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def plan_trees(requests: Sequence[ScoreRequest], min_saved: int = 16, max_members: int = 4) -> list[Tree]:
    """Distinct requests grouped into rows that score a shared prefix once.

    In lexicographic order a run of sequences shares the smallest common prefix of its
    neighbours. A sequence joins the current row when that scores at least ``min_saved``
    fewer tokens than giving it a row of its own (a shorter shared prefix costs the members
    already there), and a row holds at most ``max_members`` sequences, so rows stay short.
    """
    trees: list[Tree] = []
    members: list[ScoreRequest] = []
    shared = 0
    for r in sorted(dict.fromkeys(requests), key=lambda r: r.ids):
        if members:
            p = min(shared, common_prefix(members[-1].ids, r.ids))
            saved = len(members) * p - (len(members) - 1) * shared  # tokens saved by joining: k p - (k - 1) shared
            if saved >= min_saved and len(members) < max_members:
                members.append(r)
                shared = p
                continue
            trees.append(Tree(tuple(members), shared))
        members, shared = [r], len(r.ids)
    if members:
        trees.append(Tree(tuple(members), shared))
    return trees


def tree_rows(trees: Sequence[Tree], pad_id: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Model inputs for a batch of trees and where each member's predictions sit.

    ids, positions: (B, L); mask: (B, 1, L, L) additive (0 where a query may attend a key, the
    dtype's minimum elsewhere): the prefix is causal, each member's rest attends the prefix and
    its own earlier tokens, a pad attends only itself. pick_row/pick_pos/pick_target/pick_member:
    (N,) one entry per scored target, the logit position that predicts it.
    """
    length = max(t.length for t in trees)
    ids = torch.full((len(trees), length), pad_id, dtype=torch.long)  # (B, L)
    positions = torch.zeros((len(trees), length), dtype=torch.long)  # (B, L)
    segment = torch.full((len(trees), length), -1, dtype=torch.long)  # (B, L): 0 prefix, m + 1 member m's rest, -1 pad
    picks: list[tuple[int, int, int, int]] = []  # (row, logit position, target id, member index)
    member = 0
    for row, tree in enumerate(trees):
        p = tree.shared
        ids[row, :p] = torch.tensor(tree.members[0].ids[:p], dtype=torch.long)
        positions[row, :p] = torch.arange(p)
        segment[row, :p] = 0
        start = p
        for m, r in enumerate(tree.members):
            rest = len(r.ids) - p
            ids[row, start : start + rest] = torch.tensor(r.ids[p:], dtype=torch.long)
            positions[row, start : start + rest] = torch.arange(p, len(r.ids))
            segment[row, start : start + rest] = m + 1
            for j in range(r.score_from - 1, len(r.ids) - 1):  # logit at token j predicts token j + 1
                picks.append((row, j if j < p else start + j - p, r.ids[j + 1], member))
            start += rest
            member += 1
    index = torch.arange(length)
    causal = index[None, :, None] >= index[None, None, :]  # (1, L, L): key at or before the query
    seg_q, seg_k = segment[:, :, None], segment[:, None, :]  # (B, L, 1), (B, 1, L)
    allowed = causal & (seg_q >= 0) & ((seg_k == 0) | (seg_k == seg_q))  # (B, L, L)
    allowed |= torch.eye(length, dtype=torch.bool)[None] & (seg_q == -1)  # a pad attends itself (no empty softmax)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]  # (B, 1, L, L)
    row_i, pos_i, tgt_i, mem_i = (torch.tensor(c, dtype=torch.long) for c in zip(*picks))
    return {"ids": ids, "positions": positions, "mask": mask, "pick_row": row_i, "pick_pos": pos_i,
            "pick_target": tgt_i, "pick_member": mem_i}


@torch.inference_mode()
def tree_totals(model: torch.nn.Module, trees: Sequence[Tree], pad_id: int) -> list[float]:
    """Summed log-probability of every member's scored tokens (trees in order, members in order)."""
    param = next(model.parameters())
    rows = tree_rows(trees, pad_id, param.dtype if param.dtype.is_floating_point else torch.float32)
    ids, positions, mask = rows["ids"].to(param.device), rows["positions"].to(param.device), rows["mask"].to(param.device)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits  # (B, L, V)
    r, p, t = (rows[k].to(param.device) for k in ("pick_row", "pick_pos", "pick_target"))
    logp = logits[r, p, t].float() - torch.logsumexp(logits[r, p].float(), dim=-1)  # (N,)
    totals = torch.zeros(sum(len(tree.members) for tree in trees), dtype=torch.float64, device=param.device)
    totals.index_add_(0, rows["pick_member"].to(param.device), logp.double())  # (members,)
    return totals.tolist()


def max_positions(model: torch.nn.Module) -> int | None:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def log_likelihoods(model: torch.nn.Module, requests: Sequence[ScoreRequest], reduce: str = "mean",
                    batch_tokens: int = 4096, pad_id: int = 0, desc: str = "scoring", *, share_prefix: bool = True) -> list[float]:
    """LL of every request under the shared rule; see the module docstring.

    Memory per forward pass is about ``batch_tokens`` x vocabulary x 8 bytes of logits.
    ``share_prefix``: score a prefix that sequences share once (:func:`plan_trees`); False
    gives every sequence its own padded row.
    """
    if reduce not in REDUCE:
        raise ValueError(f"score={reduce!r} is not known; choose one of {sorted(REDUCE)}")
    unique = list(dict.fromkeys(requests))
    limit = max_positions(model)
    for r in unique:
        if r.n_scored < 1 or r.score_from < 1:
            raise ValueError(f"a sequence of {len(r.ids)} tokens scoring from {r.score_from} has nothing to score")
        if limit is not None and len(r.ids) > limit:
            raise ValueError(f"a sequence of {len(r.ids)} tokens exceeds the model's context of {limit}; "
                             "use shorter benchmark audio or a model with a longer context")
    totals: dict[ScoreRequest, float] = {}
    with bar(total=len(unique), desc=desc, unit="seq") as pbar:
        if share_prefix:
            trees = plan_trees(unique)
            for batch in plan_batches([t.length for t in trees], batch_tokens):
                chunk = [trees[i] for i in batch]
                members = [r for t in chunk for r in t.members]
                totals.update(zip(members, tree_totals(model, chunk, pad_id)))
                pbar.update(len(members))
        else:
            for batch in plan_batches([len(r.ids) for r in unique], batch_tokens):
                chunk = [unique[i] for i in batch]
                totals.update(zip(chunk, batch_totals(model, chunk, pad_id)))
                pbar.update(len(chunk))
    return [REDUCE[reduce](totals[r], r.n_scored) for r in requests]


def pair_outcomes(pos: Sequence[float], neg: Sequence[float]) -> list[float]:
    """1 when LL(pos) > LL(neg), 0.5 on a tie, else 0."""
    if len(pos) != len(neg):
        raise ValueError(f"{len(pos)} positive scores but {len(neg)} negative ones")
    return [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in zip(pos, neg)]

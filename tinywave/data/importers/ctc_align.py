"""Word timings from a CTC acoustic model: forced alignment of the known transcript.

For corpora without MFA TextGrids or CTM files. A local Hugging Face CTC model folder
(``Wav2Vec2ForCTC`` or any ``AutoModelForCTC`` with its processor: feature extractor and
character tokenizer, e.g. a wav2vec 2.0 / HuBERT fine-tuned on LibriSpeech) gives per-frame
log-probabilities over characters; the transcript, spelled in the model's characters with
its word delimiter between words, is aligned to them by Viterbi over the CTC topology
(blank, repeated labels separated by a blank); a word spans from the first frame of its
first character to the last frame of its last one.

The path is found by :func:`forced_path`; its optimality is checked against enumerating
every CTC alignment on small cases (tests/test_ctc_align.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinywave.data.manifest import Word
from tinywave.hub import resolve_model_dir

NEG = -1e30


def extended_labels(targets: list[int], blank: int) -> list[int]:
    """CTC states: blank, t1, blank, t2, ..., tn, blank (2n + 1)."""
    states = [blank]
    for t in targets:
        states += [t, blank]
    return states


def forced_path(log_probs: np.ndarray, targets: list[int], blank: int) -> list[int]:
    """The most likely CTC alignment of ``targets``: for each frame the index of its state in
    :func:`extended_labels` (even: a blank, odd 2i+1: target i).

    log_probs: (T, C) log-probabilities per frame. ValueError when T frames cannot hold the
    targets (each target needs a frame, and a repeated label a blank between).
    """
    states = extended_labels(targets, blank)
    n_frames, n_states = log_probs.shape[0], len(states)
    needed = len(targets) + sum(a == b for a, b in zip(targets, targets[1:]))
    if n_frames < needed:
        raise ValueError(f"{n_frames} frames cannot hold {len(targets)} labels ({needed} frames needed)")
    emit = log_probs[:, states]  # (T, S)
    # a state may be entered from itself, its predecessor, or (a label) the label two back when they differ
    skip = np.zeros(n_states, dtype=bool)
    skip[3::2] = [states[s] != states[s - 2] for s in range(3, n_states, 2)]
    score = np.full(n_states, NEG)
    score[:2] = emit[0, :2]
    back = np.zeros((n_frames, n_states), dtype=np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, n_frames):
        stay = score
        step = np.concatenate([[NEG], score[:-1]])
        jump = np.where(skip, np.concatenate([[NEG, NEG], score[:-2]]), NEG)
        moves = np.stack([stay, step, jump])  # (3, S)
        back[t] = moves.argmax(0)
        score = moves.max(0) + emit[t]
    end = n_states - 1 if n_states == 1 or score[-1] >= score[-2] else n_states - 2
    path = [end]
    for t in range(n_frames - 1, 0, -1):
        path.append(path[-1] - int(back[t, path[-1]]))
    return path[::-1]


def word_times(path: list[int], word_of_target: list[int], n_words: int, frame_seconds: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each word from a state path; ``word_of_target``: word index of each target, -1 for delimiters."""
    first = [None] * n_words
    last = [None] * n_words
    for frame, state in enumerate(path):
        if state % 2 == 1:
            w = word_of_target[state // 2]
            if w >= 0:
                first[w] = frame if first[w] is None else first[w]
                last[w] = frame
    return [(first[w] * frame_seconds, (last[w] + 1) * frame_seconds) for w in range(n_words)]


@dataclass
class Spelling:
    targets: list[int]  # character ids, the delimiter between words
    word_of_target: list[int]  # word index per target, -1 for a delimiter


def spell(words: list[str], vocab: dict[str, int], delimiter: str, upper: bool) -> Spelling:
    """The transcript in the model's characters; ValueError naming a character it lacks."""
    targets, owner = [], []
    for i, word in enumerate(words):
        if i and delimiter in vocab:
            targets.append(vocab[delimiter])
            owner.append(-1)
        for ch in word.upper() if upper else word:
            if ch not in vocab:
                raise ValueError(f"character {ch!r} of word {word!r} is not in the CTC model's vocabulary; "
                                 "use a model whose characters cover the transcripts, or normalize them")
            targets.append(vocab[ch])
            owner.append(i)
    return Spelling(targets, owner)


class CtcAligner:
    """A local CTC model folder; ``align(audio, words)`` -> the words with their times."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        # lazy: transformers is heavy (~3 s) and only the aligner's model needs it; forced_path works without it
        from transformers import AutoModelForCTC, AutoProcessor

        folder = resolve_model_dir(folder, what="CTC model")
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForCTC.from_pretrained(folder, local_files_only=True).to(device).eval()
        tokenizer = self.processor.tokenizer
        self.vocab: dict[str, int] = tokenizer.get_vocab()
        self.blank = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.delimiter = getattr(tokenizer, "word_delimiter_token", None) or "|"
        letters = [k for k in self.vocab if len(k) == 1 and k.isalpha()]
        self.upper = bool(letters) and all(k.isupper() for k in letters)  # wav2vec 2.0 LibriSpeech vocabularies are upper case
        self.rate = int(self.processor.feature_extractor.sampling_rate)
        self.device = device

    @torch.no_grad()
    def log_probs(self, audio: np.ndarray) -> np.ndarray:
        """(T, C) frame log-probabilities of mono audio at the model's rate."""
        inputs = self.processor(audio, sampling_rate=self.rate, return_tensors="pt")
        logits = self.model(inputs.input_values.to(self.device)).logits[0]  # (T, C)
        return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()

    def align(self, audio: np.ndarray, words: list[str]) -> list[Word]:
        """``words`` with start/end seconds (ValueError: a character the model lacks, or audio too short for the text)."""
        spelling = spell(words, self.vocab, self.delimiter, self.upper)
        logp = self.log_probs(audio)
        frame = len(audio) / self.rate / logp.shape[0]
        path = forced_path(logp, spelling.targets, self.blank)
        times = word_times(path, spelling.word_of_target, len(words), frame)
        return [Word(w, round(a, 4), round(b, 4)) for w, (a, b) in zip(words, times)]

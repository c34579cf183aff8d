"""Render audio jobs with espeak-ng: parallel, resumable, byte-identical for a seed.

A *job* names a renderer (``kind``), its JSON parameters and the wav files it writes.
A renderer has two halves: ``requests(params)`` lists what espeak must speak, and
``render(synth, params, pieces)`` turns the spoken pieces into the output waveforms
(joining, splicing voices, adding rooms or noise) plus JSON metadata.

Jobs are grouped in fixed chunks of the plan (``chunk`` consecutive jobs): one chunk is
spoken in one forked espeak child, so its audio depends only on the plan, never on the
number of workers, their scheduling or an interrupted run. Finished jobs are journaled
in ``ROOT/.progress/<journal>.jsonl`` after their wavs are written (atomically); a rerun
skips chunks whose jobs are all journaled, with the same parameters, and whose files
are present at the journaled size. Several machines split a plan by chunks
(:func:`rank_chunks`), each journaling under its own name; :func:`finished_jobs` reads
them all back for the merged manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tinywave.audio.io import SAMPLE_RATE
from tinywave.corpus.espeak import Piece, Request, Segment, Synthesizer
from tinywave.files import JsonlAppender, load_jsonl
from tinywave.progress import bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    outputs: tuple[str, ...]  # wav paths relative to the run's root


@dataclass(frozen=True)
class Renderer:
    requests: Callable[[dict[str, Any]], list[Request]]
    render: Callable[[Synthesizer, dict[str, Any], list[list[Piece]]], tuple[list[np.ndarray], dict[str, Any]]]


@dataclass
class RunStats:
    metas: dict[str, dict[str, Any]]  # job id -> metadata, for every job of the plan that succeeded
    rendered: int = 0  # jobs rendered by this run (whole chunks, so possibly some done before)
    skipped: int = 0  # jobs found finished
    audio_seconds: float = 0.0  # audio written by this run
    wall_seconds: float = 0.0
    failed: list[dict[str, Any]] = field(default_factory=list)


def request(delivery: dict[str, Any], segments: list[Segment]) -> Request:
    """A Request from a JSON delivery ``{voice, pitch, rate, pitch_range}``."""
    return Request(tuple(segments), delivery["voice"], int(delivery["pitch"]), int(delivery["rate"]),
                   int(delivery.get("pitch_range", 50)))


def words_json(words: list[Any]) -> list[dict[str, Any]]:
    return [{"word": w.word, "start": w.start, "end": w.end} for w in words]


def _utterance(synth: Synthesizer, params: dict[str, Any], pieces: list[list[Piece]]) -> tuple[list[np.ndarray], dict[str, Any]]:
    utt, _ = synth.join(pieces[0], int(params["delivery"]["rate"]))
    meta = {"words": words_json(utt.words), "phones": [p.symbol for p in utt.phones], "seconds": utt.seconds}
    return [utt.wav], meta


def _story(synth: Synthesizer, params: dict[str, Any], pieces: list[list[Piece]]) -> tuple[list[np.ndarray], dict[str, Any]]:
    utt, starts = synth.join(pieces[0], int(params["delivery"]["rate"]))
    return [utt.wav], {"words": words_json(utt.words), "sentence_starts": starts, "seconds": utt.seconds}


RENDERERS: dict[str, Renderer] = {
    "utterance": Renderer(lambda p: [request(p["delivery"], [Segment(p["text"])])], _utterance),
    "phonemes": Renderer(lambda p: [request(p["delivery"], [Segment(f"[[{p['phonemes']}]]", phonemes=True)])], _utterance),
    "story": Renderer(lambda p: [request(p["delivery"], [Segment(s) for s in p["sentences"]])], _story),
}
# modules whose RENDERERS join this table (imported on first use, also in spawned workers)
_RENDERER_MODULES = ("tinywave.corpus.storycloze", "tinywave.corpus.salmon", "tinywave.corpus.probe_sets")
_TABLE: dict[str, Renderer] = {}


def renderers() -> dict[str, Renderer]:
    if not _TABLE:
        _TABLE.update(RENDERERS)
        for name in _RENDERER_MODULES:
            _TABLE.update(importlib.import_module(name).RENDERERS)
    return _TABLE


def write_wav(path: Path, wav: np.ndarray) -> int:
    """Write 16-bit PCM WAV under a temporary name, then rename; return the size in bytes.

    Not fsynced (a corpus has thousands of files): the journal records each file's
    size, and a file of another size (e.g. after a power loss) is rendered again.
    """
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return len(data)


def _round(obj: Any) -> Any:
    """Floats to 4 decimals (stable JSON), recursively."""
    if isinstance(obj, float):
        return round(obj, 4)
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v) for v in obj]
    return obj


_WORKER: Synthesizer | None = None


def _synth() -> Synthesizer:
    global _WORKER
    if _WORKER is None:
        _WORKER = Synthesizer()
    return _WORKER


def render_chunk(root: Path, jobs: list[Job]) -> list[tuple[str, dict[str, Any] | None, str]]:
    """Speak every request of the chunk in one child, render and save each job's wavs.

    Returns (job id, metadata or None, error text) per job.
    """
    table = renderers()
    synth = _synth()
    try:
        asks = [table[j.kind].requests(j.params) for j in jobs]
        flat = [r for rs in asks for r in rs]
        spoken = synth.speak_many(flat) if flat else []
    except Exception as exc:  # noqa: BLE001 - reported per job, the run goes on
        return [(j.id, None, f"{type(exc).__name__}: {exc}") for j in jobs]
    out, pos = [], 0
    for job, rs in zip(jobs, asks):
        pieces, pos = spoken[pos : pos + len(rs)], pos + len(rs)
        try:
            wavs, meta = table[job.kind].render(synth, job.params, pieces)
            if len(wavs) != len(job.outputs):
                raise RuntimeError(f"renderer {job.kind!r} made {len(wavs)} wavs for {len(job.outputs)} outputs")
            meta["output_bytes"] = [write_wav(root / path, wav) for path, wav in zip(job.outputs, wavs)]
            meta["output_seconds"] = [len(w) / SAMPLE_RATE for w in wavs]
            out.append((job.id, _round(meta), ""))
        except Exception as exc:  # noqa: BLE001
            out.append((job.id, None, f"{type(exc).__name__}: {exc}"))
    return out


def _task(args: tuple[str, list[Job]]) -> list[tuple[str, dict[str, Any] | None, str]]:
    return render_chunk(Path(args[0]), args[1])


def job_key(job: Job) -> str:
    """Fingerprint of what a job renders: a journal entry with another key is stale."""
    blob = json.dumps([job.kind, job.params, list(job.outputs)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _finished(root: Path, jobs: list[Job], journal: Path) -> dict[str, dict[str, Any]]:
    by_id = {j.id: j for j in jobs}
    done = {}
    if journal.exists():
        for obj in load_jsonl(journal):
            job = by_id.get(obj.get("id"))
            if job is None or obj.get("key") != job_key(job):
                continue  # not in this plan, or planned differently (other voices, seed, ...)
            if all(_size(root / p) == n for p, n in zip(job.outputs, obj["meta"]["output_bytes"])):
                done[job.id] = obj["meta"]
    return done


def rank_chunks(jobs: list[Job], chunk: int, rank: int, world_size: int) -> list[Job]:
    """This rank's share of a plan: chunks ``rank, rank + world_size, ...`` (whole chunks, so every
    wav is byte-identical to a one-machine run)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in 0..world_size-1 (world_size={world_size})")
    return [j for first in range(rank * chunk, len(jobs), chunk * world_size) for j in jobs[first : first + chunk]]


def rank_journal(journal: str, rank: int, world_size: int) -> str:
    """The journal of one rank (the plain name for a single machine)."""
    return journal if world_size == 1 else f"{journal}.rank{rank}"


def finished_jobs(root: str | Path, jobs: list[Job], journals: list[str]) -> dict[str, dict[str, Any]]:
    """Metadata of every job of ``jobs`` that one of the journals records as finished (files present)."""
    root = Path(root)
    done: dict[str, dict[str, Any]] = {}
    for name in journals:
        done.update(_finished(root, jobs, root / ".progress" / f"{name}.jsonl"))
    return done


def _warm() -> None:
    renderers()
    _synth()


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Any]:
    """A spawn pool of ``workers`` synthesis processes to share between ``run_jobs`` calls
    (None, i.e. work in this process, for one worker)."""
    if workers <= 1:
        yield None
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_warm) as pool:
        yield pool


def run_jobs(jobs: list[Job], root: str | Path, journal: str, workers: int = 2, chunk: int = 4, desc: str = "synth",
             *, pool: Any = None) -> RunStats:
    """Render every unfinished job of ``jobs`` (the whole plan, in its fixed order).

    ``pool`` (from ``worker_pool``) is used when given; otherwise ``workers`` processes
    are started for this call.
    """
    root = Path(root)
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"job ids repeat in {journal}: every job needs its own id")
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be at least 1")
    path = root / ".progress" / f"{journal}.jsonl"
    by_id = {j.id: j for j in jobs}
    done = _finished(root, jobs, path)
    chunks = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    todo = [c for c in chunks if any(j.id not in done for j in c)]
    stats = RunStats(metas=dict(done), skipped=len(jobs) - sum(map(len, todo)))
    if not todo:
        return stats
    log.info("%s: %d jobs to render in %d chunks (%d already done) with %d worker(s)",
             desc, sum(map(len, todo)), len(todo), stats.skipped, workers)
    start = time.perf_counter()
    with JsonlAppender(path) as journal_out, bar(total=sum(map(len, todo)), desc=desc, unit="job") as progress:
        for results in _results(root, todo, workers, pool):
            good = [{"id": i, "key": job_key(by_id[i]), "meta": m} for i, m, _ in results if m is not None]
            journal_out.write_many(good)
            for job_id, meta, err in results:
                if meta is None:
                    stats.failed.append({"id": job_id, "error": err})
                    log.error("%s: job %s failed: %s", desc, job_id, err)
                    continue
                stats.metas[job_id] = meta
                stats.audio_seconds += sum(meta["output_seconds"])
            stats.rendered += len(results)
            progress.update(len(results))
    stats.wall_seconds = time.perf_counter() - start
    log.info("%s: %.0f s of audio in %.1f s (%.0fx real time)", desc, stats.audio_seconds, stats.wall_seconds,
             stats.audio_seconds / max(stats.wall_seconds, 1e-9))
    return stats


def _results(root: Path, chunks: list[list[Job]], workers: int, pool: Any) -> Iterator[list]:
    """Yield each chunk's results: from ``pool``, a new spawn pool, or in this process."""
    tasks = [(str(root), c) for c in chunks]
    if pool is not None:
        yield from pool.imap_unordered(_task, tasks)
    elif workers <= 1 or len(chunks) == 1:
        for c in chunks:
            yield render_chunk(root, c)
    else:
        with worker_pool(min(workers, len(chunks))) as own:
            yield from own.imap_unordered(_task, tasks)

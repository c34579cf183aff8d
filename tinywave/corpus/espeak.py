"""espeak-ng through its C library: 16 kHz speech with word and phoneme timings.

    synth = Synthesizer()
    utt = synth.speak("tom went to the park", voice="en-us+m3", pitch=50, rate=170)
    utt.wav      # (T,) float32, 16 kHz mono, leading/trailing silence trimmed
    utt.words    # [Word("tom", 0.05, 0.29), ...] seconds in ``utt.wav``
    utt.phones   # [Phone("t", 0.05, 0.11), ...] espeak phoneme mnemonics

The library runs in synchronous mode: a callback collects 22.05 kHz samples and the
WORD / PHONEME events, whose sample positions give the timings. Timings come from the
synthesizer itself, never from an aligner.

Determinism. libespeak-ng keeps synthesis state between calls (the pitch-flutter
phase, the waveform phase, libc ``rand``) and cannot be re-initialized in a process,
so the same text can come out a few samples different depending on what was spoken
before. Every call therefore runs in a child forked from a process whose espeak state
never changes after initialization (``_in_child``): the output depends only on the
request, whatever the call order, the worker or an interrupted run. The fork costs a
few milliseconds; ``speak_many`` speaks a whole batch in one child (its output then
depends on the batch). The library is process-global and not thread-safe: use one
``Synthesizer`` per process and parallelize with processes (``synth.py``).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import signal
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.corpus.timing import EV_END, EV_PHONEME, EV_WORD, Phone, Piece, Segment, Utterance, assemble, make_piece, word_spans

__all__ = ["EspeakError", "Phone", "Piece", "Request", "Segment", "Synthesizer", "Utterance", "engine"]

LIBRARY = "libespeak-ng.so.1"
# speak_lib.h constants
_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_DONT_EXIT = 0x0001, 0x8000
_POS_CHARACTER, _CHARS_UTF8, _PHONEME_INPUT = 1, 1, 0x100
_RATE, _PITCH, _RANGE = 1, 3, 4
_EV_LIST_END = 0
_PRELOAD_VOICE = b"en-us"  # loads the English dictionary once, before any fork
CHILD_TIMEOUT = 120.0  # seconds one request may take before its child is killed
_TEXT = re.compile(r"[a-z']+( [a-z']+)*")


class EspeakError(RuntimeError):
    """espeak-ng is missing or failed; the message says what to install or change."""


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Engine:
    """The process-wide library handle; initialized once, never used to speak directly."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL(LIBRARY)
        except OSError as exc:
            raise EspeakError(f"cannot load {LIBRARY} ({exc}); install it with `apt-get install espeak-ng`") from None
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Info.restype = ctypes.c_char_p
        self.rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 200, None, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if self.rate <= 0:
            raise EspeakError("espeak_Initialize failed: the espeak-ng data folder is missing; reinstall espeak-ng-data")
        self.samples: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, str]] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: the library holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName(_PRELOAD_VOICE)
        self.lib.espeak_Synth(b"a.", 3, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)  # warm-up: same in every process
        self.samples, self.events = [], []
        path = ctypes.c_char_p()
        self.version = self.lib.espeak_Info(ctypes.byref(path)).decode()
        self.data_dir = Path(path.value.decode()) if path.value else None

    def _collect(self, wav: Any, n: int, events: Any) -> int:
        if n > 0:
            self.samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_END:
            e = events[i]
            if e.type in (EV_WORD, EV_PHONEME, EV_END):
                name = bytes(e.id).split(b"\0")[0].decode("utf-8", "replace") if e.type == EV_PHONEME else ""
                self.events.append((e.type, e.text_position, e.sample, name))
            i += 1
        return 0

    def synth(self, segment: Segment, voice: str, pitch: int, rate: int, pitch_range: int) -> dict[str, Any]:
        """Speak one segment in this process (only ever called in a forked child)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            return {"error": f"espeak-ng has no voice {voice!r}; list them with `espeak-ng --voices=en`"}
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self.samples, self.events = [], []
        text = segment.text if segment.phonemes else segment.text + "."
        data = text.encode("utf-8")
        flags = _CHARS_UTF8 | (_PHONEME_INPUT if segment.phonemes else 0)
        if self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None) != 0:
            return {"error": f"espeak_Synth failed on {segment.text!r}"}
        wav = np.concatenate(self.samples) if self.samples else np.zeros(0, np.int16)
        return {"events": self.events, "samples": wav, "merged": self._merged(segment)}

    def _merged(self, segment: Segment) -> dict[str, list[str]]:
        """Standalone phonemes of words espeak joined to the word before (no WORD event).

        espeak speaks unstressed words such as "the" in "on the way" as part of the
        previous word; their phonemes let the parent split that word's phones again.
        """
        if segment.phonemes:
            return {}
        starts = {e[1] for e in self.events if e[0] == EV_WORD}
        return {str(first): [p.lstrip("',") for p in self.phonemize(segment.text.split(" ")[i]).split()]
                for i, (first, _) in enumerate(word_spans(segment.text)) if first not in starts}

    def phonemize(self, text: str) -> str:
        """espeak phoneme mnemonics, space-separated, with stress marks (current voice)."""
        ptr = ctypes.c_char_p(text.encode("utf-8"))
        parts = []
        while ptr.value:
            out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, ord(" ") << 8)
            parts.append(out.decode("utf-8") if out else "")
        return "  ".join(p.strip() for p in parts if p.strip())


_ENGINE: _Engine | None = None


def engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def _in_child(work: Any) -> Any:
    """Run ``work()`` in a child forked from the pristine engine; return its JSON-able result.

    The child sends one frame: 8-byte JSON length, the JSON, then raw int16 sample blocks.
    """
    eng = engine()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: speak, send, exit without running any parent cleanup
        code = 0
        try:
            os.close(read_fd)
            result = work(eng)
            blobs = [r.pop("samples").astype("<i2").tobytes() for r in result if "samples" in r]
            head = json.dumps({"results": result, "sizes": [len(b) for b in blobs]}).encode()
            with os.fdopen(write_fd, "wb") as f:
                f.write(struct.pack("<q", len(head)) + head + b"".join(blobs))
        except BaseException:  # noqa: BLE001 - any failure becomes a non-zero exit code
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        data = _read_all(read_fd, pid)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if not data or os.waitstatus_to_exitcode(status) != 0:
        raise EspeakError(f"espeak-ng child process failed (status {status}); run `espeak-ng 'hello'` to check the install")
    n = struct.unpack("<q", data[:8])[0]
    head = json.loads(data[8 : 8 + n])
    pos = 8 + n
    for r in head["results"]:
        if "events" in r:
            size = head["sizes"].pop(0)
            r["samples"] = np.frombuffer(data[pos : pos + size], dtype="<i2")
            pos += size
    return head["results"]


def _read_all(fd: int, pid: int) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], CHILD_TIMEOUT)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            raise EspeakError(f"espeak-ng did not answer within {CHILD_TIMEOUT:.0f} s; the request was abandoned")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@dataclass(frozen=True)
class Request:
    """Segments spoken one after the other in one voice (e.g. the sentences of a story)."""

    segments: tuple[Segment, ...]
    voice: str
    pitch: int = 50
    rate: int = 170
    pitch_range: int = 50


def _speak_all(requests: list[Request]) -> Any:
    """The child's work: every segment of every request, in order, from the pristine state."""

    def work(eng: _Engine) -> list[dict[str, Any]]:
        ctypes.CDLL(None).srand(0)  # espeak draws from libc rand
        out = []
        for req in requests:
            for seg in req.segments:
                out.append(eng.synth(seg, req.voice, req.pitch, req.rate, req.pitch_range))
                if "error" in out[-1]:
                    return out
        return out

    return work


class Synthesizer:
    """Speak text with espeak-ng; every call is deterministic (see the module docstring).

    ``lead`` seconds of silence open and close every utterance; ``pause`` seconds
    (scaled by 170 / rate) separate the segments of a request.
    """

    def __init__(self, lead: float = 0.05, pause: float = 0.25) -> None:
        self.engine = engine()
        self.lead = lead
        self.pause = pause

    @property
    def version(self) -> str:
        return self.engine.version

    @property
    def engine_rate(self) -> int:
        return self.engine.rate

    def speak(self, text: str, voice: str, pitch: int = 50, rate: int = 170, pitch_range: int = 50) -> Utterance:
        """One sentence (lower-case words separated by single spaces) in one voice."""
        utt, _ = self.speak_segments([Segment(text)], voice, pitch, rate, pitch_range)
        return utt

    def speak_phonemes(self, phonemes: str, voice: str, pitch: int = 50, rate: int = 170, pitch_range: int = 50) -> Utterance:
        """Speak espeak phoneme mnemonics (e.g. ``b'O:l``); the one 'word' is the mnemonic string."""
        utt, _ = self.speak_segments([Segment(f"[[{phonemes}]]", phonemes=True)], voice, pitch, rate, pitch_range)
        return utt

    def speak_segments(self, segments: list[Segment], voice: str, pitch: int = 50, rate: int = 170,
                       pitch_range: int = 50) -> tuple[Utterance, list[float]]:
        """Segments spoken one by one and joined by pauses; also each segment's start (seconds)."""
        pieces = self.speak_many([Request(tuple(segments), voice, pitch, rate, pitch_range)])[0]
        return self.join(pieces, rate)

    def speak_many(self, requests: list[Request]) -> list[list[Piece]]:
        """All requests in one child process (amortizes the fork), one list of pieces each.

        The result depends only on the list of requests: the same list always gives the
        same samples; espeak state carries over from one request to the next within it.
        """
        for req in requests:
            _check_request(req)
        results = _in_child(_speak_all(requests))
        for r in results:
            if "error" in r:
                raise ValueError(r["error"])
        rate = self.engine.rate
        flat = iter(results)
        return [[make_piece(next(flat), seg, rate) for seg in req.segments] for req in requests]

    def join(self, pieces: list[Piece], rate: int = 170) -> tuple[Utterance, list[float]]:
        """Concatenate pieces (speaking ``rate`` scales the pause) into one 16 kHz utterance."""
        pause = self.pause * 170.0 / max(rate, 1)
        wav, words, phones, starts = assemble(pieces, self.engine.rate, self.lead, pause)
        return Utterance(wav, words, phones), starts

    def phonemize(self, words: list[str], voice: str = "en-us") -> list[list[str]]:
        """espeak phoneme mnemonics of each word, one list per word (stress marks kept)."""
        _check_voice(voice)

        def work(eng: _Engine) -> list[dict[str, Any]]:
            if eng.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                return [{"error": f"espeak-ng has no voice {voice!r}"}]
            return [{"phones": eng.phonemize(w).split()} for w in words]

        results = _in_child(work)
        if results and "error" in results[0]:
            raise ValueError(results[0]["error"])
        return [r["phones"] for r in results]


def _check_voice(voice: str) -> None:
    if not voice or " " in voice:
        raise ValueError(f"voice {voice!r} is not an espeak-ng voice name; write e.g. en-us+f2")
    if "+" in voice:
        data = engine().data_dir
        variant = voice.split("+", 1)[1]
        if data is not None and not (data / "voices" / "!v" / variant).is_file():
            raise ValueError(f"voice {voice!r}: espeak-ng has no variant {variant!r} (see {data / 'voices' / '!v'})")


def _check_request(req: Request) -> None:
    _check_voice(req.voice)
    if not req.segments:
        raise ValueError("nothing to speak: pass at least one segment")
    pitch, rate, pitch_range = req.pitch, req.rate, req.pitch_range
    for seg in req.segments:
        if not seg.phonemes and not _TEXT.fullmatch(seg.text):
            raise ValueError(f"text {seg.text!r} must be lower-case words (a-z, ') separated by single spaces, without punctuation")
    if not (0 <= pitch <= 99 and 0 <= pitch_range <= 99):
        raise ValueError(f"pitch {pitch} and range {pitch_range} must be within 0..99 (espeak-ng's scale)")
    if not 80 <= rate <= 450:
        raise ValueError(f"rate {rate} words per minute is outside espeak-ng's 80..450")

"""espeak-ng through ctypes: audio, word/phoneme timings, determinism, errors."""

import numpy as np
import pytest

from tinywave.audio.io import SAMPLE_RATE
from tinywave.corpus.espeak import Request, Segment, Synthesizer
from tinywave.corpus.stories import story_at, vocabulary

SENTENCES = ["mia lost her red ball at the park", "on the way ben looked at the hills from the tram",
             "so tom and his dad stayed at home and ate the cookies"]


@pytest.fixture(scope="module")
def synth():
    return Synthesizer()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


def cut(wav: np.ndarray, start: float, end: float) -> np.ndarray:
    return wav[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]


def test_speak_gives_16k_audio_with_word_and_phone_timings(synth):
    utt = synth.speak(SENTENCES[1], "en-us+m3", pitch=45, rate=160)
    assert utt.wav.dtype == np.float32 and utt.wav.ndim == 1 and 0.05 < np.abs(utt.wav).max() <= 1.0
    assert [w.word for w in utt.words] == SENTENCES[1].split()
    for a, b in zip(utt.words, utt.words[1:]):
        assert a.start < a.end <= b.start < b.end  # monotonic, positive, no overlap ("the" after "on" included)
    assert utt.words[-1].end <= utt.seconds and utt.words[0].start >= 0.04  # inside the audio, after the lead
    assert len(utt.phones) >= len(utt.words) and all(p.end > p.start for p in utt.phones)
    assert not any(p.symbol.startswith("_") for p in utt.phones)  # pauses are not phones


def test_same_request_same_bytes_whatever_came_before(synth):
    first = synth.speak(SENTENCES[0], "en-us+f2")
    synth.speak(SENTENCES[2], "en+m1", pitch=70, rate=220)  # would change espeak's internal state in-process
    again = synth.speak(SENTENCES[0], "en-us+f2")
    assert first.wav.tobytes() == again.wav.tobytes() and first.words == again.words
    batch = [Request((Segment(SENTENCES[0]),), "en-us+f2"), Request((Segment(SENTENCES[2]),), "en-us+m3")]
    a, b = synth.speak_many(batch), synth.speak_many(batch)
    assert all(x.samples.tobytes() == y.samples.tobytes() for pa, pb in zip(a, b) for x, y in zip(pa, pb))
    joined, _ = synth.join(a[0])
    assert joined.wav.tobytes() == first.wav.tobytes()  # the first request of a batch starts from the same state


def test_word_timings_cut_audible_words_and_silent_pauses(synth):
    utt, starts = synth.speak_segments([Segment(s) for s in SENTENCES], "en-us+f2", rate=170)
    active = rms(np.concatenate([cut(utt.wav, w.start, w.end) for w in utt.words]))
    for w in utt.words:
        if w.end - w.start >= 0.05:
            assert rms(cut(utt.wav, w.start, w.end)) > 0.15 * active, w
    assert rms(cut(utt.wav, 0.0, utt.words[0].start)) < 0.02 * active  # lead-in
    assert rms(cut(utt.wav, utt.words[-1].end, utt.seconds)) < 0.02 * active  # tail
    ends = np.cumsum([len(s.split()) for s in SENTENCES])
    for i, start in enumerate(starts[1:], start=1):
        last, first = utt.words[ends[i - 1] - 1], utt.words[ends[i - 1]]
        assert first.start >= start >= last.end and first.start - last.end >= 0.2  # the pause between sentences
        assert rms(cut(utt.wav, last.end, first.start)) < 0.02 * active


def test_every_vocabulary_word_gets_its_own_time(synth):
    vocab, seen, sentences = vocabulary(), set(), []
    for i in range(400):
        story = story_at(0, "train", i)
        for s in (*story.sentences, story.wrong_ending):
            if set(s.split()) - seen:
                seen |= set(s.split())
                sentences.append(s)
    assert seen == vocab
    spoken = synth.speak_many([Request(tuple(Segment(s) for s in sentences), "en-us+m3")])[0]
    for s, piece in zip(sentences, spoken):
        assert [w for w, _, _ in piece.words] == s.split()
        short = [(w, (b - a) / synth.engine_rate) for w, a, b in piece.words if (b - a) / synth.engine_rate < 0.02]
        assert not short, f"{s!r}: words without time {short}"


def test_phonemes_in_and_out(synth):
    assert synth.phonemize(["ball", "the"], "en-us") == [["b", "'O:", "l"], ["D", "@2"]]
    utt = synth.speak_phonemes("b'O:d", "en-us+m3")
    assert [p.symbol for p in utt.phones] == ["b", "O:", "d"] and [w.word for w in utt.words] == ["b'O:d"]
    assert utt.words[0].end - utt.words[0].start > 0.1


@pytest.mark.parametrize("voice, text, pitch, rate, match", [
    ("en-us+nosuchvariant", "tom", 50, 170, "no variant"),
    ("xx-nowhere+m1", "tom", 50, 170, "no voice"),
    ("en-us+m3", "Tom went.", 50, 170, "lower-case"),
    ("en-us+m3", "tom  went", 50, 170, "single spaces"),
    ("en-us+m3", "tom", 120, 170, "pitch"),
    ("en-us+m3", "tom", 50, 20, "rate"),
])
def test_bad_requests_say_what_is_wrong(synth, voice, text, pitch, rate, match):
    with pytest.raises(ValueError, match=match):
        synth.speak(text, voice, pitch=pitch, rate=rate)

"""The job runner: resume, stale entries, failures reported without losing good items."""

import json

import soundfile as sf

from tinywave.corpus.synth import Job, run_jobs


def utterance(uid: str, text: str, voice: str = "en-us+m3") -> Job:
    return Job(uid, "utterance", {"text": text, "delivery": {"voice": voice, "pitch": 50, "rate": 170}}, (f"wavs/{uid}.wav",))


def test_resume_skips_done_chunks_and_redoes_changed_ones(tmp_path):
    jobs = [utterance("a", "tom went to the park"), utterance("b", "mia found her ball"), utterance("c", "the sun was shining")]
    first = run_jobs(jobs, tmp_path, "t", workers=1, chunk=2)
    assert first.rendered == 3 and not first.failed and set(first.metas) == {"a", "b", "c"}
    assert sf.info(str(tmp_path / "wavs/a.wav")).samplerate == 16000
    assert [w["word"] for w in first.metas["b"]["words"]] == "mia found her ball".split()
    again = run_jobs(jobs, tmp_path, "t", workers=1, chunk=2)
    assert again.rendered == 0 and again.skipped == 3 and again.metas == first.metas
    changed = jobs[:2] + [utterance("c", "the sky was blue")]  # same id, new text: the entry is stale
    third = run_jobs(changed, tmp_path, "t", workers=1, chunk=2)
    assert third.rendered == 1 and [w["word"] for w in third.metas["c"]["words"]] == "the sky was blue".split()
    (tmp_path / "wavs/a.wav").write_bytes(b"RIFF")  # a torn file: its chunk (a, b) is rendered again
    fourth = run_jobs(changed, tmp_path, "t", workers=1, chunk=2)
    assert fourth.rendered == 2 and (tmp_path / "wavs/a.wav").stat().st_size == first.metas["a"]["output_bytes"][0]


def test_a_bad_job_is_reported_and_the_others_are_kept(tmp_path):
    jobs = [utterance("ok1", "tom went home"), utterance("bad", "tom went home", voice="xx-nowhere+m1"), utterance("ok2", "mia ran")]
    stats = run_jobs(jobs, tmp_path, "t", workers=1, chunk=1)
    assert [f["id"] for f in stats.failed] == ["bad"] and "no voice" in stats.failed[0]["error"]
    assert set(stats.metas) == {"ok1", "ok2"}
    journal = [json.loads(line) for line in (tmp_path / ".progress/t.jsonl").read_text().splitlines()]
    assert {e["id"] for e in journal} == {"ok1", "ok2"}

"""`corpus synth` split over machines: each rank renders its chunks, the merge gives the one-machine corpus."""

import shutil

import pytest

from tinywave.cli import main
from tinywave.corpus.synth import Job, rank_chunks

pytestmark = pytest.mark.slow


def test_rank_chunks_partition_the_plan_into_whole_chunks():
    jobs = [Job(f"j{i}", "utterance", {}, ()) for i in range(11)]
    parts = [rank_chunks(jobs, 3, r, 2) for r in range(2)]
    assert [j.id for j in parts[0]] == ["j0", "j1", "j2", "j6", "j7", "j8"]
    assert [j.id for j in parts[1]] == ["j3", "j4", "j5", "j9", "j10"]
    assert rank_chunks(jobs, 3, 0, 1) == jobs
    with pytest.raises(ValueError, match="rank=2 must be in 0..world_size-1"):
        rank_chunks(jobs, 3, 2, 2)


def test_two_ranks_then_merge_equal_one_machine(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    base = ["corpus", "synth", "--stories", "12", "--seed", "3", "--workers", "1"]  # 2 chunks of 8 stories
    one, split = tmp_path / "one", tmp_path / "split"
    assert main([*base, "--out", str(one)]) == 0
    assert main([*base, "--out", str(split), "merge=true", "world_size=2"]) == 2  # nothing rendered yet: refused
    assert main([*base, "--out", str(split), "rank=1", "world_size=2"]) == 0
    assert not (split / "manifest.jsonl").exists()  # a rank alone writes no manifest
    assert main([*base, "--out", str(split), "rank=0", "world_size=2"]) == 0
    assert main([*base, "--out", str(split), "merge=true", "world_size=2"]) == 0
    assert (split / "manifest.jsonl").read_text() == (one / "manifest.jsonl").read_text().replace(str(one), str(split))
    wavs = sorted(p.name for p in (one / "wavs").glob("*.wav"))
    assert wavs and wavs == sorted(p.name for p in (split / "wavs").glob("*.wav"))
    for name in wavs:
        assert (split / "wavs" / name).read_bytes() == (one / "wavs" / name).read_bytes(), name

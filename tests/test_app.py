"""`tinywave app`: teacher and student side by side (tinywave/app/, tinywave/recipes/app.py).

Fast tests: the side-by-side streaming and its timing on in-process tiny models, and the
folder checks through the real CLI. Slow tests start the real command on a free loopback
port, on a demo-shaped folder of tiny models built here (random weights, a random-codebook
speech tokenizer, a small HiFi-GAN), and drive it with gradio_client and headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from support.audio import espeak_wav
from support.browser import CHROMIUM, HeadlessChromium
from support.models import tiny_llama, tiny_model_dir, tiny_tokenizer
from support.speech import StandInSpeechTokenizer, random_tokenizer
from tinywave.app.compare import prompt_items, side_by_side
from tinywave.cli import main
from tinywave.generate.decode import Sampling
from tinywave.generate.prompt import PromptItem
from tinywave.generate.speechlm import GenerationOptions, SpeechLM
from tinywave.recipes.app import Config, pick_vocoder, resolve_folders
from tinywave.vocoder.backends import HifiGanVocoder, save_hifigan
from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)

RATE = 16000
ROOT = Path(__file__).resolve().parents[1]


def tiny_vocoder_model(n_units: int = 32) -> UnitHiFiGAN:
    torch.manual_seed(0)
    return UnitHiFiGAN(small_config(n_units, 640, channels=16, embedding_dim=8))


# ---------------------------------------------------------------- side by side, in process


@pytest.fixture(scope="module")
def two_lms():
    tok, lay = tiny_tokenizer()
    voc = HifiGanVocoder(tiny_vocoder_model(lay.n_hu))
    stok = StandInSpeechTokenizer(n_units=lay.n_hu)
    return {name: SpeechLM(tiny_llama(tokenizer=tok, layers=layers, width=32, seed=seed, lm_head_scale=8.0), tok, speech_tokenizer=stok, vocoder=voc)
            for name, layers, seed in (("teacher", 3, 1), ("student", 2, 2))}


def run_side_by_side(models, items, modality, options):
    frames = list(side_by_side(models, items, modality, options))
    audio = {n: [f[n].chunk for f in frames if f[n].chunk is not None] for n in models}
    return frames, audio


def test_both_models_stream_in_turns_and_each_matches_its_own_stream(two_lms):
    options = GenerationOptions(max_new_tokens=60, max_seconds=1.2, allow_eos=False, chunk_units=5,
                                sampling=Sampling(greedy=False, temperature=1.0, seed=4))
    items = [PromptItem("text", "the cat sat")]
    frames, audio = run_side_by_side(two_lms, items, "speech", options)
    for name, lm in two_lms.items():
        final = frames[-1][name]
        alone = [e for e in lm.stream(items, "speech", options)]
        assert final.result.ids == alone[-1].result.ids  # taking turns changes nothing in a model's output
        assert len(audio[name]) >= 2  # several chunks, each sent in the frame that made it
        streamed = np.concatenate(audio[name])
        np.testing.assert_array_equal(streamed, final.result.audio)
        t = final.timing
        assert t.new_tokens == len(final.result.ids) and t.audio_s == pytest.approx(len(streamed) / RATE)
        assert 0 < t.first_token_s <= t.first_audio_s < t.compute_s  # first audio before the end: streamed
        row = t.row()
        assert row["tokens_per_s"] > 0 and row["real_time_factor"] > 0 and row["prompt_tokens"] == len(lm.prepare(items, "speech").ids)
        assert final.transcript == final.result.transcript and final.transcript.startswith("[Hu")
    # the two models advance together: both have produced audio before either is done
    first_audio = {n: next(i for i, f in enumerate(frames) if f[n].chunk is not None) for n in two_lms}
    first_done = min(next(i for i, f in enumerate(frames) if f[n].done) for n in two_lms)
    assert max(first_audio.values()) < first_done


def test_audio_prompt_to_text_has_no_audio_timing(two_lms, tmp_path):
    wav = espeak_wav(tmp_path / "p.wav", "hello there")
    options = GenerationOptions(max_new_tokens=10, allow_eos=False, sampling=Sampling())
    frames, audio = run_side_by_side(two_lms, prompt_items("", str(wav)), "text", options)
    for name in two_lms:
        final = frames[-1][name]
        assert audio[name] == [] and final.result.audio is None
        assert 0 < final.timing.new_tokens == len(final.result.ids) <= 10 and final.result.text and "[Hu" not in final.transcript
        row = final.timing.row()
        assert row["time_to_first_audio_s"] is None and row["real_time_factor"] is None and row["tokens_per_s"] > 0
        assert row["prompt_tokens"] > 10  # the audio became speech tokens in the prompt


def test_prompt_items_order_and_the_empty_prompt():
    assert prompt_items("the cat", None) == [PromptItem("text", "the cat")]
    assert prompt_items("  and then ", "a.wav") == [PromptItem("audio", "a.wav"), PromptItem("text", " and then")]
    with pytest.raises(ValueError, match="the prompt is empty"):
        prompt_items("   ", None)


def test_a_bad_prompt_fails_before_any_model_decodes(two_lms, tmp_path):
    with pytest.raises(ValueError, match="missing.wav"):
        next(side_by_side(two_lms, [PromptItem("audio", str(tmp_path / "missing.wav"))], "speech", GenerationOptions()))


# ---------------------------------------------------------------- folders and errors


def demo_folder(root: Path) -> Path:
    """The folders `tinywave demo` leaves that the app reads, with tiny models."""
    stok = random_tokenizer(pitch=False, style=False)  # a random 16-unit codebook
    for name, layers, seed in (("teacher", 3, 1), ("student", 2, 2)):
        stok.save(tiny_model_dir(root / "models" / name, layers=layers, seed=seed, lm_head_scale=8.0) / "speech_tokenizer")
    save_hifigan(root / "vocoder", tiny_vocoder_model(), [])
    (root / "vocoder" / "eval.json").write_text(json.dumps({"lower_mcd": "hifigan"}))
    return root


def test_a_missing_demo_names_the_folders_and_the_command(tmp_path, capsys):
    demo = tmp_path / "demo_out"
    (demo / "models" / "teacher").mkdir(parents=True)  # a demo stopped before its students
    assert main(["app", "--demo", str(demo)]) == 2
    err = capsys.readouterr().err
    assert f"{demo / 'models' / 'student'}, {demo / 'vocoder'} not found" in err
    assert "make demo" in err and f"tinywave demo --out {demo}" in err and "models/teacher" not in err.split("not found")[0]


def test_explicit_folders_are_named_with_their_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--student .*nowhere: folder not found; give a model folder"):
        resolve_folders(Config(teacher=str(tmp_path), student=str(tmp_path / "nowhere"), vocoder="none"))
    folders = resolve_folders(Config(teacher=str(tmp_path), student=str(tmp_path), vocoder="none"))
    assert folders == {"teacher": tmp_path, "student": tmp_path, "vocoder": None}


def test_the_demo_vocoder_is_the_one_its_samples_use(tmp_path):
    (tmp_path / "griffinlim").mkdir()
    assert pick_vocoder(tmp_path) == tmp_path  # a plain vocoder folder
    (tmp_path / "eval.json").write_text(json.dumps({"lower_mcd": "griffinlim"}))
    assert pick_vocoder(tmp_path) == tmp_path / "griffinlim"
    (tmp_path / "eval.json").write_text(json.dumps({"lower_mcd": "hifigan"}))
    assert pick_vocoder(tmp_path) == tmp_path


def test_bad_autoplay_is_refused_before_loading(tmp_path, capsys):
    demo = demo_folder(tmp_path)
    assert main(["app", "--demo", str(demo), "--autoplay", "both"]) == 2
    assert "autoplay='both'" in capsys.readouterr().err


# ---------------------------------------------------------------- the running app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc: subprocess.Popen, url: str, log: Path, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tinywave app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"tinywave app did not answer on {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`tinywave app` on a demo-shaped folder, served on a free loopback port for this module."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is absent: Gradio encodes streamed audio with it (apt-get install ffmpeg)")
    root = tmp_path_factory.mktemp("app")
    demo = demo_folder(root / "demo_out")
    port, log = free_port(), root / "app.log"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(root / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tinywave.cli", "app", "--demo", str(demo), "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(proc, url, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


PANEL = ("audio", "text", "timing", "wav")
SAMPLING = dict(greedy=False, temperature=1.0, top_p=1.0, top_k=0, seed=3)


def by_model(values) -> dict[str, dict[str, object]]:
    """The endpoint's outputs (teacher's four, then the student's) by model and field."""
    assert len(values) == 2 * len(PANEL)
    return {name: dict(zip(PANEL, values[i * len(PANEL) : (i + 1) * len(PANEL)])) for i, name in enumerate(("teacher", "student"))}


@pytest.mark.slow
def test_text_prompt_gives_streamed_speech_from_both_models(app_url, tmp_path):
    from gradio_client import Client

    client = Client(app_url, verbose=False, download_files=str(tmp_path / "downloads"))
    job = client.submit(text="the cat sat", audio=None, modality="speech", max_new_tokens=80, max_seconds=2.0, allow_eos=False,
                        api_name="/generate", **SAMPLING)
    final = by_model(job.result(timeout=300))
    updates = [by_model(v) for v in job.outputs()[:-1]]
    for name, out in final.items():
        wav, rate = sf.read(out["wav"], dtype="float32")
        assert rate == RATE and len(wav) >= 40 * 640 and np.abs(wav).max() > 0  # 2 s of units, one 640-sample frame or more each
        assert out["text"].startswith("[Hu") and out["text"].count("[Hu") >= 40
        t = out["timing"]
        assert t["audio_s"] == pytest.approx(len(wav) / RATE, abs=1e-3) and t["new_tokens"] >= 40
        assert 0 < t["time_to_first_token_s"] <= t["time_to_first_audio_s"] < t["compute_s"]
        assert t["tokens_per_s"] > 0 and t["real_time_factor"] > 0
        streamed = [u[name]["audio"] for u in updates if isinstance(u[name]["audio"], str)]
        assert len(streamed) >= 2 and all(Path(p).stat().st_size > 0 for p in streamed)  # audio arrived before the end


@pytest.mark.slow
def test_audio_prompt_gives_text_from_both_models(app_url, tmp_path):
    from gradio_client import Client, handle_file

    prompt = espeak_wav(tmp_path / "prompt.wav", "the little cat")
    client = Client(app_url, verbose=False, download_files=str(tmp_path / "downloads"))
    final = by_model(client.predict(text="", audio=handle_file(str(prompt)), modality="text", max_new_tokens=12, max_seconds=0,
                                    allow_eos=False, api_name="/generate", **SAMPLING))
    for name, out in final.items():
        assert out["text"].strip() and "[Hu" not in out["text"] and out["wav"] is None
        t = out["timing"]
        assert 0 < t["new_tokens"] <= 12 and t["tokens_per_s"] > 0 and t["time_to_first_token_s"] > 0
        assert t["prompt_tokens"] > 12 and t["time_to_first_audio_s"] is None and t["real_time_factor"] is None


@pytest.mark.slow
def test_an_empty_prompt_is_an_error_on_the_page(app_url, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False, download_files=str(tmp_path / "downloads"))
    with pytest.raises(AppError, match="the prompt is empty"):
        client.predict(text=" ", audio=None, modality="speech", max_new_tokens=5, max_seconds=1, allow_eos=True,
                       api_name="/generate", **SAMPLING)


PANELS = r"""(() => {
  const shown = (el) => !!el && el.getBoundingClientRect().width > 0 && el.getBoundingClientRect().height > 0;
  return ["teacher", "student"].map((n) => {
    const panel = document.getElementById("panel-" + n);
    return [n, shown(panel), panel ? panel.innerText : ""];
  });
})()"""
RENDERED = r"""["teacher", "student"].every((n) => {
  const panel = document.getElementById("panel-" + n);
  return !!panel && panel.innerText.includes(n + ": timing") && panel.innerText.includes(n + ": speech (streamed)");
}) && !document.body.innerText.includes("Loading...")"""
GENERATE = r"""(() => {
  const prompt = document.querySelector("textarea[placeholder='the little cat']");
  prompt.value = "the cat sat";
  prompt.dispatchEvent(new Event("input", {bubbles: true}));
  document.getElementById("generate").click();
  return true;
})()"""
FINISHED = r"""["teacher", "student"].every((n) => {
  const text = document.getElementById("panel-" + n).innerText;
  return text.replace(/\s+/g, "").includes("-" + n + ".wav") && text.includes("real_time_factor");
})"""


def wait_for(browser: HeadlessChromium, expression: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{expression[:80]!r} stayed false for {timeout:.0f} s")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: the browser check needs Debian's chromium package "
                                                   "(apt-get install chromium)")
def test_page_shows_both_panels_in_chromium_without_console_errors(app_url, tmp_path):
    with HeadlessChromium(tmp_path / "profile", timeout=120) as browser:
        browser.open(app_url)
        wait_for(browser, RENDERED, timeout=120)
        panels = browser.evaluate(PANELS)
        shot = browser.screenshot(tmp_path / "app.png")
        assert browser.console_errors() == []
        # one generation from the page itself: both panels fill in, still without errors
        browser.evaluate(GENERATE)
        wait_for(browser, FINISHED, timeout=300)
        after = browser.screenshot(tmp_path / "app_after.png")
        assert browser.console_errors() == []
    assert [(n, shown) for n, shown, _ in panels] == [("teacher", True), ("student", True)]
    for name, _, text in panels:
        assert text.lstrip().startswith(name) and "layers, width 32" in text
    for png in (shot, after):
        assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

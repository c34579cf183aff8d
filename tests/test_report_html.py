"""report.html: one self-contained page from report.json, the plots and the samples (tinywave/demo/html.py)."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from support.browser import CHROMIUM, HeadlessChromium
from support.models import tiny_model_dir
from tinywave.demo.html import write_report_html
from tinywave.generate.prompt import PromptItem
from tinywave.generate.samples import SampleSpec, samples_index

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)

RATE = 16000


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def attrs(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


def tiny_png(path: Path, label: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [3.0, 2.0, 1.5], label=label)
    ax.set_title(label)
    fig.savefig(path, dpi=50)
    plt.close(fig)
    return path


def tiny_wav(path: Path, seconds: float = 0.5, freq: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE)
    return path


def synthetic_report() -> dict[str, Any]:
    """report.json as tinywave/demo/report.py builds it, three seeds, every optional key present."""
    models = {"teacher": {"params": 2_500_000, "non_embedding_params": 1_200_000, "layers": 4, "width": 64},
              "student": {"params": 1_900_000, "non_embedding_params": 600_000, "layers": 2, "width": 64},
              "baseline_pruned_ce": {"params": 1_900_000, "non_embedding_params": 600_000, "layers": 2, "width": 64},
              "baseline_random_ce": {"params": 1_900_000, "non_embedding_params": 600_000, "layers": 2, "width": 64}}
    bench = {"tSC": {"teacher_before_correction": 0.80, "teacher": 0.90, "student": 0.86, "baseline_pruned_ce": 0.81,
                     "baseline_random_ce": 0.70},
             "sSC": {"teacher_before_correction": 0.62, "teacher": 0.72, "student": 0.68, "baseline_pruned_ce": 0.66,
                     "baseline_random_ce": 0.60},
             "sSC/outcome": {"teacher": 0.75, "student": 0.70}}
    ci = {b: {n: [v - 0.02, v + 0.02] for n, v in s.items()} for b, s in bench.items() if "/" not in b}
    ppl = {"teacher_before_correction": 30.0, "teacher": 20.0, "student": 23.0, "baseline_pruned_ce": 26.0, "baseline_random_ce": 35.0}
    return {
        "format": "tinywave-demo-report/2", "models": models, "benchmarks": bench,
        "per_seed": {"tSC": {"student": [0.85, 0.86, 0.87]}}, "std": {"tSC": {"student": 0.01}, "sSC": {"student": 0.02}},
        "ci": {**ci, "ppl": {n: [v - 1, v + 1] for n, v in ppl.items()}},
        "p_values": {"tSC": {"baseline_pruned_ce": 0.012, "baseline_random_ce": 0.0001}, "ppl": {"baseline_pruned_ce": 0.2}},
        "mcnemar": {"tSC": {"baseline_pruned_ce": 0.03, "baseline_random_ce": 0.0002}},
        "normalized_ppl": ppl, "normalized_ppl_std": {"student": 0.4}, "normalized_ppl_definition": "per token: exp(NLL / tokens)",
        "ppl_per_second": {"teacher": 40.0}, "ratios": {"tSC": 0.86 / 0.9, "sSC": 0.68 / 0.72, "ppl": 23 / 20},
        "seeds": [0, 1, 2], "precision": {"name": "float32", "reason": "no GPU: CPU runs in float32"},
        "teacher_before_correction": {"params": 2_500_000, "non_embedding_params": 1_200_000, "layers": 4, "width": 64,
                                      "benchmarks": {"tSC": 0.80, "sSC": 0.62}, "ci": {"tSC": [0.78, 0.82], "sSC": None},
                                      "ppl": 30.0, "ppl_ci": [29.0, 31.0]},
        "claims": [{"claim": "student / teacher on tSC", "target": ">= 0.93 (aim 0.97)", "measured": "0.956", "held": True},
                   {"claim": "student beats <baseline> & \"friends\"", "target": "p < 0.05", "measured": "p = 0.2", "held": False}],
        "pairs": {"tSC": 200, "sSC": 200}, "stages": {"corpus": {"seconds": 12.0}, "eval": {"seconds": 30.5}},
        "wall_seconds": 1234.5, "samples": "samples/index.md", "sample_vocoder": "vocoder/griffinlim",
    }


def demo_folder(root: Path) -> Path:
    """A demo output folder: report.json, two plots, a prompt wav and teacher/student sample wavs + index.json."""
    out = root / "demo"
    report = synthetic_report()
    (out / "plots").mkdir(parents=True)
    (out / "report.json").write_text(json.dumps(report))
    tiny_png(out / "plots" / "benchmarks.png", "accuracy")
    tiny_png(out / "plots" / "student_ce.png", "ce")
    prompt = tiny_wav(out / "samples" / "prompts" / "prompt0.wav", 0.3, 330.0)
    specs = [SampleSpec("text0_to_speech", "speech", (PromptItem("text", "the little cat"),)),
             SampleSpec("audio0_to_text", "text", (PromptItem("audio", str(prompt)),))]
    rows = {}
    for k, name in enumerate(("teacher", "student")):
        tiny_wav(out / "samples" / name / "0.wav", 0.5, 220.0 * (k + 1))
        rows[name] = [{"index": 0, "prompt": "[Text]the little cat[Speech]", "transcript": f"[Speech][Hu3][Hu{k}]",
                       "text": "", "stop": "max_seconds", "seconds": 0.5, "wav": "0.wav"},
                      {"index": 1, "prompt": "[Speech][Hu1][Text]", "transcript": f"[Text] once upon a {name}",
                       "text": f" once upon a {name}", "stop": "eos", "seconds": 0.0}]
    index = samples_index(specs, rows, out / "samples", out)
    index["models"]["student"][0]["asr"] = "the little cat sat"
    (out / "samples" / "index.json").write_text(json.dumps(index))
    return out


# ---------------------------------------------------------------- unit


def test_samples_index_paths_are_relative_to_the_report_folder(tmp_path):
    out = tmp_path / "demo"
    inside = tiny_wav(out / "samples" / "prompts" / "p.wav")
    specs = [SampleSpec("audio0_text_to_speech", "speech", (PromptItem("audio", str(inside)), PromptItem("text", " the cat"))),
             SampleSpec("audio1_to_speech", "speech", (PromptItem("audio", str(tmp_path / "elsewhere.wav")),))]
    rows = {"m": [{"index": i, "prompt": "p", "transcript": "[Hu1]", "text": "", "stop": "eos", "seconds": 1.0, "wav": f"{i}.wav"}
                  for i in range(2)]}
    index = samples_index(specs, rows, out / "samples", out)
    first, second = index["models"]["m"]
    assert index["folder"] == "samples" and index["prompts"] == ["audio0_text_to_speech", "audio1_to_speech"]
    assert first == {"prompt_id": "audio0_text_to_speech", "kind": "audio+text_to_speech", "modality": "speech",
                     "prompt_text": " the cat", "prompt_audio": "samples/prompts/p.wav", "prompt_tokens": None, "prompt": "p",
                     "wav": "samples/m/0.wav", "seconds": 1.0, "transcript": "[Hu1]", "transcript_file": "samples/m/0.txt",
                     "text": "", "stop": "eos"}
    assert second["prompt_audio"] == str((tmp_path / "elsewhere.wav").resolve())  # outside the folder: kept absolute


def test_write_samples_writes_index_json_that_the_page_plays(tmp_path):
    """tinywave/generate/samples.py end to end on a tiny model: index.json beside index.md, its wavs playable from the page."""
    import torch

    from tinywave.generate.samples import write_samples
    from tinywave.generate.speechlm import GenerationOptions
    from tinywave.vocoder.backends import save_hifigan
    from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

    out = tmp_path / "demo"
    torch.manual_seed(0)
    save_hifigan(tmp_path / "voc", UnitHiFiGAN(small_config(32, 640, channels=16, embedding_dim=8)), [])
    specs = [SampleSpec("text0_to_speech", "speech", (PromptItem("text", "the cat sat"),)),
             SampleSpec("tokens0_to_text", "text", (PromptItem("tokens", "[Hu1][Hu4][Hu9]"),))]
    options = GenerationOptions(max_new_tokens=8, max_seconds=0.3, allow_eos=False)
    index_md = write_samples({"teacher": tiny_model_dir(tmp_path / "teacher", lm_head_scale=8.0)}, out / "samples", specs, options, tmp_path / "voc")
    index = json.loads((out / "samples" / "index.json").read_text())
    assert index_md.is_file() and index["prompts"] == ["text0_to_speech", "tokens0_to_text"]
    speech, text = index["models"]["teacher"]
    assert speech["kind"] == "text_to_speech" and speech["prompt_text"] == "the cat sat" and speech["wav"] == "samples/teacher/0.wav"
    assert (out / speech["wav"]).is_file() and speech["transcript"] == (out / speech["transcript_file"]).read_text().strip()
    assert text["kind"] == "tokens_to_text" and text["prompt_tokens"] == "[Hu1][Hu4][Hu9]" and text["wav"] is None
    page = write_report_html(out, {"samples": "samples/index.md"}).read_text()
    assert [a["src"] for a in parse(page).attrs("audio")] == ["samples/teacher/0.wav"]


def test_report_html_is_self_contained_and_complete(tmp_path):
    out = demo_folder(tmp_path)
    path = write_report_html(out, json.loads((out / "report.json").read_text()))
    page = path.read_text(encoding="utf-8")
    tags = parse(page)
    text = " ".join(" ".join(tags.text).split())

    assert path == out / "report.html"
    assert "http://" not in page and "https://" not in page
    assert not tags.attrs("script") and not [a for a in tags.attrs("link") if a.get("rel") == "stylesheet"]
    # audio: relative paths that exist, lazy players; prompt audio too
    audio = tags.attrs("audio")
    srcs = [a["src"] for a in audio]
    assert len(audio) == 3 and all("controls" in a and a.get("preload") == "none" for a in audio)
    assert sorted(srcs) == ["samples/prompts/prompt0.wav", "samples/student/0.wav", "samples/teacher/0.wav"]
    assert all(not Path(s).is_absolute() and (out / s).is_file() for s in srcs)
    # plots: inline PNGs
    imgs = [a["src"] or "" for a in tags.attrs("img")]
    assert len(imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert all(base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n" for s in imgs)
    # summary, model table, benchmarks, perplexity, p-values, correction, breakdown
    assert "wall time 20.6 min" in text and "precision float32 (no GPU: CPU runs in float32)" in text and "seeds 0, 1, 2" in text
    assert "1 of 2 claims held" in text
    assert '<table id="model-table">' in page
    for row in ("<td>teacher</td><td>4</td><td>64</td><td>2.50M</td><td>1.20M</td>",
                "<td>student</td><td>2</td><td>64</td><td>1.90M</td><td>0.60M</td>"):
        assert row in page
    assert "0.860 ± 0.010 [0.840, 0.880]" in text and "0.900 [0.880, 0.920]" in text and "0.956" in text  # teacher: no ± over seeds
    assert "23.000 ± 0.400 [22.000, 24.000]" in text and "student / teacher perplexity: 1.150" in text
    assert ('<tr class="significant"><td>tSC</td><td>baseline_pruned_ce</td><td>0.860</td><td>0.810</td><td>0.0120</td>'
            '<td>0.0300</td>') in page
    assert "<td>tSC</td><td>0.800 [0.780, 0.820]</td><td>0.900 [0.880, 0.920]</td><td>+0.100</td>" in page
    assert "<td>held-out perplexity</td><td>30.000 [29.000, 31.000]</td><td>20.000 [19.000, 21.000]</td><td>-10.000</td>" in page
    assert "<td>sSC/outcome</td><td>0.750</td><td>0.700</td>" in page
    # claims: both shown, held highlighted apart from missed, text escaped
    assert '<tr class="held"><td>student / teacher on tSC</td>' in page
    assert '<tr class="missed"><td>student beats &lt;baseline&gt; &amp; &quot;friends&quot;</td>' in page
    assert "<baseline>" not in page
    # samples: teacher before student per prompt, transcripts and the recognizer's
    assert page.index('data-model="teacher"') < page.index('data-model="student"')
    assert "[Speech][Hu3][Hu1]" in text and "once upon a student" in text and "the little cat sat" in text
    assert "recognizer (ASR) transcript" in text and "vocoder/griffinlim" in text
    assert "text0_to_speech (text → speech)" in text and "audio0_to_text (audio → text)" in text


def test_minimal_report_still_renders(tmp_path):
    report = {"models": {"teacher": {"params": 1000, "non_embedding_params": 10, "layers": 1, "width": 8}},
              "benchmarks": {"tSC": {"teacher": 0.5, "student": 0.6}}, "seeds": [0], "std": {"tSC": {"student": 0.0}},
              "precision": {"name": "float32"}}
    page = write_report_html(tmp_path, report).read_text()
    text = " ".join(" ".join(parse(page).text).split())
    assert "<td>teacher</td><td>1</td><td>8</td>" in page
    assert "<td>tSC</td><td>0.500</td><td>0.600</td><td>-</td><td>-</td>" in page  # no CI, no ±, no ratio, no pair count
    for absent in ("No generated samples", "No held-out perplexity", "No paired tests", "No claims", "No uncorrected teacher",
                   "No plots", "wall time -"):
        assert absent in text
    assert "<audio" not in page and "<img" not in page


def test_empty_report_renders_and_bad_arguments_are_named(tmp_path):
    assert "report.json lists no models" in write_report_html(tmp_path, {}).read_text()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report_html(tmp_path / "missing", {})
    with pytest.raises(TypeError, match="report.json's dict"):
        write_report_html(tmp_path, [])  # type: ignore[arg-type]


def test_samples_without_index_json_come_from_generations_jsonl(tmp_path):
    """A demo run before samples/index.json existed: each model's generations.jsonl (tinywave/generate/outputs.py)."""
    for name in ("student", "teacher"):
        tiny_wav(tmp_path / "samples" / name / "0.wav")
        rows = [{"index": 0, "prompt_id": "text0_to_speech", "prompt": "the cat", "transcript": f"[Hu1] {name}", "text": "",
                 "stop": "eos", "seconds": 0.5, "wav": "0.wav"}]
        (tmp_path / "samples" / name / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = write_report_html(tmp_path, {"samples": "samples/index.md"}).read_text()
    assert sorted(a["src"] for a in parse(page).attrs("audio")) == ["samples/student/0.wav", "samples/teacher/0.wav"]
    assert page.index('data-model="teacher"') < page.index('data-model="student"')  # teacher first whatever the folder order


def test_missing_or_outside_audio_gets_a_note_not_a_player(tmp_path):
    index = {"models": {"teacher": [{"prompt_id": "p", "kind": "audio_to_speech", "prompt_audio": "/elsewhere/p.wav",
                                     "wav": "samples/teacher/0.wav", "transcript": "[Hu1]"},
                                    {"prompt_id": "q", "kind": "text_to_speech", "wav": "../up.wav", "transcript": "[Hu2]"}]}}
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "index.json").write_text(json.dumps(index))
    page = write_report_html(tmp_path, {}).read_text()
    assert "<audio" not in page
    assert "samples/teacher/0.wav is missing" in page and "/elsewhere/p.wav is outside the report folder" in page
    assert "../up.wav is outside the report folder" in page


# ---------------------------------------------------------------- browser


AUDIO_METADATA = """Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
  const t = setTimeout(() => done([a.getAttribute('src'), 'timeout']), 10000);
  a.addEventListener('loadedmetadata', () => { clearTimeout(t); done([a.getAttribute('src'), a.duration]); });
  a.addEventListener('error', () => { clearTimeout(t); done([a.getAttribute('src'), 'error ' + (a.error && a.error.code)]); });
  a.preload = 'metadata'; a.load();
})))"""

VISIBLE = """(() => {
  const shown = el => { const r = el.getBoundingClientRect(), s = getComputedStyle(el);
                        return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const table = document.getElementById('model-table');
  return {table: !!table && shown(table), rows: table ? table.tBodies[0].rows.length : 0,
          first: table ? table.tBodies[0].rows[0].cells[0].textContent : '',
          players: [...document.querySelectorAll('audio[controls]')].filter(shown).length,
          images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
          width: document.documentElement.scrollWidth};
})()"""


@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: the browser check needs Debian's chromium package "
                                                   "(apt-get install chromium)")
def test_report_opens_in_chromium_without_console_errors(tmp_path):
    out = demo_folder(tmp_path)
    page = write_report_html(out, json.loads((out / "report.json").read_text()))
    control = tmp_path / "control.html"  # proves errors are caught: a missing image and a console.error
    control.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><img src="missing.png">'
                       '<script>console.error("control error")</script></body></html>')
    with HeadlessChromium(tmp_path / "profile") as browser:
        browser.open(control.as_uri())
        caught = browser.console_errors()
        assert any("control error" in e for e in caught) and any("missing.png" in e for e in caught), caught

        browser.events.clear()
        browser.open(page.as_uri())
        assert browser.console_errors() == []
        seen = browser.evaluate(VISIBLE)
        assert seen["table"] and seen["rows"] == 4 and seen["first"] == "teacher", seen
        assert seen["players"] == 3 and seen["images"] == [True, True], seen
        assert seen["width"] <= 1280, seen  # nothing wider than the window
        shot = browser.screenshot(tmp_path / "report.png")
        # the players resolve their relative wavs: Chromium reads each one's duration
        durations = dict(browser.evaluate(AUDIO_METADATA))
        assert browser.console_errors() == []
        assert durations == {"samples/prompts/prompt0.wav": pytest.approx(0.3, abs=0.01),
                             "samples/teacher/0.wav": pytest.approx(0.5, abs=0.01),
                             "samples/student/0.wav": pytest.approx(0.5, abs=0.01)}, durations
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000

"""The Gradio page: one prompt, one panel per model, audio streamed into each panel.

    blocks = build_app({"teacher": lm_t, "student": lm_s}, controls, descriptions={...})
    blocks.launch(server_name="127.0.0.1", server_port=7860)

The ``generate`` endpoint (also what ``gradio_client`` calls as ``/generate``) takes the
prompt text, a prompt audio file (upload or microphone), the output modality and the
sampling options; per model it returns, in panel order: the streamed audio, the output
tokens as text (the model's markers included), the timing figures and, once done, the
whole take as a 16 kHz WAV file.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio import audio_stream_encoder

from tinywave.app.compare import SAMPLE_RATE, Panel, prompt_items, side_by_side
from tinywave.audio.io import save_wav
from tinywave.generate.decode import Sampling
from tinywave.generate.speechlm import GenerationOptions

TEXT_EVERY = 8  # rounds of turns without new audio before the page's text is refreshed anyway
TIMING_HELP = ("Timing counts each model's own compute: the models take turns token by token, so the figures are what "
               "each would measure alone. `real_time_factor` is seconds of audio per second of compute (above 1: faster "
               "than real time); `tokens_per_s` includes the prompt's prefill; audio prompts are tokenized before the clocks start.")


@dataclass(frozen=True, kw_only=True)
class Controls:
    """The page's generation controls (initial values: `tinywave generate`'s defaults, see the app recipe)."""

    modality: str
    greedy: bool
    temperature: float
    top_p: float
    top_k: int
    seed: int
    max_new_tokens: int
    max_seconds: float
    allow_eos: bool
    chunk_units: int  # units per streamed audio chunk (not on the page)


def generation_options(controls: Controls) -> Any:
    sampling = Sampling(controls.greedy, float(controls.temperature), int(controls.top_k), float(controls.top_p), int(controls.seed))
    return GenerationOptions(max_new_tokens=int(controls.max_new_tokens), max_seconds=float(controls.max_seconds),
                             allow_eos=bool(controls.allow_eos), sampling=sampling, chunk_units=controls.chunk_units)


def pcm16(chunk: np.ndarray) -> tuple[int, np.ndarray]:
    """Gradio's audio value; int16 so it does not rescale each chunk to its own peak."""
    return SAMPLE_RATE, (np.clip(chunk, -1.0, 1.0) * 32767).astype(np.int16)


class Generator:
    """The page's generate handler: streams frames of every model into its panel."""

    def __init__(self, models: Mapping[str, Any], defaults: Controls, wav_dir: Path):
        self.models, self.defaults, self.wav_dir = models, defaults, wav_dir
        self.requests = itertools.count()

    def generate(self, text: str | None, audio: str | None, modality: str, greedy: bool, temperature: float, top_p: float,
                 top_k: float, seed: float, max_new_tokens: float, max_seconds: float, allow_eos: bool) -> Iterator[list[Any]]:
        controls = Controls(modality=modality, greedy=bool(greedy), temperature=temperature, top_p=top_p, top_k=int(top_k or 0),
                            seed=int(seed or 0), max_new_tokens=int(max_new_tokens), max_seconds=max_seconds,
                            allow_eos=bool(allow_eos), chunk_units=self.defaults.chunk_units)
        try:
            options = generation_options(controls)
            frames = side_by_side(self.models, prompt_items(text, audio), modality, options)
            first = next(frames)  # every prompt error surfaces here, before the panels are cleared
        except (ValueError, FileNotFoundError) as exc:
            raise gr.Error(str(exc), title="Cannot generate") from None
        request, wavs = next(self.requests), {}
        yield self._values(first, request, wavs, clear=True)
        for n, frame in enumerate(frames, start=1):
            newly_done = any(p.done and name not in wavs for name, p in frame.items())
            if newly_done or any(p.chunk is not None for p in frame.values()) or n % TEXT_EVERY == 0:
                yield self._values(frame, request, wavs)

    def _values(self, frame: dict[str, Panel], request: int, wavs: dict[str, str | None], clear: bool = False) -> list[Any]:
        """Per model: new audio, output tokens, timing, and the wav (written once, when the model finishes).

        Every message carries every panel's text, timing and wav in full (a client reading only
        the last message gets them all); audio is only ever a new chunk of the panel's stream.
        """
        values: list[Any] = []
        for name in self.models:
            panel = frame[name]
            # clearing is a property update: a None value would open the stream with an empty playlist
            audio = pcm16(panel.chunk) if panel.chunk is not None else (gr.update(value=None) if clear else gr.skip())
            if panel.done and name not in wavs:
                wavs[name] = self._wav(name, panel.result.audio, request)
            values += [audio, panel.transcript, panel.timing.row(), wavs.get(name)]
        return values

    def _wav(self, name: str, audio: np.ndarray | None, request: int) -> str | None:
        if audio is None or not len(audio):
            return None
        path = self.wav_dir / f"{request:04d}-{name}.wav"
        save_wav(path, audio)
        return str(path)


def _panel(name: str, description: str, autoplay: bool) -> list[Any]:
    with gr.Column(elem_id=f"panel-{name}", elem_classes=["model-panel"]):
        gr.Markdown(f"### {name}\n{description}")
        audio = gr.Audio(label=f"{name}: speech (streamed)", streaming=True, autoplay=autoplay, interactive=False,
                         buttons=["download"])
        text = gr.Textbox(label=f"{name}: output tokens", lines=4, max_lines=8, interactive=False)
        timing = gr.JSON(label=f"{name}: timing")
        wav = gr.File(label=f"{name}: 16 kHz wav", interactive=False)
    return [audio, text, timing, wav]


def _controls(defaults: Controls) -> list[Any]:
    with gr.Row():
        text = gr.Textbox(label="prompt text", placeholder="the little cat", lines=2, scale=2)
        audio = gr.Audio(label="prompt audio (file or microphone)", sources=["upload", "microphone"], type="filepath",
                         format="wav", scale=2)
        modality = gr.Radio(["speech", "text"], value=defaults.modality, label="output", scale=1)
    with gr.Accordion("sampling", open=False):
        with gr.Row():
            greedy = gr.Checkbox(value=defaults.greedy, label="greedy")
            temperature = gr.Slider(0.1, 2.0, value=defaults.temperature, step=0.05, label="temperature")
            top_p = gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.01, label="top p")
            top_k = gr.Number(value=defaults.top_k, precision=0, minimum=0, label="top k (0: all)")
        with gr.Row():
            seed = gr.Number(value=defaults.seed, precision=0, label="seed")
            max_new_tokens = gr.Slider(1, 1000, value=defaults.max_new_tokens, step=1, label="max new tokens")
            max_seconds = gr.Slider(0.0, 60.0, value=defaults.max_seconds, step=0.5, label="max seconds of speech (0: no limit)")
            allow_eos = gr.Checkbox(value=defaults.allow_eos, label="speech may end before the limits (EOS; text always may)")
    return [text, audio, modality, greedy, temperature, top_p, top_k, seed, max_new_tokens, max_seconds, allow_eos]


def wait_for_first_audio_frames(seconds: float = 5.0) -> None:
    """Let Gradio's AAC encoder take up to ``seconds`` for a stream's first frames.

    Its default (0.1 s) is shorter than ffmpeg's start on a busy CPU; the page is then sent
    a stream whose playlist is still empty, and its player logs errors until it recovers.
    The wait ends as soon as the first frames are out, so an idle machine loses nothing.
    """
    if hasattr(audio_stream_encoder, "STARTUP_WAIT"):
        audio_stream_encoder.STARTUP_WAIT = max(audio_stream_encoder.STARTUP_WAIT, seconds)


def build_app(models: Mapping[str, Any], defaults: Controls, descriptions: Mapping[str, str] | None = None,
              autoplay: str = "", wav_dir: Path | None = None) -> gr.Blocks:
    """The page for ``models`` (name -> SpeechLM), panels in the mapping's order.

    ``autoplay``: the model whose stream starts playing by itself ('' for none; two at
    once would talk over each other). ``wav_dir``: where finished takes are written
    (default: a fresh temporary folder).
    """
    if autoplay and autoplay not in models:
        raise ValueError(f"autoplay={autoplay!r} is not one of the models {list(models)}; use one of them or ''")
    wait_for_first_audio_frames()
    handler = Generator(models, defaults, wav_dir or Path(tempfile.mkdtemp(prefix="tinywave-app-")))
    with gr.Blocks(title="TinyWave: teacher and student", analytics_enabled=False) as blocks:
        gr.Markdown("## TinyWave: " + " vs ".join(models) + "\nOne prompt, every model continues it; speech streams in as it is made.")
        inputs = _controls(defaults)
        button = gr.Button("Generate", variant="primary", elem_id="generate")
        outputs: list[Any] = []
        with gr.Row(equal_height=False):
            for name in models:
                outputs += _panel(name, (descriptions or {}).get(name, ""), autoplay == name)
        gr.Markdown(TIMING_HELP)
        button.click(handler.generate, inputs, outputs, api_name="generate", concurrency_limit=1)
    return blocks

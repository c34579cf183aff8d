"""Recipe: the local listening app, a teacher and a student side by side in the browser.

    tinywave app                                    # the demo's models (make app)
    tinywave app --demo runs/demo --port 7861       # another `tinywave demo --out` folder
    tinywave app --teacher T --student S --vocoder V --int8

Serves a Gradio page on 127.0.0.1 (this machine only): a prompt (text, an audio file or
the microphone), the output modality and sampling options; both models continue it and
their audio streams into their panels as it is vocoded, with the output tokens, the
timing (time to first token and audio, tokens/s, real-time factor) and the finished
16 kHz WAV. Needs the ``app`` extra (Gradio) and ffmpeg, which Gradio's streamed audio
is encoded with. The folders are checked before anything loads; a demo that has not
been run is named with the command that makes it.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinywave.config import field
from tinywave.recipes.demo import sample_vocoder
from tinywave.recipes.generate import Config as Generate

log = logging.getLogger(__name__)
ROLES = ("teacher", "student")


@dataclass
class Config:
    demo: str = field("demo_out", help="a `tinywave demo` output folder: teacher, student and vocoder default to its "
                                       "models/teacher, models/student and vocoder")
    teacher: str = field("", help="teacher model directory (default <demo>/models/teacher)")
    student: str = field("", help="student model directory (default <demo>/models/student)")
    vocoder: str = field("", help="vocoder directory (default <demo>/vocoder, its HiFi-GAN if that beat the Griffin-Lim "
                                  "baseline, else the baseline); 'none': output tokens only")
    host: str = field("127.0.0.1", help="address to serve on (127.0.0.1: this machine only)")
    port: int = field(7860, help="port (0: the first free one from 7860)")
    autoplay: str = field("student", help="the model whose stream plays by itself: teacher, student or '' (neither)")
    dtype: str = field("fp32", help="fp32 or bf16 (float32, bfloat16 also work)")
    int8: bool = field(False, help="int8 linear layers, as `tinywave generate --int8`")
    int8_backend: str = field("tinywave", help="int8 quantizer: tinywave or torchao, as `tinywave generate int8_backend=...`")
    open_browser: bool = field(False, help="open the page in the default browser")


def resolve_folders(cfg: Config) -> dict[str, Path | None]:
    """teacher / student / vocoder folders (vocoder None: 'none'); FileNotFoundError lists every missing one."""
    demo = Path(cfg.demo)
    defaults = {"teacher": demo / "models" / "teacher", "student": demo / "models" / "student", "vocoder": demo / "vocoder"}
    given = {"teacher": cfg.teacher, "student": cfg.student, "vocoder": cfg.vocoder}
    folders: dict[str, Path | None] = {k: Path(v) if v else defaults[k] for k, v in given.items()}
    if cfg.vocoder == "none":
        folders["vocoder"] = None
    missing = [k for k, p in folders.items() if p is not None and not p.is_dir()]
    from_demo = [k for k in missing if not given[k]]
    if from_demo:
        names = ", ".join(str(folders[k]) for k in from_demo)
        raise FileNotFoundError(f"{names} not found: the demo has not been run in {demo} (or has not finished). Run `make demo` "
                                f"(or `tinywave demo --out {demo}`) first, or point --teacher/--student/--vocoder at your own folders")
    if missing:
        k = missing[0]
        what = "a vocoder folder (`tinywave vocoder train` output) or none" if k == "vocoder" else "a model folder (`tinywave export` output)"
        raise FileNotFoundError(f"--{k} {folders[k]}: folder not found; give {what}")
    return folders


def pick_vocoder(folder: Path) -> Path:
    """A demo's vocoder folder (with eval.json) -> the vocoder its samples use; any other folder as it is."""
    if not (folder / "eval.json").is_file():
        return folder
    return sample_vocoder(folder)


def describe(lm: Any, folder: Path, int8: bool) -> str:
    c = lm.model.config
    size = "int8 linears" if int8 else f"{sum(p.numel() for p in lm.model.parameters()) / 1e6:.2f} M parameters"
    return f"{c.num_hidden_layers} layers, width {c.hidden_size}, {size} · `{folder}`"


def load_models(folders: dict[str, Path | None], dtype: str, int8: bool, int8_backend: str = "tinywave") -> dict[str, Any]:
    """Both models with the vocoder loaded now (errors at start, not on the first click)."""
    from tinywave.generate.speechlm import SpeechLM  # lazy: torch and transformers (~4 s); `tinywave app --help` loads neither

    vocoder = pick_vocoder(folders["vocoder"]) if folders["vocoder"] is not None else "none"
    models = {role: SpeechLM.load(folders[role], vocoder, dtype, int8, int8_backend=int8_backend) for role in ROLES}
    for role, lm in models.items():
        lm.vocoder  # noqa: B018  (loads it)
        if not (Path(folders[role]) / "speech_tokenizer").is_dir():
            log.warning("%s has no speech_tokenizer/: audio prompts will be refused for the %s", folders[role], role)
    log.info("vocoder: %s", vocoder)
    return models


def controls() -> Any:
    """The page's initial sampling options: `tinywave generate`'s defaults."""
    from tinywave.app.ui import Controls  # lazy: app.ui imports gradio (the optional app extra) and torch

    g = Generate()
    return Controls(modality=g.modality, greedy=g.greedy, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, seed=g.seed,
                    max_new_tokens=g.max_new_tokens, max_seconds=g.max_seconds, allow_eos=g.allow_eos, chunk_units=g.chunk_units)


def check_web_stack(streams_audio: bool) -> None:
    """Gradio (the ``app`` extra) and, for streamed audio, the ffmpeg program it encodes with."""
    try:
        # lazy: gradio is an optional extra (app); this checks that it is installed
        import gradio  # noqa: F401
    except ModuleNotFoundError:
        raise ValueError("tinywave app needs Gradio, an optional extra: pip install -e '.[app]' "
                         "(`make setup` installs it)") from None
    if streams_audio and shutil.which("ffmpeg") is None:
        raise FileNotFoundError("ffmpeg is not on PATH: Gradio encodes the streamed audio with it; install it "
                                "(apt-get install ffmpeg; `make setup` does) or run with --vocoder none for tokens only")


def run(cfg: Config) -> int:
    # 1. folders and the optional dependency, checked before anything heavy loads
    folders = resolve_folders(cfg)
    if cfg.autoplay not in ("", *ROLES):
        raise ValueError(f"autoplay={cfg.autoplay!r}: choose teacher, student or '' (neither)")
    check_web_stack(streams_audio=folders["vocoder"] is not None)
    from tinywave.app.ui import build_app  # lazy: gradio (the optional app extra) and torch, only once the checks passed

    # 2. the models and the vocoder
    models = load_models(folders, cfg.dtype, cfg.int8, cfg.int8_backend)
    descriptions = {role: describe(lm, folders[role], cfg.int8) for role, lm in models.items()}
    # 3. the page, served until interrupted
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests
    blocks = build_app(models, controls(), descriptions, autoplay=cfg.autoplay)
    _, url, _ = blocks.launch(server_name=cfg.host, server_port=cfg.port or None, inbrowser=cfg.open_browser,
                              prevent_thread_lock=True, quiet=True)
    log.info("tinywave app: %s (teacher %s, student %s); Ctrl-C stops it", url, folders["teacher"], folders["student"])
    blocks.block_thread()
    return 0

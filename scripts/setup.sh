#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine (Python 3.11, no GPU):
# espeak-ng from apt, a virtualenv with the CPU build of torch 2.13.0 and tinywave[dev].
# Every step must succeed: the first one that fails stops the set-up, printing its command
# and output, and the script exits non-zero (so `make` writes its "installed" stamp only
# after a set-up that worked). The last step imports the installed packages from a folder
# outside the repository, where a `tinywave` folder in the working directory cannot stand in.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# step DESCRIPTION COMMAND...: run COMMAND, output captured; on failure print both and stop.
step() {
  local what=$1 log
  shift
  echo "[setup] $what"
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    {
      echo "[setup] FAILED: $what"
      echo "[setup] command: $*"
      echo "[setup] its output (last 40 lines, without pip's notes on ignored index locations):"
      { grep -v 'is ignored' "$log" || true; } | tail -n 40 | sed 's/^/    /'
      echo "[setup] fix the cause above and rerun \`make setup\` (nothing was marked as installed)"
    } >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
apt_install() {
  step "apt-get update" $SUDO apt-get update -qq
  step "installing $* (apt-get)" $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
if ! ldconfig -p 2>/dev/null | grep -q 'libespeak-ng.so.1' || ! command -v espeak-ng >/dev/null 2>&1; then
  apt_install espeak-ng libespeak-ng1 libsndfile1
fi
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium  # for the browser tests
fi
if ! command -v ffmpeg >/dev/null 2>&1; then
  apt_install --no-install-recommends ffmpeg  # Gradio encodes `tinywave app`'s streamed audio with it
fi

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV" "$PYTHON" -m venv "$VENV"
fi
VENV_PY="$(cd "$VENV" && pwd)/bin/python"
step "upgrading pip" "$VENV_PY" -m pip install -q --upgrade pip
# Pin the CPU build first: an unpinned torch would pull a multi-GB CUDA build.
step "installing torch==2.13.0 (CPU build)" "$VENV_PY" -m pip install -q "torch==2.13.0"
step "installing tinywave[dev] and its dependencies from pyproject.toml" "$VENV_PY" -m pip install -q -e ".[dev]"

# -I: no PYTHONPATH, no user site, no working directory on sys.path; run from an empty folder
CHECK_DIR=$(mktemp -d)
trap 'rm -rf "$CHECK_DIR"' EXIT
step "checking the installed packages import (from $CHECK_DIR, outside the repository)" \
  env -C "$CHECK_DIR" "$VENV_PY" -I -c "import torch, transformers, tinywave, tinywave.cli, pytest, pytest_timeout, hypothesis, datasets, gradio, gradio_client"
env -C "$CHECK_DIR" "$VENV_PY" -I -c "import torch, transformers, tinywave
print('[setup] torch', torch.__version__, '| transformers', transformers.__version__, '| tinywave', tinywave.__path__[0])"

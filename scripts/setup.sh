#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine (Python 3.11, no GPU):
# espeak-ng from apt, a virtualenv with the CPU build of torch 2.13.0 and tinywave[dev].
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if ! ldconfig -p 2>/dev/null | grep -q 'libespeak-ng.so.1' || ! command -v espeak-ng >/dev/null 2>&1; then
  echo "[setup] installing espeak-ng (apt-get)"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng libespeak-ng1 libsndfile1 >/dev/null
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "[setup] installing chromium for the browser tests (apt-get)"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
# Pin the CPU build first: an unpinned torch would pull a multi-GB CUDA build.
$PIP install -q "torch==2.13.0" 2>&1 | grep -v 'is ignored' || true
$PIP install -q -e ".[dev]" 2>&1 | grep -v 'is ignored' || true
$VENV/bin/python -c "import torch, transformers, tinywave; print('[setup] torch', torch.__version__, '| transformers', transformers.__version__)"

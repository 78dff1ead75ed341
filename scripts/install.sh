#!/usr/bin/env bash
# Install harness into a virtual environment (default .venv; set HARNESS_VENV to change it).
#   bash scripts/install.sh          # the project
#   bash scripts/install.sh test     # the project and what the test suite needs
# Data packages are installed with --no-deps: bfcl-eval ships BFCL's data files, and its own
# declared dependencies (numpy 1.26 pins, a dozen provider SDKs) would wreck the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HARNESS_VENV:-.venv}"
EXTRAS="${1:+[$1]}"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e ".${EXTRAS}"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "bfcl-eval==2026.3.23"
echo "harness installed in $VENV ($("$VENV/bin/harness" --version))"

#!/usr/bin/env bash
# The whole test suite: lint, the client's build and unit tests, then every Python test
# (unit, the real server over stdio with the real default model, and the real VS Code
# end-to-end). Assumes scripts/setup.sh ran (`make test` does both).
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
export WREN_E2E="${WREN_E2E:-1}"

echo "== lint (ruff, mypy, import-linter contracts)"
"$VPY" -m ruff check server tests scripts
"$VPY" -m ruff format --check server tests scripts
"$VPY" -m mypy
.venv/bin/lint-imports --no-cache

echo "== client: install, lint, unit tests, package"
(
  cd client-vscode
  npm ci --no-audit --no-fund --loglevel=error
  npm run lint
  npm test
  npm run package
)

echo "== end-to-end tools (cached in .tools/)"
bash scripts/e2e_setup.sh

echo "== python tests"
set +e
"$VPY" -m pytest -p no:cacheprovider -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here"
  exit 1
fi
exit "$rc"

#!/usr/bin/env bash
# Real code for the per-language suites (scripts/eval_languages.py, eval_actions_languages.py):
# Debian's Go and Rust library sources and the JDK's sources. TypeScript/JavaScript come from
# client-vscode/node_modules (npm ci), C examples and C++ headers from packages already present
# on a Debian machine with a compiler. Idempotent; needs apt-get and root (or sudo -n).
set -euo pipefail
PACKAGES=(golang-github-google-go-cmp-dev golang-github-pkg-errors-dev
  librust-regex-syntax-dev librust-itertools-dev openjdk-17-source zlib1g-dev libpng-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "[eval-data] all present: ${PACKAGES[*]}"
  exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo -n"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[eval-data] apt-get not found: install ${missing[*]} (or their sources) by hand" >&2
  exit 1
fi
echo "[eval-data] installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
echo "[eval-data] done"

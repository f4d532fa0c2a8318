#!/usr/bin/env bash
# Install the tools the editor end-to-end test needs, into a git-ignored folder.
#
#   scripts/e2e_setup.sh            # installs into .tools/ (or $WREN_TOOLS)
#
# Idempotent: every step is skipped when its result is already there. Installs
#   - Node 24 (code-server refuses other versions), from the npm registry (`node@24`)
#   - Debian build deps for code-server's native modules, and Chromium
#   - code-server 4.139.1 (VS Code 1.139.1), built against Node 24's headers
#   - playwright-core (drives the system Chromium; never downloads a browser)
# Nothing is downloaded at test time.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${WREN_TOOLS:-$REPO_ROOT/.tools}"
CODE_SERVER_VERSION="4.139.1"
PLAYWRIGHT_VERSION="${WREN_PLAYWRIGHT_VERSION:-1.65.1}"

log() { printf '[e2e_setup] %s\n' "$*" >&2; }
mkdir -p "$TOOLS"
start=$(date +%s)

# --- 1. Node 24 ---------------------------------------------------------------
NODE_DIR="$TOOLS/node24"
NODE_BIN="$NODE_DIR/node_modules/node/bin/node"
if [[ -x "$NODE_BIN" ]] && "$NODE_BIN" --version | grep -q '^v24\.'; then
  log "node 24 present: $("$NODE_BIN" --version)"
else
  log "installing node@24 into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && { [[ -f package.json ]] || echo '{"private":true}' > package.json; } \
    && npm install --no-save --no-audit --no-fund node@24)
fi
NODE_HEADERS="$(dirname "$(find "$NODE_DIR/node_modules" -path '*node-linux-*/include/node' -type d | head -n1)")"
NODE_HEADERS="$(dirname "$NODE_HEADERS")" # the folder that holds include/node
if [[ ! -f "$NODE_HEADERS/include/node/node.h" ]]; then
  log "Node 24 headers not found under $NODE_DIR"; exit 1
fi

# --- 2. Debian packages -------------------------------------------------------
DEB_PKGS=(libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config chromium)
missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages present"
fi

# --- 3. code-server -----------------------------------------------------------
CS_DIR="$TOOLS/code-server"
CS_BIN="$CS_DIR/node_modules/code-server/out/node/entry.js"
if [[ -f "$CS_BIN" ]] && grep -q "\"version\": \"$CODE_SERVER_VERSION\"" "$CS_DIR/node_modules/code-server/package.json" \
   && [[ -f "$CS_DIR/.wren-installed" ]]; then
  log "code-server $CODE_SERVER_VERSION present"
else
  log "installing code-server@$CODE_SERVER_VERSION into $CS_DIR (several minutes)"
  mkdir -p "$CS_DIR"
  rm -f "$CS_DIR/.wren-installed"
  (cd "$CS_DIR" && { [[ -f package.json ]] || echo '{"private":true}' > package.json; } \
    && PATH="$(dirname "$NODE_BIN"):$PATH" npm install --no-save --no-audit --no-fund \
         --nodedir="$NODE_HEADERS" "code-server@$CODE_SERVER_VERSION")
  touch "$CS_DIR/.wren-installed"
fi

# A launcher that always runs code-server under Node 24.
cat > "$TOOLS/code-server.sh" <<EOF
#!/usr/bin/env bash
exec "$NODE_BIN" "$CS_BIN" "\$@"
EOF
chmod +x "$TOOLS/code-server.sh"

# --- 4. playwright-core -------------------------------------------------------
PW_DIR="$TOOLS/playwright"
if [[ -f "$PW_DIR/node_modules/playwright-core/package.json" ]]; then
  log "playwright-core present"
else
  log "installing playwright-core@$PLAYWRIGHT_VERSION into $PW_DIR"
  mkdir -p "$PW_DIR"
  (cd "$PW_DIR" && { [[ -f package.json ]] || echo '{"private":true}' > package.json; } \
    && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-audit --no-fund \
         "playwright-core@$PLAYWRIGHT_VERSION")
fi

CHROMIUM="$(command -v chromium || true)"
[[ -n "$CHROMIUM" ]] || { log "chromium not found after install"; exit 1; }

log "done in $(( $(date +%s) - start ))s: node $("$NODE_BIN" --version), code-server $CODE_SERVER_VERSION, chromium $("$CHROMIUM" --version 2>/dev/null | awk '{print $2}')"

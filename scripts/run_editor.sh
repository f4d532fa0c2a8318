#!/usr/bin/env bash
# Wren in an editor, for a newcomer: build the extension, then
#   - with VS Code's `code` on PATH: install the .vsix there and open a sample workspace;
#   - otherwise: start code-server (VS Code in the browser) on 127.0.0.1 with the extension
#     installed and a sample workspace, print the URL, and wait (Ctrl+C stops it).
#
#   scripts/run_editor.sh                 # WREN_PORT=8080 by default
#   WREN_USE_CODE_SERVER=1 scripts/run_editor.sh   # use code-server even if `code` exists
#
# Assumes scripts/setup.sh made .venv (`make run` does both). code-server and Node 24 come from
# scripts/e2e_setup.sh, which this runs when they are missing.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${WREN_TOOLS:-$REPO_ROOT/.tools}"
PORT="${WREN_PORT:-8080}"
PYTHON="$REPO_ROOT/.venv/bin/python"
SAMPLE="$TOOLS/sample-workspace"

log() { printf '[run_editor] %s\n' "$*" >&2; }

if [[ ! -x "$PYTHON" ]] || ! "$PYTHON" -c "import wren" 2>/dev/null; then
  log "no .venv with wren installed at $REPO_ROOT/.venv: run scripts/setup.sh (or make setup) first"
  exit 1
fi

# --- build the extension ------------------------------------------------------
cd "$REPO_ROOT/client-vscode"
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "packaging the extension"
npm run --silent package >/dev/null
VERSION="$(node -p "require('./package.json').version")"
VSIX="$REPO_ROOT/client-vscode/wren-$VERSION.vsix"
log "built $VSIX"

# --- a sample workspace -------------------------------------------------------
mkdir -p "$SAMPLE/.vscode"
if [[ ! -f "$SAMPLE/inventory.py" ]]; then
  cat > "$SAMPLE/inventory.py" <<'EOF'
"""A small inventory: try Wren here.

- Type inside a function body and wait for ghost text; Tab accepts, Alt+\ asks explicitly.
- Select a function, right-click: Wren: Explain / Wren: Fix.
- Put the cursor under the last comment and run Wren: Generate from Comment.
"""
from dataclasses import dataclass, field


@dataclass
class Item:
    name: str
    price: float
    quantity: int = 0


@dataclass
class Inventory:
    items: dict[str, Item] = field(default_factory=dict)

    def add(self, item: Item) -> None:
        """Add an item, or increase the quantity of one we already have."""
        if item.name in self.items:
            self.items[item.name].quantity += item.quantity
        else:
            self.items[item.name] = item

    def total_value(self) -> float:
        """The value of everything in stock (there is a bug here for Wren: Fix)."""
        return sum(itme.price * item.quantity for item in self.items.values())

    def cheapest(self) -> Item:
        """The item with the lowest price (a harder bug: the default 135M model misses it)."""
        return max(self.items.values(), key=lambda item: item.price)

    # Return the names of the items whose quantity is below `threshold`, sorted by name.
EOF
fi
# The workspace's interpreter for Wren: the repository's venv (applies once the folder is trusted).
cat > "$SAMPLE/.vscode/settings.json" <<EOF
{
  "wren.server.pythonPath": "$PYTHON"
}
EOF

# --- VS Code ------------------------------------------------------------------
if command -v code >/dev/null 2>&1 && [[ "${WREN_USE_CODE_SERVER:-0}" != "1" ]]; then
  log "installing into VS Code"
  code --install-extension "$VSIX" --force
  code "$SAMPLE" "$SAMPLE/inventory.py"
  log "opened $SAMPLE in VS Code (if Wren cannot find Python, set wren.server.pythonPath to $PYTHON)"
  exit 0
fi

# --- code-server --------------------------------------------------------------
if [[ ! -x "$TOOLS/code-server.sh" ]]; then
  log "code-server is not installed yet: running scripts/e2e_setup.sh (several minutes, once)"
  bash "$REPO_ROOT/scripts/e2e_setup.sh"
fi
PROFILE="$TOOLS/editor-profile"
EXTENSIONS="$TOOLS/editor-extensions"
mkdir -p "$PROFILE/User" "$EXTENSIONS"
# User settings: keep what is there, make sure Wren uses the repository's venv.
"$PYTHON" - "$PROFILE/User/settings.json" "$PYTHON" <<'EOF'
import json, sys
from pathlib import Path
path, python = Path(sys.argv[1]), sys.argv[2]
settings = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
settings["wren.server.pythonPath"] = python
settings.setdefault("workbench.startupEditor", "none")
# A newcomer should see Wren alone: no built-in AI chat panel beside it.
settings.setdefault("chat.disableAIFeatures", True)
settings.setdefault("workbench.secondarySideBar.defaultVisibility", "hidden")
path.write_text(json.dumps(settings, indent=2) + "\n")
EOF
CS=("$TOOLS/code-server.sh" --user-data-dir "$PROFILE" --extensions-dir "$EXTENSIONS")
"${CS[@]}" --install-extension "$VSIX" --force >/dev/null
log "installed $(basename "$VSIX") into code-server"

export XDG_CONFIG_HOME="$TOOLS/xdg-config" XDG_DATA_HOME="$TOOLS/xdg-data"
# In its own session, so that stopping it also stops the extension host and the Wren server.
setsid "${CS[@]}" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry --disable-update-check \
  "$SAMPLE" &
CS_PID=$!
trap 'kill -- "-$CS_PID" 2>/dev/null; wait "$CS_PID" 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  if curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
    break
  fi
  kill -0 "$CS_PID" 2>/dev/null || { log "code-server exited"; exit 1; }
  sleep 0.3
done
URL="http://127.0.0.1:$PORT/?folder=$SAMPLE"
echo
echo "  Wren is running in VS Code (code-server): $URL"
echo "  Open inventory.py; the status bar shows the model loading, then ready. Ctrl+C stops."
echo
wait "$CS_PID"

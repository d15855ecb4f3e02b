#!/usr/bin/env bash
# Installs the pinned real MCP peers used by tests/interop.rs into the git-ignored .interop/:
#
#   .interop/node   npm ci of tests/interop/package.json + package-lock.json
#                   (@modelcontextprotocol/sdk, @modelcontextprotocol/server-everything)
#   .interop/node2  npm ci of tests/interop/node2/ (TypeScript SDK v2: @modelcontextprotocol/
#                   server, client, core, node; zod 4 — apart from the 1.x SDK's zod 3)
#   .interop/py1    venv with tests/interop/requirements-py1.txt (mcp 1.x)
#   .interop/py2    venv with tests/interop/requirements-py2.txt (mcp 2.x)
#
# Idempotent: each part writes a stamp holding a hash of its pin files and of the tool
# version it was built with; when the stamp matches, the part is skipped (well under a second
# for all four). Anything else (a changed pin, a new Node/Python, a half-finished install)
# rebuilds that part from scratch.
#
# Environment: INTEROP_DIR (default <repo>/.interop), PYTHON (default python3), NPM (default npm),
# INTEROP_FORCE=1 to rebuild everything.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DEST="${INTEROP_DIR:-$ROOT/.interop}"
PYTHON="${PYTHON:-python3}"
NPM="${NPM:-npm}"
FORCE="${INTEROP_FORCE:-0}"

log() { printf 'interop-deps: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v node >/dev/null || die "node not found (Node 20+ is needed)"
command -v "$NPM" >/dev/null || die "$NPM not found"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (Python 3.10+ is needed)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$PYTHON is $("$PYTHON" -V 2>&1); mcp needs Python 3.10+"

mkdir -p "$DEST"

# One installer at a time (parallel `make` runs, two terminals).
if command -v flock >/dev/null; then
  exec 9>"$DEST/.install.lock"
  flock 9
fi

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---- npm peers ---------------------------------------------------------------------------
install_npm() { # name pin-dir must-exist...
  local name="$1" pins="$2" dir="$DEST/$1"
  shift 2
  local stamp="node=$(node --version) npm=$("$NPM" --version 2>/dev/null) pins=$(hash_of "$pins/package.json" "$pins/package-lock.json")"
  if [[ "$FORCE" != 1 && -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$stamp" ]]; then
    log "$name peers up to date"
    return
  fi
  log "installing $name peers into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$pins/package.json" "$pins/package-lock.json" "$dir/"
  # --ignore-scripts: none of the pinned packages needs an install script.
  "$NPM" ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
  local f
  for f in "$@"; do
    test -f "$dir/node_modules/$f" || die "$name: $f is missing after npm ci"
  done
  # The test runner compares these copies with the pins to detect a stale install.
  printf '%s' "$stamp" >"$dir/.stamp"
}
install_npm node "$HERE" \
  @modelcontextprotocol/server-everything/dist/index.js @modelcontextprotocol/sdk/package.json
install_npm node2 "$HERE/node2" \
  @modelcontextprotocol/server/package.json @modelcontextprotocol/client/package.json \
  @modelcontextprotocol/node/package.json zod/package.json

# ---- Python venvs ------------------------------------------------------------------------
py_version="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
install_venv() { # name requirements-file expected-mcp-version
  local name="$1" req="$2" want="$3" venv="$DEST/$1"
  local stamp="python=$py_version pins=$(hash_of "$req")"
  if [[ "$FORCE" != 1 && -f "$venv/.stamp" && "$(cat "$venv/.stamp")" == "$stamp" ]]; then
    log "$name venv up to date"
    return
  fi
  log "creating $name venv in $venv"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-virtualenv -r "$req" >&2
  local got
  got="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("mcp"))')"
  [[ "$got" == "$want" ]] || die "$name: expected mcp $want, got $got"
  # The test runner compares this copy with the pin file to detect a stale install.
  cp "$req" "$venv/requirements.txt"
  printf '%s' "$stamp" >"$venv/.stamp"
}
want_of() { sed -n 's/^mcp==\(.*\)$/\1/p' "$1"; }
install_venv py1 "$HERE/requirements-py1.txt" "$(want_of "$HERE/requirements-py1.txt")"
install_venv py2 "$HERE/requirements-py2.txt" "$(want_of "$HERE/requirements-py2.txt")"

log "peers ready in $DEST"

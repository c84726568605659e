# Sourced by scripts/start and scripts/test: make .venv and install what they need.
# Idempotent and quiet when everything is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else say "need root for: $*"; return 1
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || { say "please install: $*"; return 1; }
  say "installing $* (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_python() {
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    say "Python >= 3.10 with venv is needed"; apt_install python3 python3-venv python3-pip
  fi
  if [ ! -x "$PY" ]; then
    say "creating $VENV"
    "$python" -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip >/dev/null
  fi
}

ensure_node() {
  if ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm; fi
}

# pip_install EXTRAS: editable install of the package (builds the widget bundle) when
# pyproject.toml or the JS sources changed since the last install.
pip_install() {
  local extras="$1" stamp="$VENV/.installed-$1" bundle="$ROOT/jupyter_streamchat/static/widget.js"
  ensure_python
  ensure_node
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ ! -f "$bundle" ] \
     || [ -n "$(find "$ROOT/js/src" "$ROOT/js/package.json" -newer "$stamp" 2>/dev/null | head -1)" ]; then
    say "installing jupyter_streamchat[$extras] into .venv"
    rm -f "$bundle"
    "$PY" -m pip install -q -e "$ROOT[$extras]" 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$PY" -c 'import jupyter_streamchat' || { say "pip install failed"; exit 1; }
    [ -f "$bundle" ] || { say "the widget bundle was not built"; exit 1; }
    touch "$stamp"
  fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then apt_install chromium; fi
}

export PATH="$VENV/bin:$PATH"

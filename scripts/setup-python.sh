#!/usr/bin/env bash
# Creates, idempotently, the Python venv that the end-to-end tests use to send
# traces with the real OpenTelemetry SDK (tests/otel/send.py), and installs
# tests/otel/requirements.txt into it only when that file changed since the
# last install (a sha256 stamp is kept inside the venv). Works from any cwd.
# The venv lives at ${FLUO_PY_VENV:-$HOME/.cache/fluo-venv}; its path is the
# last line printed on stdout (progress messages go to stderr).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$repo_root/tests/otel/requirements.txt"
venv="${FLUO_PY_VENV:-$HOME/.cache/fluo-venv}"
stamp="$venv/.fluo-requirements.sha256"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "" 2>/dev/null; then
  echo "setup-python: creating venv at $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi

wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "setup-python: installing $requirements" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "$wanted" >"$stamp"
fi

echo "$venv"

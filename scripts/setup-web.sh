#!/usr/bin/env bash
# Builds the web console (web/ → web/dist, which `fluo serve --web-dir` serves
# at /): checks Node.js (Vite 8 needs 20.19 or newer), installs the locked npm
# packages with `npm ci` only when web/package-lock.json changed since the last
# install (a sha256 stamp in web/node_modules), then type-checks and bundles.
# Works from any cwd; nothing is fetched at run time by the built console.
set -euo pipefail

web="$(cd "$(dirname "${BASH_SOURCE[0]}")/../web" && pwd)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup-web: Node.js 20.19+ and npm are needed to build the console (https://nodejs.org)" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "setup-web: Node.js $(node --version) is too old; the console's build (Vite 8) needs 20.19 or newer" >&2
  exit 1
fi

stamp="$web/node_modules/.fluo-lock.sha256"
wanted="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "setup-web: installing the console's npm packages (npm ci)" >&2
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$wanted" >"$stamp"
fi
echo "setup-web: building the console" >&2
(cd "$web" && npm run --silent build >/dev/null)
echo "setup-web: console built in $web/dist" >&2

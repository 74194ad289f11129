#!/usr/bin/env bash
# Installs, idempotently, what building and testing FLUO needs on a fresh
# Debian 12 machine with rustup: the wasm32-wasip1 Rust target and the Debian
# packages the Javy plugin build uses (clang-19 compiles QuickJS for wasm32,
# llvm-ar-19 indexes its archive, libclang for rquickjs' bindgen, wasi-libc's
# headers), and curl and jq, which the docs/api.md examples (run by
# tests/api_examples.rs) use. With the argument `test` it also installs
# Debian's chromium, which the console's browser tests (tests/browser.rs, with
# Playwright's `executablePath`) drive headless; no browser is downloaded —
# and Debian's prometheus, which the metrics test (tests/hardening_ingest.rs)
# starts on loopback to scrape the served /metrics, and Debian's
# prometheus-alertmanager, which the notification test (tests/notifications.rs)
# starts on loopback to receive FLUO's alerts.
# Safe to run again: it only installs what is missing.
set -euo pipefail

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  echo "setup: adding the wasm32-wasip1 Rust target"
  rustup target add wasm32-wasip1
fi

packages=(clang-19 llvm-19 libclang-19-dev wasi-libc curl jq)
if [ "${1:-}" = test ]; then
  packages+=(chromium prometheus prometheus-alertmanager)
fi
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "setup: toolchain ready"

#!/usr/bin/env bash
# Installs what the build needs beyond rustup/cargo: the wasm32-wasip2 target (the plugins are
# WebAssembly components built from source). Safe to run again.
set -euo pipefail
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
if ! command -v rustup >/dev/null 2>&1; then
  echo "rustup is required to add the wasm32-wasip2 target" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

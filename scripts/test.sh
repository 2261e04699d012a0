#!/usr/bin/env bash
# Sets up and runs every test: host, SDK and end-to-end tests (guest components are built from
# source by the build), then the example plugins' own native unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked
cargo test --locked --manifest-path plugins-examples/Cargo.toml

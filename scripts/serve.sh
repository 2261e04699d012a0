#!/usr/bin/env bash
# Sets up and runs the server with the bundled plugins on SQLite in ./data (override with
# NITEJAR_DATA_DIR). Extra arguments go to `nitejar serve` (e.g. --bind 0.0.0.0:3000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --locked -p nitejar -- serve "$@"

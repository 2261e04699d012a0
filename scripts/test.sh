#!/usr/bin/env bash
# Sets up and runs every test: host, SDK and end-to-end tests (guest components are built from
# source by the build), then the example plugins' own native unit tests. Ends with one summary
# line "tests: N passed, N failed" over every test runner above (also saved in
# target/test-summary.txt for .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Installs Debian packages ($2...) when command $1 is missing and this runs as root with apt-get
# (elsewhere the tests that need them skip; CI: they fail).
install_when_missing() {
  local cmd=$1
  shift
  if ! command -v "$cmd" >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$@" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; } \
      || echo "warning: $* could not be installed; the tests that need $cmd cannot run" >&2
  fi
}
# The admin UI's browser tests drive Debian's chromium over WebDriver (chromedriver).
install_when_missing chromedriver chromium chromium-driver
# The hook chain bench's baseline (the spec's JavaScript dispatcher) has a test that runs it
# with Node.js.
install_when_missing node nodejs
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee -a "$log"
cargo test --locked --manifest-path plugins-examples/Cargo.toml 2>&1 | tee -a "$log"
mkdir -p target
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log" | tee target/test-summary.txt

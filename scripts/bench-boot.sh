#!/usr/bin/env bash
# Boot benchmark (issue 17): a release server booted (compile cache warm) with no plugins and
# with N copies of the example hooks plugin (default 100): time to ready and resident memory,
# medians of 5 boots, beside the targets. Arguments go to scripts/load/boot.py
# (e.g. --plugins 50 --boots 3). A benchmark, never part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p nitejar
exec python3 scripts/load/boot.py --binary target/release/nitejar \
    --package target/release/nitejar-guests/packages/hooks "$@"

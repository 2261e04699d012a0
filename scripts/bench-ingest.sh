#!/usr/bin/env bash
# Load benchmark (issue 17): a release server on a temporary data directory, a signed generic
# webhook instance, wrk at concurrency 16 / 64 / 256 for 20 s each, then a steady 1,500
# deliveries/s for 60 s while the run backlog is sampled. Prints throughput, p50/p90/p99,
# answers, work items and runs beside the targets. Arguments go to scripts/load/ingest.py
# (e.g. --levels 64 --seconds 10 --steady-seconds 0). A benchmark, never part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    else
        echo "wrk is not installed: sudo apt-get install wrk" >&2
        exit 1
    fi
fi
cargo build --release --locked -p nitejar
exec python3 scripts/load/ingest.py --binary target/release/nitejar "$@"

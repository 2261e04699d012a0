# Shortcuts for people who have `just`; each recipe is a script that works without it.

# Run the server with the bundled plugins (SQLite in ./data).
serve *ARGS:
    bash scripts/serve.sh {{ARGS}}

# Run every test.
test:
    bash scripts/test.sh

# Coverage-guided fuzzing: SECONDS per target (default 60), optional target names, --keep.
fuzz *ARGS:
    bash scripts/fuzz.sh {{ARGS}}

# What CI runs: tests, formatting, lints.
ci:
    bash .ci/run

# Print benchmark medians and ratios (release build).
bench:
    bash scripts/setup.sh && cargo bench -p nitejar-core --bench hook_chain && cargo bench -p nitejar-core --bench hook_call

# Time the admin UI's pages with 100 plugins and 100,000 receipts (release build).
bench-ui:
    bash scripts/setup.sh && cargo bench -p nitejar-tests --bench admin_pages

# Webhook ingest and run throughput under wrk (release server; prints figures beside the targets).
bench-load *ARGS:
    bash scripts/bench-ingest.sh {{ARGS}}

# Boot time and resident memory with 100 hook plugins (release server).
bench-boot *ARGS:
    bash scripts/bench-boot.sh {{ARGS}}

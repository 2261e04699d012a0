#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain (no nightly, no cargo-fuzz).
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...] [--keep] [--seed N]
#
# Builds the targets of fuzz/ with coverage instrumentation (debug assertions and overflow
# checks on; only the code under test is rebuilt, the rest is the test build's) and
# runs each for SECONDS (default 60) over its seed corpus fuzz/corpus/<target> plus the fixed
# findings in fuzz/regressions/<target>. Targets: manifest package webhook network outputs lift
# (all by default). New inputs go to target/fuzz/corpus/<target>; with --keep, the ones that
# add coverage are merged into fuzz/corpus/<target> (commit them). A crash stops the script
# with the input saved under target/fuzz/artifacts/<target>/: copy it into
# fuzz/regressions/<target>/, fix the bug, and `cargo test -p nitejar-fuzz` replays it forever.
# --seed N makes a run repeatable: libFuzzer's seed is fixed and the run starts from the
# repository's corpus alone (.ci/run uses it, so CI explores what a local run with the same seed
# for at least as long has explored; without it every run explores somewhere new).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
secs=60
keep=0
seed=""
targets=()
next_is_seed=0
for arg in "$@"; do
  if [ "$next_is_seed" = 1 ]; then seed=$arg; next_is_seed=0; continue; fi
  case "$arg" in
    --keep) keep=1 ;;
    --seed) next_is_seed=1 ;;
    ''|*[!0-9]*) targets+=("$arg") ;;
    *) secs=$arg ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(manifest package webhook network outputs lift)

bash scripts/setup.sh
out="${CARGO_TARGET_DIR:-$repo/target}/fuzz"
mkdir -p "$out"

# Coverage instrumentation (the flags cargo-fuzz passes, minus its nightly-only sanitizer),
# applied by scripts/fuzz-rustc.sh to our crates and the parsers they feed hostile input to.
export NITEJAR_FUZZ_RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares"
# The instrumented crates get a profile override (so their own file names beside the test
# build's); everything else is the test build's (target/debug), reused as is.
instrumented=(nitejar-sandbox nitejar-core nitejar-store nitejar-api nitejar-plugin-sdk nitejar-fuzz
  nitejar-builtin-telegram nitejar-builtin-github nitejar-example-webhook tar pulldown-cmark)
overrides=()
for p in "${instrumented[@]}"; do
  overrides+=(--config "profile.dev.package.$p.opt-level=1")
done
bins=()
for t in "${targets[@]}"; do bins+=(--bin "fuzz-$t"); done
# --workspace: features resolved as in the test build, so shared crates are not rebuilt.
RUSTC_WRAPPER="$repo/scripts/fuzz-rustc.sh" cargo build --locked --workspace \
  --features nitejar-fuzz/libfuzzer "${bins[@]}" "${overrides[@]}"
bin_dir="${CARGO_TARGET_DIR:-$repo/target}/debug"

for t in "${targets[@]}"; do
  bin="$bin_dir/fuzz-$t"
  [ -x "$bin" ] || { echo "error: no fuzz target $t (fuzz/Cargo.toml lists them)" >&2; exit 2; }
  seed_arg=()
  if [ -n "$seed" ]; then
    rm -rf "$out/corpus/$t"
    seed_arg=(-seed="$seed")
  fi
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  dirs=("$out/corpus/$t" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  echo "== fuzz $t for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" "${seed_arg[@]}" "${dirs[@]}" \
      2>"$out/$t.log"; then
    tail -n 60 "$out/$t.log" >&2
    echo "error: fuzz target $t found a crash; the input is in $out/artifacts/$t/." >&2
    echo "Copy it into fuzz/regressions/$t/, fix the bug, run cargo test -p nitejar-fuzz." >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|new_units_added|peak_rss_mb)" "$out/$t.log" | tr '\n' ' '
  echo
  if [ "$keep" = 1 ]; then
    "$bin" -merge=1 "fuzz/corpus/$t" "$out/corpus/$t" 2>>"$out/$t.log"
  fi
done
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no crash"

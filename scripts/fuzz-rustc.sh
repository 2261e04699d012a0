#!/usr/bin/env bash
# RUSTC_WRAPPER for scripts/fuzz.sh: adds coverage instrumentation ($NITEJAR_FUZZ_RUSTFLAGS) to
# the crates whose code hostile input runs through (ours, the built-in integrations, the tar
# reader and the Markdown parser) and compiles everything else as usual. fuzz.sh gives exactly
# these crates a profile override, so their instrumented builds get their own file names while
# every other crate is the test build's, reused as is.
rustc=$1
shift
crate=""
prev=""
for a in "$@"; do
  if [ "$prev" = "--crate-name" ]; then crate=$a; break; fi
  prev=$a
done
case "$crate" in
  nitejar_*|tar|pulldown_cmark)
    # shellcheck disable=SC2086 # the flags are a list
    exec "$rustc" "$@" $NITEJAR_FUZZ_RUSTFLAGS ;;
  *)
    exec "$rustc" "$@" ;;
esac

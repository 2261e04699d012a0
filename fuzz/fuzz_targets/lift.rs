//! libFuzzer entry point for [`nitejar_fuzz::lift`] (built and run by `scripts/fuzz.sh`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nitejar_fuzz::lift(data));

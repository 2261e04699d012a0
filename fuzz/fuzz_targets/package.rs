//! libFuzzer entry point for [`nitejar_fuzz::package`] (built and run by `scripts/fuzz.sh`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nitejar_fuzz::package(data));

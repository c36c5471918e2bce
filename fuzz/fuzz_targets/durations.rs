//! Fuzz target: the duration, seconds, `serial` step and port parsers (body in `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roll_fuzz::durations(data));

//! Fuzz target: host patterns and host-name ranges (body in `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roll_fuzz::pattern(data));

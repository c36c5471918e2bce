//! Fuzz target: template rendering, expressions and conditions (body in `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roll_fuzz::template(data));

//! Fuzz target: deeply nested templates and expressions (body in `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roll_fuzz::nesting(data));

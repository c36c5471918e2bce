//! Fuzz target: the playbook parser and its diagnostics (body in `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roll_fuzz::playbook(data));

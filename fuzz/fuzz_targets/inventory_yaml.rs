//! Fuzz target: the YAML inventory parser and patterns on what it parsed (body in `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roll_fuzz::inventory(data, "hosts.yml"));

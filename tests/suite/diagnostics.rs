//! Every invalid input exits with the invalid-input code (5) before anything runs, and prints
//! its pinned message: file:line:col, the source line with a caret, and a help line.
//!
//! Each case is a directory under `tests/diagnostics/` with the files the command reads, an
//! optional `cmd` (default `play playbook.yml -i hosts`) and `expected.stderr`. Run with
//! `ROLL_BLESS=1` to write `expected.stderr` from the current output, then review the diff.

use crate::common;

use std::path::Path;

#[test]
fn every_invalid_input_is_reported_before_anything_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics");
    let bless = std::env::var_os("ROLL_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    cases.sort_by_key(|e| e.file_name());
    assert!(
        cases.len() >= 30,
        "expected at least 30 diagnostic cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_name().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        common::copy_dir(&case.path(), work.path());
        let cmd =
            std::fs::read_to_string(case.path().join("cmd")).unwrap_or_else(|_| "play playbook.yml -i hosts".into());
        let args = split(cmd.trim());
        let out = common::roll(work.path()).args(&args).output().unwrap();
        let stderr = common::stderr(&out);
        let expected_path = case.path().join("expected.stderr");
        if bless {
            std::fs::write(&expected_path, &stderr).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let mut problems = Vec::new();
        if out.status.code() != Some(5) {
            problems.push(format!("exit code {:?}, expected 5", out.status.code()));
        }
        if !out.stdout.is_empty() {
            problems.push(format!("stdout is not empty:\n{}", common::stdout(&out)));
        }
        if work.path().join("ran").exists() {
            problems.push("a task ran".into());
        }
        if stderr != expected {
            problems.push(format!(
                "stderr differs.\n--- expected\n{expected}\n--- actual\n{stderr}"
            ));
        }
        if !problems.is_empty() {
            failures.push(format!("[{name}] {}", problems.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Split a command line with single quotes, as the `cmd` files are written.
fn split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

//! Every invalid input exits with the invalid-input code (5) before anything runs, and prints
//! its pinned message: file:line:col, the source line with a caret, and a help line.
//!
//! Each case is a directory under `tests/diagnostics/` with the files the command reads, an
//! optional `cmd` (default `play playbook.yml -i hosts`) and `expected.stderr`. Run with
//! `ROLL_BLESS=1` to write `expected.stderr` from the current output, then review the diff.
//! Inputs a case directory cannot hold (a file over the size limit, a named pipe) have a test
//! of their own.

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

/// What a case directory cannot hold: a file over the size limit (sparse, so nothing is written)
/// and named pipes, which would block a reader for ever. Each is refused before a byte is read.
#[test]
fn files_too_large_or_not_regular_are_refused_before_reading() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    common::write(dir, "hosts", "localhost ansible_connection=local\n");
    common::write(
        dir,
        "playbook.yml",
        "- hosts: all\n  tasks:\n    - file: { path: ran, state: touch }\n",
    );
    std::fs::File::create(dir.join("big.yml"))
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let mkfifo = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe"))
        .status()
        .unwrap();
    assert!(mkfifo.success());
    let refused = |what: &str, path: &str, why: &str, help: &str| {
        format!("error: cannot read {what} `{path}`: {why}\n  = help: {help}\n\n")
    };
    let too_large = "roll reads files of up to 64 MiB; check that this is the file you meant";
    let not_regular =
        "roll reads playbooks, inventories and variables from regular files, not from devices, pipes or directories";
    let pipe = "it is a named pipe, not a regular file";
    let one = "error: aborting due to a previous error; nothing was run\n";
    for (args, expected) in [
        (
            "play big.yml -i hosts",
            refused("playbook", "big.yml", "it is larger than 64 MiB", too_large) + one,
        ),
        (
            "play playbook.yml -i hosts -e @big.yml",
            refused("extra-vars file", "big.yml", "it is larger than 64 MiB", too_large) + one,
        ),
        (
            "play pipe -i pipe",
            refused("playbook", "pipe", pipe, not_regular)
                + &refused("inventory file", "pipe", pipe, not_regular)
                + "error: aborting due to 2 previous errors; nothing was run\n",
        ),
        (
            "play playbook.yml -i hosts -e @pipe",
            refused("extra-vars file", "pipe", pipe, not_regular) + one,
        ),
    ] {
        let mut child = common::roll(dir)
            .args(split(args))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("`roll {args}` still runs: it waits on the pipe or reads the large file");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(5), "roll {args}");
        assert_eq!(common::stderr(&out), expected, "roll {args}");
        assert!(out.stdout.is_empty() && !dir.join("ran").exists(), "roll {args}");
    }
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

#[test]
fn a_file_outside_the_project_is_located_but_its_text_is_never_shown() {
    let project = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let shadow = outside.path().join("shadow");
    std::fs::write(&shadow, "root:$6$not-for-logs:19000:0:99999:7:::\n").unwrap();
    common::write(project.path(), "hosts", "localhost ansible_connection=local\n");
    let play = |vars_file: &str| {
        common::write(
            project.path(),
            "pb.yml",
            &format!(
                "- hosts: localhost\n  gather_facts: false\n  vars_files: [\"{vars_file}\"]\n  tasks:\n    - debug: {{ msg: hi }}\n"
            ),
        );
        common::run(project.path(), &["play", "pb.yml", "-i", "hosts"])
    };
    let out = play(&shadow.display().to_string());
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains(&format!("--> {}:1:1", shadow.display())), "{err}");
    assert!(err.contains("outside the project"), "{err}");
    assert!(!err.contains("not-for-logs"), "{err}");
    // The same file inside the project is shown, as every input is.
    std::fs::copy(&shadow, project.path().join("vars.yml")).unwrap();
    let err = common::stderr(&play("vars.yml"));
    assert!(err.contains("not-for-logs"), "{err}");
}

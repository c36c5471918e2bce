//! `lineinfile`, `blockinfile` and `replace` on a real sshd host report what ansible-core
//! reported for the same cases (tests/modules/lines: check mode, the run, a second run, and each
//! file's final bytes), and a pattern roll cannot match is refused before anything runs.

use crate::common::{self, fleet::Fleet};
use std::path::Path;

fn results(text: &str, base: &Path) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(&l.replace(base.to_str().unwrap(), "BASE")).unwrap())
        .collect()
}

#[test]
fn every_case_reports_what_ansible_reported_and_leaves_the_same_bytes() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/modules/lines");
    let fleet = Fleet::up(1, "li");
    let base = tempfile::tempdir().unwrap();
    let inv = base.path().join("hosts");
    std::fs::write(&inv, fleet.inventory()).unwrap();
    let out = common::roll(&cases)
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "play.yml", "-i", inv.to_str().unwrap()])
        .args(["-e", &format!("base={}", base.path().display())])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
    let got = results(
        &std::fs::read_to_string(base.path().join("results.jsonl")).unwrap(),
        base.path(),
    );
    let want = results(
        &std::fs::read_to_string(cases.join("ansible.jsonl")).unwrap(),
        base.path(),
    );
    assert_eq!(got.len(), want.len());
    let differ: Vec<String> = want
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("ansible: {w}\n   roll: {g}"))
        .collect();
    assert!(
        differ.is_empty(),
        "{} results differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

#[test]
fn a_pattern_roll_cannot_match_is_refused_at_its_place_before_the_run() {
    let d = tempfile::tempdir().unwrap();
    common::write(d.path(), "hosts", "localhost ansible_connection=local\n");
    common::write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - lineinfile:\n        path: /nonexistent/x\n        regexp: '^(?!#)listen'\n        line: listen 80\n",
    );
    let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("pb.yml:6:17") && err.contains("look-around"), "{err}");
}

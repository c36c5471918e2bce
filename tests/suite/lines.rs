//! `lineinfile`, `blockinfile` and `replace` on a real sshd host report what ansible-core
//! reported for the same cases (tests/modules/lines: check mode, the run, a second run, and each
//! file's final bytes), and a pattern roll cannot match is refused before anything runs.

use crate::common::{self, oracle};

#[test]
fn every_case_reports_what_ansible_reported_and_leaves_the_same_bytes() {
    let played = oracle::play("lines");
    oracle::assert_same(&played.want, &played.got);
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

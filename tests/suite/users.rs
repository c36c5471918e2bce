//! `user` and `group` on a real Debian host (a container started by the test,
//! common/testhost.rs) report what ansible-core reported for the same steps
//! (tests/modules/users: each step in check mode, for real, and again), leave the same accounts,
//! and never show the password hash.

use crate::common::{self, oracle, testhost::TestHost};
use std::path::Path;

const BASE: &str = "/tmp/roll-base";

fn results(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// roll registers `skipped: false` on every result; ansible-core only on skipped tasks.
fn without_skipped(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(r) = v.get_mut("result").and_then(|r| r.as_object_mut()) {
        r.remove("skipped");
    }
    v
}

#[test]
fn every_step_reports_what_ansible_reported_and_the_hash_never_shows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/modules/users");
    let host = TestHost::up();
    let out = host.roll(&dir, &["play", "play.yml", "-v", "-e", &format!("base={BASE}")]);
    let (so, se) = (common::stdout(&out), common::stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{so}{se}");
    let got: Vec<_> = results(&host.sh(&format!("cat {BASE}/results.jsonl")))
        .into_iter()
        .map(without_skipped)
        .collect();
    let want = results(&std::fs::read_to_string(dir.join("ansible.jsonl")).unwrap());
    assert_eq!(
        got.len(),
        want.len(),
        "roll wrote {} results, ansible {}",
        got.len(),
        want.len()
    );
    let differ = oracle::differences(&want, &got);
    assert!(
        differ.is_empty(),
        "{} results differ:\n{}",
        differ.len(),
        differ.join("\n")
    );

    // The hash (and its salt) is on the host, and nowhere in what roll printed.
    let play = std::fs::read_to_string(dir.join("play.yml")).unwrap();
    let hash = play.split('"').find(|s| s.starts_with("$6$")).unwrap();
    assert!(!so.contains(hash) && !se.contains(hash), "the hash shows:\n{so}{se}");
    assert!(so.contains("NOT_LOGGING_PASSWORD"), "{so}");
}

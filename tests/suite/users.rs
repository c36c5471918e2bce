//! `user` and `group` on a real Debian host (a container started by the test,
//! common/testhost.rs) report what ansible-core reported for the same steps
//! (tests/modules/users: each step in check mode, for real, and again), leave the same accounts,
//! and never show the password hash.

use crate::common::{self, oracle, testhost};
use std::path::Path;

#[test]
fn every_step_reports_what_ansible_reported_and_the_hash_never_shows() {
    let played = testhost::play("users", &["-v"]);
    let differ = oracle::differences(&played.want, &played.got);
    assert!(
        differ.is_empty(),
        "{} results differ:\n{}",
        differ.len(),
        differ.join("\n")
    );

    // The hash is nowhere in what roll printed, though -v shows every result.
    let (so, se) = (common::stdout(&played.out), common::stderr(&played.out));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/modules/users");
    let play = std::fs::read_to_string(dir.join("play.yml")).unwrap();
    let hash = play.split('"').find(|s| s.starts_with("$6$")).unwrap();
    assert!(!so.contains(hash) && !se.contains(hash), "the hash shows:\n{so}{se}");
    assert!(so.contains("NOT_LOGGING_PASSWORD"), "{so}");
}

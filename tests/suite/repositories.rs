//! `apt_repository` and `deb822_repository` on a real Debian host (a container started by the
//! test, common/testhost.rs) with local repositories built there: each step reports what
//! ansible-core reported (tests/modules/repositories: check mode, for real, again), leaves the
//! same sources files, and apt really installs from what they list.

use crate::common::{self, oracle, testhost};

#[test]
fn repository_steps_report_what_ansible_reported_and_apt_installs_from_them() {
    let played = testhost::play("repositories", &[]);
    // ansible-core 2.19 adds `exception: (traceback unavailable)` to a module's failure: its
    // internals, not the module's result.
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(r) = v.get_mut("result").and_then(|r| r.as_object_mut()) {
            r.remove("exception");
        }
        v
    };
    let want: Vec<_> = played.want.iter().map(strip).collect();
    let got: Vec<_> = played.got.iter().map(strip).collect();
    oracle::assert_same(&want, &got);
    // The install from the deb822 repository brought its version.
    let state = played.host.sh("dpkg-query -W -f '${Version}' rolldemo");
    assert_eq!(state, "2.0");
}

#[test]
fn a_ppa_is_refused_clearly_and_nothing_is_written() {
    let host = testhost::TestHost::up();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "play.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - apt_repository: { repo: 'ppa:nginx/stable' }\n",
    );
    let out = host.roll(dir.path(), &["play", "play.yml"]);
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{so}");
    assert!(so.contains("roll's apt_repository does not add PPAs"), "{so}");
    assert_eq!(host.sh("ls /etc/apt/sources.list.d/"), "");
}

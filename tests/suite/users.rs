//! `user` and `group` on a real Debian host (a container started by the test,
//! common/testhost.rs) report what ansible-core reported for the same steps
//! (tests/modules/users: each step in check mode, for real, and again), leave the same accounts,
//! and never show the password hash.

use crate::common::{self, oracle, testhost};
use std::path::Path;

#[test]
fn every_step_reports_what_ansible_reported_and_the_hash_never_shows() {
    let played = testhost::play("users", &["-v"]);
    oracle::assert_same(&played.want, &played.got);

    // The hash is nowhere in what roll printed, though -v shows every result.
    let (so, se) = (common::stdout(&played.out), common::stderr(&played.out));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/modules/users");
    let play = std::fs::read_to_string(dir.join("play.yml")).unwrap();
    let hash = play.split('"').find(|s| s.starts_with("$6$")).unwrap();
    assert!(!so.contains(hash) && !se.contains(hash), "the hash shows:\n{so}{se}");
    assert!(so.contains("NOT_LOGGING_PASSWORD"), "{so}");
}

#[test]
fn become_from_a_user_with_sudo_manages_accounts_and_without_it_fails() {
    let host = testhost::TestHost::up();
    // A usable account (`*`, not the locked `!`: sshd refuses locked ones) with sudo.
    host.sh(
        "useradd -m -s /bin/sh -p '*' deploy && mkdir -p ~deploy/.ssh && cp /root/.ssh/authorized_keys ~deploy/.ssh/ \
         && chown -R deploy: ~deploy/.ssh && echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy",
    );
    let inv = std::fs::read_to_string(host.inventory()).unwrap();
    std::fs::write(
        host.inventory(),
        inv.replace("ansible_user=root", "ansible_user=deploy"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - group: { name: builders, gid: 3100 }\n      become: true\n\
         \x20   - user: { name: ci, uid: 3101, group: builders, shell: /bin/bash }\n      become: true\n",
    );
    let out = host.roll(dir.path(), &["play", "p.yml"]);
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{so}{}", common::stderr(&out));
    assert!(common::recap(&so)[0].contains("changed=2"), "{so}");
    assert_eq!(host.sh("getent passwd ci | cut -d: -f3,4,7"), "3101:3100:/bin/bash\n");

    // The same user without become cannot: useradd's own error, the task failed.
    common::write(
        dir.path(),
        "q.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - user: { name: other }\n",
    );
    let out = host.roll(dir.path(), &["play", "q.yml"]);
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{so}");
    assert!(so.contains("useradd"), "{so}");
    assert_eq!(host.sh("getent passwd other"), "");
}

#[test]
fn a_state_user_does_not_know_is_refused_at_its_place_before_any_host() {
    let host = testhost::TestHost::up();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - group: { name: g1 }\n    - user: { name: u1, state: gone }\n",
    );
    let out = host.roll(dir.path(), &["play", "p.yml"]);
    let se = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{se}");
    assert!(se.contains("p.yml:5:"), "{se}");
    assert!(se.contains("gone"), "{se}");
    // Nothing ran: not even the task before it.
    assert_eq!(host.sh("getent group g1"), "");
}

//! `cron` on a real Debian host (a container started by the test, common/testhost.rs) reports
//! what ansible-core reported for the same steps (tests/modules/cron: user crontabs, another
//! user's, a file under /etc/cron.d, variables, special times, a job adopted from an unmarked
//! line; each in check mode, for real, and again) and leaves the same bytes after each step, so
//! a crontab either wrote is managed by the other.

use crate::common::{self, oracle, testhost};

#[test]
fn every_step_reports_and_writes_what_ansible_did() {
    let played = testhost::play("cron", &[]);
    oracle::assert_same(&played.want, &played.got);
    assert!(common::stdout(&played.out).contains("changed="), "no recap");
}

#[test]
fn check_diff_shows_the_crontab_change_and_changes_nothing() {
    let host = testhost::TestHost::up();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - cron: { name: nightly, hour: \"1\", minute: \"30\", job: /usr/local/bin/nightly }\n",
    );
    let out = host.roll(dir.path(), &["play", "p.yml", "--check", "--diff"]);
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{so}{}", common::stderr(&out));
    assert!(so.contains("before: crontab"), "{so}");
    assert!(
        so.contains("+#Ansible: nightly\n+30 1 * * * /usr/local/bin/nightly"),
        "{so}"
    );
    assert!(so.contains("changed: [testhost]"), "{so}");
    assert_eq!(host.sh("crontab -l 2>&1"), "no crontab for root\n");

    let out = host.roll(dir.path(), &["play", "p.yml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        host.sh("crontab -l"),
        "#Ansible: nightly\n30 1 * * * /usr/local/bin/nightly\n"
    );
}

#[test]
fn a_special_time_cron_does_not_know_is_refused_at_its_place_before_any_host() {
    let host = testhost::TestHost::up();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - cron: { name: x, special_time: sometimes, job: /bin/true }\n",
    );
    let out = host.roll(dir.path(), &["play", "p.yml"]);
    let se = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{se}");
    assert!(se.contains("p.yml:4:"), "{se}");
    assert!(se.contains("sometimes"), "{se}");
    assert_eq!(host.sh("crontab -l 2>&1"), "no crontab for root\n");
}

//! `authorized_key` on a real Debian host (a container started by the test, common/testhost.rs)
//! reports what ansible.posix's module reported for the same steps (tests/modules/authorized_key:
//! each step in check mode, for real, and again) and leaves the same files with the same modes;
//! `wait_for_connection` waits over roll's own connection for an sshd that starts late, and
//! fails with ansible-core's message when it never does.

use crate::common::{self, fleet::Fleet, oracle, testhost};
use std::time::{Duration, Instant};

#[test]
fn every_authorized_key_step_reports_what_ansible_reported() {
    let played = testhost::play("authorized_key", &[]);
    oracle::assert_same(&played.want, &played.got);
    // What the play left, read directly: the managed directory and file belong to the user.
    let host = &played.host;
    assert_eq!(
        host.sh("stat -c '%a %U' /home/deploy/.ssh /home/deploy/.ssh/authorized_keys"),
        "700 deploy\n600 deploy\n"
    );
}

#[test]
fn a_key_with_options_reaches_the_file_and_a_diff_shows_it() {
    let host = testhost::TestHost::up();
    host.sh("useradd -m -s /bin/sh ci && mkdir -m 700 ~ci/.ssh && echo '# kept' > ~ci/.ssh/authorized_keys");
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - ansible.posix.authorized_key:\n\
         \x20       user: ci\n\
         \x20       key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRollDiffKey laptop\n\
         \x20       key_options: no-port-forwarding\n",
    );
    let dry = host.roll(dir.path(), &["play", "p.yml", "--check", "--diff"]);
    let so = common::stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{so}{}", common::stderr(&dry));
    assert!(
        so.contains("+no-port-forwarding ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRollDiffKey laptop"),
        "{so}"
    );
    assert_eq!(host.sh("cat ~ci/.ssh/authorized_keys"), "# kept\n");

    let run = host.roll(dir.path(), &["play", "p.yml"]);
    let so = common::stdout(&run);
    assert!(common::recap(&so)[0].contains("changed=1"), "{so}");
    assert_eq!(
        host.sh("cat ~ci/.ssh/authorized_keys"),
        "# kept\nno-port-forwarding ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRollDiffKey laptop\n"
    );
    let again = host.roll(dir.path(), &["play", "p.yml"]);
    let so = common::stdout(&again);
    assert!(common::recap(&so)[0].contains("changed=0"), "{so}");
}

#[test]
fn a_key_that_is_not_one_fails_the_task_with_the_modules_message() {
    let host = testhost::TestHost::up();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - authorized_key: { user: root, key: not-a-key }\n",
    );
    let out = host.roll(dir.path(), &["play", "p.yml"]);
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{so}");
    assert!(so.contains("invalid key specified: not-a-key"), "{so}");
}

fn play_file(dir: &std::path::Path, fleet: &Fleet, body: &str) {
    common::write(dir, "hosts", &fleet.inventory());
    common::write(
        dir,
        "p.yml",
        &format!("- hosts: all\n  gather_facts: false\n  tasks:\n{body}"),
    );
}

#[test]
fn wait_for_connection_waits_for_an_sshd_that_starts_late() {
    let fleet = Fleet::up_per_sshd(1, "wc", 1);
    let dir = tempfile::tempdir().unwrap();
    play_file(
        dir.path(),
        &fleet,
        "    - wait_for_connection: { timeout: 60, sleep: 1 }\n      register: waited\n\
         \x20   - debug: { msg: \"waited {{ waited.elapsed }}s\" }\n\
         \x20   - command: echo after\n",
    );
    fleet.kill_one(0);
    let started = Instant::now();
    let child = common::roll(dir.path())
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "p.yml", "-i", "hosts"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    fleet.start_one(0);
    let out = child.wait_with_output().unwrap();
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{so}{}", common::stderr(&out));
    assert!(common::recap(&so)[0].contains("unreachable=0"), "{so}");
    // It waited for the start, and not far past it.
    let waited: u64 = so
        .split("waited ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no elapsed in:\n{so}"));
    assert!((3..=30).contains(&waited), "elapsed {waited}:\n{so}");
    assert!(started.elapsed() < Duration::from_secs(50));
}

#[test]
fn wait_for_connection_times_out_with_ansibles_message_and_skips_in_check_mode() {
    let fleet = Fleet::up_per_sshd(1, "wt", 1);
    let dir = tempfile::tempdir().unwrap();
    play_file(
        dir.path(),
        &fleet,
        "    - wait_for_connection: { timeout: 3, sleep: 1, connect_timeout: 2 }\n",
    );
    let check = common::roll(dir.path())
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "p.yml", "-i", "hosts", "--check"])
        .output()
        .unwrap();
    let so = common::stdout(&check);
    assert_eq!(check.status.code(), Some(0), "{so}");
    assert!(common::recap(&so)[0].contains("skipped=1"), "{so}");

    fleet.kill_one(0);
    let out = common::roll(dir.path())
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "p.yml", "-i", "hosts"])
        .output()
        .unwrap();
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{so}{}", common::stderr(&out));
    assert!(so.contains("timed out waiting for ping module test"), "{so}");
    assert!(common::recap(&so)[0].contains("failed=1"), "{so}");
}

//! `seboolean`: read whole and checked before any host, failing on a host without SELinux as
//! ansible.posix's module does (this machine, over the local connection).

use crate::common::{run, stderr, stdout, write};

const HOSTS: &str = "[app]\napp1 ansible_connection=local\n";

#[test]
fn seboolean_fails_where_selinux_is_disabled_and_bad_arguments_before_any_host() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", HOSTS);
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  gather_facts: false\n  tasks:\n    - ansible.posix.seboolean: { name: httpd_can_network_connect, state: true, persistent: true }\n",
    );
    let out = run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    let want = if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        "not built for hosts that run SELinux"
    } else {
        "SELinux is disabled on this host."
    };
    assert!(text.contains(want), "{text}");

    write(
        d.path(),
        "bad.yml",
        "- hosts: app\n  gather_facts: false\n  tasks:\n    - seboolean: { name: httpd_setrlimit, state: yes, persitent: yes }\n",
    );
    let out = run(d.path(), &["play", "bad.yml", "-i", "hosts"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("unknown parameter `persitent`") && err.contains("bad.yml:4:"),
        "{err}"
    );
    assert!(!stdout(&out).contains("TASK"), "nothing ran: {}", stdout(&out));
}

//! `fetch`, `tempfile`, `assemble`, `file: recurse`, `ini_file` (and the SELinux keys every file
//! module accepts) and `copy` of directories on a real sshd host report what ansible-core (and
//! community.general) reported for the same cases (tests/modules/transfer and transfer_copy:
//! check mode, the run, again, the files left), and their bad arguments are refused at their
//! place before any host is touched.

use crate::common::{self, oracle};

#[test]
fn every_case_reports_what_ansible_reported_and_leaves_the_same_files() {
    let played = oracle::play("transfer");
    oracle::assert_same(&played.want, &played.got);
}

#[test]
fn copying_a_directory_reports_what_ansible_reported_and_leaves_the_same_trees() {
    let played = oracle::play("transfer_copy");
    oracle::assert_same(&played.want, &played.got);
}

#[test]
fn bad_arguments_are_refused_at_their_place_before_any_host() {
    let d = tempfile::tempdir().unwrap();
    // A host no one listens on: a run that tried it would report it unreachable, not exit 5.
    common::write(d.path(), "hosts", "web ansible_host=127.0.0.1 ansible_port=1\n");
    common::write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - tempfile: { state: fifo }\n\
         \x20   - fetch: { src: /etc/hostname }\n\
         \x20   - community.general.ini_file: { path: /x, option: k, value: a, values: [b] }\n\
         \x20   - file: { path: /x, state: directory, recurse: true, selevel: s0, sebool: on }\n",
    );
    let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    for (place, what) in [
        ("pb.yml:4:26", "invalid value `fifo` for `state` of module `tempfile`"),
        ("pb.yml:5:7", "module `fetch` is missing its required parameter `dest`"),
        ("pb.yml:6:68", "`value` and `values` cannot be used together"),
        ("pb.yml:7:71", "unknown parameter `sebool` for module `file`"),
    ] {
        assert!(err.contains(place) && err.contains(what), "{place} {what}:\n{err}");
    }
    assert!(
        err.contains("aborting due to 4 previous errors; nothing was run"),
        "{err}"
    );
    // The SELinux keys themselves are accepted (`selevel` above is not among the errors).
    assert!(!err.contains("unknown parameter `selevel`"), "{err}");

    common::write(
        d.path(),
        "regex.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - assemble: { src: /d, dest: /f, regexp: '^(?!#)x' }\n",
    );
    let out = common::run(d.path(), &["play", "regex.yml", "-i", "hosts"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("regex.yml:4:46") && err.contains("look-around"), "{err}");
}

#[test]
fn ini_file_check_mode_shows_the_diff_and_changes_nothing_then_a_second_run_is_ok() {
    let d = tempfile::tempdir().unwrap();
    common::write(d.path(), "hosts", "localhost ansible_connection=local\n");
    common::write(d.path(), "app.ini", "[drinks]\nfav = cola\n");
    let ini = d.path().join("app.ini");
    common::write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - ini_file: {{ path: {}, section: drinks, option: fav, value: lemonade }}\n",
            ini.display()
        ),
    );
    let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts", "--check", "--diff"]);
    let all = format!("{}{}", common::stdout(&out), common::stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("-fav = cola") && all.contains("+fav = lemonade"), "{all}");
    assert_eq!(std::fs::read_to_string(&ini).unwrap(), "[drinks]\nfav = cola\n");
    for (run, changed) in [(1, "changed=1"), (2, "changed=0")] {
        let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
        let all = format!("{}{}", common::stdout(&out), common::stderr(&out));
        assert!(out.status.success() && all.contains(changed), "run {run}: {all}");
    }
    assert_eq!(std::fs::read_to_string(&ini).unwrap(), "[drinks]\nfav = lemonade\n");
}

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

/// `backup: true` names each copy as ansible-core's `backup_local` does,
/// `NAME.PID.YYYY-MM-DD@HH:MM:SS~`: three edits of one file within a second leave three backups,
/// each holding the file as it was before its edit, at the path the task registered.
#[test]
fn backups_made_in_the_same_second_each_keep_what_the_file_held() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("app.conf");
    std::fs::write(&f, "a\n").unwrap();
    common::write(d.path(), "hosts", "localhost ansible_connection=local\n");
    common::write(
        d.path(),
        "pb.yml",
        &format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - {{ lineinfile: {{ path: "{f}", line: b, backup: true }}, register: one }}
    - {{ lineinfile: {{ path: "{f}", line: c, backup: true }}, register: two }}
    - {{ copy: {{ dest: "{f}", content: "d\n", backup: true }}, register: three }}
    - copy:
        dest: "{f}.registered"
        content: "{{{{ [one.backup, two.backup, three.backup_file] | join('\n') }}}}"
"#,
            f = f.display()
        ),
    );
    let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    let registered = std::fs::read_to_string(d.path().join("app.conf.registered")).unwrap();
    let name =
        regex::Regex::new(r"^app\.conf\.[0-9]+\.[0-9]{4}-[0-9]{2}-[0-9]{2}@[0-9]{2}:[0-9]{2}:[0-9]{2}~$").unwrap();
    let held: Vec<String> = registered
        .lines()
        .map(|path| {
            let file = std::path::Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            assert!(name.is_match(&file), "backup named {file}");
            std::fs::read_to_string(path).unwrap()
        })
        .collect();
    assert_eq!(held, ["a\n", "a\nb\n", "a\nb\nc\n"]);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "d\n");
}

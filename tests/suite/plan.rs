//! `roll plan -o FILE` and `roll apply FILE` on a loopback fleet over SSH: the apply makes
//! exactly the planned changes, a plan the world moved away from is refused naming what moved,
//! `--detailed-exitcode` says whether anything would change, and no secret reaches the file.

use crate::common;
use crate::common::fleet;

use common::{recap, roll, stdout, write};
use fleet::Fleet;
use std::path::Path;

const PLAYBOOK: &str = r#"
- hosts: app
  tasks:
    - file: { path: "{{ out }}/{{ inventory_hostname }}", state: directory }
    - copy:
        content: "release={{ release }}\ntoken={{ lookup('env', 'ROLL_PLAN_TOKEN') }}\n"
        dest: "{{ out }}/{{ inventory_hostname }}/app.conf"
"#;

fn run(dir: &Path, f: &Fleet, args: &[&str]) -> std::process::Output {
    let mut c = roll(dir);
    c.args(args)
        .env("ROLL_PLAN_TOKEN", "plan-secret-Kx81zQ")
        .env("ROLL_KNOWN_HOSTS", f.known_hosts());
    c.output().unwrap()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn apply_makes_exactly_the_planned_changes_and_refuses_a_stale_plan() {
    let f = Fleet::up(3, "pl");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let out = dir.join("remote");
    write(
        dir,
        "hosts",
        &f.inventory()
            .replace("[fleet]", "[app]")
            .replace("[fleet:vars]", "[app:vars]"),
    );
    write(dir, "pb.yml", PLAYBOOK);
    let out_arg = format!("out={}", out.display());
    let plan_args = |file: &str, release: &str| -> Vec<String> {
        [
            "plan",
            "pb.yml",
            "-i",
            "hosts",
            "-e",
            &out_arg,
            "-e",
            &format!("release={release}"),
            "-o",
            file,
            "--detailed-exitcode",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // Plan release 1: six changes (a directory and a file on each host), exit 2; nothing made.
    let p = run(dir, &f, &strs(&plan_args("p1.json", "1")));
    assert_eq!(p.status.code(), Some(2), "{}{}", stdout(&p), common::stderr(&p));
    assert!(stdout(&p).contains("Plan: 6 changes on 3 hosts."), "{}", stdout(&p));
    assert!(!out.exists(), "a plan changes nothing");
    let file = std::fs::read_to_string(dir.join("p1.json")).unwrap();
    assert!(!file.contains("plan-secret-Kx81zQ"), "{file}");

    // Apply: exactly those six changes.
    let a = run(dir, &f, &["apply", "p1.json"]);
    let text = stdout(&a);
    assert_eq!(a.status.code(), Some(0), "{text}{}", common::stderr(&a));
    let changed: Vec<String> = recap(&text);
    assert_eq!(changed.len(), 3, "{text}");
    assert!(changed.iter().all(|l| l.contains("changed=2 ")), "{text}");
    for h in ["pl001", "pl002", "pl003"] {
        assert_eq!(
            std::fs::read_to_string(out.join(h).join("app.conf")).unwrap(),
            "release=1\ntoken=plan-secret-Kx81zQ\n"
        );
    }
    // Nothing left to change: exit 0.
    let p = run(dir, &f, &strs(&plan_args("p2.json", "1")));
    assert_eq!(p.status.code(), Some(0), "{}", stdout(&p));

    // Plan release 2, then someone edits a host's file: the plan is refused, naming it.
    let p = run(dir, &f, &strs(&plan_args("p3.json", "2")));
    assert_eq!(p.status.code(), Some(2));
    std::fs::write(out.join("pl002/app.conf"), "edited by hand\n").unwrap();
    let stale = run(dir, &f, &["apply", "p3.json"]);
    let err = common::stderr(&stale);
    assert_eq!(stale.status.code(), Some(1), "{err}");
    assert!(err.contains("the plan is stale"), "{err}");
    assert!(err.contains("pl002/app.conf` on pl002 changed since the plan"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("pl001/app.conf")).unwrap(),
        "release=1\ntoken=plan-secret-Kx81zQ\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("pl002/app.conf")).unwrap(),
        "edited by hand\n"
    );

    // An invalid playbook with --detailed-exitcode: 1.
    write(dir, "bad.yml", "- hosts: app\n  taks: []\n");
    let bad = run(
        dir,
        &f,
        &["plan", "bad.yml", "-i", "hosts", "-o", "p4.json", "--detailed-exitcode"],
    );
    assert_eq!(bad.status.code(), Some(1), "{}", common::stderr(&bad));
}

/// A failed dry run says that no plan was written; a plan made in one directory applies from a
/// copy of the project in another (a CI job's new checkout), the first one gone.
#[test]
fn a_failed_plan_says_none_was_written_and_a_plan_moves_with_its_project() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("build-1");
    write(&a, "hosts", "app1 ansible_connection=local\n");
    write(
        &a,
        "pb.yml",
        "- hosts: app1\n  tasks:\n    - copy: { content: \"x\\n\", dest: \"{{ out }}\" }\n",
    );
    write(
        &a,
        "bad.yml",
        "- hosts: app1\n  tasks:\n    - command: \"false\"\n      check_mode: false\n",
    );
    let failed = common::run(&a, &["plan", "bad.yml", "-i", "hosts", "-o", "bad.plan"]);
    let err = common::stderr(&failed);
    assert_eq!(failed.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: the dry run failed (exit 2); no plan was written"),
        "{err}"
    );
    assert!(!a.join("bad.plan").exists());

    let target = d.path().join("out.txt");
    let out_arg = format!("out={}", target.display());
    let made = common::run(&a, &["plan", "pb.yml", "-i", "hosts", "-e", &out_arg, "-o", "web.plan"]);
    assert_eq!(made.status.code(), Some(0), "{}", common::stderr(&made));
    let b = d.path().join("build-2");
    common::copy_dir(&a, &b);
    std::fs::remove_dir_all(&a).unwrap();
    let applied = common::run(&b, &["apply", "web.plan"]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        stdout(&applied),
        common::stderr(&applied)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "x\n");
    // With the project in neither place, said so before anything runs.
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(b.join("web.plan"), elsewhere.join("web.plan")).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
    let lost = common::run(&elsewhere, &["apply", "web.plan"]);
    let err = common::stderr(&lost);
    assert_eq!(lost.status.code(), Some(5), "{err}");
    assert!(
        err.contains("the plan's playbook `pb.yml` is neither here nor in "),
        "{err}"
    );
}

/// A plan refused because the live colour moved says so first, before the list of what
/// follows from it.
#[test]
fn a_stale_switch_plan_names_the_moved_live_colour_first() {
    use common::nginx::{Nginx, backends, switch_playbook};
    let d = tempfile::tempdir().unwrap();
    let backends = backends(6);
    let nginx = Nginx::start(d.path(), &backends);
    switch_playbook(d.path(), &nginx, &backends, 3, "0s");
    let made = common::run(d.path(), &["plan", "switch.yml", "-i", "hosts", "-o", "green.plan"]);
    assert_eq!(made.status.code(), Some(0), "{}", common::stderr(&made));
    // Someone else switches first.
    let ran = common::run(d.path(), &["play", "switch.yml", "-i", "hosts"]);
    assert_eq!(ran.status.code(), Some(0), "{}", stdout(&ran));
    let stale = common::run(d.path(), &["apply", "green.plan"]);
    let err = common::stderr(&stale);
    assert_eq!(stale.status.code(), Some(1), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error: the plan is stale: live colour on proxy1: was `")
            && first.ends_with("now `green`; nothing was applied"),
        "{err}"
    );
}

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

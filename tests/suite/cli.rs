//! The command line's small promises, each run on the real binary: completions and inventory
//! listings that a reader stops early do not panic, `-i` suggestions, `--check --detailed-exitcode`, `status --format
//! json` as JSON Lines, every `task_start` closed by a `task_end`, the lock holder without
//! `$USER`, and where a tab in group_vars is reported.

use crate::common;

use common::{stderr, stdout, write};
use std::process::{Command, Stdio};

#[test]
fn completions_read_only_in_part_do_not_panic() {
    let mut child = Command::new(common::roll_bin())
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before roll writes: its write meets a closed pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // And in full, it is the script.
    let full = common::run(std::path::Path::new("."), &["completions", "bash"]);
    assert!(stdout(&full).starts_with("_roll() {"), "{}", stdout(&full));
}

/// `roll inventory --list | head -1`: the reader goes after the first line, and roll's next write
/// meets a closed pipe (an inventory's JSON well past a pipe's 64 KiB buffer).
#[test]
fn an_inventory_listing_read_only_in_part_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let hosts: String = (0..4000)
        .map(|i| format!("app{i} ansible_host=127.0.0.1 note=filler-{i}\n"))
        .collect();
    write(dir.path(), "hosts", &format!("[app]\n{hosts}"));
    let mut child = Command::new(common::roll_bin())
        .args(["inventory", "--list", "-i", "hosts"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    use std::io::Read;
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(first[0], b'{');
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_inventory_not_found_suggests_one_that_exists_not_a_doubled_path() {
    let d = tempfile::tempdir().unwrap();
    for inv in ["prod", "staging"] {
        write(
            &d.path().join("inventories").join(inv),
            "hosts",
            "app1 ansible_connection=local\n",
        );
    }
    write(d.path(), "pb.yml", "- hosts: all\n  tasks: []\n");
    let cases = [
        (
            "inventories/nope",
            "error: inventory `inventories/nope` not found\n  = help: give the path of an inventory file or directory (here: `inventories/prod`, `inventories/staging`)\n",
        ),
        (
            "inventories/stagin",
            "error: inventory `inventories/stagin` not found\n  = help: did you mean `inventories/staging`?\n",
        ),
        (
            "prd",
            "error: inventory `prd` not found\n  = help: did you mean `inventories/prod`?\n",
        ),
    ];
    for (arg, want) in cases {
        let out = common::run(d.path(), &["play", "pb.yml", "-i", arg]);
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
        assert!(stderr(&out).starts_with(want), "{arg}: {}", stderr(&out));
        assert!(!stderr(&out).contains("inventories/inventories"), "{}", stderr(&out));
    }
}

#[test]
fn check_with_detailed_exitcode_says_whether_anything_would_change() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", "app1 ansible_connection=local\n");
    let target = d.path().join("out.txt");
    write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: all\n  tasks:\n    - copy: {{ content: \"x\\n\", dest: {} }}\n",
            target.display()
        ),
    );
    write(
        d.path(),
        "bad.yml",
        "- hosts: all\n  tasks:\n    - command: \"false\"\n      check_mode: false\n",
    );
    let run = |args: &[&str]| common::run(d.path(), args);
    let would = run(&["play", "pb.yml", "-i", "hosts", "--check", "--detailed-exitcode"]);
    assert_eq!(would.status.code(), Some(2), "{}{}", stdout(&would), stderr(&would));
    assert!(!target.exists(), "a dry run changes nothing");
    assert_eq!(run(&["play", "pb.yml", "-i", "hosts"]).status.code(), Some(0));
    let nothing = run(&["play", "pb.yml", "-i", "hosts", "--check", "--detailed-exitcode"]);
    assert_eq!(nothing.status.code(), Some(0), "{}", stdout(&nothing));
    // A failure is an error (1), not "would change".
    let failed = run(&["play", "bad.yml", "-i", "hosts", "--check", "--detailed-exitcode"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    // Without --check it means nothing: refused before anything runs.
    let refused = run(&["play", "pb.yml", "-i", "hosts", "--detailed-exitcode"]);
    assert_eq!(refused.status.code(), Some(5));
    assert!(
        stderr(&refused).starts_with(
            "error: `--detailed-exitcode` says whether a dry run would change anything: it needs `--check`"
        ),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn status_as_json_is_json_lines_as_its_help_says() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    for (app, live) in [("api", "green"), ("web", "blue")] {
        write(
            &state,
            &format!("{app}.json"),
            &format!(
                "{{\"app\":\"{app}\",\"live\":\"{live}\",\"release\":\"7\",\"target\":null,\"backends\":{{\"app1\":\"{live}\"}},\"batches_done\":1,\"batches_total\":1,\"status\":\"live\",\"updated\":1}}\n"
            ),
        );
    }
    write(d.path(), "hosts", "[proxy]\nproxy1 ansible_connection=local\n");
    let state_arg = state.display().to_string();
    let out = common::run(
        d.path(),
        &["status", "-i", "hosts", "--state-dir", &state_arg, "--format", "json"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        lines
            .iter()
            .map(|l| (l["app"].as_str(), l["live"].as_str(), l["proxy"].as_str()))
            .collect::<Vec<_>>(),
        [
            (Some("api"), Some("green"), Some("proxy1")),
            (Some("web"), Some("blue"), Some("proxy1"))
        ]
    );
    let help = common::run(d.path(), &["status", "--help"]);
    assert!(stdout(&help).contains("JSON Lines"), "{}", stdout(&help));
}

#[test]
fn every_task_start_is_closed_by_a_task_end_also_for_meta_tasks_and_facts() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", "app1 ansible_connection=local\n");
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: true\n  tasks:\n    - meta: noop\n    - debug: { msg: hi }\n      changed_when: true\n      notify: h\n    - meta: flush_handlers\n    - meta: end_play\n  handlers:\n    - name: h\n      debug: { msg: handled }\n",
    );
    let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts", "--format", "json"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let mut open: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        match v["event"].as_str() {
            // `flush_handlers` runs the handlers inside it: starts and ends nest.
            Some("task_start") => {
                open.push(v["name"].as_str().unwrap().to_string());
            }
            Some("task_end") => {
                let name = v["name"].as_str().unwrap();
                assert_eq!(open.pop().as_deref(), Some(name), "{text}");
                seen.push(name.to_string());
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "{open:?} never ended: {text}");
    for name in ["Gathering Facts", "meta", "h"] {
        assert!(seen.iter().any(|s| s == name), "no task_end of {name}: {seen:?}");
    }
    assert_eq!(seen.iter().filter(|s| *s == "meta").count(), 3, "{seen:?}");
}

#[test]
fn the_lock_holder_without_user_is_the_login_name_not_unknown() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    write(
        d.path(),
        "hosts",
        &format!("proxy1 ansible_connection=local roll_state_dir={}\n", state.display()),
    );
    write(
        d.path(),
        "pb.yml",
        "- hosts: proxy1\n  tasks:\n    - roll.deploy_lock: { app: web, dir: \"{{ roll_state_dir }}\" }\n",
    );
    let out = common::roll(d.path())
        .args(["play", "pb.yml", "-i", "hosts"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("CI_JOB_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let me = Command::new("id").arg("-un").output().unwrap();
    let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
    let audit = std::fs::read_to_string(state.join("audit.log")).unwrap();
    let taken = audit
        .lines()
        .find(|l| l.contains("lock taken"))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(taken.contains(&format!("{me}@")), "{taken}");
    assert!(!taken.contains("unknown@"), "{taken}");
}

#[test]
fn a_tab_in_group_vars_is_reported_on_its_own_line() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", "app1 ansible_connection=local\n");
    write(d.path(), "group_vars/all.yml", "release: 1\n\tport: 8080\n");
    write(d.path(), "pb.yml", "- hosts: all\n  tasks: []\n");
    let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "error: invalid YAML: while scanning a plain scalar, found a tab\n --> group_vars/all.yml:2:1\n  |\n2 |     port: 8080\n  | ^^^^\n"
        ),
        "{:?}",
        stderr(&out)
    );
}

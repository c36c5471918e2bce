//! `synchronize` with the real rsync against a loopback sshd host: pushed and pulled through
//! roll's own ssh master (the fleet's port, key and private known_hosts, which a plain `ssh`
//! would not know), changed read from rsync's itemized output, check mode as `--dry-run` that
//! writes nothing, `delete`, excludes through `rsync_opts`, and `delegate_to` the host itself or
//! the controller.

use crate::common::{self, fleet::Fleet};
use std::path::Path;

const PLAY: &str = r#"- hosts: all
  gather_facts: false
  vars:
    excludes: ["--exclude=*.log"]
  tasks:
    - name: push
      synchronize: { src: site/, dest: "{{ base }}/www/", rsync_opts: "{{ excludes }}" }
      register: push_run
    - name: push again
      ansible.posix.synchronize: { src: site/, dest: "{{ base }}/www/", rsync_opts: "{{ excludes }}" }
      register: push_again
    - name: a stale file on the host
      copy: { dest: "{{ base }}/www/stale.txt", content: "old\n" }
    - name: push with delete
      synchronize: { src: site/, dest: "{{ base }}/www/", delete: true, checksum: true, rsync_opts: "{{ excludes }}" }
      register: push_delete
    - name: pull
      synchronize: { mode: pull, src: "{{ base }}/www/", dest: "{{ base }}/pulled" }
      register: pull_run
    - name: on the host itself
      synchronize: { src: "{{ base }}/www/", dest: "{{ base }}/copy/", archive: false, recursive: true }
      delegate_to: "{{ inventory_hostname }}"
      register: local_run
    - name: from the controller, delegated there
      synchronize: { src: site/, dest: "{{ base }}/www2/" }
      delegate_to: localhost
      register: delegated_run
    - name: Write what they registered
      copy:
        dest: "{{ base }}/results.json"
        content: "{{ {'push_run': push_run, 'push_again': push_again, 'push_delete': push_delete, 'pull_run': pull_run, 'local_run': local_run, 'delegated_run': delegated_run} | to_json }}"
"#;

struct Setup {
    fleet: Fleet,
    dir: tempfile::TempDir,
    base: tempfile::TempDir,
}

fn setup() -> Setup {
    assert!(
        Path::new("/usr/bin/rsync").exists(),
        "these tests need rsync: install the Debian package `rsync`"
    );
    let fleet = Fleet::up(1, "sy");
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "hosts", &fleet.inventory());
    common::write(dir.path(), "p.yml", PLAY);
    // The first task alone: a dry run of the whole play would pull what was never pushed.
    let push = PLAY.split("    - name: push again").next().unwrap();
    common::write(dir.path(), "push.yml", push);
    common::write(dir.path(), "files/site/index.html", "<h1>hello</h1>\n");
    common::write(dir.path(), "files/site/css/app.css", "body { color: red }\n");
    common::write(dir.path(), "files/site/debug.log", "not deployed\n");
    Setup {
        fleet,
        dir,
        base: tempfile::tempdir().unwrap(),
    }
}

fn play(s: &Setup, extra: &[&str]) -> std::process::Output {
    play_file(s, "p.yml", extra)
}

fn play_file(s: &Setup, file: &str, extra: &[&str]) -> std::process::Output {
    common::roll(s.dir.path())
        .env("ROLL_KNOWN_HOSTS", s.fleet.known_hosts())
        .args(["play", file, "-i", "hosts", "-e"])
        .arg(format!("base={}", s.base.path().display()))
        .args(extra)
        .output()
        .unwrap()
}

fn lines(v: &serde_json::Value) -> Vec<String> {
    v["stdout_lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no stdout_lines in {v}"))
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn trees_are_pushed_and_pulled_through_rolls_master_and_a_second_push_is_ok() {
    let s = setup();
    let base = s.base.path();

    // Check mode is rsync's dry run: it lists what would go and writes nothing.
    let dry = play_file(&s, "push.yml", &["--check", "--diff"]);
    let so = common::stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{so}{}", common::stderr(&dry));
    assert!(so.contains("<f+++++++++ index.html"), "{so}");
    assert!(!so.contains("debug.log"), "{so}");
    assert!(!base.join("www").exists(), "a dry run wrote files");

    let out = play(&s, &[]);
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{so}{}", common::stderr(&out));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("results.json")).unwrap()).unwrap();

    let push = &r["push_run"];
    assert_eq!(push["changed"], true, "{push}");
    assert_eq!(push["rc"], 0, "{push}");
    let pushed = lines(push);
    assert!(pushed.contains(&"<f+++++++++ index.html".to_string()), "{pushed:?}");
    assert!(pushed.contains(&"<f+++++++++ css/app.css".to_string()), "{pushed:?}");
    assert!(pushed.iter().all(|l| !l.contains("debug.log")), "{pushed:?}");
    assert_eq!(push["msg"].as_str().unwrap(), pushed.join("\n") + "\n");
    let cmd = push["cmd"].as_str().unwrap();
    assert!(cmd.starts_with("rsync ") && !cmd.contains("--dry-run"), "{cmd}");
    assert_eq!(
        std::fs::read_to_string(base.join("www/index.html")).unwrap(),
        "<h1>hello</h1>\n"
    );
    assert!(!base.join("www/debug.log").exists());

    assert_eq!(r["push_again"]["changed"], false, "{}", r["push_again"]);
    assert_eq!(lines(&r["push_again"]), Vec::<String>::new());

    let del = &r["push_delete"];
    assert_eq!(del["changed"], true, "{del}");
    assert!(lines(del).contains(&"*deleting   stale.txt".to_string()), "{del}");
    assert!(del["cmd"].as_str().unwrap().contains("--delete-after"), "{del}");
    assert!(!base.join("www/stale.txt").exists());

    assert_eq!(r["pull_run"]["changed"], true, "{}", r["pull_run"]);
    assert!(base.join("pulled/css/app.css").exists());
    assert_eq!(r["local_run"]["changed"], true, "{}", r["local_run"]);
    assert!(base.join("copy/index.html").exists());
    assert_eq!(r["delegated_run"]["changed"], true, "{}", r["delegated_run"]);
    assert!(base.join("www2/css/app.css").exists());

    // All of it again: the same trees are pushed with nothing to do.
    let again = play(&s, &[]);
    let so = common::stdout(&again);
    assert_eq!(again.status.code(), Some(0), "{so}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("results.json")).unwrap()).unwrap();
    for k in ["push_run", "delegated_run"] {
        assert_eq!(r[k]["changed"], false, "{k}: {}", r[k]);
    }
}

#[test]
fn an_rsync_failure_fails_the_task_with_its_stderr_and_command() {
    let s = setup();
    common::write(
        s.dir.path(),
        "bad.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - synchronize: { src: /nonexistent-roll-src/, dest: /tmp/x }\n",
    );
    let out = common::roll(s.dir.path())
        .env("ROLL_KNOWN_HOSTS", s.fleet.known_hosts())
        .args(["play", "bad.yml", "-i", "hosts", "-v"])
        .output()
        .unwrap();
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{so}");
    assert!(so.contains("change_dir") || so.contains("No such file"), "{so}");
}

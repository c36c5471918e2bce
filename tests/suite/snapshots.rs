//! The whole human log of representative plays, pinned: each case runs the real binary against
//! two local hosts and compares everything it printed (stdout and stderr as interleaved on a
//! terminal, NO_COLOR) and its exit code with `tests/snapshots/NAME.txt`, after `redact`. Run
//! with `ROLL_BLESS=1` to write the stored files from the current output, then review the diff.

use crate::common::{self, write};
use std::io::{Read, Seek};
use std::path::Path;

/// Two hosts whose vars differ, so that templates and conditions differ per host.
const HOSTS: &str = "[web]\n\
    web1 ansible_connection=local port=8080 role=primary\n\
    web2 ansible_connection=local port=9090 role=replica\n";

struct Case<'a> {
    name: &'a str,
    playbook: &'a str,
    /// After `play pb.yml -i hosts`.
    args: &'a [&'a str],
    /// Further files of the case's directory (path, content).
    files: &'a [(&'a str, &'a str)],
    code: i32,
}

/// What changes from run to run or machine to machine, replaced by a placeholder: the case's
/// directory by `[TMP]`, durations by `[DURATION]`, timestamps by `[TIME]`.
fn redact(text: &str, dir: &Path) -> String {
    let mut text = text.to_string();
    // The canonical path first: it may be longer than the one the test made (a symlinked /tmp).
    if let Ok(real) = dir.canonicalize() {
        text = text.replace(&real.display().to_string(), "[TMP]");
    }
    text = text.replace(&dir.display().to_string(), "[TMP]");
    let rules = [
        (r#"("(?:delta|duration)": ?)"[^"]*""#, r#"${1}"[DURATION]""#),
        (r#"("duration_ms": ?)\d+"#, "${1}[DURATION]"),
        (r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?", "[TIME]"),
    ];
    for (pattern, with) in rules {
        text = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&text, with)
            .into_owned();
    }
    text
}

fn snapshot(case: Case) {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", HOSTS);
    write(d.path(), "pb.yml", case.playbook);
    for (path, text) in case.files {
        write(d.path(), path, text);
    }
    let mut args = vec!["play", "pb.yml", "-i", "hosts"];
    args.extend_from_slice(case.args);
    // One file for both streams, so that their lines keep the order roll wrote them in.
    let mut log = tempfile::tempfile().unwrap();
    let status = common::roll(d.path())
        .args(&args)
        .stdout(log.try_clone().unwrap())
        .stderr(log.try_clone().unwrap())
        .status()
        .unwrap();
    let mut printed = String::new();
    log.rewind().unwrap();
    log.read_to_string(&mut printed).unwrap();
    let code = status.code();
    let actual = format!(
        "$ roll {}\n{}[exit {}]\n",
        args.join(" "),
        redact(&printed, d.path()),
        code.map_or("signal".to_string(), |c| c.to_string())
    );
    let stored = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{}.txt", case.name));
    if std::env::var_os("ROLL_BLESS").is_some() {
        std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
        std::fs::write(&stored, &actual).unwrap();
    }
    assert_eq!(code, Some(case.code), "exit code of {}:\n{actual}", case.name);
    let expected = std::fs::read_to_string(&stored).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run with ROLL_BLESS=1 to write it\n{actual}",
            stored.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, &actual)
            .unified_diff()
            .header("stored", "actual")
            .to_string();
        panic!(
            "the output differs from {} (ROLL_BLESS=1 rewrites it):\n{diff}",
            stored.display()
        );
    }
}

#[test]
fn loop_with_label_and_when() {
    snapshot(Case {
        name: "loop-label-when",
        playbook: r#"
- name: Services
  hosts: web
  tasks:
    - name: Announce each service
      command: echo {{ item.name }}
      loop:
        - { name: api, hosts: [web1, web2] }
        - { name: worker, hosts: [web1] }
        - { name: cron, hosts: [web2] }
      loop_control:
        label: "{{ item.name }}"
      when: inventory_hostname in item.hosts
"#,
        args: &[],
        files: &[],
        code: 0,
    });
}

#[test]
fn register_and_debug() {
    snapshot(Case {
        name: "register-debug",
        playbook: r#"
- name: Facts
  hosts: web
  tasks:
    - name: Ask the host
      command: echo {{ role }} on {{ port }}
      register: answer
    - name: Show the variable
      debug: { var: answer.stdout }
    - name: Show a message
      debug: { msg: "{{ inventory_hostname }} says {{ answer.stdout_lines | first }}" }
"#,
        args: &[],
        files: &[],
        code: 0,
    });
}

#[test]
fn handler_notified_and_flushed() {
    snapshot(Case {
        name: "handler-flush",
        playbook: r#"
- name: Configure
  hosts: web
  tasks:
    - name: Write the config
      copy: { content: "port={{ port }}\n", dest: "{{ playbook_dir }}/{{ inventory_hostname }}.conf" }
      notify: restart app
    - name: Flush the handlers
      meta: flush_handlers
    - name: After the restart
      debug: { msg: "{{ inventory_hostname }} restarted" }
  handlers:
    - name: restart app
      command: echo restarting {{ inventory_hostname }}
"#,
        args: &[],
        files: &[("web1.conf", "port=8080\n")],
        code: 0,
    });
}

#[test]
fn block_rescue_always() {
    snapshot(Case {
        name: "block-rescue-always",
        playbook: r#"
- name: Recover
  hosts: web
  tasks:
    - name: Try
      block:
        - name: Break on web2
          shell: "echo broken >&2; exit 3"
          when: inventory_hostname == 'web2'
        - name: Only without a failure
          debug: { msg: fine }
      rescue:
        - name: Rescue
          debug: { msg: "rescued {{ inventory_hostname }}" }
      always:
        - name: Clean up
          command: echo cleanup
"#,
        args: &[],
        files: &[],
        code: 0,
    });
}

#[test]
fn failure_ignored() {
    snapshot(Case {
        name: "ignore-errors",
        playbook: r#"
- name: Tolerate
  hosts: web
  tasks:
    - name: Allowed to fail
      shell: "echo not today >&2; exit 1"
      ignore_errors: true
    - name: Goes on
      debug: { msg: "still here" }
"#,
        args: &[],
        files: &[],
        code: 0,
    });
}

#[test]
fn check_diff_on_template_and_copy() {
    snapshot(Case {
        name: "check-diff",
        playbook: r#"
- name: Configure
  hosts: web
  tasks:
    - name: Render the config
      template: { src: app.conf.j2, dest: "{{ playbook_dir }}/{{ inventory_hostname }}/app.conf" }
    - name: Drop a marker
      copy: { content: "managed\n", dest: "{{ playbook_dir }}/{{ inventory_hostname }}/marker" }
    - name: Restart
      command: echo restart
"#,
        args: &["--check", "--diff"],
        files: &[
            ("templates/app.conf.j2", "listen {{ port }}\nrole {{ role }}\n"),
            ("web1/app.conf", "listen 80\nrole primary\n"),
            ("web1/marker", "managed\n"),
            ("web2/.keep", ""),
        ],
        code: 0,
    });
}

const TAGGED: &str = r#"
- name: Tagged
  hosts: web
  tasks:
    - name: Web only
      debug: { msg: web }
      tags: [web]
    - name: Database only
      debug: { msg: db }
      tags: [db]
    - name: Untagged
      debug: { msg: untagged }
    - name: Every time
      debug: { msg: always }
      tags: always
"#;

#[test]
fn only_tags() {
    snapshot(Case {
        name: "tags",
        playbook: TAGGED,
        args: &["--tags", "web"],
        files: &[],
        code: 0,
    });
}

#[test]
fn skip_tags() {
    snapshot(Case {
        name: "skip-tags",
        playbook: TAGGED,
        args: &["--skip-tags", "web,always"],
        files: &[],
        code: 0,
    });
}

#[test]
fn play_ending_with_a_failure() {
    snapshot(Case {
        name: "failed-play",
        playbook: r#"
- name: Deploy
  hosts: web
  tasks:
    - name: Check the port
      command: test {{ port }} -lt 9000
    - name: Afterwards
      debug: { msg: "{{ inventory_hostname }} passed" }
"#,
        args: &[],
        files: &[],
        code: 2,
    });
}

#[test]
fn json_event_lines() {
    snapshot(Case {
        name: "json-events",
        playbook: r#"
- name: Tiny
  hosts: web1
  tasks:
    - name: Say hi
      command: echo hi
"#,
        args: &["--format", "json"],
        files: &[],
        code: 0,
    });
}

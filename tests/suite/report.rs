//! Reports for CI: `--junit FILE` validated with xmllint against a JUnit schema
//! (`tests/junit/junit.xsd`), and GitLab CI's collapsible sections with no colour escapes.

use crate::common;

use common::{stdout, write};
use std::path::Path;
use std::process::Command;

const PLAYBOOK: &str = r#"
- name: Site
  hosts: app
  gather_facts: false
  tasks:
    - name: Say hi
      command: echo hi
    - name: Break on app2
      shell: "echo first >&2; echo last words >&2; exit 3"
      when: inventory_hostname == 'app2'
    - name: Only on app1
      debug: { msg: one }
      when: inventory_hostname == 'app1'
- name: Second play
  hosts: app1
  gather_facts: false
  tasks:
    - name: Hidden
      shell: "echo s3cret-token >&2; exit 1"
      no_log: true
"#;

#[test]
fn junit_report_validates_and_holds_every_task_and_host() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "hosts",
        "[app]\napp1 ansible_connection=local\napp2 ansible_connection=local\n",
    );
    write(d.path(), "pb.yml", PLAYBOOK);
    let out = common::roll(d.path())
        .args(["play", "pb.yml", "-i", "hosts", "--junit", "report.xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit/junit.xsd");
    let lint = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(d.path().join("report.xml"))
        .output()
        .expect("this test needs xmllint: install the Debian package `libxml2-utils`");
    assert!(lint.status.success(), "{}", String::from_utf8_lossy(&lint.stderr));
    let xml = std::fs::read_to_string(d.path().join("report.xml")).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert!(
        xml.contains("<testsuite name=\"Site\" tests=\"5\" skipped=\"1\" errors=\"0\" failures=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("<testcase name=\"Say hi\" classname=\"app2\""), "{xml}");
    // The failure: its message, and the tail of stderr.
    assert!(
        xml.contains("<failure message=\"non-zero return code\" type=\"failed\">first\nlast words</failure>"),
        "{xml}"
    );
    // no_log hides the output here too.
    assert!(!xml.contains("s3cret-token"), "{xml}");
    assert!(
        xml.contains("hidden due to the &apos;no_log: true&apos;") || xml.contains("hidden due to the 'no_log: true'"),
        "{xml}"
    );
}

#[test]
fn under_gitlab_ci_plays_are_collapsible_sections_without_colour() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "hosts",
        "[app]\napp1 ansible_connection=local\napp2 ansible_connection=local\n",
    );
    write(d.path(), "pb.yml", PLAYBOOK);
    let out = common::roll(d.path())
        .args(["play", "pb.yml", "-i", "hosts"])
        .env("GITLAB_CI", "true")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(text.matches("section_start:").count(), 2, "{text}");
    assert_eq!(text.matches("section_end:").count(), 2, "{text}");
    assert!(text.contains("\x1b[0Ksection_start:"), "{text}");
    assert!(
        text.contains(":roll_play_1[collapsed=false]\r\x1b[0KPLAY [Site]\n"),
        "{text}"
    );
    // GitLab's own `ESC[0K` is the only escape: no colours.
    assert_eq!(
        text.matches('\x1b').count(),
        text.matches("\x1b[0K").count(),
        "{text:?}"
    );
    // Colour only when forced.
    let forced = common::roll(d.path())
        .args(["play", "pb.yml", "-i", "hosts", "--color", "always"])
        .env("GITLAB_CI", "true")
        .output()
        .unwrap();
    assert!(
        stdout(&forced).contains("\x1b[33mchanged: [app1]"),
        "{:?}",
        stdout(&forced)
    );
    // The second section ends before the recap.
    let end = text.rfind("section_end:").unwrap();
    assert!(end < text.find("PLAY RECAP").unwrap());
}

/// `roll play` under a pseudo-terminal (`script` from util-linux), with its combined output.
fn on_a_terminal(dir: &Path, args: &str) -> String {
    let cmd = format!("{} {args}", common::roll_bin().display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CI")
        .env_remove("GITLAB_CI")
        .output()
        .expect("this test needs `script` (Debian package bsdutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_bars_show_on_a_terminal_only_and_never_split_a_log_line() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "hosts",
        "[app]\napp1 ansible_connection=local\napp2 ansible_connection=local\n",
    );
    write(
        d.path(),
        "pb.yml",
        "- name: Slow\n  hosts: app\n  tasks:\n    - name: Wait a little\n      command: sleep 1\n",
    );
    let tty = on_a_terminal(d.path(), "play pb.yml -i hosts");
    assert!(tty.contains("Wait a little"), "{tty:?}");
    assert!(tty.contains("/2 hosts"), "no progress bar on a terminal: {tty:?}");
    // Log lines stay whole: the bar is cleared before each one is written, so between the
    // last line break (or carriage return) and the line there is nothing visible.
    for line in ["changed: [app1]", "changed: [app2]"] {
        let at = tty.find(line).unwrap_or_else(|| panic!("{line} missing: {tty:?}"));
        let before = &tty[..at];
        let tail = &before[before.rfind(['\n', '\r']).map_or(0, |i| i + 1)..];
        let visible = strip_ansi(tail);
        assert!(visible.is_empty(), "`{line}` does not start a line: {tail:?}");
    }
    let quiet = on_a_terminal(d.path(), "play pb.yml -i hosts -q");
    assert!(!quiet.contains("/2 hosts"), "{quiet:?}");
    // Not a terminal: no bar.
    let piped = common::roll(d.path())
        .args(["play", "pb.yml", "-i", "hosts"])
        .output()
        .unwrap();
    assert!(!common::stderr(&piped).contains("hosts") && !stdout(&piped).contains("/2 hosts"));
}

/// `s` without ANSI CSI sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

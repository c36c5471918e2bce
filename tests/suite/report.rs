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

/// A tmux server of this test's own (its socket named for it), killed when dropped.
struct Tmux(String);

impl Tmux {
    /// `cmd` in a detached session of `cols` columns; it stays open after `cmd` ends.
    fn run(name: &str, cols: u16, dir: &Path, cmd: &str) -> Tmux {
        let t = Tmux(format!("roll-test-{name}-{}", std::process::id()));
        let shell = format!("cd {} && {cmd}; echo ROLL-EXIT=$?; sleep 600", dir.display());
        let out = t
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                &cols.to_string(),
                "-y",
                "30",
                &shell,
            ])
            .expect("this test needs tmux (Debian package tmux)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        t
    }

    fn cmd(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
    }

    /// The visible screen, or with `history` everything that scrolled by too.
    fn screen(&self, history: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "t"];
        if history {
            args.extend(["-S", "-"]);
        }
        String::from_utf8_lossy(&self.cmd(&args).unwrap().stdout).into_owned()
    }

    /// The screen once `until` holds for it (at most 60 s).
    fn wait_for(&self, what: &str, until: impl Fn(&str) -> bool) -> String {
        let t0 = std::time::Instant::now();
        loop {
            let s = self.screen(false);
            if until(&s) {
                return s;
            }
            assert!(t0.elapsed().as_secs() < 60, "no {what} on the screen:\n{s}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// What a switch in a terminal shows: at 80 and at 200 columns, the task's bar as wide as the
/// terminal and under it the batch line counting down the pause (its backends shortened to fit
/// at 80), and once the run is over no bar left on the screen or in the scrollback.
#[test]
fn a_switch_on_a_terminal_shows_the_batch_counting_down_and_leaves_no_bar() {
    use common::nginx::{Nginx, backends, switch_playbook};
    let backends = backends(30);
    for cols in [80u16, 200] {
        let d = tempfile::tempdir().unwrap();
        let nginx = Nginx::start(d.path(), &backends);
        switch_playbook(d.path(), &nginx, &backends, 3, "4s");
        let cmd = format!(
            "env -u CI -u GITLAB_CI NO_COLOR=1 {} play switch.yml -i hosts",
            common::roll_bin().display()
        );
        let tmux = Tmux::run(&format!("switch{cols}"), cols, d.path(), &cmd);
        let pause = tmux.wait_for("pause countdown", |s| s.contains(", next in "));
        let lines: Vec<&str> = pause.lines().collect();
        let batch = lines
            .iter()
            .find(|l| l.contains("web: batch 1/3 → green (app1, "))
            .unwrap_or_else(|| panic!("no batch line at {cols} columns:\n{pause}"));
        let tail = batch.trim_end();
        let secs: String = tail
            .rsplit("next in ")
            .next()
            .unwrap()
            .trim_end_matches('s')
            .to_string();
        let left: u32 = secs.parse().unwrap_or_else(|_| panic!("no countdown: {tail:?}"));
        assert!((1..=4).contains(&left), "{tail:?}");
        if cols == 80 {
            // Ten backends do not fit: the ones left out are counted, the countdown shows.
            assert!(tail.contains(", +") && tail.chars().count() <= 80, "{tail:?}");
        } else {
            let all: Vec<String> = (1..=10).map(|i| format!("app{i}")).collect();
            assert!(tail.contains(&format!("({}), next in", all.join(", "))), "{tail:?}");
        }
        // The task's bar above it carries the whole task name and the host count.
        let bar = lines
            .iter()
            .find(|l| l.contains("0/1 hosts"))
            .unwrap_or_else(|| panic!("no task bar at {cols} columns:\n{pause}"));
        assert!(bar.contains("Switch the nginx upstream to the next colour"), "{bar:?}");
        if cols == 200 {
            assert!(
                bar.trim_end().chars().count() > 120,
                "the bar is not as wide as the terminal: {bar:?}"
            );
        }
        // A later pause counts down the next batch.
        tmux.wait_for("second pause", |s| s.contains("web: batch 2/3 → green (app11, "));
        let end = tmux.wait_for("end of the run", |s| s.contains("ROLL-EXIT="));
        assert!(end.contains("ROLL-EXIT=0"), "{end}");
        let all = tmux.screen(true);
        assert!(all.contains("PLAY RECAP"), "{all}");
        for leftover in ["hosts ", "next in", "web: batch", "[====", "[    "] {
            assert!(!all.contains(leftover), "`{leftover}` left at {cols} columns:\n{all}");
        }
        assert!(all.contains("changed: [proxy1]"), "{all}");
    }
}

/// A sandbox rollout (`playbooks/deploy.yml` over the loopback sshd fleet, containers, nginx)
/// as a GitLab job runs it, `CI=true GITLAB_CI=true` and no terminal: the log has one line per
/// batch with its backends and times, the pauses' start and end, and a second rollout started
/// meanwhile with `--lock-wait` says whose lock it waits for and for how long at most, then
/// that it got it (and finds its release live). The PLAY RECAP keeps Ansible's layout.
#[test]
fn a_rollout_under_gitlab_ci_logs_each_batch_its_pauses_and_the_lock_wait() {
    use common::sandbox::Sandbox;
    let sb = Sandbox::up(
        "cilog",
        4,
        1,
        serde_json::json!({ "switch_batches": 2, "switch_pause": "3s" }),
    );
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    let ci = |c: &mut Command| {
        c.env("CI", "true")
            .env("GITLAB_CI", "true")
            .env("USER", "alice")
            .env_remove("CI_JOB_URL");
    };
    let mut deploy = sb.play_cmd("deploy.yml", &["release=2"]);
    ci(&mut deploy);
    let deploy = deploy.stdout(std::process::Stdio::piped()).spawn().unwrap();
    // The second rollout starts once the first holds the lock and is switching.
    sb.wait_state(0, std::time::Duration::from_secs(60), |s| s["status"] == "switching");
    // The registry holds releases 1 and 2: the second rollout finds 2 live once it has the lock.
    let mut second = sb.play_cmd("deploy.yml", &["release=2"]);
    ci(&mut second);
    let second = second.args(["--lock-wait", "2m"]).output().unwrap();
    let first = deploy.wait_with_output().unwrap();
    let log = stdout(&first);
    assert_eq!(first.status.code(), Some(0), "{log}");
    let batch_lines: Vec<&str> = log.lines().filter(|l| l.contains("web: batch ")).collect();
    assert_eq!(batch_lines.len(), 2, "{log}");
    let apps: Vec<&str> = sb.apps.iter().map(|(n, _)| n.as_str()).collect();
    for (k, line) in batch_lines.iter().enumerate() {
        let proxy = &sb.proxies[0].0;
        let want = format!(
            "[{proxy}] web: batch {}/2 → green ({}, {}) done: write ",
            k + 1,
            apps[2 * k],
            apps[2 * k + 1]
        );
        assert!(line.starts_with(&want), "{line:?} is not {want:?}…");
        for step in [", validate ", ", reload ", ", gate "] {
            assert!(line.contains(step), "{line}");
        }
    }
    assert_eq!(
        log.lines()
            .filter(|l| l.ends_with("pause of 3s before batch 2/2 of web"))
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("pause before batch 2/2 of web over after "))
            .count(),
        1,
        "{log}"
    );
    // GitLab's sections and Ansible's recap, untouched by the new lines.
    assert!(log.contains("section_start:"), "{log}");
    assert!(
        common::recap(&log)
            .iter()
            .all(|l| l.contains(" : ok=") && l.contains("  changed=")),
        "{log}"
    );
    // The second rollout waited for the first one's lock, said so, and then deployed.
    let waited = stdout(&second);
    assert_eq!(second.status.code(), Some(0), "{waited}");
    let line = waited
        .lines()
        .find(|l| l.contains("waiting for the deploy lock of `web`, held by alice@"))
        .unwrap_or_else(|| panic!("no lock wait line: {waited}"));
    assert!(line.contains(" since ") && line.ends_with("(at most 2m00s)"), "{line}");
    assert!(
        waited
            .lines()
            .any(|l| l.contains("waited ") && l.contains(" for the deploy lock of `web`")),
        "{waited}"
    );
    assert!(
        waited.contains("release 2 is live on green with this configuration: nothing to do"),
        "{waited}"
    );
    assert_eq!(sb.state(0).unwrap()["release"], "2");
}

/// The bars on the terminal and the log in a file (`roll play ... > log`): the file still gets
/// the line per batch and the pause lines that the bars showed.
#[test]
fn a_log_sent_to_a_file_from_a_terminal_keeps_the_batch_lines() {
    use common::nginx::{Nginx, backends, switch_playbook};
    let d = tempfile::tempdir().unwrap();
    let backends = backends(4);
    let nginx = Nginx::start(d.path(), &backends);
    switch_playbook(d.path(), &nginx, &backends, 2, "1s");
    let tty = on_a_terminal(d.path(), "play switch.yml -i hosts > log.txt");
    assert!(tty.contains("0/1 hosts"), "no bar on the terminal: {tty:?}");
    let log = std::fs::read_to_string(d.path().join("log.txt")).unwrap();
    assert!(
        log.contains("[proxy1] web: batch 1/2 → green (app1, app2) done: write "),
        "{log}"
    );
    assert!(log.contains("[proxy1] pause of 1s before batch 2/2 of web\n"), "{log}");
    assert!(!log.contains("hosts ") && !log.contains('\x1b'), "{log:?}");
}

/// On a terminal, a wait for another rollout's deploy lock says under the bar whose lock it is,
/// since when, and how long it may wait or has left, and the line goes with the task.
#[test]
fn a_lock_wait_on_a_terminal_says_whose_lock_and_how_long() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    write(
        &state,
        "web.lock",
        "{\"app\":\"web\",\"holder\":\"alice@ops1\",\"run\":\"1-1\",\"started\":1764590400,\"expires\":99999999999,\"release\":\"6\"}\n",
    );
    write(
        d.path(),
        "hosts",
        &format!("proxy1 ansible_connection=local roll_state_dir={}\n", state.display()),
    );
    write(
        d.path(),
        "pb.yml",
        "- hosts: proxy1\n  tasks:\n    - name: Take the deploy lock\n      roll.deploy_lock: { app: web, dir: \"{{ roll_state_dir }}\" }\n",
    );
    let cmd = format!(
        "env -u CI -u GITLAB_CI NO_COLOR=1 {} play pb.yml -i hosts --lock-wait 4s",
        common::roll_bin().display()
    );
    let tmux = Tmux::run("lockwait", 120, d.path(), &cmd);
    let screen = tmux.wait_for("lock wait", |s| s.contains("waiting for the deploy lock"));
    let line = screen
        .lines()
        .find(|l| l.contains("waiting for the deploy lock"))
        .unwrap()
        .trim();
    assert!(
        line.starts_with("waiting for the deploy lock of `web`, held by alice@ops1 since 2025-12-01 12:00:00 UTC"),
        "{line:?}"
    );
    assert!(line.contains("(at most 4s)") || line.ends_with(" left"), "{line:?}");
    let end = tmux.wait_for("end of the run", |s| s.contains("ROLL-EXIT="));
    assert!(end.contains("ROLL-EXIT=2"), "{end}");
    assert!(end.contains("is being deployed by alice@ops1"), "{end}");
    assert!(
        !tmux.screen(true).contains("waiting for the deploy lock"),
        "{}",
        tmux.screen(true)
    );
}

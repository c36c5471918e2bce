//! The deploy lock (`roll.deploy_lock`, `--lock-wait`, `roll lock status | release`): two
//! rollouts started together never interleave, a killed rollout's lock expires and is broken
//! with a record, and every step lands in the audit log. Real roll processes, local connection.

use crate::common;

use common::{Watched, stdout, write};
use std::path::Path;
use std::time::{Duration, Instant};

const PLAYBOOK: &str = r#"
- hosts: proxy1
  tasks:
    - roll.deploy_lock: { app: web, dir: "{{ roll_state_dir }}", ttl: "{{ ttl | default('1h') }}", release: "{{ who }}" }
    - shell: "echo {{ who }} start >> {{ playbook_dir }}/log"
    - pause: { seconds: "{{ hold | default(2) }}" }
    - shell: "echo {{ who }} end >> {{ playbook_dir }}/log"
"#;

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    write(
        d.path(),
        "hosts",
        &format!(
            "[proxy]\nproxy1 ansible_connection=local roll_state_dir={}\n",
            state.display()
        ),
    );
    write(d.path(), "pb.yml", PLAYBOOK);
    d
}

fn play(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = common::roll(dir);
    c.args(["play", "pb.yml", "-i", "hosts"]);
    for e in extra {
        c.args(["-e", e]);
    }
    c.output().unwrap()
}

fn log(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn wait_for_file(p: &Path) {
    let t0 = Instant::now();
    while !p.exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_rollout_fails_or_waits_and_never_interleaves() {
    let d = setup();
    let dir = d.path();
    // Rollout A, as a GitLab CI job, holds the lock for about 3 s.
    let mut a = common::roll(dir);
    a.args(["play", "pb.yml", "-i", "hosts", "-e", "who=A", "-e", "hold=3"])
        .env("CI_JOB_URL", "https://gitlab.example.com/web/-/jobs/4242")
        .env("CI_PIPELINE_ID", "977");
    let a = Watched::spawn(a);
    wait_for_file(&dir.join("log"));

    // B without waiting: refused, naming A's job; nothing of B ran.
    let b = play(dir, &["who=B"]);
    let text = stdout(&b);
    assert_eq!(b.status.code(), Some(2), "{text}");
    assert!(
        text.contains("`web` is being deployed by https://gitlab.example.com/web/-/jobs/4242 (pipeline 977) since"),
        "{text}"
    );
    assert!(text.contains("--lock-wait"), "{text}");
    let status = common::roll(dir)
        .args(["lock", "status", "-i", "hosts"])
        .output()
        .unwrap();
    assert!(
        stdout(&status).contains("jobs/4242 (pipeline 977)"),
        "{}",
        stdout(&status)
    );

    // C waits for A's lock, then runs after A has finished.
    let c = common::roll(dir)
        .args([
            "play",
            "pb.yml",
            "-i",
            "hosts",
            "-e",
            "who=C",
            "-e",
            "hold=0",
            "--lock-wait",
            "30s",
        ])
        .output()
        .unwrap();
    assert_eq!(c.status.code(), Some(0), "{}", stdout(&c));
    let (code, out, _) = a.finish();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(log(dir), ["A start", "A end", "C start", "C end"]);
    // Both released their lock when they ended; the audit log has every step.
    assert!(!dir.join("state/web.lock").exists());
    let audit = std::fs::read_to_string(dir.join("state/audit.log")).unwrap();
    assert_eq!(audit.matches("lock taken").count(), 2, "{audit}");
    assert_eq!(audit.matches("lock released").count(), 2, "{audit}");
    assert!(audit.contains("release=A lock taken"), "{audit}");
    // Every task that changed the host during a rollout has its line.
    assert_eq!(audit.matches("release=A changed: shell").count(), 2, "{audit}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join("state")).unwrap().permissions());
    assert_eq!(mode & 0o007, 0, "the state directory is not world-accessible");
}

#[test]
fn a_killed_rollouts_lock_expires_and_is_broken_with_a_record() {
    let d = setup();
    let dir = d.path();
    let mut k = common::roll(dir);
    k.args([
        "play", "pb.yml", "-i", "hosts", "-e", "who=K", "-e", "hold=30", "-e", "ttl=3s",
    ]);
    let mut k = Watched::spawn(k);
    k.wait_for("TASK [pause]");
    let lock = dir.join("state/web.lock");
    assert!(lock.exists());
    // Killed outright: no chance to release.
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &k.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = k.finish();
    assert!(lock.exists(), "a killed rollout leaves its lock");
    // Before the lock expires another rollout is refused...
    let early = play(dir, &["who=E", "hold=0"]);
    assert_eq!(early.status.code(), Some(2), "{}", stdout(&early));
    // ... after, the lock is broken and the break recorded.
    std::thread::sleep(Duration::from_secs(4));
    let late = common::roll(dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", "who=L", "-e", "hold=0", "-v"])
        .output()
        .unwrap();
    let text = stdout(&late);
    assert_eq!(late.status.code(), Some(0), "{text}");
    assert!(text.contains("\"broke\""), "{text}");
    let audit = std::fs::read_to_string(dir.join("state/audit.log")).unwrap();
    assert!(audit.contains("broke expired lock of"), "{audit}");
    assert!(!lock.exists());
    assert_eq!(log(dir), ["K start", "L start", "L end"]);
}

#[test]
fn roll_lock_release_removes_any_lock_and_records_it() {
    let d = setup();
    let dir = d.path();
    write(
        dir,
        "state/web.lock",
        "{\"app\":\"web\",\"holder\":\"ghost@gone\",\"run\":\"1-1\",\"started\":1,\"expires\":99999999999,\"release\":null}\n",
    );
    let status = common::roll(dir)
        .args(["lock", "status", "-i", "hosts"])
        .output()
        .unwrap();
    assert!(stdout(&status).contains("ghost@gone"), "{}", stdout(&status));
    let missing = common::roll(dir)
        .args(["lock", "release", "-i", "hosts"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(5));
    let released = common::roll(dir)
        .args(["lock", "release", "-i", "hosts", "--app", "web"])
        .output()
        .unwrap();
    assert_eq!(released.status.code(), Some(0));
    assert!(common::stderr(&released).contains("released the deploy lock of `web` on proxy1"));
    assert!(!dir.join("state/web.lock").exists());
    let audit = std::fs::read_to_string(dir.join("state/audit.log")).unwrap();
    assert!(audit.contains("lock released by hand"), "{audit}");
    let status = common::roll(dir)
        .args(["lock", "status", "-i", "hosts"])
        .output()
        .unwrap();
    assert!(stdout(&status).contains("no deploy locks"), "{}", stdout(&status));
}

/// A rollback takes the lock before it knows the release it goes back to; once its switch
/// names the release, the audit lines that follow (the switch's batches, the changed tasks, the
/// lock's release) record it instead of `release=-`.
#[test]
fn a_lock_taken_without_a_release_records_the_release_its_switch_deploys() {
    use common::nginx::{Nginx, backends, switch_playbook};
    let d = tempfile::tempdir().unwrap();
    let backends = backends(2);
    let nginx = Nginx::start(d.path(), &backends);
    switch_playbook(d.path(), &nginx, &backends, 2, "0s");
    let state = nginx.prefix.join("state");
    let pb = std::fs::read_to_string(d.path().join("switch.yml")).unwrap();
    let pb = pb
        .replace(
            "  tasks:\n",
            &format!(
                "  tasks:\n    - name: Take the deploy lock\n      roll.deploy_lock: {{ app: web, dir: {} }}\n",
                state.display()
            ),
        )
        .replace(
            "        app: web\n        to: green\n",
            "        app: web\n        to: green\n        release: \"7\"\n",
        );
    write(d.path(), "switch.yml", &pb);
    write(
        d.path(),
        "hosts",
        &format!("proxy1 ansible_connection=local roll_state_dir={}\n", state.display()),
    );
    let out = common::run(d.path(), &["play", "switch.yml", "-i", "hosts"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), common::stderr(&out));
    let audit = std::fs::read_to_string(state.join("audit.log")).unwrap();
    let lines: Vec<&str> = audit.lines().collect();
    assert!(lines[0].contains("release=- lock taken"), "{audit}");
    for step in [
        "batch 1 of 2 to green",
        "batch 2 of 2 to green",
        "changed: ",
        "lock released",
    ] {
        let line = lines
            .iter()
            .find(|l| l.contains(step))
            .unwrap_or_else(|| panic!("no `{step}`: {audit}"));
        assert!(line.contains(" release=7 "), "{line}");
    }
}

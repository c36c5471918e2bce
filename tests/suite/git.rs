//! `git` on a real sshd host against real repositories: what ansible-core registered for the
//! same clones and updates (tests/modules/git: a local path and a file:// URL, HEAD, tags,
//! branches, commit ids, shallow, bare, local modifications, a moved remote), check mode with
//! `--diff` leaving the checkout untouched, and a `git daemon` URL on loopback.

use crate::common::{self, fleet::Fleet, oracle};
use std::path::Path;
use std::process::Command;

#[test]
fn every_case_reports_what_ansible_reported() {
    let played = oracle::play("git");
    oracle::assert_same(&played.want, &played.got);
}

/// Run git in `dir` with fixed names and dates; panics when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Roll")
        .env("GIT_AUTHOR_EMAIL", "roll@example.com")
        .env("GIT_COMMITTER_NAME", "Roll")
        .env("GIT_COMMITTER_EMAIL", "roll@example.com")
        .output()
        .expect("git is installed (Debian package `git`)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository at `dir/src` with one commit, `app.txt` saying `text`.
fn source(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q"]);
    std::fs::write(src.join("app.txt"), "one\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-q", "-m", "one"]);
    src
}

fn commit(src: &Path, text: &str) -> String {
    std::fs::write(src.join("app.txt"), text).unwrap();
    git(src, &["commit", "-q", "-am", text.trim()]);
    git(src, &["rev-parse", "HEAD"])
}

fn play(dir: &Path, fleet: &Fleet, pb: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    common::write(dir, "hosts", &fleet.inventory());
    common::write(dir, "pb.yml", pb);
    let out = common::roll(dir)
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "pb.yml", "-i", "hosts"])
        .args(extra)
        .output()
        .unwrap();
    (out.status.code(), common::stdout(&out), common::stderr(&out))
}

#[test]
fn check_mode_with_diff_shows_the_new_commits_and_leaves_the_checkout_as_it_was() {
    let d = tempfile::tempdir().unwrap();
    let src = source(d.path());
    let work = d.path().join("work");
    git(
        d.path(),
        &["clone", "-q", src.to_str().unwrap(), work.to_str().unwrap()],
    );
    let before = git(&work, &["rev-parse", "HEAD"]);
    let refs_before = git(&work, &["for-each-ref"]);
    let objects_before = git(&work, &["count-objects", "-v"]);
    let after = commit(&src, "two\n");

    let fleet = Fleet::up(1, "gc");
    let pb = format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - git: {{ repo: {}, dest: {} }}\n      register: r\n    - copy: {{ dest: {}/r.json, content: \"{{{{ r | to_json }}}}\" }}\n      check_mode: false\n",
        src.display(),
        work.display(),
        d.path().display()
    );
    let (code, out, err) = play(d.path(), &fleet, &pb, &["--check", "--diff"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["before"], before.as_str());
    assert_eq!(r["after"], after.as_str());
    let prepared = r["diff"]["prepared"].as_str().unwrap_or_default();
    assert!(prepared.contains("-one\n+two\n"), "{r}");
    assert!(out.contains(&format!("+HEAD: {after}")), "{out}");
    // Nothing in the checkout moved: HEAD, its refs, its objects, its files.
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), before);
    assert_eq!(git(&work, &["for-each-ref"]), refs_before);
    assert_eq!(git(&work, &["count-objects", "-v"]), objects_before);
    assert_eq!(std::fs::read_to_string(work.join("app.txt")).unwrap(), "one\n");
}

/// A `git daemon` serving a directory on loopback, stopped when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_git_daemon_url_on_loopback_is_cloned_then_updated_then_ok() {
    let d = tempfile::tempdir().unwrap();
    let src = source(d.path());
    let port = common::free_port();
    // git-daemon itself, not `git daemon`, whose child would outlive a kill of the parent.
    let exec_path = git(d.path(), &["--exec-path"]);
    let daemon = Daemon(
        Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--export-all",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", d.path().display()),
                d.path().to_str().unwrap(),
            ])
            .spawn()
            .expect("git daemon runs (Debian package `git-daemon-sysvinit` or git's own daemon)"),
    );
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed().as_secs() < 20, "git daemon did not listen on {port}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fleet = Fleet::up(1, "gd");
    let work = d.path().join("work");
    let pb = format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - git: {{ repo: 'git://127.0.0.1:{port}/src', dest: {}, version: main }}\n",
        work.display()
    );
    let first = git(&src, &["rev-parse", "HEAD"]);
    let (code, out, err) = play(d.path(), &fleet, &pb, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(common::recap(&out)[0].contains("changed=1"), "{out}");
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), first);

    let second = commit(&src, "two\n");
    let (code, out, err) = play(d.path(), &fleet, &pb, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(common::recap(&out)[0].contains("changed=1"), "{out}");
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), second);
    assert_eq!(std::fs::read_to_string(work.join("app.txt")).unwrap(), "two\n");

    let (code, out, err) = play(d.path(), &fleet, &pb, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(common::recap(&out)[0].contains("changed=0"), "{out}");
    drop(daemon);
}

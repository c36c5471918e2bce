//! A Debian host for the system-module tests: a container of `roll-testhost:bookworm`
//! (scripts/testhost-image) running sshd on a loopback address of its own, started by
//! `scripts/testhost` (the same script the ansible-core oracle uses), removed when dropped.
//! Its container carries `roll.testhost=1` and the run's label, so leftovers can be found.
//! Starting one takes about a second: each test gets a fresh host.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestHost {
    pub dir: tempfile::TempDir,
    /// The container's id.
    pub cid: String,
    kind: Kind,
}

/// Which host: the script that starts and removes it, and the one that builds its image.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    script: &'static str,
    image_script: &'static str,
}

/// The Debian test host (sysvinit-style: no init system runs).
pub const DEBIAN: Kind = Kind {
    script: "scripts/testhost",
    image_script: "scripts/testhost-image",
};

/// The Debian host that boots systemd as PID 1 (common/systemd_host.rs).
pub const SYSTEMD: Kind = Kind {
    script: "scripts/systemd-host",
    image_script: "scripts/systemd-host-image",
};

impl Kind {
    fn script(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(self.script)
    }
}

impl TestHost {
    /// Start a Debian test host; panics naming what is missing (the Docker engine, the image).
    pub fn up() -> TestHost {
        TestHost::start(DEBIAN)
    }

    /// Start a host of `kind`; panics naming what is missing or what did not start.
    pub fn start(kind: Kind) -> TestHost {
        let ok = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        assert!(
            ok.as_ref().is_ok_and(|o| o.status.success()),
            "these tests need a running Docker engine (Debian package docker.io)"
        );
        let dir = tempfile::Builder::new().prefix("roll-testhost-").tempdir().unwrap();
        let mut host = TestHost {
            cid: String::new(),
            dir,
            kind,
        };
        let out = Command::new(kind.script())
            .args(["up", host.dir.path().to_str().unwrap(), &super::docker::run_label()])
            .output()
            .unwrap();
        let cid = std::fs::read_to_string(host.dir.path().join("cid")).unwrap_or_default();
        host.cid = cid.trim().to_string();
        assert!(
            out.status.success(),
            "{} up failed (the image is built by {}, Debian package mmdebstrap): {}",
            kind.script,
            kind.image_script,
            String::from_utf8_lossy(&out.stderr)
        );
        host
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The inventory file: one host, `testhost`, in group `testhosts`.
    pub fn inventory(&self) -> PathBuf {
        self.path().join("hosts")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.path().join("known_hosts")
    }

    /// `roll ARGS` in `dir` against this host (its inventory and known_hosts).
    pub fn roll(&self, dir: &Path, args: &[&str]) -> Output {
        super::roll(dir)
            .env("ROLL_KNOWN_HOSTS", self.known_hosts())
            .args(args)
            .args(["-i", self.inventory().to_str().unwrap()])
            .output()
            .unwrap()
    }

    /// A shell command run in the container as root (to look at what a module did).
    pub fn sh(&self, script: &str) -> String {
        let out = Command::new("docker")
            .args(["exec", &self.cid, "sh", "-c", script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new(self.kind.script())
            .args(["down", self.dir.path().to_str().unwrap()])
            .output();
    }
}

/// Where the module playbooks work on the test host (`base`), as the oracle ran them.
pub const BASE: &str = "/tmp/roll-base";

/// What roll and ansible-core registered for `tests/modules/NAME/play.yml` on a test host.
pub struct Played {
    pub host: TestHost,
    pub out: Output,
    pub got: Vec<serde_json::Value>,
    pub want: Vec<serde_json::Value>,
}

fn results(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// roll registers `skipped: false` on every result; ansible-core only on skipped tasks.
fn without_skipped(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(r) = v.get_mut("result").and_then(|r| r.as_object_mut()) {
        r.remove("skipped");
    }
    v
}

/// Run `tests/modules/NAME/play.yml` with roll (and `extra` arguments) on a fresh test host;
/// panics if the play fails or the counts of results differ.
pub fn play(name: &str, extra: &[&str]) -> Played {
    play_on(DEBIAN, name, extra)
}

/// [`play`] on a fresh host of `kind`.
pub fn play_on(kind: Kind, name: &str, extra: &[&str]) -> Played {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/modules").join(name);
    let host = TestHost::start(kind);
    let base = format!("base={BASE}");
    let mut args = vec!["play", "play.yml", "-e", &base];
    args.extend_from_slice(extra);
    let out = host.roll(&dir, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        super::stdout(&out),
        super::stderr(&out)
    );
    let got: Vec<_> = results(&host.sh(&format!("cat {BASE}/results.jsonl")))
        .into_iter()
        .map(without_skipped)
        .collect();
    let want = results(&std::fs::read_to_string(dir.join("ansible.jsonl")).unwrap());
    assert_eq!(
        got.len(),
        want.len(),
        "roll wrote {} results, ansible {}",
        got.len(),
        want.len()
    );
    Played { host, out, got, want }
}

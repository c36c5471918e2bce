//! A loopback fleet for tests: `scripts/fleet` started in a private directory on a free port and
//! a private `127.x` network, stopped (exactly what it started) when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub net: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fleet")
}

impl Fleet {
    /// Start `n` hosts named `{prefix}001`...; panics naming the package if sshd is missing.
    pub fn up(n: usize, prefix: &str) -> Fleet {
        Fleet::up_per_sshd(n, prefix, 16)
    }

    /// As `up`, with `per_sshd` hosts per sshd process (1: each host can die alone, `kill_one`).
    pub fn up_per_sshd(n: usize, prefix: &str, per_sshd: usize) -> Fleet {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "these tests need OpenSSH's sshd: install the Debian package `openssh-server`"
        );
        let dir = tempfile::Builder::new().prefix("roll-fleet-").tempdir().unwrap();
        // A free port, and a network of our own per fleet so parallel tests never collide.
        let port = crate::common::free_port();
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let net = format!("127.{}", 100 + (std::process::id() * 7 + k * 13) % 150);
        let out = Command::new(script())
            .args([
                "up",
                &n.to_string(),
                dir.path().to_str().unwrap(),
                "--port",
                &port.to_string(),
            ])
            .args(["--net", &net, "--prefix", prefix])
            .args(["--per-sshd", &per_sshd.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fleet up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Fleet { dir, port, net }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn inventory(&self) -> String {
        std::fs::read_to_string(self.path().join("hosts")).unwrap()
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.path().join("known_hosts")
    }

    /// The hosts die: sshd and every session it serves are killed.
    pub fn kill(&self) {
        let out = Command::new(script())
            .args(["kill", self.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

impl Fleet {
    /// sshd number `k` and every session it serves are killed (with one host per sshd: host `k`
    /// dies alone).
    pub fn kill_one(&self, k: usize) {
        let out = Command::new(script())
            .args(["kill", self.path().to_str().unwrap(), &k.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// sshd number `k` starts again, as `up` configured it.
    pub fn start_one(&self, k: usize) {
        let out = Command::new(script())
            .args(["start", self.path().to_str().unwrap(), &k.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["down", self.path().to_str().unwrap()])
            .output();
    }
}

//! Docker fixtures for tests: the machine's Docker engine (required: a test fails, never skips,
//! without it), a local registry (`scripts/registry`) with the demo image pushed in two
//! releases, and a guard that removes every container, image and network labelled with the
//! run's id, also when a test fails.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub struct Registry {
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(script("registry"))
            .args(["down", self._dir.path().to_str().unwrap()])
            .status();
    }
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("run docker")
}

/// The label every object of this test process carries.
pub fn run_label() -> String {
    format!("roll.test=run-{}", std::process::id())
}

/// The engine, the registry and `roll-demo` releases `1` and `2` in it, labelled with the run.
pub fn registry() -> Registry {
    registry_labelled(&run_label())
}

/// The same, with the images labelled `label` (tests running side by side each use their own,
/// so that one's clean-up never removes another's images).
pub fn registry_labelled(label: &str) -> Registry {
    {
        let ok = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        assert!(
            ok.as_ref().is_ok_and(|o| o.status.success()),
            "these tests need a running Docker engine (Debian package docker.io), and none answers: {}",
            ok.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_else(|e| e.to_string())
        );
        assert!(
            Path::new("/usr/bin/docker-registry").exists(),
            "these tests need a local registry: install the Debian package `docker-registry`"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = crate::common::free_port();
        let up = Command::new(script("registry"))
            .args(["up", dir.path().to_str().unwrap(), &port.to_string()])
            .output()
            .unwrap();
        assert!(up.status.success(), "registry: {}", String::from_utf8_lossy(&up.stderr));
        let addr = format!("127.0.0.1:{port}");
        let repo = format!("{addr}/roll-demo");
        let built = Command::new(script("demo-image"))
            .args([repo.as_str(), "1", "2"])
            .env("DEMO_IMAGE_LABELS", label)
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "demo image: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        for tag in ["1", "2"] {
            let image = format!("{repo}:{tag}");
            let p = docker(&["push", "--quiet", &image]);
            assert!(p.status.success(), "push: {}", String::from_utf8_lossy(&p.stderr));
            // Hosts must really pull: nothing of the image stays in the engine.
            docker(&["image", "rm", &image]);
        }
        Registry { addr, _dir: dir }
    }
}

/// Removes what a test created (by its label, the run's by default) when dropped.
pub struct Cleanup(pub String);

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup(run_label())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label={}", self.0);
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let mut a = vec!["rm", "-f"];
            a.extend(ids.iter().map(String::as_str));
            docker(&a);
        }
        let imgs = docker(&["images", "-q", "--filter", &label]);
        for i in String::from_utf8_lossy(&imgs.stdout).split_whitespace() {
            docker(&["image", "rm", "-f", i]);
        }
        docker(&["network", "prune", "-f", "--filter", &label]);
    }
}

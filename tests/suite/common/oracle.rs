//! Module tests against ansible-core's own results: `tests/modules/NAME/play.yml` runs under
//! roll on a real sshd host and writes what each task registered to `results.jsonl`;
//! `ansible.jsonl` beside the playbook is what ansible-playbook wrote running the same playbook
//! (`scripts/module-oracle NAME`). Paths under the run's directory read as `BASE` in both.

use super::fleet::Fleet;
use std::path::{Path, PathBuf};

pub struct Played {
    /// The directory the playbook worked in (`base`), kept until this is dropped.
    pub base: tempfile::TempDir,
    /// What roll's run registered, one value per line of `results.jsonl`.
    pub got: Vec<serde_json::Value>,
    /// What ansible-core's run registered.
    pub want: Vec<serde_json::Value>,
}

fn results(text: &str, base: &Path) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(&l.replace(base.to_str().unwrap(), "BASE")).unwrap())
        .collect()
}

/// Run `tests/modules/NAME/play.yml` with roll on one fleet host; panics if the play fails.
pub fn play(name: &str) -> Played {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/modules").join(name);
    let fleet = Fleet::up(1, &name[..2]);
    let base = tempfile::tempdir().unwrap();
    let inv = base.path().join("hosts");
    std::fs::write(&inv, fleet.inventory()).unwrap();
    let out = super::roll(&dir)
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "play.yml", "-i", inv.to_str().unwrap()])
        .args(["-e", &format!("base={}", base.path().display())])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        super::stdout(&out),
        super::stderr(&out)
    );
    let got = results(
        &std::fs::read_to_string(base.path().join("results.jsonl")).unwrap(),
        base.path(),
    );
    let want = results(
        &std::fs::read_to_string(dir.join("ansible.jsonl")).unwrap(),
        base.path(),
    );
    assert_eq!(
        got.len(),
        want.len(),
        "roll registered {} results, ansible {}",
        got.len(),
        want.len()
    );
    Played { base, got, want }
}

/// Panics listing every result that differs from ansible-core's.
pub fn assert_same(want: &[serde_json::Value], got: &[serde_json::Value]) {
    let differ = differences(want, got);
    assert!(
        differ.is_empty(),
        "{} results differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// The pairs that differ, as `ansible: ... / roll: ...` lines (empty when all agree).
pub fn differences(want: &[serde_json::Value], got: &[serde_json::Value]) -> Vec<String> {
    want.iter()
        .zip(got)
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("ansible: {w}\n   roll: {g}"))
        .collect()
}

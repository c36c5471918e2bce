//! The drain experiment (`benches/drain.py`) as a test: a real MariaDB with a short
//! `wait_timeout`, the demo app's blue and green pools behind a real nginx under load, and
//! roll's batched switch against an all-at-once switch and a batched switch with retirement (the
//! old colour's processes stopped per batch, no pause) in the same run.

use crate::common;

use std::path::Path;
use std::process::Command;

#[test]
fn batches_with_pauses_or_retirement_keep_database_connections_near_steady_while_all_at_once_doubles_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "roll-demo"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(built.success(), "cannot build the demo app");
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("drain.json");
    let out = Command::new("python3")
        .arg(root.join("benches/drain.py"))
        .args([
            "--backends",
            "10",
            "--pool",
            "4",
            "--wait-timeout",
            "2",
            "--batches",
            "10",
        ])
        .arg("--roll")
        .arg(common::roll_bin())
        .arg("--demo")
        .arg(root.join("target/debug/roll-demo"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = format!("{}{}", common::stdout(&out), common::stderr(&out));
    let f: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no figures ({e}): {text}"));
    let n = |k: &str| f[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {f}"));
    // Ten backends' pools of four, plus the sampler's own connection.
    assert_eq!(n("steady"), 41.0, "{text}");
    assert!(n("batched_peak") <= 1.1 * n("steady") + 2.0, "{text}");
    assert!(n("all_at_once_peak") >= 1.8 * n("steady"), "{text}");
    // Retirement closes each batch's old pools when it stops them, so no pause is needed:
    // without it, ten batches with no pause would pile up every old pool until wait_timeout.
    // (Its time against the sleep schedule is the bench's to print, not a test's to assert.)
    assert!(n("retire_peak") <= 1.1 * n("steady") + 2.0, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("retirement: peak ") && l.contains(" x the sleep schedule")),
        "{text}"
    );
    assert_eq!(n("failed_requests"), 0.0, "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
}

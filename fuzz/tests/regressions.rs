//! Replays every input a fuzz target ever failed on (fuzz/regressions/TARGET/), through the same
//! body the target runs: each must now pass without a panic.

use std::path::Path;

fn replay(target: &str, body: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for entry in entries {
        let path = entry.expect("a regression input").path();
        let data = std::fs::read(&path).expect("a readable regression input");
        eprintln!("replaying {}", path.display());
        body(&data);
    }
}

#[test]
fn playbook() {
    replay("playbook", roll_fuzz::playbook);
}

#[test]
fn inventory_ini() {
    replay("inventory_ini", |d| roll_fuzz::inventory(d, "hosts"));
}

#[test]
fn inventory_yaml() {
    replay("inventory_yaml", |d| roll_fuzz::inventory(d, "hosts.yml"));
}

#[test]
fn pattern() {
    replay("pattern", roll_fuzz::pattern);
}

#[test]
fn template() {
    replay("template", roll_fuzz::template);
}

#[test]
fn durations() {
    replay("durations", roll_fuzz::durations);
}

#[test]
fn nesting() {
    replay("nesting", roll_fuzz::nesting);
}

//! roll used as a library: ten consecutive plays in one process against a loopback fleet leak
//! no descriptors, no memory and no ssh master processes. (The 500-host figures are
//! benches/fleet_scale.rs.) It measures in a process of its own, where no other test's descriptors
//! count: the suite's binary run again with only this test.

use crate::common;
use crate::common::fleet;
use crate::common::resources;

use clap::Parser;
use fleet::Fleet;
use roll::cli::{Cli, Command};
use roll::exit::Exit;
use std::path::Path;

/// `roll play tests/resources/play.yml` in this process, without output.
fn play(fleet: &Fleet, root: &Path, release: u32, extra: &[&str]) -> Exit {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/resources");
    let mut argv: Vec<String> = ["roll", "play"].iter().map(|s| s.to_string()).collect();
    argv.push(dir.join("play.yml").display().to_string());
    argv.extend(["-i".into(), fleet.path().join("hosts").display().to_string()]);
    argv.extend([
        "--ssh-config".into(),
        fleet.path().join("ssh_config").display().to_string(),
    ]);
    argv.extend(["-e".into(), format!("scale_root={} release={release}", root.display())]);
    argv.extend(extra.iter().map(|s| s.to_string()));
    let Command::Play(args) = Cli::try_parse_from(argv).expect("valid arguments").command else {
        unreachable!("a play command")
    };
    roll::commands::play::run_with(args, None, true).exit
}

/// Set in the process that runs the measurement alone.
const ALONE: &str = "ROLL_TEST_ALONE";

#[test]
fn ten_plays_in_one_process_leak_nothing() {
    // The suite's other tests run on threads of this process and open descriptors of their own.
    if std::env::var_os(ALONE).is_none() {
        let name = "resources::ten_plays_in_one_process_leak_nothing";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let text = format!("{}{}", common::stdout(&out), common::stderr(&out));
        assert!(out.status.success(), "{name} failed alone:\n{text}");
        assert!(
            text.contains("test result: ok. 1 passed"),
            "{name} did not run alone:\n{text}"
        );
        return;
    }
    let fleet = Fleet::up(12, "res");
    let root = tempfile::tempdir().unwrap();
    // tokio's signal driver keeps one socket pair for the life of the process, made by the first
    // `signal()` anywhere (roll's Ctrl-C handling); make it before the baseline so that it is
    // not counted against the plays.
    let _signal = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) })
        .unwrap();
    let before = resources::usage();
    let before_fds = resources::fd_targets();
    let mut after = Vec::new();
    for release in 1..=10 {
        // Odd releases as a dry run first, so both paths repeat.
        if release % 2 == 1 {
            assert_eq!(play(&fleet, root.path(), release, &["--check", "--diff"]), Exit::Ok);
        }
        assert_eq!(
            play(&fleet, root.path(), release, &[]),
            Exit::Ok,
            "play {release} failed"
        );
        let u = resources::usage();
        eprintln!(
            "after play {release:2}: {} fds, {} KiB resident, {} KiB peak",
            u.fds, u.rss_kib, u.peak_kib
        );
        after.push(u);
    }
    // The plays did their work: every host's release file holds the last release.
    for h in 1..=12 {
        let got = std::fs::read_to_string(root.path().join(format!("res{h:03}/release"))).unwrap();
        assert_eq!(got, "10\n");
    }
    // Descriptors: every play closes what it opened (its runtime, pipes, control sockets).
    for (i, u) in after.iter().enumerate() {
        assert_eq!(
            u.fds,
            before.fds,
            "play {} left {} descriptors open: {:?} before, {:?} now",
            i + 1,
            u.fds as i64 - before.fds as i64,
            before_fds,
            resources::fd_targets()
        );
    }
    // Memory: the first plays warm the allocator and the template cache; after that the
    // resident size stays put. 4 MiB over eight plays is noise; a leak of the run's events,
    // connections or variables grows by more on every play.
    let growth = after[9].rss_kib as i64 - after[1].rss_kib as i64;
    assert!(
        growth < 4096,
        "resident memory grew by {growth} KiB from play 2 to play 10: {after:?}"
    );
    // Masters: nothing still connected to the fleet once the plays are over.
    let masters = resources::processes_mentioning(&format!("{}.", fleet.net));
    assert!(
        masters.is_empty(),
        "ssh processes to the fleet outlived the plays: {masters:?}"
    );
}

//! The largest fleet this machine hosts: a dry run and a play on N loopback hosts (default 500)
//! with roll used as a library, its peak memory and open descriptors before, during and after,
//! the ssh master processes it runs, and the same on a tenth of the fleet in the same invocation
//! as the baseline the ratios are against.
//!
//!   cargo bench --bench fleet_scale -- [--hosts 500] [--baseline 50] [--forks 50]
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs on 20 hosts, as a check.

#[path = "../tests/suite/common/mod.rs"]
mod common;

use clap::Parser;
use common::fleet::Fleet;
use common::resources;
use roll::cli::{Cli, Command};
use roll::exit::Exit;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
struct Figures {
    secs: f64,
    fds_before: usize,
    fds_peak: usize,
    fds_after: usize,
    peak_kib: u64,
    rss_after_kib: u64,
    masters_peak: usize,
    masters_kib_peak: u64,
    masters_after: usize,
}

/// How many processes mention `needle` (the ssh masters to the fleet), and their resident KiB.
fn masters(needle: &str) -> (usize, u64) {
    let pids = resources::processes_mentioning(needle);
    (pids.len(), pids.iter().map(|&p| resources::rss_kib_of(p)).sum())
}

fn play(fleet: &Fleet, root: &Path, limit: &str, forks: u32, check: bool) -> Figures {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/resources");
    let mut argv: Vec<String> = vec!["roll".into(), "play".into(), dir.join("play.yml").display().to_string()];
    argv.extend(["-i".into(), fleet.path().join("hosts").display().to_string()]);
    argv.extend([
        "--ssh-config".into(),
        fleet.path().join("ssh_config").display().to_string(),
    ]);
    argv.extend(["-e".into(), format!("scale_root={} release=1", root.display())]);
    argv.extend(["--limit".into(), limit.into(), "--forks".into(), forks.to_string()]);
    if check {
        argv.extend(["--check".into(), "--diff".into()]);
    }
    let Command::Play(args) = Cli::try_parse_from(argv).expect("valid arguments").command else {
        unreachable!()
    };
    let needle = format!("{}.", fleet.net);
    resources::reset_peak();
    let before = resources::usage();
    // Sample descriptors often and the masters now and then while the play runs.
    let done = Arc::new(AtomicBool::new(false));
    let fds_peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, fds_peak, needle) = (done.clone(), fds_peak.clone(), needle.clone());
        std::thread::spawn(move || {
            let (mut m_peak, mut kib_peak, mut i) = (0, 0, 0u32);
            while !done.load(Ordering::Relaxed) {
                fds_peak.fetch_max(resources::fd_count(), Ordering::Relaxed);
                if i % 50 == 0 {
                    let (n, kib) = masters(&needle);
                    m_peak = m_peak.max(n);
                    kib_peak = kib_peak.max(kib);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (m_peak, kib_peak)
        })
    };
    let t = Instant::now();
    let exit = roll::commands::play::run_with(args, None, true).exit;
    let secs = t.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (masters_peak, masters_kib_peak) = sampler.join().unwrap();
    assert_eq!(exit, Exit::Ok, "the play on {limit} failed");
    let after = resources::usage();
    Figures {
        secs,
        fds_before: before.fds,
        // Less the sampler's own handle on /proc/self/fd.
        fds_peak: fds_peak.load(Ordering::Relaxed).saturating_sub(1),
        fds_after: after.fds,
        peak_kib: after.peak_kib,
        rss_after_kib: after.rss_kib,
        masters_peak,
        masters_kib_peak,
        masters_after: masters(&needle).0,
    }
}

fn row(label: &str, hosts: usize, f: &Figures) {
    println!(
        "{label:<9} {hosts:>5} {:>8.1} {:>10.1} {:>10.1} {:>4} {:>5} {:>4} {:>8} {:>10.0} {:>6}",
        f.secs,
        f.peak_kib as f64 / 1024.0,
        f.rss_after_kib as f64 / 1024.0,
        f.fds_before,
        f.fds_peak,
        f.fds_after,
        f.masters_peak,
        f.masters_kib_peak as f64 / 1024.0,
        f.masters_after,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, without it: then a
    // small fleet checks that the bench still works, and the 500-host figures wait for a bench.
    let benching = std::env::args().any(|a| a == "--bench");
    let mut hosts = if benching { 500 } else { 20 };
    let mut baseline = 0;
    let mut forks = 50;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--hosts" => hosts = num("--hosts"),
            "--baseline" => baseline = num("--baseline"),
            "--forks" => forks = num("--forks") as u32,
            "--bench" => {}
            other => panic!("unknown argument {other}; see the header of benches/fleet_scale.rs"),
        }
    }
    if baseline == 0 {
        baseline = (hosts / 10).max(1);
    }
    // The process-wide socket pair of tokio's signal driver, before any baseline (see
    // tests/suite/resources.rs).
    let _signal = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) })
        .unwrap();

    let t = Instant::now();
    let fleet = Fleet::up(hosts, "node");
    println!(
        "fleet: {hosts} hosts up in {:.1} s; forks {forks}",
        t.elapsed().as_secs_f64()
    );
    let root = tempfile::tempdir().unwrap();
    let small = format!("all[0:{}]", baseline - 1);
    println!(
        "{:<9} {:>5} {:>8} {:>10} {:>10} {:>4} {:>5} {:>4} {:>8} {:>10} {:>6}",
        "run", "hosts", "secs", "peak MiB", "after MiB", "fds", "peak", "end", "masters", "masters MiB", "left"
    );
    let mut results = Vec::new();
    for (label, limit, n) in [("baseline", small.as_str(), baseline), ("fleet", "all", hosts)] {
        let dry = play(&fleet, root.path(), limit, forks, true);
        row(&format!("{label}-C"), n, &dry);
        let real = play(&fleet, root.path(), limit, forks, false);
        row(label, n, &real);
        results.push((dry, real));
    }
    let ((bd, br), (fd, fr)) = (results[0], results[1]);
    let per_host = |big: u64, small: u64| (big as f64 - small as f64) / (hosts - baseline) as f64;
    println!(
        "ratio {hosts}/{baseline} hosts: peak memory {:.2}x (dry run {:.2}x), time {:.2}x (dry run {:.2}x); \
         {:.1} KiB more peak memory per host",
        fr.peak_kib as f64 / br.peak_kib as f64,
        fd.peak_kib as f64 / bd.peak_kib as f64,
        fr.secs / br.secs,
        fd.secs / bd.secs,
        per_host(fr.peak_kib, br.peak_kib),
    );
    let leaked = results
        .iter()
        .flat_map(|(a, b)| [a, b])
        .any(|f| f.fds_after != f.fds_before || f.masters_after != 0);
    println!(
        "descriptors after every run equal those before: {}; ssh masters left: {}",
        if leaked { "NO" } else { "yes" },
        results
            .iter()
            .map(|(a, b)| a.masters_after + b.masters_after)
            .sum::<usize>()
    );
    if leaked {
        std::process::exit(1);
    }
}

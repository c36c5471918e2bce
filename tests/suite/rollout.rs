//! Blue/green rollouts end to end, as operators run them: `playbooks/deploy.yml` and
//! `rollback.yml` over real SSH (a loopback sshd fleet), app containers in the real Docker engine
//! pulled from a local registry, real nginx proxies, and continuous HTTP load through them.

use crate::common;
use crate::common::load;
use crate::common::sandbox;

use common::{recap, stdout};
use load::{Load, gate_server, share};
use sandbox::Sandbox;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn serial() -> std::sync::MutexGuard<'static, ()> {
    sandbox::serial()
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), common::stderr(out))
}

/// The state file's `batches_done` each time it changed during the switch to green, on the
/// test's clock.
fn watch_batches(sb: &Sandbox, clock: Instant, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(f64, u64)>> {
    let file = sb.proxy_dir(0).join("state/web.json");
    std::thread::spawn(move || {
        let mut seen: Vec<(f64, u64)> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let state: Option<serde_json::Value> =
                std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(s) = state
                && (s["target"] == "green" || s["live"] == "green")
            {
                let done = s["batches_done"].as_u64().unwrap_or(0);
                if seen.last().map(|(_, n)| *n) != Some(done) {
                    seen.push((clock.elapsed().as_secs_f64(), done));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    })
}

#[test]
fn a_rollout_under_load_moves_traffic_batch_by_batch_with_no_failed_request_and_rolls_back() {
    let _turn = serial();
    let sb = Sandbox::up(
        "zd",
        6,
        1,
        serde_json::json!({ "switch_batches": 3, "switch_pause": "2s" }),
    );

    // First deploy: nothing serves yet, so it goes in one batch.
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap(), (200, "blue 1".to_string()));

    // Release 2 under load: three batches of two backends, two seconds apart.
    let clock = Instant::now();
    let load = Load::start(&sb.proxy_addr(0), clock, 3, Duration::from_secs(120));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_batches(&sb, clock, stop.clone());
    let second = sb.play("deploy.yml", &["release=2"]);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let seen = load.stop();
    let batches = watcher.join().unwrap();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));

    let failed: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(seen.len() > 500, "too little load to judge: {} requests", seen.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        seen.len(),
        failed.first()
    );
    // The state recorded batches 1, 2, 3; between them the green share is 1/3, then 2/3.
    let at: Vec<f64> = (1..=3)
        .map(|k| {
            batches
                .iter()
                .find(|(_, n)| *n == k)
                .unwrap_or_else(|| panic!("batch {k} never recorded: {batches:?}"))
                .0
        })
        .collect();
    let end = seen.last().unwrap().0;
    let windows = [
        (0.0, at[0] - 0.5),
        (at[0] + 0.2, at[1] - 0.2),
        (at[1] + 0.2, at[2] - 0.2),
        (at[2] + 0.2, end),
    ];
    let shares: Vec<(f64, usize)> = windows.iter().map(|(a, b)| share(&seen, "green 2", *a, *b)).collect();
    let expect = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0];
    for ((got, n), want) in shares.iter().zip(expect) {
        assert!(*n >= 30, "too few answers in a window: {shares:?} at {at:?}");
        assert!(
            (got - want).abs() <= 0.15,
            "green share {shares:?}, expected {expect:?} (batches at {at:?})"
        );
    }
    // Every answer is blue 1 or green 2: no other release, no mixed states.
    assert!(
        seen.iter()
            .all(|(_, r)| matches!(r.as_deref(), Ok("blue 1") | Ok("green 2"))),
        "unexpected answers"
    );
    let state = sb.state(0).unwrap();
    assert_eq!(
        (state["live"].as_str(), state["release"].as_str()),
        (Some("green"), Some("2"))
    );
    assert_eq!(state["batches_done"], 3, "{state}");
    // The old colour is stopped, the new one runs.
    for (name, running) in sb.containers() {
        assert_eq!(running, name.ends_with("-green"), "{name} running={running}");
    }

    // Deploying the live release again changes nothing.
    let again = sb.play("deploy.yml", &["release=2"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        recap(&stdout(&again)).iter().all(|l| l.contains("changed=0 ")),
        "{}",
        stdout(&again)
    );

    // Rollback under load: back to blue 1, batched the same way, nothing failed.
    let load = Load::start(&sb.proxy_addr(0), clock, 3, Duration::from_secs(120));
    let back = sb.play("rollback.yml", &[]);
    let seen = load.stop();
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    assert!(
        seen.iter().all(|(_, r)| r.is_ok()),
        "a request failed during the rollback"
    );
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap().1, "blue 1");
    let status = sb.roll(&["status", "-i", "inventories/sandbox"]).output().unwrap();
    let line = stdout(&status);
    assert!(
        line.lines()
            .any(|l| l.starts_with("web ") && l.contains(" blue ") && l.contains(" 1 ") && l.contains("3/3")),
        "{line}"
    );
}

#[test]
fn a_release_that_never_becomes_healthy_switches_nothing_and_is_stopped() {
    let _turn = serial();
    let sb = Sandbox::up("hg", 3, 1, serde_json::json!({ "health_timeout": "3s" }));
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let state_before = sb.state(0).unwrap();
    let upstream_before = sb.upstream(0);

    let clock = Instant::now();
    let load = Load::start(&sb.proxy_addr(0), clock, 2, Duration::from_secs(120));
    let bad = sb.play("deploy.yml", &["release=2", r#"{"app_env": {"HEALTH": "fail"}}"#]);
    let seen = load.stop();
    let out = text(&bad);
    assert_eq!(bad.status.code(), Some(2), "{out}");
    assert!(
        out.contains("did not become healthy") || out.contains("healthy"),
        "{out}"
    );
    assert!(out.contains("nothing was switched"), "{out}");
    assert!(
        !out.contains("TASK [blue_green : Switch the nginx upstream"),
        "the switch must not run: {out}"
    );
    // Nothing switched: the same state and upstream, the history saying that release 2 failed;
    // traffic only ever saw blue 1.
    let mut state = sb.state(0).unwrap();
    let history = state.as_object_mut().unwrap().remove("history").unwrap();
    let mut before = state_before.clone();
    before.as_object_mut().unwrap().remove("history");
    assert_eq!(state, before);
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["release"].as_str(), last["outcome"].as_str()),
        (Some("2"), Some("failed")),
        "{history}"
    );
    assert_eq!(sb.upstream(0), upstream_before);
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|(_, r)| r.as_deref() == Ok("blue 1")),
        "traffic changed"
    );
    // The new colour's containers exist but are stopped; the old colour runs on.
    let containers = sb.containers();
    assert_eq!(containers.len(), 6, "{containers:?}");
    for (name, running) in containers {
        assert_eq!(running, name.ends_with("-blue"), "{name} running={running}");
    }
}

/// The upstream of a proxy points only at backends that answer, as its state says.
fn assert_consistent(sb: &Sandbox, k: usize) {
    let state = sb.state(k).unwrap();
    let servers = sb.upstream_servers(k);
    assert_eq!(servers.len(), sb.apps.len(), "{}", sb.upstream(k));
    for (name, addr) in &sb.apps {
        let colour = state["backends"][name].as_str().unwrap();
        let port = if colour == "blue" { 8081 } else { 8082 };
        let server = format!("{addr}:{port}");
        assert!(
            servers.contains(&server),
            "{name} is {colour} in the state: {servers:?}"
        );
        let (code, body) = load::get(&server, "/").unwrap();
        assert_eq!(code, 200, "{server} does not serve");
        assert!(body.starts_with(colour), "{server} answers {body}");
    }
}

#[test]
fn a_failed_gate_restores_the_batch_on_every_proxy_a_rerun_resumes_and_a_dead_proxy_leaves_the_others_consistent() {
    let _turn = serial();
    let failing = Arc::new(AtomicBool::new(false));
    let gate = gate_server(failing.clone());
    let sb = Sandbox::up(
        "gf",
        4,
        2,
        serde_json::json!({ "switch_batches": 4, "gate_url": format!("http://127.0.0.1:{gate}/") }),
    );
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));

    // Release 2: the gate fails once batch 2 is recorded, so batch 3 is undone on both proxies.
    let mut run = sb.play_cmd("deploy.yml", &["release=2"]);
    let child = run.stdout(std::process::Stdio::piped()).spawn().unwrap();
    sb.wait_state(0, Duration::from_secs(60), |s| {
        s["batches_done"] == 2 && s["target"] == "green" && s.get("unretired").is_none()
    });
    failing.store(true, Ordering::SeqCst);
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("stopped at batch 3"), "{log}");
    for k in 0..2 {
        let s = sb.state(k).unwrap();
        assert_eq!(s["batches_done"], 2, "proxy {k}: {s}");
        assert!(s["status"].as_str().unwrap().starts_with("failed: batch 3 of 4"), "{s}");
        let greens = s["backends"]
            .as_object()
            .unwrap()
            .values()
            .filter(|c| *c == "green")
            .count();
        assert_eq!(greens, 2, "{s}");
        assert_consistent(&sb, k);
    }
    let status = sb.roll(&["status", "-i", "inventories/sandbox"]).output().unwrap();
    assert!(
        stdout(&status).contains("status: failed: batch 3 of 4"),
        "{}",
        stdout(&status)
    );
    // The two batches that went live retired their old colour; the rest still run both.
    let s = sb.state(0).unwrap();
    for (name, running) in sb.containers() {
        let host = name.trim_start_matches("web-").rsplit_once('-').unwrap().0;
        let retired = name.ends_with("-blue") && s["backends"][host] == "green";
        assert_eq!(running, !retired, "{name} running={running}: {s}");
    }

    // The gate passes again: a re-run resumes with batch 3 and finishes.
    failing.store(false, Ordering::SeqCst);
    let resumed = sb.play("deploy.yml", &["release=2"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    for k in 0..2 {
        let s = sb.state(k).unwrap();
        assert_eq!(
            (s["live"].as_str(), s["batches_done"].as_u64()),
            (Some("green"), Some(4)),
            "{s}"
        );
        assert_consistent(&sb, k);
    }

    // Release 1 again (to blue): proxy 2 dies after batch 1; proxy 1 undoes batch 2 and stays
    // consistent, and the run fails.
    let mut run = sb.play_cmd("deploy.yml", &["release=1"]);
    let child = run.stdout(std::process::Stdio::piped()).spawn().unwrap();
    sb.wait_state(0, Duration::from_secs(60), |s| {
        s["batches_done"] == 1 && s["target"] == "blue" && s.get("unretired").is_none()
    });
    sb.fleets[1].kill();
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    assert_ne!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("UNREACHABLE"), "{log}");
    let s = sb.state(0).unwrap();
    assert_eq!(s["batches_done"], 1, "{s}");
    assert!(s["status"].as_str().unwrap().starts_with("failed: batch 2 of 4"), "{s}");
    assert_consistent(&sb, 0);
    let (code, _) = load::get(&sb.proxy_addr(0), "/").unwrap();
    assert_eq!(code, 200);
}

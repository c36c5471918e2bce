//! Per-batch retirement end to end (`playbooks/deploy.yml`'s default): the switch stops each
//! batch's old containers over the app servers' own SSH connections, under load through real
//! nginx proxies; a retirement that fails on one app server (its sshd killed mid-switch) and the
//! re-run that finishes it; rollback starting the retired containers again.

use crate::common;
use crate::common::load;
use crate::common::sandbox;

use common::stdout;
use load::Load;
use sandbox::Sandbox;
use std::process::Command;
use std::time::{Duration, Instant};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), common::stderr(out))
}

/// Container name → its ID.
fn ids(sb: &Sandbox) -> std::collections::BTreeMap<String, String> {
    sb.containers()
        .into_iter()
        .map(|(name, _)| {
            let out = Command::new("docker")
                .args(["inspect", "-f", "{{.Id}}", &name])
                .output()
                .unwrap();
            (name, String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .collect()
}

fn running(sb: &Sandbox, name: &str) -> bool {
    sb.containers()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no container {name}: {:?}", sb.containers()))
        .1
}

fn no_failures(seen: &[load::Answer]) {
    let failed: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(seen.len() > 100, "too little load to judge: {} requests", seen.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        seen.len(),
        failed.first()
    );
}

#[test]
fn a_retirement_that_fails_on_one_app_server_leaves_every_proxy_consistent_and_a_rerun_finishes() {
    let sb = Sandbox::up_apart(
        "rt",
        3,
        2,
        serde_json::json!({ "switch_batches": 3, "switch_pause": "2s" }),
    );
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let apps: Vec<String> = sb.apps.iter().map(|(n, _)| n.clone()).collect();
    let blue = |i: usize| format!("web-{}-blue", apps[i]);

    // Release 2 under load; the last app server dies once batch 1 is retired.
    let clock = Instant::now();
    let load = Load::start(&sb.proxy_addr(0), clock, 3, Duration::from_secs(120));
    let mut deploy = sb.play_cmd("deploy.yml", &["release=2"]);
    let run = deploy
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sb.wait_state(0, Duration::from_secs(90), |s| {
        s["target"] == "green" && s["batches_done"] == 1 && s.get("unretired").is_none()
    });
    assert!(
        !running(&sb, &blue(0)),
        "batch 1's old colour is stopped before the pause ends"
    );
    assert!(running(&sb, &blue(1)));
    sb.kill_app(2);
    let failed = run.wait_with_output().unwrap();
    let seen = load.stop();
    let out = text(&failed);
    assert_ne!(failed.status.code(), Some(0), "{out}");
    // The failure names the host and the container.
    assert!(
        out.contains(&format!("container `{}` on `{}`", blue(2), apps[2])),
        "{out}"
    );
    assert!(out.contains("the old colour did not retire"), "{out}");
    // Every proxy agrees: all traffic on green (healthy), the last app server still to retire.
    let states: Vec<serde_json::Value> = (0..2).map(|k| sb.state(k).unwrap()).collect();
    for s in &states {
        assert_eq!(s["unretired"], serde_json::json!([apps[2]]), "{s}");
        assert_eq!(s["batches_done"], 3, "{s}");
        assert!(
            s["status"]
                .as_str()
                .unwrap()
                .starts_with("failed: batch 3 of 3: retire: "),
            "{s}"
        );
        for a in &apps {
            assert_eq!(s["backends"][a], "green", "{s}");
        }
    }
    assert_eq!(states[0]["backends"], states[1]["backends"]);
    assert_eq!(sb.upstream(0), sb.upstream(1));
    assert!(
        sb.upstream_servers(0).iter().all(|s| s.ends_with(":8082")),
        "{}",
        sb.upstream(0)
    );
    no_failures(&seen);
    assert!(!running(&sb, &blue(1)));
    assert!(running(&sb, &blue(2)), "the unreachable server's old colour still runs");

    // The server is back: a re-run retires what is left and settles.
    sb.start_app(2);
    let again = sb.play("deploy.yml", &["release=2"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    for k in 0..2 {
        let s = sb.state(k).unwrap();
        assert_eq!(
            (s["live"].as_str(), s["status"].as_str(), s["release"].as_str()),
            (Some("green"), Some("live"), Some("2")),
            "{s}"
        );
        assert!(s.get("unretired").is_none(), "{s}");
    }
    for (name, running) in sb.containers() {
        assert_eq!(running, name.ends_with("-green"), "{name} running={running}");
    }
}

#[test]
fn rollback_after_retirement_starts_the_stopped_containers_unchanged_with_no_failed_request() {
    let sb = Sandbox::up(
        "rb",
        4,
        1,
        serde_json::json!({ "switch_batches": 2, "switch_pause": "0s" }),
    );
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let blue_ids = ids(&sb);

    // The dry run of release 2 shows which containers each batch stops.
    let dry = sb
        .play_cmd("deploy.yml", &["release=2"])
        .args(["--check", "-v"])
        .output()
        .unwrap();
    let plan = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{plan}");
    let apps: Vec<String> = sb.apps.iter().map(|(n, _)| n.clone()).collect();
    for batch in [&apps[..2], &apps[2..]] {
        let stops: Vec<String> = batch.iter().map(|a| format!("web-{a}-blue on {a}")).collect();
        assert!(
            plan.contains(&format!("      then stops {}\n", stops.join(", "))),
            "{plan}"
        );
    }

    let clock = Instant::now();
    let load = Load::start(&sb.proxy_addr(0), clock, 3, Duration::from_secs(120));
    let second = sb.play("deploy.yml", &["release=2"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    for (name, running) in sb.containers() {
        assert_eq!(running, name.ends_with("-green"), "{name} running={running}");
    }
    let back = sb.play("rollback.yml", &[]);
    let seen = load.stop();
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    no_failures(&seen);
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap(), (200, "blue 1".to_string()));
    // The retired containers run again: the same containers, not new ones.
    let now = ids(&sb);
    for (name, id) in &blue_ids {
        assert_eq!(now.get(name), Some(id), "{name} was recreated");
        assert!(running(&sb, name), "{name} is not running");
    }
    assert_eq!(sb.state(0).unwrap()["live"], "blue");
}

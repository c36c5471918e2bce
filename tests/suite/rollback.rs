//! Rollback from any state, redeploys and pruning, end to end: `playbooks/deploy.yml` and
//! `rollback.yml` over real SSH (a loopback sshd fleet), containers in the real Docker engine
//! pulled from a local registry, a real nginx proxy, and HTTP load through it the whole time.

use crate::common;
use crate::common::load::{self, Answer, Load};
use crate::common::sandbox::{self, Sandbox};

use common::{recap, stdout};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), common::stderr(out))
}

fn no_failed_request(seen: &[Answer], what: &str) {
    assert!(
        seen.len() > 50,
        "too little load to judge {what}: {} requests",
        seen.len()
    );
    let failed: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed, first: {:?}",
        failed.len(),
        seen.len(),
        failed.first()
    );
}

/// `run` under load through the proxy: its output, and every answer the load saw.
fn under_load(sb: &Sandbox, run: impl FnOnce() -> std::process::Output) -> (std::process::Output, Vec<Answer>) {
    let load = Load::start(&sb.proxy_addr(0), Instant::now(), 3, Duration::from_secs(180));
    std::thread::sleep(Duration::from_millis(200));
    let out = run();
    std::thread::sleep(Duration::from_millis(200));
    (out, load.stop())
}

/// The IDs of the containers of `colour`, by name.
fn ids_of(sb: &Sandbox, colour: &str) -> BTreeMap<String, String> {
    sb.container_ids()
        .into_iter()
        .filter(|(n, _)| n.ends_with(&format!("-{colour}")))
        .collect()
}

/// Every container of `colour` runs, every other one is stopped.
fn only_running(sb: &Sandbox, colour: &str) {
    let containers = sb.containers();
    assert!(!containers.is_empty());
    for (name, running) in containers {
        assert_eq!(
            running,
            name.ends_with(&format!("-{colour}")),
            "{name} running={running}"
        );
    }
}

/// `roll status`'s output for the sandbox.
fn status(sb: &Sandbox) -> String {
    let out = sb.roll(&["status", "-i", "inventories/sandbox"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    stdout(&out)
}

/// The app's row of `roll status` shows `live` and `release`, and its releases line `history`
/// (newest first).
fn status_says(sb: &Sandbox, live: &str, release: &str, history: &str) {
    let s = status(sb);
    assert!(
        s.lines()
            .any(|l| l.starts_with("web ") && l.contains(&format!(" {live} ")) && l.contains(&format!(" {release} "))),
        "{s}"
    );
    assert!(s.contains(&format!("releases: {history}")), "{s}");
}

#[test]
fn a_rollback_after_a_complete_deploy_starts_the_previous_release_as_it_was_and_a_config_only_redeploy_switches_colours()
 {
    let _turn = sandbox::serial();
    let sb = Sandbox::up("rbc", 3, 1, serde_json::json!({ "switch_batches": 3 }));
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let second = sb.play("deploy.yml", &["release=2"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap().1, "green 2");
    let blue = ids_of(&sb, "blue");
    assert_eq!(blue.len(), 3, "{blue:?}");

    // Back to release 1: its stopped blue containers are started as they are, in batches.
    let (back, seen) = under_load(&sb, || sb.play("rollback.yml", &[]));
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    no_failed_request(&seen, "the rollback");
    assert!(
        seen.iter()
            .all(|(_, r)| matches!(r.as_deref(), Ok("green 2") | Ok("blue 1"))),
        "an answer from neither release"
    );
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap().1, "blue 1");
    assert_eq!(
        ids_of(&sb, "blue"),
        blue,
        "the blue containers were replaced, not started"
    );
    only_running(&sb, "blue");
    let state = sb.state(0).unwrap();
    assert_eq!(
        (state["live"].as_str(), state["release"].as_str()),
        (Some("blue"), Some("1")),
        "{state}"
    );
    status_says(&sb, "blue", "1", "1 blue live · 2 green rolled back · 1 blue replaced");

    // Nothing served before release 1: a second rollback is refused and changes nothing.
    let again = sb.play("rollback.yml", &[]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("nothing to roll back to"), "{}", text(&again));
    assert_eq!(sb.state(0).unwrap(), state);

    // The same release with another environment goes through the other colour, under load.
    let env = r#"{"app_env": {"GREETING": "hello"}}"#;
    let (redeploy, seen) = under_load(&sb, || sb.play("deploy.yml", &["release=1", env]));
    assert_eq!(redeploy.status.code(), Some(0), "{}", text(&redeploy));
    no_failed_request(&seen, "the config-only redeploy");
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap().1, "green 1");
    only_running(&sb, "green");
    // ... and only once: with nothing different, nothing is done.
    let same = sb.play("deploy.yml", &["release=1", env]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains("nothing to do"), "{}", text(&same));
    assert!(
        recap(&stdout(&same)).iter().all(|l| l.contains("changed=0 ")),
        "{}",
        stdout(&same)
    );
    status_says(&sb, "green", "1", "1 green live · 1 blue replaced");
}

#[test]
fn a_rollback_after_a_failed_deploy_stays_on_the_live_release() {
    let _turn = sandbox::serial();
    let sb = Sandbox::up("rbf", 3, 1, serde_json::json!({ "health_timeout": "3s" }));
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let blue = ids_of(&sb, "blue");

    let bad = sb.play("deploy.yml", &["release=2", r#"{"app_env": {"HEALTH": "fail"}}"#]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("nothing was switched"), "{}", text(&bad));
    // The proxy's history knows release 2 never served.
    status_says(&sb, "blue", "1", "2 green failed · 1 blue live");

    // The rollback returns to release 1 (already serving), not to the failed release 2.
    let (back, seen) = under_load(&sb, || sb.play("rollback.yml", &[]));
    let log = text(&back);
    assert_eq!(back.status.code(), Some(0), "{log}");
    assert!(log.contains("back to release 1 on blue"), "{log}");
    no_failed_request(&seen, "the rollback");
    assert!(
        seen.iter().all(|(_, r)| r.as_deref() == Ok("blue 1")),
        "traffic changed"
    );
    assert_eq!(ids_of(&sb, "blue"), blue, "the live containers were replaced");
    only_running(&sb, "blue");
    status_says(&sb, "blue", "1", "2 green failed · 1 blue live");
}

#[test]
fn a_rollback_after_ctrl_c_at_batch_1_of_3_moves_that_batch_back() {
    let _turn = sandbox::serial();
    let sb = Sandbox::up(
        "rbi",
        3,
        1,
        serde_json::json!({ "switch_batches": 3, "switch_pause": "30s" }),
    );
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let blue = ids_of(&sb, "blue");

    // Release 2: Ctrl-C while the switch pauses after batch 1 of 3.
    let load = Load::start(&sb.proxy_addr(0), Instant::now(), 3, Duration::from_secs(180));
    let mut run = sb.play_cmd("deploy.yml", &["release=2"]);
    let child = run
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sb.wait_state(0, Duration::from_secs(90), |s| {
        s["batches_done"] == 1 && s["target"] == "green" && s["pending"].is_null()
    });
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let state = sb.state(0).unwrap();
    assert_eq!(state["status"], "interrupted after batch 1 of 3", "{state}");
    let greens: Vec<&String> = state["backends"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, c)| *c == "green")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(greens.len(), 1, "{state}");

    // The rollback moves that batch back to blue 1, and stops green.
    let back = sb.play("rollback.yml", &[]);
    let seen = load.stop();
    let log = text(&back);
    assert_eq!(back.status.code(), Some(0), "{log}");
    assert!(log.contains("back to release 1 on blue"), "{log}");
    no_failed_request(&seen, "the interrupted deploy and the rollback");
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap().1, "blue 1");
    let servers = sb.upstream_servers(0);
    assert!(servers.iter().all(|s| s.ends_with(":8081")), "{servers:?}");
    let state = sb.state(0).unwrap();
    assert_eq!(
        (state["live"].as_str(), state["status"].as_str()),
        (Some("blue"), Some("live")),
        "{state}"
    );
    assert_eq!(ids_of(&sb, "blue"), blue, "the blue containers were replaced");
    only_running(&sb, "blue");
    status_says(&sb, "blue", "1", "2 green rolled back · 1 blue live");
}

#[test]
fn prune_keeps_exactly_keep_releases_images_and_check_shows_what_would_go() {
    let _turn = sandbox::serial();
    // One app server: the sandbox's simulated hosts share one Docker engine, so in a dry run one
    // host's container of release 1 (replaced only by the real run) would keep release 1's image
    // in use for the other.
    let sb = Sandbox::up("rbp", 1, 1, serde_json::json!({ "keep_releases": 2 }));
    sb.push_release("3");
    for r in ["1", "2"] {
        let out = sb.play("deploy.yml", &[&format!("release={r}")]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    assert_eq!(sb.image_tags(), ["1", "2"]);

    // The dry run of release 3 names release 1's image as the one to go, and removes nothing.
    let dry = sb
        .play_cmd("deploy.yml", &["release=3"])
        .arg("--check")
        .arg("--diff")
        .output()
        .unwrap();
    let log = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("image {}/roll-demo:1", sb.registry.addr)),
        "{log}"
    );
    assert!(!log.contains("roll-demo:2\n"), "{log}");
    assert_eq!(sb.image_tags(), ["1", "2"]);

    let third = sb.play("deploy.yml", &["release=3"]);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    // Release 3 live on blue, 2 stopped on green: their images stay, release 1's went.
    assert_eq!(sb.image_tags(), ["2", "3"]);
    assert_eq!(sb.containers().len(), 2);
    // Release 2's retained image serves a rollback to it.
    let back = sb.play("rollback.yml", &[]);
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap().1, "green 2");
    // Release 1 is gone from the hosts: a rollback to it is refused, saying why.
    let gone = sb.play("rollback.yml", &["release=1"]);
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone));
    assert!(text(&gone).contains("is no longer on"), "{}", text(&gone));
    assert_eq!(load::get(&sb.proxy_addr(0), "/").unwrap().1, "green 2");
}

#[test]
fn a_deploy_without_a_release_is_refused_before_any_host_is_touched() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for inv in ["sandbox", "staging", "prod"] {
        let out = common::run(root, &["play", "playbooks/deploy.yml", "-i", inv]);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(5), "-i {inv}: {err}");
        assert!(err.contains("error: undefined variable `release`"), "{err}");
        assert!(err.contains("help: name the release to deploy: `-e release="), "{err}");
        assert!(err.contains("nothing was run"), "{err}");
        // One diagnostic for the variable, however often the playbook uses it.
        assert_eq!(err.matches("error: undefined variable").count(), 1, "{err}");
    }
}

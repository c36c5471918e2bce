//! The shipped `roles/blue_green` end to end, over real SSH, Docker and nginx under load: a new
//! app from its 15-line playbook (`playbooks/shop.yml`) deploys, holds at its preview (the
//! preview name answers with the next release, production with the live one), is promoted
//! without restarting the previewed containers and rolls back, while the app already there
//! loses no request; and `switch_on_failure: abort` puts every batch back on the live colour
//! when the gate fails at batch 2.

use crate::common::load::{self, Answer, Load, gate_server};
use crate::common::sandbox::{self, Sandbox};
use crate::common::{self, stdout};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), common::stderr(out))
}

fn assert_no_failures(site: &str, seen: &[Answer]) {
    assert!(seen.len() > 100, "too little load on {site} to judge: {}", seen.len());
    let bad: Vec<&Answer> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        bad.is_empty(),
        "{} of {} requests to {site} failed, first: {:?}",
        bad.len(),
        seen.len(),
        bad.first()
    );
}

/// nginx reloads in the background: the answer for `host` once it is `want` (or the last one
/// seen after 10 s).
fn answer_becomes(addr: &str, host: &str, want: &str) -> String {
    let t0 = Instant::now();
    loop {
        let got = load::get_site(addr, host, "/").map(|(_, b)| b).unwrap_or_default();
        if got == want || t0.elapsed() > Duration::from_secs(10) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each container of this test named `*-COLOUR` of `app`: name → (ID, start time).
fn started(sb: &Sandbox, app: &str, colour: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = sb
        .container_ids()
        .into_iter()
        .filter(|(n, _)| n.starts_with(&format!("{app}-")) && n.ends_with(&format!("-{colour}")))
        .map(|(n, id)| {
            let at = common::docker::docker(&["inspect", "--format", "{{.State.StartedAt}}", &id]);
            (n, format!("{id} {}", String::from_utf8_lossy(&at.stdout).trim()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_new_app_from_its_playbook_previews_is_promoted_and_rolls_back_while_the_app_there_serves() {
    let _turn = sandbox::serial();
    let sb = Sandbox::up(
        "bgr",
        3,
        1,
        serde_json::json!({ "switch_batches": 3, "switch_pause": "1s" }),
    );
    let shop = Sandbox::app_vars("shop");
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/shop.yml");
    let lines = std::fs::read_to_string(&playbook).unwrap().lines().count();
    assert!(lines <= 15, "playbooks/shop.yml has {lines} lines");
    let web1 = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(web1.status.code(), Some(0), "{}", text(&web1));
    let addr = sb.proxy_addr(0);
    assert_eq!(load::get_site(&addr, "web", "/").unwrap(), (200, "blue 1".into()));

    let clock = Instant::now();
    let web_load = Load::start_site(&addr, "web", clock, 2, Duration::from_secs(300));
    let shop1 = sb.play("shop.yml", &[&shop, "release=1"]);
    assert_eq!(shop1.status.code(), Some(0), "{}", text(&shop1));
    assert_eq!(answer_becomes(&addr, "shop", "shop blue 1"), "shop blue 1");
    // The preview's name is shop's claim too: another app under it is refused.
    let claim = std::fs::read_to_string(sb.proxy_dir(0).join("state/claims/shop.json")).unwrap();
    assert!(claim.contains("preview.shop"), "{claim}");
    let other = [
        "app=other",
        "release=1",
        "proxy_server_name=preview.shop",
        r#"{"ports": {"blue": 8111, "green": 8112}}"#,
    ];
    let refused = sb.play("deploy.yml", &other);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(5), "{said}");
    assert!(said.contains("which app `shop` already serves"), "{said}");
    let preview_file = sb.proxy_dir(0).join("nginx/conf.d/shop-preview.conf");
    assert!(!preview_file.exists(), "the first deploy's preview is still up");
    let shop_load = Load::start_site(&addr, "shop", clock, 2, Duration::from_secs(300));

    // Release 2 held at its preview: production still answers with release 1.
    let held = sb.play("shop.yml", &[&shop, "release=2", "auto_promote=false"]);
    let said = text(&held);
    assert_eq!(held.status.code(), Some(0), "{said}");
    assert!(said.contains("promote with the same run"), "{said}");
    assert_eq!(answer_becomes(&addr, "preview.shop", "shop green 2"), "shop green 2");
    assert_eq!(load::get_site(&addr, "shop", "/").unwrap(), (200, "shop blue 1".into()));
    let state = sb.app_state(0, "shop").unwrap();
    assert_eq!(
        (state["live"].as_str(), state["release"].as_str()),
        (Some("blue"), Some("1")),
        "{state}"
    );
    let previewed = started(&sb, "shop", "green");
    assert_eq!(previewed.len(), 3, "{previewed:?}");
    assert!(
        sb.containers()
            .iter()
            .filter(|(n, _)| n.starts_with("shop-"))
            .all(|(_, running)| *running),
        "the held deploy retired something: {:?}",
        sb.containers()
    );

    // Promotion: the previewed containers take production traffic as they are.
    let promoted = sb.play("shop.yml", &[&shop, "release=2"]);
    assert_eq!(promoted.status.code(), Some(0), "{}", text(&promoted));
    assert_eq!(answer_becomes(&addr, "shop", "shop green 2"), "shop green 2");
    assert_eq!(
        started(&sb, "shop", "green"),
        previewed,
        "promotion restarted the previewed containers"
    );
    assert!(!preview_file.exists(), "the preview outlived its promotion");
    let state = sb.app_state(0, "shop").unwrap();
    assert_eq!(
        (state["live"].as_str(), state["release"].as_str()),
        (Some("green"), Some("2")),
        "{state}"
    );

    let back = sb.play("rollback.yml", &[&shop]);
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    assert_eq!(answer_becomes(&addr, "shop", "shop blue 1"), "shop blue 1");
    std::thread::sleep(Duration::from_millis(300));
    let (web_seen, shop_seen) = (web_load.stop(), shop_load.stop());
    assert_no_failures("web", &web_seen);
    assert!(
        web_seen.iter().all(|(_, r)| r.as_deref() == Ok("blue 1")),
        "web answered with something else: {:?}",
        web_seen.iter().find(|(_, r)| r.as_deref() != Ok("blue 1"))
    );
    assert_no_failures("shop", &shop_seen);
    assert!(shop_seen.iter().any(|(_, r)| r.as_deref() == Ok("shop green 2")));
    assert_eq!(sb.app_state(0, "shop").unwrap()["live"].as_str(), Some("blue"));
}

#[test]
fn a_gate_that_fails_at_batch_2_with_abort_puts_every_batch_back_on_the_live_colour() {
    let _turn = sandbox::serial();
    let failing = Arc::new(AtomicBool::new(false));
    let gate = gate_server(failing.clone());
    let sb = Sandbox::up(
        "abt",
        3,
        1,
        serde_json::json!({
            "switch_batches": 3,
            "switch_pause": "1s",
            "switch_on_failure": "abort",
            "gate_url": format!("http://127.0.0.1:{gate}/"),
        }),
    );
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let addr = sb.proxy_addr(0);

    // The dry run says what a failed batch does.
    let mut check = sb.play_cmd("deploy.yml", &["release=2"]);
    check.arg("--check");
    let planned = check.output().unwrap();
    let plan = stdout(&planned);
    assert_eq!(planned.status.code(), Some(0), "{}", text(&planned));
    assert!(
        plan.contains("a failed batch moves every batch back to blue (on_failure: abort)"),
        "{plan}"
    );
    assert_eq!(plan.matches("    batch ").count(), 3, "{plan}");

    let clock = Instant::now();
    let web_load = Load::start_site(&addr, "web", clock, 2, Duration::from_secs(300));
    let run = sb
        .play_cmd("deploy.yml", &["release=2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Batch 1 is live on green; the gate fails from batch 2 on.
    sb.wait_state(0, Duration::from_secs(60), |s| {
        s["batches_done"] == 1 && s["target"] == "green"
    });
    let one_green = sb.upstream_servers(0).iter().filter(|s| s.ends_with(":8082")).count();
    failing.store(true, Ordering::SeqCst);
    let out = run.wait_with_output().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let seen = web_load.stop();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("aborted at batch 2 of 3"), "{log}");
    assert!(log.contains("every backend is back on blue"), "{log}");
    assert_eq!(one_green, 1, "batch 1 was not on green when the gate failed");

    let state = sb.state(0).unwrap();
    assert_eq!(state["live"].as_str(), Some("blue"), "{state}");
    assert!(state["target"].is_null(), "{state}");
    assert!(
        state["backends"].as_object().unwrap().values().all(|c| c == "blue"),
        "{state}"
    );
    assert!(
        state["status"].as_str().unwrap().starts_with("aborted: batch 2 of 3"),
        "{state}"
    );
    let last = state["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["release"].as_str(), last["outcome"].as_str()),
        (Some("2"), Some("aborted")),
        "{state}"
    );
    let servers = sb.upstream_servers(0);
    assert_eq!(servers.len(), 3, "{}", sb.upstream(0));
    assert!(servers.iter().all(|s| s.ends_with(":8081")), "{}", sb.upstream(0));
    for (name, running) in sb.containers().iter().filter(|(n, _)| n.ends_with("-blue")) {
        assert!(running, "{name} was retired, yet traffic went back to it");
    }
    assert_no_failures("web", &seen);
    assert!(
        seen.iter().any(|(_, r)| r.as_deref() == Ok("green 2")),
        "batch 1 never served"
    );
    assert_eq!(seen.last().unwrap().1.as_deref(), Ok("blue 1"));
    let status = stdout(&sb.roll(&["status", "-i", "inventories/sandbox"]).output().unwrap());
    assert!(status.contains("aborted"), "{status}");
}

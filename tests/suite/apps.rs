//! Several apps behind one proxy, end to end: the sandbox's `web` and `api` (the shipped
//! `inventories/sandbox/apps/api.yml`) deployed and rolled back with `playbooks/*.yml` over real
//! SSH, Docker and nginx under load through both sites; an app claiming another's site or host
//! port, and a `--limit` that cuts an app off from its proxy, refused before anything changes,
//! in a dry run and in a run alike.

use crate::common::load::{self, Answer, Load};
use crate::common::sandbox::Sandbox;
use crate::common::{self, stdout};
use std::time::{Duration, Instant};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), common::stderr(out))
}

fn failed(seen: &[Answer]) -> Vec<&Answer> {
    seen.iter().filter(|(_, r)| r.is_err()).collect()
}

/// Files of the proxy's nginx `conf.d`, sorted.
fn site_files(sb: &Sandbox) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(sb.proxy_dir(0).join("nginx/conf.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn two_apps_share_a_proxy_through_deploys_and_a_rollback_and_a_third_claiming_webs_site_is_refused() {
    let _turn = crate::common::sandbox::serial();
    let sb = Sandbox::up(
        "ap",
        3,
        1,
        serde_json::json!({ "switch_batches": 3, "switch_pause": "1s" }),
    );
    let api = Sandbox::app_vars("api");
    let web1 = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(web1.status.code(), Some(0), "{}", text(&web1));
    let api1 = sb.play("deploy.yml", &[&api, "release=1"]);
    assert_eq!(api1.status.code(), Some(0), "{}", text(&api1));
    let addr = sb.proxy_addr(0);
    assert_eq!(load::get_site(&addr, "web", "/").unwrap(), (200, "blue 1".into()));
    assert_eq!(load::get_site(&addr, "api", "/").unwrap(), (200, "api blue 1".into()));
    // A name no site has goes to web's, the default server (`proxy_default_server`).
    assert_eq!(load::get_site(&addr, "other", "/").unwrap(), (200, "blue 1".into()));

    // Under load through both sites: api to 2, web to 2 in between, api rolled back to 1.
    let clock = Instant::now();
    let web_load = Load::start_site(&addr, "web", clock, 2, Duration::from_secs(300));
    let api_load = Load::start_site(&addr, "api", clock, 2, Duration::from_secs(300));
    let api2 = sb.play("deploy.yml", &[&api, "release=2"]);
    let web2 = sb.play("deploy.yml", &["release=2"]);
    let back = sb.play("rollback.yml", &[&api]);
    std::thread::sleep(Duration::from_millis(300));
    let (web_seen, api_seen) = (web_load.stop(), api_load.stop());
    for (what, out) in [("api 2", &api2), ("web 2", &web2), ("api rollback", &back)] {
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(out));
    }
    for (site, seen) in [("web", &web_seen), ("api", &api_seen)] {
        assert!(seen.len() > 300, "too little load on {site} to judge: {}", seen.len());
        let bad = failed(seen);
        assert!(
            bad.is_empty(),
            "{} of {} requests to {site} failed, first: {:?}",
            bad.len(),
            seen.len(),
            bad.first()
        );
    }
    // Each site only ever answered with its own app's containers.
    assert!(
        web_seen
            .iter()
            .all(|(_, r)| matches!(r.as_deref(), Ok("blue 1") | Ok("green 2"))),
        "web answered with something else: {:?}",
        web_seen
            .iter()
            .find(|(_, r)| !matches!(r.as_deref(), Ok("blue 1") | Ok("green 2")))
    );
    assert!(
        api_seen
            .iter()
            .all(|(_, r)| matches!(r.as_deref(), Ok("api blue 1") | Ok("api green 2"))),
        "api answered with something else"
    );
    assert!(api_seen.iter().any(|(_, r)| r.as_deref() == Ok("api green 2")));
    assert_eq!(load::get_site(&addr, "web", "/").unwrap().1, "green 2");
    assert_eq!(load::get_site(&addr, "api", "/").unwrap().1, "api blue 1");
    let web_state = sb.app_state(0, "web").unwrap();
    let api_state = sb.app_state(0, "api").unwrap();
    assert_eq!(
        (web_state["live"].as_str(), web_state["release"].as_str()),
        (Some("green"), Some("2"))
    );
    assert_eq!(api_state["live"].as_str(), Some("blue"), "{api_state}");
    // `roll status` shows both apps (their claims beside the states are not states).
    let status = stdout(&sb.roll(&["status", "-i", "inventories/sandbox"]).output().unwrap());
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("web ") && l.contains(" green ") && l.contains(" 2 ")),
        "{status}"
    );
    assert!(
        status.lines().any(|l| l.starts_with("api ") && l.contains(" blue ")),
        "{status}"
    );

    // A third app claiming web's server name on the same listen: refused before anything
    // changes, in a dry run and in a run, naming both apps and the claim.
    let files = site_files(&sb);
    let containers = sb.containers();
    let upstream = sb.upstream(0);
    let shop = [
        "app=shop",
        "release=1",
        "proxy_server_name=web",
        r#"{"ports": {"blue": 8101, "green": 8102}}"#,
    ];
    let mut cmd = sb.play_cmd("deploy.yml", &shop);
    cmd.arg("--check");
    for out in [cmd.output().unwrap(), sb.play("deploy.yml", &shop)] {
        let said = text(&out);
        assert_eq!(out.status.code(), Some(5), "{said}");
        assert!(
            said.contains("app `shop` claims server_name `web` on `listen ")
                && said.contains("which app `web` already serves"),
            "{said}"
        );
        assert!(!said.contains("TASK [blue_green : Take the deploy lock]"), "{said}");
    }
    assert_eq!(site_files(&sb), files, "a site file changed");
    assert_eq!(sb.containers(), containers, "containers changed");
    assert_eq!(sb.upstream(0), upstream);
    assert!(!sb.proxy_dir(0).join("state/claims/shop.json").exists());
    // The same for a host port web holds on an app server.
    let port = ["app=shop", "release=1", r#"{"ports": {"blue": 8081, "green": 8102}}"#];
    let out = sb.play("deploy.yml", &port);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains("app `shop` claims host port 8081 on ") && said.contains("which app `web` already holds"),
        "{said}"
    );
    assert_eq!(sb.containers(), containers, "containers changed");
}

#[test]
fn a_limit_that_cuts_an_app_off_from_its_proxy_is_refused_by_the_dry_run_and_the_run_alike() {
    let _turn = crate::common::sandbox::serial();
    let sb = Sandbox::up("lm", 3, 1, serde_json::json!({}));
    let first = sb.play("deploy.yml", &["release=1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let state = sb.state(0).unwrap();
    let containers = sb.containers();
    let proxy = sb.proxies[0].0.clone();
    let (app1, app2, app3) = (sb.apps[0].0.clone(), sb.apps[1].0.clone(), sb.apps[2].0.clone());
    // The proxy with one of its app servers, and the proxy alone.
    for (limit, cut) in [
        (
            format!("{proxy},{app1}"),
            format!("leaves 2 of app `web`'s 3 backends out of the run ({app2}, {app3})"),
        ),
        (
            proxy.clone(),
            format!("leaves 3 of app `web`'s 3 backends out of the run ({app1}, {app2}, {app3})"),
        ),
    ] {
        for check in [true, false] {
            let mut cmd = sb.play_cmd("deploy.yml", &["release=2"]);
            cmd.args(["--limit", &limit]);
            if check {
                cmd.arg("--check");
            }
            let out = cmd.output().unwrap();
            let said = text(&out);
            assert_eq!(out.status.code(), Some(5), "--limit {limit} check={check}: {said}");
            assert!(said.contains(&format!("`--limit {limit}` {cut}")), "{said}");
            assert!(!said.contains("TASK [blue_green : Switch the nginx upstream"), "{said}");
        }
    }
    // App servers without their proxy: no colour to start, the dry run fails as the run does.
    let mut said = Vec::new();
    for check in [true, false] {
        let mut cmd = sb.play_cmd("deploy.yml", &["release=2"]);
        cmd.args(["--limit", &app1]);
        if check {
            cmd.arg("--check");
        }
        let out = cmd.output().unwrap();
        said.push((out.status.code(), text(&out)));
    }
    assert_eq!(said[0].0, said[1].0, "{said:?}");
    assert_ne!(said[1].0, Some(0), "{said:?}");
    let proxies_out = format!("the proxies ({proxy}) are not in this run, so nothing decides the colour to start");
    assert!(said.iter().all(|(_, t)| t.contains(&proxies_out)), "{said:?}");
    assert_eq!(sb.state(0).unwrap(), state, "the state changed");
    assert_eq!(sb.containers(), containers, "containers changed");
    // A limit to whole apps plans the switch as without one.
    let mut whole = sb.play_cmd("deploy.yml", &["release=2"]);
    whole.args(["--limit", "proxy:app", "--check"]);
    let out = whole.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

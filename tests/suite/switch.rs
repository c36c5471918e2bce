//! `roll.nginx_switch` against a real nginx serving real traffic: backends are real processes
//! of the demo app (blue and green on their own ports), nginx runs with a private prefix on
//! loopback, and a client keeps sending requests through it during the whole switch.

use crate::common;
use crate::common::load;

use common::{free_port, recap, stdout, write};
use load::{Answer, Load};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo app binary, built for the host (`cargo build -p roll-demo`).
fn demo_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ok = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "roll-demo"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(ok.success(), "cannot build the demo app");
    root.join("target/debug/roll-demo")
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Nginx {
    prefix: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .arg("-p")
            .arg(&self.prefix)
            .args(["-c", "nginx.conf", "-s", "stop"])
            .output();
    }
}

/// GET through the proxy on loopback: the status and the (trimmed) body.
fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    load::get(&format!("127.0.0.1:{port}"), path)
}

/// Load through nginx on `port` for a whole switch (at most 60 s).
fn load_on(port: u16) -> Load {
    Load::start(&format!("127.0.0.1:{port}"), Instant::now(), 1, Duration::from_secs(60))
}

/// Each answer as the colour that gave it (the demo app answers "COLOUR RELEASE").
fn colours(seen: Vec<Answer>) -> Vec<Answer> {
    seen.into_iter()
        .map(|(t, r)| (t, r.map(|b| b.split_whitespace().next().unwrap_or("").to_string())))
        .collect()
}

const PLAYBOOK: &str = r#"
- hosts: proxy1
  tasks:
    - roll.nginx_switch:
        app: web
        to: "{{ to }}"
        backends: "{{ backend_list }}"
        template: upstream.j2
        dest: "{{ dir }}/nginx/web-upstream.conf"
        batches: 3
        pause: 1s
        validate: "{{ validate | default('nginx -t -p ' ~ dir ~ '/nginx -c nginx.conf') }}"
        reload: "nginx -s reload -p {{ dir }}/nginx -c nginx.conf"
        pid_file: "{{ dir }}/nginx/nginx.pid"
        gate: "{{ gate | default({'url': 'http://127.0.0.1:' ~ proxy_port ~ '/health', 'status': 200}) }}"
        healthcheck: "{{ healthcheck | default(omit) }}"
        state_dir: "{{ dir }}/state"
        drain:
          command: "n=$(cat {{ dir }}/conns); echo $((n-1)) > {{ dir }}/conns; echo connections: $n"
          below: "{{ drain_below | default(2) }}"
          interval: 50ms
          timeout: "{{ drain_timeout | default('10s') }}"
      register: switch
"#;

/// Start `count` apps, each with a blue and a green process of the demo app.
fn start_backends(bin: &Path, count: usize, procs: &mut Procs) -> Vec<serde_json::Value> {
    let mut backends = Vec::new();
    for i in 1..=count {
        let (blue, green) = (free_port(), free_port());
        for (colour, port) in [("blue", blue), ("green", green)] {
            procs.0.push(
                Command::new(bin)
                    .env("PORT", port.to_string())
                    .env("BIND", "127.0.0.1")
                    .env("COLOUR", colour)
                    .env("RELEASE", "r")
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        backends.push(serde_json::json!({"name": format!("app{i}"), "address": "127.0.0.1", "ports": {"blue": blue, "green": green}}));
    }
    backends
}

/// An nginx with its own prefix, listening on `port`, proxying to every backend's blue port.
fn start_nginx(ng: &Path, port: u16, backends: &[serde_json::Value]) -> Nginx {
    std::fs::create_dir_all(ng).unwrap();
    let blue: String = backends
        .iter()
        .map(|b| format!("    server 127.0.0.1:{};\n", b["ports"]["blue"]))
        .collect();
    write(ng, "web-upstream.conf", &format!("upstream web {{\n{blue}}}\n"));
    write(
        ng,
        "nginx.conf",
        &format!(
            "worker_processes 1;\npid {ng}/nginx.pid;\nerror_log {ng}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  include {ng}/web-upstream.conf;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://web; }}\n  }}\n}}\n",
            ng = ng.display()
        ),
    );
    let started = Command::new("nginx")
        .arg("-p")
        .arg(ng)
        .args(["-c", "nginx.conf"])
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "nginx: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let t0 = Instant::now();
    while get(port, "/").is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "nginx does not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        prefix: ng.to_path_buf(),
    }
}

/// What every switch test needs: nginx installed, a private directory, and `apps` demo apps
/// each running a blue and a green process (stopped when the rig is dropped).
struct Rig {
    dir: PathBuf,
    backends: Vec<serde_json::Value>,
    _procs: Procs,
    _tmp: tempfile::TempDir,
}

impl Rig {
    fn new(apps: usize) -> Rig {
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "this test needs nginx: install the Debian package `nginx`"
        );
        let bin = demo_bin();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let mut procs = Procs(Vec::new());
        let backends = start_backends(&bin, apps, &mut procs);
        Rig {
            dir,
            backends,
            _procs: procs,
            _tmp: tmp,
        }
    }
}

/// An upstream template that labels each server with its backend and colour.
const LABELLED_UPSTREAM: &str = "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }};  # {{ b.name }} {{ b.colour }}\n{% endfor %}}\n";

impl Rig {
    /// One local proxy for PLAYBOOK: nginx on a free port in `DIR/nginx`, the upstream
    /// template, the inventory, the playbook, and the drain's connection count.
    fn one_proxy(&self, upstream_j2: &str, conns: u32) -> (u16, PathBuf, Nginx) {
        let proxy_port = free_port();
        let ng = self.dir.join("nginx");
        let nginx = start_nginx(&ng, proxy_port, &self.backends);
        write(&self.dir, "upstream.j2", upstream_j2);
        write(&self.dir, "hosts", "proxy1 ansible_connection=local\n");
        write(&self.dir, "pb.yml", PLAYBOOK);
        write(&self.dir, "conns", &format!("{conns}\n"));
        (proxy_port, ng, nginx)
    }
}

const LOCKSTEP: &str = r#"
- hosts: proxies
  tasks:
    - roll.nginx_switch:
        app: web
        to: green
        backends: "{{ backend_list }}"
        template: upstream.j2
        dest: "{{ ng }}/web-upstream.conf"
        batches: 3
        validate: "{% if fault | default(false) and bad is defined %}! grep -q ':{{ bad }};' %s{% else %}nginx -t -p {{ ng }} -c nginx.conf{% endif %}"
        reload: "nginx -s reload -p {{ ng }} -c nginx.conf"
        pid_file: "{{ ng }}/nginx.pid"
        gate: { url: "http://127.0.0.1:{{ port }}/", status: 200 }
        state_dir: "{{ ng }}/state"
"#;

#[test]
fn proxies_switch_in_lockstep_and_one_failure_undoes_the_batch_on_all() {
    let rig = Rig::new(4);
    let (dir, backends) = (rig.dir.clone(), rig.backends.clone());
    let (p1, p2) = (free_port(), free_port());
    let _n1 = start_nginx(&dir.join("ng1"), p1, &backends);
    let _n2 = start_nginx(&dir.join("ng2"), p2, &backends);
    write(
        &dir,
        "upstream.j2",
        "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }};\n{% endfor %}}\n",
    );
    // proxy2 refuses any file that sends app3 to green: batch 2 fails there.
    let bad = backends[2]["ports"]["green"].clone();
    write(
        &dir,
        "hosts",
        &format!(
            "[proxies]\nproxy1 ansible_connection=local ng={ng1} port={p1} roll_state_dir={ng1}/state\nproxy2 ansible_connection=local ng={ng2} port={p2} bad={bad} roll_state_dir={ng2}/state\n",
            ng1 = dir.join("ng1").display(),
            ng2 = dir.join("ng2").display()
        ),
    );
    write(&dir, "pb.yml", LOCKSTEP);
    let extra = serde_json::json!({"backend_list": backends}).to_string();
    let failed = common::roll(&dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &extra, "-e", "fault=true"])
        .output()
        .unwrap();
    let text = stdout(&failed);
    assert_eq!(failed.status.code(), Some(2), "{text}");
    assert!(text.contains("another proxy failed this batch"), "{text}");
    let green = |b: usize| format!(":{};", backends[b]["ports"]["green"]);
    for ng in ["ng1", "ng2"] {
        let conf = std::fs::read_to_string(dir.join(ng).join("web-upstream.conf")).unwrap();
        assert!(
            conf.contains(&green(0)) && conf.contains(&green(1)),
            "{ng}: batch 1 stays switched: {conf}"
        );
        assert!(
            !conf.contains(&green(2)) && !conf.contains(&green(3)),
            "{ng}: batch 2 is undone: {conf}"
        );
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(ng).join("state/web.json")).unwrap()).unwrap();
        assert!(
            state["status"].as_str().unwrap().starts_with("failed: batch 2 of 3"),
            "{ng}: {state}"
        );
        assert_eq!(state["backends"]["app2"], "green");
        assert_eq!(state["backends"]["app3"], "blue");
    }
    // `roll status` shows where the switch stopped, on both proxies.
    let status = common::roll(&dir)
        .args(["status", "-i", "hosts", "--hosts", "proxies"])
        .output()
        .unwrap();
    let st = stdout(&status);
    assert_eq!(status.status.code(), Some(0), "{st}{}", common::stderr(&status));
    assert_eq!(st.matches("status: failed: batch 2 of 3").count(), 2, "{st}");
    assert!(
        st.lines()
            .nth(1)
            .unwrap()
            .starts_with("web          proxy1           blue   -              1/3"),
        "{st}"
    );
    assert!(st.contains("app1=green app2=green app3=blue app4=blue"), "{st}");
    // Both proxies still serve; a re-run without the fault resumes at batch 2 and finishes.
    assert_eq!(get(p1, "/").unwrap().0, 200);
    assert_eq!(get(p2, "/").unwrap().0, 200);
    let resumed = common::roll(&dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &extra])
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", stdout(&resumed));
    for (ng, port) in [("ng1", p1), ("ng2", p2)] {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(ng).join("state/web.json")).unwrap()).unwrap();
        assert_eq!(
            (
                state["live"].as_str(),
                state["status"].as_str(),
                state["batches_done"].as_u64()
            ),
            (Some("green"), Some("live"), Some(3)),
            "{ng}"
        );
        assert_eq!(get(port, "/").unwrap().1, "green r");
    }
    let status = common::roll(&dir)
        .args(["status", "-i", "hosts", "--hosts", "proxies", "--format", "json"])
        .output()
        .unwrap();
    let v: Vec<serde_json::Value> = stdout(&status)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|s| s["live"] == "green" && s["status"] == "live"), "{v:?}");
}

#[test]
fn batches_move_real_traffic_to_the_next_colour_and_a_bad_config_is_rolled_back() {
    let rig = Rig::new(4);
    let (dir, backends) = (rig.dir.clone(), rig.backends.clone());
    // The drain command counts down "connections" from 5; the drain ends below 2.
    let (proxy_port, ng, _nginx) = rig.one_proxy(
        "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }}{{ ' bad-parameter' if broken | default(false) else '' }};\n{% endfor %}}\n",
        5,
    );
    let extra = serde_json::json!({"backend_list": backends, "dir": dir, "proxy_port": proxy_port}).to_string();

    // Load through nginx for the whole switch: every answer is recorded with its colour.
    let load = load_on(proxy_port);
    let out = common::roll(&dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &extra, "-e", "to=green", "-v"])
        .output()
        .unwrap();
    let seen = colours(load.stop());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    let failed: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        seen.len(),
        failed.first()
    );
    // The green share steps up: blue only at first, green only at the end, both in between.
    let colours: Vec<&str> = seen.iter().map(|(_, r)| r.as_deref().unwrap()).collect();
    assert_eq!(colours[0], "blue");
    assert!(
        colours[colours.len() - 10..].iter().all(|c| *c == "green"),
        "{colours:?}"
    );
    let end = seen.last().unwrap().0;
    let share = |from: f64, to: f64| {
        let w: Vec<&&str> = seen
            .iter()
            .zip(&colours)
            .filter(|((t, _), _)| *t >= from && *t < to)
            .map(|(_, c)| c)
            .collect();
        w.iter().filter(|c| ***c == "green").count() as f64 / w.len().max(1) as f64
    };
    let shares = [
        share(0.0, end / 3.0),
        share(end / 3.0, 2.0 * end / 3.0),
        share(2.0 * end / 3.0, end + 1.0),
    ];
    assert!(
        shares[0] < shares[1] && shares[1] < shares[2],
        "the green share must step up: {shares:?}"
    );
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state/web.json")).unwrap()).unwrap();
    assert_eq!(state["live"], "green");
    assert_eq!(state["status"], "live");
    assert_eq!(state["batches_done"], 3);
    assert!(state["backends"].as_object().unwrap().values().all(|c| c == "green"));
    let (_, body) = get(proxy_port, "/").unwrap();
    assert_eq!(body, "green r");
    assert!(
        text.contains("\"last\": 1"),
        "the drain waits until the count is below 2: {text}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("conns")).unwrap().trim(), "0");
    // The pauses are held: the three batches take at least two pauses.
    let timeline: Vec<f64> = text
        .split("\"at_s\": ")
        .skip(1)
        .map(|s| s.split([',', '}']).next().unwrap().trim().parse().unwrap())
        .collect();
    assert_eq!(timeline.len(), 3, "{text}");
    assert!(timeline[2] - timeline[0] >= 2.0, "{timeline:?}");

    // A re-run after success changes nothing.
    let again = common::roll(&dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &extra, "-e", "to=green"])
        .output()
        .unwrap();
    assert!(recap(&stdout(&again))[0].contains("changed=0 "), "{}", stdout(&again));

    // Back to blue with a template that fails validation: the previous file stays, traffic
    // goes on, the run fails, and the state says where it stopped.
    let before = std::fs::read_to_string(ng.join("web-upstream.conf")).unwrap();
    let bad = common::roll(&dir)
        .args([
            "play",
            "pb.yml",
            "-i",
            "hosts",
            "-e",
            &extra,
            "-e",
            "to=blue",
            "-e",
            "{\"broken\": true}",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stdout(&bad));
    assert!(stdout(&bad).contains("validation failed"), "{}", stdout(&bad));
    assert_eq!(std::fs::read_to_string(ng.join("web-upstream.conf")).unwrap(), before);
    assert_eq!(get(proxy_port, "/").unwrap(), (200, "green r".to_string()));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state/web.json")).unwrap()).unwrap();
    assert!(
        state["status"].as_str().unwrap().starts_with("failed: batch 1 of 3"),
        "{state}"
    );
    // A drain that never gets below its bound fails the task after the switch, within its timeout.
    let stuck = common::roll(&dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &extra, "-e", "to=blue"])
        .args(["-e", "{\"drain_below\": -100, \"drain_timeout\": \"500ms\"}"])
        .output()
        .unwrap();
    assert_eq!(stuck.status.code(), Some(2), "{}", stdout(&stuck));
    assert!(
        stdout(&stuck).contains("but drain did not finish"),
        "{}",
        stdout(&stuck)
    );
    assert_eq!(get(proxy_port, "/").unwrap().1, "blue r");
}

#[test]
fn a_backend_not_serving_on_the_next_colour_stops_the_switch_before_its_batch() {
    // app2's green process is dead. nginx would pass its share of requests on to the others, so
    // the gate through the proxy still answers 200; the health check asks each backend itself.
    // Its port stays held, unlistened: a freed port can be taken by a parallel test's server.
    let mut rig = Rig::new(3);
    let dead = common::ClosedPort::new();
    rig.backends[1]["ports"]["green"] = dead.port.into();
    let (dir, backends) = (rig.dir.clone(), rig.backends.clone());
    let green2 = &mut rig._procs.0[3];
    green2.kill().unwrap();
    green2.wait().unwrap();
    let (proxy_port, ng, _nginx) = rig.one_proxy(LABELLED_UPSTREAM, 0);
    let extra = serde_json::json!({
        "backend_list": backends, "dir": dir, "proxy_port": proxy_port, "to": "green",
        "healthcheck": {"path": "/health", "timeout": "1s"},
    })
    .to_string();
    let load = load_on(proxy_port);
    let out = common::roll(&dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &extra])
        .output()
        .unwrap();
    let seen = load.stop();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", common::stderr(&out));
    assert!(
        text.contains("stopped at batch 2 of 3: not serving on green (expected 200 from /health): app2 ("),
        "{text}"
    );
    // Batch 1 (app1) went live; app2 never entered the upstream on green; traffic never failed.
    let upstream = std::fs::read_to_string(ng.join("web-upstream.conf")).unwrap();
    assert!(
        upstream.contains("# app1 green") && upstream.contains("# app2 blue") && upstream.contains("# app3 blue"),
        "{upstream}"
    );
    assert!(
        seen.iter().all(|(_, r)| r.is_ok()),
        "a request failed: {:?}",
        seen.iter().find(|(_, r)| r.is_err())
    );
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state/web.json")).unwrap()).unwrap();
    assert!(
        state["status"]
            .as_str()
            .unwrap()
            .starts_with("failed: batch 2 of 3: not serving"),
        "{state}"
    );
    assert_eq!(state["backends"]["app2"], "blue");
}

/// The rig's proxy state file, parsed.
fn state_of(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("state/web.json")).unwrap()).unwrap()
}

#[test]
fn a_validation_that_warns_stops_the_switch_and_keeps_the_previous_upstream() {
    // A second site on the same `listen` with the same (empty) server name: nginx accepts the
    // config, warns, and ignores the second one. That is another app shadowed, not a success.
    let rig = Rig::new(2);
    let (dir, backends) = (rig.dir.clone(), rig.backends.clone());
    let (proxy_port, ng, _nginx) = rig.one_proxy(LABELLED_UPSTREAM, 0);
    let conf = std::fs::read_to_string(ng.join("nginx.conf")).unwrap();
    let shadowed = format!("  server {{\n    listen 127.0.0.1:{proxy_port};\n    return 204;\n  }}\n}}\n");
    write(
        &ng,
        "nginx.conf",
        &format!("{}{shadowed}", conf.trim_end().trim_end_matches('}')),
    );
    let upstream = std::fs::read_to_string(ng.join("web-upstream.conf")).unwrap();
    let warning = format!("[warn] conflicting server name \"\" on 127.0.0.1:{proxy_port}, ignored");
    let after_swap = format!("nginx -t -p {} -c nginx.conf", ng.display());
    // The whole config checked after the swap, and a `%s` check of the candidate before it.
    for validate in [after_swap.clone(), format!("test -s %s && {after_swap}")] {
        let extra = serde_json::json!({
            "backend_list": backends, "dir": dir, "proxy_port": proxy_port, "to": "green",
            "validate": validate,
        })
        .to_string();
        let out = common::roll(&dir)
            .args(["play", "pb.yml", "-i", "hosts", "-e", &extra])
            .output()
            .unwrap();
        // The message as it reads, not as JSON quotes it.
        let text = stdout(&out).replace("\\\"", "\"");
        assert_eq!(out.status.code(), Some(2), "{validate}: {text}{}", common::stderr(&out));
        let said = format!(
            "switch of `web` stopped at batch 1 of 2: validation failed: `{validate}` warned: {warning}; \
             the previous upstream is restored"
        );
        assert!(text.contains(&said), "{validate}: {text}");
        assert_eq!(
            std::fs::read_to_string(ng.join("web-upstream.conf")).unwrap(),
            upstream,
            "{validate}"
        );
        let state = state_of(&dir);
        assert!(
            state["status"]
                .as_str()
                .unwrap()
                .starts_with("failed: batch 1 of 2: validation failed"),
            "{state}"
        );
        assert_eq!(state["backends"]["app1"], "blue");
        assert_eq!(get(proxy_port, "/").unwrap(), (200, "blue r".to_string()));
    }
}

#[test]
fn the_gate_and_the_healthcheck_demand_the_apps_body_and_header() {
    let rig = Rig::new(2);
    let (dir, backends) = (rig.dir.clone(), rig.backends.clone());
    let (proxy_port, ng, _nginx) = rig.one_proxy(LABELLED_UPSTREAM, 0);
    let upstream = std::fs::read_to_string(ng.join("web-upstream.conf")).unwrap();
    let url = format!("http://127.0.0.1:{proxy_port}/");
    let run = |more: serde_json::Value| {
        let mut extra =
            serde_json::json!({"backend_list": backends, "dir": dir, "proxy_port": proxy_port, "to": "green"});
        for (k, v) in more.as_object().unwrap() {
            extra[k] = v.clone();
        }
        let out = common::roll(&dir)
            .args(["play", "pb.yml", "-i", "hosts", "-e", &extra.to_string()])
            .output()
            .unwrap();
        let text = format!("{}{}", stdout(&out), common::stderr(&out));
        (out.status.code(), text.replace("\\\"", "\""))
    };
    // The demo app answers "COLOUR RELEASE": another app's answer, as far as a gate that wants
    // `web` can tell. The status is right; the batch is undone.
    let (code, text) = run(serde_json::json!({"gate": {"url": url, "status": 200, "body": "web"}}));
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "stopped at batch 1 of 2: gate {url} answered 200 without `web` in its body: \""
        )) && text.contains("\", expected 200 with `web` in the body; the previous upstream is restored"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(ng.join("web-upstream.conf")).unwrap(), upstream);
    assert_eq!(get(proxy_port, "/").unwrap(), (200, "blue r".to_string()));
    assert!(
        state_of(&dir)["status"]
            .as_str()
            .unwrap()
            .starts_with("failed: batch 1 of 2: gate"),
        "{}",
        state_of(&dir)
    );
    // A header's value is matched exactly: the health check stops before the batch is written.
    let (code, text) = run(serde_json::json!({
        "healthcheck": {"path": "/", "timeout": "1s", "body": "green", "header": "X-Colour: GREEN"},
    }));
    assert_eq!(code, Some(2), "{text}");
    let green1 = format!("http://127.0.0.1:{}/", backends[0]["ports"]["green"]);
    assert!(
        text.contains(&format!(
            "stopped at batch 1 of 2: not serving on green (expected 200 with `green` in the body and header \
             `X-Colour: GREEN` from /): app1 ({green1}) answered 200 with `X-Colour: green` (want `X-Colour: GREEN`)"
        )),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(ng.join("web-upstream.conf")).unwrap(), upstream);
    // What the app does send passes, the header's name in any case.
    let (code, text) = run(serde_json::json!({
        "gate": {"url": url, "status": 200, "body": " r", "header": "content-type: text/plain"},
        "healthcheck": {"path": "/", "timeout": "1s", "body": "green", "header": "x-colour: green"},
    }));
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(state_of(&dir)["live"], "green");
    assert_eq!(get(proxy_port, "/").unwrap(), (200, "green r".to_string()));
}

#[test]
fn a_batch_left_pending_by_a_dead_run_is_redone() {
    // A run that dies between writing the upstream and recording the batch (SIGKILL, the proxy
    // gone) leaves the batch `pending` in the state: those backends may be on either colour.
    let rig = Rig::new(2);
    let (dir, backends) = (rig.dir.clone(), rig.backends.clone());
    let (proxy_port, ng, _nginx) = rig.one_proxy(LABELLED_UPSTREAM, 0);
    let run = |to: &str| {
        let extra = serde_json::json!({"backend_list": backends, "dir": dir, "proxy_port": proxy_port, "to": to});
        common::roll(&dir)
            .args(["play", "pb.yml", "-i", "hosts", "-e", &extra.to_string()])
            .output()
            .unwrap()
    };
    assert_eq!(run("green").status.code(), Some(0));
    // What a run that died in batch 1 of a switch back to blue leaves: app1 on blue in the
    // file, the state still saying green, app1 pending.
    let upstream = ng.join("web-upstream.conf");
    let green = std::fs::read_to_string(&upstream).unwrap();
    let blue1 = format!("127.0.0.1:{};  # app1 blue", backends[0]["ports"]["blue"]);
    let green1 = format!("127.0.0.1:{};  # app1 green", backends[0]["ports"]["green"]);
    std::fs::write(&upstream, green.replace(&green1, &blue1)).unwrap();
    let state_file = dir.join("state/web.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    state["pending"] = serde_json::json!(["app1"]);
    state["target"] = serde_json::json!("blue");
    state["status"] = serde_json::json!("switching");
    std::fs::write(&state_file, state.to_string()).unwrap();
    let status = common::roll(&dir)
        .args(["status", "-i", "hosts", "--hosts", "proxy1", "--state-dir"])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(
        stdout(&status).contains("batch under way when the run stopped: app1 (on either colour"),
        "{}{}",
        stdout(&status),
        common::stderr(&status)
    );
    // Going to green after all: app1 is not taken for green on the state's word.
    let out = run("green");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(recap(&stdout(&out))[0].contains("changed=1 "), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(&upstream).unwrap(), green);
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert!(state.get("pending").is_none(), "{state}");
    assert_eq!(state["status"], "live");
}

/// A switch to green on one local proxy, stopped by a signal in the pause after its batch 1.
struct Stopped {
    // Dropped first: nginx stops while its prefix (in the rig's directory) still exists.
    _nginx: Nginx,
    rig: Rig,
    port: u16,
    ng: PathBuf,
    state_file: PathBuf,
}

impl Stopped {
    /// `apps` backends, batched by `batching` (a line of the task: `batch_size: 1`); `signal` is
    /// `kill`'s (`-INT`) and is sent once batch 1 is recorded.
    fn after_batch_1(apps: usize, batching: &str, signal: &str) -> Stopped {
        let rig = Rig::new(apps);
        let (dir, backends) = (rig.dir.clone(), rig.backends.clone());
        let port = free_port();
        let ng = dir.join("ng");
        let nginx = start_nginx(&ng, port, &backends);
        write(
            &dir,
            "upstream.j2",
            "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }};\n{% endfor %}}\n",
        );
        write(
            &dir,
            "hosts",
            &format!("proxy1 ansible_connection=local ng={} port={port}\n", ng.display()),
        );
        write(
            &dir,
            "pb.yml",
            &r#"
- hosts: proxy1
  tasks:
    - roll.nginx_switch:
        app: web
        to: green
        backends: "{{ backend_list }}"
        template: upstream.j2
        dest: "{{ ng }}/web-upstream.conf"
        BATCHING
        pause: "{{ pause }}"
        validate: "nginx -t -p {{ ng }} -c nginx.conf"
        reload: "nginx -s reload -p {{ ng }} -c nginx.conf"
        pid_file: "{{ ng }}/nginx.pid"
        state_dir: "{{ ng }}/state"
"#
            .replace("BATCHING", batching),
        );
        let stopped = Stopped {
            rig,
            port,
            state_file: ng.join("state/web.json"),
            ng,
            _nginx: nginx,
        };
        let mut cmd = common::roll(&dir);
        cmd.args(["play", "pb.yml", "-i", "hosts", "-e", &stopped.extra(&backends)])
            .args(["-e", "pause=5s"]);
        let mut run = common::Watched::spawn(cmd);
        run.wait_for("TASK [roll.nginx_switch]");
        let t0 = Instant::now();
        while !std::fs::read_to_string(&stopped.state_file).is_ok_and(|s| s.contains("\"batches_done\": 1")) {
            assert!(t0.elapsed() < Duration::from_secs(20), "batch 1 never finished");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            Command::new("kill")
                .args([signal, &run.pid().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let (code, out, _) = run.finish();
        assert_eq!(code, Some(130), "{signal}: {out}");
        stopped
    }

    fn extra(&self, backends: &[serde_json::Value]) -> String {
        serde_json::json!({ "backend_list": backends }).to_string()
    }

    /// `roll play` again, with these backends and `args`.
    fn play(&self, backends: &[serde_json::Value], args: &[&str]) -> std::process::Output {
        common::roll(&self.rig.dir)
            .args(["play", "pb.yml", "-i", "hosts", "-e", &self.extra(backends)])
            .args(args)
            .output()
            .unwrap()
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.state_file).unwrap()).unwrap()
    }

    /// The steps the audit log beside the state recorded (`batch 1 of 3 to green: app1`).
    fn audited(&self) -> Vec<String> {
        std::fs::read_to_string(self.ng.join("state/audit.log"))
            .unwrap()
            .lines()
            .map(|l| l.split_once(" release=- ").map_or(l, |(_, step)| step).to_string())
            .collect()
    }
}

#[test]
fn sigint_or_sigterm_during_a_pause_stops_after_the_batch_and_a_rerun_resumes() {
    for signal in ["-INT", "-TERM"] {
        interrupted_during_a_pause(signal);
    }
}

fn interrupted_during_a_pause(signal: &str) {
    let s = Stopped::after_batch_1(3, "batch_size: 1", signal);
    let state = s.state();
    assert_eq!(state["status"], "interrupted after batch 1 of 3", "{state}");
    assert_eq!(state["backends"]["app1"], "green");
    assert_eq!(state["backends"]["app2"], "blue");
    assert_eq!(get(s.port, "/").unwrap().0, 200);
    // The re-run goes on from batch 2.
    let again = s.play(&s.rig.backends, &["-e", "pause=0s"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    let state = s.state();
    assert_eq!(
        (
            state["live"].as_str(),
            state["status"].as_str(),
            state["batches_done"].as_u64()
        ),
        (Some("green"), Some("live"), Some(3))
    );
}

#[test]
fn a_resumed_switch_keeps_the_batch_plan_it_started_with() {
    // Five backends in three batches: [app1, app2], [app3, app4], [app5]. The three left, planned
    // again in three batches, would make "batch 2 of 4" to "4 of 4".
    let s = Stopped::after_batch_1(5, "batches: 3", "-INT");
    let backends = s.rig.backends.clone();
    let state = s.state();
    assert_eq!(state["status"], "interrupted after batch 1 of 3", "{state}");
    assert_eq!(
        state["plan"],
        serde_json::json!([["app1", "app2"], ["app3", "app4"], ["app5"]]),
        "{state}"
    );
    // The dry run shows the batches the run will make, numbered as it numbers them.
    let dry = s.play(&backends, &["--check", "-v", "-e", "pause=2s"]);
    let text = stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{text}{}", common::stderr(&dry));
    assert!(
        text.contains(
            "    batch 2 at +0s: app3, app4\n    batch 3 at +2s: app5\n    expected duration: 2s (2 batches)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("resumes with batch 2 of 3 of the plan it started with"),
        "{text}"
    );
    // A backend gone since the switch started: the rest is planned again, and the result says so.
    let dry = s.play(&backends[..4], &["--check", "-v", "-e", "pause=2s"]);
    let text = stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{text}{}", common::stderr(&dry));
    assert!(
        text.contains("the backends changed since the switch started (removed `app5`)"),
        "{text}"
    );
    assert!(
        text.contains("    batch 2 at +0s: app3\n    batch 3 at +2s: app4\n"),
        "{text}"
    );
    assert_eq!(s.state(), state, "a dry run records nothing");
    // The run goes on with the plan it started with.
    let again = s.play(&backends, &["-e", "pause=0s"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert_eq!(
        s.audited(),
        [
            "batch 1 of 3 to green: app1,app2",
            "interrupted after batch 1 of 3",
            "batch 2 of 3 to green: app3,app4",
            "batch 3 of 3 to green: app5",
        ]
    );
    let state = s.state();
    assert_eq!(
        (
            state["live"].as_str(),
            state["status"].as_str(),
            state["batches_done"].as_u64(),
            state["batches_total"].as_u64()
        ),
        (Some("green"), Some("live"), Some(3), Some(3)),
        "{state}"
    );
    assert!(state.get("plan").is_none(), "a settled switch keeps no plan: {state}");
    assert_eq!(get(s.port, "/").unwrap().1, "green r");
}

#[test]
fn a_dry_run_plans_the_fewest_batches_that_keep_the_database_under_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Six backends with pools of 10 (steady 60) plus 5 other connections, and a limit of 90:
    // room for two new pools at a time, so three batches of two.
    let backends: Vec<serde_json::Value> = (1..=6)
        .map(|i| serde_json::json!({"name": format!("app{i}"), "address": "127.0.0.1", "ports": {"blue": 9000 + i, "green": 9100 + i}}))
        .collect();
    write(dir, "hosts", "proxy1 ansible_connection=local\n");
    write(
        dir,
        "upstream.j2",
        "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }};\n{% endfor %}}\n",
    );
    write(dir, "web-upstream.conf", "upstream web { server 127.0.0.1:9001; }\n");
    write(
        dir,
        "pb.yml",
        r#"
- hosts: proxy1
  tasks:
    - roll.nginx_switch:
        app: web
        to: green
        backends: "{{ backend_list }}"
        template: upstream.j2
        dest: "{{ playbook_dir }}/web-upstream.conf"
        batches: "{{ batches }}"
        pause: 30s
        database: { max_connections: "{{ limit }}", pool: 10, other: 5, wait_timeout: 20s }
        state_dir: "{{ playbook_dir }}/state"
"#,
    );
    let extra = serde_json::json!({ "backend_list": backends }).to_string();
    let out = common::roll(dir)
        .args([
            "play",
            "pb.yml",
            "-i",
            "hosts",
            "--check",
            "-e",
            &extra,
            "-e",
            "batches=auto",
            "-e",
            "limit=90",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    assert!(
        text.contains("    batch 1 at +0s: app1, app2  (expected database peak 85 of 90)"),
        "{text}"
    );
    assert!(
        text.contains("    batch 2 at +30s: app3, app4  (expected database peak 85 of 90)"),
        "{text}"
    );
    assert!(
        text.contains("    batch 3 at +60s: app5, app6  (expected database peak 85 of 90)"),
        "{text}"
    );
    assert!(!dir.join("state").exists(), "a dry run records nothing");

    // Two batches would overrun the limit: refused before anything changes, naming the peak.
    let out = common::roll(dir)
        .args([
            "play",
            "pb.yml",
            "-i",
            "hosts",
            "-e",
            &extra,
            "-e",
            "batches=2",
            "-e",
            "limit=90",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("batch 1 of 2 would peak at 95 database connections, above max_connections 90"),
        "{text}"
    );
    assert!(!dir.join("state").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("web-upstream.conf")).unwrap(),
        "upstream web { server 127.0.0.1:9001; }\n"
    );
}

/// An nginx container (scripts/nginx-image) and its image, removed when dropped.
struct NginxContainer {
    name: String,
    image: String,
}

impl Drop for NginxContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
        let _ = Command::new("docker").args(["image", "rm", "-f", &self.image]).output();
    }
}

#[test]
fn nginx_in_a_container_is_reloaded_through_docker_and_validated_inside_it() {
    let engine = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    assert!(
        engine.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs a running Docker engine (Debian package docker.io)"
    );
    let rig = Rig::new(3);
    let dir = rig.dir.clone();
    let tag = format!("roll-nginx:test-{}", std::process::id());
    let label = format!("roll.test=run-{}", std::process::id());
    let built = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nginx-image"))
        .arg(&tag)
        .env("NGINX_IMAGE_LABELS", &label)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let ngx = NginxContainer {
        name: format!("roll-nginx-{}", std::process::id()),
        image: tag.clone(),
    };
    let proxy_port = free_port();
    let blue: String = rig
        .backends
        .iter()
        .map(|b| format!("    server 127.0.0.1:{};\n", b["ports"]["blue"]))
        .collect();
    write(&dir, "web-upstream.conf", &format!("upstream web {{\n{blue}}}\n"));
    write(
        &dir,
        "nginx.conf",
        &format!(
            "worker_processes 1;\nerror_log stderr;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  include {d}/web-upstream.conf;\n  server {{\n    listen 127.0.0.1:{proxy_port};\n    location / {{ proxy_pass http://web; }}\n  }}\n}}\n",
            d = dir.display()
        ),
    );
    // Host networking: the container's nginx listens on loopback and reaches the backends there.
    let run = Command::new("docker")
        .args(["run", "-d", "--name", &ngx.name, "--label", &label, "--network", "host"])
        .arg("-v")
        .arg(format!("{d}:{d}", d = dir.display()))
        .arg("-v")
        .arg(format!("{}/nginx.conf:/etc/nginx/nginx.conf:ro", dir.display()))
        .arg(&tag)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let t0 = Instant::now();
    while !matches!(get(proxy_port, "/"), Ok((200, _))) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nginx in its container does not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    write(&dir, "hosts", "proxy1 ansible_connection=local\n");
    write(
        &dir,
        "upstream.j2",
        "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }}{{ ' bad-parameter' if broken | default(false) else '' }};\n{% endfor %}}\n",
    );
    write(
        &dir,
        "pb.yml",
        r#"
- hosts: proxy1
  tasks:
    - roll.nginx_switch:
        app: web
        to: "{{ to }}"
        backends: "{{ backend_list }}"
        template: upstream.j2
        dest: "{{ playbook_dir }}/web-upstream.conf"
        container: "{{ container }}"
        batches: 3
        pause: 500ms
        gate: { url: "http://127.0.0.1:{{ proxy_port }}/health", status: 200 }
        state_dir: "{{ playbook_dir }}/state"
"#,
    );
    let extra =
        serde_json::json!({"backend_list": rig.backends, "proxy_port": proxy_port, "container": ngx.name}).to_string();

    let load = load_on(proxy_port);
    let out = common::roll(&dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &extra, "-e", "to=green"])
        .output()
        .unwrap();
    let seen = colours(load.stop());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), common::stderr(&out));
    assert!(
        seen.iter().all(|(_, r)| r.is_ok()),
        "a request failed during the switch"
    );
    assert_eq!(seen.first().unwrap().1.as_deref(), Ok("blue"));
    assert_eq!(seen.last().unwrap().1.as_deref(), Ok("green"));
    assert!(
        seen.iter().any(|(_, r)| r.as_deref() == Ok("green")) && seen.iter().any(|(_, r)| r.as_deref() == Ok("blue"))
    );
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state/web.json")).unwrap()).unwrap();
    assert_eq!(
        (state["live"].as_str(), state["batches_done"].as_u64()),
        (Some("green"), Some(3))
    );

    // A config nginx rejects (checked inside the container) is never loaded: restored, still green.
    let before = std::fs::read_to_string(dir.join("web-upstream.conf")).unwrap();
    let bad = common::roll(&dir)
        .args([
            "play",
            "pb.yml",
            "-i",
            "hosts",
            "-e",
            &extra,
            "-e",
            "to=blue",
            "-e",
            "broken=true",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stdout(&bad));
    assert!(stdout(&bad).contains("validation failed"), "{}", stdout(&bad));
    assert_eq!(std::fs::read_to_string(dir.join("web-upstream.conf")).unwrap(), before);
    assert_eq!(get(proxy_port, "/").unwrap().1.split_whitespace().next(), Some("green"));
}

#[test]
fn two_apps_share_a_listen_by_server_name_with_the_shipped_site_template() {
    // Two apps' sites from `roles/blue_green/templates/nginx/site.conf.j2` on one `listen`: one named by
    // `proxy_server_name`, one by its default (the app). nginx takes both, with no warning that
    // one is ignored, and routes by Host.
    let rig = Rig::new(1);
    let dir = rig.dir.clone();
    let ng = dir.join("nginx");
    let port = free_port();
    let (blue, green) = (&rig.backends[0]["ports"]["blue"], &rig.backends[0]["ports"]["green"]);
    write(
        &ng,
        "upstreams.conf",
        &format!("upstream web {{ server 127.0.0.1:{blue}; }}\nupstream shop {{ server 127.0.0.1:{green}; }}\n"),
    );
    write(
        &ng,
        "nginx.conf",
        &format!(
            "worker_processes 1;\npid {ng}/nginx.pid;\nerror_log {ng}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  include {ng}/upstreams.conf;\n  include {ng}/sites/*.conf;\n}}\n",
            ng = ng.display()
        ),
    );
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("roles/blue_green/templates/nginx/site.conf.j2");
    write(&dir, "hosts", "proxy1 ansible_connection=local\n");
    write(
        &dir,
        "pb.yml",
        &format!(
            r#"
- hosts: proxy1
  vars: {{ proxy_listen: "127.0.0.1:{port}" }}
  tasks:
    - template: {{ src: "{site}", dest: "{ng}/sites/web.conf" }}
      vars: {{ app: web, proxy_server_name: web.example.test }}
    - template: {{ src: "{site}", dest: "{ng}/sites/shop.conf" }}
      vars: {{ app: shop }}
"#,
            site = site.display(),
            ng = ng.display()
        ),
    );
    std::fs::create_dir_all(ng.join("sites")).unwrap();
    let out = common::roll(&dir)
        .args(["play", "pb.yml", "-i", "hosts"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), common::stderr(&out));
    let nginx = |args: &[&str]| {
        Command::new("nginx")
            .arg("-p")
            .arg(&ng)
            .args(["-c", "nginx.conf"])
            .args(args)
            .output()
            .unwrap()
    };
    let t = nginx(&["-t"]);
    let said = String::from_utf8_lossy(&t.stderr).into_owned();
    assert!(t.status.success() && !said.contains("[warn]"), "{said}");
    assert!(nginx(&[]).status.success());
    let _nginx = Nginx { prefix: ng.clone() };
    let via = |host: &str| {
        let t0 = Instant::now();
        loop {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-H",
                    &format!("Host: {host}"),
                    &format!("http://127.0.0.1:{port}/"),
                ])
                .output()
                .unwrap();
            let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !body.is_empty() || t0.elapsed() > Duration::from_secs(10) {
                return body;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(via("web.example.test"), "blue r");
    assert_eq!(via("shop"), "green r");
}

/// Three demo apps behind a local nginx whose backends are inventory hosts on this machine, and
/// a switch to green one backend at a time with `retire: RETIRE` (its keys, indented), where
/// `{{ pids[backend][old_colour] }}` is the old colour's process.
struct Retiring {
    // Dropped first: nginx stops while its prefix (in the rig's directory) still exists.
    _nginx: Nginx,
    rig: Rig,
    port: u16,
    state_file: PathBuf,
    extra: String,
}

impl Retiring {
    fn new(retire: &str) -> Retiring {
        let rig = Rig::new(3);
        let (dir, backends) = (rig.dir.clone(), rig.backends.clone());
        let port = free_port();
        let ng = dir.join("ng");
        let nginx = start_nginx(&ng, port, &backends);
        write(
            &dir,
            "upstream.j2",
            "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }};\n{% endfor %}}\n",
        );
        // The backends are inventory hosts (on this machine), reached over their own connections.
        write(
            &dir,
            "hosts",
            &format!(
                "proxy1 ansible_connection=local ng={} port={port}\napp1 ansible_connection=local\n\
                 app2 ansible_connection=local\napp3 ansible_connection=local\n",
                ng.display()
            ),
        );
        write(
            &dir,
            "pb.yml",
            &r#"
- hosts: proxy1
  tasks:
    - roll.nginx_switch:
        app: web
        to: green
        backends: "{{ backend_list }}"
        template: upstream.j2
        dest: "{{ ng }}/web-upstream.conf"
        batch_size: 1
        validate: "nginx -t -p {{ ng }} -c nginx.conf"
        reload: "nginx -s reload -p {{ ng }} -c nginx.conf"
        pid_file: "{{ ng }}/nginx.pid"
        state_dir: "{{ ng }}/state"
        retire:
RETIRE
"#
            .replace("RETIRE", retire),
        );
        let pids: serde_json::Map<String, serde_json::Value> = (0..3)
            .map(|i| {
                let (blue, green) = (rig._procs.0[2 * i].id(), rig._procs.0[2 * i + 1].id());
                (
                    format!("app{}", i + 1),
                    serde_json::json!({ "blue": blue, "green": green }),
                )
            })
            .collect();
        let extra = serde_json::json!({ "backend_list": backends, "pids": pids }).to_string();
        Retiring {
            rig,
            port,
            state_file: ng.join("state/web.json"),
            extra,
            _nginx: nginx,
        }
    }

    fn play(&self) -> Command {
        let mut cmd = common::roll(&self.rig.dir);
        cmd.args(["play", "pb.yml", "-i", "hosts", "-e", &self.extra]);
        cmd
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.state_file).unwrap()).unwrap()
    }

    /// Whether process `k` (app `k / 2 + 1`, blue when even) has exited.
    fn exited(&mut self, k: usize) -> bool {
        self.rig._procs.0[k].try_wait().unwrap().is_some()
    }

    /// The old colour's blue port of app `i` (from 1).
    fn blue_port(&self, i: usize) -> u64 {
        self.rig.backends[i - 1]["ports"]["blue"].as_u64().unwrap()
    }
}

/// Stop the old process and wait until it is gone (or a zombie: the test reaps it).
const KILL_OLD: &str =
    "p={{ pids[backend][old_colour] }}; kill $p; while ps -o stat= -p $p | grep -qv Z; do sleep 0.02; done";

#[test]
fn sigint_during_a_retirement_lets_it_finish_then_stops_after_the_batch_and_a_rerun_resumes() {
    // Retiring takes a second (a container's stop grace, say), then the old process is gone.
    let mut r = Retiring::new(&format!("          command: \"sleep 1; {KILL_OLD}\""));
    let load = load_on(r.port);
    let mut run = common::Watched::spawn(r.play());
    run.wait_for("TASK [roll.nginx_switch]");
    // Batch 1 is live and its old colour is being retired.
    let t0 = Instant::now();
    while !std::fs::read_to_string(&r.state_file).is_ok_and(|s| s.contains("\"unretired\"")) {
        assert!(t0.elapsed() < Duration::from_secs(20), "batch 1 never went live");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        Command::new("kill")
            .args(["-INT", &run.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let (code, out, _) = run.finish();
    assert_eq!(code, Some(130), "{out}");
    let s = r.state();
    assert_eq!(s["status"], "interrupted after batch 1 of 3", "{s}");
    assert!(s.get("unretired").is_none(), "the retirement under way finished: {s}");
    assert_eq!(
        (s["backends"]["app1"].as_str(), s["backends"]["app2"].as_str()),
        (Some("green"), Some("blue"))
    );
    assert!(r.exited(0), "app1's blue process was retired");
    assert!(!r.exited(2), "app2's blue process still serves");

    // The re-run goes on from batch 2, retiring as it goes.
    let again = r.play().output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    let seen = load.stop();
    let s = r.state();
    assert_eq!(
        (s["live"].as_str(), s["status"].as_str()),
        (Some("green"), Some("live")),
        "{s}"
    );
    for k in [0, 2, 4] {
        assert!(r.exited(k), "blue process {k} still runs");
    }
    for k in [1, 3, 5] {
        assert!(!r.exited(k), "green process {k} exited");
    }
    let failed: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        seen.len(),
        failed.first()
    );
}

#[test]
fn retirement_waits_for_open_connections_to_the_old_port_within_its_bound() {
    let mut r = Retiring::new(&format!(
        "          command: \"{KILL_OLD}\"\n          connections: 1500ms"
    ));
    // A connection from the proxy host to app1's old port that stays open past the bound: the
    // batch does not retire, and the run fails saying so.
    let held = std::net::TcpStream::connect(("127.0.0.1", r.blue_port(1) as u16)).unwrap();
    let out = r.play().output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("connections to the old colour still open after 1.5 s: app1 (127.0.0.1:"),
        "{text}"
    );
    let s = r.state();
    assert_eq!(s["unretired"], serde_json::json!(["app1"]), "{s}");
    assert_eq!(s["backends"]["app1"], "green", "its traffic stays on green: {s}");
    assert!(!r.exited(0), "app1's blue process still runs");
    // Closed within the bound: the re-run waits for it, then retires and finishes.
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        drop(held);
    });
    let out = r.play().output().unwrap();
    closer.join().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(r.state()["status"], "live");
    for k in [0, 2, 4] {
        assert!(r.exited(k), "blue process {k} still runs");
    }
}

#[test]
fn with_retirement_a_dry_run_plans_by_each_batchs_own_pools_and_shows_what_each_batch_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Six backends with pools of 10 (steady 60) plus 5 other connections, a limit of 90, and no
    // pause: without retirement every batch's old pools would still be open at the next.
    let backends: Vec<serde_json::Value> = (1..=6)
        .map(|i| serde_json::json!({"name": format!("app{i}"), "address": "127.0.0.1", "ports": {"blue": 9000 + i, "green": 9100 + i}}))
        .collect();
    let hosts: String = (1..=6)
        .map(|i| format!("app{i} ansible_connection=local unit=web{i}\n"))
        .collect();
    write(dir, "hosts", &format!("proxy1 ansible_connection=local\n{hosts}"));
    write(
        dir,
        "upstream.j2",
        "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }};\n{% endfor %}}\n",
    );
    write(dir, "web-upstream.conf", "upstream web { server 127.0.0.1:9001; }\n");
    write(
        dir,
        "pb.yml",
        r#"
- hosts: proxy1
  tasks:
    - roll.nginx_switch:
        app: web
        to: green
        backends: "{{ backend_list }}"
        template: upstream.j2
        dest: "{{ playbook_dir }}/web-upstream.conf"
        batches: auto
        pause: 0s
        database: { max_connections: 90, pool: 10, other: 5, wait_timeout: 20s }
        state_dir: "{{ playbook_dir }}/state"
        retire:
          enabled: "{{ retire }}"
          command: "systemctl stop {{ unit }}@{{ old_colour }}"
"#,
    );
    let extra = serde_json::json!({ "backend_list": backends }).to_string();
    let dry = |retire: &str| {
        common::roll(dir)
            .args(["play", "pb.yml", "-i", "hosts", "--check", "-e", &extra])
            .args(["-e", &format!("retire={retire}")])
            .output()
            .unwrap()
    };
    let out = dry("true");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    assert!(
        text.contains(
            "    batch 1 at +0s: app1, app2  (expected database peak 85 of 90)\n      then stops \
             `systemctl stop web1@blue` on app1, `systemctl stop web2@blue` on app2\n    batch 2 at +0s: app3, app4"
        ),
        "{text}"
    );
    assert!(
        text.contains("    batch 3 at +0s: app5, app6  (expected database peak 85 of 90)\n"),
        "{text}"
    );
    // Without retirement and no pause, no batching fits.
    let out = dry("false");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "no batching keeps the database within max_connections 90: even one backend at a time peaks at 125"
        ),
        "{text}"
    );
    assert!(!dir.join("state").exists(), "a dry run records nothing");
}

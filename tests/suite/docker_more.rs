//! `docker_container_exec`, `docker_volume` and `docker_login`'s logout over SSH against the real
//! Docker engine: exec output and exit codes registered as community.docker does (a non-zero
//! `rc` is a result), env, user, chdir, stdin and detach; volumes created with their driver
//! options and labels, left alone, recreated when an option changes and removed; credentials
//! removed from the docker config `config_path` names. Everything is labelled with the run and
//! removed at the end, pass or fail.

use crate::common::docker::{Cleanup, docker, run_label};
use crate::common::{self, fleet::Fleet};
use serde_json::Value;

/// Removes the run's volumes (the engine's own clean-up guard knows containers and images).
struct Volumes(String);

impl Drop for Volumes {
    fn drop(&mut self) {
        let out = docker(&["volume", "ls", "-q", "--filter", &format!("label={}", self.0)]);
        for v in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            docker(&["volume", "rm", "-f", v]);
        }
    }
}

const PLAY: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - community.docker.docker_container_exec:
        container: "{{ cname }}"
        command: sh -c 'echo out; echo err >&2; exit 3'
      register: e1
    - docker_container_exec:
        container: "{{ cname }}"
        argv: [sh, -c, 'echo "$GREETING from $(pwd) as $(id -un)"']
        env: { GREETING: hello }
        chdir: /tmp
        user: nobody
      register: e2
    - docker_container_exec: { container: "{{ cname }}", command: cat, stdin: piped in }
      register: e3
    - docker_container_exec: { container: "{{ cname }}", argv: [printf, "a\n\n"], strip_empty_ends: false }
      register: e4
    - docker_container_exec: { container: "{{ cname }}", command: sleep 5, detach: true }
      register: e5
    - docker_container_exec: { container: "{{ cname }}", command: "true" }
      check_mode: true
      register: e6

    - name: volume check
      community.docker.docker_volume:
        name: "{{ vname }}"
        labels: "{{ test_label }}"
        driver_options: { type: tmpfs, device: tmpfs, o: size=1m }
      check_mode: true
      register: v0
    - name: volume
      community.docker.docker_volume:
        name: "{{ vname }}"
        labels: "{{ test_label }}"
        driver_options: { type: tmpfs, device: tmpfs, o: size=1m }
      register: v1
    - name: volume again
      community.docker.docker_volume:
        name: "{{ vname }}"
        labels: "{{ test_label }}"
        driver_options: { type: tmpfs, device: tmpfs, o: size=1m }
      register: v2
    - docker_volume:
        name: "{{ vname }}"
        labels: "{{ test_label | combine({'tier': 'web'}) }}"
        driver_options: { type: tmpfs, device: tmpfs, o: size=1m }
        recreate: options-changed
      register: v3
    - docker_volume: { name: "{{ vname }}", state: absent }
      register: v4
    - docker_volume: { volume_name: "{{ vname }}", state: absent }
      register: v5

    - name: logout check
      community.docker.docker_login:
        registry_url: registry.example:5000
        username: ci
        password: unused
        email: ci@example.com
        config_path: "{{ cfg }}/config.json"
        state: absent
      check_mode: true
      register: l0
    - name: logout
      community.docker.docker_login:
        registry_url: registry.example:5000
        username: ci
        password: unused
        email: ci@example.com
        config_path: "{{ cfg }}/config.json"
        state: absent
      register: l1
    - name: logout again
      community.docker.docker_login:
        registry_url: registry.example:5000
        username: ci
        password: unused
        email: ci@example.com
        config_path: "{{ cfg }}/config.json"
        state: absent
      register: l2

    - copy:
        dest: "{{ cfg }}/results.json"
        content: "{{ {'e1': e1, 'e2': e2, 'e3': e3, 'e4': e4, 'e5': e5, 'e6': e6, 'v0': v0, 'v1': v1, 'v2': v2, 'v3': v3, 'v4': v4, 'v5': v5, 'l0': l0, 'l1': l1, 'l2': l2} | to_json }}"
"#;

#[test]
fn exec_volumes_and_logout_against_the_real_engine() {
    let label = run_label();
    let _cleanup = Cleanup::new();
    let _volumes = Volumes(label.clone());
    let id = std::process::id();
    let cname = format!("roll-exec-{id}");
    let vname = format!("roll-vol-{id}");
    // A container with a shell to exec into: the test host image, kept running by `sleep`.
    let started = docker(&[
        "run",
        "-d",
        "--name",
        &cname,
        "--label",
        &label,
        "--entrypoint",
        "sleep",
        "roll-testhost:bookworm",
        "infinity",
    ]);
    assert!(
        started.status.success(),
        "cannot start a container of roll-testhost:bookworm (built by scripts/testhost-image): {}",
        String::from_utf8_lossy(&started.stderr)
    );

    let fleet = Fleet::up(1, "dx");
    let dir = tempfile::tempdir().unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let auths = r#"{"auths": {"registry.example:5000": {"auth": "Y2k6c2VjcmV0"}, "other.example": {"auth": "eDp5"}}}"#;
    std::fs::write(cfg.path().join("config.json"), auths).unwrap();
    common::write(dir.path(), "hosts", &fleet.inventory());
    common::write(dir.path(), "p.yml", PLAY);
    let (k, v) = label.split_once('=').unwrap();
    let out = common::roll(dir.path())
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "p.yml", "-i", "hosts"])
        .args(["-e", &format!("cname={cname}"), "-e", &format!("vname={vname}")])
        .args(["-e", &format!("cfg={}", cfg.path().display())])
        .args(["-e", &format!("{{\"test_label\": {{\"{k}\": \"{v}\"}}}}")])
        .output()
        .unwrap();
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{so}{}", common::stderr(&out));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(cfg.path().join("results.json")).unwrap()).unwrap();

    // exec: the command's own rc is a result, not a failure.
    let e1 = &r["e1"];
    assert_eq!(
        (&e1["changed"], &e1["failed"], &e1["rc"], &e1["stdout"], &e1["stderr"]),
        (
            &Value::from(true),
            &Value::from(false),
            &Value::from(3),
            &Value::from("out"),
            &Value::from("err")
        ),
        "{e1}"
    );
    assert_eq!(e1["stdout_lines"], serde_json::json!(["out"]), "{e1}");
    assert_eq!(r["e2"]["stdout"], "hello from /tmp as nobody", "{}", r["e2"]);
    assert_eq!(r["e3"]["stdout"], "piped in", "{}", r["e3"]);
    assert_eq!(r["e4"]["stdout"], "a\n\n", "{}", r["e4"]);
    let exec_id = r["e5"]["exec_id"].as_str().unwrap_or_default();
    assert_eq!(exec_id.len(), 64, "{}", r["e5"]);
    assert!(r["e5"].get("stdout").is_none(), "{}", r["e5"]);
    assert_eq!(r["e6"]["skipped"], true, "{}", r["e6"]);

    // volume: check mode says what it would do and creates nothing; then created, left, recreated.
    let v0 = &r["v0"];
    assert_eq!(v0["changed"], true, "{v0}");
    assert_eq!(
        v0["actions"],
        serde_json::json!([format!("Created volume {vname} with driver local")]),
        "{v0}"
    );
    assert_eq!(v0["volume"], Value::Null, "{v0}");
    let v1 = &r["v1"];
    assert_eq!(v1["changed"], true, "{v1}");
    assert_eq!(v1["volume"]["Name"], vname.as_str(), "{v1}");
    assert_eq!(v1["volume"]["Options"]["type"], "tmpfs", "{v1}");
    assert!(v1.get("actions").is_none(), "{v1}");
    assert_eq!(r["v2"]["changed"], false, "{}", r["v2"]);
    let v3 = &r["v3"];
    assert_eq!(v3["changed"], true, "{v3}");
    assert_eq!(v3["volume"]["Labels"]["tier"], "web", "{v3}");
    assert_eq!(r["v4"]["changed"], true, "{}", r["v4"]);
    assert_eq!(r["v5"]["changed"], false, "{}", r["v5"]);
    let left = docker(&["volume", "inspect", &vname]);
    assert!(!left.status.success(), "the volume is still there");

    // logout: check mode keeps the credentials, the run removes only that registry's.
    assert_eq!(r["l0"]["changed"], true, "{}", r["l0"]);
    assert_eq!(r["l1"]["changed"], true, "{}", r["l1"]);
    assert_eq!(r["l2"]["changed"], false, "{}", r["l2"]);
    assert_eq!(r["l1"]["login_result"], serde_json::json!({}), "{}", r["l1"]);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.path().join("config.json")).unwrap()).unwrap();
    assert!(config["auths"].get("registry.example:5000").is_none(), "{config}");
    assert!(config["auths"].get("other.example").is_some(), "{config}");
    // The password never shows.
    assert!(!so.contains("unused"), "{so}");
}

#[test]
fn exec_in_a_container_that_does_not_exist_fails_with_the_collections_message() {
    let fleet = Fleet::up(1, "dn");
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "hosts", &fleet.inventory());
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - docker_container_exec: { container: roll-no-such-container, command: \"true\" }\n",
    );
    let out = common::roll(dir.path())
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "p.yml", "-i", "hosts"])
        .output()
        .unwrap();
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{so}");
    assert!(
        so.contains("Could not find container \\\"roll-no-such-container\\\"")
            || so.contains("Could not find container \"roll-no-such-container\""),
        "{so}"
    );
}

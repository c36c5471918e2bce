//! The docker modules over SSH against the real Docker engine: pulls from a local registry,
//! idempotent containers, replacement on a changed value, dry runs that predict replacements
//! without pulling or touching the engine, health failures with logs, retention, one-off
//! containers, networks, login, and secrets kept out of every output and argument list.

use crate::common;
use crate::common::docker as dockerfx;
use crate::common::fleet;

use common::{recap, roll, stdout, write};
use dockerfx::{Cleanup, docker, registry, run_label};
use fleet::Fleet;
use std::path::Path;
use std::process::Output;

struct Setup {
    fleet: Fleet,
    dir: tempfile::TempDir,
    image: String,
}

fn setup(reg: &dockerfx::Registry, hosts: usize, prefix: &str, playbook: &str) -> Setup {
    let fleet = Fleet::up(hosts, prefix);
    let dir = tempfile::tempdir().unwrap();
    let inv = fleet
        .inventory()
        .replace("[fleet]", "[app]")
        .replace("[fleet:vars]", "[app:vars]");
    write(dir.path(), "hosts", &inv);
    write(dir.path(), "pb.yml", playbook);
    Setup {
        fleet,
        dir,
        image: format!("{}/roll-demo", reg.addr),
    }
}

/// One engine, one registry, scenarios in turn (they share the engine's images), and every
/// container, image and network labelled with this run removed at the end, pass or fail.
#[test]
fn docker_modules_against_the_real_engine() {
    let _cleanup = Cleanup::new();
    let reg = registry();
    images_are_pulled_by_tag_or_digest_and_removed(&reg);
    images_are_built_loaded_tagged_and_pushed(&reg);
    container_options_reach_the_engine_and_are_compared(&reg);
    containers_start_stay_unchanged_and_are_replaced_when_a_value_changes(&reg);
    a_dry_run_of_a_new_image_tag_predicts_a_replacement_and_changes_nothing(&reg);
    a_container_that_never_becomes_healthy_fails_with_its_logs(&reg);
    retention_keeps_the_newest_releases(&reg);
    one_off_containers_networks_info_and_login(&reg);
    secrets_stay_out_of_outputs_and_argument_lists(&reg);
}

fn play_env(s: &Setup, extra: &[&str], token: &str) -> Output {
    play_with(s, extra, Some(token))
}

fn play(s: &Setup, extra: &[&str]) -> Output {
    play_with(s, extra, None)
}

fn play_with(s: &Setup, extra: &[&str], token: Option<&str>) -> Output {
    let test = run_label();
    let (k, v) = test.split_once('=').unwrap();
    let mut c = roll(s.dir.path());
    c.args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(s.fleet.known_hosts());
    c.args([
        "-e",
        &format!("image={}", s.image),
        "-e",
        &format!("{{\"test_label\": {{\"{k}\": \"{v}\"}}}}"),
    ]);
    c.args(extra);
    if let Some(t) = token {
        c.env("ROLL_TEST_TOKEN", t);
    }
    c.output().unwrap()
}

fn changed(out: &Output) -> Vec<u32> {
    recap(&stdout(out))
        .iter()
        .map(|l| {
            l.split("changed=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

fn images_are_pulled_by_tag_or_digest_and_removed(reg: &dockerfx::Registry) {
    let s = setup(
        reg,
        1,
        "img",
        r#"
- hosts: app
  tasks:
    - community.docker.docker_image: { name: "{{ image }}", tag: "2" }
      register: first
    - community.docker.docker_image: { name: "{{ image }}", tag: "2" }
      register: again
    - community.docker.docker_image: { name: "{{ image }}", tag: "2", force_source: true }
      register: forced
    - community.docker.docker_image: { name: "{{ image }}:2", state: absent }
      register: removed
    - assert:
        that:
          - first.changed and first.id is match('sha256:')
          - not again.changed
          - not forced.changed
          - removed.changed
      when: not ansible_check_mode
"#,
    );
    let dry = play(&s, &["--check"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stdout(&dry));
    let present = docker(&["image", "inspect", &format!("{}:2", s.image)]);
    assert!(!present.status.success(), "a dry run pulled the image");
    let out = play(&s, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // By digest: the registry's manifest digest pins the image.
    let digest = docker(&[
        "manifest",
        "inspect",
        "--insecure",
        "--verbose",
        &format!("{}:1", s.image),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&digest.stdout).unwrap();
    let pinned = format!("{}@{}", s.image, v["Descriptor"]["digest"].as_str().unwrap());
    write(
        s.dir.path(),
        "pb.yml",
        "- hosts: app\n  tasks:\n    - community.docker.docker_image: { name: \"{{ pinned }}\" }\n",
    );
    let by_digest = play(&s, &["-e", &format!("pinned={pinned}")]);
    assert_eq!(by_digest.status.code(), Some(0), "{}", stdout(&by_digest));
    assert_eq!(changed(&by_digest), [1]);
    assert!(docker(&["image", "inspect", &pinned]).status.success());
    docker(&["image", "rm", &pinned]);
}

/// `docker_image` with `source: build` (a context on the host, FROM scratch), `load`, `local`,
/// `repository` and `push` to the local registry: a second build is `ok` (the image is there),
/// a forced rebuild of the same context too (same ID), of a changed context not.
fn images_are_built_loaded_tagged_and_pushed(reg: &dockerfx::Registry) {
    let s = setup(
        reg,
        1,
        "bld",
        r#"
- hosts: app
  vars:
    built: "roll-built-{{ run }}"
    build: { path: "{{ ctx }}", target: final, args: { TEST_RUN: "{{ run }}", RELEASE: "1" } }
  tasks:
    - community.docker.docker_image: { name: "{{ built }}", tag: "1", source: build, build: "{{ build }}" }
      register: first
    - community.docker.docker_image: { name: "{{ built }}", tag: "1", source: build, build: "{{ build }}" }
      register: again
    - community.docker.docker_image:
        { name: "{{ built }}", tag: "1", source: build, build: "{{ build }}", force_source: true }
      register: same_context
    - community.docker.docker_image:
        name: "{{ built }}"
        tag: "1"
        source: build
        build: "{{ build }}"
        repository: "{{ registry }}/{{ built }}"
        push: true
      register: pushed
    - community.docker.docker_image:
        name: "{{ built }}"
        tag: "1"
        source: build
        build: "{{ build }}"
        repository: "{{ registry }}/{{ built }}"
        push: true
      register: pushed_again
    - community.docker.docker_image: { name: "{{ built }}", tag: "1", source: local }
      register: local
      when: not ansible_check_mode
    - community.docker.docker_image: { name: "roll-nowhere-{{ run }}", source: local }
      register: missing
      ignore_errors: true
      when: not ansible_check_mode
    - community.docker.docker_image:
        { name: "roll-loaded-{{ run }}", tag: "1", source: load, load_path: "{{ ctx }}/image.tar" }
      register: loaded
    - community.docker.docker_image:
        { name: "roll-loaded-{{ run }}", tag: "1", source: load, load_path: "{{ ctx }}/image.tar" }
      register: loaded_again
    - copy: { content: "two\n", dest: "{{ ctx }}/hello.txt" }
      when: not ansible_check_mode
    - community.docker.docker_image:
        { name: "{{ built }}", tag: "1", source: build, build: "{{ build }}", force_source: true }
      register: new_context
      when: not ansible_check_mode
    - assert:
        that:
          - first.changed and first.id is match('sha256:')
          - first.actions == ['Built image ' ~ built ~ ':1']
          - "'Step ' in first.stdout"
          - not again.changed and again.actions == []
          - not same_context.changed and same_context.id == first.id
          - pushed.changed
          - pushed.actions == ['Tagged image ' ~ built ~ ':1 to ' ~ registry ~ '/' ~ built ~ ':1', 'Pushed image ' ~ registry ~ '/' ~ built ~ ':1']
          - not pushed_again.changed
          - not local.changed and local.id == first.id
          - missing.failed and missing.msg == 'Cannot find the image roll-nowhere-' ~ run ~ ':latest locally.'
          - loaded.changed and not loaded_again.changed
          - new_context.changed and new_context.id != first.id
      when: not ansible_check_mode
"#,
    );
    let ctx = s.dir.path().join("ctx");
    let run = run_label().split_once('=').unwrap().1.to_string();
    write(&ctx, "hello.txt", "one\n");
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch AS base\nARG TEST_RUN\nARG RELEASE\nCOPY hello.txt /hello.txt\n\
         LABEL roll.test=${TEST_RUN} release=${RELEASE}\nFROM base AS final\nCOPY hello.txt /again.txt\n",
    );
    // The archive `source: load` reads: an image built here, saved, and removed from the engine.
    let loaded = format!("roll-loaded-{run}:1");
    let b = docker(&[
        "build",
        "--quiet",
        "--build-arg",
        &format!("TEST_RUN={run}"),
        "-t",
        &loaded,
        ctx.to_str().unwrap(),
    ]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let tar = ctx.join("image.tar");
    assert!(docker(&["save", "-o", tar.to_str().unwrap(), &loaded]).status.success());
    assert!(docker(&["image", "rm", &loaded]).status.success());

    let (c, r, g) = (
        format!("ctx={}", ctx.display()),
        format!("run={run}"),
        format!("registry={}", reg.addr),
    );
    let vars = ["-e", c.as_str(), "-e", r.as_str(), "-e", g.as_str()];
    let dry = play(&s, &[&["--check"], &vars[..]].concat());
    assert_eq!(dry.status.code(), Some(0), "{}", stdout(&dry));
    let built = format!("roll-built-{run}:1");
    assert!(
        !docker(&["image", "inspect", &built]).status.success(),
        "a dry run built the image"
    );
    assert!(
        !docker(&["image", "inspect", &loaded]).status.success(),
        "a dry run loaded the image"
    );
    let out = play(&s, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // The push reached the registry: the engine pulls it back by name.
    let pushed = format!("{}/{built}", reg.addr);
    assert!(docker(&["image", "rm", &pushed]).status.success());
    assert!(docker(&["pull", "--quiet", &pushed]).status.success());
    docker(&["image", "rm", &pushed]);
}

/// The `docker_container` options deploys add (`user`, `etc_hosts`, `memory`, `ulimits`,
/// `links`, `volumes_from`...) reach the engine; a second run is `ok`, a changed value replaces
/// the container unless `comparisons` ignores it; `restart` restarts, `force_kill` kills.
fn container_options_reach_the_engine_and_are_compared(reg: &dockerfx::Registry) {
    let s = setup(
        reg,
        1,
        "opt",
        r#"
- hosts: app
  tasks:
    - community.docker.docker_container:
        name: "opt-helper-{{ inventory_hostname }}"
        image: "{{ image }}:1"
        labels: "{{ test_label }}"
        volumes: ["/data"]
      when: step == 'run'
    - community.docker.docker_container:
        name: "opt-{{ inventory_hostname }}"
        image: "{{ image }}:1"
        labels: "{{ test_label }}"
        entrypoint: ["/roll-demo"]
        user: "1000:1000"
        working_dir: /
        hostname: opt-box
        etc_hosts: { db: 10.0.0.5 }
        memory: "{{ memory | default('64m') }}"
        cpus: 0.5
        dns_servers: [10.0.0.53]
        capabilities: [NET_BIND_SERVICE]
        cap_drop: [ALL]
        devices: ["/dev/null:/dev/xnull"]
        ulimits: ["nofile:1024:2048"]
        volumes_from: ["opt-helper-{{ inventory_hostname }}"]
        links: ["opt-helper-{{ inventory_hostname }}:helper"]
        published_ports: ["{{ ansible_host }}:18090:8080"]
        comparisons: "{{ cmp | default({}) }}"
        container_default_behavior: no_defaults
        restart: "{{ step == 'restart' }}"
      when: step in ['run', 'restart']
    - community.docker.docker_container: { name: "opt-{{ inventory_hostname }}", state: stopped, force_kill: true }
      when: step == 'kill'
"#,
    );
    let name = "opt-opt001";
    let step = |st: &str, extra: &[&str]| {
        let arg = format!("step={st}");
        let out = play(&s, &[&["-e", arg.as_str()], extra].concat());
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        changed(&out)
    };
    let inspect = || -> serde_json::Value {
        let o = docker(&["inspect", name]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()[0].clone()
    };
    assert_eq!(step("run", &[]), [2]);
    let c = inspect();
    let (cfg, host) = (&c["Config"], &c["HostConfig"]);
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(cfg["Hostname"], "opt-box");
    assert_eq!(cfg["WorkingDir"], "/");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/roll-demo"]));
    assert_eq!(host["ExtraHosts"], serde_json::json!(["db:10.0.0.5"]));
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["Dns"], serde_json::json!(["10.0.0.53"]));
    assert_eq!(host["CapAdd"], serde_json::json!(["CAP_NET_BIND_SERVICE"]));
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(host["Devices"][0]["PathInContainer"], "/dev/xnull");
    assert_eq!(
        host["Ulimits"],
        serde_json::json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
    );
    assert_eq!(host["VolumesFrom"], serde_json::json!(["opt-helper-opt001"]));
    assert!(
        host["Links"][0].as_str().unwrap().ends_with("/opt-opt001/helper"),
        "{}",
        host["Links"]
    );
    assert_eq!(c["State"]["Running"], true, "{}", c["State"]);
    let id = c["Id"].clone();

    assert_eq!(step("run", &[]), [0], "a second run changes nothing");
    assert_eq!(
        step(
            "run",
            &["-e", "memory=96m", "-e", "{\"cmp\": {\"memory\": \"ignore\"}}"]
        ),
        [0]
    );
    assert_eq!(inspect()["Id"], id, "an ignored difference replaced the container");
    assert_eq!(step("run", &["-e", "memory=96m"]), [1]);
    let c = inspect();
    assert_ne!(c["Id"], id, "a changed memory limit did not replace the container");
    assert_eq!(c["HostConfig"]["Memory"], 96 * 1024 * 1024);
    let started = c["State"]["StartedAt"].clone();
    assert_eq!(step("restart", &["-e", "memory=96m"]), [1]);
    assert_ne!(
        inspect()["State"]["StartedAt"],
        started,
        "restart: true did not restart"
    );
    assert_eq!(step("kill", &[]), [1]);
    // Killed (SIGKILL: 137), not stopped.
    assert_eq!(inspect()["State"]["ExitCode"], 137);
    docker(&["rm", "-f", name, "opt-helper-opt001"]);
}

const SERVICE: &str = r#"
- hosts: app
  tasks:
    - name: Run the service
      community.docker.docker_container:
        name: "web-{{ inventory_hostname }}-{{ suffix | default('a') }}"
        image: "{{ image }}:{{ release | default('1') }}"
        ports: ["{{ ansible_host }}:18080:8080"]
        env:
          COLOUR: "{{ colour | default('blue') }}"
          API_TOKEN: "{{ lookup('env', 'ROLL_TEST_TOKEN') | default('tok-3141592653', true) }}"
        labels: "{{ test_label | combine({'roll.app': 'web', 'roll.release': release | default('1')}) }}"
        wait_healthy: { http: /health, timeout: 30s }
    - uri: { url: "http://{{ ansible_host }}:18080/", return_content: true }
      register: page
      check_mode: false
      when: not ansible_check_mode
    - assert: { that: ["page.content == (colour | default('blue')) ~ ' ' ~ (release | default('1')) ~ '\n'"] }
      when: not ansible_check_mode
"#;

fn containers_start_stay_unchanged_and_are_replaced_when_a_value_changes(reg: &dockerfx::Registry) {
    let s = setup(reg, 2, "web", SERVICE);
    let first = play(&s, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    assert_eq!(changed(&first), [1, 1]);
    let again = play(&s, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert_eq!(changed(&again), [0, 0], "an unchanged container must not be touched");
    let id_before = docker(&["inspect", "--format", "{{.Id}}", "web-web001-a"]).stdout;
    let green = play(&s, &["-e", "colour=green", "--diff"]);
    let text = stdout(&green);
    assert_eq!(green.status.code(), Some(0), "{text}");
    assert_eq!(changed(&green), [1, 1]);
    assert!(
        text.contains("-env: old values (COLOUR)") && text.contains("+env: new values (COLOUR)"),
        "{text}"
    );
    assert_ne!(
        docker(&["inspect", "--format", "{{.Id}}", "web-web001-a"]).stdout,
        id_before,
        "the container was replaced"
    );
}

fn a_dry_run_of_a_new_image_tag_predicts_a_replacement_and_changes_nothing(reg: &dockerfx::Registry) {
    let s = setup(reg, 2, "dry", SERVICE);
    assert_eq!(play(&s, &[]).status.code(), Some(0));
    let engine = || {
        let c = docker(&[
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Image}} {{.State}} {{.CreatedAt}}",
            "--filter",
            &format!("label={}", run_label()),
        ]);
        let i = docker(&["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]);
        (
            String::from_utf8_lossy(&c.stdout).into_owned(),
            String::from_utf8_lossy(&i.stdout).into_owned(),
        )
    };
    let before = engine();
    assert!(
        !before.1.contains(&format!("{}:2", s.image)),
        "release 2 must not be on the host yet"
    );
    let dry = play(&s, &["-e", "release=2", "--check", "--diff"]);
    let text = stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{text}");
    assert_eq!(changed(&dry), [1, 1], "{text}");
    assert!(
        text.contains(&format!("-image: \"{}:1\"", s.image)) && text.contains(&format!("+image: \"{}:2\"", s.image)),
        "{text}"
    );
    assert!(text.contains("+image_id: \"sha256:"), "{text}");
    assert_eq!(engine().0, before.0, "containers changed in a dry run");
    assert_eq!(
        engine().1.lines().count(),
        before.1.lines().count(),
        "images changed in a dry run"
    );
    // The real run does what the dry run said.
    let real = play(&s, &["-e", "release=2"]);
    assert_eq!(changed(&real), [1, 1], "{}", stdout(&real));
}

fn a_container_that_never_becomes_healthy_fails_with_its_logs(reg: &dockerfx::Registry) {
    let s = setup(
        reg,
        1,
        "sick",
        r#"
- hosts: app
  tasks:
    - community.docker.docker_container:
        name: "sick-{{ inventory_hostname }}"
        image: "{{ image }}:1"
        ports: ["{{ ansible_host }}:18081:8080"]
        env: { HEALTH: fail, COLOUR: sick }
        labels: "{{ test_label }}"
        wait_healthy: { http: /health, timeout: 3s }
"#,
    );
    let out = play(&s, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("did not become healthy within 3 s"), "{text}");
    assert!(
        text.contains("roll-demo: sick 1 listening on 8080"),
        "the container's log lines are shown: {text}"
    );
}

fn retention_keeps_the_newest_releases(reg: &dockerfx::Registry) {
    let s = setup(
        reg,
        1,
        "keep",
        r#"
- hosts: app
  tasks:
    - community.docker.docker_container:
        name: "rel-{{ item }}"
        image: "{{ image }}:1"
        command: ["--version-{{ item }}"]
        state: present
        labels: "{{ test_label | combine({'roll.app': 'keepapp', 'roll.release': item}) }}"
      loop: ["r1", "r2", "r3", "r4"]
      loop_control: { pause: 1.1 }
    - roll.docker_prune_releases: { app: keepapp, keep: 2 }
      register: pruned
    - assert: { that: ["pruned.kept == ['r4', 'r3']", "pruned.changed"] }
    - roll.docker_prune_releases: { app: keepapp, keep: 2 }
      register: again
    - assert: { that: ["not again.changed"] }
"#,
    );
    let out = play(&s, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let left = docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        "label=roll.app=keepapp",
    ]);
    let mut names: Vec<String> = String::from_utf8_lossy(&left.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(names, ["rel-r3", "rel-r4"]);
}

fn one_off_containers_networks_info_and_login(reg: &dockerfx::Registry) {
    let s = setup(
        reg,
        1,
        "once",
        r#"
- hosts: app
  tasks:
    - community.docker.docker_network:
        name: "roll-net-{{ inventory_hostname }}"
        labels: "{{ test_label }}"
    - community.docker.docker_network:
        name: "roll-net-{{ inventory_hostname }}"
        labels: "{{ test_label }}"
      register: net_again
    - community.docker.docker_container:
        name: migrate
        image: "{{ image }}:1"
        command: ["migrate"]
        detach: false
        labels: "{{ test_label }}"
      run_once: true
      register: migration
    - community.docker.docker_container_info: { name: "no-such-container-{{ inventory_hostname }}" }
      register: info
    - community.docker.docker_login:
        registry: "{{ image | regex_replace('/.*', '') }}"
        username: deploy
        password: "pw-2718281828"
      environment: { DOCKER_CONFIG: "{{ playbook_dir }}/docker-config" }
      register: login
    - assert:
        that:
          - not net_again.changed
          - migration.rc == 0
          - "'migrations of release 1 applied' in migration.stdout"
          - not info.exists
          - login.changed
"#,
    );
    let out = play(&s, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("pw-2718281828"));
}

fn secrets_stay_out_of_outputs_and_argument_lists(reg: &dockerfx::Registry) {
    let s = setup(reg, 1, "sec", SERVICE);
    let token = format!("tok-{}-secret", std::process::id());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (stop2, seen2, token2) = (stop.clone(), seen.clone(), token.clone());
    // Watch every process's argument list on this machine (both sides of the SSH connection).
    let watcher = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
                    && String::from_utf8_lossy(&cmd).contains(&token2)
                {
                    seen2
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&cmd).replace('\0', " "));
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    // The secrets come from the environment, as CI passes them, never from roll's command line.
    write(
        s.dir.path(),
        "login.yml",
        "- hosts: app\n  tasks:\n    - community.docker.docker_login:\n        registry: \"{{ image | regex_replace('/.*', '') }}\"\n        username: ci\n        password: \"{{ lookup('env', 'ROLL_TEST_TOKEN') }}\"\n      environment: { DOCKER_CONFIG: \"{{ playbook_dir }}/docker-config\" }\n",
    );
    let mut login = roll(s.dir.path());
    login
        .args(["play", "login.yml", "-i", "hosts", "--known-hosts"])
        .arg(s.fleet.known_hosts());
    let login = login
        .args(["-e", &format!("image={}", s.image), "-v"])
        .env("ROLL_TEST_TOKEN", &token)
        .output()
        .unwrap();
    let human = play_env(&s, &["--diff", "-v"], &token);
    let json = play_env(&s, &["-e", "colour=red", "--format", "json", "--diff"], &token);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();
    assert_eq!(human.status.code(), Some(0), "{}", stdout(&human));
    assert_eq!(json.status.code(), Some(0), "{}", stdout(&json));
    assert_eq!(login.status.code(), Some(0), "{}", stdout(&login));
    for out in [&login, &human, &json] {
        assert!(
            !stdout(out).contains(&token) && !common::stderr(out).contains(&token),
            "{}",
            stdout(out)
        );
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.is_empty(),
        "the secret was in {} argument lists, first: {:?}",
        seen.len(),
        seen.first()
    );
    // The only file of roll's holding it is the env file, mode 0600.
    let home = std::env::var("HOME").unwrap();
    let env_file = Path::new(&home).join(".roll/env/web-sec001-a.env");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&env_file).unwrap().contains(&token));
    let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", "web-sec001-a"]);
    assert!(
        !String::from_utf8_lossy(&labels.stdout).contains(&token),
        "the secret is in a label"
    );
}

//! `roll run`, the ad-hoc command, against the real loopback sshd fleet and Docker: modules
//! through it in Ansible's ad-hoc layout (compared with ansible 2.19's), `-a` refused before any
//! host, `--check`, `--format json`, `-l`, and `docker logs -f` streamed from six hosts until
//! SIGINT, after which no ssh process and no remote command is left.

use crate::common;
use crate::common::docker as dockerfx;
use crate::common::fleet;

use common::{roll, stderr, stdout, write};
use fleet::Fleet;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn run(dir: &Path, f: &Fleet, args: &[&str]) -> Output {
    let mut c = roll(dir);
    c.args(["run"])
        .args(args)
        .args(["-i", "hosts", "--known-hosts"])
        .arg(f.known_hosts());
    c.output().unwrap()
}

fn setup(n: usize, prefix: &str) -> (Fleet, tempfile::TempDir) {
    let f = Fleet::up(n, prefix);
    let dir = tempfile::tempdir().unwrap();
    let inv = f
        .inventory()
        .replace("[fleet]", "[app]")
        .replace("[fleet:vars]", "[app:vars]");
    write(dir.path(), "hosts", &inv);
    (f, dir)
}

/// Output and exit code together, so a failure shows both.
fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

#[test]
fn modules_run_ad_hoc_in_ansibles_layout() {
    let (f, dir) = setup(3, "adh");
    let d = dir.path();

    // `-m` defaults to `command`, whose free form is not a shell line: as ansible prints it.
    let o = run(d, &f, &["app", "-a", "echo hi; uname"]);
    assert_eq!(
        stdout(&o),
        "adh001 | CHANGED | rc=0 >>\nhi; uname\nadh002 | CHANGED | rc=0 >>\nhi; uname\nadh003 | CHANGED | rc=0 >>\nhi; uname\n",
        "{}",
        shown(&o)
    );
    assert_eq!(o.status.code(), Some(0));

    // A failing shell line: stdout, stderr and msg back to back, as Ansible's minimal callback
    // joins them; exit 2 as `roll play`'s failed host. `-l` leaves the others out.
    let o = run(
        d,
        &f,
        &[
            "app",
            "-m",
            "shell",
            "-a",
            "echo hi; echo err >&2; exit 3",
            "-l",
            "adh002",
        ],
    );
    assert_eq!(
        stdout(&o),
        "adh002 | FAILED | rc=3 >>\nhierrnon-zero return code\n",
        "{}",
        shown(&o)
    );
    assert_eq!(o.status.code(), Some(2));

    // `-b` runs through sudo, as the user `--become-user` names.
    let o = run(d, &f, &["adh003", "-b", "--become-user", "nobody", "-a", "id -un"]);
    assert_eq!(stdout(&o), "adh003 | CHANGED | rc=0 >>\nnobody\n", "{}", shown(&o));

    // A JSON module: its result, keys sorted, four-space indent; `-o` on one line.
    let o = run(d, &f, &["adh001", "-m", "ping"]);
    assert_eq!(
        stdout(&o),
        "adh001 | SUCCESS => {\n    \"changed\": false,\n    \"ping\": \"pong\"\n}\n",
        "{}",
        shown(&o)
    );
    let o = run(d, &f, &["adh001", "-m", "ping", "-a", "{\"data\": \"x\"}", "-o"]);
    assert_eq!(
        stdout(&o),
        "adh001 | SUCCESS => {\"changed\": false,\"ping\": \"x\"}\n",
        "{}",
        shown(&o)
    );
    let o = run(d, &f, &["adh003", "-a", "echo a", "-o"]);
    assert_eq!(stdout(&o), "adh003 | CHANGED | rc=0 | (stdout) a\n", "{}", shown(&o));

    // `--check` changes nothing and says what would; the real run then makes it so. Variables
    // of the inventory, `-e` and the host's own render in `-a`.
    let target = d.join("made");
    let path = format!("{}/{{{{ inventory_hostname }}}}-{{{{ suffix }}}}", target.display());
    std::fs::create_dir_all(&target).unwrap();
    let touch = format!("path={path} state=touch");
    let o = run(
        d,
        &f,
        &["adh001", "-m", "file", "-a", &touch, "-e", "suffix=x", "--check"],
    );
    assert!(stdout(&o).starts_with("adh001 | CHANGED => {\n"), "{}", shown(&o));
    assert!(!target.join("adh001-x").exists(), "--check touched the file");
    let o = run(d, &f, &["adh001", "-m", "file", "-a", &touch, "-e", "suffix=x"]);
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert!(target.join("adh001-x").exists(), "{}", shown(&o));
    // `command` in check mode is skipped, as in Ansible, and runs nothing.
    let marker = d.join("ran");
    let o = run(
        d,
        &f,
        &[
            "adh001",
            "-m",
            "shell",
            "-a",
            &format!("touch {}", marker.display()),
            "-C",
        ],
    );
    assert_eq!(stdout(&o), "adh001 | SKIPPED\n", "{}", shown(&o));
    assert!(!marker.exists());

    // `--format json`: the events of `roll play`, one host result per host the limit keeps.
    let o = run(
        d,
        &f,
        &[
            "app",
            "-a",
            "echo {{ inventory_hostname }}",
            "--format",
            "json",
            "-l",
            "adh001:adh002",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    let events: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let hosts: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] == "host")
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["result"]["stdout"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        [("adh001".into(), "adh001".into()), ("adh002".into(), "adh002".into())]
    );
    assert_eq!(events.last().unwrap()["event"], "run_end");

    // A command still running after a second streams: `progress` events of kind `output`,
    // before the host's result (which has the whole output). A quick one does not.
    let o = run(
        d,
        &f,
        &[
            "adh002",
            "-m",
            "shell",
            "-a",
            "echo one; sleep 1.5; echo two >&2",
            "--format",
            "json",
        ],
    );
    let events: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "host" || e["kind"] == "output")
        .map(|e| match e["event"].as_str() {
            Some("host") => format!("host {}", e["result"]["stdout"].as_str().unwrap()),
            _ => format!("{} {} {}", e["host"], e["stream"], e["line"]),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "\"adh002\" \"stdout\" \"one\"",
            "\"adh002\" \"stderr\" \"two\"",
            "host one"
        ],
        "{}",
        shown(&o)
    );
    let o = run(d, &f, &["adh002", "-a", "echo quick", "--format", "json"]);
    assert!(!stdout(&o).contains("\"kind\":\"output\""), "{}", shown(&o));

    // A host that cannot be reached: Ansible's UNREACHABLE! layout and roll's exit 4.
    let port = common::free_port();
    write(
        d,
        "gone",
        &format!("[gone]\nghost ansible_host=127.0.0.1 ansible_port={port} ansible_user=root\n"),
    );
    let mut c = roll(d);
    c.args(["run", "gone", "-i", "gone", "-m", "ping", "--known-hosts"])
        .arg(f.known_hosts());
    let o = c.output().unwrap();
    assert!(stdout(&o).starts_with("ghost | UNREACHABLE! => {\n"), "{}", shown(&o));
    assert_eq!(o.status.code(), Some(4), "{}", shown(&o));
}

#[test]
fn bad_arguments_are_refused_before_any_host_naming_the_argument() {
    // No host answers: a run that touched one would say unreachable (exit 4), not refuse (5).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = common::free_port();
    write(
        d,
        "hosts",
        &format!(
            "[app]\nweb1 ansible_host=127.0.0.1 ansible_port={port}\nweb2 ansible_host=127.0.0.1 ansible_port={port}\n"
        ),
    );
    let refused = |args: &[&str], expected: &str| {
        let mut c = roll(d);
        c.arg("run").args(args).args(["-i", "hosts"]);
        let o = c.output().unwrap();
        assert_eq!(stderr(&o), expected, "{}", shown(&o));
        assert_eq!(o.status.code(), Some(5), "{}", shown(&o));
        assert_eq!(stdout(&o), "");
    };
    refused(
        &["app", "-m", "ping", "-a", "foo data=x"],
        "error: `-a`: `ping` takes `key=value` parameters, `foo` is not one
 --> command line:1:16
  |
1 | app -m ping -a foo data=x
  |                ^^^
  |
  = help: write `-m ping -a 'key=value ...'`, or a JSON mapping

error: aborting due to a previous error; nothing was run
",
    );
    refused(
        &["app", "-m", "shell", "-a", "echo 'unclosed"],
        "error: `-a`: the quote `'` is never closed
 --> command line:1:22
  |
1 | app -m shell -a echo 'unclosed
  |                      ^
  |
  = help: close the quote, or quote the whole `-a` value for your shell: `-a 'msg=\"two words\"'`

error: aborting due to a previous error; nothing was run
",
    );
    refused(
        &["app", "-m", "pong"],
        "error: unknown module or task keyword `pong`
 --> command line:1:8
  |
1 | app -m pong
  |        ^^^^
  |
  = help: did you mean `ping`?

error: aborting due to a previous error; nothing was run
",
    );
    refused(
        &["ap", "-m", "ping"],
        "error: invalid `hosts` in play: pattern `ap` matches no host (did you mean `app`?)
 --> command line:1:1
  |
1 | ap -m ping
  | ^^
  |
  = help: `roll inventory -i INV --graph` lists the groups and hosts

error: aborting due to a previous error; nothing was run
",
    );
    // A parameter the module does not have, under its key in `-a`; Jinja blocks stay whole.
    refused(
        &["app", "-m", "file", "-a", "path=/tmp/{{ 'a b' }} stat=touch"],
        "error: unknown parameter `stat` for module `file`
 --> command line:1:38
  |
1 | app -m file -a path=/tmp/{{ 'a b' }} stat=touch
  |                                      ^^^^
  |
  = help: did you mean `state`?

error: aborting due to a previous error; nothing was run
",
    );
    refused(
        &["app", "-m", "file", "-a", "path={{ x"],
        "error: `-a`: this Jinja block is never closed
 --> command line:1:21
  |
1 | app -m file -a path={{ x
  |                     ^^
  |
  = help: close it with `}}` (or `%}`, `#}`)

error: aborting due to a previous error; nothing was run
",
    );
}

/// An image with a shell and `sleep` from this machine (nothing pulled), for containers that
/// print a line now and then.
fn ticker_image(tag: &str, label: &str) {
    let script = r#"set -eu
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin"
for b in /bin/dash /bin/sleep; do
  cp -L "$b" "$root/bin/"
  for lib in $(ldd "$b" | grep -o '/[^ ]*'); do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
done
ln -s dash "$root/bin/sh"
tar -C "$root" -c . | docker import -c "LABEL $2" -c 'ENTRYPOINT ["/bin/sh", "-c"]' - "$1" >/dev/null
"#;
    let o = std::process::Command::new("bash")
        .args(["-c", script, "ticker", tag, label])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ticker image: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Processes whose command line contains `needle`, with it.
fn processes_with(needle: &str, argv0_suffix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let line = args.join(" ");
        if args.first().is_some_and(|a| a.ends_with(argv0_suffix)) && line.contains(needle) {
            found.push(format!("{}: {line}", e.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn docker_logs_follow_streams_from_six_hosts_and_stops_on_sigint() {
    let label = format!("roll.test=adhoc-{}", std::process::id());
    let _cleanup = dockerfx::Cleanup(label.clone());
    let image = format!("roll-ticker:adhoc-{}", std::process::id());
    ticker_image(&image, &label);
    let (f, dir) = setup(6, "tick");
    let d = dir.path();
    let (k, v) = label.split_once('=').unwrap();
    let name = format!("tick{}-{{{{ inventory_hostname }}}}", std::process::id());

    // docker_container through `roll run`, its arguments a JSON mapping.
    let args = format!(
        r#"{{"name": "{name}", "image": "{image}", "labels": {{"{k}": "{v}"}}, "command": ["i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done"]}}"#
    );
    let o = run(d, &f, &["app", "-m", "docker_container", "-a", &args, "-o"]);
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert_eq!(stdout(&o).matches(" | CHANGED => ").count(), 6, "{}", shown(&o));
    let o = run(d, &f, &["app", "-m", "docker_container", "-a", &args, "-o"]);
    assert_eq!(
        stdout(&o).matches(" | SUCCESS => ").count(),
        6,
        "unchanged the second time: {}",
        shown(&o)
    );

    let mut c = roll(d);
    c.args([
        "run",
        "app",
        "-a",
        &format!("docker logs -f {name}"),
        "-i",
        "hosts",
        "--known-hosts",
    ])
    .arg(f.known_hosts());
    let mut w = common::Watched::spawn(c);
    // Lines arrive while the command runs, each with its host: from every host, and from each
    // a later tick than the one it showed first.
    for h in 1..=6 {
        w.wait_for(&format!("tick00{h} | tick "));
    }
    let seen_first = Instant::now();
    let later = |host: &str, w: &mut common::Watched| {
        w.wait_for(&format!("{host} | tick "));
    };
    later("tick001", &mut w);
    later("tick006", &mut w);
    assert!(seen_first.elapsed() < Duration::from_secs(30));
    let pid = w.pid();
    // SAFETY: kill(2) on the child this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let (code, out, err) = w.finish();
    assert_eq!(code, Some(130), "stdout:\n{out}\nstderr:\n{err}");
    for line in out.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("tick00") && line.contains(" | tick "),
            "a line without its host prefix: {line:?}"
        );
    }
    // Within 5 s: no ssh process to the fleet, no `docker logs -f` left on the hosts.
    let deadline = Instant::now() + Duration::from_secs(5);
    let fleet_net = format!("{}.", f.net);
    let follow = format!("logs -f tick{}-", std::process::id());
    loop {
        let ssh = processes_with(&fleet_net, "ssh");
        let remote = processes_with(&follow, "docker");
        if ssh.is_empty() && remote.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind 5 s after SIGINT:\n{}\n{}",
            ssh.join("\n"),
            remote.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Removed through `roll run` too (the guard removes what a failure left).
    let absent = format!(r#"{{"name": "{name}", "state": "absent"}}"#);
    let o = run(d, &f, &["app", "-m", "docker_container", "-a", &absent, "-o"]);
    assert_eq!(stdout(&o).matches(" | CHANGED => ").count(), 6, "{}", shown(&o));
    dockerfx::docker(&["image", "rm", "-f", &image]);
}

#[test]
fn without_dash_i_the_inventory_sources_of_ansible_cfg_are_read_and_merged() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "ansible.cfg", "[defaults]\ninventory = web.ini,db.ini\n");
    write(d.path(), "web.ini", "[web]\nweb1 ansible_connection=local\n");
    write(d.path(), "db.ini", "[db]\ndb1 ansible_connection=local\n");
    let out = roll(d.path()).args(["run", "all", "-m", "ping"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    for host in ["web1", "db1"] {
        assert!(text.contains(&format!("{host} | SUCCESS")), "{}", shown(&out));
    }
    // Two `-i` are merged in order, as `roll play` merges them.
    let out = roll(d.path())
        .args(["run", "db", "-i", "web.ini", "-i", "db.ini", "-m", "ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        stdout(&out).contains("db1 | SUCCESS") && !stdout(&out).contains("web1"),
        "{}",
        shown(&out)
    );
}

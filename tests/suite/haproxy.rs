//! `community.general.haproxy` against a real haproxy (Debian package `haproxy`) and its admin
//! socket: the module's results are ansible-core's for the same cases (tests/modules/haproxy),
//! and a rolling update that takes each backend out of haproxy, replaces it and puts it back
//! loses no request sent through haproxy meanwhile.

use crate::common::fleet::Fleet;
use crate::common::load::{Load, get};
use crate::common::{free_port, oracle, roll, stderr, stdout, write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn need_haproxy() {
    assert!(
        Path::new("/usr/sbin/haproxy").exists(),
        "this test needs haproxy: install the Debian package `haproxy`"
    );
    assert!(
        Path::new("/usr/bin/socat").exists(),
        "this test needs socat (the haproxy module talks to the socket with it): install the Debian package `socat`"
    );
}

/// A server's status while its check counts towards a change (`UP 1/3`) is the status itself:
/// when haproxy's 200 ms check lands between two looks differs from run to run.
fn normalised(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    for k in ["state_before", "state_after"] {
        if let Some(list) = v.get_mut(k).and_then(|s| s.as_array_mut()) {
            for s in list {
                let st = s["status"].as_str().unwrap_or("").to_string();
                if let Some((word, _)) = st.split_once(' ') {
                    s["status"] = serde_json::Value::from(word);
                }
            }
        }
    }
    v
}

#[test]
fn every_case_registers_what_ansible_registered() {
    need_haproxy();
    let played = oracle::play("haproxy");
    let want: Vec<_> = played.want.iter().map(normalised).collect();
    let got: Vec<_> = played.got.iter().map(normalised).collect();
    oracle::assert_same(&want, &got);
}

/// haproxy in the foreground, stopped when dropped, and the backends' processes (their pid
/// files) killed with it.
struct Rig {
    haproxy: Child,
    dir: std::path::PathBuf,
    names: Vec<String>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.haproxy.kill();
        let _ = self.haproxy.wait();
        for n in &self.names {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(n).join("pid")) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

fn socket_stat(sock: &Path) -> String {
    let out = Command::new("socat")
        .args(["-t", "2", "-", &format!("UNIX-CONNECT:{}", sock.display())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"show stat\n")?;
            c.wait_with_output()
        });
    // Not listening yet (socat gone before it read the command): nothing to show.
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The status column of the server `sv` of backend `web`.
fn status_of(sock: &Path, sv: &str) -> String {
    let stat = socket_stat(sock);
    let header: Vec<&str> = stat
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    // Not answering yet: no status.
    let Some(col) = header.iter().position(|h| *h == "status") else {
        return String::new();
    };
    stat.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"web") && f.get(1) == Some(&sv))
        .map(|f| f[col].to_string())
        .unwrap_or_default()
}

#[test]
fn a_rolling_update_through_haproxy_loses_no_request() {
    need_haproxy();
    let fleet = Fleet::up(3, "hp");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let names = ["hp002".to_string(), "hp003".to_string()];
    let ports = [free_port(), free_port()];
    // A backend: python's http.server answering `VERSION NAME`, replaced by the same script
    // (the old process stopped first, so a request routed to it would fail).
    write(
        &dir,
        "start-backend",
        "#!/bin/sh\nset -e\nd=$1; port=$2; version=$3\nmkdir -p \"$d/www\"\n\
         if [ -f \"$d/pid\" ]; then kill \"$(cat \"$d/pid\")\" 2>/dev/null || true; \
         while kill -0 \"$(cat \"$d/pid\")\" 2>/dev/null; do sleep 0.05; done; fi\n\
         printf '%s %s\\n' \"$version\" \"$(basename \"$d\")\" > \"$d/www/index.html\"\n\
         setsid python3 -m http.server \"$port\" --bind 127.0.0.1 --directory \"$d/www\" \
         >\"$d/log\" 2>&1 </dev/null &\necho $! > \"$d/pid\"\n",
    );
    let script = dir.join("start-backend");
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    for (n, p) in names.iter().zip(ports) {
        let ok = Command::new(&script)
            .arg(dir.join(n))
            .args([&p.to_string(), "v1"])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let front = free_port();
    let sock = dir.join("admin.sock");
    write(
        &dir,
        "haproxy.cfg",
        &format!(
            "global\n  stats socket {sock} level admin\ndefaults\n  mode http\n  retries 0\n  timeout connect 1s\n  \
             timeout client 5s\n  timeout server 5s\nfrontend web\n  bind 127.0.0.1:{front}\n  default_backend web\n\
             backend web\n  balance roundrobin\n  server hp002 127.0.0.1:{p0} check inter 100ms fall 1 rise 1\n  \
             server hp003 127.0.0.1:{p1} check inter 100ms fall 1 rise 1\n",
            sock = sock.display(),
            p0 = ports[0],
            p1 = ports[1],
        ),
    );
    // `retries 0`: haproxy does not resend a request a stopped backend refused (its retries
    // wait a second, long enough for the new backend to come up and hide the failure).
    let haproxy = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(dir.join("haproxy.cfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rig = Rig {
        haproxy,
        dir: dir.clone(),
        names: names.to_vec(),
    };
    let addr = format!("127.0.0.1:{front}");
    let begin = Instant::now();
    while !(status_of(&sock, "hp002") == "UP" && status_of(&sock, "hp003") == "UP" && get(&addr, "/").is_ok()) {
        assert!(begin.elapsed() < Duration::from_secs(10), "haproxy did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }

    let inventory = format!(
        "{}\n[lb]\nhp001\n\n[app]\nhp002 port={}\nhp003 port={}\n",
        fleet.inventory(),
        ports[0],
        ports[1]
    );
    write(&dir, "hosts", &inventory);
    write(
        &dir,
        "update.yml",
        "- hosts: app\n  serial: 1\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Take the backend out of haproxy\n\
         \x20     community.general.haproxy:\n\
         \x20       { state: disabled, host: \"{{ inventory_hostname }}\", backend: web, socket: \"{{ sock }}\", drain: true, wait: true, wait_interval: 1 }\n\
         \x20     delegate_to: \"{{ groups.lb[0] }}\"\n\
         \x20   - name: Update it\n\
         \x20     command: \"{{ dir }}/start-backend {{ dir }}/{{ inventory_hostname }} {{ port }} v2\"\n\
         \x20   - wait_for: { host: 127.0.0.1, port: \"{{ port }}\" }\n\
         \x20   - name: Put it back\n\
         \x20     haproxy: { state: enabled, host: \"{{ inventory_hostname }}\", backend: web, socket: \"{{ sock }}\", wait: true, wait_interval: 1 }\n\
         \x20     delegate_to: \"{{ groups.lb[0] }}\"\n",
    );
    let play = |extra: &[&str]| {
        let out = roll(&dir)
            .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
            .args(["play", "update.yml", "-i", "hosts"])
            .args(["-e", &format!("sock={} dir={}", sock.display(), dir.display())])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };

    // A dry run says what would change and changes nothing.
    let dry = play(&["--check"]);
    assert!(dry.contains("changed: [hp002 -> hp001]"), "{dry}");
    assert_eq!(status_of(&sock, "hp002"), "UP");

    let load = Load::start(&addr, Instant::now(), 4, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let run = play(&[]);
    std::thread::sleep(Duration::from_millis(500));
    let seen = load.stop();
    let failed: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(seen.len() > 100, "only {} requests went through", seen.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}\n{run}",
        failed.len(),
        seen.len(),
        failed.first()
    );
    // Both backends were replaced and serve again.
    let last: Vec<&str> = seen[seen.len() - 20..]
        .iter()
        .filter_map(|(_, r)| r.as_deref().ok())
        .collect();
    for n in &names {
        assert!(last.contains(&format!("v2 {n}").as_str()), "{last:?}");
    }
    for n in &names {
        let v1 = format!("v1 {n}");
        assert!(
            seen.iter().any(|(_, r)| r.as_deref() == Ok(v1.as_str())),
            "{n} never served v1"
        );
    }
    assert!(run.contains("changed: [hp003 -> hp001]"), "{run}");
    assert_eq!(status_of(&sock, "hp003"), "UP");
    drop(rig);
}

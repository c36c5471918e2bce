//! roll over real SSH: a loopback fleet of sshd processes (scripts/fleet), strict host keys,
//! remote modules, check/diff, become, and faults produced for real (hosts dying before and
//! during a play, a wrong host key, a hung command, a killed master connection).

use crate::common;
use crate::common::fleet;

use common::{recap, roll, stderr, stdout, write};
use fleet::Fleet;
use std::path::Path;
use std::process::Output;

/// Inventory text of a fleet with its group renamed.
fn group(f: &Fleet, name: &str) -> String {
    f.inventory()
        .replace("[fleet]", &format!("[{name}]"))
        .replace("[fleet:vars]", &format!("[{name}:vars]"))
}

/// One known_hosts file in `dir` for the hosts of several fleets.
fn known_hosts_of(dir: &Path, fleets: &[&Fleet]) -> std::path::PathBuf {
    let kh = dir.join("known_hosts");
    let keys: String = fleets
        .iter()
        .map(|f| std::fs::read_to_string(f.known_hosts()).unwrap())
        .collect();
    std::fs::write(&kh, keys).unwrap();
    kh
}

fn play(dir: &Path, known_hosts: &Path, extra: &[&str]) -> Output {
    let mut c = roll(dir);
    // A local task must not see the test runner's own ssh session.
    c.env_remove("SSH_CONNECTION");
    c.args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(known_hosts)
        .args(extra);
    c.output().unwrap()
}

const REMOTE: &str = r#"
- hosts: app
  serial: 2
  vars:
    root: "{{ base }}/{{ inventory_hostname }}"
  tasks:
    - file: { path: "{{ root }}/etc", state: directory, mode: "0750" }
    - template: { src: app.j2, dest: "{{ root }}/etc/app.conf", mode: "0640" }
      notify: restart
    - copy: { content: "release={{ release }}\n", dest: "{{ root }}/etc/release" }
    - file: { src: etc, path: "{{ root }}/current", state: link }
    - shell: echo "$SSH_CONNECTION" | cut -d' ' -f3
      register: addr
      changed_when: false
      check_mode: false
    - assert: { that: ["addr.stdout == ansible_host"] }
    - command: id -un
      become: true
      become_user: nobody
      register: who
      changed_when: false
      check_mode: false
    - assert: { that: ["who.stdout == 'nobody'"] }
    - shell: echo "$SSH_CONNECTION" | cut -d' ' -f3
      delegate_to: app001
      run_once: true
      register: first
      changed_when: false
      check_mode: false
    - assert: { that: ["first.stdout == hostvars['app001'].ansible_host"] }
  handlers:
    - name: restart
      copy: { content: "restarted\n", dest: "{{ root }}/restarted" }
"#;

#[test]
fn modules_handlers_serial_become_delegate_and_check_diff_over_ssh() {
    let f = Fleet::up(3, "app");
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("hosts-fs");
    write(d.path(), "hosts", &group(&f, "app"));
    write(d.path(), "pb.yml", REMOTE);
    write(
        d.path(),
        "templates/app.j2",
        "name={{ inventory_hostname }}\naddr={{ ansible_host }}\n",
    );
    let base_arg = format!("base={}", base.display());
    std::fs::create_dir_all(&base).unwrap();
    let before = common::tree(&base);
    let check = play(
        d.path(),
        &f.known_hosts(),
        &["--check", "--diff", "-e", &base_arg, "-e", "release=1"],
    );
    assert_eq!(check.status.code(), Some(0), "{}{}", stdout(&check), stderr(&check));
    assert_eq!(common::tree(&base), before, "--check changed files over ssh");
    let real = play(
        d.path(),
        &f.known_hosts(),
        &["--diff", "-e", &base_arg, "-e", "release=1"],
    );
    let text = stdout(&real);
    assert_eq!(real.status.code(), Some(0), "{text}{}", stderr(&real));
    let diffs = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with(['+', '-', '@']))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(diffs(&stdout(&check)), diffs(&text));
    assert_eq!(
        text.matches("RUNNING HANDLER [restart]").count(),
        2,
        "one flush per serial batch: {text}"
    );
    assert!(
        text.contains("[app001 -> app001]") || text.contains("ok: [app001]"),
        "{text}"
    );
    let conf = std::fs::read_to_string(base.join("app002/etc/app.conf")).unwrap();
    assert_eq!(conf, format!("name=app002\naddr={}.0.2\n", f.net));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(base.join("app003/etc/app.conf"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    let again = play(d.path(), &f.known_hosts(), &["-e", &base_arg, "-e", "release=1"]);
    for line in recap(&stdout(&again)) {
        assert!(line.contains("changed=0 "), "second run changed something: {line}");
    }
}

#[test]
fn a_host_that_dies_before_or_during_the_play_is_unreachable_and_the_others_finish() {
    let alive = Fleet::up(2, "app");
    let doomed = Fleet::up(1, "db");
    let gone = Fleet::up(1, "old");
    gone.kill();
    let d = tempfile::tempdir().unwrap();
    let inv = format!(
        "{}\n{}\n{}",
        group(&alive, "app"),
        group(&doomed, "db"),
        group(&gone, "old")
    );
    write(d.path(), "hosts", &inv);
    let kh = known_hosts_of(d.path(), &[&alive, &doomed, &gone]);
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: \"true\"\n    - command: sleep 3\n    - command: echo finished\n",
    );
    let mut cmd = roll(d.path());
    cmd.args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(&kh)
        .args(["--connect-timeout", "3"]);
    let mut run = common::Watched::spawn(cmd);
    // While every host runs `sleep 3` (the second task), db001 dies.
    run.wait_for("TASK [command]");
    run.wait_for("TASK [command]");
    std::thread::sleep(std::time::Duration::from_millis(500));
    doomed.kill();
    let (code, text, _) = run.finish();
    assert_eq!(code, Some(4), "{text}");
    assert!(text.contains("fatal: [old001]: UNREACHABLE!"), "{text}");
    assert!(text.contains("fatal: [db001]: UNREACHABLE!"), "{text}");
    let r = recap(&text);
    let line = |h: &str| r.iter().find(|l| l.starts_with(h)).unwrap().clone();
    assert!(
        line("app001").contains("ok=3 ") && line("app002").contains("unreachable=0"),
        "{r:?}"
    );
    assert!(line("db001").contains("unreachable=1"), "{r:?}");
    assert!(
        line("old001").contains("ok=0 ") && line("old001").contains("unreachable=1"),
        "{r:?}"
    );
}

#[test]
fn an_unreachable_host_in_a_rescued_block_still_stops_an_any_errors_fatal_play() {
    // The deploy's shape: start the release in a block whose rescue undoes it, then switch.
    // A host that cannot be reached is not rescued; under any_errors_fatal the run must still
    // stop before the switch, or the proxy would point at a host that never started.
    let alive = Fleet::up(1, "app");
    let gone = Fleet::up(1, "gone");
    gone.kill();
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "hosts",
        &format!("{}\n{}", group(&alive, "app"), group(&gone, "gone")),
    );
    let kh = known_hosts_of(d.path(), &[&alive, &gone]);
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: app:gone
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - block:
        - command: echo started
      rescue:
        - command: echo rescued
    - command: echo after the block
- hosts: app
  tasks:
    - command: echo switched
"#,
    );
    let out = play(d.path(), &kh, &["--connect-timeout", "3", "-v"]);
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("fatal: [gone001]: UNREACHABLE!"), "{text}");
    assert!(text.contains(r#""stdout": "started""#), "{text}");
    assert!(
        !text.contains(r#""stdout": "after the block""#),
        "the play went on past the block: {text}"
    );
    assert!(!text.contains(r#""stdout": "switched""#), "the next play ran: {text}");
    assert!(
        !text.contains(r#""stdout": "rescued""#),
        "an unreachable host was rescued: {text}"
    );
}

/// `roll play pb.yml` on the fleet in `d`, through `sh -c "ULIMIT && exec roll ..."`.
fn play_under(ulimit: &str, d: &std::path::Path, f: &Fleet, extra: &[&str]) -> std::process::Output {
    std::process::Command::new("sh")
        .current_dir(d)
        .env("NO_COLOR", "1")
        .args(["-c", &format!("{ulimit} && exec \"$0\" \"$@\"")])
        .arg(common::roll_bin())
        .args(["play", "pb.yml", "-i", "hosts"])
        .args(extra)
        .arg("--known-hosts")
        .arg(f.known_hosts())
        .output()
        .unwrap()
}

/// Every one of `hosts` hosts ran `ok` tasks with no failure and nothing unreachable.
fn all_hosts_ok(out: &std::process::Output, hosts: usize, ok: usize) {
    let text = stdout(out) + &stderr(out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(recap(&text).len(), hosts, "{text}");
    let want = format!("ok={ok} ");
    assert!(
        recap(&text)
            .iter()
            .all(|l| l.contains(&want) && l.contains("unreachable=0") && l.contains("failed=0")),
        "{text}"
    );
}

#[test]
fn a_play_on_more_hosts_than_the_soft_descriptor_limit_allows_still_runs() {
    // Open connections hold about five descriptors per host; 40 hosts need more than a soft
    // limit of 100. roll raises its soft limit to the hard one (1,024 is a common soft limit,
    // and a 500-host play needs 2,500).
    let f = Fleet::up(40, "app");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", &group(&f, "app"));
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  gather_facts: false\n  tasks:\n    - command: \"true\"\n    - command: \"true\"\n",
    );
    all_hosts_ok(&play_under("ulimit -Sn 100", d.path(), &f, &[]), 40, 2);
}

#[test]
fn a_play_on_more_hosts_than_the_hard_descriptor_limit_holds_masters_for_runs_without_a_failure() {
    // 60 hosts under a hard limit of 128 descriptors: roll holds at most what the limit
    // allows (16 masters here) and closes idle ones for the next hosts.
    let f = Fleet::up(60, "app");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", &group(&f, "app"));
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  gather_facts: false\n  tasks:\n    - command: \"true\"\n    - shell: echo two\n    - command: \"true\"\n",
    );
    all_hosts_ok(&play_under("ulimit -n 128", d.path(), &f, &["-f", "10"]), 60, 3);
    // More forks than the limit can hold masters for: said before connecting.
    let out = play_under("ulimit -n 128", d.path(), &f, &["-f", "50"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(text.contains("lower -f or raise ulimit -n"), "{text}");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn a_wrong_host_key_is_refused_with_a_way_out() {
    let f = Fleet::up(2, "app");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", &group(&f, "app"));
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  gather_facts: false\n  tasks:\n    - command: \"true\"\n",
    );
    // app001's key in known_hosts is some other host's key.
    let other = d.path().join("other");
    assert!(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other)
            .status()
            .unwrap()
            .success()
    );
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let fake: Vec<String> = std::fs::read_to_string(f.known_hosts())
        .unwrap()
        .lines()
        .map(|l| {
            if l.contains(&format!("{}.0.1]", f.net)) {
                format!(
                    "{} {}",
                    l.split(' ').next().unwrap(),
                    other_pub.split(' ').take(2).collect::<Vec<_>>().join(" ")
                )
            } else {
                l.to_string()
            }
        })
        .collect();
    let kh = d.path().join("known_hosts");
    std::fs::write(&kh, fake.join("\n") + "\n").unwrap();
    let out = play(d.path(), &kh, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("fatal: [app001]: UNREACHABLE!"), "{text}");
    assert!(text.contains("host key of `app001`"), "{text}");
    assert!(text.contains("--accept-new-host-keys"), "{text}");
    // A changed key: the file and line ssh found it at, and a fix that replaces it rather
    // than one that would append a second key.
    let kh_shown = format!("has changed since it was recorded in {}:", kh.display());
    assert!(text.contains(&kh_shown), "{text}");
    assert!(text.contains(&format!("-f {}", kh.display())), "{text}");
    assert!(text.contains("ssh-keygen -R"), "{text}");
    assert!(!text.contains("ssh-keyscan"), "{text}");
    assert!(
        recap(&text)
            .iter()
            .any(|l| l.starts_with("app002") && l.contains("ok=1 ")),
        "{text}"
    );
    // An unknown host is refused too unless new keys are accepted explicitly, naming the
    // file it is not in.
    let empty = d.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let unknown = play(d.path(), &empty, &[]);
    let text = stdout(&unknown);
    assert_eq!(unknown.status.code(), Some(4), "{text}");
    assert!(
        text.contains(&format!("is unknown: it is not in {}", empty.display())),
        "{text}"
    );
    let accepted = play(d.path(), &empty, &["--accept-new-host-keys"]);
    assert_eq!(accepted.status.code(), Some(0), "{}", stdout(&accepted));
}

#[test]
fn a_hung_command_is_killed_on_the_host_and_a_killed_master_reconnects() {
    let f = Fleet::up(2, "app");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", &group(&f, "app"));
    let marker = format!("roll-hang-{}", std::process::id());
    write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: app\n  tasks:\n    - shell: sleep 300 && echo {marker}\n      timeout: 2\n      ignore_errors: true\n    - pause: {{ seconds: 2 }}\n    - command: echo after\n      register: after\n    - assert: {{ that: [\"after.stdout == 'after'\"] }}\n"
        ),
    );
    let mut cmd = roll(d.path());
    cmd.args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(f.known_hosts());
    let mut run = common::Watched::spawn(cmd);
    // During the pause, kill roll's ssh master processes for this fleet.
    run.wait_for("TASK [pause]");
    let killed = kill_masters_of(&f);
    let (code, text, _) = run.finish();
    assert_eq!(killed, 2, "expected one master connection per host");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        text.matches("command timed out after 2 s and was killed").count(),
        2,
        "{text}"
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "the hung command still runs on the host");
}

/// Kill the local ssh processes connected to this fleet (roll's masters); returns how many.
fn kill_masters_of(f: &Fleet) -> usize {
    let out = std::process::Command::new("ss")
        .args(["-Htnp", "state", "established"])
        .output()
        .expect("ss (iproute2)");
    let mut pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            // Only connections whose peer is one of this fleet's addresses and its port.
            let peer = l.split_whitespace().rev().nth(1).unwrap_or("");
            peer.starts_with(&format!("{}.", f.net))
                && peer.ends_with(&format!(":{}", f.port))
                && l.contains("((\"ssh\"")
        })
        .filter_map(|l| {
            l.split("pid=")
                .nth(1)
                .map(|p| p.split(',').next().unwrap_or("").to_string())
        })
        .collect();
    pids.sort();
    pids.dedup();
    for p in &pids {
        let _ = std::process::Command::new("kill").args(["-9", p]).status();
    }
    pids.len()
}

#[test]
fn arbitrary_strings_cross_ssh_byte_exact() {
    let f = Fleet::up(1, "app");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", &group(&f, "app"));
    let out_file = d.path().join("copied");
    write(
        d.path(),
        "pb.yml",
        &format!(
            r#"
- hosts: app
  vars:
    nasty: "it's \"q\" $(echo no) `echo no` ; | & > < * ? ~ \\ \n second line\ttab ünï ☃ 🚀"
  tasks:
    - command: printf %s {{{{ nasty | quote }}}}
      register: a
    - command:
        argv: [printf, "%s", "{{{{ nasty }}}}"]
      register: b
    - shell: printf %s {{{{ nasty | quote }}}}
      register: c
    - copy: {{ content: "{{{{ nasty }}}}", dest: "{}" }}
    - assert: {{ that: ["a.stdout == nasty", "b.stdout == nasty", "c.stdout == nasty"] }}
"#,
            out_file.display()
        ),
    );
    let out = play(d.path(), &f.known_hosts(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(out_file).unwrap(),
        "it's \"q\" $(echo no) `echo no` ; | & > < * ? ~ \\ \n second line\ttab ünï ☃ 🚀"
    );
}

/// The local ssh processes connected to this fleet (masters, and any client of theirs).
fn ssh_processes_of(f: &Fleet) -> Vec<u32> {
    common::resources::processes_mentioning(&format!("{}.", f.net))
}

/// Waits up to 5 s for every ssh process to the fleet to exit; the ones left, with their
/// command lines.
fn left_after_5_s(f: &Fleet) -> Vec<String> {
    let t0 = std::time::Instant::now();
    loop {
        let left = ssh_processes_of(f);
        if left.is_empty() || t0.elapsed() > std::time::Duration::from_secs(5) {
            return left
                .iter()
                .map(|p| {
                    let c = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    format!("{p}: {}", String::from_utf8_lossy(&c).replace('\0', " "))
                })
                .collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn masters_exit_within_seconds_of_roll_being_killed() {
    let f = Fleet::up(2, "app");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", &group(&f, "app"));
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  tasks:\n    - command: \"true\"\n    - command: sleep 30\n",
    );
    let mut cmd = roll(d.path());
    cmd.args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(f.known_hosts());
    let mut run = common::Watched::spawn(cmd);
    run.wait_for("TASK [command]");
    run.wait_for("TASK [command]");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        ssh_processes_of(&f).len() >= 2,
        "no master per host while the play runs"
    );
    signal(run.pid(), "-KILL");
    let _ = run.finish();
    let left = left_after_5_s(&f);
    assert!(
        left.is_empty(),
        "ssh processes outlived a killed roll by 5 s: {left:#?}"
    );
}

#[test]
fn a_second_ctrl_c_releases_the_deploy_lock_and_closes_the_masters() {
    let f = Fleet::up(1, "proxy");
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    write(d.path(), "hosts", &group(&f, "proxy"));
    write(
        d.path(),
        "pb.yml",
        "- hosts: proxy\n  tasks:\n    - roll.deploy_lock: { app: web, dir: \"{{ state }}\" }\n    - command: sleep 30\n",
    );
    let mut cmd = roll(d.path());
    cmd.args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(f.known_hosts())
        .arg("-e")
        .arg(format!("state={}", state.display()));
    let mut run = common::Watched::spawn(cmd);
    run.wait_for("TASK [command]");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let lock = state.join("web.lock");
    assert!(lock.exists(), "the play holds the lock");
    signal(run.pid(), "-INT");
    // Two signals close together are one to a signal handler: let the first be seen.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    signal(run.pid(), "-INT");
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(130), "{out}{err}");
    assert!(!lock.exists(), "an aborted run left its deploy lock: {out}{err}");
    let audit = std::fs::read_to_string(state.join("audit.log")).unwrap();
    assert!(audit.contains("lock released"), "{audit}");
    let left = left_after_5_s(&f);
    assert!(
        left.is_empty(),
        "ssh processes outlived an aborted roll by 5 s: {left:#?}"
    );
}

#[test]
fn masters_outlive_a_pause_longer_than_their_idle_time_in_a_private_control_directory() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fleet::up(2, "app");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", &group(&f, "app"));
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  tasks:\n    - command: \"true\"\n    - pause: { seconds: 8 }\n    - command: \"true\"\n",
    );
    let mut cmd = roll(d.path());
    cmd.args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(f.known_hosts());
    let mut run = common::Watched::spawn(cmd);
    run.wait_for("TASK [pause]");
    let mut at_start = ssh_processes_of(&f);
    at_start.sort();
    assert_eq!(at_start.len(), 2, "one master per host");
    // Every directory on the way to a control socket, below /tmp, is the user's alone.
    for pid in &at_start {
        let c = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).into_owned();
        let args: Vec<&str> = c.split('\0').collect();
        let socket = args
            .iter()
            .position(|a| *a == "-S")
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| panic!("a master without -S: {args:?}"));
        let mut dir = Path::new(socket).parent();
        while let Some(p) = dir.filter(|p| *p != Path::new("/tmp") && *p != Path::new("/")) {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{} is {mode:o}", p.display());
            dir = p.parent();
        }
    }
    // Well past the masters' idle time, still the same masters.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let mut later = ssh_processes_of(&f);
    later.sort();
    assert_eq!(later, at_start, "a master exited or was replaced during the pause");
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(0), "{out}{err}");
}

/// Connection variables given with `-e` win over the inventory's for every host, as extra vars
/// do in Ansible (`-e ansible_connection=local` is the common case).
#[test]
fn connection_variables_given_with_extra_vars_win_over_the_inventory() {
    let f = Fleet::up(2, "app");
    let d = tempfile::tempdir().unwrap();
    // The inventory's port is one nothing listens on: only `-e ansible_port` reaches the fleet.
    write(
        d.path(),
        "hosts",
        &group(&f, "app").replace(&format!("ansible_port={}", f.port), "ansible_port=1"),
    );
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  gather_facts: false\n  tasks:\n    - shell: echo \"${SSH_CONNECTION:-local}\" | cut -d' ' -f3\n      register: addr\n      changed_when: false\n    - assert: { that: [\"addr.stdout == want\"] }\n",
    );
    let first = format!("{}.0.1", f.net);
    let kh = f.known_hosts();
    let o = play(d.path(), &kh, &["-e", "want=none"]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));

    let port = format!("ansible_port={}", f.port);
    let o = play(
        d.path(),
        &kh,
        &["-e", &port, "-e", &format!("ansible_host={first} want={first}")],
    );
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    assert_eq!(recap(&text).len(), 2, "{text}");
    assert!(recap(&text).iter().all(|l| l.contains("ok=2")), "{text}");

    // The inventory's `ansible_user=root` loses to `-e ansible_user`.
    let o = play(
        d.path(),
        &kh,
        &["-e", &port, "-e", "ansible_user=roll-no-such-user want=x"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));

    // A play's `vars` are the host's variables too: its `ansible_port` wins over the inventory's.
    write(
        d.path(),
        "vars.yml",
        &std::fs::read_to_string(d.path().join("pb.yml")).unwrap().replacen(
            "  gather_facts: false\n",
            &format!(
                "  gather_facts: false\n  vars: {{ ansible_port: {}, want: \"{{{{ ansible_host }}}}\" }}\n",
                f.port
            ),
            1,
        ),
    );
    let o = {
        let mut c = roll(d.path());
        c.env_remove("SSH_CONNECTION")
            .args(["play", "vars.yml", "-i", "hosts", "--known-hosts"])
            .arg(&kh);
        c.output().unwrap()
    };
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));

    // `-e ansible_connection=local`: no host is connected to (the port stays unreachable).
    let o = play(d.path(), &kh, &["-e", "ansible_connection=local want=local"]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    assert!(recap(&text).iter().all(|l| l.contains("ok=2")), "{text}");
}

/// `remote_user` and `port` at play, block and task level: used where the host's variables name
/// no user or port, and losing to them where they do (Ansible: variables beat keywords).
#[test]
fn remote_user_and_port_keywords_connect_below_the_hosts_own_variables() {
    let f = Fleet::up(2, "app");
    let d = tempfile::tempdir().unwrap();
    // Addresses and key only: no ansible_user, no ansible_port.
    let bare: String = group(&f, "app")
        .lines()
        .filter(|l| !l.starts_with("ansible_port=") && !l.starts_with("ansible_user="))
        .map(|l| format!("{l}\n"))
        .collect();
    write(d.path(), "hosts", &bare);
    let pb = |play_port: u16, block: &str| {
        format!(
            "- hosts: app\n  gather_facts: false\n  remote_user: root\n  port: {play_port}\n  tasks:\n    - command: id -un\n      register: who\n      changed_when: false\n    - assert: {{ that: [\"who.stdout == 'root'\"] }}\n    - block:\n        - command: \"true\"\n          changed_when: false\n{block}"
        )
    };
    let kh = f.known_hosts();
    write(d.path(), "pb.yml", &pb(f.port, ""));
    let o = play(d.path(), &kh, &[]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    assert!(recap(&text).iter().all(|l| l.contains("ok=3")), "{text}");

    // A block's `remote_user` is its tasks' user: a user that does not exist is refused.
    write(
        d.path(),
        "pb.yml",
        &pb(f.port, "      remote_user: roll-no-such-user\n"),
    );
    let o = play(d.path(), &kh, &[]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(4), "{text}");
    assert!(
        recap(&text)
            .iter()
            .all(|l| l.contains("ok=2") && l.contains("unreachable=1")),
        "{text}"
    );

    // The play's port is wrong, but the inventory's `ansible_port` wins over it.
    write(d.path(), "pb.yml", &pb(1, ""));
    let o = play(d.path(), &kh, &[]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "port 1 is used without ansible_port\n{}",
        stdout(&o)
    );
    write(
        d.path(),
        "hosts",
        &format!("{bare}\n[app:vars]\nansible_port={}\n", f.port),
    );
    let o = play(d.path(), &kh, &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

/// `ansible_become` / `ansible_become_user` from the inventory or `-e` beat the `become`
/// keywords, as connection variables do in Ansible.
#[test]
fn become_variables_from_the_inventory_and_extra_vars_beat_the_keywords() {
    let f = Fleet::up(1, "app");
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "hosts",
        &format!("{}ansible_become=yes\nansible_become_user=nobody\n", group(&f, "app")),
    );
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  gather_facts: false\n  tasks:\n    - command: id -un\n      become: false\n      become_user: root\n      register: who\n      changed_when: false\n    - assert: { that: [\"who.stdout == want\"] }\n",
    );
    let kh = f.known_hosts();
    let ok = |extra: &[&str]| {
        let o = play(d.path(), &kh, extra);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    };
    ok(&["-e", "want=nobody"]);
    ok(&["-e", "want=root", "-e", "ansible_become=false"]);
    ok(&["-e", "want=root", "-e", "ansible_become_user=root"]);
    let o = play(d.path(), &kh, &["-e", "want=root"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the inventory's become user is nobody\n{}",
        stdout(&o)
    );
}

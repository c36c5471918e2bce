//! ansible.cfg and the `ANSIBLE_*` variables: which file is read (as ansible-core 2.19 finds
//! it), precedence command line > environment > file > default, and the settings that reach the
//! real loopback fleet (remote_user, remote_port, private_key_file, host_key_checking, become,
//! `[ssh_connection]` ssh_args / ssh_common_args and the hosts' `ansible_ssh_*_args`,
//! `[privilege_escalation]` become_exe / become_flags and their keywords and variables).
//! Expected values that depend on Ansible's reading were checked with ansible-core 2.19's
//! `ansible-config dump --only-changed` on the same text.

use crate::common;
use crate::common::fleet::Fleet;

use common::{recap, stderr, stdout, write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

/// A `roll` command in `dir` that sees no configuration but the test's: HOME is `home` (no
/// `~/.ansible.cfg`), and no `ANSIBLE_*` variable of the caller's leaks in.
fn roll(dir: &Path, home: &Path) -> Command {
    let mut c = common::roll(dir);
    c.env("HOME", home);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ANSIBLE_") {
            c.env_remove(k);
        }
    }
    c
}

fn out(mut c: Command) -> Output {
    c.output().expect("run roll")
}

const LOCAL_PLAY: &str =
    "- hosts: all\n  tasks:\n    - debug: { msg: \"forks={{ ansible_forks }} cfg={{ ansible_config_file }}\" }\n";

#[test]
fn the_first_file_found_is_read_and_the_environment_and_the_command_line_win_over_it() {
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "site.yml", LOCAL_PLAY);
    write(p, "inv/hosts", "[web]\nfrom_cwd_cfg ansible_connection=local\n");
    write(p, "other/hosts", "[web]\nfrom_env_cfg ansible_connection=local\n");
    write(p, "env_inv", "[web]\nfrom_env_inventory ansible_connection=local\n");
    write(p, "cli_inv", "[web]\nfrom_cli ansible_connection=local\n");
    write(
        p,
        "ansible.cfg",
        "[defaults]\ninventory = inv/hosts ; the project's\nforks = 7\n",
    );
    // A relative path in the file named by ANSIBLE_CONFIG is relative to that file.
    write(p, "other/ansible.cfg", "[defaults]\ninventory = hosts\n");
    write(home.path(), ".ansible.cfg", "[defaults]\ninventory = /nonexistent\n");
    let hosts = |o: &Output| -> Vec<String> {
        stdout(o)
            .lines()
            .skip_while(|l| !l.contains("hosts ("))
            .skip(1)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };

    let o = out({
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--list-hosts"]);
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(hosts(&o), ["from_cwd_cfg"]);

    let o = out({
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--list-hosts"])
            .env("ANSIBLE_CONFIG", p.join("other"));
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(hosts(&o), ["from_env_cfg"]);

    let o = out({
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--list-hosts"])
            .env("ANSIBLE_INVENTORY", "env_inv");
        c
    });
    assert_eq!(hosts(&o), ["from_env_inventory"]);

    let o = out({
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--list-hosts", "-i", "cli_inv"])
            .env("ANSIBLE_INVENTORY", "env_inv");
        c
    });
    assert_eq!(hosts(&o), ["from_cli"]);

    // forks: the file's 7, ANSIBLE_FORKS over it, -f over both; the run names the file read.
    let forks = |extra: &[&str], env: Option<&str>| {
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml"]).args(extra);
        if let Some(f) = env {
            c.env("ANSIBLE_FORKS", f);
        }
        let o = out(c);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        let text = stdout(&o);
        let at = text.find("forks=").unwrap_or_else(|| panic!("{text}"));
        text[at..].split('"').next().unwrap_or_default().to_string()
    };
    let cfg = p.canonicalize().unwrap().join("ansible.cfg");
    assert_eq!(forks(&[], None), format!("forks=7 cfg={}", cfg.display()));
    assert!(forks(&[], Some("3")).starts_with("forks=3 "));
    assert!(forks(&["-f", "2"], Some("3")).starts_with("forks=2 "));

    // Without ./ansible.cfg, ~/.ansible.cfg is next.
    std::fs::remove_file(p.join("ansible.cfg")).unwrap();
    let o = out({
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--list-hosts"]);
        c
    });
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    assert!(stderr(&o).contains("/nonexistent"), "{}", stderr(&o));
}

#[test]
fn an_ansible_cfg_in_a_world_writable_directory_is_ignored_with_ansibles_warning() {
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "site.yml", LOCAL_PLAY);
    write(p, "hosts", "local ansible_connection=local\n");
    write(p, "ansible.cfg", "[defaults]\ninventory = hosts\n");
    let run = || {
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--list-hosts"]);
        out(c)
    };
    assert!(run().status.success());
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = run();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains(&format!(
            "[WARNING]: Ansible is being run in a world writable directory ({}), ignoring it as an ansible.cfg source.",
            p.display()
        )),
        "{err}"
    );
    assert!(err.contains("error: no inventory given"), "{err}");
}

#[test]
fn mistakes_in_the_file_are_reported_at_their_place_and_unsupported_settings_warned_once() {
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "site.yml", LOCAL_PLAY);
    write(p, "hosts", "local ansible_connection=local\n");
    write(p, "ansible.cfg", "[defaults]\ninventory = hosts\nforks = many\n");
    let run = |args: &[&str]| {
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml"]).args(args);
        out(c)
    };
    let o = run(&["--syntax-check"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("error: `forks` in [defaults] must be an integer, found `many`"),
        "{err}"
    );
    assert!(err.contains("ansible.cfg:3:9"), "{err}");

    write(
        p,
        "ansible.cfg",
        "[defaults]\ninventory = hosts\nforks = 1\nForks = 2\n",
    );
    let err = stderr(&run(&["--syntax-check"]));
    assert!(err.contains("`forks` is set twice in `[defaults]`"), "{err}");
    assert!(err.contains("ansible.cfg:4:1"), "{err}");

    // An unknown key is ignored as Ansible ignores it (listed with -v); one roll cannot honour
    // is warned about, once, at its place.
    write(
        p,
        "ansible.cfg",
        "[defaults]\ninventory = hosts\nhash_behaviour = merge\nnot_a_setting = 1\n[ssh_connection]\npipelining = True\nssh_args = -o ControlMaster=auto\n",
    );
    let o = run(&[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let warning = "ansible.cfg:3:18: `hash_behaviour = merge` is not supported";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert!(!err.contains("not_a_setting"), "{err}");
    let err = stderr(&run(&["-v"]));
    assert!(
        err.contains("ansible.cfg settings roll does not use: [defaults] not_a_setting, [ssh_connection] pipelining\n"),
        "{err}"
    );
    assert!(
        err.contains(&format!("Using {} as config file", p.join("ansible.cfg").display())),
        "{err}"
    );
}

#[test]
fn gathering_and_roles_path_shape_the_playbook() {
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "hosts", "local ansible_connection=local\n");
    write(p, "play/site.yml", "- hosts: all\n  roles: [shared]\n");
    write(
        p,
        "lib/roles/shared/tasks/main.yml",
        "- debug: { msg: from the shared role }\n",
    );
    write(
        p,
        "ansible.cfg",
        "[defaults]\ninventory = hosts\ngathering = explicit\n",
    );
    let run = |env: &[(&str, &str)]| {
        let mut c = roll(p, home.path());
        c.args(["play", "play/site.yml"]).envs(env.iter().copied());
        out(c)
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    assert!(stderr(&o).contains("the role `shared` was not found"), "{}", stderr(&o));

    // A relative roles_path is relative to ansible.cfg, not to the working directory.
    write(
        p,
        "ansible.cfg",
        "[defaults]\ninventory = hosts\ngathering = explicit\nroles_path = lib/roles:/nowhere\n",
    );
    let o = out({
        let mut c = roll(&p.join("play"), home.path());
        c.args(["play", "site.yml", "-i", "../hosts"])
            .env("ANSIBLE_CONFIG", p.join("ansible.cfg"));
        c
    });
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    assert!(text.contains("from the shared role"), "{text}");
    assert!(
        !text.contains("Gathering Facts"),
        "explicit: no play says gather_facts\n{text}"
    );
    assert_eq!(
        recap(&text),
        [
            "local                      : ok=1    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0"
        ]
    );

    let o = run(&[("ANSIBLE_GATHERING", "implicit")]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("TASK [Gathering Facts]"), "{text}");
}

#[test]
fn remote_user_port_key_host_key_checking_and_become_reach_the_fleet() {
    let f = Fleet::up(2, "cfg");
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let p = d.path();
    // The inventory names only the addresses: user, port and key come from ansible.cfg.
    let hosts: String = f
        .inventory()
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    write(p, "hosts", &hosts);
    write(
        p,
        "keys/id",
        &std::fs::read_to_string(f.path().join("id_ed25519")).unwrap(),
    );
    std::fs::set_permissions(p.join("keys/id"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::copy(f.known_hosts(), p.join("known_hosts")).unwrap();
    write(
        p,
        "site.yml",
        "- hosts: fleet\n  gather_facts: false\n  tasks:\n    - command: id -un\n      register: who\n      changed_when: false\n    - assert: { that: [\"who.stdout == expected\"] }\n",
    );
    let cfg = format!(
        "[defaults]\ninventory = hosts\nremote_user = root\nremote_port = {}\nprivate_key_file = keys/id\n\n[privilege_escalation]\nbecome_user = nobody\n",
        f.port
    );
    write(p, "ansible.cfg", &cfg);
    let run = |known_hosts: &str, expected: &str, env: &[(&str, &str)]| {
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--known-hosts", known_hosts, "-e"])
            .arg(format!("expected={expected}"))
            .envs(env.iter().copied());
        out(c)
    };
    let all_ok = |o: &Output| {
        let text = stdout(o);
        assert!(o.status.success(), "{text}{}", stderr(o));
        assert_eq!(recap(&text).len(), 2, "{text}");
        assert!(
            recap(&text)
                .iter()
                .all(|l| l.contains("ok=2") && l.contains("failed=0")),
            "{text}"
        );
    };
    all_ok(&run("known_hosts", "root", &[]));

    // The environment wins over the file: a port nothing listens on, a user that does not exist.
    let o = run("known_hosts", "root", &[("ANSIBLE_REMOTE_PORT", "1")]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    let o = run("known_hosts", "root", &[("ANSIBLE_REMOTE_USER", "roll-no-such-user")]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    assert!(stdout(&o).contains("UNREACHABLE"), "{}", stdout(&o));
    // The key from the file is the only way in: another key is refused.
    let o = run(
        "known_hosts",
        "root",
        &[("ANSIBLE_PRIVATE_KEY_FILE", "/nonexistent/key")],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));

    // host_key_checking: an empty known_hosts refuses the hosts, unless it is off.
    write(p, "empty_known_hosts", "");
    let o = run("empty_known_hosts", "root", &[]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    all_ok(&run(
        "empty_known_hosts",
        "root",
        &[("ANSIBLE_HOST_KEY_CHECKING", "False")],
    ));

    // become from the configuration: every task becomes `become_user` unless it says otherwise.
    all_ok(&run("known_hosts", "nobody", &[("ANSIBLE_BECOME", "true")]));
    write(p, "ansible.cfg", &format!("{cfg}become = yes\n"));
    all_ok(&run("known_hosts", "nobody", &[]));
    all_ok(&run("known_hosts", "root", &[("ANSIBLE_BECOME", "no")]));
}

/// The fleet's hosts (addresses only) and a copy of its known_hosts and key in `p`.
fn bare_fleet(f: &Fleet, p: &Path, host_vars: &[&str]) {
    let mut hosts = String::new();
    for (i, l) in f.inventory().lines().take_while(|l| !l.is_empty()).enumerate() {
        hosts.push_str(l);
        // Host lines follow the comment and `[fleet]`.
        if let Some(v) = i.checked_sub(2).and_then(|k| host_vars.get(k)) {
            hosts.push(' ');
            hosts.push_str(v);
        }
        hosts.push('\n');
    }
    write(p, "hosts", &hosts);
    write(
        p,
        "keys/id",
        &std::fs::read_to_string(f.path().join("id_ed25519")).unwrap(),
    );
    std::fs::set_permissions(p.join("keys/id"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::copy(f.known_hosts(), p.join("known_hosts")).unwrap();
}

/// ssh_args, ssh_common_args and ssh_extra_args reach the system ssh as Ansible composes them:
/// the only key is given in ssh_common_args, and the remote side sees the `SetEnv` of the first
/// place that sets one (ssh keeps the first `SetEnv` it is given): a host's `ansible_ssh_args`
/// over the configuration's `ssh_args`, ssh_args before ssh_common_args. Ansible's default
/// `-o ControlMaster=auto -o ControlPersist=60s` is left to roll's own multiplexing.
#[test]
fn ssh_args_and_the_hosts_ssh_arg_variables_reach_ssh_in_ansibles_order() {
    let f = Fleet::up(2, "sargs");
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let p = d.path();
    bare_fleet(
        &f,
        p,
        &[
            "ansible_ssh_args='-o SetEnv=LC_ROLL=host' expected=host",
            "expected=cfg",
        ],
    );
    let key = p.join("keys/id");
    write(
        p,
        "site.yml",
        "- hosts: fleet\n  gather_facts: false\n  tasks:\n    - command: printenv LC_ROLL\n      register: seen\n      changed_when: false\n    - assert: { that: [\"seen.stdout == expected\"] }\n",
    );
    write(
        p,
        "ansible.cfg",
        &format!(
            "[defaults]\ninventory = hosts\nremote_user = root\nremote_port = {}\n\n[ssh_connection]\nssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o SetEnv=LC_ROLL=cfg\nssh_common_args = -o IdentityFile={} -o IdentitiesOnly=yes -o SetEnv=LC_ROLL=common\n",
            f.port,
            key.display()
        ),
    );
    let run = |env: &[(&str, &str)], extra: &[&str]| {
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--known-hosts", "known_hosts"])
            .args(extra)
            .envs(env.iter().copied());
        out(c)
    };
    let all_ok = |o: &Output| {
        let text = stdout(o);
        assert!(o.status.success(), "{text}{}", stderr(o));
        assert!(!recap(&text).is_empty(), "{text}");
        assert!(recap(&text).iter().all(|l| l.contains("ok=2")), "{text}");
    };
    all_ok(&run(&[], &[]));
    assert_eq!(recap(&stdout(&run(&[], &[]))).len(), 2);
    // The environment over the file: ANSIBLE_SSH_ARGS sets no SetEnv, so the common args' is
    // the first; the host's own ansible_ssh_args still wins for it.
    all_ok(&run(
        &[("ANSIBLE_SSH_ARGS", "-C")],
        &["-e", "expected=common", "-l", "sargs002"],
    ));
    // ssh_extra_args come last: their SetEnv loses to the common args', and reach ssh (an
    // option ssh refuses makes the host unreachable).
    all_ok(&run(
        &[
            ("ANSIBLE_SSH_ARGS", "-C"),
            ("ANSIBLE_SSH_EXTRA_ARGS", "-o SetEnv=LC_ROLL=extra"),
        ],
        &["-e", "expected=common", "-l", "sargs002"],
    ));
    let o = run(&[("ANSIBLE_SSH_EXTRA_ARGS", "-o NoSuchOption=1")], &[]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    // The key is only in ssh_common_args: without it no host lets roll in.
    let o = run(&[("ANSIBLE_SSH_COMMON_ARGS", "-o SetEnv=LC_ROLL=x")], &[]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    assert!(stdout(&o).contains("UNREACHABLE"), "{}", stdout(&o));
    // `--ssh-common-args` over the environment's and the file's.
    all_ok(&run(
        &[
            ("ANSIBLE_SSH_ARGS", "-C"),
            ("ANSIBLE_SSH_COMMON_ARGS", "-o SetEnv=LC_ROLL=x"),
        ],
        &[
            "--ssh-common-args",
            &format!("-o IdentityFile={} -o SetEnv=LC_ROLL=flag", key.display()),
            "-e",
            "expected=flag",
            "-l",
            "sargs002",
        ],
    ));
    // `-e ansible_ssh_common_args=...` wins over every host's inventory, as connection
    // variables given with -e do.
    all_ok(&run(
        &[("ANSIBLE_SSH_ARGS", "-C")],
        &[
            "-e",
            &format!(
                "ansible_ssh_common_args='-o IdentityFile={} -o SetEnv=LC_ROLL=cli'",
                key.display()
            ),
            "-e",
            "expected=cli",
            "-l",
            "sargs002",
        ],
    ));
}

/// become_exe and become_flags run sudo as Ansible's sudo plugin does (`EXE FLAGS -u USER
/// /bin/sh -c ...`): flags that change the group (`-g daemon`) show in `id -gn`, an exe that
/// is a wrapper sees the whole command line; the variables beat the keywords, which beat
/// ansible.cfg.
#[test]
fn become_exe_and_become_flags_run_sudo_as_ansible_does() {
    let f = Fleet::up(1, "bexe");
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let p = d.path();
    bare_fleet(&f, p, &[]);
    // The fleet's host is this machine: the wrapper is on it.
    let log = p.join("sudo-args");
    write(
        p,
        "bin/sudo-wrapper",
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" > {}\nexec sudo \"$@\"\n",
            log.display()
        ),
    );
    std::fs::set_permissions(p.join("bin/sudo-wrapper"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = format!(
        "[defaults]\ninventory = hosts\nremote_user = root\nremote_port = {}\nprivate_key_file = keys/id\n",
        f.port
    );
    write(p, "ansible.cfg", &cfg);
    write(
        p,
        "site.yml",
        "- hosts: fleet\n  gather_facts: false\n  become: true\n  become_user: nobody\n  tasks:\n    - command: id -gn\n      register: plain\n    - command: id -gn\n      become_flags: -H -S -n -g daemon\n      register: flagged\n    - command: id -gn\n      become_flags: -H -S -n -g daemon\n      vars: { ansible_become_flags: -n -g users }\n      register: var_wins\n    - assert:\n        that:\n          - plain.stdout == default_group\n          - flagged.stdout == 'daemon'\n          - var_wins.stdout == 'users'\n",
    );
    let run = |extra: &[&str]| {
        let mut c = roll(p, home.path());
        c.args(["play", "site.yml", "--known-hosts", "known_hosts"]).args(extra);
        out(c)
    };
    let ok = |o: &Output| {
        let text = stdout(o);
        assert!(o.status.success(), "{text}{}", stderr(o));
        assert!(recap(&text)[0].contains("failed=0"), "{text}");
    };
    ok(&run(&["-e", "default_group=nogroup"]));
    assert!(!log.exists(), "the default exe is sudo");
    // ansible.cfg's flags apply where no keyword or variable says otherwise.
    write(
        p,
        "ansible.cfg",
        &format!("{cfg}\n[privilege_escalation]\nbecome_flags = -H -S -n -g daemon\n"),
    );
    ok(&run(&["-e", "default_group=daemon"]));
    // A become_exe: the wrapper sees what Ansible's sudo plugin would pass.
    ok(&run(&[
        "-e",
        "default_group=daemon",
        "-e",
        &format!("ansible_become_exe={}", p.join("bin/sudo-wrapper").display()),
    ]));
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.starts_with("-n -g users -u nobody /bin/sh -c "), "{args}");
}

/// `roll status` and `roll lock status` read the inventory as `roll play` does when `-i` is
/// not given: ANSIBLE_INVENTORY, else ansible.cfg's `inventory` (several sources merged).
#[test]
fn status_and_lock_take_the_inventory_from_the_configuration() {
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let p = d.path();
    let state = p.join("state");
    write(
        &state,
        "web.json",
        "{\"app\":\"web\",\"live\":\"green\",\"release\":\"7\",\"target\":null,\"backends\":{\"app1\":\"green\"},\"batches_done\":1,\"batches_total\":1,\"status\":\"live\",\"updated\":1}\n",
    );
    write(p, "inv/proxies", "[proxy]\nproxy1 ansible_connection=local\n");
    write(p, "inv/more", "[proxy]\nproxy2 ansible_connection=local\n");
    let state_arg = state.display().to_string();
    let status = |env: &[(&str, &str)]| {
        let mut c = roll(p, home.path());
        c.args(["status", "--state-dir", &state_arg, "--format", "json"])
            .envs(env.iter().copied());
        out(c)
    };
    let proxies = |o: &Output| -> Vec<String> {
        assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
        stdout(o)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["proxy"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    // Nothing names an inventory: refused, saying where one may come from.
    let o = status(&[]);
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    assert!(stderr(&o).contains("error: no inventory given"), "{}", stderr(&o));
    assert_eq!(proxies(&status(&[("ANSIBLE_INVENTORY", "inv/proxies")])), ["proxy1"]);
    write(p, "ansible.cfg", "[defaults]\ninventory = inv/proxies,inv/more\n");
    assert_eq!(proxies(&status(&[])), ["proxy1", "proxy2"]);

    let mut c = roll(p, home.path());
    c.args(["lock", "status", "--state-dir", &state_arg]);
    let o = out(c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "no deploy locks");
}

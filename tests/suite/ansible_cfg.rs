//! ansible.cfg and the `ANSIBLE_*` variables: which file is read (as ansible-core 2.19 finds
//! it), precedence command line > environment > file > default, and the settings that reach the
//! real loopback fleet (remote_user, remote_port, private_key_file, host_key_checking, become).
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
        err.contains(
            "ansible.cfg settings roll does not use: [defaults] not_a_setting, [ssh_connection] pipelining, [ssh_connection] ssh_args"
        ),
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

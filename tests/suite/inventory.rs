//! Inventory sources: executable inventory scripts (`--list` with `_meta.hostvars`, `--host H`
//! without it), a directory mixing INI, YAML and a script, and script errors named by path.
//! The expected listings in `tests/inventory/*.ansible.json` are ansible-core 2.19.14's own
//! (`cd tests/inventory/NAME && ansible-inventory -i . --list`, from `scripts/ansible-venv`).

use crate::common;
use crate::common::fleet::Fleet;

use common::{recap, run, stderr, stdout, write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inventory")
}

/// `roll inventory --list` of a fixture against ansible-inventory's stored listing (the
/// `_meta.profile` marker aside, which roll does not print).
fn same_listing_as_ansible(name: &str) {
    let d = tempfile::tempdir().unwrap();
    common::copy_dir(&fixtures().join(name), &d.path().join(name));
    // copy_dir keeps the scripts' execute bits (std::fs::copy copies permissions).
    let o = run(d.path(), &["inventory", "-i", name, "--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{name}.ansible.json"))).unwrap())
            .unwrap();
    want["_meta"].as_object_mut().unwrap().remove("profile");
    assert_eq!(got, want, "roll:\n{}", stdout(&o));
}

#[test]
fn a_directory_mixing_ini_yaml_and_a_script_lists_as_ansible_inventory_lists_it() {
    same_listing_as_ansible("mixed");
}

#[test]
fn a_script_without_meta_is_asked_for_each_hosts_variables() {
    same_listing_as_ansible("legacy");
}

#[test]
fn a_failing_or_malformed_script_is_named_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "pb.yml", "- hosts: all\n  tasks:\n    - debug: { msg: hi }\n");
    let script = |text: &str| {
        write(p, "inv.sh", text);
        std::fs::set_permissions(p.join("inv.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        run(p, &["play", "pb.yml", "-i", "inv.sh"])
    };
    let o = script("#!/bin/sh\necho 'cannot reach the cloud API' >&2\nexit 3\n");
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "error: inventory script `inv.sh` failed on `--list` (exit status: 3): cannot reach the cloud API"
        ),
        "{err}"
    );
    assert!(!stdout(&o).contains("PLAY"), "nothing ran");

    let o = script("#!/bin/sh\necho '{\"web\": {\"hosts\": \"web1\"}}'\n");
    assert_eq!(o.status.code(), Some(5));
    assert!(
        stderr(&o).contains("inventory script `inv.sh` gave `web.hosts` as a string instead of a list"),
        "{}",
        stderr(&o)
    );

    let o = script("#!/bin/sh\necho 'web1 web2'\n");
    assert_eq!(o.status.code(), Some(5));
    assert!(
        stderr(&o).contains("inventory script `inv.sh` printed no JSON on `--list`"),
        "{}",
        stderr(&o)
    );

    // Without the execute bit the same file is read as an INI inventory.
    write(p, "inv.sh", "web1 ansible_connection=local\n");
    std::fs::set_permissions(p.join("inv.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(p, &["play", "pb.yml", "-i", "inv.sh"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn a_play_runs_over_ssh_on_the_hosts_a_script_lists() {
    let f = Fleet::up(2, "scr");
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let fleet_hosts: Vec<(String, String)> = f
        .inventory()
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(" ansible_host=")?;
            Some((name.to_string(), rest.trim().to_string()))
        })
        .collect();
    assert_eq!(fleet_hosts.len(), 2);
    let hostvars: serde_json::Map<String, serde_json::Value> = fleet_hosts
        .iter()
        .map(|(n, a)| (n.clone(), serde_json::json!({ "ansible_host": a })))
        .collect();
    let listing = serde_json::json!({
        "app": { "hosts": fleet_hosts.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>() },
        "all": { "vars": {
            "ansible_port": f.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": f.path().join("id_ed25519"),
        } },
        "_meta": { "hostvars": hostvars },
    });
    write(
        p,
        "inventory.py",
        &format!(
            "#!/usr/bin/env python3\nimport sys\nif sys.argv[1:] == ['--list']:\n    print({:?})\nelse:\n    print('{{}}')\n",
            listing.to_string()
        ),
    );
    std::fs::set_permissions(p.join("inventory.py"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(
        p,
        "pb.yml",
        "- hosts: app\n  gather_facts: false\n  tasks:\n    - shell: echo \"$SSH_CONNECTION\" | cut -d' ' -f3\n      register: addr\n      changed_when: false\n    - assert: { that: [\"addr.stdout == ansible_host\"] }\n",
    );
    let o = common::roll(p)
        .args(["play", "pb.yml", "-i", "inventory.py", "--known-hosts"])
        .arg(f.known_hosts())
        .output()
        .unwrap();
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    let r = recap(&text);
    assert_eq!(r.len(), 2, "{text}");
    assert!(r.iter().all(|l| l.contains("ok=2") && l.contains("failed=0")), "{text}");
}

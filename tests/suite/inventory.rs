//! Inventory sources: executable inventory scripts (`--list` with `_meta.hostvars`, `--host H`
//! without it), a directory mixing INI, YAML and a script, and script errors named by path;
//! several sources (`-i a -i b`, ansible.cfg's and ANSIBLE_INVENTORY's lists) merged in order.
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

/// `roll inventory ARGS --list` in a copy of `tests/inventory/multi` (with `env` and an
/// optional ansible.cfg), against ansible-inventory's stored `listing`.
fn multi_listing(args: &[&str], env: &[(&str, &str)], cfg: Option<&str>, listing: &str) {
    let d = tempfile::tempdir().unwrap();
    common::copy_dir(&fixtures().join("multi"), d.path());
    if let Some(text) = cfg {
        write(d.path(), "ansible.cfg", text);
    }
    let mut c = common::roll(d.path());
    c.arg("inventory")
        .args(args)
        .arg("--list")
        .env_remove("ANSIBLE_INVENTORY");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(listing)).unwrap()).unwrap();
    want["_meta"].as_object_mut().unwrap().remove("profile");
    assert_eq!(got, want, "roll {args:?} {env:?}:\n{}", stdout(&o));
}

/// Two sources, INI then YAML, each with its own group_vars/: groups and hosts add up, the later
/// source wins for the same host or group variable, and the second source's group_vars/ apply
/// after the first's (`ansible-inventory -i a/hosts -i b/hosts.yml --list`).
#[test]
fn several_inventory_sources_merge_in_order_as_ansible_merges_them() {
    let want = "multi.ansible.json";
    multi_listing(&["-i", "a/hosts", "-i", "b/hosts.yml"], &[], None, want);
    // The same list from ANSIBLE_INVENTORY and from ansible.cfg (paths relative to the file).
    multi_listing(&[], &[("ANSIBLE_INVENTORY", "a/hosts,b/hosts.yml")], None, want);
    multi_listing(&[], &[], Some("[defaults]\ninventory = a/hosts, b/hosts.yml\n"), want);
}

/// The other order: the INI file's values win now.
#[test]
fn the_last_inventory_source_wins() {
    let d = tempfile::tempdir().unwrap();
    common::copy_dir(&fixtures().join("multi"), d.path());
    let o = run(
        d.path(),
        &["inventory", "-i", "b/hosts.yml", "-i", "a/hosts", "--host", "web1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["color"], "blue", "{v}");
    assert_eq!(v["tier"], "front", "{v}");
    // group_vars/ still apply in source order: b's, then a's.
    assert_eq!(v["shared"], "a", "{v}");
}

/// `-i a/hosts,b/hosts.yml` is one source, a list of host names, even though the parts are
/// files: ansible-core's `host_list` plugin takes any source with a comma that is no path.
#[test]
fn a_comma_in_one_source_is_a_host_list_as_in_ansible() {
    multi_listing(&["-i", "a/hosts,b/hosts.yml"], &[], None, "multi-hostlist.ansible.json");
}

/// A play over two sources: the groups of both, each source's group_vars/, and a source that
/// does not exist named with every other one before anything runs.
#[test]
fn a_play_reads_every_inventory_source() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    common::copy_dir(&fixtures().join("multi"), p);
    write(
        p,
        "pb.yml",
        "- hosts: web:&cache\n  gather_facts: false\n  connection: local\n  tasks:\n    - debug: { msg: \"{{ shared }} {{ tier }} {{ everywhere }}\" }\n",
    );
    let o = run(p, &["play", "pb.yml", "-i", "a/hosts", "-i", "b/hosts.yml"]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    assert!(text.contains("\"msg\": \"b edge b\""), "{text}");
    assert_eq!(recap(&text).len(), 1, "only web2 is in both groups: {text}");

    let o = run(
        p,
        &["play", "pb.yml", "-i", "a/hosts", "-i", "nope", "-i", "b/nope.yml"],
    );
    assert_eq!(o.status.code(), Some(5));
    let err = stderr(&o);
    assert!(err.contains("error: inventory `nope` not found"), "{err}");
    assert!(err.contains("error: inventory `b/nope.yml` not found"), "{err}");
    assert!(!stdout(&o).contains("PLAY"), "nothing ran");
}

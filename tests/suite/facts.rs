//! Facts against the oracle: ansible-core's `setup` (from the PyPI venv scripts/setup installs,
//! called live, since facts belong to the machine the test runs on) and roll's implicit
//! `gather_facts` and `setup`, on the same loopback host of a real sshd fleet.

use crate::common::fleet::Fleet;
use crate::common::{roll, stderr, stdout, write};
use serde_json::{Value as J, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv's bin directory, as scripts/ansible-venv makes it (its version, its place); a
/// missing venv fails the test: scripts/setup installs it.
fn ansible_bin() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ansible-venv");
    let text = std::fs::read_to_string(&script).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .expect("scripts/ansible-venv names its version");
    let venv = std::env::var("ROLL_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(format!(".cache/roll/ansible-{version}"))
        });
    let bin = venv.join("bin");
    assert!(
        bin.join("ansible").exists(),
        "this test needs ansible-core {version} in {}: run scripts/setup (or scripts/ansible-venv) with PyPI reachable",
        venv.display()
    );
    bin
}

/// Local facts of three kinds: JSON, INI, and an executable printing JSON.
fn local_facts(dir: &Path) -> PathBuf {
    let d = dir.join("facts.d");
    write(
        &d,
        "app.fact",
        "{\"release\": \"2026.11.2\", \"ports\": [8081, 8082]}\n",
    );
    write(&d, "site.fact", "[main]\nColour = blue\nweight=3\n");
    write(&d, "probe.fact", "#!/bin/sh\necho '{\"ok\": true}'\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("probe.fact"), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn ansible_setup(bin: &Path, dir: &Path, fleet: &Fleet, fact_path: &Path) -> serde_json::Map<String, J> {
    write(dir, "ansible.cfg", "[defaults]\n");
    let out = Command::new(bin.join("ansible"))
        .current_dir(dir)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
        )
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .args(["all", "-i"])
        .arg(fleet.path().join("hosts"))
        .args(["-m", "setup", "-o", "-a"])
        .arg(format!("fact_path={}", fact_path.display()))
        .arg("-e")
        .arg(format!("ansible_python_interpreter={}/python", bin.display()))
        .arg("-e")
        .arg(format!(
            "ansible_ssh_common_args='-o UserKnownHostsFile={}'",
            fleet.known_hosts().display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ansible setup failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = text.split_once("=> ").map(|(_, j)| j).unwrap_or("");
    let v: J = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    v["ansible_facts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.strip_prefix("ansible_").unwrap_or(k).to_string(), v.clone()))
        .collect()
}

fn eq(diffs: &mut Vec<String>, name: &str, a: J, b: J) {
    if a != b {
        diffs.push(format!("{name}: roll {a} ansible {b}"));
    }
}

fn sorted(v: &J) -> J {
    let mut l: Vec<J> = v.as_array().cloned().unwrap_or_default();
    l.sort_by_key(|x| x.to_string());
    J::Array(l)
}

/// The facts compared value for value; where Ansible and roll differ by nature (order, time,
/// the process environment), what is compared is said beside it.
fn compare(ours: &serde_json::Map<String, J>, theirs: &serde_json::Map<String, J>) -> Vec<String> {
    let mut diffs = Vec::new();
    let get = |m: &serde_json::Map<String, J>, k: &str| m.get(k).cloned().unwrap_or(J::Null);
    for k in [
        "hostname",
        "nodename",
        "fqdn",
        "domain",
        "system",
        "kernel",
        "kernel_version",
        "architecture",
        "machine",
        "userspace_architecture",
        "distribution",
        "distribution_version",
        "distribution_major_version",
        "distribution_minor_version",
        "distribution_release",
        "os_family",
        "lsb",
        "processor",
        "processor_count",
        "processor_cores",
        "processor_threads_per_core",
        "processor_vcpus",
        "processor_nproc",
        "memtotal_mb",
        "swaptotal_mb",
        "user_id",
        "user_uid",
        "user_gid",
        "user_dir",
        "user_shell",
        "user_gecos",
        "real_user_id",
        "effective_user_id",
        "service_mgr",
        "pkg_mgr",
        "virtualization_type",
        "virtualization_role",
        "default_ipv4",
        "default_ipv6",
        "dns",
        "machine_id",
        "local",
    ] {
        eq(&mut diffs, k, get(ours, k), get(theirs, k));
    }
    // Ansible lists interfaces and addresses in directory order; roll sorts them. The docker
    // engine of the machine adds and removes a `veth*` link per container as containers of other
    // tests start and stop between the two readings: those links are left out on both sides.
    let churn = |m: &serde_json::Map<String, J>| -> Vec<J> {
        get(m, "interfaces")
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(J::as_str)
            .filter(|i| i.starts_with("veth"))
            .flat_map(|i| {
                let f = get(m, i);
                let mut a: Vec<J> = f["ipv6"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|x| x["address"].clone())
                    .collect();
                a.push(f["ipv4"]["address"].clone());
                a.push(J::from(i));
                a
            })
            .collect()
    };
    let (c1, c2) = (churn(ours), churn(theirs));
    let steady = |v: J| {
        J::Array(
            sorted(&v)
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|x| !c1.contains(x) && !c2.contains(x))
                .collect(),
        )
    };
    // Ansible's virtualization techs are a Python set: any order.
    for k in ["virtualization_tech_guest", "virtualization_tech_host"] {
        eq(&mut diffs, k, sorted(&get(ours, k)), sorted(&get(theirs, k)));
    }
    for k in ["interfaces", "all_ipv4_addresses", "all_ipv6_addresses"] {
        eq(&mut diffs, k, steady(get(ours, k)), steady(get(theirs, k)));
    }
    for iface in get(theirs, "interfaces").as_array().cloned().unwrap_or_default() {
        let name = iface.as_str().unwrap_or("").replace(['-', ':', '.'], "_");
        if name.starts_with("veth") {
            continue;
        }
        let (a, b) = (get(ours, &name), get(theirs, &name));
        // Driver details (`module`, `features`, `timestamping`...) come from ethtool and Python;
        // the addresses and link facts deploys read are compared. An engine's bridge is up (and
        // has a speed) only while a container is attached to it, which other tests change
        // between the readings.
        let bridge = name == "docker0" || name.starts_with("br_");
        for k in [
            "device",
            "macaddress",
            "mtu",
            "active",
            "promisc",
            "type",
            "speed",
            "pciid",
            "ipv4",
            "ipv4_secondaries",
            "id",
            "stp",
        ] {
            if bridge && (k == "active" || k == "speed") {
                continue;
            }
            eq(
                &mut diffs,
                &format!("{name}.{k}"),
                a.get(k).cloned().unwrap_or(J::Null),
                b.get(k).cloned().unwrap_or(J::Null),
            );
        }
        for k in ["ipv6", "interfaces"] {
            let (x, y) = (
                a.get(k).cloned().unwrap_or(J::Null),
                b.get(k).cloned().unwrap_or(J::Null),
            );
            eq(&mut diffs, &format!("{name}.{k}"), steady(x), steady(y));
        }
    }
    // Mounts: what the host says now (sizes in use move between the two readings). The engine
    // mounts a container's root under /var/lib/docker and its network namespace under
    // /run/docker/netns while it runs, so other tests' containers come and go between the two
    // readings: those are left out on both sides, as their `veth*` links are.
    let churns = |mount: &J| {
        let m = mount.as_str().unwrap_or("");
        m.starts_with("/var/lib/docker/") || m.starts_with("/run/docker/netns/")
    };
    let mounts = |m: &serde_json::Map<String, J>| {
        sorted(&J::Array(
            get(m, "mounts")
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter(|x| !churns(&x["mount"]))
                .map(|x| {
                    json!([
                        x["mount"],
                        x["device"],
                        x["fstype"],
                        x["options"],
                        x["uuid"],
                        x["block_size"],
                        x["block_total"],
                        x["inode_total"],
                        x["size_total"],
                        x["dump"],
                        x["passno"]
                    ])
                })
                .collect(),
        ))
    };
    eq(&mut diffs, "mounts", mounts(ours), mounts(theirs));
    // Time: the same day and zone; the clock a few seconds apart.
    let (dt, adt) = (get(ours, "date_time"), get(theirs, "date_time"));
    for k in [
        "date",
        "tz",
        "tz_dst",
        "tz_offset",
        "year",
        "weekday",
        "weeknumber",
        "weekday_number",
    ] {
        eq(&mut diffs, &format!("date_time.{k}"), dt[k].clone(), adt[k].clone());
    }
    let epoch = |v: &J| v["epoch"].as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    if (epoch(&dt) - epoch(&adt)).abs() > 300 {
        diffs.push(format!(
            "date_time.epoch: roll {} ansible {}",
            dt["epoch"], adt["epoch"]
        ));
    }
    // The environment: Ansible's module process adds its own (LANG, PWD, `_`); the login's is
    // compared.
    // (`SSH_CONNECTION` differs by the client's port: two sessions.)
    for k in ["HOME", "USER", "LOGNAME", "SHELL", "PATH", "MAIL"] {
        eq(
            &mut diffs,
            &format!("env.{k}"),
            get(ours, "env")[k].clone(),
            get(theirs, "env")[k].clone(),
        );
    }
    let memfree = get(ours, "memfree_mb").as_i64().unwrap_or(-1);
    if memfree < 0 || memfree > get(ours, "memtotal_mb").as_i64().unwrap_or(0) {
        diffs.push(format!("memfree_mb: {memfree}"));
    }
    diffs
}

#[test]
fn gathered_facts_equal_ansible_setup_on_the_same_host() {
    let bin = ansible_bin();
    let fleet = Fleet::up(1, "facts");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fact_path = local_facts(d);
    let theirs = ansible_setup(&bin, d, &fleet, &fact_path);

    std::fs::write(d.join("hosts"), fleet.inventory()).unwrap();
    let out = d.display();
    let fp = fact_path.display();
    // No `gather_facts`: the play gathers, as in Ansible. Then `setup` with the local facts, and
    // narrowed by a subset and a filter.
    write(
        d,
        "pb.yml",
        &format!(
            r#"
- hosts: fleet
  tasks:
    - copy:
        content: "{{{{ ansible_default_ipv4.address }}}} {{{{ ansible_hostname }}}} {{{{ hostvars[inventory_hostname].ansible_distribution }}}} {{{{ ansible_facts.os_family }}}} {{{{ ansible_local | length }}}}"
        dest: "{out}/implicit.txt"
    - setup: {{ fact_path: "{fp}" }}
      register: full
    - copy: {{ content: "{{{{ ansible_facts | to_json }}}}", dest: "{out}/roll.json" }}
    - setup:
        gather_subset: ["!all", "network"]
        filter: ansible_default_ipv4
      register: net
    - copy: {{ content: "{{{{ net.ansible_facts | to_json }}}}", dest: "{out}/filtered.json" }}
    - copy: {{ content: "{{{{ ansible_eth0 is defined or ansible_lo is defined }}}} {{{{ full.ansible_facts.ansible_local.app.release }}}}", dest: "{out}/vars.txt" }}
"#
        ),
    );
    let o = roll(d)
        .args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(fleet.known_hosts())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("TASK [Gathering Facts]"), "{}", stdout(&o));

    let ours: serde_json::Map<String, J> =
        serde_json::from_str(&std::fs::read_to_string(d.join("roll.json")).unwrap()).unwrap();
    let diffs = compare(&ours, &theirs);
    assert!(
        diffs.is_empty(),
        "facts differ from ansible-core's setup:\n{}",
        diffs.join("\n")
    );

    let implicit = std::fs::read_to_string(d.join("implicit.txt")).unwrap();
    let want = format!(
        "{} {} {} {} 0",
        theirs["default_ipv4"]["address"].as_str().unwrap_or(""),
        theirs["hostname"].as_str().unwrap(),
        theirs["distribution"].as_str().unwrap(),
        theirs["os_family"].as_str().unwrap()
    );
    assert_eq!(implicit, want);

    let filtered: serde_json::Map<String, J> =
        serde_json::from_str(&std::fs::read_to_string(d.join("filtered.json")).unwrap()).unwrap();
    assert_eq!(filtered.get("ansible_default_ipv4"), Some(&theirs["default_ipv4"]));
    assert!(!filtered.contains_key("ansible_mounts") && !filtered.contains_key("ansible_distribution"));
    assert_eq!(std::fs::read_to_string(d.join("vars.txt")).unwrap(), "True 2026.11.2");
}

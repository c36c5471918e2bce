//! Unit tests for inventory parsing, group_vars precedence and host patterns.

use super::*;
use std::fs;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn tmp() -> tempdir::Dir {
    tempdir::Dir::new()
}

/// A private temporary directory removed on drop (std only, to keep dev-dependencies small).
mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "roll-inv-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn names(inv: &Inventory, hs: &[usize]) -> Vec<String> {
    hs.iter().map(|h| inv.hosts[*h].name.clone()).collect()
}

fn var(inv: &Inventory, host: &str, k: &str) -> String {
    inv.hosts[inv.host(host).unwrap()]
        .vars
        .get(k)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[test]
fn ini_groups_children_vars_ranges_and_ports() {
    let d = tmp();
    write(
        d.path(),
        "hosts",
        "solo ansible_host=10.0.0.9\n[app]\napp[01:03] ansible_user=deploy\n[proxy]\nlb:2222 weight=5\n[web:children]\napp\nproxy\n[web:vars]\nport=8080\n[all:vars]\nport=80\nenv=prod\n",
    );
    let s = Sources::new();
    let inv = load(&s, &[d.path().join("hosts").to_str().unwrap().to_string()], &[]).unwrap();
    assert_eq!(names(&inv, &inv.group_hosts("app")), ["app01", "app02", "app03"]);
    assert_eq!(names(&inv, &inv.group_hosts("web")), ["app01", "app02", "app03", "lb"]);
    assert_eq!(names(&inv, &inv.group_hosts("ungrouped")), ["solo"]);
    assert_eq!(var(&inv, "lb", "ansible_port"), "2222");
    assert_eq!(var(&inv, "lb", "weight"), "5");
    // child group vars beat parent (`all`) vars.
    assert_eq!(var(&inv, "app02", "port"), "8080");
    assert_eq!(var(&inv, "solo", "port"), "80");
    assert_eq!(inv.hosts[inv.host("app01").unwrap()].groups, ["app", "web"]);
}

#[test]
fn yaml_inventory_matches_ini() {
    let d = tmp();
    write(
        d.path(),
        "hosts.yml",
        "all:\n  vars: { port: 80 }\n  children:\n    app:\n      hosts:\n        app[1:2]:\n        app3: { port: 9000 }\n      vars: { port: 8080 }\n    proxy:\n      hosts:\n        lb:2200:\n",
    );
    let s = Sources::new();
    let inv = load(&s, &[d.path().join("hosts.yml").to_str().unwrap().to_string()], &[]).unwrap();
    assert_eq!(names(&inv, &inv.group_hosts("all")), ["app1", "app2", "app3", "lb"]);
    assert_eq!(var(&inv, "app1", "port"), "8080");
    assert_eq!(var(&inv, "app3", "port"), "9000");
    assert_eq!(var(&inv, "lb", "ansible_port"), "2200");
    assert_eq!(var(&inv, "lb", "port"), "80");
}

#[test]
fn group_vars_and_host_vars_follow_ansible_precedence() {
    let d = tmp();
    write(
        d.path(),
        "inv/hosts",
        "[app]\na1 from_host=inv\n[app:vars]\nlayer=ini_group\n",
    );
    write(d.path(), "inv/group_vars/all.yml", "layer: inv_all\nonly_all: yes\n");
    write(d.path(), "inv/group_vars/app/main.yml", "layer: inv_app\n");
    write(d.path(), "pb/group_vars/app.yml", "layer: pb_app\n");
    write(d.path(), "inv/host_vars/a1.yml", "from_host: inv_host_vars\n");
    write(d.path(), "pb/host_vars/a1", "from_host: pb_host_vars\n");
    let s = Sources::new();
    let inv = load(
        &s,
        &[d.path().join("inv").to_str().unwrap().to_string()],
        &[d.path().join("pb")],
    )
    .unwrap();
    assert_eq!(var(&inv, "a1", "layer"), "pb_app");
    assert_eq!(var(&inv, "a1", "only_all"), "True");
    assert_eq!(var(&inv, "a1", "from_host"), "pb_host_vars");
}

#[test]
fn patterns_union_intersection_exclusion_glob_regex_subscripts() {
    let d = tmp();
    write(
        d.path(),
        "hosts",
        "[app]\napp[1:4]\n[canary]\napp1\napp3\n[proxy]\nlb1\nlb2\n",
    );
    let s = Sources::new();
    let mut inv = load(&s, &[d.path().join("hosts").to_str().unwrap().to_string()], &[]).unwrap();
    let mut r = |p: &str| pattern::resolve(&mut inv, p).map(|h| h.len());
    assert_eq!(r("app:proxy"), Ok(6));
    assert_eq!(r("app,proxy"), Ok(6));
    assert_eq!(r("app:!canary"), Ok(2));
    assert_eq!(r("app:&canary"), Ok(2));
    assert_eq!(r("lb*"), Ok(2));
    assert_eq!(r("~app[12]"), Ok(2));
    assert_eq!(r("app[0]"), Ok(1));
    assert_eq!(r("app[0:2]"), Ok(3));
    assert_eq!(r("app[-1]"), Ok(1));
    assert_eq!(r("app[2:]"), Ok(2));
    assert_eq!(r("all"), Ok(6));
    assert_eq!(
        r("aap").unwrap_err(),
        "pattern `aap` matches no host (did you mean `app`?)"
    );
    assert_eq!(
        r("app[9]").unwrap_err(),
        "subscript in `app[9]` is out of range: `app` has 4 hosts"
    );
    assert_eq!(r("localhost"), Ok(1));
}

#[test]
fn cyclic_children_are_reported() {
    let d = tmp();
    write(d.path(), "hosts", "[a:children]\nb\n[b:children]\na\n");
    let s = Sources::new();
    let err = load(&s, &[d.path().join("hosts").to_str().unwrap().to_string()], &[]).unwrap_err();
    assert_eq!(err.items[0].message, "group `a` is its own ancestor: `a` → `b` → `a`");
}

#[test]
fn ini_values_are_typed_like_ansible() {
    assert_eq!(ini_value("8080"), Value::from(8080));
    assert_eq!(ini_value("True"), Value::from(true));
    assert_eq!(ini_value("yes"), Value::from("yes"));
    assert_eq!(ini_value("'a b'"), Value::from("a b"));
    assert_eq!(ini_value("1.5"), Value::from(1.5));
}

#[test]
fn the_directory_of_a_bare_file_name_is_the_working_directory() {
    // `-i hosts` lies in ``, the playbook `pb.yml` in `.`: one directory, its group_vars read once.
    assert!(same_dir(Path::new(""), Path::new(".")));
    assert!(!same_dir(Path::new(""), Path::new("/")));
}

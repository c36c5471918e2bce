//! `apt` and `package` on a real Debian host (a container started by the test,
//! common/testhost.rs) with real packages from the Debian mirror (`hello`, `tree`): each step
//! reports what ansible-core reported (tests/modules/packages: check mode, for real, again) and
//! leaves dpkg's state as it did; `yum`/`dnf` fail there, roll's naming the host's manager.
//! The same for apt's version specs, releases, downgrades and `deb:` with local repositories
//! and .deb files built on the host (tests/modules/packages_deb), for `pip` into a virtualenv
//! from wheels built there (tests/modules/packages_pip), and the other systems' package modules
//! failing by name there.

use crate::common::{self, oracle, testhost};

#[test]
fn apt_steps_report_what_ansible_reported_with_real_debian_packages() {
    let played = testhost::play("packages", &[]);
    let (mut want, mut got) = (Vec::new(), Vec::new());
    for (w, g) in played.want.iter().zip(&played.got) {
        let msg = w.get("msg");
        if msg.is_some_and(|m| m.is_array()) {
            // ansible-core's yum and dnf fail on a Debian host looking for dnf's backend; roll
            // says which manager the host has.
            assert_eq!((&w["failed"], &w["changed"]), (&g["failed"], &g["changed"]), "{g}");
            let gm = g["msg"].as_str().unwrap_or("");
            assert!(gm.contains("its package manager is `apt-get`"), "{gm}");
            continue;
        }
        want.push(w.clone());
        got.push(g.clone());
    }
    oracle::assert_same(&want, &got);
}

/// dpkg's "(Reading database ... N files and directories currently installed.)" counts what the
/// mirror's packages installed: the same in both runs of a day, not across months. ansible-core
/// 2.19 adds `exception: (traceback unavailable)` to a module's failure, which is its internals.
fn without_file_counts(v: &serde_json::Value) -> serde_json::Value {
    let re = regex::Regex::new(r"Reading database \.\.\. \d+ files").unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&re.replace_all(&v.to_string(), "Reading database ... N files")).unwrap();
    if let Some(r) = v.get_mut("result").and_then(|r| r.as_object_mut()) {
        r.remove("exception");
    }
    v
}

#[test]
fn apt_versions_releases_downgrades_and_deb_files_report_what_ansible_reported() {
    let played = testhost::play("packages_deb", &[]);
    let want: Vec<_> = played.want.iter().map(without_file_counts).collect();
    let got: Vec<_> = played.got.iter().map(without_file_counts).collect();
    oracle::assert_same(&want, &got);
}

#[test]
fn pip_into_a_virtualenv_reports_what_ansible_reported() {
    let played = testhost::play("packages_pip", &[]);
    let want: Vec<_> = played.want.iter().map(without_file_counts).collect();
    let got: Vec<_> = played.got.iter().map(without_file_counts).collect();
    oracle::assert_same(&want, &got);
}

#[test]
fn other_systems_package_modules_are_read_whole_and_fail_on_debian_naming_apt() {
    let host = testhost::TestHost::up();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "play.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - { zypper: { name: nginx, state: present, update_cache: true }, ignore_errors: true }
    - { ansible.legacy.zypper: { name: nginx }, ignore_errors: true }
    - community.general.zypper_repository: { name: nginx, repo: "http://127.0.0.1:9/sles", disable_gpg_check: true, autorefresh: true }
      ignore_errors: true
    - { pacman: { name: nginx, state: present }, ignore_errors: true }
    - { pkgng: { name: nginx }, ignore_errors: true }
    - { openbsd_pkg: { name: nginx }, ignore_errors: true }
    - { rpm_key: { key: "http://127.0.0.1:9/key" }, ignore_errors: true }
    - { ansible.builtin.yum_repository: { name: docker, description: Docker, baseurl: "http://127.0.0.1:9/" }, ignore_errors: true }
"#,
    );
    let out = host.roll(dir.path(), &["play", "play.yml"]);
    let (so, se) = (common::stdout(&out), common::stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{so}{se}");
    for tool in ["`zypper`", "`pacman`", "`pkg`", "`pkg_add`", "`rpm`", "`dnf` or `yum`"] {
        assert!(
            so.contains(&format!(
                "this host has no {tool}: its package manager is `apt-get`; use `package` or `apt`"
            )),
            "{tool}:\n{so}"
        );
    }
    assert!(so.contains("failed=0") && so.contains("ignored=8"), "{so}");

    // A misspelt parameter is refused before any host, with its place.
    common::write(
        dir.path(),
        "bad.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - pacman: { name: nginx, stat: present }\n",
    );
    let out = host.roll(dir.path(), &["play", "bad.yml"]);
    let se = common::stderr(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(se.contains("`stat`") && se.contains("bad.yml:4:"), "{se}");
}

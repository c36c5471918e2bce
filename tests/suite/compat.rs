//! An Ansible playbook using only roll's modules under their `ansible.builtin.` names runs
//! unchanged, and its PLAY RECAP equals the one ansible-playbook (ansible-core 2.19.14) printed
//! for the same playbook and inventory, on the first run and on the second (idempotent) run.

use crate::common;

use std::path::Path;

#[test]
fn recap_equals_ansible_on_first_and_second_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let base = tempfile::tempdir().unwrap();
    let base_arg = format!("base={}", base.path().display());
    for run in ["run1", "run2"] {
        let out = common::run(&dir, &["play", "site.yml", "-i", "hosts", "-e", &base_arg]);
        let text = common::stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}\n{}", common::stderr(&out));
        let expected: Vec<String> = std::fs::read_to_string(dir.join(format!("recap-{run}.ansible")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(common::recap(&text), expected, "{run}:\n{text}");
    }
    // What the playbook wrote is what Ansible would have written.
    let conf = std::fs::read_to_string(base.path().join("app2/etc/app.conf")).unwrap();
    assert_eq!(
        conf,
        "# managed by roll\nname = app2\nport = 8080\ngroups = app,web\npeer app1\npeer app2\npeer app3\n"
    );
    assert_eq!(
        std::fs::read_link(base.path().join("app1/current")).unwrap(),
        base.path().join("app1/etc")
    );
    assert!(base.path().join("app3/restarted").exists());
}

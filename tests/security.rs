//! Security properties that hold without any network: templates cannot read the controller's
//! files, hostile inventory values cannot inject commands, and what roll writes for itself
//! (state, locks, rendered files) is not readable or writable by everyone.

mod common;

use common::{stdout, write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn templates_cannot_read_the_controllers_files() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", "app1 ansible_connection=local\n");
    write(d.path(), "secret.txt", "controller-only-Zx81\n");
    for (name, expr) in [
        ("lookup", "{{ lookup('file', playbook_dir ~ '/secret.txt') }}"),
        ("include", "{% include playbook_dir ~ '/secret.txt' %}"),
        ("import", "{% import playbook_dir ~ '/secret.txt' as x %}"),
    ] {
        write(d.path(), "t.j2", &format!("{expr}\n"));
        write(
            d.path(),
            "pb.yml",
            "- hosts: all\n  tasks:\n    - template: { src: t.j2, dest: \"{{ playbook_dir }}/out\" }\n    - debug: { msg: \"{{ lookup('file', '/etc/passwd') }}\" }\n",
        );
        let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
        let text = format!("{}{}", stdout(&out), common::stderr(&out));
        assert_ne!(out.status.code(), Some(0), "{name}: {text}");
        assert!(!text.contains("controller-only-Zx81"), "{name}: {text}");
        assert!(!text.contains("root:x:0:0"), "{name}: {text}");
        assert!(!d.path().join("out").exists(), "{name}: a file was rendered");
    }
}

#[test]
fn hostile_inventory_values_cannot_inject_commands() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let canary = dir.join("PWNED");
    let evil = format!("x'; touch {c}; echo '$(touch {c})`touch {c}`", c = canary.display());
    write(
        dir,
        "hosts.yml",
        &serde_json::json!({
            "all": { "hosts": { "app1": { "ansible_connection": "local", "evil": evil } } }
        })
        .to_string(),
    );
    write(
        dir,
        "pb.yml",
        r#"
- hosts: all
  tasks:
    - command: echo {{ evil | quote }}
      register: a
    - command:
        argv: [echo, "{{ evil }}"]
      register: b
    - shell: echo {{ evil | quote }}
      register: c
    - copy: { content: "{{ evil }}\n", dest: "{{ playbook_dir }}/out.txt" }
    - file: { path: "{{ playbook_dir }}/d {{ evil | replace('/', '_') }}", state: directory }
    - shell: printf %s "$EVIL"
      environment: { EVIL: "{{ evil }}" }
      register: e
    - assert:
        that:
          - b.stdout == evil
          - c.stdout == evil
          - e.stdout == evil
"#,
    );
    let out = common::run(dir, &["play", "pb.yml", "-i", "hosts.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), common::stderr(&out));
    assert!(!canary.exists(), "a hostile value ran a command");
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        format!("{evil}\n")
    );
}

#[test]
fn state_locks_and_audit_are_not_open_to_everyone() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let state = dir.join("state");
    write(
        dir,
        "hosts",
        &format!(
            "[proxy]\nproxy1 ansible_connection=local roll_state_dir={}\n",
            state.display()
        ),
    );
    write(
        dir,
        "pb.yml",
        r#"
- hosts: proxy
  tasks:
    - roll.deploy_lock: { app: web, dir: "{{ roll_state_dir }}" }
    - shell: "stat -c %a {{ roll_state_dir }}/web.lock"
      register: lock_mode
    - assert: { that: ["lock_mode.stdout == '640'"] }
    - copy: { content: "x\n", dest: "{{ playbook_dir }}/rendered" }
"#,
    );
    let out = common::run(dir, &["play", "pb.yml", "-i", "hosts"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(mode(&state), 0o750);
    assert_eq!(
        mode(&state.join("audit.log")) & 0o002,
        0,
        "the audit log is world-writable"
    );
    // A file roll writes is never world-writable (written through a 0600 temp file).
    assert_eq!(mode(&dir.join("rendered")) & 0o002, 0);
}

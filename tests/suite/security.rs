//! Security properties that hold without any network: what hosts answer is never rendered on
//! the controller, hostile inventory values cannot inject commands, and what roll writes for itself
//! (state, locks, rendered files, the temp files they are written through) is not readable or
//! writable by everyone.

use crate::common;

use common::{stdout, write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Playbooks, roles and templates are the operator's code: as in Ansible they may read the
/// controller's files through lookups. What a host answers is data: it is never rendered again
/// on the controller, however it is passed on (registered, through `set_fact`, into a template).
#[test]
fn what_a_host_answers_is_never_rendered_on_the_controller() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", "app1 ansible_connection=local\n");
    write(d.path(), "secret.txt", "controller-only-Zx81\n");
    write(d.path(), "t.j2", "{{ passed }}\n");
    for (name, answer) in [
        ("lookup", "{{ lookup('file', playbook_dir ~ '/secret.txt') }}"),
        ("include", "{% include playbook_dir ~ '/secret.txt' %}"),
        ("pipe", "{{ lookup('pipe', 'cat ' ~ playbook_dir ~ '/secret.txt') }}"),
    ] {
        write(d.path(), "answer.txt", &format!("{answer}\n"));
        write(
            d.path(),
            "pb.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: cat {{ playbook_dir }}/answer.txt\n      register: out\n    - set_fact: { passed: \"{{ out.stdout }}\" }\n    - debug: { msg: \"{{ out.stdout }} / {{ passed }}\" }\n    - template: { src: t.j2, dest: \"{{ playbook_dir }}/out\" }\n",
        );
        let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts", "-v"]);
        let text = format!("{}{}", stdout(&out), common::stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{name}: {text}");
        assert!(!text.contains("controller-only-Zx81"), "{name}: {text}");
        let rendered = std::fs::read_to_string(d.path().join("out")).unwrap();
        assert_eq!(rendered, format!("{answer}\n"), "{name}: the answer was rendered again");
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

#[test]
fn files_are_written_through_private_temp_files() {
    // A file roll writes goes to a temp file beside its destination first, then is renamed; while
    // it is being written, nobody else may read it. Watch the directory during a large copy.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "hosts", "app1 ansible_connection=local\n");
    std::fs::create_dir(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/big.bin"), vec![b'x'; 96 << 20]).unwrap();
    std::fs::create_dir(dir.join("out")).unwrap();
    std::fs::set_permissions(dir.join("out"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(
        dir,
        "pb.yml",
        "- hosts: all\n  tasks:\n    - copy: { src: big.bin, dest: \"{{ playbook_dir }}/out/big.bin\", mode: \"0644\" }\n",
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (done, out) = (done.clone(), dir.join("out"));
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for e in std::fs::read_dir(&out).unwrap().filter_map(Result::ok) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with(".roll.")
                        && let Ok(m) = e.metadata()
                    {
                        seen.push((name, m.permissions().mode() & 0o777, m.len()));
                    }
                }
            }
            seen
        })
    };
    let out = common::run(dir, &["play", "pb.yml", "-i", "hosts"]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        !seen.is_empty(),
        "the temp file was never seen; the copy was too quick to watch"
    );
    assert!(
        seen.iter().any(|(_, m, len)| *m == 0o600 && *len < 96 << 20),
        "never seen while written: {seen:?}"
    );
    // Only once complete does it take the mode asked for, just before it is renamed into place.
    for (name, m, len) in &seen {
        assert!(
            m & 0o077 == 0 || *len == 96 << 20,
            "temp file {name} had mode {m:o} at {len} bytes"
        );
    }
    // Renamed into place with the mode asked for, and no temp file left behind.
    assert_eq!(mode(&dir.join("out/big.bin")), 0o644);
    let left: Vec<_> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

//! Lookups answer as ansible-core 2.19 does: every case of tests/lookups/cases.yml is rendered
//! by roll as `debug: msg="{{ expr }}"` and compared with what ansible-playbook answered
//! (tests/lookups/expected.json, made by tests/lookups/regen.py); a case that failed there must
//! fail here. Local host: no sshd needed.

use crate::common;
use common::{roll, stdout, write};
use std::path::Path;

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    expr: String,
}

#[derive(serde::Deserialize)]
struct LoopCase {
    id: String,
    with: String,
    value: serde_json::Value,
    msg: Option<String>,
    #[serde(default)]
    sorted: bool,
}

#[test]
fn lookups_answer_as_ansible_core_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lookups");
    let cases: Vec<Case> = serde_yaml::from_str(&std::fs::read_to_string(root.join("cases.yml")).unwrap()).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap()).unwrap();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    common::copy_dir(&root.join("files"), &dir.join("files"));
    common::copy_dir(&root.join("templates"), &dir.join("templates"));
    std::fs::copy(root.join("top.txt"), dir.join("top.txt")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    write(dir, "hosts", "app1 ansible_connection=local\n");
    // The playbook regen.py gives ansible-playbook, without its last task (which stores the answers).
    let loops: Vec<LoopCase> = serde_yaml::from_str(&std::fs::read_to_string(root.join("loops.yml")).unwrap()).unwrap();
    let mut tasks: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.id,
                "debug": {"msg": format!("{{{{ {} }}}}", c.expr)},
                "register": format!("r_{}", c.id),
                "ignore_errors": true,
            })
        })
        .collect();
    for c in &loops {
        let mut t = serde_json::json!({
            "name": format!("loop_{}", c.id),
            "debug": {"msg": c.msg.clone().unwrap_or_else(|| "{{ item }}".into())},
            "register": format!("r_loop_{}", c.id),
            "ignore_errors": true,
        });
        t[format!("with_{}", c.with)] = c.value.clone();
        tasks.push(t);
    }
    let pb = serde_json::json!([{
        "hosts": "all",
        "gather_facts": false,
        "vars": {
            "who": "world", "n": 3, "greeting": "hi {{ who }}",
            "users": [
                {"name": "alice", "keys": ["k1", "k2"], "mysql": {"hosts": ["db1"]}},
                {"name": "bob", "keys": []},
            ],
        },
        "tasks": tasks,
    }]);
    write(dir, "pb.yml", &serde_json::to_string_pretty(&pb).unwrap());
    let out = roll(dir)
        .args(["play", "pb.yml", "-i", "hosts", "--format", "json"])
        .env("ROLL_LOOKUP_TEST", "lookup-value")
        .env_remove("ROLL_LOOKUP_UNSET")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    let mut task = String::new();
    let mut answers = std::collections::BTreeMap::new();
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        match e["event"].as_str() {
            Some("task_start") => task = e["name"].as_str().unwrap().to_string(),
            Some("host") => {
                answers.insert(task.clone(), e["result"].clone());
            }
            _ => {}
        }
    }
    // What roll shows differently, by design: a value from the controller's environment is a
    // secret, masked in every output.
    let masked = |v: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(
            &v.to_string()
                .replace("lookup-value", "********")
                .replace("fallback", "********"),
        )
        .unwrap()
    };
    let mut wrong = Vec::new();
    for c in &cases {
        let want = &masked(&expected[&c.id]);
        let got = &answers[&c.id];
        let failed = got["failed"].as_bool().unwrap_or(false);
        if want["failed"].as_bool().unwrap_or(false) {
            if !failed {
                wrong.push(format!(
                    "{}: `{}` should fail (ansible: {}), roll answered {}",
                    c.id, c.expr, want["ansible_msg"], got["msg"]
                ));
            }
        } else if failed || got["msg"] != want["msg"] {
            wrong.push(format!(
                "{}: `{}` is {} in ansible, roll answered {}",
                c.id, c.expr, want["msg"], got["msg"]
            ));
        }
    }
    for c in &loops {
        let id = format!("loop_{}", c.id);
        let want = &expected[&id];
        let got = &answers[&id];
        if want["failed"].as_bool().unwrap_or(false) {
            if !got["failed"].as_bool().unwrap_or(false) {
                wrong.push(format!(
                    "{id}: should fail (ansible: {}), roll answered {got}",
                    want["ansible_msg"]
                ));
            }
            continue;
        }
        let mut items: Vec<serde_json::Value> = match got["results"].as_array() {
            Some(r) => r.iter().map(|x| x["msg"].clone()).collect(),
            None => {
                wrong.push(format!("{id}: roll ran no loop: {got}"));
                continue;
            }
        };
        let mut want_items = want["items"].as_array().unwrap().clone();
        if c.sorted {
            let key = |v: &serde_json::Value| v.to_string();
            items.sort_by_key(key);
            want_items.sort_by_key(key);
        }
        if items != want_items {
            wrong.push(format!(
                "{id}: `with_{}: {}` gives {want_items:?} in ansible, roll gave {items:?}",
                c.with, c.value
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.len() + loops.len(),
        wrong.join("\n")
    );
    // The stored password is in its file, readable by its owner only.
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(dir.join("out/pw.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(dir.join("out/pw.txt")).unwrap().trim().len(),
        12
    );
}

/// `rescue` reads the failure that brought it there, as in ansible-core 2.19 (which shows, for
/// this play, "Break it / boom" and then " / second").
#[test]
fn rescue_sees_the_failed_task_and_its_result() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "hosts", "app1 ansible_connection=local\n");
    write(
        dir,
        "pb.yml",
        r#"
- hosts: all
  tasks:
    - block:
        - name: Break it
          fail: { msg: boom }
      rescue:
        - debug: { msg: "{{ ansible_failed_task.name }} / {{ ansible_failed_result.msg }}" }
    - block:
        - fail: { msg: second }
      rescue:
        - debug: { msg: "{{ ansible_failed_task.name }} / {{ ansible_failed_result.msg }}" }
"#,
    );
    let out = roll(dir).args(["play", "pb.yml", "-i", "hosts"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    assert!(text.contains("\"msg\": \"Break it / boom\""), "{text}");
    assert!(text.contains("\"msg\": \" / second\""), "{text}");
}

/// A lookup roll does not have is refused before the run, every one at once with its place
/// (roles too), as unknown filters are; a name given as an expression is left to the run.
#[test]
fn unknown_lookups_are_reported_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "hosts", "localhost ansible_connection=local\n");
    write(
        p,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  roles: [r]\n  tasks:\n    - debug: { msg: \"{{ lookup('env', 'HOME') }} {{ lookup('nope_lookup', 'x') }}\" }\n    - debug: { msg: \"{{ lookup(which, 'x') }}\" }\n      vars: { which: env }\n    - debug: { msg: hi }\n      when: query(\"ansible.builtin.dig\", \"example.com\") | length > 0\n",
    );
    write(
        p,
        "roles/r/tasks/main.yml",
        "- debug: { msg: \"{{ q('community.hashi_vault.hashi_vault', 'secret') }}\" }\n",
    );
    let o = roll(p)
        .args(["play", "pb.yml", "-i", "hosts", "--syntax-check"])
        .output()
        .unwrap();
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    for (name, at) in [
        ("nope_lookup", "pb.yml:5:61"),
        ("ansible.builtin.dig", "pb.yml:9:20"),
        ("community.hashi_vault.hashi_vault", "roles/r/tasks/main.yml:1:24"),
    ] {
        assert!(
            err.contains(&format!("error: unknown lookup plugin `{name}`")),
            "{name}\n{err}"
        );
        assert!(err.contains(at), "{at}\n{err}");
    }
    assert!(!err.contains("`env`"), "{err}");
    assert!(err.contains("aborting due to 3 previous errors"), "{err}");
}

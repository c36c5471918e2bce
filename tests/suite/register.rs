//! What `register` stores, whole, for the modules deploy playbooks read results of (command,
//! shell, copy, template, file, lineinfile, stat, debug, set_fact, assert; changed, unchanged,
//! skipped, failed, check mode, `diff: true`, loops), against what ansible-core registered for
//! the same play (tests/modules/register, `scripts/module-oracle register`).
//!
//! Compared after redacting what differs from run to run (times, the temporary `src` ansible
//! uploads through) and leaving out what roll does not register: `invocation` (the module's
//! arguments with every default, which ansible-core adds to loop items), `exception` (the
//! Python traceback placeholder of a failed task), and the fields listed in [`NOT_YET`].

use crate::common::oracle;
use serde_json::Value;

fn redacted(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "invocation" | "exception"))
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("start" | "end" | "delta", Value::String(_)) => Value::from("TIME"),
                        ("src", Value::String(s)) if s.contains("/.ansible/tmp/") => Value::from("UPLOADED"),
                        _ => redacted(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redacted).collect()),
        Value::String(s) if s.contains("/.ansible/tmp/") => {
            Value::from(format!("TMP/{}", s.rsplit('/').next().unwrap_or_default()))
        }
        other => other.clone(),
    }
}

/// What roll does not register like ansible-core yet, by case: the file attributes `copy`,
/// `template` and `file` report after their work (owner, mode, checksums...), `file`'s `diff`
/// (a mapping of the states before and after, where roll registers the texts it shows), the
/// `diff` ansible-core registers for an unchanged copy or template, the temporary path of the
/// rendered template as its diff's `after_header`, and the `dest` and `size` roll adds to a
/// copy in check mode.
const NOT_YET: &[(&str, &[&str])] = &[
    ("copy_check", &["dest", "size"]),
    ("copy_created", ATTRIBUTES),
    ("copy_updated", ATTRIBUTES),
    ("template_created", ATTRIBUTES),
    ("template_created", &["diff.after_header"]),
    ("copy_again", ATTRIBUTES),
    ("copy_again", &["diff", "path"]),
    ("template_again", ATTRIBUTES),
    ("template_again", &["diff", "path"]),
    ("file_directory", ATTRIBUTES),
    ("file_directory", &["diff", "size"]),
    ("file_directory_again", ATTRIBUTES),
    ("file_directory_again", &["size"]),
    ("file_mode", ATTRIBUTES),
    ("file_mode", &["diff", "size"]),
];

const ATTRIBUTES: &[&str] = &[
    "src", "md5sum", "checksum", "uid", "gid", "owner", "group", "mode", "state",
];

fn without_gaps(v: &Value) -> Value {
    let mut v = v.clone();
    let case = v["case"].as_str().unwrap_or_default().to_string();
    let Some(reg) = v.get_mut("registered").and_then(|r| r.as_object_mut()) else {
        return v;
    };
    for (c, keys) in NOT_YET {
        if *c != case {
            continue;
        }
        for k in *keys {
            match k.split_once('.') {
                Some((outer, inner)) => {
                    for d in reg.get_mut(outer).and_then(|d| d.as_array_mut()).into_iter().flatten() {
                        d.as_object_mut().map(|d| d.remove(inner));
                    }
                }
                None => {
                    reg.remove(*k);
                }
            }
        }
    }
    v
}

#[test]
fn registered_results_are_shaped_as_ansible_core_shapes_them() {
    let played = oracle::play("register");
    let want: Vec<Value> = played.want.iter().map(|v| without_gaps(&redacted(v))).collect();
    let got: Vec<Value> = played.got.iter().map(|v| without_gaps(&redacted(v))).collect();
    oracle::assert_same(&want, &got);
}

/// `set_fact` templates its keys on the host, as ansible-core does; a key that does not render
/// to a variable name fails that host's task (with the name), not the check before the run.
#[test]
fn a_templated_set_fact_name_must_render_to_a_variable_name() {
    let d = tempfile::tempdir().unwrap();
    crate::common::write(d.path(), "hosts", "app1 ansible_connection=local\n");
    crate::common::write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - set_fact:
        "{{ item }}_port": 8080
      loop: [web, "not a name"]
      ignore_errors: true
    - debug: { msg: "web_port={{ web_port }}" }
"#,
    );
    let out = crate::common::run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
    let text = crate::common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", crate::common::stderr(&out));
    assert!(text.contains("Invalid variable name 'not a name_port'"), "{text}");
    assert!(text.contains("pb.yml:6:"), "the failure names the key: {text}");
    assert!(text.contains("web_port=8080"), "{text}");
}

//! What `register` stores, whole, for the modules deploy playbooks read results of (command,
//! shell, copy, template, file, lineinfile, stat, debug, set_fact, assert; changed, unchanged,
//! skipped, failed, check mode, `diff: true`, loops), against what ansible-core registered for
//! the same play (tests/modules/register, `scripts/module-oracle register`).
//!
//! Compared after redacting what differs from run to run (times, the temporary `src` a file
//! goes through, a link's size) and leaving out what roll does not register: `invocation` (the
//! module's arguments with every default, which ansible-core adds to loop items), `exception`
//! (the Python traceback placeholder of a failed task), and the fields listed in [`NOT_YET`].

use crate::common::oracle;
use serde_json::Value;

fn redacted(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "invocation" | "exception"))
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        // A link's size is its target's length, and the targets are under each
                        // run's own directory (checked apart, below).
                        ("size", _) if m.get("state") == Some(&Value::from("link")) => Value::from("LINK"),
                        ("start" | "end" | "delta", Value::String(_)) => Value::from("TIME"),
                        // Where the content went before it replaced the file: ansible-core's upload,
                        // roll's temporary file beside the destination.
                        ("src", Value::String(s)) if s.contains("/.ansible/tmp/") || s.contains("/.roll.") => {
                            Value::from("UPLOADED")
                        }
                        ("mtime" | "atime", Value::Number(_)) => Value::from("TIME"),
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

/// What roll does not register like ansible-core, by case: the diff's `after_header` of a
/// template, where ansible-core names the temporary file it rendered on the controller and roll
/// the destination it shows.
const NOT_YET: &[(&str, &[&str])] = &[("template_created", &["diff.after_header"])];

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
    let link = played.got.iter().find(|v| v["case"] == "file_link").unwrap();
    let target = played.base.path().join("plain");
    assert_eq!(
        link["registered"]["size"],
        target.to_str().unwrap().len(),
        "a link's size is the length of its target: {link}"
    );
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

/// `community.general.npm` with this machine's npm (Debian package `npm`), offline, from
/// tarballs `npm pack` makes (tests/modules/npm): every step registers what community.general's
/// module registered, in check mode, for real and again, and leaves the app as it left it.
#[test]
fn npm_registers_what_community_general_registered() {
    assert!(
        std::process::Command::new("npm")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "npm is missing: install the Debian package `npm` (scripts/setup does)"
    );
    let played = oracle::play("npm");
    let want: Vec<Value> = played.want.iter().map(redacted).collect();
    let got: Vec<Value> = played.got.iter().map(redacted).collect();
    oracle::assert_same(&want, &got);
}

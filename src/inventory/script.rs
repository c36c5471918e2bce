//! Executable inventory files: run with `--list` (and `--host H` without `_meta.hostvars`), their
//! JSON read as ansible-core 2.19's `script` inventory plugin reads it.
//!
//! The script is code the operator runs (like ansible.cfg and the playbook), so it runs on the
//! controller from the working directory, as Ansible runs it. Its errors name the script.

use super::Builder;
use crate::diagnostic::Diagnostic;
use crate::values::from_serde;
use minijinja::Value;
use serde_json::Value as Json;
use std::path::Path;

/// Whether Ansible would run the file (its `script` plugin: a file this user may execute).
pub(super) fn is_script(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return false;
    }
    // access(2) with X_OK, as `os.access(path, os.X_OK)`: root may run a file with any x bit.
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// Run the script and add what it lists.
pub(super) fn load(path: &Path, b: &mut Builder) {
    let shown = crate::source::display_path(path);
    let fail = |what: String| {
        Diagnostic::error(format!("inventory script `{}` {what}", shown.display())).with_help(
            "an inventory script prints JSON on `--list`: `{\"group\": {\"hosts\": [...], \"vars\": {...}, \"children\": [...]}, \"_meta\": {\"hostvars\": {...}}}`",
        )
    };
    let data = match run(path, &["--list"]) {
        Ok(d) => d,
        Err(e) => return b.diags.push(fail(e)),
    };
    let top = match serde_json::from_str::<Json>(&data) {
        Ok(Json::Object(m)) => m,
        Ok(other) => {
            return b
                .diags
                .push(fail(format!("printed JSON {} instead of an object", json_type(&other))));
        }
        Err(e) => return b.diags.push(fail(format!("printed no JSON on `--list`: {e}"))),
    };
    let mut hostvars: Option<serde_json::Map<String, Json>> = None;
    let mut hosts: Vec<String> = Vec::new();
    for (group, gdata) in &top {
        if group == "_meta" {
            match gdata.get("hostvars") {
                Some(Json::Object(h)) => hostvars = Some(h.clone()),
                None => {}
                Some(other) => {
                    return b.diags.push(fail(format!(
                        "printed `_meta.hostvars` as {} instead of an object",
                        json_type(other)
                    )));
                }
            }
            continue;
        }
        if let Err(e) = add_group(group, gdata, b, &mut hosts) {
            return b.diags.push(fail(e));
        }
    }
    for host in &hosts {
        let vars = match &hostvars {
            Some(h) => h.get(host).cloned().unwrap_or(Json::Null),
            // Without `_meta.hostvars`, each host's variables come from `--host H`.
            None => match run(path, &["--host", host]) {
                Ok(d) if d.trim().is_empty() => Json::Null,
                Ok(d) => match serde_json::from_str::<Json>(&d) {
                    Ok(j) => j,
                    Err(e) => return b.diags.push(fail(format!("printed no JSON on `--host {host}`: {e}"))),
                },
                Err(e) => return b.diags.push(fail(e)),
            },
        };
        match vars {
            Json::Null => {}
            Json::Object(m) => {
                let vars: Vec<(String, Value)> = m.iter().map(|(k, v)| (k.clone(), value(v))).collect();
                b.add_vars(host, vars);
            }
            other => {
                return b.diags.push(fail(format!(
                    "gave the variables of `{host}` as {} instead of an object",
                    json_type(&other)
                )));
            }
        }
    }
}

/// One group of the `--list` output, with Ansible's leniency for the old shapes (a list of
/// hosts; a mapping without `hosts`/`vars`/`children`, which is the group's only host's vars).
fn add_group(group: &str, data: &Json, b: &mut Builder, hosts: &mut Vec<String>) -> Result<(), String> {
    b.group(group, None);
    let (list, vars, children) = match data {
        Json::Object(m) if !["hosts", "vars", "children"].iter().any(|k| m.contains_key(*k)) => {
            (Some(Json::Array(vec![Json::from(group)])), Some(data.clone()), None)
        }
        Json::Object(m) => (
            m.get("hosts").cloned(),
            m.get("vars").cloned(),
            m.get("children").cloned(),
        ),
        other => (Some(other.clone()), None, None),
    };
    if let Some(list) = list {
        let Json::Array(items) = list else {
            return Err(format!(
                "gave `{group}.hosts` as {} instead of a list",
                json_type(&list)
            ));
        };
        for h in items {
            let name = match h {
                Json::String(s) => s,
                other => other.to_string(),
            };
            if !hosts.contains(&name) {
                hosts.push(name.clone());
            }
            b.add_host(&name, None, group, Vec::new());
        }
    }
    if let Some(vars) = vars {
        let Json::Object(m) = vars else {
            return Err(format!(
                "gave `{group}.vars` as {} instead of an object",
                json_type(&vars)
            ));
        };
        let g = b.group(group, None);
        for (k, v) in m {
            g.vars.insert(k, value(&v));
        }
    }
    if let Some(children) = children {
        let Json::Array(items) = children else {
            return Err(format!(
                "gave `{group}.children` as {} instead of a list",
                json_type(&children)
            ));
        };
        for c in items {
            let name = match c {
                Json::String(s) => s,
                other => other.to_string(),
            };
            b.add_child(group, &name, None);
        }
    }
    Ok(())
}

/// A JSON value as a variable; `{"__ansible_unsafe": "..."}` is text never rendered, as in
/// Ansible's legacy inventory profile.
fn value(v: &Json) -> Value {
    match v {
        Json::Object(m) if m.len() == 1 && m.contains_key("__ansible_unsafe") => match &m["__ansible_unsafe"] {
            Json::String(s) => crate::yaml::unsafe_text(s),
            other => value(other),
        },
        Json::Object(m) => Value::from_pairs(m.iter().map(|(k, v)| (k.clone(), value(v)))),
        Json::Array(items) => Value::from(items.iter().map(value).collect::<Vec<_>>()),
        other => from_serde(other),
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// The script's standard output; a failure names the exit status and the tail of stderr.
fn run(path: &Path, args: &[&str]) -> Result<String, String> {
    // A bare name is the file here, not a program to look for in PATH.
    let program = if path.is_relative() && path.components().count() == 1 {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    };
    let out = std::process::Command::new(&program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not be run: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        return Err(format!(
            "failed on `{}` ({}){}",
            args.join(" "),
            out.status,
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
            }
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("printed no UTF-8 text on `{}`", args.join(" ")))
}

//! Filters and tests answer as ansible-core 2.19 with community.general and ansible.utils does:
//! every case of tests/filters/cases.yml is rendered by roll as `debug: msg="{{ expr }}"` and
//! compared with what ansible-playbook answered (tests/filters/expected.json, made by
//! tests/filters/regen.py). A case that failed there must fail here, with the message the case
//! names; a case with `roll_msg`, or `roll_error` without `error`, is a documented difference
//! (the case says why). Also: what a
//! filter derives from a secret stays masked. Local host: no sshd needed.

use crate::common;
use common::{roll, stdout, write};
use std::path::Path;

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    expr: String,
    #[serde(default)]
    error: bool,
    roll_error: Option<String>,
    roll_msg: Option<serde_json::Value>,
}

/// Run `tasks` on a local host with the variables regen.py gives ansible-playbook; the result of
/// each task by name, and the whole stdout.
fn answers(
    tasks: Vec<serde_json::Value>,
    vars: serde_json::Value,
) -> (std::collections::BTreeMap<String, serde_json::Value>, String) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "hosts", "app1 ansible_connection=local\n");
    let pb = serde_json::json!([{ "hosts": "all", "gather_facts": false, "vars": vars, "tasks": tasks }]);
    write(dir, "pb.yml", &serde_json::to_string_pretty(&pb).unwrap());
    let out = roll(dir)
        .args(["play", "pb.yml", "-i", "hosts", "--format", "json"])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    (results_by_task(&text), text)
}

/// The result of each task by name, from `--format json` lines (one host).
fn results_by_task(text: &str) -> std::collections::BTreeMap<String, serde_json::Value> {
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
    answers
}

fn vars() -> serde_json::Value {
    serde_json::json!({
        "users": [
            {"name": "alice", "keys": ["k1", "k2"], "mysql": {"hosts": ["db1"]}},
            {"name": "bob", "keys": []},
        ],
        "data": {"servers": [
            {"name": "web-a", "port": 8081, "state": "up"},
            {"name": "web-b", "port": 8080, "state": "down"},
            {"name": "web-c", "port": 8082, "state": "up"},
        ]},
    })
}

#[test]
fn filters_answer_as_ansible_core_and_its_collections_do() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filters");
    let cases: Vec<Case> = serde_yaml::from_str(&std::fs::read_to_string(root.join("cases.yml")).unwrap()).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap()).unwrap();
    // The playbook regen.py gives ansible-playbook, without its last task (which stores the answers).
    let tasks = cases
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
    let (answers, _) = answers(tasks, vars());
    let mut wrong = Vec::new();
    for c in &cases {
        let want = &expected[&c.id];
        let got = &answers[&c.id];
        let failed = got["failed"].as_bool().unwrap_or(false);
        let ansible_failed = want["failed"].as_bool().unwrap_or(false);
        if ansible_failed != c.error && c.roll_msg.is_none() {
            wrong.push(format!(
                "{}: cases.yml says error={}, ansible failed={ansible_failed}: regenerate",
                c.id, c.error
            ));
        }
        if let Some(roll_msg) = &c.roll_msg {
            if failed || &got["msg"] != roll_msg {
                wrong.push(format!(
                    "{}: `{}` should be {roll_msg} in roll, got {got}",
                    c.id, c.expr
                ));
            }
        } else if ansible_failed || c.roll_error.is_some() {
            // (`roll_error` without `error`: a documented difference, roll refuses what Ansible does.)
            let msg = got["msg"].as_str().unwrap_or("");
            let names = c.roll_error.as_deref().unwrap_or("");
            if !failed || !msg.contains(names) {
                wrong.push(format!(
                    "{}: `{}` should fail saying `{names}` (ansible: {}), roll answered {got}",
                    c.id, c.expr, want["ansible_msg"]
                ));
            }
        } else if failed || got["msg"] != want["msg"] {
            wrong.push(format!(
                "{}: `{}` is {} in ansible, roll answered {}",
                c.id, c.expr, want["msg"], got
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// A digest or password hash of a secret is as good as the secret (a token's hash can be the
/// credential itself, a password hash can be cracked offline): it is masked like the secret.
#[test]
fn hashes_of_a_secret_are_masked_in_the_output() {
    let secret = "vault-pw-Zq81-hunter";
    let tasks: Vec<serde_json::Value> = [
        "{{ password | password_hash('sha512', 'fixedsalt', rounds=5000) }}",
        "{{ password | hash('sha256') }}",
        "{{ password | checksum }}",
        "{{ 'public-text' | hash('sha256') }}",
        "{{ {'pw': other} | to_json }}",
        "{{ {'pw': other} | to_nice_json }}",
        "{{ password | to_uuid }}",
    ]
    .iter()
    .enumerate()
    .map(|(i, m)| serde_json::json!({"name": format!("t{i}"), "debug": {"msg": m}}))
    .collect();
    let mut vars = vars();
    vars["password"] = serde_json::json!(secret);
    // JSON text escapes this one (`p\u00e4\"ss`), where the mask would not find it as written.
    vars["other"] = serde_json::json!("pä\"ss-Zq81-hunter");
    vars["roll_secret_vars"] = serde_json::json!(["password", "other"]);
    let (answers, text) = answers(tasks, vars);
    use sha2::Digest as _;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let sha256 = |s: &str| hex(&sha2::Sha256::digest(s.as_bytes()));
    let sha1 = |s: &str| hex(&sha1::Sha1::digest(s.as_bytes()));
    for leaked in [
        secret.to_string(),
        sha256(secret),
        sha1(secret),
        "$6$fixedsalt$".to_string(),
    ] {
        assert!(!text.contains(&leaked), "`{leaked}` is in the output:\n{text}");
    }
    for t in ["t0", "t1", "t2"] {
        assert_eq!(answers[t]["msg"], "********", "{t}: {}", answers[t]);
    }
    assert_eq!(answers["t4"]["msg"], r#"{"pw": "********"}"#, "{}", answers["t4"]);
    assert_eq!(
        answers["t5"]["msg"], "{\n    \"pw\": \"********\"\n}",
        "{}",
        answers["t5"]
    );
    assert_eq!(answers["t6"]["msg"], "********", "{}", answers["t6"]);
    assert!(!text.contains("hunter"), "{text}");
    // What was not derived from a secret is shown.
    assert_eq!(answers["t3"]["msg"], sha256("public-text"));
}

/// A template file gets the variables ansible-core gives it, `ansible_managed` (its default, or
/// the play's own when it sets one) among them, in the `template` module and lookup alike: the
/// files tests/filters/managed/pb.yml writes are the ones ansible-playbook wrote (regen.py).
#[test]
fn templates_get_ansible_managed_and_the_template_vars() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filters/managed");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    common::copy_dir(&root.join("templates"), &dir.join("templates"));
    std::fs::copy(root.join("pb.yml"), dir.join("pb.yml")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    write(dir, "hosts", "app1 ansible_connection=local\n");
    let out = roll(dir).args(["play", "pb.yml", "-i", "hosts"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), common::stderr(&out));
    for name in ["default", "custom"] {
        let want = std::fs::read_to_string(root.join(format!("{name}.expected"))).unwrap();
        let got = std::fs::read_to_string(dir.join(format!("out/{name}.txt"))).unwrap();
        assert_eq!(got, want, "{name}");
    }
}

/// `ansible_parent_role_names` and `_paths` are what ansible-core 2.19 gives: the roles that
/// imported or included this one, the nearest first; a dependency has none (parents.expected,
/// the lines ansible-playbook printed for tests/filters/parents/pb.yml).
#[test]
fn imported_and_included_roles_know_their_parents() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filters");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    common::copy_dir(&root.join("parents"), dir);
    write(dir, "hosts", "app1 ansible_connection=local\n");
    let out = roll(dir).args(["play", "pb.yml", "-i", "hosts"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    let got: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("\"msg\": "))
        .collect();
    let want = std::fs::read_to_string(root.join("parents.expected")).unwrap();
    assert_eq!(got, want.lines().collect::<Vec<_>>(), "{text}");
}

/// Filters and tests written in Python, from `filter_plugins/` and `test_plugins/` beside the
/// playbook, a role's `filter_plugins/`, and a collection beside the playbook (whose plugin
/// imports its own `module_utils` relatively): each answers as ansible-playbook 2.19.14 answered
/// for the same files, keyword arguments too; what a plugin prints is not shown; a plugin that
/// raises fails its task in Ansible's words; and the python3 process ends with the run.
fn python_plugin_project(dir: &Path) {
    write(
        dir,
        "filter_plugins/mine.py",
        "from ansible.errors import AnsibleFilterError\nprint('chatty plugin at import')\n\n\
         def shout(s, times=1, sep='!'):\n    return (s.upper() + sep) * times\n\n\
         def pick(d, *keys):\n    return {k: d[k] for k in keys}\n\n\
         def boom(x):\n    raise AnsibleFilterError('boom: cannot take %r' % (x,))\n\n\
         class FilterModule(object):\n    def filters(self):\n        return {'shout': shout, 'pick': pick, 'boom': boom}\n",
    );
    write(
        dir,
        "test_plugins/numbers.py",
        "class TestModule:\n    def tests(self):\n        return {'even_number': lambda n: n % 2 == 0}\n",
    );
    write(
        dir,
        "roles/web/filter_plugins/web.py",
        "class FilterModule:\n    def filters(self):\n        return {'vhost': lambda n, port=80: '%s:%d' % (n, port)}\n",
    );
    write(
        dir,
        "roles/web/tasks/main.yml",
        "- name: role\n  debug:\n    msg: \"{{ 'shop' | vhost(port=8080) }}\"\n",
    );
    let coll = "collections/ansible_collections/acme/tools/plugins";
    write(
        dir,
        &format!("{coll}/module_utils/helpers.py"),
        "def double(x):\n    return [x, x]\n",
    );
    write(
        dir,
        &format!("{coll}/filter/dup.py"),
        "from ..module_utils.helpers import double\n\nclass FilterModule:\n    def filters(self):\n        return {'dup': double}\n",
    );
    write(dir, "hosts", "app1 ansible_connection=local\n");
}

#[test]
fn python_filter_and_test_plugins_answer_as_in_ansible() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    python_plugin_project(dir);
    write(
        dir,
        "pb.yml",
        r#"- hosts: all
  gather_facts: false
  roles: [web]
  tasks:
    - name: kwargs
      debug:
        msg: "{{ 'hi' | shout }} {{ 'yo' | shout(2, sep='?') }}"
    - name: dict
      debug:
        msg: "{{ {'a': 1, 'b': [2, 3], 'c': 'x'} | pick('b', 'a') }}"
    - name: collection
      debug:
        msg: "{{ 'z' | acme.tools.dup }}"
    - name: test
      debug:
        msg: "{{ [1, 2, 3, 4] | select('even_number') | list }} {{ 3 is even_number }}"
    - name: raises
      debug:
        msg: "{{ 7 | boom }}"
"#,
    );
    let out = roll(dir)
        .args(["play", "pb.yml", "-i", "hosts", "--format", "json"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", common::stderr(&out));
    let got: std::collections::BTreeMap<_, _> = results_by_task(&text)
        .into_iter()
        .map(|(task, result)| (task, result["msg"].clone()))
        .collect();
    assert_eq!(got["web : role"], "shop:8080", "{text}");
    assert_eq!(got["kwargs"], "HI! YO?YO?", "{text}");
    assert_eq!(got["dict"], serde_json::json!({"b": [2, 3], "a": 1}), "{text}");
    assert_eq!(got["collection"], serde_json::json!(["z", "z"]), "{text}");
    assert_eq!(got["test"], "[2, 4] False", "{text}");
    let raised = got["raises"].as_str().unwrap();
    assert!(
        raised.starts_with("The filter plugin 'boom' failed: boom: cannot take 7"),
        "{raised}"
    );
    assert!(!text.contains("chatty"), "{text}");
    let left = common::resources::processes_mentioning(&dir.display().to_string());
    assert!(left.is_empty(), "python3 left running: {left:?}");
}

/// A plugin file that cannot be imported is named, with Python's reason, where a name it may
/// define is used: nothing runs.
#[test]
fn a_plugin_file_that_cannot_load_is_named_where_its_filter_is_used() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "filter_plugins/broken.py", "import no_such_module_zq\n");
    write(dir, "hosts", "app1 ansible_connection=local\n");
    write(
        dir,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy:\n        content: \"{{ 'x' | brokenfilter }}\"\n        dest: \"{{ playbook_dir }}/written\"\n",
    );
    let out = roll(dir).args(["play", "pb.yml", "-i", "hosts"]).output().unwrap();
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{}{err}", stdout(&out));
    assert!(err.contains("unknown Jinja filter `brokenfilter`"), "{err}");
    assert!(
        err.contains("broken.py could not be loaded (ModuleNotFoundError: No module named 'no_such_module_zq')"),
        "{err}"
    );
    assert!(!dir.join("written").exists());
}

/// What a Python filter makes from a secret is masked like the secret.
#[test]
fn what_a_python_filter_makes_from_a_secret_is_masked() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    python_plugin_project(dir);
    write(
        dir,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  vars:\n    token: tok-Zq81-hunter\n    roll_secret_vars: [token]\n  tasks:\n    - debug:\n        msg: \"{{ token | shout(sep='') }} {{ 'open' | shout }}\"\n",
    );
    let out = roll(dir).args(["play", "pb.yml", "-i", "hosts"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    assert!(!text.to_lowercase().contains("hunter"), "{text}");
    assert!(text.contains("******** OPEN!"), "{text}");
}

/// ansible.cfg's `filter_plugins` names a directory of Python filters, as in Ansible.
#[test]
fn ansible_cfg_filter_plugins_names_where_python_filters_are() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "plugins/filter/pad.py",
        "class FilterModule:\n    def filters(self):\n        return {'pad': lambda s, n=6: s.rjust(n, '.')}\n",
    );
    write(dir, "ansible.cfg", "[defaults]\nfilter_plugins = ./plugins/filter\n");
    write(dir, "hosts", "app1 ansible_connection=local\n");
    write(
        dir,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: \"{{ 'ab' | pad }}|{{ 'cd' | pad(n=3) }}\"\n",
    );
    let out = roll(dir)
        .args(["play", "pb.yml", "-i", "hosts"])
        .env_remove("ANSIBLE_FILTER_PLUGINS")
        .env_remove("ANSIBLE_CONFIG")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    assert!(text.contains("\"msg\": \"....ab|.cd\""), "{text}");
}

//! `--format json` against its documented schema (docs/events.md): every line of a run that
//! exercises each event kind deserializes into strict structs that refuse unknown fields.

use crate::common;

use common::{stdout, write};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
enum Event {
    RunStart {
        playbook: String,
        check: bool,
        v: u32,
    },
    TaskEnd {
        name: String,
        duration_ms: u64,
        v: u32,
    },
    RunEnd {
        duration_ms: u64,
        failed: bool,
        unreachable: bool,
        interrupted: bool,
        v: u32,
    },
    PlayStart {
        name: String,
        hosts: Vec<String>,
        v: u32,
    },
    NoHostsMatched {
        v: u32,
    },
    TaskStart {
        name: String,
        handler: bool,
        v: u32,
    },
    Host(Host),
    Retry {
        host: String,
        task: String,
        retries_left: u32,
        v: u32,
    },
    NoMoreHosts {
        v: u32,
    },
    Warning {
        message: String,
        v: u32,
    },
    Progress {
        host: String,
        message: String,
        v: u32,
    },
    Recap {
        hosts: Vec<(String, Stats)>,
        v: u32,
    },
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Host {
    host: String,
    delegated_to: Option<String>,
    status: Status,
    item: Option<String>,
    ignored: bool,
    censored: bool,
    result: BTreeMap<String, serde_json::Value>,
    diffs: Vec<Diff>,
    #[serde(default)]
    guards: Vec<Guard>,
    debug: Option<serde_json::Value>,
    duration_ms: u64,
    would_run: bool,
    v: u32,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Diff {
    path: String,
    before: String,
    after: String,
    change: Change,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Change {
    Create,
    Update,
    Replace,
    Start,
    Stop,
    Remove,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Guard {
    what: String,
    before: String,
    after: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Stats {
    ok: u32,
    changed: u32,
    unreachable: u32,
    failed: u32,
    skipped: u32,
    rescued: u32,
    ignored: u32,
}

#[test]
fn every_event_of_a_run_matches_the_documented_schema() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "hosts",
        "[app]\napp1 ansible_connection=local\napp2 ansible_connection=local\n",
    );
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: app
  tasks:
    - copy: { content: "x\n", dest: "{{ playbook_dir }}/out-{{ inventory_hostname }}" }
    - debug: { msg: "hi {{ item }}" }
      loop: [a, b]
    - command: "test -e {{ playbook_dir }}/nothing"
      register: r
      until: r.rc == 0
      retries: 1
      delay: 0
      when: inventory_hostname == 'app1'
    - fail: { msg: stop }
      when: inventory_hostname == 'app2'
    - debug: { msg: never }
      no_log: true
- hosts: app2
  tasks:
    - debug: { msg: gone }
"#,
    );
    let out = common::roll(d.path())
        .args(["play", "pb.yml", "-i", "hosts", "--format", "json", "--diff"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", common::stderr(&out));
    let mut kinds = std::collections::BTreeSet::new();
    for line in text.lines() {
        let e: Event = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let kind = match &e {
            Event::RunStart { v, .. }
            | Event::TaskEnd { v, .. }
            | Event::RunEnd { v, .. }
            | Event::PlayStart { v, .. }
            | Event::NoHostsMatched { v }
            | Event::TaskStart { v, .. }
            | Event::Retry { v, .. }
            | Event::NoMoreHosts { v }
            | Event::Warning { v, .. }
            | Event::Progress { v, .. }
            | Event::Recap { v, .. } => {
                assert_eq!(*v, 1);
                format!("{e:?}").split([' ', '{']).next().unwrap().to_string()
            }
            Event::Host(h) => {
                assert_eq!(h.v, 1);
                "Host".to_string()
            }
        };
        kinds.insert(kind);
    }
    for k in [
        "RunStart",
        "PlayStart",
        "TaskStart",
        "Host",
        "TaskEnd",
        "Retry",
        "NoMoreHosts",
        "Recap",
        "RunEnd",
    ] {
        assert!(kinds.contains(k), "no {k} event in:\n{text}");
    }
    assert!(text.contains("\"diffs\":[{\"path\""), "{text}");
}

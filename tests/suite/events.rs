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

/// A `progress` event's own fields, by `kind` (docs/events.md), besides `event` and `v`.
#[derive(Deserialize, Debug)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
enum Progress {
    Note {
        host: String,
        message: String,
        text: String,
    },
    BatchStart {
        host: String,
        message: String,
        app: String,
        batch: u32,
        of: u32,
        to: String,
        backends: Vec<String>,
    },
    BatchDone {
        host: String,
        message: String,
        app: String,
        batch: u32,
        of: u32,
        to: String,
        backends: Vec<String>,
        write_ms: f64,
        validate_ms: f64,
        reload_ms: f64,
        gate_ms: f64,
    },
    WaitStart {
        host: String,
        message: String,
        wait: Wait,
        what: String,
        limit_s: Option<f64>,
    },
    Waiting {
        host: String,
        message: String,
        wait: Wait,
        what: String,
        elapsed_s: f64,
        left_s: Option<f64>,
    },
    WaitEnd {
        host: String,
        message: String,
        wait: Wait,
        what: String,
        waited_s: f64,
    },
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Wait {
    Pause,
    Lock,
    Health,
    Drain,
}

/// A switch against a real nginx (two batches, a pause) emits each batch's start and end with
/// its times and the pause's start, countdown and end, in the documented shapes.
#[test]
fn a_switch_reports_its_batches_and_pauses_as_typed_progress_events() {
    use common::nginx::{Nginx, backends, switch_playbook};
    let d = tempfile::tempdir().unwrap();
    let backends = backends(4);
    let nginx = Nginx::start(d.path(), &backends);
    switch_playbook(d.path(), &nginx, &backends, 2, "2s");
    let out = common::roll(d.path())
        .args(["play", "switch.yml", "-i", "hosts", "--format", "json"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    let mut seen = Vec::new();
    for line in text.lines() {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
        if v["event"] != "progress" {
            continue;
        }
        assert_eq!(v.remove("v"), Some(1.into()), "{line}");
        v.remove("event");
        let p: Progress = serde_json::from_value(v.into()).unwrap_or_else(|e| panic!("{e}: {line}"));
        seen.push(p);
    }
    let kinds: Vec<String> = seen
        .iter()
        .map(|p| format!("{p:?}").split([' ', '{']).next().unwrap().to_string())
        .filter(|k| k != "Waiting")
        .collect();
    assert_eq!(
        kinds,
        [
            "BatchStart",
            "BatchDone",
            "WaitStart",
            "WaitEnd",
            "BatchStart",
            "BatchDone"
        ],
        "{seen:#?}"
    );
    match &seen[1] {
        Progress::BatchDone {
            batch,
            of,
            backends,
            reload_ms,
            message,
            ..
        } => {
            assert_eq!((*batch, *of), (1, 2));
            assert_eq!(backends, &["app1", "app2"]);
            assert!(*reload_ms > 0.0, "{reload_ms}");
            assert_eq!(message, "web: batch 1/2 → green (app1, app2) done");
        }
        other => panic!("{other:?}"),
    }
    let countdown: Vec<f64> = seen
        .iter()
        .filter_map(|p| match p {
            Progress::Waiting {
                wait: Wait::Pause,
                left_s,
                ..
            } => *left_s,
            _ => None,
        })
        .collect();
    assert!(
        countdown.len() >= 2 && countdown.windows(2).all(|w| w[1] < w[0]) && countdown[0] <= 2.0,
        "{countdown:?}"
    );
}

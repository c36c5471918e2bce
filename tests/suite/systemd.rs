//! Services on a real systemd host (a container booted with systemd as PID 1,
//! common/systemd_host.rs): the host boots; `systemd`/`systemd_service`, and `service` (which
//! runs systemd there as Ansible's service action does), report at each step what ansible-core
//! reported (tests/modules/systemd: check mode, for real, again) and leave the unit as it did;
//! the deploy case (a unit file by `copy`, `daemon_reload`, start); `service_facts` reads the
//! same units; bad arguments are refused at their place before any host.

use crate::common::{self, systemd_host};

#[test]
fn the_systemd_host_boots_with_systemd_as_pid_1() {
    let host = systemd_host::up();
    assert_eq!(host.sh("cat /proc/1/comm").trim(), "systemd");
    let state = host.sh("systemctl is-system-running");
    assert!(
        matches!(state.trim(), "running" | "degraded"),
        "{state}{}",
        host.sh("systemctl --failed --no-pager")
    );
    assert_eq!(host.sh("systemctl is-active ssh.service").trim(), "active");
}

/// Fields of `status` (`systemctl show`) that differ between any two boots or runs, not between
/// roll and Ansible: times, process ids, counters, the invocation's id, and the `Exec*` records
/// that carry a process id and times.
fn volatile(key: &str) -> bool {
    key.contains("Timestamp")
        || key.ends_with("PID")
        || key.starts_with("Exec")
        || key.ends_with("NSec")
        || key.ends_with("Bytes")
        || key.ends_with("Packets")
        || key.ends_with("Operations")
        || [
            "InvocationID",
            "MemoryCurrent",
            "MemoryAvailable",
            "TasksCurrent",
            "StatusErrno",
            "NRestarts",
            "ControlGroupId",
            // Derived from the machine's kernel limits (threads-max follows the memory size),
            // so they differ between the machine the oracle ran on and this one.
            "LimitNPROC",
            "LimitNPROCSoft",
            "LimitSIGPENDING",
            "LimitSIGPENDINGSoft",
            "TasksMax",
        ]
        .contains(&key)
}

/// Fields of `status` that are sets of units, which systemd lists in no fixed order.
const UNIT_SETS: &[&str] = &[
    "After",
    "Before",
    "Requires",
    "Requisite",
    "Wants",
    "BindsTo",
    "PartOf",
    "Upholds",
    "RequiredBy",
    "RequisiteOf",
    "WantedBy",
    "BoundBy",
    "UpheldBy",
    "ConsistsOf",
    "Conflicts",
    "ConflictedBy",
    "OnFailure",
    "OnSuccess",
    "Triggers",
    "TriggeredBy",
    "Names",
    "JoinsNamespaceOf",
];

/// A result with the volatile `status` fields replaced by `*` and the unit sets sorted: the set
/// of fields and every other value must be Ansible's.
fn steady(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(status) = v.pointer_mut("/result/status").and_then(|s| s.as_object_mut()) {
        for (k, val) in status.iter_mut() {
            if volatile(k) {
                *val = "*".into();
            } else if UNIT_SETS.contains(&k.as_str())
                && let Some(text) = val.as_str()
            {
                let mut units: Vec<&str> = text.split_whitespace().collect();
                units.sort_unstable();
                *val = units.join(" ").into();
            }
        }
    }
    v
}

/// The fields (and `status` fields) of one result that differ, as `step: field: ansible / roll`.
fn field_differences(w: &serde_json::Value, g: &serde_json::Value) -> Option<String> {
    if w == g {
        return None;
    }
    let step = format!("{} {}", w["step"], w.get("run").unwrap_or(&serde_json::Value::Null));
    let (Some(wr), Some(gr)) = (
        w.get("result").and_then(|r| r.as_object()),
        g.get("result").and_then(|r| r.as_object()),
    ) else {
        return Some(format!("{step}: ansible {w}\n   roll {g}"));
    };
    let mut lines = Vec::new();
    let keys: std::collections::BTreeSet<&String> = wr.keys().chain(gr.keys()).collect();
    for k in keys {
        let (a, b) = (wr.get(k), gr.get(k));
        if a == b {
            continue;
        }
        if let (Some(serde_json::Value::Object(a)), Some(serde_json::Value::Object(b))) = (a, b) {
            let sub: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for s in sub.into_iter().filter(|s| a.get(*s) != b.get(*s)) {
                lines.push(format!("{step}: {k}.{s}: ansible {:?} / roll {:?}", a.get(s), b.get(s)));
            }
        } else {
            lines.push(format!("{step}: {k}: ansible {a:?} / roll {b:?}"));
        }
    }
    Some(lines.join("\n"))
}

#[test]
fn systemd_steps_report_what_ansible_reported() {
    let played = systemd_host::play("systemd", &[]);
    let mut want: Vec<_> = played.want.iter().cloned().map(steady).collect();
    let mut got: Vec<_> = played.got.iter().cloned().map(steady).collect();
    // service_facts: every unit the host has, compared whole.
    let (ws, gs) = (want.pop().unwrap(), got.pop().unwrap());
    assert_eq!(ws, gs, "service_facts differ");
    let differ: Vec<String> = want
        .iter()
        .zip(&got)
        .filter_map(|(w, g)| field_differences(w, g))
        .collect();
    assert!(
        differ.is_empty(),
        "{} results differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    // The unit ran and is left as Ansible left it (the last step started it without blocking).
    assert_eq!(played.host.sh("systemctl is-active roll-demo").trim(), "active");
}

#[test]
fn bad_systemd_arguments_are_refused_at_their_place_before_any_host() {
    let host = systemd_host::up();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: { dest: /tmp/ran, content: x }\n    \
         - systemd: { state: started }\n    - service: { enabled: true }\n    \
         - systemd_service: { name: x, state: begun }\n    - systemd: { name: x, scope: nobody }\n",
    );
    let out = host.roll(dir.path(), &["play", "p.yml"]);
    let se = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{se}");
    assert!(se.contains("error: `state` needs `name` in `systemd`"), "{se}");
    assert!(se.contains("p.yml:5:18"), "{se}");
    assert!(se.contains("error: `enabled` needs `name` in `service`"), "{se}");
    assert!(se.contains("p.yml:6:18"), "{se}");
    assert!(
        se.contains("invalid value `begun` for `state` of module `systemd_service`"),
        "{se}"
    );
    assert!(
        se.contains("invalid value `nobody` for `scope` of module `systemd`"),
        "{se}"
    );
    // Nothing ran: not even the task before them.
    assert_eq!(host.sh("ls /tmp/ran 2>/dev/null"), "");
}

#[test]
fn service_on_a_host_without_systemd_checks_what_the_service_module_checks() {
    // Ansible's service action runs the service module there (PID 1 is not systemd): it needs
    // `name` and refuses systemd's parameters, on the host, with ansible-core's messages.
    let host = common::testhost::TestHost::up();
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    \
         - service: { daemon_reload: true }\n      ignore_errors: true\n    \
         - service: { name: cron, state: started, daemon_reload: true }\n      ignore_errors: true\n",
    );
    let out = host.roll(dir.path(), &["play", "p.yml"]);
    let so = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{so}{}", common::stderr(&out));
    assert!(so.contains("missing required arguments: name"), "{so}");
    assert!(
        so.contains(
            "Unsupported parameters for (ansible.legacy.service) module: daemon_reload. Supported parameters include: arguments, enabled, name, pattern, runlevel, sleep, state (args)."
        ),
        "{so}"
    );
    assert!(so.contains("ignored=2"), "{so}");
}

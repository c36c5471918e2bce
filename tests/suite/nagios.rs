//! `nagios` (community.general.nagios) against a real Nagios (Debian's nagios4-core, installed
//! and started on a Debian test host, common/testhost.rs): every step registers what the
//! collection's module registered (tests/modules/nagios; commands' times as T), and Nagios'
//! status file afterwards says the same, so Nagios read and applied what roll wrote.

use crate::common::{oracle, testhost};
use serde_json::Value;

/// Leaves out what either side registers that the comparison is not about: `exception` (the
/// traceback placeholder of ansible-core's failed module), and of a check-mode skip the
/// `skipped` (testhost::play drops roll's) and the loop item's `failed: false` that only
/// ansible-core's loop adds.
fn normalised(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(r) = v.get_mut("result").and_then(|r| r.as_object_mut()) {
        r.remove("exception");
        if r.remove("skipped").is_some()
            || r.get("msg")
                .and_then(Value::as_str)
                .is_some_and(|m| m.contains("does not support check mode"))
        {
            r.remove("failed");
        }
    }
    v
}

#[test]
fn every_action_writes_what_the_collection_writes_and_nagios_applies_it() {
    let played = testhost::play("nagios", &[]);
    let want: Vec<Value> = played.want.iter().map(normalised).collect();
    let got: Vec<Value> = played.got.iter().map(normalised).collect();
    oracle::assert_same(&want, &got);
    let status = |step: u64| {
        played
            .got
            .iter()
            .find(|v| v["step"] == step && v.get("status").is_some())
            .and_then(|v| v["status"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    // Before the link, the module finds no nagios.cfg; after it, the command file it names.
    let first = played.got.iter().find(|v| v["step"] == 0 && v["run"] == "run").unwrap();
    assert_eq!(first["result"]["msg"], "unable to locate nagios.cfg", "{first}");
    assert!(
        status(2).contains("servicestatus webserver notifications_enabled=0"),
        "Nagios did not disable the service's notifications: {}",
        status(2)
    );
    assert!(
        status(10).contains("hostdowntime web1 - duration=600 span=600 fixed=1 author=Ansible comment=deploy"),
        "Nagios has no host downtime: {}",
        status(10)
    );
    assert!(
        !status(12).contains("hostdowntime web1") && !status(12).contains("servicedowntime web1"),
        "downtimes left: {}",
        status(12)
    );
}

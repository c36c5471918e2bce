//! Unit tests of the reports: the human log's lines and layout (Ansible's), JSON Lines, JUnit.
#![cfg(test)]

use super::{Human, JsonLines, Junit, Tee};
use crate::exec::Reporter;
use crate::exec::events::{Event, HostResult, Stats, Status};
use crate::modules::progress::{Progress, WaitKind};
use crate::modules::{Change, FileDiff};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A writer whose bytes the test reads back after the reporter wrote them.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn result(host: &str, status: Status) -> HostResult {
    HostResult {
        host: host.into(),
        delegated_to: None,
        status,
        item: None,
        ignored: false,
        censored: false,
        result: json!({"changed": status == Status::Changed, "failed": status == Status::Failed}),
        diffs: Vec::new(),
        guards: Vec::new(),
        debug: None,
        duration_ms: 7,
        would_run: false,
    }
}

/// What the human log prints for `events`, with the given `--check`, `--diff` and `-v`.
fn human_with(check: bool, diff: bool, verbose: u8, events: &[Event]) -> String {
    let buf = Buf::default();
    let mut h = Human::new(buf.clone(), false, verbose, diff, check);
    for e in events {
        h.event(e);
    }
    buf.text()
}

fn human(events: &[Event]) -> String {
    human_with(false, false, 0, events)
}

fn host(r: HostResult) -> Event {
    Event::host(r)
}

#[test]
fn ok_and_changed_results_name_the_host() {
    assert_eq!(human(&[host(result("app1", Status::Ok))]), "ok: [app1]\n");
    assert_eq!(human(&[host(result("app1", Status::Changed))]), "changed: [app1]\n");
    assert_eq!(human(&[host(result("app1", Status::Skipped))]), "skipping: [app1]\n");
}

#[test]
fn colour_wraps_the_whole_line() {
    let buf = Buf::default();
    let mut h = Human::new(buf.clone(), true, 0, false, false);
    h.event(&host(result("app1", Status::Changed)));
    h.event(&host(result("app2", Status::Ok)));
    assert_eq!(
        buf.text(),
        "\x1b[33mchanged: [app1]\x1b[0m\n\x1b[32mok: [app2]\x1b[0m\n"
    );
}

#[test]
fn delegation_shows_both_hosts() {
    let mut r = result("app1", Status::Changed);
    r.delegated_to = Some("proxy1".into());
    assert_eq!(human(&[host(r)]), "changed: [app1 -> proxy1]\n");
}

#[test]
fn loop_items_show_their_label_and_the_total_is_not_repeated() {
    let mut a = result("app1", Status::Changed);
    a.item = Some("api".into());
    let mut b = result("app1", Status::Skipped);
    b.item = Some("worker".into());
    let mut d = result("app1", Status::Changed);
    d.delegated_to = Some("proxy1".into());
    d.item = Some("cron".into());
    let mut total = result("app1", Status::Changed);
    total.result = json!({"changed": true, "results": [{}, {}, {}]});
    assert_eq!(
        human(&[host(a), host(b), host(d), host(total)]),
        "changed: [app1] => (item=api)\n\
         skipping: [app1] => (item=worker) \n\
         changed: [app1 -> proxy1] => (item=cron)\n"
    );
}

#[test]
fn a_loop_whose_items_all_skipped_shows_its_total() {
    let mut item = result("app1", Status::Skipped);
    item.item = Some("a".into());
    let mut total = result("app1", Status::Skipped);
    total.result = json!({"skipped": true, "results": [{}]});
    assert_eq!(
        human(&[host(item), host(total)]),
        "skipping: [app1] => (item=a) \nskipping: [app1]\n"
    );
}

#[test]
fn failures_print_the_result_as_ansible_does() {
    let mut r = result("app1", Status::Failed);
    // Keys sorted, Python's separators, without the `failed` flag.
    r.result = json!({"rc": 3, "msg": "non-zero return code", "failed": true, "changed": true, "cmd": ["false"]});
    assert_eq!(
        human(&[host(r)]),
        "fatal: [app1]: FAILED! => {\"changed\": true, \"cmd\": [\"false\"], \"msg\": \"non-zero return code\", \"rc\": 3}\n"
    );
    let mut item = result("app1", Status::Failed);
    item.item = Some("x".into());
    item.result = json!({"msg": "boom"});
    assert_eq!(human(&[host(item)]), "failed: [app1] (item=x) => {\"msg\": \"boom\"}\n");
    let mut gone = result("ghost", Status::Unreachable);
    gone.result = json!({"msg": "no route", "unreachable": true});
    assert_eq!(
        human(&[host(gone)]),
        "fatal: [ghost]: UNREACHABLE! => {\"msg\": \"no route\", \"unreachable\": true}\n"
    );
}

#[test]
fn ignored_failures_say_so_also_after_a_loop() {
    let mut r = result("app1", Status::Failed);
    r.ignored = true;
    r.result = json!({"msg": "boom"});
    assert_eq!(
        human(&[host(r)]),
        "fatal: [app1]: FAILED! => {\"msg\": \"boom\"}\n...ignoring\n"
    );
    let mut total = result("app1", Status::Failed);
    total.ignored = true;
    total.result = json!({"results": [{}]});
    assert_eq!(human(&[host(total)]), "...ignoring\n");
}

#[test]
fn debug_values_are_pretty_printed_with_sorted_keys() {
    let mut r = result("app1", Status::Ok);
    r.debug = Some(json!({"msg": {"b": 1, "a": [true]}}));
    assert_eq!(
        human(&[host(r)]),
        "ok: [app1] => {\n    \"msg\": {\n        \"a\": [\n            true\n        ],\n        \"b\": 1\n    }\n}\n"
    );
}

#[test]
fn verbose_shows_the_result_and_check_mode_the_command_that_would_run() {
    let mut r = result("app1", Status::Changed);
    r.result = json!({"changed": true, "failed": false, "skipped": false, "rc": 0});
    assert_eq!(
        human_with(false, false, 1, &[host(r)]),
        "changed: [app1] => {\"changed\": true, \"rc\": 0}\n"
    );
    let mut w = result("app1", Status::Changed);
    w.would_run = true;
    w.result = json!({"changed": true, "cmd": ["echo", "hello world"]});
    assert_eq!(
        human_with(true, false, 0, &[host(w)]),
        "changed: [app1] => (would run) echo 'hello world'\n"
    );
}

#[test]
fn banners_fill_the_line_with_stars() {
    let text = human(&[
        Event::PlayStart {
            name: "Site".into(),
            hosts: vec!["app1".into()],
        },
        Event::TaskStart {
            name: "Say hi".into(),
            handler: false,
        },
        Event::TaskStart {
            name: "restart".into(),
            handler: true,
        },
        Event::NoMoreHosts,
    ]);
    assert_eq!(
        text,
        format!(
            "\nPLAY [Site] {}\n\nTASK [Say hi] {}\n\nRUNNING HANDLER [restart] {}\n\nNO MORE HOSTS LEFT {}\n",
            "*".repeat(68),
            "*".repeat(66),
            "*".repeat(54),
            "*".repeat(61)
        )
    );
    assert!(text.lines().filter(|l| !l.is_empty()).all(|l| l.len() == 80), "{text}");
    // A title longer than the line still gets three stars.
    let long = "x".repeat(90);
    assert!(
        human(&[Event::TaskStart {
            name: long.clone(),
            handler: false
        }])
        .ends_with(&format!("[{long}] ***\n"))
    );
    let check = human_with(
        true,
        false,
        0,
        &[Event::PlayStart {
            name: "Site".into(),
            hosts: vec![],
        }],
    );
    assert!(check.starts_with("\nPLAY [Site] [CHECK MODE] ****"), "{check:?}");
}

#[test]
fn play_recap_uses_ansibles_columns() {
    let stats = Stats {
        ok: 12,
        changed: 3,
        unreachable: 0,
        failed: 1,
        skipped: 2,
        rescued: 0,
        ignored: 1,
    };
    let text = human(&[Event::Recap {
        hosts: vec![
            ("app1".into(), stats),
            ("a-host-name-longer-than-26-chars".into(), Stats::default()),
        ],
    }]);
    // Ansible: "%-26s : " then each count as "name=%-4s", separated by one space.
    assert_eq!(
        text,
        format!(
            "\nPLAY RECAP {}\n\
             app1                       : ok=12   changed=3    unreachable=0    failed=1    skipped=2    rescued=0    ignored=1   \n\
             a-host-name-longer-than-26-chars : ok=0    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0   \n\
             \n",
            "*".repeat(69)
        )
    );
}

#[test]
fn diff_mode_prints_the_diff_before_the_result_and_check_mode_tallies_changes() {
    let mut created = result("app1", Status::Changed);
    created.diffs = vec![FileDiff {
        path: "/etc/app.conf".into(),
        before: String::new(),
        after: "port=1\n".into(),
        change: Change::Create,
    }];
    let mut changed = result("app2", Status::Changed);
    changed.diffs = vec![FileDiff {
        path: "/etc/app.conf".into(),
        before: "port=1\n".into(),
        after: "port=2\n".into(),
        change: Change::Update,
    }];
    let mut skipped = result("app3", Status::Skipped);
    skipped.diffs = changed.diffs.clone();
    let text = human_with(
        true,
        true,
        0,
        &[
            host(created),
            host(changed),
            host(skipped),
            Event::Recap { hosts: Vec::new() },
        ],
    );
    assert_eq!(
        text,
        format!(
            "--- before: /etc/app.conf\n+++ after: /etc/app.conf\n@@ -0,0 +1 @@\n+port=1\n\
             changed: [app1]\n    + /etc/app.conf\n\
             --- before: /etc/app.conf\n+++ after: /etc/app.conf\n@@ -1 +1 @@\n-port=1\n+port=2\n\
             changed: [app2]\n    ~ /etc/app.conf\n\
             skipping: [app3]\n\
             \nPLAY RECAP {}\n\n\
             Dry run: 1 to add, 1 to change, 0 to replace, 0 to remove.\n",
            "*".repeat(69)
        )
    );
}

#[test]
fn a_dry_run_shows_each_change_kind_by_its_symbol_and_tallies_it() {
    let kinds = [
        Change::Create,
        Change::Start,
        Change::Update,
        Change::Replace,
        Change::Stop,
        Change::Remove,
    ];
    let mut r = result("app1", Status::Changed);
    r.diffs = kinds
        .iter()
        .enumerate()
        .map(|(i, &change)| FileDiff {
            path: format!("thing {i}"),
            before: "a\n".into(),
            after: "b\n".into(),
            change,
        })
        .collect();
    let text = human_with(true, false, 0, &[host(r), Event::Recap { hosts: Vec::new() }]);
    assert!(
        text.starts_with(
            "changed: [app1]\n    + thing 0\n    + thing 1\n    ~ thing 2\n    -/+ thing 3\n    - thing 4\n    - thing 5\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("Dry run: 2 to add, 1 to change, 1 to replace, 1 to remove, 1 to stop.\n"),
        "{text}"
    );
}

#[test]
fn retries_warnings_and_empty_plays() {
    let text = human(&[
        Event::Retry {
            host: "app1".into(),
            task: "wait".into(),
            retries_left: 2,
        },
        Event::NoHostsMatched,
        // For machines and the progress bar only.
        Event::RunStart {
            playbook: "pb.yml".into(),
            check: false,
        },
        Event::TaskEnd {
            name: "wait".into(),
            duration_ms: 1,
        },
        Event::RunEnd {
            duration_ms: 1,
            failed: false,
            unreachable: false,
            interrupted: false,
        },
    ]);
    assert_eq!(
        text,
        "FAILED - RETRYING: [app1]: wait (2 retries left).\nskipping: no hosts matched\n"
    );
}

#[test]
fn gitlab_sections_wrap_each_play_and_close_before_the_recap() {
    let buf = Buf::default();
    let mut h = Human::new(buf.clone(), false, 0, false, false).with_sections(true);
    for name in ["one", "two"] {
        h.event(&Event::PlayStart {
            name: name.into(),
            hosts: vec![],
        });
    }
    h.event(&Event::Recap { hosts: Vec::new() });
    let text = buf.text();
    let starts: Vec<usize> = text.match_indices("section_start:").map(|(i, _)| i).collect();
    let ends: Vec<usize> = text.match_indices("section_end:").map(|(i, _)| i).collect();
    assert_eq!((starts.len(), ends.len()), (2, 2), "{text:?}");
    assert!(
        starts[0] < ends[0] && ends[0] < starts[1] && starts[1] < ends[1],
        "{text:?}"
    );
    assert!(
        text.contains(":roll_play_1[collapsed=false]\r\x1b[0KPLAY [one]\n"),
        "{text:?}"
    );
    assert!(text.contains(":roll_play_2\r\x1b[0K\nPLAY RECAP"), "{text:?}");
}

#[test]
fn json_lines_are_one_object_per_event_with_its_kind_and_the_schema_version() {
    let buf = Buf::default();
    let mut j = JsonLines::new(buf.clone());
    let mut r = result("app1", Status::Changed);
    r.delegated_to = Some("proxy1".into());
    r.item = Some("a\nb".into());
    let events = [
        Event::RunStart {
            playbook: "pb.yml".into(),
            check: true,
        },
        Event::NoHostsMatched,
        host(r),
        Event::Recap {
            hosts: vec![("app1".into(), Stats::default())],
        },
    ];
    for e in &events {
        j.event(e);
    }
    let text = buf.text();
    assert!(text.ends_with('\n'));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), events.len(), "{text}");
    assert!(lines.iter().all(|l| l.is_object() && l["v"] == 1), "{text}");
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run_start", "no_hosts_matched", "host", "recap"]);
    assert_eq!(
        lines[0],
        json!({"event": "run_start", "playbook": "pb.yml", "check": true, "v": 1})
    );
    // A host result's fields are the event's own, not nested.
    assert_eq!(lines[2]["host"], "app1");
    assert_eq!(lines[2]["delegated_to"], "proxy1");
    assert_eq!(lines[2]["status"], "changed");
    assert_eq!(lines[2]["item"], "a\nb");
    assert_eq!(lines[3]["hosts"][0][1]["ok"], 0);
}

/// The JUnit report of `events`, written when the recap arrives.
fn junit(events: &[Event]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xml");
    let mut j = Junit::new(path.clone());
    for e in events {
        j.event(e);
    }
    assert!(!path.exists(), "written before the recap");
    j.event(&Event::Recap { hosts: Vec::new() });
    std::fs::read_to_string(path).unwrap()
}

fn play(name: &str) -> Event {
    Event::PlayStart {
        name: name.into(),
        hosts: vec![],
    }
}

fn task(name: &str) -> Event {
    Event::TaskStart {
        name: name.into(),
        handler: false,
    }
}

#[test]
fn junit_counts_failures_errors_and_skips_per_play() {
    let mut failed = result("app2", Status::Failed);
    let stderr: Vec<String> = (1..=25).map(|i| format!("line {i}")).collect();
    failed.result = json!({"msg": "non-zero return code", "stderr": stderr.join("\n")});
    let mut ignored = result("app3", Status::Failed);
    ignored.ignored = true;
    let mut gone = result("ghost", Status::Unreachable);
    gone.result = json!({"msg": "no route"});
    let mut item = result("app1", Status::Failed);
    item.item = Some("a".into());
    let xml = junit(&[
        play("Site"),
        task("Say hi"),
        host(result("app1", Status::Changed)),
        host(failed),
        host(ignored),
        host(gone),
        host(result("app4", Status::Skipped)),
        // A loop's item: only its total is a test case.
        host(item),
        // The next `serial` batch of the same play: the same suite.
        play("Site"),
        task("Say hi"),
        host(result("app5", Status::Ok)),
        play("Second"),
        task("Other"),
        host(result("app1", Status::Ok)),
    ]);
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert!(
        xml.contains("<testsuite name=\"Site\" tests=\"6\" skipped=\"1\" errors=\"1\" failures=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuite name=\"Second\" tests=\"1\" skipped=\"0\" errors=\"0\" failures=\"0\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 7, "{xml}");
    assert!(xml.contains("<testcase name=\"Say hi\" classname=\"app2\""), "{xml}");
    // The failure's message and the last 20 lines of its stderr.
    let tail: Vec<String> = (6..=25).map(|i| format!("line {i}")).collect();
    assert!(
        xml.contains(&format!(
            "<failure message=\"non-zero return code\" type=\"failed\">{}</failure>",
            tail.join("\n")
        )),
        "{xml}"
    );
    assert!(!xml.contains("line 5\n"), "{xml}");
    assert!(
        xml.contains("<error message=\"no route\" type=\"unreachable\""),
        "{xml}"
    );
}

#[test]
fn junit_hides_censored_output() {
    let mut r = result("app1", Status::Failed);
    r.censored = true;
    r.result = json!({"msg": "s3cret", "stderr": "s3cret-token"});
    let xml = junit(&[play("Site"), task("Hidden"), host(r)]);
    assert!(!xml.contains("s3cret"), "{xml}");
    assert!(xml.contains("hidden due to the"), "{xml}");
}

#[test]
fn a_tee_gives_every_report_every_event() {
    let (a, b) = (Buf::default(), Buf::default());
    let mut tee = Tee(vec![
        Box::new(Human::new(a.clone(), false, 0, false, false)),
        Box::new(JsonLines::new(b.clone())),
    ]);
    tee.event(&host(result("app1", Status::Ok)));
    assert_eq!(a.text(), "ok: [app1]\n");
    assert_eq!(b.text().lines().count(), 1);
}

fn progress(host: &str, detail: Progress) -> Event {
    Event::Progress {
        host: host.into(),
        message: detail.message(),
        detail,
    }
}

fn waiting(what: &str, wait: WaitKind, elapsed_s: f64, left_s: Option<f64>) -> Progress {
    Progress::Waiting {
        wait,
        what: what.into(),
        elapsed_s,
        left_s,
    }
}

/// Without a progress bar (CI, a pipe) the log says each switch batch with where its time went,
/// when a pause or a wait starts and ends, and between them at most one heartbeat per interval.
#[test]
fn a_log_without_a_terminal_has_a_line_per_batch_and_wait_with_heartbeats() {
    let buf = Buf::default();
    let mut h = Human::new(buf.clone(), false, 0, false, false);
    h.heartbeat = std::time::Duration::from_millis(200);
    let batch = |k: usize| Progress::BatchDone {
        app: "web".into(),
        batch: k,
        of: 2,
        to: "green".into(),
        backends: vec![format!("app{k}")],
        write_ms: 3.2,
        validate_ms: 12.0,
        reload_ms: 1480.0,
        gate_ms: 8.6,
    };
    let lock = "the deploy lock of `web`, held by alice@ci since 2026-12-01 12:00:00 UTC";
    let events = [
        progress(
            "proxy1",
            Progress::BatchStart {
                app: "web".into(),
                batch: 1,
                of: 2,
                to: "green".into(),
                backends: vec!["app1".into()],
            },
        ),
        progress("proxy1", batch(1)),
        progress(
            "proxy1",
            Progress::WaitStart {
                wait: WaitKind::Pause,
                what: "batch 2/2 of web".into(),
                limit_s: Some(30.0),
            },
        ),
        progress("proxy1", waiting("batch 2/2 of web", WaitKind::Pause, 1.0, Some(29.0))),
        progress(
            "proxy1",
            Progress::WaitEnd {
                wait: WaitKind::Pause,
                what: "batch 2/2 of web".into(),
                waited_s: 30.0,
            },
        ),
        progress("proxy1", batch(2)),
        progress(
            "proxy2",
            Progress::WaitStart {
                wait: WaitKind::Lock,
                what: lock.into(),
                limit_s: Some(600.0),
            },
        ),
    ];
    for e in &events {
        h.event(e);
    }
    // Ticks every 50 ms for 500 ms: a heartbeat only every 200 ms.
    for i in 1..=10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        h.event(&progress(
            "proxy2",
            waiting(lock, WaitKind::Lock, i as f64 * 0.05, Some(600.0)),
        ));
    }
    h.event(&progress(
        "proxy2",
        Progress::WaitEnd {
            wait: WaitKind::Lock,
            what: lock.into(),
            waited_s: 75.0,
        },
    ));
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    let beats = lines.iter().filter(|l| l.contains("still waiting")).count();
    assert!((1..=3).contains(&beats), "{text}");
    let others: Vec<&str> = lines.into_iter().filter(|l| !l.contains("still waiting")).collect();
    assert_eq!(
        others,
        [
            "[proxy1] web: batch 1/2 → green (app1) done: write 3ms, validate 12ms, reload 1.5s, gate 9ms",
            "[proxy1] pause of 30s before batch 2/2 of web",
            "[proxy1] pause before batch 2/2 of web over after 30s",
            "[proxy1] web: batch 2/2 → green (app2) done: write 3ms, validate 12ms, reload 1.5s, gate 9ms",
            "[proxy2] waiting for the deploy lock of `web`, held by alice@ci since 2026-12-01 12:00:00 UTC (at most 10m00s)",
            "[proxy2] waited 1m15s for the deploy lock of `web`, held by alice@ci since 2026-12-01 12:00:00 UTC",
        ],
        "{text}"
    );
}

/// A dry run's switch plan of one batch says `1 batch`.
#[test]
fn a_switch_plan_of_one_batch_says_batch() {
    let mut r = result("proxy1", Status::Changed);
    r.result = json!({"changed": true, "expected_s": 0.0,
        "plan": [{"batch": 1, "offset_s": 0.0, "backends": ["app1", "app2"]}]});
    let text = human_with(true, false, 0, &[host(r)]);
    assert!(
        text.ends_with("    batch 1 at +0s: app1, app2\n    expected duration: 0s (1 batch)\n"),
        "{text}"
    );
}

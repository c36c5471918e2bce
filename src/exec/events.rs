//! The event stream of a run: every report (human, JSON, JUnit) is a view of these.

use crate::modules::progress::Progress;
use crate::modules::{FileDiff, Guard};
use crate::secrets::Secrets;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
}

/// One host's (or one loop item's) result of one task.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub host: String,
    /// `delegate_to` target, shown as `[app1 -> proxy1]`.
    pub delegated_to: Option<String>,
    pub status: Status,
    /// `(item=...)` label for loop items.
    pub item: Option<String>,
    pub ignored: bool,
    /// Whether the result is hidden (`no_log`).
    pub censored: bool,
    /// What the task produced, as registered (JSON).
    pub result: serde_json::Value,
    pub diffs: Vec<FileDiff>,
    /// What the change depends on (the switch's live colour), for saved plans.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<Guard>,
    /// For `debug`: the value to show.
    pub debug: Option<serde_json::Value>,
    pub duration_ms: u64,
    /// Check mode: a command that would have run.
    pub would_run: bool,
}

impl HostResult {
    fn bare(host: &str, status: Status, result: serde_json::Value) -> HostResult {
        HostResult {
            host: host.to_string(),
            delegated_to: None,
            status,
            item: None,
            ignored: false,
            censored: false,
            result,
            diffs: Vec::new(),
            guards: Vec::new(),
            debug: None,
            duration_ms: 0,
            would_run: false,
        }
    }

    /// A host that a condition left out (an include's `when`).
    pub fn skipped(host: &str) -> HostResult {
        HostResult::bare(
            host,
            Status::Skipped,
            serde_json::json!({"changed": false, "skip_reason": "Conditional result was False"}),
        )
    }

    /// A host that failed outside any module (an include that could not be read).
    pub fn failed(host: &str, msg: &str) -> HostResult {
        HostResult::bare(host, Status::Failed, serde_json::json!({"failed": true, "msg": msg}))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run begins (after every check passed).
    RunStart {
        playbook: String,
        check: bool,
    },
    PlayStart {
        name: String,
        hosts: Vec<String>,
    },
    NoHostsMatched,
    TaskStart {
        name: String,
        handler: bool,
    },
    /// One host's result; loop items come first as `item` results, then the task's total.
    Host(Box<HostResult>),
    Retry {
        host: String,
        task: String,
        retries_left: u32,
    },
    NoMoreHosts,
    /// An `include_tasks`/`include_role` led these hosts to a file (or role), for one loop item.
    Included {
        target: String,
        hosts: Vec<String>,
        item: Option<String>,
    },
    Warning {
        message: String,
    },
    /// Every host of the task has a result.
    TaskEnd {
        name: String,
        duration_ms: u64,
    },
    /// The run is over (after the recap).
    RunEnd {
        duration_ms: u64,
        failed: bool,
        unreachable: bool,
        interrupted: bool,
    },
    /// How a long task is getting on (the switch's batches, the pause counting down, waits):
    /// `message` in words, and the typed fields of its `kind`.
    Progress {
        host: String,
        message: String,
        #[serde(flatten)]
        detail: Progress,
    },
    Recap {
        hosts: Vec<(String, Stats)>,
    },
}

impl Event {
    pub fn host(r: HostResult) -> Event {
        Event::Host(Box::new(r))
    }
}

impl Event {
    /// Mask every text this event carries with the run's secrets.
    pub fn mask(&mut self, secrets: &Secrets) {
        if secrets.is_empty() {
            return;
        }
        let m = |s: &mut String| secrets.mask_in_place(s);
        match self {
            Event::PlayStart { name, .. } | Event::TaskStart { name, .. } => m(name),
            Event::Host(r) => {
                secrets.mask_json(&mut r.result);
                if let Some(d) = &mut r.debug {
                    secrets.mask_json(d);
                }
                if let Some(i) = &mut r.item {
                    m(i);
                }
                for d in &mut r.diffs {
                    m(&mut d.path);
                    m(&mut d.before);
                    m(&mut d.after);
                }
                for g in &mut r.guards {
                    m(&mut g.what);
                    m(&mut g.before);
                    m(&mut g.after);
                }
            }
            Event::Retry { task, .. } => m(task),
            Event::Included { target, item, .. } => {
                m(target);
                if let Some(i) = item {
                    m(i);
                }
            }
            Event::Warning { message } => m(message),
            Event::Progress { message, detail, .. } => {
                m(message);
                detail.mask(secrets);
            }
            Event::TaskEnd { name, .. } => m(name),
            Event::RunStart { .. }
            | Event::RunEnd { .. }
            | Event::NoHostsMatched
            | Event::NoMoreHosts
            | Event::Recap { .. } => {}
        }
    }
}

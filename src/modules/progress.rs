//! What a long module says while it runs (the switch's batches, waits for a lock, a health
//! check, a pause, a drain), typed so that each report words it its own way: a terminal line
//! that counts down, a CI log line per batch and per wait, JSON fields for machines.

use serde::Serialize;
use std::time::{Duration, Instant};

/// What is waited for, so that a report can show a switch's pause as the batch line counting
/// down and every other wait as "waiting for ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// The switch's pause between two batches.
    Pause,
    /// Another rollout's deploy lock.
    Lock,
    /// Containers or backends becoming healthy.
    Health,
    /// The old colour's connections draining after the switch.
    Drain,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// A remark worth a line (a resumed switch says where it goes on from).
    Note { text: String },
    /// A switch batch starts moving `backends` to `to`.
    BatchStart {
        app: String,
        batch: usize,
        of: usize,
        to: String,
        backends: Vec<String>,
    },
    /// A switch batch serves on this proxy, with where its time went.
    BatchDone {
        app: String,
        batch: usize,
        of: usize,
        to: String,
        backends: Vec<String>,
        write_ms: f64,
        validate_ms: f64,
        reload_ms: f64,
        gate_ms: f64,
    },
    /// A wait begins: `what` in words, at most `limit_s` seconds when bounded.
    WaitStart {
        wait: WaitKind,
        what: String,
        limit_s: Option<f64>,
    },
    /// Still waiting (about once a second): how long so far, and what is left when bounded.
    Waiting {
        wait: WaitKind,
        what: String,
        elapsed_s: f64,
        left_s: Option<f64>,
    },
    /// A line of a running command's output (`roll run`), without its newline.
    Output {
        stream: crate::connection::OutStream,
        line: String,
    },
    /// The wait is over (done, failed or interrupted), after `waited_s` seconds.
    WaitEnd {
        wait: WaitKind,
        what: String,
        waited_s: f64,
    },
}

/// Whole seconds for people: `27s`, `2m05s`, `1h02m`.
pub fn secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl Progress {
    /// The event as one sentence (`message` in `--format json`, the terminal's fallback).
    pub fn message(&self) -> String {
        match self {
            Progress::Note { text } => text.clone(),
            Progress::BatchStart {
                app,
                batch,
                of,
                to,
                backends,
            } => format!("{app}: batch {batch}/{of} → {to} ({})", backends.join(", ")),
            Progress::BatchDone {
                app,
                batch,
                of,
                to,
                backends,
                ..
            } => format!("{app}: batch {batch}/{of} → {to} ({}) done", backends.join(", ")),
            Progress::WaitStart { what, limit_s, .. } => match limit_s {
                Some(l) => format!("waiting for {what} (at most {})", secs(*l)),
                None => format!("waiting for {what}"),
            },
            Progress::Waiting {
                what,
                elapsed_s,
                left_s,
                ..
            } => match left_s {
                Some(l) => format!("waiting for {what}: {}, {} left", secs(*elapsed_s), secs(*l)),
                None => format!("waiting for {what}: {}", secs(*elapsed_s)),
            },
            Progress::WaitEnd { what, waited_s, .. } => {
                format!("waited {} for {what}", secs(*waited_s))
            }
            Progress::Output { line, .. } => line.clone(),
        }
    }
}

/// A wait under way: says when it starts, [`Wait::tick`] says it goes on (at most once a
/// second), and dropping it says it ended, whichever way the waiting code returns.
pub struct Wait<'a> {
    say: &'a (dyn Fn(Progress) + Send + Sync),
    kind: WaitKind,
    what: String,
    limit: Option<Duration>,
    start: Instant,
    last: Option<Instant>,
}

impl<'a> Wait<'a> {
    pub fn start(
        say: &'a (dyn Fn(Progress) + Send + Sync),
        kind: WaitKind,
        what: String,
        limit: Option<Duration>,
    ) -> Wait<'a> {
        say(Progress::WaitStart {
            wait: kind,
            what: what.clone(),
            limit_s: limit.map(|l| l.as_secs_f64()),
        });
        Wait {
            say,
            kind,
            what,
            limit,
            start: Instant::now(),
            last: None,
        }
    }

    /// Say how the wait goes on, unless that was said less than a second ago.
    pub fn tick(&mut self) {
        if self.last.is_some_and(|t| t.elapsed() < Duration::from_millis(950)) {
            return;
        }
        self.last = Some(Instant::now());
        let elapsed = self.start.elapsed();
        (self.say)(Progress::Waiting {
            wait: self.kind,
            what: self.what.clone(),
            elapsed_s: elapsed.as_secs_f64(),
            left_s: self.limit.map(|l| l.saturating_sub(elapsed).as_secs_f64()),
        });
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        (self.say)(Progress::WaitEnd {
            wait: self.kind,
            what: std::mem::take(&mut self.what),
            waited_s: self.start.elapsed().as_secs_f64(),
        });
    }
}

impl Progress {
    /// Mask the run's secrets in every text (a backend or a lock holder could be templated
    /// from one).
    pub fn mask(&mut self, secrets: &crate::secrets::Secrets) {
        let m = |s: &mut String| secrets.mask_in_place(s);
        match self {
            Progress::Note { text } | Progress::Output { line: text, .. } => m(text),
            Progress::BatchStart { app, to, backends, .. } | Progress::BatchDone { app, to, backends, .. } => {
                m(app);
                m(to);
                backends.iter_mut().for_each(m);
            }
            Progress::WaitStart { what, .. } | Progress::Waiting { what, .. } | Progress::WaitEnd { what, .. } => {
                m(what)
            }
        }
    }
}

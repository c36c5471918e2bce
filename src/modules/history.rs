//! An app's release history, kept in its switch state on each proxy: which release went live on
//! which colour and how each attempt ended, and from it where a rollback goes.
//!
//! The switch (`roll.nginx_switch`) records what it does; `roll.bluegreen_record` records a
//! deploy that failed before any traffic moved; `roll.bluegreen_facts` reads it to decide.

use serde::{Deserialize, Serialize};

/// At most this many releases are kept, oldest dropped first: enough to roll back to any
/// release whose image `keep` retains, small enough to read at a glance.
pub const HISTORY_LEN: usize = 20;

/// How an attempt at a release ended (or stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It serves now.
    Live,
    /// It served, until a later deploy replaced it: a release a rollback can go back to.
    Replaced,
    /// It served (or started to), until a rollback left it.
    RolledBack,
    /// It never served all traffic: its containers did not become healthy, or a batch failed.
    Failed,
    /// Its switch was interrupted part-way (Ctrl-C).
    Interrupted,
    /// A batch of its switch failed and every batch went back to the live colour
    /// (`on_failure: abort`): it never served all traffic.
    Aborted,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Live => "live",
            Outcome::Replaced => "replaced",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Aborted => "aborted",
        }
    }

    /// An attempt that did not finish: a re-run of the same release and colour finishes it.
    pub fn unfinished(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Interrupted | Outcome::Aborted)
    }
}

/// One release's attempt on one colour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub release: String,
    pub colour: String,
    /// Unix seconds of the last change of its outcome.
    pub at: u64,
    pub outcome: Outcome,
    /// The fingerprint of the configuration it was deployed with (`roll.bluegreen_facts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Why it failed or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A rollback's switch to it (that stopped part-way): a re-run of the rollback goes on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

fn trim(history: &mut Vec<Release>) {
    let extra = history.len().saturating_sub(HISTORY_LEN);
    history.drain(..extra);
}

/// `release` went live on `colour` (a switch finished). The release that served before is
/// `replaced`, or `rolled back` when this is a rollback, which also marks an unfinished attempt
/// it returns from; a switch that finishes an unfinished attempt of the same release and colour
/// turns that entry live rather than adding one.
pub fn went_live(
    history: &mut Vec<Release>,
    release: &str,
    colour: &str,
    config: Option<&str>,
    rollback: bool,
    at: u64,
) {
    let same = |r: &Release| r.release == release && r.colour == colour;
    if rollback
        && let Some(last) = history.last_mut()
        && last.outcome.unfinished()
        && !same(last)
    {
        last.outcome = Outcome::RolledBack;
        last.at = at;
    }
    let current = history.iter().rposition(|r| r.outcome == Outcome::Live);
    if let Some(i) = current {
        if same(&history[i]) {
            history[i].config = config.map(str::to_string).or(history[i].config.take());
            return;
        }
        history[i].outcome = if rollback {
            Outcome::RolledBack
        } else {
            Outcome::Replaced
        };
        history[i].at = at;
    }
    match history.last_mut() {
        Some(last) if same(last) && last.outcome.unfinished() => {
            last.outcome = Outcome::Live;
            last.at = at;
            last.note = None;
            if config.is_some() {
                last.config = config.map(str::to_string);
            }
        }
        _ => history.push(Release {
            release: release.to_string(),
            colour: colour.to_string(),
            at,
            outcome: Outcome::Live,
            config: config.map(str::to_string),
            note: None,
            rollback: false,
        }),
    }
    trim(history);
}

/// An attempt at `release` on `colour` (a rollback's, with `rollback`) ended without going live
/// (`Failed`, `Interrupted`).
pub fn stopped(
    history: &mut Vec<Release>,
    release: &str,
    colour: &str,
    outcome: Outcome,
    note: &str,
    rollback: bool,
    at: u64,
) {
    match history.last_mut() {
        Some(last) if last.release == release && last.colour == colour && last.outcome.unfinished() => {
            last.outcome = outcome;
            last.note = Some(note.to_string());
            last.rollback = rollback;
            last.at = at;
        }
        _ => history.push(Release {
            release: release.to_string(),
            colour: colour.to_string(),
            at,
            outcome,
            config: None,
            note: Some(note.to_string()),
            rollback,
        }),
    }
    trim(history);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(h: &[Release]) -> Vec<String> {
        h.iter()
            .map(|r| format!("{} {} {}", r.release, r.colour, r.outcome.label()))
            .collect()
    }

    #[test]
    fn deploys_replace_rollbacks_mark_what_they_leave_and_resumes_finish_the_attempt() {
        let mut h = Vec::new();
        went_live(&mut h, "1", "blue", Some("c1"), false, 1);
        went_live(&mut h, "2", "green", None, false, 2);
        assert_eq!(entries(&h), ["1 blue replaced", "2 green live"]);
        went_live(&mut h, "1", "blue", None, true, 3);
        assert_eq!(entries(&h), ["1 blue replaced", "2 green rolled back", "1 blue live"]);
        // An interrupted switch to 3, resumed by a re-run, is one entry that goes live.
        stopped(
            &mut h,
            "3",
            "green",
            Outcome::Interrupted,
            "after batch 1 of 3",
            false,
            4,
        );
        stopped(
            &mut h,
            "3",
            "green",
            Outcome::Interrupted,
            "after batch 2 of 3",
            false,
            5,
        );
        went_live(&mut h, "3", "green", None, false, 6);
        assert_eq!(entries(&h)[2..], ["1 blue replaced", "3 green live"]);
        assert_eq!(h.last().unwrap().note, None);
        for k in 0..30 {
            went_live(
                &mut h,
                &k.to_string(),
                if k % 2 == 0 { "blue" } else { "green" },
                None,
                false,
                7,
            );
        }
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!(h.last().unwrap().release, "29");
    }
}

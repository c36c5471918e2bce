//! An app's release history, kept in its switch state on each proxy: which release went live on
//! which colour and how each attempt ended, and from it where a rollback goes.
//!
//! The switch (`roll.nginx_switch`) records what it does; `roll.bluegreen_record` records a
//! deploy that failed before any traffic moved; `roll.bluegreen_facts` reads it to decide.

use super::nginx_switch::State;
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
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Live => "live",
            Outcome::Replaced => "replaced",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// An attempt that did not finish: a re-run of the same release and colour finishes it.
    fn unfinished(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Interrupted)
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

/// Where a rollback goes: a release and the colour it will serve on.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub release: String,
    pub colour: String,
    /// Why this one, for the operator.
    pub why: String,
}

fn other(colour: &str) -> String {
    if colour == "blue" { "green" } else { "blue" }.to_string()
}

/// The rollback's target in `state`: with `named`, that release (the live colour if it is the
/// live release, else the other one, where the deploy of it will start its containers again);
/// without, after a failed or interrupted deploy (or a switch stopped part-way) the live
/// release, else the release that was live before the current one.
pub fn rollback_target(state: &State, named: Option<&str>) -> Result<Target, String> {
    let live_release = state.release.clone();
    let retained = || {
        let mut seen: Vec<&str> = Vec::new();
        for r in state.history.iter().rev() {
            if !seen.contains(&r.release.as_str()) {
                seen.push(&r.release);
            }
        }
        if seen.is_empty() {
            "none recorded".to_string()
        } else {
            seen.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
        }
    };
    if let Some(name) = named {
        if live_release.as_deref() == Some(name) {
            return Ok(Target {
                release: name.to_string(),
                colour: state.live.clone(),
                why: format!("release {name} is the live one, on {}", state.live),
            });
        }
        if !state.history.iter().any(|r| r.release == name) {
            return Err(format!(
                "release `{name}` is not in the history of `{}` (releases known, newest first: {})",
                state.app,
                retained()
            ));
        }
        return Ok(Target {
            release: name.to_string(),
            colour: other(&state.live),
            why: format!("release {name} was asked for"),
        });
    }
    let Some(live) = live_release else {
        return Err(format!(
            "the state of `{}` names no live release (it was written before roll kept release history)",
            state.app
        ));
    };
    let under_way = state.target.is_some() || state.status != "live";
    let current = state.history.iter().rposition(|r| r.outcome == Outcome::Live);
    let after_current = match current {
        Some(i) => &state.history[i + 1..],
        None => &state.history[..],
    };
    let unfinished = after_current.iter().rev().find(|r| r.outcome.unfinished());
    // A rollback that stopped part-way goes on where it was going, not back to where it came from.
    if under_way
        && let Some(r) = unfinished.filter(|r| r.rollback)
        && state.target.as_deref() == Some(r.colour.as_str())
    {
        return Ok(Target {
            release: r.release.clone(),
            colour: r.colour.clone(),
            why: format!(
                "the rollback to release {} on {} stopped part-way: it goes on",
                r.release, r.colour
            ),
        });
    }
    if under_way || unfinished.is_some() {
        let what = after_current
            .iter()
            .rev()
            .find(|r| r.outcome.unfinished())
            .map(|r| format!("release {} {} on {}", r.release, r.outcome.label(), r.colour))
            .unwrap_or_else(|| format!("the switch stopped ({})", state.status));
        return Ok(Target {
            release: live.clone(),
            colour: state.live.clone(),
            why: format!("{what}: back to release {live}, live on {}", state.live),
        });
    }
    let before = current.map_or(0, |i| i);
    match state.history[..before]
        .iter()
        .rev()
        .find(|r| r.outcome == Outcome::Replaced && r.release != live)
    {
        Some(r) => Ok(Target {
            release: r.release.clone(),
            colour: other(&state.live),
            why: format!("release {} was live before release {live}", r.release),
        }),
        None => Err(format!(
            "nothing to roll back to: release {live} is live on {} and no release served before it \
             (releases known, newest first: {})",
            state.live,
            retained()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(h: &[Release]) -> Vec<String> {
        h.iter()
            .map(|r| format!("{} {} {}", r.release, r.colour, r.outcome.label()))
            .collect()
    }

    fn settled(live: &str, release: &str, history: Vec<Release>) -> State {
        State {
            app: "web".into(),
            live: live.into(),
            release: Some(release.into()),
            status: "live".into(),
            history,
            ..State::default()
        }
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

    #[test]
    fn a_rollback_goes_to_the_release_before_after_a_complete_deploy() {
        let mut h = Vec::new();
        went_live(&mut h, "1", "blue", None, false, 1);
        went_live(&mut h, "2", "green", None, false, 2);
        let t = rollback_target(&settled("green", "2", h.clone()), None).unwrap();
        assert_eq!((t.release.as_str(), t.colour.as_str()), ("1", "blue"));
        // After rolling back to 1, nothing served before it: a second rollback is refused.
        went_live(&mut h, "1", "blue", None, true, 3);
        let err = rollback_target(&settled("blue", "1", h.clone()), None).unwrap_err();
        assert!(err.contains("nothing to roll back to"), "{err}");
        // A named release in the history goes to the other colour; an unknown one is refused.
        let t = rollback_target(&settled("blue", "1", h.clone()), Some("2")).unwrap();
        assert_eq!((t.release.as_str(), t.colour.as_str()), ("2", "green"));
        let err = rollback_target(&settled("blue", "1", h), Some("7")).unwrap_err();
        assert!(err.contains("`1`, `2`"), "{err}");
    }

    #[test]
    fn after_a_failed_or_interrupted_deploy_a_rollback_returns_to_the_live_release() {
        let mut h = Vec::new();
        went_live(&mut h, "1", "blue", None, false, 1);
        went_live(&mut h, "2", "green", None, false, 2);
        // Release 3 did not become healthy: nothing switched, 2 stays live on green.
        stopped(&mut h, "3", "blue", Outcome::Failed, "not healthy", false, 3);
        let t = rollback_target(&settled("green", "2", h.clone()), None).unwrap();
        assert_eq!((t.release.as_str(), t.colour.as_str()), ("2", "green"), "{}", t.why);
        // Interrupted after batch 1 of 3 on the way to blue: back to green.
        let mut s = settled("green", "2", h);
        s.target = Some("blue".into());
        s.status = "interrupted after batch 1 of 3".into();
        let t = rollback_target(&s, None).unwrap();
        assert_eq!((t.release.as_str(), t.colour.as_str()), ("2", "green"));
    }

    #[test]
    fn a_rollback_interrupted_part_way_goes_on_when_run_again() {
        let mut h = Vec::new();
        went_live(&mut h, "1", "blue", None, false, 1);
        went_live(&mut h, "2", "green", None, false, 2);
        stopped(&mut h, "1", "blue", Outcome::Interrupted, "after batch 1 of 3", true, 3);
        let mut s = settled("green", "2", h);
        s.target = Some("blue".into());
        s.status = "interrupted after batch 1 of 3".into();
        let t = rollback_target(&s, None).unwrap();
        assert_eq!((t.release.as_str(), t.colour.as_str()), ("1", "blue"), "{}", t.why);
        // When it finishes, release 2 is the one rolled back.
        went_live(&mut s.history, "1", "blue", None, true, 4);
        assert_eq!(
            entries(&s.history),
            ["1 blue replaced", "2 green rolled back", "1 blue live"]
        );
    }
}

//! `roll.bluegreen_facts` and `roll.bluegreen_record`: the blue/green decisions a deploy and a
//! rollback make from an app's switch state on the proxy (live colour and release, the next
//! colour, what to retire, whether anything differs, where a rollback goes), set as the fact
//! `bluegreen`; and the record of a deploy that failed before its switch.
//!
//! The decisions live here rather than in Jinja over the state file because they read its
//! history (`modules::history`): a rollback after a failed or interrupted deploy goes back to
//! the live release, not forward to the failed one.

use super::history::{self, Outcome};
use super::nginx_switch::State;
use super::spec::{ModuleSpec, ROLL, p, req};
use super::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::values::value_to_string;
use minijinja::Value;
use minijinja::value::ValueKind;
use sha2::{Digest, Sha256};

/// `roll.bluegreen_facts`: the fact `bluegreen`, read from the proxy's switch state.
pub struct BluegreenFacts;

static BLUEGREEN_FACTS: ModuleSpec = ModuleSpec {
    params: &[
        req("app"),
        p("state_dir"),
        p("release"),
        p("config"),
        p("files"),
        p("rollback"),
    ],
    facts: &["bluegreen"],
    ..ModuleSpec::new("bluegreen_facts", ROLL)
};

impl Module for BluegreenFacts {
    fn spec(&self) -> &'static ModuleSpec {
        &BLUEGREEN_FACTS
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(async move { facts(args, ctx).await.map(Plan::Unchanged) })
    }
}

/// `roll.bluegreen_record`: an attempt at a release that ended before its switch, in the history.
pub struct BluegreenRecord;

static BLUEGREEN_RECORD: ModuleSpec = ModuleSpec {
    params: &[
        req("app"),
        p("state_dir"),
        req("release"),
        req("colour"),
        p("outcome").choices(&["failed", "interrupted"]),
        p("note"),
    ],
    ..ModuleSpec::new("bluegreen_record", ROLL)
};

impl Module for BluegreenRecord {
    fn spec(&self) -> &'static ModuleSpec {
        &BLUEGREEN_RECORD
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_record(args, ctx))
    }
}

fn state_dir(args: &Args) -> Result<String, Failure> {
    Ok(args
        .str("state_dir")?
        .unwrap_or_else(|| "/var/lib/roll".into())
        .trim_end_matches('/')
        .to_string())
}

async fn read_state(ctx: &Ctx<'_>, path: &str) -> Result<Option<State>, Failure> {
    match ctx.conn.read_file(path, ctx.become_user.as_deref()).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("state file `{path}` is not valid: {e}").into()),
    }
}

fn other(colour: &str) -> &'static str {
    if colour == "blue" { "green" } else { "blue" }
}

/// A short fingerprint of what the deploy configures besides the release: the `config` values
/// (canonical JSON) and each of `files` rendered in the host's scope.
fn fingerprint(args: &Args, ctx: &Ctx<'_>) -> Result<String, Failure> {
    let mut h = Sha256::new();
    if let Some(c) = args.get("config") {
        let json = serde_json::to_value(c).map_err(|e| format!("`config` cannot be read: {e}"))?;
        h.update(json.to_string().as_bytes());
    }
    let files: Vec<String> = match args.get("files") {
        None => Vec::new(),
        Some(v) if v.kind() == ValueKind::Seq => v
            .try_iter()
            .map_err(|e| e.to_string())?
            .map(|x| value_to_string(&x))
            .collect(),
        Some(v) => vec![value_to_string(v)],
    };
    for f in files {
        let file = ctx.template_source(&f)?;
        let text = ctx
            .render_template(&file, ctx.scope)
            .map_err(|e| format!("`files`: template `{f}` {e}"))?;
        h.update([0u8]);
        h.update(f.as_bytes());
        h.update([0u8]);
        h.update(text.as_bytes());
    }
    Ok(h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
}

async fn facts(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let app = args.req_str("app")?;
    let dir = state_dir(args)?;
    let file = format!("{dir}/{app}.json");
    let state = read_state(ctx, &file).await?;
    let config = fingerprint(args, ctx)?;
    let release = args.str("release")?.filter(|r| !r.is_empty());
    let rollback = args.bool("rollback", false)?;
    let live = state.as_ref().map_or("none".to_string(), |s| s.live.clone());
    let live_release = state.as_ref().and_then(|s| s.release.clone()).unwrap_or_default();
    let next = match &state {
        // A switch under way goes on to its colour.
        Some(s) => s.target.clone().unwrap_or_else(|| other(&s.live).to_string()),
        None => "blue".to_string(),
    };
    let settled = state.as_ref().is_some_and(|s| s.status == "live" && s.target.is_none());
    let same_config = state.as_ref().and_then(|s| s.config.as_deref()) == Some(config.as_str());
    let up_to_date = !rollback && settled && release.as_deref() == Some(live_release.as_str()) && same_config;
    let mut pairs: Vec<(&str, Value)> = vec![
        ("app", Value::from(app.as_str())),
        ("state_dir", Value::from(dir.as_str())),
        ("live", Value::from(live.as_str())),
        ("live_release", Value::from(live_release.as_str())),
        ("next", Value::from(next.as_str())),
        (
            "status",
            Value::from(state.as_ref().map_or("none", |s| s.status.as_str())),
        ),
        ("config", Value::from(config.as_str())),
        ("up_to_date", Value::from(up_to_date)),
    ];
    // What a deploy retires once traffic moved: the colour that was live; when nothing is to
    // do, the other one, so that a re-run stops what an interrupted retire left running.
    let retire = if up_to_date { next.clone() } else { live.clone() };
    // The releases known, newest first, each once: `keep` counts in this order.
    let mut releases: Vec<String> = Vec::new();
    for r in state.iter().flat_map(|s| s.history.iter().rev()) {
        if !matches!(r.outcome, Outcome::Failed | Outcome::Aborted) && !releases.contains(&r.release) {
            releases.push(r.release.clone());
        }
    }
    let mut msg = if up_to_date {
        format!("release {live_release} is live on {live} with this configuration: nothing to do")
    } else if live == "none" {
        format!("nothing is live yet: the first deploy goes to {next}")
    } else if release.as_deref() == Some(live_release.as_str()) && settled {
        format!("release {live_release} is live on {live} with another configuration: it goes to {next}")
    } else {
        format!("live: {live} (release {live_release}); next: {next}")
    };
    if rollback {
        let Some(s) = &state else {
            return Err(format!(
                "no switch state for `{app}` in `{file}`: nothing was deployed, so nothing can be rolled back"
            )
            .into());
        };
        let t = rollback_target(s, release.as_deref()).map_err(|e| {
            let mut r = ModuleResult::failed(format!(
                "{e}; name a release to go to with `-e release=X`, or deploy instead"
            ));
            r.data.insert("history".into(), crate::values::from_serde(&s.history));
            Failure::Failed(Box::new(r))
        })?;
        // Backends the rollback moves: those not on the target colour (or in a batch a dead run
        // left pending).
        let moves = s.backends.values().any(|c| *c != t.colour) || !s.pending.is_empty() || s.live != t.colour;
        msg = format!(
            "{}: rolling back to release {} on {}{}",
            t.why,
            t.release,
            t.colour,
            if moves { "" } else { " (traffic is already there)" }
        );
        pairs.push(("target", Value::from(t.colour.as_str())));
        pairs.push(("target_release", Value::from(t.release.as_str())));
        pairs.push(("retire", Value::from(other(&t.colour))));
        pairs.push(("switch", Value::from(moves)));
    } else {
        pairs.push(("retire", Value::from(retire.as_str())));
    }
    pairs.push(("releases", Value::from(releases)));
    pairs.push((
        "history",
        state.as_ref().map_or(Value::from(Vec::<Value>::new()), |s| {
            crate::values::from_serde(&s.history)
        }),
    ));
    let facts = Value::from_pairs(pairs);
    let mut r = ModuleResult::ok().with_msg(msg);
    r.facts.insert("bluegreen".into(), facts.clone());
    r.data.insert("bluegreen".into(), facts);
    Ok(r)
}

struct Record {
    file: String,
    state: State,
}

apply_by!(Record, apply_record);

async fn check_record(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let app = args.req_str("app")?;
    let file = format!("{}/{app}.json", state_dir(args)?);
    let release = args.req_str("release")?;
    let colour = args.req_str("colour")?;
    let outcome = match args.str("outcome")?.as_deref() {
        Some("interrupted") => Outcome::Interrupted,
        _ => Outcome::Failed,
    };
    let note = args.str("note")?.unwrap_or_default();
    // Before the first deploy went live there is no state to add to: nothing serves, and the
    // next deploy starts afresh.
    let Some(mut state) = read_state(ctx, &file).await? else {
        return Ok(Plan::Unchanged(
            ModuleResult::ok().with_msg(format!("no switch state for `{app}` yet: nothing to record")),
        ));
    };
    let before = state.history.last().cloned();
    history::stopped(&mut state.history, &release, &colour, outcome, &note, false, now());
    let mut preview =
        ModuleResult::changed().with_msg(format!("release {release} on {colour}: {} ({note})", outcome.label()));
    preview.diffs.push(FileDiff {
        path: format!("history of {app}"),
        before: before.map_or(String::new(), |r| {
            format!("{} {} {}\n", r.release, r.colour, r.outcome.label())
        }),
        after: format!("{release} {colour} {}\n", outcome.label()),
        change: Change::Update,
    });
    Ok(Plan::Change {
        preview,
        action: Box::new(Record { file, state }),
    })
}

async fn apply_record(a: Record, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let json = serde_json::to_string_pretty(&a.state).map_err(|e| e.to_string())?;
    super::files::write_record(ctx, &a.file, json.into_bytes()).await?;
    Ok(ModuleResult::changed())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where a rollback goes: a release and the colour it will serve on.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub release: String,
    pub colour: String,
    /// Why this one, for the operator.
    pub why: String,
}

/// The rollback's target in `state`: with `named`, that release (the live colour if it is the
/// live release, else the other one, where the deploy of it will start its containers again);
/// without, after a failed or interrupted deploy (or a switch stopped part-way) the live
/// release, else the release that was live before the current one.
pub(super) fn rollback_target(state: &State, named: Option<&str>) -> Result<Target, String> {
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
            colour: other(&state.live).to_string(),
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
            colour: other(&state.live).to_string(),
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
    use super::history::{Release, stopped, went_live};
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

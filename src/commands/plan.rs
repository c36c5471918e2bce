//! `roll plan -o FILE` and `roll apply FILE`: a dry run saved as a plan, applied exactly.
//!
//! The plan records how the run was asked for (the `roll play` arguments and directory) and
//! what the dry run found, step by step: per task and host whether it would change, and for
//! every file, container and upstream it would touch, a hash of the content before and after.
//! `apply` runs the same dry run again and compares: if anything differs (a file edited, the
//! live colour moved, an image retagged), the plan is stale and nothing runs; otherwise the play
//! runs for real. Secrets never reach the file: results are masked before they are hashed, and
//! a plan whose arguments held a secret value is refused (pass secrets through the environment).

use crate::cli::{ApplyArgs, Cli, Command, PlanArgs};
use crate::exec::Reporter;
use crate::exec::events::{Event, Status};
use crate::exit::Exit;
use clap::Parser;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

pub const PLAN_VERSION: u32 = 1;

/// What the dry run found for one task on one host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub play: String,
    pub task: String,
    pub host: String,
    /// `ok`, `changed`, `skipped`, `failed` or `unreachable`.
    pub status: String,
    /// What it would touch: path, and short hashes of the content before and after.
    pub touches: Vec<Touch>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Touch {
    pub path: String,
    pub before: String,
    pub after: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanFile {
    pub v: u32,
    /// Unix seconds.
    pub created: u64,
    /// The directory `roll plan` ran in. `apply` runs in its own directory when the plan's
    /// playbook is there (a CI job's checkout moves between jobs), else here.
    pub cwd: String,
    /// The `roll play` arguments the plan was made with.
    pub args: Vec<String>,
    pub changes: usize,
    pub steps: Vec<Step>,
}

fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Records the steps of a run (after secrets were masked: events arrive masked).
struct Recorder {
    steps: Arc<Mutex<Vec<Step>>>,
    play: String,
    task: String,
}

impl Reporter for Recorder {
    fn event(&mut self, e: &Event) {
        match e {
            Event::PlayStart { name, .. } => self.play = name.clone(),
            Event::TaskStart { name, .. } => self.task = name.clone(),
            Event::Host(r) if r.item.is_none() => {
                let status = match r.status {
                    Status::Ok => "ok",
                    Status::Changed => "changed",
                    Status::Skipped => "skipped",
                    Status::Failed => "failed",
                    Status::Unreachable => "unreachable",
                };
                let mut touches: Vec<Touch> = r
                    .diffs
                    .iter()
                    .map(|d| Touch {
                        path: d.path.clone(),
                        before: short_hash(&d.before),
                        after: short_hash(&d.after),
                    })
                    .collect();
                // What the changes depend on (the colour each proxy is live on).
                touches.extend(r.guards.iter().map(|g| Touch {
                    path: g.what.clone(),
                    before: g.before.clone(),
                    after: g.after.clone(),
                }));
                self.steps.lock().unwrap_or_else(|e| e.into_inner()).push(Step {
                    play: self.play.clone(),
                    task: self.task.clone(),
                    host: r.host.clone(),
                    status: status.into(),
                    touches,
                });
            }
            _ => {}
        }
    }
}

fn recorder() -> (Box<dyn Reporter>, Arc<Mutex<Vec<Step>>>) {
    let steps: Arc<Mutex<Vec<Step>>> = Arc::default();
    let r = Recorder {
        steps: steps.clone(),
        play: String::new(),
        task: String::new(),
    };
    (Box::new(r), steps)
}

/// The `roll play` arguments of this `roll plan` invocation.
fn play_args_of_plan() -> Vec<String> {
    let mut out = vec!["play".to_string()];
    let mut args = std::env::args().skip(1).skip_while(|a| a != "plan").skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-o" | "--out" => {
                args.next();
            }
            "--detailed-exitcode" | "--check" | "-C" | "--diff" | "-D" => {}
            _ if a.starts_with("--out=") => {}
            _ => out.push(a),
        }
    }
    out
}

pub fn plan(a: PlanArgs) -> Exit {
    let detailed = a.play.detailed_exitcode;
    let mut play = a.play;
    play.check = true;
    play.diff = true;
    // The plan's own exit code says it below, from the steps it saved.
    play.detailed_exitcode = false;
    let args = play_args_of_plan();
    let (rec, steps) = recorder();
    let played = crate::commands::play::run_with(play, Some(rec), false);
    let exit = played.exit;
    if !matches!(exit, Exit::Ok) {
        // A CI job's log must not leave it open whether the artifact is a plan to apply.
        let left = if a.out.exists() {
            format!(" ({} is left as it was)", a.out.display())
        } else {
            String::new()
        };
        eprintln!(
            "error: the dry run failed (exit {}); no plan was written{left}",
            exit.code()
        );
        return if detailed { Exit::Error } else { exit };
    }
    let steps = std::mem::take(&mut *steps.lock().unwrap_or_else(|e| e.into_inner()));
    let changes = steps.iter().filter(|s| s.status == "changed").count();
    let hosts = steps
        .iter()
        .filter(|s| s.status == "changed")
        .map(|s| s.host.as_str())
        .collect::<std::collections::BTreeSet<&str>>()
        .len();
    // Secret values may sit in `-e` arguments: they must not reach the file.
    let masked: Vec<String> = args.iter().map(|x| played.secrets.mask(x).into_owned()).collect();
    if masked != args {
        eprintln!(
            "error: the plan's arguments hold a secret value and cannot be saved\n  = help: pass secrets through the environment (`lookup('env', 'NAME')`), not `-e`"
        );
        return Exit::Error;
    }
    let file = PlanFile {
        v: PLAN_VERSION,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        args,
        changes,
        steps,
    };
    let text = match serde_json::to_string_pretty(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot write the plan: {e}");
            return Exit::Error;
        }
    };
    if let Err(e) = std::fs::write(&a.out, text + "\n") {
        eprintln!("error: cannot write the plan to {}: {e}", a.out.display());
        return Exit::Error;
    }
    let said = super::print_out(&format!(
        "Plan: {changes} change{} on {} host{}. Saved to {}; run exactly this with `roll apply {}`.",
        if changes == 1 { "" } else { "s" },
        hosts,
        if hosts == 1 { "" } else { "s" },
        a.out.display(),
        a.out.display()
    ));
    if said != Exit::Ok {
        said
    } else if detailed && changes > 0 {
        Exit::Changes
    } else {
        Exit::Ok
    }
}

fn parse_play(args: &[String], extra: &[String]) -> Result<crate::cli::PlayArgs, String> {
    let argv = std::iter::once("roll".to_string())
        .chain(args.iter().cloned())
        .chain(extra.iter().cloned());
    match Cli::try_parse_from(argv).map_err(|e| e.to_string())?.command {
        Command::Play(p) => Ok(p),
        _ => Err("the plan does not hold `roll play` arguments".into()),
    }
}

/// How a step moved between the plan and now, in words, causes first: a moved live colour,
/// then what was edited on a host, then content that would now differ, then the tasks whose
/// outcome follows from those.
fn differences(planned: &[Step], now: &[Step]) -> Vec<String> {
    let key = |s: &Step| (s.play.clone(), s.task.clone(), s.host.clone());
    let mut out: Vec<(u8, String)> = Vec::new();
    for p in planned {
        match now.iter().find(|n| key(n) == key(p)) {
            None => out.push((3, format!("task `{}` on {}: planned, no longer runs", p.task, p.host))),
            Some(n) => {
                let moved = n.status != p.status;
                if moved {
                    out.push((
                        3,
                        format!(
                            "task `{}` on {}: planned `{}`, now `{}`",
                            p.task, p.host, p.status, n.status
                        ),
                    ));
                }
                // What a change depended on is compared whatever became of the change: it is
                // why the outcome moved.
                for t in p.touches.iter().filter(|t| !moved || t.path == "live colour") {
                    match n.touches.iter().find(|x| x.path == t.path) {
                        Some(x) if x.before != t.before => out.push(if t.path == "live colour" {
                            (
                                0,
                                format!("{} on {}: was `{}`, now `{}`", t.path, p.host, t.before, x.before),
                            )
                        } else {
                            (1, format!("`{}` on {} changed since the plan", t.path, p.host))
                        }),
                        Some(x) if x.after != t.after => out.push((
                            2,
                            format!(
                                "`{}` on {}: the planned content differs from what would be written now",
                                t.path, p.host
                            ),
                        )),
                        Some(_) => {}
                        None => out.push((3, format!("`{}` on {}: no longer touched", t.path, p.host))),
                    }
                }
            }
        }
    }
    for n in now {
        if !planned.iter().any(|p| key(p) == key(n)) && n.status == "changed" {
            out.push((
                3,
                format!("task `{}` on {}: would change, not in the plan", n.task, n.host),
            ));
        }
    }
    // Stable: within a rank, the plan's order.
    out.sort_by_key(|(rank, _)| *rank);
    out.into_iter().map(|(_, d)| d).collect()
}

pub fn apply(a: ApplyArgs) -> Exit {
    let text = match std::fs::read_to_string(&a.plan) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read the plan {}: {e}", a.plan.display());
            return Exit::InvalidInput;
        }
    };
    let plan: PlanFile = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {} is not a roll plan: {e}", a.plan.display());
            return Exit::InvalidInput;
        }
    };
    if plan.v != PLAN_VERSION {
        eprintln!(
            "error: the plan has version {}, this roll reads version {PLAN_VERSION}",
            plan.v
        );
        return Exit::InvalidInput;
    }
    // The same dry run again, quietly: the world must still be what the plan saw.
    let check = match parse_play(&plan.args, &["--check".into(), "--diff".into()]) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    // Shell executors check a project out in a new build directory per job: the plan's
    // relative paths are read from this one when its playbook is here.
    if !check.playbook.is_file() {
        let there = std::path::Path::new(&plan.cwd);
        if !there.join(&check.playbook).is_file() {
            eprintln!(
                "error: the plan's playbook `{}` is neither here nor in {}, where the plan was made\n  = help: run `roll apply` in the project's directory",
                check.playbook.display(),
                plan.cwd
            );
            return Exit::InvalidInput;
        }
        if let Err(e) = std::env::set_current_dir(there) {
            eprintln!("error: cannot go to {}, where the plan was made: {e}", plan.cwd);
            return Exit::InvalidInput;
        }
    }
    let (rec, steps) = recorder();
    let exit = crate::commands::play::run_with(check, Some(rec), true).exit;
    if !matches!(exit, Exit::Ok) {
        eprintln!("error: the dry run before applying failed; nothing was applied");
        return exit;
    }
    let now = std::mem::take(&mut *steps.lock().unwrap_or_else(|e| e.into_inner()));
    let diff = differences(&plan.steps, &now);
    if !diff.is_empty() {
        // The cause first: what moved, then what follows from it.
        eprintln!("error: the plan is stale: {}; nothing was applied", diff[0]);
        if diff.len() > 1 {
            eprintln!("  the world moved since the plan was made; all that differs:");
        }
        for d in diff.iter().skip(1).take(20) {
            eprintln!("  - {d}");
        }
        if diff.len() > 21 {
            eprintln!("  - ... and {} more", diff.len() - 21);
        }
        eprintln!("  = help: make a new plan with `roll plan`");
        return Exit::Error;
    }
    let mut extra = Vec::new();
    if let Some(j) = &a.junit {
        extra.extend(["--junit".to_string(), j.display().to_string()]);
    }
    if let Some(w) = &a.lock_wait {
        extra.extend(["--lock-wait".to_string(), w.clone()]);
    }
    match parse_play(&plan.args, &extra) {
        Ok(p) => crate::commands::play::run_with(p, None, false).exit,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::InvalidInput
        }
    }
}

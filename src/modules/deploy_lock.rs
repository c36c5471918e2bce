//! `roll.deploy_lock`: one rollout at a time per app. The lock is a file on each proxy host
//! (`DIR/APP.lock`, created with O_EXCL so two rollouts cannot both take it) naming its holder
//! (user@host, or the CI job URL and pipeline), this run, when it was taken and when it expires,
//! all in the host's clock. Another rollout waits (`wait`, `--lock-wait`) or fails naming the
//! holder; an expired lock (a killed rollout's) is broken and the break is recorded; the run
//! releases the locks it took when it ends, whatever happened. Every step goes to the host's
//! audit log (`DIR/audit.log`): when, who, app, release, what.

use super::progress::WaitKind;
use super::spec::{ModuleSpec, ROLL, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::clock::utc;
use crate::connection::Command;
use crate::shell::quote;
use crate::values::value_to_string;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the lock file says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lock {
    pub app: String,
    pub holder: String,
    /// The run that holds it (a rollout re-taking its own lock is not blocked).
    pub run: String,
    /// Unix seconds, the proxy host's clock.
    pub started: u64,
    pub expires: u64,
    #[serde(default)]
    pub release: Option<String>,
}

pub enum LockOp {
    Take(Take),
    Release { dir: String, app: String },
}

pub struct Take {
    app: String,
    dir: String,
    ttl: u64,
    wait: Duration,
    release: Option<String>,
}

/// `roll.deploy_lock`: one rollout of an app at a time, held on the proxies.
pub struct DeployLock;

static DEPLOY_LOCK: ModuleSpec = ModuleSpec {
    params: &[req("app"), p("state"), p("dir"), p("ttl"), p("wait"), p("release")],
    ..ModuleSpec::new("deploy_lock", ROLL)
};

impl Module for DeployLock {
    fn spec(&self) -> &'static ModuleSpec {
        &DEPLOY_LOCK
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(std::future::ready(check(args, ctx)))
    }
}

/// A lock this run took, released when the run ends.
#[derive(Debug, Clone)]
pub struct Held {
    pub host: String,
    pub dir: String,
    pub app: String,
    pub release: Option<String>,
    pub become_user: Option<String>,
}

/// The deploy locks one run holds, under the run's own id (written into each lock file, so a
/// run only ever releases its own). Part of the run's state, never a process static: two runs
/// in one process (roll as a library) hold and release their locks apart.
#[derive(Debug)]
pub struct Locks {
    run_id: String,
    held: Mutex<Vec<Held>>,
}

impl Default for Locks {
    fn default() -> Self {
        Locks::new()
    }
}

impl Locks {
    pub fn new() -> Locks {
        // The process, the time, and a count: unique for every run of every process.
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Locks {
            run_id: format!("{}-{t:x}-{n}", std::process::id()),
            held: Mutex::new(Vec::new()),
        }
    }

    /// This run's id, as lock files record it.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The app and release of the rollout this run holds a lock for, if any.
    pub fn holding(&self) -> Option<(String, Option<String>)> {
        self.list().first().map(|h| (h.app.clone(), h.release.clone()))
    }

    /// The release a rollout turns out to deploy, for a lock taken before it was known (a
    /// rollback learns it from the containers it goes back to): the audit lines that follow,
    /// and the lock's release, name it instead of `-`.
    pub fn note_release(&self, app: &str, release: &str) {
        for h in self.list().iter_mut().filter(|h| h.app == app && h.release.is_none()) {
            h.release = Some(release.to_string());
        }
    }

    /// The locks this run still holds, taken out of the list.
    pub fn take(&self) -> Vec<Held> {
        std::mem::take(&mut *self.list())
    }
}

/// Who deploys: the CI job (GitLab's `CI_JOB_URL` and `CI_PIPELINE_ID`), else user@host.
pub fn holder() -> String {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(url) = env("CI_JOB_URL") {
        return match env("CI_PIPELINE_ID") {
            Some(p) => format!("{url} (pipeline {p})"),
            None => url,
        };
    }
    // Cron, systemd units and containers often run without $USER: ask the passwords database.
    let user = env("USER")
        .or_else(|| env("LOGNAME"))
        .or_else(login_name)
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }));
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// The name of the user roll runs as, from the passwords database (NSS).
fn login_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: getpwuid_r fills `pw` with pointers into `buf`, which outlives their use here.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::getuid(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc != 0 || found.is_null() || pw.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned();
        (!name.is_empty()).then_some(name)
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A shell line appending one audit record to `DIR/audit.log` (`step` is written as given:
/// callers mask it).
pub fn audit_line(dir: &str, app: &str, release: Option<&str>, step: &str) -> String {
    format!(
        "printf '%s %s app=%s release=%s %s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" {} {} {} {} >> {}/audit.log",
        quote(&holder()),
        quote(app),
        quote(release.unwrap_or("-")),
        quote(step),
        quote(dir.trim_end_matches('/'))
    )
}

fn lock_path(dir: &str, app: &str) -> String {
    format!("{}/{app}.lock", dir.trim_end_matches('/'))
}

/// Who may release a lock: the run that holds it, or anyone (`roll lock release`).
#[derive(Debug, Clone, Copy)]
pub enum Releaser<'a> {
    Run(&'a str),
    Anyone,
}

/// Removes the lock if `by` may (recording it in the audit log).
pub fn release_script(dir: &str, app: &str, release: Option<&str>, by: Releaser<'_>, why: &str) -> String {
    let f = quote(&lock_path(dir, app));
    let cond = match by {
        Releaser::Run(id) => format!("grep -qF {} {f}", quote(&format!("\"run\":{}", json_str(id)))),
        Releaser::Anyone => "true".to_string(),
    };
    format!(
        "if [ -f {f} ] && {cond}; then rm -f {f} && {} && echo released; fi",
        audit_line(dir, app, release, why)
    )
}

fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let app = args.req_str("app")?;
    let dir = args.str("dir")?.unwrap_or_else(|| "/var/lib/roll".into());
    let state = args.str("state")?.unwrap_or_else(|| "locked".into());
    let dur = |s: &str| crate::clock::parse_duration(s).map_err(Failure::from);
    let ttl = dur(&args.str("ttl")?.unwrap_or_else(|| "1h".into()))?.as_secs().max(1);
    // `--lock-wait` reaches every lock task through the `roll_lock_wait` variable.
    let wait = match args.str("wait")? {
        Some(w) => w,
        None => ctx
            .scope
            .get_attr("roll_lock_wait")
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_none())
            .map(|v| value_to_string(&v))
            .unwrap_or_else(|| "0s".into()),
    };
    let wait = dur(&wait)?;
    let preview = ModuleResult::ok().with("app", app.as_str()).with("holder", holder());
    match state.as_str() {
        "locked" => Ok(Plan::Probe {
            preview,
            action: Box::new(LockOp::Take(Take {
                app,
                dir,
                ttl,
                wait,
                release: args.str("release")?,
            })),
            // A dry run takes no lock: it changes nothing a rollout could trip over.
            in_check: false,
        }),
        "unlocked" => Ok(Plan::Probe {
            preview,
            action: Box::new(LockOp::Release { dir, app }),
            in_check: false,
        }),
        other => Err(format!("`state` is `locked` or `unlocked`, got `{other}`").into()),
    }
}

async fn sh(ctx: &Ctx<'_>, script: String, stdin: Option<Vec<u8>>) -> Result<crate::connection::Output, Failure> {
    let mut c = Command::new(script);
    c.stdin = stdin;
    c.become_user = ctx.become_user.clone();
    c.timeout = Some(Duration::from_secs(60));
    Ok(ctx.conn.exec(&c).await?)
}

apply_by!(LockOp, apply);

async fn apply(op: LockOp, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    match op {
        LockOp::Take(t) => take(t, ctx).await,
        LockOp::Release { dir, app } => {
            let by = Releaser::Run(ctx.run.locks.run_id());
            let release = ctx
                .run
                .locks
                .list()
                .iter()
                .find(|h| h.dir == dir && h.app == app)
                .and_then(|h| h.release.clone());
            let out = sh(
                ctx,
                release_script(&dir, &app, release.as_deref(), by, "lock released"),
                None,
            )
            .await?;
            if out.rc != 0 {
                return Err(format!("cannot release the deploy lock: {}", out.stderr_text().trim()).into());
            }
            ctx.run.locks.list().retain(|h| !(h.dir == dir && h.app == app));
            Ok(ModuleResult::ok()
                .with("app", app.as_str())
                .with("released", out.stdout_text().contains("released")))
        }
    }
}

async fn take(t: Take, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let f = quote(&lock_path(&t.dir, &t.app));
    let d = quote(t.dir.trim_end_matches('/'));
    // Created with noclobber (O_EXCL): of two rollouts, exactly one creates it. The times are
    // the host's, so a controller with a wrong clock cannot expire someone else's lock.
    let take = format!(
        "mkdir -p {d} && chmod 750 {d} || exit 1\nnow=$(date +%s)\n\
         if (set -C; printf '{{\"app\":%s,\"holder\":%s,\"run\":%s,\"started\":%s,\"expires\":%s,\"release\":%s}}\\n' \
         {app} {holder} {run} \"$now\" \"$((now + {ttl}))\" {release} > {f}) 2>/dev/null; then\n  chmod 640 {f}; {audit}; exit 0\nfi\n\
         echo \"$now\"; cat {f}; exit 3",
        app = quote(&json_str(&t.app)),
        holder = quote(&json_str(&holder())),
        run = quote(&json_str(ctx.run.locks.run_id())),
        ttl = t.ttl,
        release = quote(&t.release.as_deref().map_or("null".to_string(), json_str)),
        audit = audit_line(&t.dir, &t.app, t.release.as_deref(), "lock taken"),
    );
    let start = Instant::now();
    let mut broke: Option<Lock> = None;
    // Shown (holder, since when, for how long at most) once the lock is found held.
    let mut waiting = None;
    loop {
        let out = sh(ctx, take.clone(), None).await?;
        match out.rc {
            0 => {
                ctx.run.locks.list().push(Held {
                    host: ctx
                        .scope
                        .get_attr("inventory_hostname")
                        .map(|v| value_to_string(&v))
                        .unwrap_or_default(),
                    dir: t.dir.clone(),
                    app: t.app.clone(),
                    release: t.release.clone(),
                    become_user: ctx.become_user.clone(),
                });
                let mut r = ModuleResult::ok()
                    .with("app", t.app.as_str())
                    .with("holder", holder())
                    .with("waited_s", start.elapsed().as_secs_f64());
                if let Some(b) = &broke {
                    r = r.with("broke", crate::values::from_serde(b));
                }
                return Ok(r);
            }
            3 => {}
            _ => return Err(format!("cannot take the deploy lock {f}: {}", out.stderr_text().trim()).into()),
        }
        let text = out.stdout_text();
        let (now, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let now: u64 = now.trim().parse().unwrap_or(0);
        let Ok(lock) = serde_json::from_str::<Lock>(body.trim()) else {
            // Half-written or foreign: treat as held until it is old enough to break by hand.
            return Err(format!(
                "the deploy lock {f} cannot be read; if no rollout is running, remove it with `roll lock release`"
            )
            .into());
        };
        if lock.run == ctx.run.locks.run_id() {
            return Ok(ModuleResult::ok()
                .with("app", t.app.as_str())
                .with("holder", lock.holder));
        }
        if lock.expires <= now {
            // A killed rollout's lock: break it (moving it aside, atomically; of two breakers
            // one wins the rename) and say so in the audit log.
            let step = format!(
                "broke expired lock of {} (taken {}, expired {})",
                lock.holder,
                utc(lock.started),
                utc(lock.expires)
            );
            let brk = format!(
                "mv {f} {f}.broken-{now} 2>/dev/null && {}; true",
                audit_line(&t.dir, &t.app, t.release.as_deref(), &step)
            );
            sh(ctx, brk, None).await?;
            broke = Some(lock);
            continue;
        }
        if start.elapsed() >= t.wait {
            let mut r = ModuleResult::failed(format!(
                "`{}` is being deployed by {} since {} UTC (lock expires {} UTC); wait for it with \
                 --lock-wait DURATION, or if that rollout is gone, `roll lock release -i INVENTORY --app {}`",
                t.app,
                lock.holder,
                utc(lock.started),
                utc(lock.expires),
                t.app
            ));
            r.data.insert("lock".into(), crate::values::from_serde(&lock));
            return Err(Failure::Failed(Box::new(r)));
        }
        waiting
            .get_or_insert_with(|| {
                ctx.wait(
                    WaitKind::Lock,
                    format!(
                        "the deploy lock of `{}`, held by {} since {} UTC",
                        t.app,
                        lock.holder,
                        utc(lock.started)
                    ),
                    Some(t.wait),
                )
            })
            .tick();
        let left = t.wait.saturating_sub(start.elapsed()).min(Duration::from_secs(1));
        if ctx.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("interrupted while waiting for the deploy lock".into());
        }
        tokio::time::sleep(left).await;
    }
}

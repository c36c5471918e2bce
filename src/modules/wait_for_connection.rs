//! `wait_for_connection`: wait until the host answers over roll's own connection (a host that
//! boots late, an sshd being restarted), as ansible-core's action plugin waits for its `ping`.

use super::spec::{BUILTIN, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::{Command, ConnError};
use std::future::ready;
use std::time::{Duration, Instant};

/// `wait_for_connection`: retry a command on the host until it runs, or the timeout.
pub struct WaitForConnection;

static WAIT_FOR_CONNECTION: ModuleSpec = ModuleSpec {
    params: &[p("connect_timeout"), p("delay"), p("sleep"), p("timeout")],
    ..ModuleSpec::new("wait_for_connection", BUILTIN)
};

impl Module for WaitForConnection {
    fn spec(&self) -> &'static ModuleSpec {
        &WAIT_FOR_CONNECTION
    }

    fn check<'a>(&'a self, args: &'a Args, _ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(ready(check(args)))
    }
}

pub struct Wait {
    connect_timeout: Duration,
    delay: Duration,
    sleep: Duration,
    timeout: Duration,
}

apply_by!(Wait, apply);

/// ansible-core reads each as an integer number of seconds (`int(...)`).
fn seconds(args: &Args, k: &str, default: u64) -> Result<Duration, Failure> {
    match args.str(k)? {
        None => Ok(Duration::from_secs(default)),
        Some(s) => s
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("`{k}` must be a whole number of seconds, got `{s}`").into()),
    }
}

fn check(args: &Args) -> Result<Plan, Failure> {
    let w = Wait {
        connect_timeout: seconds(args, "connect_timeout", 5)?,
        delay: seconds(args, "delay", 0)?,
        sleep: seconds(args, "sleep", 1)?,
        timeout: seconds(args, "timeout", 600)?,
    };
    // ansible-core skips it in check mode.
    let preview = ModuleResult {
        skipped: true,
        ..ModuleResult::default()
    };
    Ok(Plan::Probe {
        preview,
        action: Box::new(w),
        in_check: false,
    })
}

async fn apply(w: Wait, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let start = Instant::now();
    tokio::time::sleep(w.delay).await;
    let deadline = Instant::now() + w.timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if ctx.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        match attempt(ctx, w.connect_timeout).await {
            Ok(()) => return Ok(ModuleResult::ok().with("elapsed", start.elapsed().as_secs() as i64)),
            Err(e) => last = e,
        }
        tokio::time::sleep(w.sleep).await;
    }
    let r = ModuleResult::failed(format!("timed out waiting for ping module test: {last}"))
        .with("elapsed", start.elapsed().as_secs() as i64);
    Err(Failure::Failed(Box::new(r)))
}

/// One end-to-end try: a command runs on the host and answers. A connection that cannot be
/// made is why one waits, so it is an attempt that failed, not the task.
async fn attempt(ctx: &Ctx<'_>, connect_timeout: Duration) -> Result<(), String> {
    let mut cmd = Command::new("echo pong");
    cmd.become_user = ctx.become_user.clone();
    // A connection that hangs (a host still booting) counts as an attempt too.
    let bound = connect_timeout + Duration::from_secs(30);
    match tokio::time::timeout(bound, ctx.conn.exec(&cmd)).await {
        Err(_) => Err(format!("no answer within {}s", bound.as_secs())),
        Ok(Err(ConnError::Unreachable(m))) => Err(m),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) if out.rc == 0 && out.stdout_text().trim() == "pong" => Ok(()),
        Ok(Ok(out)) => Err(format!("ping test failed: {}", out.stderr_text().trim())),
    }
}

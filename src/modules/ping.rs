//! `ping`: the host can be reached and runs commands; answers `pong` (or `data`).

use super::spec::{BUILTIN, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};

/// `ping`, as Ansible's: not ICMP, but a command run through the host's connection.
pub struct Ping;

static PING: ModuleSpec = ModuleSpec {
    params: &[p("data")],
    ..ModuleSpec::new("ping", BUILTIN)
};

impl Module for Ping {
    fn spec(&self) -> &'static ModuleSpec {
        &PING
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let data = args.str("data")?.unwrap_or_else(|| "pong".into());
    // As in Ansible, `data: crash` makes the module fail (to test error handling).
    if data == "crash" {
        return Err("boom".to_string().into());
    }
    let out = ctx.conn.exec(&crate::connection::Command::new("true")).await?;
    if out.rc != 0 {
        return Err(format!("the host cannot run commands: {}", out.stderr_text().trim()).into());
    }
    Ok(Plan::Unchanged(ModuleResult::ok().with("ping", data)))
}

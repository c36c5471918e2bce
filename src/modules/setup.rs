//! `setup` (`ansible.builtin.setup`): gathers the host's facts with one remote command
//! ([`super::facts`]), narrowed by `gather_subset` and `filter`; the scheduler stores them as
//! `ansible_facts` and injects them as `ansible_X`, as for `gather_facts`.

use super::spec::{BUILTIN, Capability, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step, facts};
use crate::values::value_to_string;
use minijinja::Value;

pub struct Setup;

static SETUP: ModuleSpec = ModuleSpec {
    params: &[p("gather_subset"), p("filter"), p("fact_path"), p("gather_timeout")],
    capabilities: &[Capability::GathersFacts],
    ..ModuleSpec::new("setup", BUILTIN)
};

impl Module for Setup {
    fn spec(&self) -> &'static ModuleSpec {
        &SETUP
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// A list parameter written as a list or as a comma-separated string (`network,!hardware`).
fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(v) if v.is_none() || v.is_undefined() => Vec::new(),
        Some(v) => match v.try_iter() {
            Ok(it) if v.as_str().is_none() => it.map(|i| value_to_string(&i)).collect(),
            _ => value_to_string(v)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        },
    }
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let subset = list(args.get("gather_subset"));
    let filter = list(args.get("filter"));
    let fact_path = args.str("fact_path")?.unwrap_or_else(|| facts::FACT_PATH.to_string());
    let mut cmd = crate::connection::Command::new(facts::script(&fact_path));
    if let Some(t) = args.f64("gather_timeout")? {
        cmd.timeout = Some(std::time::Duration::from_secs_f64(t.max(1.0)));
    }
    let out = ctx.conn.exec(&cmd).await?;
    let stdout = out.stdout_text();
    if !facts::complete(&stdout) {
        return Err(format!("gathering facts failed: {}", out.stderr_text().trim()).into());
    }
    let mut r = ModuleResult::ok();
    r.facts = facts::gathered(&stdout, &subset, &filter);
    Ok(Plan::Unchanged(r))
}

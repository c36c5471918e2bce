//! Modules that act on the run rather than the host: `debug`, `set_fact`, `assert`, `fail`,
//! `pause`. None of them uses the host's connection.

use super::spec::{BUILTIN, Capability, ModuleSpec, ParamKind, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use minijinja::Value;
use minijinja::value::ValueKind;
use std::future::ready;
use std::time::Duration;

const CONTROLLER: &[Capability] = &[Capability::Controller];

/// `debug`: show a message or a variable.
pub struct Debug;

static DEBUG: ModuleSpec = ModuleSpec {
    params: &[p("msg"), p("var").kind(ParamKind::Variable), p("verbosity")],
    exclusive: &[("msg", "var")],
    capabilities: CONTROLLER,
    ..ModuleSpec::new("debug", BUILTIN)
};

impl Module for Debug {
    fn spec(&self) -> &'static ModuleSpec {
        &DEBUG
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(ready(debug(args, ctx).map(Plan::Unchanged)))
    }
}

fn debug(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let mut r = if let Some(var) = args.str("var")? {
        let v = ctx
            .templar
            .eval(&var, ctx.scope)
            .unwrap_or_else(|_| Value::from("VARIABLE IS NOT DEFINED!"));
        ModuleResult::ok().with(&var, v)
    } else {
        // `msg` that renders to none shows as null, as in Ansible; only a missing one is the greeting.
        let msg = args
            .map
            .get("msg")
            .cloned()
            .unwrap_or_else(|| Value::from("Hello world!"));
        ModuleResult::ok().with("msg", msg)
    };
    r.display = serde_json::to_value(Value::from_pairs(r.data.clone())).ok();
    Ok(r)
}

/// `set_fact`: set variables on the host for the rest of the run.
pub struct SetFact;

static SET_FACT: ModuleSpec = ModuleSpec {
    capabilities: &[Capability::SetsFacts, Capability::Controller],
    ..ModuleSpec::new("set_fact", BUILTIN)
};

impl Module for SetFact {
    fn spec(&self) -> &'static ModuleSpec {
        &SET_FACT
    }

    fn check<'a>(&'a self, args: &'a Args, _ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        let mut r = ModuleResult::ok();
        for (k, v) in &args.map {
            if k != "cacheable" {
                r.facts.insert(k.clone(), v.clone());
            }
        }
        Box::pin(ready(Ok(Plan::Unchanged(r))))
    }
}

/// `assert`: fail unless every condition holds.
pub struct Assert;

static ASSERT: ModuleSpec = ModuleSpec {
    params: &[
        req("that").kind(ParamKind::Expression),
        p("fail_msg").aliases(&["msg"]),
        p("success_msg"),
        p("quiet"),
    ],
    capabilities: CONTROLLER,
    ..ModuleSpec::new("assert", BUILTIN)
};

impl Module for Assert {
    fn spec(&self) -> &'static ModuleSpec {
        &ASSERT
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(ready(assert(args, ctx).map(Plan::Unchanged)))
    }
}

/// `fail`: fail the host with a message.
pub struct Fail;

static FAIL: ModuleSpec = ModuleSpec {
    params: &[p("msg")],
    capabilities: CONTROLLER,
    ..ModuleSpec::new("fail", BUILTIN)
};

impl Module for Fail {
    fn spec(&self) -> &'static ModuleSpec {
        &FAIL
    }

    fn check<'a>(&'a self, args: &'a Args, _ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        let msg = args
            .str("msg")
            .map(|m| m.unwrap_or_else(|| "Failed as requested from task".into()));
        Box::pin(ready(
            msg.map(|m| Plan::Unchanged(ModuleResult::failed(m)))
                .map_err(Failure::from),
        ))
    }
}

fn assert(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let that: Vec<Value> = match args.get("that") {
        Some(v) if v.kind() == ValueKind::Seq => v.try_iter().map_err(|e| e.to_string())?.collect(),
        Some(v) => vec![v.clone()],
        None => return Err("missing required parameter `that`".to_string().into()),
    };
    for cond in that {
        let ok = match cond.kind() {
            ValueKind::Bool => cond.is_true(),
            _ => ctx
                .templar
                .eval_bool(&crate::values::value_to_string(&cond), ctx.scope)
                .map_err(|e| e.message)?,
        };
        if !ok {
            let msg = args
                .get("fail_msg")
                .map(crate::values::value_to_string)
                .unwrap_or_else(|| "Assertion failed".into());
            return Ok(ModuleResult::failed(msg)
                .with("assertion", crate::values::value_to_string(&cond))
                .with("evaluated_to", false));
        }
    }
    let msg = args
        .get("success_msg")
        .map(crate::values::value_to_string)
        .unwrap_or_else(|| "All assertions passed".into());
    let mut r = ModuleResult::ok().with_msg(msg.as_str());
    r.display = Some(serde_json::json!({"changed": false, "msg": msg}));
    Ok(r)
}

/// `pause`: wait a while, or for Enter at a terminal.
pub struct Pause;

static PAUSE: ModuleSpec = ModuleSpec {
    params: &[p("seconds"), p("minutes"), p("prompt")],
    exclusive: &[("seconds", "minutes")],
    capabilities: CONTROLLER,
    ..ModuleSpec::new("pause", BUILTIN)
};

impl Module for Pause {
    fn spec(&self) -> &'static ModuleSpec {
        &PAUSE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(ready(check_pause(args, ctx)))
    }
}

/// A pause: a time, or until Enter.
enum Sleep {
    For(Duration),
    UntilEnter,
}

apply_by!(Sleep, apply_sleep);

fn check_pause(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let secs = match (args.f64("seconds")?, args.f64("minutes")?) {
        (Some(s), _) => Some(s),
        (None, Some(m)) => Some(m * 60.0),
        (None, None) => None,
    };
    let d = match secs {
        Some(s) => Sleep::For(crate::clock::seconds(s).map_err(|e| format!("`seconds`: {e}"))?),
        // Without a duration Ansible waits for Enter; with nobody at a terminal that would hang
        // a CI job forever, so roll does not wait at all there.
        None if !ctx.interactive => {
            return Ok(Plan::Unchanged(
                ModuleResult::ok().with_msg("no terminal: not waiting for a keypress"),
            ));
        }
        None => Sleep::UntilEnter,
    };
    let delta = match &d {
        Sleep::For(d) => d.as_secs_f64(),
        Sleep::UntilEnter => Duration::MAX.as_secs_f64(),
    };
    let preview = ModuleResult::ok().with("delta", delta);
    Ok(Plan::Probe {
        preview,
        action: Box::new(d),
        in_check: true,
    })
}

async fn apply_sleep(d: Sleep, _ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let start = std::time::Instant::now();
    match d {
        Sleep::UntilEnter => {
            let mut line = String::new();
            let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
        }
        Sleep::For(d) => tokio::time::sleep(d).await,
    }
    Ok(ModuleResult::ok()
        .with("delta", start.elapsed().as_secs_f64())
        .with("stop", ""))
}

//! Modules that act on the run rather than the host: `debug`, `set_fact`, `assert`, `pause`.

use super::{Action, Args, Ctx, Failure, ModuleResult, Plan};
use minijinja::Value;
use minijinja::value::ValueKind;
use std::time::Duration;

pub fn debug(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    if let Some(var) = args.str("var")? {
        let v = ctx
            .templar
            .eval(&var, ctx.scope)
            .unwrap_or_else(|_| Value::from("VARIABLE IS NOT DEFINED!"));
        return Ok(ModuleResult::ok().with(&var, v));
    }
    let msg = args.get("msg").cloned().unwrap_or_else(|| Value::from("Hello world!"));
    Ok(ModuleResult::ok().with("msg", msg))
}

pub fn set_fact(args: &Args) -> Result<ModuleResult, Failure> {
    let mut r = ModuleResult::ok();
    for (k, v) in &args.map {
        if k != "cacheable" {
            r.facts.insert(k.clone(), v.clone());
        }
    }
    Ok(r)
}

pub fn assert(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
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
                .eval_bool(&crate::vars::value_to_string(&cond), ctx.scope)
                .map_err(|e| e.message)?,
        };
        if !ok {
            let msg = args
                .get("fail_msg")
                .map(crate::vars::value_to_string)
                .unwrap_or_else(|| "Assertion failed".into());
            return Ok(ModuleResult::failed(msg)
                .with("assertion", crate::vars::value_to_string(&cond))
                .with("evaluated_to", false));
        }
    }
    let msg = args
        .get("success_msg")
        .map(crate::vars::value_to_string)
        .unwrap_or_else(|| "All assertions passed".into());
    Ok(ModuleResult::ok().with_msg(msg))
}

pub fn check_pause(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let secs = match (args.f64("seconds")?, args.f64("minutes")?) {
        (Some(s), _) => Some(s),
        (None, Some(m)) => Some(m * 60.0),
        (None, None) => None,
    };
    let d = match secs {
        Some(s) => Duration::from_secs_f64(s.max(0.0)),
        // Without a duration Ansible waits for Enter; with nobody at a terminal that would hang
        // a CI job forever, so roll does not wait at all there.
        None if !ctx.interactive => {
            return Ok(Plan::Unchanged(
                ModuleResult::ok().with_msg("no terminal: not waiting for a keypress"),
            ));
        }
        None => Duration::MAX,
    };
    let preview = ModuleResult::ok().with("delta", d.as_secs_f64());
    Ok(Plan::Probe {
        preview,
        action: Action::Sleep(d),
        in_check: true,
    })
}

pub async fn apply_sleep(d: Duration, _ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let start = std::time::Instant::now();
    if d == Duration::MAX {
        let mut line = String::new();
        let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
    } else {
        tokio::time::sleep(d).await;
    }
    Ok(ModuleResult::ok()
        .with("delta", start.elapsed().as_secs_f64())
        .with("stop", ""))
}

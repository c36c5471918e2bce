//! One task on one host: conditions, loops, argument rendering, the module run, retries,
//! `changed_when`/`failed_when`, and the result as it is registered and reported.

use super::events::{Event, HostResult, Status};
use super::{HostOutcome, PlayCtx, Runner};
use crate::connection::Connection;
use crate::modules::{self, Args, Capability, Failure, ModuleResult, ParamKind};
use crate::playbook::{Body, ModuleCall, Task};
use crate::secrets::Secrets;
use crate::source::Span;
use crate::values::VarMap;
use crate::values::value_to_string;
use crate::vars::{Scope, TaskVars, TemplateError};
use crate::yaml::{Kind, Node};
use minijinja::Value;
use minijinja::value::ValueKind;
use std::time::{Duration, Instant};

const CENSORED: &str = "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

pub(crate) fn scope(r: &Runner, ctx: &PlayCtx<'_>, task: &Task, host: usize) -> Value {
    scope_with(r, ctx, task, host, VarMap::new())
}

/// A task's own variables: its role's, its blocks' and its own `vars`, its params.
fn task_vars(task: &Task) -> TaskVars {
    let mut params = Vec::with_capacity(task.kw.params.len() + 1);
    if let Some(role) = &task.role {
        params.push(role.params.clone());
    }
    params.extend(task.kw.params.iter().cloned());
    TaskVars {
        role_defaults: task.role.as_ref().map(|r| r.defaults.clone()),
        role_vars: task.role.as_ref().map(|r| r.vars.clone()),
        layers: task.kw.vars.clone(),
        params,
    }
}

fn scope_with(r: &Runner, ctx: &PlayCtx<'_>, task: &Task, host: usize, locals: VarMap) -> Value {
    Scope::for_task(r.vars.clone(), ctx.vars.clone(), host, task_vars(task), locals)
}

/// A rendered include target and the loop item it is for.
pub(super) type IncludeTarget = (String, Option<Value>);

/// Where an include leads on one host: `None` when its `when` does not hold (evaluated once,
/// before its loop), else the rendered file (or role) name for each loop item.
pub(super) fn include_targets(
    r: &Runner,
    ctx: &PlayCtx<'_>,
    task: &Task,
    inc: &crate::playbook::Include,
    host: usize,
) -> Result<Option<Vec<IncludeTarget>>, String> {
    let base = scope(r, ctx, task, host);
    if !conditions(r, &task.kw.when, &base).map_err(|e| e.to_string())? {
        return Ok(None);
    }
    let items = match &task.loop_ {
        None => {
            return Ok(Some(vec![(
                render(r, &inc.target, &base)
                    .map(|v| value_to_string(&v))
                    .map_err(|e| e.to_string())?,
                None,
            )]));
        }
        Some(l) => loop_items(r, task, l, &base).map_err(|e| e.to_string())?,
    };
    let mut out = Vec::new();
    for item in items {
        let mut locals = VarMap::new();
        locals.insert(task.loop_control.loop_var.clone(), item.clone());
        let sc = scope_with(r, ctx, task, host, locals);
        let target = render(r, &inc.target, &sc).map_err(|e| e.to_string())?;
        out.push((value_to_string(&target), Some(item)));
    }
    Ok(Some(out))
}

/// Why a task failed on a host outside its module: a keyword or argument that did not render
/// or is not what it must be. Each names where in the playbook, as `file:line:col`.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum TaskError {
    #[error("{message} (at {at}){help}")]
    Template { message: String, help: String, at: String },
    #[error("`environment` must be a mapping (at {at})")]
    EnvironmentNotAMapping { at: String },
    #[error("`environment` variable name `{name}` is not a valid name (letters, digits, `_`) (at {at})")]
    EnvironmentName { name: String, at: String },
    #[error("`timeout` must be a number of seconds, got `{0}`")]
    Timeout(String),
    #[error("`retries` must be a whole number")]
    Retries,
    #[error("`delay` must be a number of seconds")]
    Delay,
    #[error("`loop_control.pause` must be a number of seconds, got `{0}`")]
    LoopPause(String),
    #[error("`with_dict` needs a mapping, got {kind} (at {at})")]
    DictNotAMapping { kind: String, at: String },
    #[error("the loop needs a list, got {kind} (at {at}); use `dict2items` to loop over a mapping")]
    LoopNotAList { kind: String, at: String },
    #[error(
        "Invalid variable name '{name}' (at {at}); variable names must be strings starting with a letter or underscore character, and contain only letters, numbers and underscores"
    )]
    FactName { name: String, at: String },
    /// A rendered value that cannot be walked as its kind says.
    #[error("{0}")]
    Value(String),
    /// Two exclusive parameters both given once templated (a literal pair is refused at parse).
    #[error("parameters are mutually exclusive: {a}|{b} (at {at})")]
    Exclusive { a: String, b: String, at: String },
}

impl From<minijinja::Error> for TaskError {
    fn from(e: minijinja::Error) -> TaskError {
        TaskError::Value(e.to_string())
    }
}

fn located(r: &Runner, span: Span, e: TemplateError) -> TaskError {
    TaskError::Template {
        message: e.message,
        help: e.help.map(|h| format!("; {h}")).unwrap_or_default(),
        at: r.sources.location(span),
    }
}

/// Render a YAML value for this host: strings are templated, lists and mappings walked.
fn render(r: &Runner, node: &Node, scope: &Value) -> Result<Value, TaskError> {
    match &node.kind {
        Kind::Str(s) => r.vars.templar.render(s, scope).map_err(|e| located(r, node.span, e)),
        Kind::Seq(items) => Ok(Value::from(
            items
                .iter()
                .map(|i| render(r, i, scope))
                .collect::<Result<Vec<_>, _>>()?,
        )),
        Kind::Map(pairs) => {
            let mut out = Vec::new();
            for (k, v) in pairs {
                out.push((k.scalar_text().unwrap_or_default(), render(r, v, scope)?));
            }
            Ok(Value::from_pairs(out))
        }
        _ => Ok(node.to_value()),
    }
}

/// A boolean keyword (`ignore_errors: true` or a template).
pub(crate) fn flag(r: &Runner, node: &Node, scope: &Value) -> Result<bool, TaskError> {
    match &node.kind {
        Kind::Bool(b) => Ok(*b),
        _ => render(r, node, scope)
            .map(|v| crate::vars::filters::ansible_bool(&v) || (v.kind() == ValueKind::Bool && v.is_true())),
    }
}

/// All conditions true? Literal booleans and raw expressions, as `when:` takes them.
fn conditions(r: &Runner, conds: &[Node], scope: &Value) -> Result<bool, TaskError> {
    for c in conds {
        let ok = match &c.kind {
            Kind::Bool(b) => *b,
            Kind::Str(s) => r.vars.templar.eval_bool(s, scope).map_err(|e| located(r, c.span, e))?,
            _ => true,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The first of a task's `when` conditions that does not hold, as written: ansible-core
/// registers it on a skipped result (`false_condition`).
fn false_condition(r: &Runner, conds: &[Node], scope: &Value) -> Option<String> {
    conds
        .iter()
        .find(|c| matches!(conditions(r, std::slice::from_ref(c), scope), Ok(false)))
        .and_then(|c| match &c.kind {
            Kind::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
            _ => c.scalar_text(),
        })
}

pub(crate) fn display_name(r: &Runner, ctx: &PlayCtx<'_>, task: &Task, host: usize) -> String {
    let raw = task.display_name();
    if !crate::values::is_template(&raw) {
        return raw;
    }
    r.vars
        .templar
        .render_string(&raw, &scope(r, ctx, task, host))
        .unwrap_or(raw)
}

fn to_json(m: &VarMap) -> serde_json::Value {
    serde_json::to_value(Value::from_pairs(m.clone())).unwrap_or(serde_json::Value::Null)
}

struct Item {
    label: Option<String>,
    status: Status,
    result: ModuleResult,
    value: VarMap,
    attempts_events: Vec<Event>,
}

impl Item {
    fn new(status: Status, result: ModuleResult) -> Item {
        Item {
            label: None,
            status,
            value: result.to_value(),
            result,
            attempts_events: Vec::new(),
        }
    }

    fn failed(msg: String) -> Item {
        Item::new(Status::Failed, ModuleResult::failed(msg))
    }

    /// The host could not be reached: registered as `unreachable`, as Ansible does.
    fn unreachable(msg: String) -> Item {
        let mut v = VarMap::new();
        v.insert("unreachable".into(), Value::from(true));
        v.insert("changed".into(), Value::from(false));
        v.insert("msg".into(), Value::from(msg.as_str()));
        Item {
            label: None,
            status: Status::Unreachable,
            result: ModuleResult::failed(msg),
            value: v,
            attempts_events: Vec::new(),
        }
    }

    /// This item, after the retries already reported.
    fn after(mut self, events: Vec<Event>) -> Item {
        self.attempts_events = events;
        self
    }
}

pub(crate) async fn run(
    r: &Runner,
    ctx: &PlayCtx<'_>,
    task: &Task,
    host: usize,
    lockstep: Option<&crate::modules::lockstep::Lockstep>,
) -> HostOutcome {
    let membership = lockstep.map(crate::modules::lockstep::Membership::new);
    let out = run_host(r, ctx, task, host, lockstep).await;
    if let Some(m) = membership {
        m.finish(!matches!(out.status, Status::Failed | Status::Unreachable));
    }
    out
}

/// Whether a task's `when` holds for a host (a condition that cannot be evaluated does not).
pub(super) fn condition_holds(r: &Runner, ctx: &PlayCtx<'_>, task: &Task, host: usize) -> bool {
    conditions(r, &task.kw.when, &scope(r, ctx, task, host)).unwrap_or(false)
}

async fn run_host(
    r: &Runner,
    ctx: &PlayCtx<'_>,
    task: &Task,
    host: usize,
    lockstep: Option<&crate::modules::lockstep::Lockstep>,
) -> HostOutcome {
    let host_name = r.vars.inventory.hosts[host].name.clone();
    let start = Instant::now();
    let base_scope = scope(r, ctx, task, host);
    let no_log = task
        .kw
        .no_log
        .as_ref()
        .is_some_and(|n| flag(r, n, &base_scope).unwrap_or(true));
    let ignore = task.kw.ignore_errors.as_ref().map(|n| flag(r, n, &base_scope));
    let ignore_errors = matches!(ignore, Some(Ok(true)));

    let mut outcome = HostOutcome::new(host);
    let fail = |outcome: &mut HostOutcome, msg: String| {
        let mut res = ModuleResult::failed(msg);
        res.changed = false;
        outcome.status = Status::Failed;
        outcome.ignored = ignore_errors;
        outcome.registered = Some(res.to_value());
    };

    // With a loop, `delegate_to` is rendered per item (`delegate_to: "{{ item }}"`).
    let delegate = match &task.kw.delegate_to {
        Some(n) if task.loop_.is_none() => render(r, n, &base_scope).map(|v| Some(value_to_string(&v))),
        _ => Ok(None),
    };
    let delegate = match delegate {
        Ok(d) => d,
        Err(e) => {
            fail(&mut outcome, e.to_string());
            return finish(&r.state.secrets, outcome, &host_name, None, no_log, start);
        }
    };

    match &task.body {
        Body::Module(_) => {}
        Body::Meta(meta) => {
            let ok = match conditions(r, &task.kw.when, &base_scope) {
                Ok(b) => b,
                Err(e) => {
                    fail(&mut outcome, e.to_string());
                    return finish(&r.state.secrets, outcome, &host_name, delegate, no_log, start);
                }
            };
            if ok {
                outcome.meta = Some(meta.action);
            }
            outcome.status = if ok { Status::Ok } else { Status::Skipped };
            return outcome;
        }
        Body::Block { .. } | Body::Include(_) => unreachable_body(),
    }

    // The loop's items, or one pass with no item.
    let items: Option<Vec<Value>> = match &task.loop_ {
        None => None,
        Some(l) => match loop_items(r, task, l, &base_scope).and_then(|items| match l.first_found {
            true => first_found(ctx, task, items),
            false => Ok(items),
        }) {
            Ok(items) => Some(items),
            Err(e) => {
                fail(&mut outcome, e.to_string());
                return finish(&r.state.secrets, outcome, &host_name, delegate, no_log, start);
            }
        },
    };

    let Some(items) = items else {
        let item = run_item(
            r,
            ctx,
            task,
            host,
            VarMap::new(),
            delegate.as_deref(),
            &base_scope,
            lockstep,
        )
        .await;
        outcome.events.extend(item.attempts_events);
        outcome.status = item.status;
        outcome.changed = item.result.changed;
        outcome.refused = item.result.refused;
        outcome.ignored = item.status == Status::Failed && ignore_errors;
        outcome.facts = item.result.facts.clone();
        let mut hr = host_result(
            &r.state.secrets,
            &host_name,
            &delegate,
            item.status,
            &item.value,
            &item.result,
            no_log,
        );
        hr.ignored = outcome.ignored;
        hr.duration_ms = start.elapsed().as_millis() as u64;
        hr.would_run = item.result.would_run;
        outcome.events.push(Event::Host(Box::new(hr)));
        outcome.registered = Some(item.value);
        return outcome;
    };

    let lc = &task.loop_control;
    // `loop_control.pause`: seconds between items; a value that is not one fails the task.
    let pause = match &lc.pause {
        None => None,
        Some(p) => match render(r, p, &base_scope) {
            Ok(v) => match value_to_string(&v).trim().parse::<f64>().map(crate::clock::seconds) {
                Ok(Ok(d)) => Some(d),
                _ => {
                    fail(&mut outcome, TaskError::LoopPause(v.to_string()).to_string());
                    return finish(&r.state.secrets, outcome, &host_name, delegate, no_log, start);
                }
            },
            Err(e) => {
                fail(&mut outcome, e.to_string());
                return finish(&r.state.secrets, outcome, &host_name, delegate, no_log, start);
            }
        },
    };
    let total = items.len();
    let mut results = Vec::new();
    let (mut any_changed, mut any_failed, mut all_skipped) = (false, false, true);
    let mut facts = VarMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let mut locals = VarMap::new();
        locals.insert(lc.loop_var.clone(), item.clone());
        locals.insert("ansible_loop_var".into(), Value::from(lc.loop_var.as_str()));
        if let Some(iv) = &lc.index_var {
            locals.insert(iv.clone(), Value::from(i));
        }
        let mut al = VarMap::new();
        al.insert("index".into(), Value::from(i + 1));
        al.insert("index0".into(), Value::from(i));
        al.insert("first".into(), Value::from(i == 0));
        al.insert("last".into(), Value::from(i + 1 == total));
        al.insert("length".into(), Value::from(total));
        locals.insert("ansible_loop".into(), Value::from_pairs(al));
        let item_scope = scope_with(r, ctx, task, host, locals.clone());
        let label = match &lc.label {
            Some(n) => render(r, n, &item_scope)
                .map(|v| value_to_string(&v))
                .unwrap_or_else(|_| value_to_string(&item)),
            None => value_to_string(&item),
        };
        let delegate = match &task.kw.delegate_to {
            None => None,
            Some(n) => match render(r, n, &item_scope) {
                Ok(v) => Some(value_to_string(&v)),
                Err(e) => {
                    fail(&mut outcome, e.to_string());
                    return finish(&r.state.secrets, outcome, &host_name, None, no_log, start);
                }
            },
        };
        let mut it = run_item(r, ctx, task, host, locals, delegate.as_deref(), &item_scope, lockstep).await;
        it.label = Some(label.clone());
        outcome.events.append(&mut it.attempts_events);
        any_changed |= it.result.changed;
        any_failed |= it.status == Status::Failed;
        outcome.refused |= it.status == Status::Failed && it.result.refused;
        all_skipped &= it.status == Status::Skipped;
        facts.extend(it.result.facts.clone());
        let mut v = it.value.clone();
        v.insert(lc.loop_var.clone(), item);
        v.insert("ansible_loop_var".into(), Value::from(lc.loop_var.as_str()));
        let mut hr = host_result(
            &r.state.secrets,
            &host_name,
            &delegate,
            it.status,
            &v,
            &it.result,
            no_log,
        );
        hr.item = Some(if no_log {
            "(censored due to no_log)".into()
        } else {
            label
        });
        outcome.events.push(Event::Host(Box::new(hr)));
        results.push(Value::from_pairs(v));
        if let Some(d) = pause
            && i + 1 < total
        {
            tokio::time::sleep(d).await;
        }
    }
    // A loop's result as ansible-core registers it: `failed` only when an item failed,
    // `skipped` always; without items, only that it was skipped and why.
    let mut reg = VarMap::new();
    reg.insert("changed".into(), Value::from(any_changed));
    if any_failed {
        reg.insert("failed".into(), Value::from(true));
    }
    reg.insert("skipped".into(), Value::from(all_skipped && total > 0));
    if total > 0 {
        reg.insert(
            "msg".into(),
            Value::from(if any_failed {
                "One or more items failed"
            } else if all_skipped {
                "All items skipped"
            } else {
                "All items completed"
            }),
        );
    }
    reg.insert("results".into(), Value::from(results));
    outcome.status = if any_failed {
        Status::Failed
    } else if all_skipped {
        Status::Skipped
    } else if any_changed {
        Status::Changed
    } else {
        Status::Ok
    };
    outcome.changed = any_changed;
    outcome.ignored = any_failed && ignore_errors;
    outcome.facts = facts;
    // The loop's summary line, shown by the report only when it adds something (all skipped,
    // failed).
    let summary = ModuleResult {
        changed: any_changed,
        failed: any_failed,
        skipped: all_skipped,
        ..ModuleResult::default()
    };
    let mut hr = host_result(
        &r.state.secrets,
        &host_name,
        &delegate,
        outcome.status,
        &reg,
        &summary,
        no_log,
    );
    hr.ignored = outcome.ignored;
    hr.item = None;
    hr.duration_ms = start.elapsed().as_millis() as u64;
    if total == 0 {
        hr.status = Status::Skipped;
        outcome.status = Status::Skipped;
        reg.insert("skipped".into(), Value::from(true));
        reg.insert("skipped_reason".into(), Value::from("No items in the list"));
        hr.result = to_json(&reg);
    }
    outcome.events.push(Event::Host(Box::new(hr)));
    outcome.registered = Some(reg);
    outcome
}

fn unreachable_body() -> ! {
    panic!("blocks are expanded by the scheduler before a task reaches a host")
}

fn finish(
    secrets: &Secrets,
    mut o: HostOutcome,
    host: &str,
    delegate: Option<String>,
    no_log: bool,
    start: Instant,
) -> HostOutcome {
    let reg = o.registered.clone().unwrap_or_default();
    let res = ModuleResult {
        failed: o.status == Status::Failed,
        ..ModuleResult::default()
    };
    let mut hr = host_result(secrets, host, &delegate, o.status, &reg, &res, no_log);
    hr.ignored = o.ignored;
    hr.duration_ms = start.elapsed().as_millis() as u64;
    o.events.push(Event::Host(Box::new(hr)));
    o
}

/// What the log shows of a result, when its module shows one (`debug`, `assert`) and it did
/// not fail.
fn shown(res: &ModuleResult) -> Option<serde_json::Value> {
    res.display.clone().filter(|_| !res.failed)
}

fn host_result(
    secrets: &Secrets,
    host: &str,
    delegate: &Option<String>,
    status: Status,
    value: &VarMap,
    res: &ModuleResult,
    no_log: bool,
) -> HostResult {
    let mut visible = value.clone();
    if no_log {
        // What a no_log task printed is secret from here on, wherever it is shown again
        // (`debug: var=result`).
        for k in ["stdout", "stderr", "cmd"] {
            if let Some(v) = value.get(k) {
                secrets.add_value(v);
            }
        }
        let censored = |changed: bool| {
            let mut c = VarMap::new();
            c.insert("censored".into(), Value::from(CENSORED));
            c.insert("changed".into(), Value::from(changed));
            c
        };
        visible = censored(res.changed);
        // A loop keeps its shape, each item censored, so that it is still shown as a loop.
        if let Some(items) = value.get("results").and_then(|r| r.try_iter().ok()) {
            let items: Vec<Value> = items
                .map(|i| {
                    let changed = i.get_attr("changed").map(|c| c.is_true()).unwrap_or(false);
                    Value::from_pairs(censored(changed))
                })
                .collect();
            visible.insert("results".into(), Value::from(items));
        }
    }
    HostResult {
        host: host.to_string(),
        delegated_to: delegate.clone().filter(|d| d != host),
        status,
        item: None,
        ignored: false,
        censored: no_log,
        result: to_json(&visible),
        diffs: if no_log { Vec::new() } else { res.diffs.clone() },
        guards: res.guards.clone(),
        debug: if no_log { None } else { shown(res) },
        duration_ms: 0,
        would_run: false,
    }
}

/// `with_first_found`: the first of the named files that exists (strings, or mappings of `files`,
/// `paths` and `skip`), looked for in the task's role and beside the playbook, in the
/// directory its module reads (`vars/` for a module of variables files, `templates/` for one of
/// templates, else `files/`).
fn first_found(ctx: &PlayCtx<'_>, task: &Task, items: Vec<Value>) -> Result<Vec<Value>, TaskError> {
    use crate::source::SourceDir;
    let sub = match &task.body {
        Body::Module(m) => {
            let spec = m.spec();
            let kinds: Vec<ParamKind> = spec
                .params
                .iter()
                .map(|p| p.kind)
                .chain([spec.free_form_kind])
                .collect();
            if kinds.contains(&ParamKind::VarsFile) {
                SourceDir::Vars
            } else if kinds.contains(&ParamKind::TemplateFile) {
                SourceDir::Templates
            } else {
                SourceDir::Files
            }
        }
        _ => SourceDir::Files,
    };
    let strings = |v: Option<Value>| -> Vec<String> {
        match v {
            Some(v) if v.kind() == ValueKind::Seq => v
                .try_iter()
                .map(|it| it.map(|x| value_to_string(&x)).collect())
                .unwrap_or_default(),
            Some(v) if !v.is_undefined() && !v.is_none() => value_to_string(&v)
                .split([',', ';'])
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut names = Vec::new();
    let mut skip = false;
    for i in items {
        if i.kind() == ValueKind::Map {
            let files = strings(i.get_attr("files").ok());
            let paths = strings(i.get_attr("paths").ok());
            skip |= i.get_attr("skip").is_ok_and(|s| s.is_true());
            if paths.is_empty() {
                names.extend(files);
            } else {
                for p in &paths {
                    names.extend(files.iter().map(|f| format!("{}/{f}", p.trim_end_matches('/'))));
                }
            }
        } else {
            names.push(value_to_string(&i));
        }
    }
    let role_dir = task.role.as_ref().map(|r| r.dir.as_path());
    for n in &names {
        if let Some(p) = crate::source::find_source_in(role_dir, &ctx.play.dir, n, sub) {
            let p = p.canonicalize().unwrap_or(p);
            return Ok(vec![Value::from(p.display().to_string())]);
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    Err(TaskError::Value(format!(
        "No file was found when using first_found (looked for {})",
        names.join(", ")
    )))
}

fn loop_items(r: &Runner, task: &Task, l: &crate::playbook::Loop, scope: &Value) -> Result<Vec<Value>, TaskError> {
    let v = render(r, &l.items, scope)?;
    if let Some(lookup) = &l.lookup {
        // As Ansible's `with_<lookup>`: a list is the lookup's terms, anything else one term.
        let terms: Vec<Value> = match v.kind() {
            ValueKind::Seq => v.try_iter()?.collect(),
            _ => vec![v],
        };
        // `with_first_found` looks under the directory its module reads from.
        let module = match &task.body {
            Body::Module(m) => m.spec().name,
            _ => "",
        };
        let subdir = ["template", "var", "file"]
            .into_iter()
            .find(|d| module.contains(d))
            .unwrap_or("file");
        let ctx = minijinja::context! {
            __roll_lookup => lookup.as_str(),
            __roll_terms => terms,
            __roll_subdir => format!("{subdir}s"),
            ..scope.clone()
        };
        let expr = if lookup == "first_found" {
            "query(__roll_lookup, *__roll_terms, _subdir=__roll_subdir)"
        } else {
            "query(__roll_lookup, *__roll_terms)"
        };
        let items = r
            .vars
            .templar
            .eval(expr, &ctx)
            .map_err(|e| located(r, l.items.span, e))?;
        return Ok(items.try_iter()?.collect());
    }
    let mut items: Vec<Value> = if l.dict {
        if v.kind() != ValueKind::Map {
            return Err(TaskError::DictNotAMapping {
                kind: v.kind().to_string(),
                at: r.sources.location(l.items.span),
            });
        }
        let mut out = Vec::new();
        for k in v.try_iter()? {
            let val = v.get_item(&k)?;
            out.push(Value::from_pairs([("key".to_string(), k), ("value".to_string(), val)]));
        }
        out
    } else {
        match v.kind() {
            ValueKind::Seq | ValueKind::Iterable => v.try_iter()?.collect(),
            ValueKind::None | ValueKind::Undefined => Vec::new(),
            other => {
                return Err(TaskError::LoopNotAList {
                    kind: other.to_string(),
                    at: r.sources.location(l.items.span),
                });
            }
        }
    };
    if l.flatten {
        items = items
            .into_iter()
            .flat_map(|i| {
                if i.kind() == ValueKind::Seq {
                    i.try_iter().map(|it| it.collect()).unwrap_or_default()
                } else {
                    vec![i]
                }
            })
            .collect();
    }
    Ok(items)
}

/// A task's keywords rendered for one host and loop item, in one step: what the module run
/// needs, so that running it reads top to bottom (prepare, connect, attempt, record).
struct Prepared {
    args: Args,
    env: Vec<(String, String)>,
    check_mode: bool,
    diff: bool,
    become_user: Option<String>,
    become_method: crate::connection::BecomeMethod,
    timeout: Option<Duration>,
    /// How many times `until` retries, and how long it waits between attempts.
    retries: u32,
    delay: Duration,
    /// The task's `delegate_to` host (rendered), if any.
    delegate: Option<String>,
}

/// Why a task could not start on a host.
enum NotStarted {
    Failed(String),
    Unreachable(String),
}

/// Render the module's arguments and the task's run keywords for this host.
fn prepare(r: &Runner, task: &Task, call: &ModuleCall, scope: &Value) -> Result<Prepared, TaskError> {
    let spec = call.spec();
    let free = match &call.free_form {
        Some(n) => Some(value_to_string(&render(r, n, scope)?)),
        None => None,
    };
    let mut raw = Vec::new();
    for (k, n) in &call.args {
        // `set_fact` templates its keys, as ansible-core does (`"{{ item.fact }}": value`); the
        // result must then be a variable name.
        let k = &if spec.has(Capability::SetsFacts) && crate::values::is_template(k) {
            let name = value_to_string(&r.vars.templar.render(k, scope).map_err(|e| located(r, n.span, e))?);
            if !crate::inventory::valid_var_name(&name) {
                return Err(TaskError::FactName {
                    name,
                    at: r.sources.location(n.span),
                });
            }
            name
        } else {
            k.clone()
        };
        // An expression the module evaluates itself (`assert: that:`), and values it renders
        // for each other host it acts on, are passed unrendered.
        let v = match spec.kind_of(k) {
            ParamKind::Expression | ParamKind::PerHost { .. } => n.to_value(),
            _ => render(r, n, scope)?,
        };
        raw.push((k.clone(), v));
    }
    let args = Args::new(spec, free, raw);
    if let Some((a, b)) = spec
        .exclusive
        .iter()
        .find(|(a, b)| args.get(a).is_some() && args.get(b).is_some())
    {
        return Err(TaskError::Exclusive {
            a: a.to_string(),
            b: b.to_string(),
            at: r.sources.location(call.name_span),
        });
    }
    let mut env = Vec::new();
    for n in &task.kw.environment {
        let v = render(r, n, scope)?;
        if v.kind() != ValueKind::Map {
            return Err(TaskError::EnvironmentNotAMapping {
                at: r.sources.location(n.span),
            });
        }
        for k in v.try_iter()? {
            let val = v.get_item(&k)?;
            let name = k.to_string();
            // The name goes into a shell line as is: only a plain identifier can.
            let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                return Err(TaskError::EnvironmentName {
                    name,
                    at: r.sources.location(n.span),
                });
            }
            env.push((name, value_to_string(&val)));
        }
    }
    let check_mode = match &task.kw.check_mode {
        Some(n) => flag(r, n, scope)?,
        None => r.opts.check,
    };
    let diff = match &task.kw.diff {
        Some(n) => flag(r, n, scope)?,
        None => r.opts.diff,
    };
    // `ansible_become` / `ansible_become_user` (inventory, play vars, `-e`) beat the keywords,
    // which beat ansible.cfg, as in Ansible.
    let var = |name: &str| -> Result<Option<Value>, TaskError> {
        let defined = scope.get_attr(name).is_ok_and(|v| !v.is_undefined() && !v.is_none());
        if !defined {
            return Ok(None);
        }
        r.vars
            .templar
            .eval(name, scope)
            .map(Some)
            .map_err(|e| TaskError::Value(format!("`{name}`: {e}")))
    };
    let becomes = match (var("ansible_become")?, &task.kw.r#become) {
        (Some(v), _) => crate::vars::filters::ansible_bool(&v) || (v.kind() == ValueKind::Bool && v.is_true()),
        (None, Some(n)) => flag(r, n, scope)?,
        (None, None) => r.opts.r#become,
    };
    let become_user = if becomes {
        Some(match (var("ansible_become_user")?, &task.kw.become_user) {
            (Some(v), _) => value_to_string(&v),
            (None, Some(u)) => value_to_string(&render(r, u, scope)?),
            (None, None) => r.opts.become_user.clone().unwrap_or_else(|| "root".to_string()),
        })
    } else {
        None
    };
    // The sudo plugin's `become_exe` / `become_flags`: its variables (`ansible_become_*`, then
    // `ansible_sudo_*`), then the keywords, then ansible.cfg, as Ansible resolves its options.
    let mut become_method = crate::connection::BecomeMethod::default();
    if become_user.is_some() {
        for (dst, vars, kw, cfg) in [
            (
                &mut become_method.exe,
                ["ansible_become_exe", "ansible_sudo_exe"],
                &task.kw.become_exe,
                &r.opts.become_exe,
            ),
            (
                &mut become_method.flags,
                ["ansible_become_flags", "ansible_sudo_flags"],
                &task.kw.become_flags,
                &r.opts.become_flags,
            ),
        ] {
            let mut found = None;
            for v in vars {
                if let Some(x) = var(v)? {
                    found = Some(value_to_string(&x));
                    break;
                }
            }
            *dst = match (found, kw) {
                (Some(x), _) => Some(x),
                (None, Some(n)) => Some(value_to_string(&render(r, n, scope)?)),
                (None, None) => cfg.clone(),
            };
        }
    }
    let timeout = match &task.kw.timeout {
        Some(n) => {
            let v = render(r, n, scope)?;
            Some(Duration::from_secs(
                value_to_string(&v)
                    .parse::<u64>()
                    .map_err(|_| TaskError::Timeout(v.to_string()))?,
            ))
        }
        None => None,
    };
    let retries = match &task.retries {
        Some(n) => value_to_string(&render(r, n, scope)?)
            .parse::<u32>()
            .map_err(|_| TaskError::Retries)?,
        None => 3,
    };
    let delay = match &task.delay {
        Some(n) => value_to_string(&render(r, n, scope)?)
            .parse::<f64>()
            .ok()
            .and_then(|d| crate::clock::seconds(d).ok())
            .ok_or(TaskError::Delay)?,
        None => Duration::from_secs(5),
    };
    Ok(Prepared {
        args,
        env,
        check_mode,
        diff,
        become_user,
        become_method,
        timeout: timeout.or(r.opts.command_timeout),
        retries,
        delay,
        delegate: None,
    })
}

/// The connection a task runs over: the delegate's when there is one (with the delegate's own
/// connection variables), the controller for modules that run there, else the host's.
/// `become` is dropped when the connection already is that user.
fn connect(
    r: &Runner,
    task: &Task,
    call: &ModuleCall,
    host: usize,
    delegate: Option<&str>,
    scope: &Value,
    become_user: &mut Option<String>,
) -> Result<Connection, NotStarted> {
    if call.spec().has(Capability::Controller) {
        return Ok(Connection::Local(crate::connection::Local::default()));
    }
    let host_name = &r.vars.inventory.hosts[host].name;
    let conn_host = delegate.unwrap_or(host_name);
    // `ansible_connection` (the host's variables, `-e` over them) beats the `connection`
    // keyword, as in Ansible.
    let own_kind = match delegate {
        None => scope
            .get_attr("ansible_connection")
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_none()),
        Some(_) => extra_connection_var(r, "ansible_connection")
            // A delegate the inventory does not name has no variables of its own (never the
            // delegating host's): `localhost` is then Ansible's implicit local one.
            .or_else(|| {
                r.vars
                    .inventory
                    .host(conn_host)
                    .and_then(|h| r.vars.inventory.hosts[h].vars.get("ansible_connection"))
            })
            .cloned(),
    };
    let conn_kind = match (own_kind, &task.kw.connection) {
        (Some(v), _) => Some(value_to_string(&v)),
        (None, Some(n)) => Some(value_to_string(&render(r, n, scope).unwrap_or_default())),
        (None, None) => None,
    };
    let conn_kind = match (conn_kind, delegate) {
        (None, Some(d)) if crate::inventory::is_localhost_name(d) => Some("local".to_string()),
        (k, _) => k,
    };
    let mut conn_vars = connection_vars(r, r.vars.inventory.host(conn_host));
    // The host's own connection variables as the play sees them (play and task `vars`,
    // `set_fact`, templated inventory values), as Ansible takes them from the host's whole
    // variable set; a delegate keeps its own inventory's.
    if delegate.is_none() {
        let mut changes: Vec<(&str, Value)> = Vec::new();
        for name in CONNECTION_VARS {
            let defined = scope.get_attr(name).is_ok_and(|v| !v.is_undefined() && !v.is_none());
            if !defined {
                continue;
            }
            let v = r
                .vars
                .templar
                .eval(name, scope)
                .map_err(|e| NotStarted::Failed(format!("`{name}`: {e}")))?;
            if conn_vars.as_deref().and_then(|c| c.get(*name)) != Some(&v) {
                changes.push((name, v));
            }
        }
        if !changes.is_empty() {
            let mut vars = conn_vars.as_deref().cloned().unwrap_or_default();
            for (name, v) in changes {
                vars.insert(name.to_string(), v);
            }
            conn_vars = Some(std::sync::Arc::new(vars));
        }
    }
    // `remote_user` / `port` of the task, its blocks or play: below the host's own variables
    // (inventory and `-e`), above ansible.cfg's defaults, as in Ansible.
    for (kw, var, aliases) in [
        (&task.kw.remote_user, "ansible_user", &["ansible_ssh_user", "user"][..]),
        (&task.kw.port, "ansible_port", &["ansible_ssh_port", "port"][..]),
    ] {
        let Some(n) = kw else { continue };
        let said = |v: &crate::values::VarMap| {
            std::iter::once(var)
                .chain(aliases.iter().copied())
                .any(|k| v.contains_key(k))
        };
        if conn_vars.as_deref().is_some_and(said) {
            continue;
        }
        let value = render(r, n, scope).map_err(|e| NotStarted::Failed(e.to_string()))?;
        let mut vars = conn_vars.as_deref().cloned().unwrap_or_default();
        vars.insert(var.to_string(), value);
        conn_vars = Some(std::sync::Arc::new(vars));
    }
    // Becoming the user the connection already is needs no sudo.
    let remote_user = conn_vars
        .as_ref()
        .and_then(|v| v.get("ansible_user").or_else(|| v.get("user")))
        .map(value_to_string);
    *become_user = become_user.take().filter(|u| match conn_kind.as_deref() {
        Some("local") => !crate::connection::is_local_user(u),
        _ => remote_user.as_deref() != Some(u.as_str()),
    });
    r.connector
        .connect(conn_host, conn_vars.as_deref(), conn_kind.as_deref())
        .map_err(|e| NotStarted::Unreachable(e.to_string()))
}

/// Another inventory host's connection, as its own variables say (address, port, user,
/// `ansible_connection`): what a module that acts on other hosts runs over there.
fn host_connection(r: &Runner, name: &str) -> Result<Connection, String> {
    let i = r
        .vars
        .inventory
        .host(name)
        .ok_or_else(|| format!("`{name}` is not an inventory host"))?;
    r.connector
        .connect(name, connection_vars(r, Some(i)).as_deref(), None)
        .map_err(|e| e.to_string())
}

/// The variables that say how a host is reached (Ansible's connection variables roll uses).
const CONNECTION_VARS: &[&str] = &[
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_ssh_args",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
];

/// A connection variable (`ansible_host`, `ansible_user`, `ansible_connection`...) given with
/// `-e`: extra vars are the highest precedence, so in Ansible they win over every host's
/// inventory for its connection too.
fn extra_connection_var<'a>(r: &'a Runner, name: &str) -> Option<&'a Value> {
    r.vars.extra.get(name)
}

/// The variables a host is connected with: its inventory variables, with the `ansible_*`
/// variables given with `-e` over them (unprefixed names such as `port` given with `-e` are the
/// playbook's, not the connection's).
pub(crate) fn connection_vars(r: &Runner, host: Option<usize>) -> Option<std::sync::Arc<crate::values::VarMap>> {
    let own = host.map(|h| r.vars.inventory.hosts[h].vars.clone());
    let mut over = r
        .vars
        .extra
        .iter()
        .filter(|(k, _)| k.starts_with("ansible_"))
        .peekable();
    if over.peek().is_none() {
        return own;
    }
    let mut vars = own.map(|v| (*v).clone()).unwrap_or_default();
    for (k, v) in over {
        vars.insert(k.clone(), v.clone());
    }
    Some(std::sync::Arc::new(vars))
}

/// Run the module once (one loop item), with `until` retries and the result conditions.
#[allow(clippy::too_many_arguments)]
async fn run_item(
    r: &Runner,
    ctx: &PlayCtx<'_>,
    task: &Task,
    host: usize,
    locals: VarMap,
    delegate: Option<&str>,
    scope: &Value,
    lockstep: Option<&crate::modules::lockstep::Lockstep>,
) -> Item {
    let Body::Module(call) = &task.body else {
        unreachable_body()
    };
    match conditions(r, &task.kw.when, scope) {
        Ok(true) => {}
        Ok(false) => {
            let mut res = ModuleResult {
                skipped: true,
                ..ModuleResult::default()
            };
            res.data
                .insert("skip_reason".into(), Value::from("Conditional result was False"));
            if let Some(c) = false_condition(r, &task.kw.when, scope) {
                res.data.insert("false_condition".into(), Value::from(c));
            }
            return Item::new(Status::Skipped, res);
        }
        Err(e) => return Item::failed(e.to_string()),
    }
    let started = prepare(r, task, call, scope)
        .map_err(|e| NotStarted::Failed(e.to_string()))
        .and_then(|mut p| {
            let conn =
                connect(r, task, call, host, delegate, scope, &mut p.become_user)?.with_become(p.become_method.clone());
            p.delegate = delegate.map(str::to_string);
            Ok((p, conn))
        });
    match started {
        Ok((prepared, conn)) => attempts(r, ctx, task, call, host, locals, scope, lockstep, prepared, conn).await,
        Err(NotStarted::Failed(msg)) => Item::failed(msg),
        Err(NotStarted::Unreachable(msg)) => Item::unreachable(msg),
    }
}

/// The module's attempts: one, or with `until` as many as `retries` allows, each judged by
/// `changed_when` and `failed_when` with the result under its registered name.
#[allow(clippy::too_many_arguments)]
async fn attempts(
    r: &Runner,
    ctx: &PlayCtx<'_>,
    task: &Task,
    call: &ModuleCall,
    host: usize,
    locals: VarMap,
    scope: &Value,
    lockstep: Option<&crate::modules::lockstep::Lockstep>,
    p: Prepared,
    conn: Connection,
) -> Item {
    let host_name = r.vars.inventory.hosts[host].name.clone();
    let mut events = Vec::new();
    let max_attempts = if task.until.is_some() { p.retries.max(1) + 1 } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let progress = |detail: modules::progress::Progress| {
            r.emit(Event::Progress {
                host: host_name.clone(),
                message: detail.message(),
                detail,
            })
        };
        let other_host = |name: &str| host_connection(r, name);
        // Lines come from the connection's reader, which outlives no borrow: through a channel,
        // emitted here as they arrive while the module runs.
        let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel();
        let lines = r.opts.stream_output.map(|after| crate::connection::LineSink {
            after,
            sink: std::sync::Arc::new(move |stream, line| {
                let _ = line_tx.send((stream, line));
            }),
        });
        let mctx = modules::Ctx {
            conn: &conn,
            run: &r.state,
            check_mode: p.check_mode,
            diff: p.diff,
            become_user: p.become_user.clone(),
            timeout: p.timeout,
            env: p.env.clone(),
            templar: &r.vars.templar,
            scope,
            playbook_dir: &ctx.play.dir,
            role_dir: task.role.as_ref().map(|r| r.dir.as_path()),
            sources: &r.sources,
            template_files: &r.checked.template_files,
            interactive: r.opts.interactive,
            lockstep,
            cancelled: &r.cancelled,
            progress: &progress,
            limit: &ctx.limit,
            connect: &other_host,
            delegate_to: p.delegate.as_deref(),
            lines,
        };
        let output = |(stream, line)| progress(modules::progress::Progress::Output { stream, line });
        let ran = modules::run(call.module, &p.args, &mctx);
        tokio::pin!(ran);
        let ran = loop {
            tokio::select! {
                res = &mut ran => break res,
                Some(l) = line_rx.recv() => output(l),
            }
        };
        while let Ok(l) = line_rx.try_recv() {
            output(l);
        }
        let mut res = match ran {
            Ok(res) => res,
            Err(Failure::Failed(res)) => *res,
            Err(Failure::Unreachable(msg)) => return Item::unreachable(msg),
        };
        let mut value = res.to_value();
        if task.until.is_some() {
            value.insert("attempts".into(), Value::from(attempt));
        }
        // changed_when / failed_when / until see the result under its registered name.
        let mut locals2 = locals.clone();
        if let Some(reg) = &task.register {
            locals2.insert(reg.clone(), Value::from_pairs(value.clone()));
        }
        let rscope = scope_with(r, ctx, task, host, locals2);
        if let Some(cw) = &task.changed_when {
            match conditions(r, cw, &rscope) {
                Ok(b) => res.changed = b,
                Err(e) => return Item::failed(e.to_string()).after(events),
            }
        }
        if let Some(fw) = &task.failed_when {
            match conditions_any(r, fw, &rscope) {
                Ok(b) => {
                    res.failed = b;
                    if b && res.msg.is_none() {
                        res.msg = Some("failed_when condition was true".into());
                    }
                }
                Err(e) => return Item::failed(e.to_string()).after(events),
            }
        }
        value.insert("changed".into(), Value::from(res.changed));
        // (A skipped result has no `failed`, as in ansible-core.)
        if !res.skipped || res.failed {
            value.insert("failed".into(), Value::from(res.failed));
        }
        let done = match &task.until {
            None => true,
            Some(u) => match conditions(r, std::slice::from_ref(u), &rscope) {
                Ok(b) => b,
                Err(e) => return Item::failed(e.to_string()).after(events),
            },
        };
        if done || attempt >= max_attempts {
            if !done {
                res.failed = true;
                value.insert("failed".into(), Value::from(true));
                value.insert(
                    "msg".into(),
                    Value::from(res.msg.clone().unwrap_or_else(|| "Retries exhausted".into())),
                );
            }
            let status = if res.failed {
                Status::Failed
            } else if res.skipped {
                Status::Skipped
            } else if res.changed {
                Status::Changed
            } else {
                Status::Ok
            };
            return Item {
                label: None,
                status,
                result: res,
                value,
                attempts_events: events,
            };
        }
        events.push(Event::Retry {
            host: host_name.clone(),
            task: task.display_name(),
            retries_left: max_attempts - attempt,
        });
        tokio::time::sleep(p.delay).await;
    }
}

/// `failed_when` with a list is true if any condition is (Ansible ORs them).
fn conditions_any(r: &Runner, conds: &[Node], scope: &Value) -> Result<bool, TaskError> {
    for c in conds {
        if conditions(r, std::slice::from_ref(c), scope)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A play's fact gathering (`gather_facts`, on unless the play says otherwise): one remote
/// command per host, its facts stored as `ansible_facts` and injected as `ansible_X`.
pub(crate) async fn gather(r: &Runner, host: usize) -> HostOutcome {
    let name = r.vars.inventory.hosts[host].name.clone();
    let mut o = HostOutcome::new(host);
    let vars = connection_vars(r, Some(host));
    let res = match r.connector.connect(&name, vars.as_deref(), None) {
        Ok(c) => c
            .exec(&crate::connection::Command::new(modules::facts::script(
                modules::facts::FACT_PATH,
            )))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match res {
        Ok(out) if modules::facts::complete(&out.stdout_text()) => {
            let gathered = modules::facts::gathered(&out.stdout_text(), &[], &[]);
            o.facts = modules::facts::inject(r.vars.facts(host).get("ansible_facts"), &gathered);
            let mut hr = host_result(
                &r.state.secrets,
                &name,
                &None,
                Status::Ok,
                &VarMap::new(),
                &ModuleResult::ok(),
                false,
            );
            hr.result = serde_json::json!({"changed": false});
            o.events.push(Event::Host(Box::new(hr)));
        }
        Ok(out) => {
            o.status = Status::Failed;
            let res = ModuleResult::failed(format!("gathering facts failed: {}", out.stderr_text().trim()));
            o.events.push(Event::host(host_result(
                &r.state.secrets,
                &name,
                &None,
                Status::Failed,
                &res.to_value(),
                &res,
                false,
            )));
        }
        Err(msg) => {
            o.status = Status::Unreachable;
            let res = ModuleResult::failed(msg);
            o.events.push(Event::host(host_result(
                &r.state.secrets,
                &name,
                &None,
                Status::Unreachable,
                &res.to_value(),
                &res,
                false,
            )));
        }
    }
    o
}

//! `roll.nginx_switch`: move an app's nginx upstream from the live colour to the next one in
//! batches, with a pause between batches so the old colour's idle database connections drain.
//!
//! Per batch: render the upstream template with every backend's colour, replace the live file
//! atomically (validating the candidate with a `%s` command before, or the whole config after
//! the swap and before any reload), reload nginx, wait until the new workers serve and the old
//! ones have exited, check the gate through the proxy, record the state, pause. A failure
//! restores the previous file (reloading if it had reloaded), records the state and fails: the
//! proxy never points at an unchecked backend. The state (`STATE_DIR/APP.json`) tells a re-run
//! where the switch stands and holds the batch plan it started with, so it resumes with that
//! plan's next batch, and a finished switch is unchanged. The proxies of one task switch in
//! lockstep: a batch counts only when every proxy made it, and when one fails (or becomes
//! unreachable) all restore that batch. With `retire`, a batch live on every proxy then has its
//! old colour stopped over each backend host's own connection (`Ctx::connect`), so the old
//! pools' database connections close at once instead of after a pause; a batch that does not
//! retire fails with its traffic on the new colour and its backends recorded as `unretired`.

use super::files::{Write, apply_write};
use super::progress::{Progress, WaitKind, secs};
use super::spec::{Capability, ModuleSpec, ParamKind, ROLL, p, req};
use super::{Args, Change, Ctx, Failure, FileDiff, Guard, Module, ModuleResult, Plan, Step};
use crate::batches::{SerialStep, serial_sizes};
use crate::connection::{Command, FileAttrs};
use crate::shell::quote;
use crate::values::value_to_string;
use minijinja::Value;
use minijinja::value::ValueKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `roll.nginx_switch`: the batched switch of an app's upstream to the next colour.
pub struct NginxSwitch;

static NGINX_SWITCH: ModuleSpec = ModuleSpec {
    params: &[
        req("app"),
        req("to"),
        req("backends"),
        p("ports"),
        req("template").kind(ParamKind::ModuleTemplate {
            provides: TEMPLATE_NAMES,
        }),
        req("dest"),
        p("batches"),
        p("batch_size"),
        p("serial"),
        p("pause"),
        p("validate"),
        p("reload"),
        p("pid_file"),
        p("gate"),
        p("healthcheck"),
        p("drain"),
        p("state_dir"),
        p("release"),
        p("database"),
        p("container"),
        p("retire").kind(ParamKind::PerHost { provides: RETIRE_NAMES }),
        p("config"),
        p("rollback"),
        p("on_failure"),
    ],
    exclusive: &[
        ("batches", "batch_size"),
        ("batches", "serial"),
        ("batch_size", "serial"),
    ],
    capabilities: &[Capability::Lockstep],
    ..ModuleSpec::new("nginx_switch", ROLL)
};

impl Module for NginxSwitch {
    fn spec(&self) -> &'static ModuleSpec {
        &NGINX_SWITCH
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

#[derive(Debug, Clone)]
pub(super) struct Backend {
    pub(super) name: String,
    pub(super) address: String,
    pub(super) ports: BTreeMap<String, String>,
    /// An inventory host (so it has a connection of its own): named bare, or a `{ name,
    /// address }` whose name is one.
    pub(super) host: bool,
}

/// What is recorded on the proxy after every batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub app: String,
    /// The colour all backends serve when no switch is under way.
    pub live: String,
    /// The release the live colour serves (from the task's `release`, when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The colour a switch under way moves to (`None` when settled).
    pub target: Option<String>,
    /// The release a switch under way moves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_release: Option<String>,
    /// Each backend's current colour.
    pub backends: BTreeMap<String, String>,
    pub batches_done: usize,
    pub batches_total: usize,
    /// `switching`, `live`, or `failed: ...`.
    pub status: String,
    /// The backends of a batch under way: recorded before the upstream file changes, so that a
    /// run that dies mid-batch (killed, or the proxy gone) leaves a state saying which backends
    /// may be on either colour; a re-run redoes the batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// The batches of a switch under way (the backends of each, in order), recorded when it
    /// starts: a re-run to the same colour goes on with those that still have backends to move,
    /// numbered as they were planned. Empty when settled, and in states older roll wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<Vec<String>>,
    /// Backends whose traffic moved but whose old colour is not stopped yet (`retire`): recorded
    /// when their batch goes live, cleared once retired; a re-run retires them first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unretired: Vec<String>,
    /// Unix seconds of the last change.
    pub updated: u64,
    /// The fingerprint of the live release's configuration (the task's `config`), so that a
    /// deploy of the same release with another configuration is not "nothing to do".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The fingerprint a switch under way moves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_config: Option<String>,
    /// The app's releases, oldest first, bounded (`history::HISTORY_LEN`): what went live, what
    /// failed or was interrupted or rolled back, and when. Empty in states older roll wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<super::history::Release>,
}

pub struct Apply {
    planned: Planned,
    state: State,
    to: String,
    release: Option<String>,
    backends: Vec<Backend>,
    template: std::sync::Arc<crate::source::SourceFile>,
    dest: String,
    state_file: String,
    validate: Option<String>,
    reload: String,
    /// How to find nginx's master process, to wait for its workers after a reload.
    master: Option<Master>,
    gate: Option<(String, Expect)>,
    healthcheck: Option<Healthcheck>,
    pause: Duration,
    drain: Option<Drain>,
    retire: Option<Retire>,
    on_failure: OnFailure,
    /// Backends already on the new colour whose old colour a failed retirement left running.
    unretired: Vec<String>,
    /// The configuration's fingerprint, recorded with the release.
    config: Option<String>,
    /// A rollback: the release it leaves is recorded as rolled back, not replaced.
    rollback: bool,
}

/// Before a batch goes live, every backend that moves in it must answer on its new colour's
/// port, asked from the proxy host. nginx passes a request that a dead backend refuses on to
/// the others, so a gate through the proxy does not notice one backend down; this does.
#[derive(Debug, Clone)]
struct Healthcheck {
    path: String,
    expect: Expect,
    timeout: Duration,
}

/// What a probe must get back: the status and, so that another app's `/health` on the same
/// address cannot pass for this one, a substring of the body and a header.
#[derive(Debug, Clone, PartialEq)]
struct Expect {
    status: u16,
    body: Option<String>,
    /// Matched case-insensitively on the name, exactly on the value.
    header: Option<(String, String)>,
    /// The `Host` the probe asks for: of several apps' sites on one `listen`, nginx picks the
    /// one by it, so a gate without it checks whichever site is the default.
    host: Option<String>,
}

impl Expect {
    /// `key`'s `status`, `body` and `header` (`"Name: value"`), read with `get`.
    fn parse(key: &str, get: impl Fn(&str) -> Option<String>) -> Result<Expect, String> {
        let status = match get("status") {
            None => 200,
            Some(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("`{key}.status` must be an HTTP status, got `{s}`"))?,
        };
        let body = get("body").filter(|b| !b.is_empty());
        let header = match get("header") {
            None => None,
            Some(h) => {
                let parsed = h.split_once(':').map(|(n, v)| (n.trim(), v.trim()));
                match parsed {
                    Some((n, v)) if !n.is_empty() && !n.contains(char::is_whitespace) => {
                        Some((n.to_string(), v.to_string()))
                    }
                    _ => {
                        return Err(format!("`{key}.header` is `\"Name: value\"` (`X-App: web`), got `{h}`"));
                    }
                }
            }
        };
        let host = get("host").filter(|h| !h.is_empty());
        Ok(Expect {
            status,
            body,
            header,
            host,
        })
    }

    /// `200`, `200 with `web` in the body and header `X-App: web``.
    fn describe(&self) -> String {
        let mut with = Vec::new();
        if let Some(b) = &self.body {
            with.push(format!("`{b}` in the body"));
        }
        if let Some((n, v)) = &self.header {
            with.push(format!("header `{n}: {v}`"));
        }
        if with.is_empty() {
            self.status.to_string()
        } else {
            format!("{} with {}", self.status, with.join(" and "))
        }
    }
}

fn parse_healthcheck(v: Option<&Value>) -> Result<Option<Healthcheck>, String> {
    let Some(v) = v else { return Ok(None) };
    let usage = "`healthcheck` is a path (`/health`) or \
                 `{ path: /health, status: 200, timeout: 10s, body: TEXT, header: \"Name: value\", host: NAME }`";
    let get = |k: &str| {
        v.get_attr(k)
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_none())
            .map(|x| value_to_string(&x))
    };
    let (path, expect, timeout) = match v.kind() {
        ValueKind::String => (value_to_string(v), Expect::parse("healthcheck", |_| None)?, None),
        ValueKind::Map => (
            get("path").ok_or(usage)?,
            Expect::parse("healthcheck", get)?,
            get("timeout"),
        ),
        _ => return Err(usage.into()),
    };
    if !path.starts_with('/') {
        return Err(format!("`healthcheck.path` must start with `/`, got `{path}`"));
    }
    let timeout = match timeout {
        None => Duration::from_secs(10),
        Some(t) => crate::clock::parse_duration(&t)?,
    };
    Ok(Some(Healthcheck { path, expect, timeout }))
}

/// `gate: { url, status: 200, body: TEXT, header: "Name: value", host: NAME }`.
fn parse_gate(v: Option<&Value>) -> Result<Option<(String, Expect)>, String> {
    let Some(g) = v else { return Ok(None) };
    if g.kind() != ValueKind::Map {
        return Err("`gate` is `{ url: URL, status: 200, body: TEXT, header: \"Name: value\", host: NAME }`".into());
    }
    let get = |k: &str| {
        g.get_attr(k)
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_none())
            .map(|x| value_to_string(&x))
    };
    let url = get("url").ok_or("`gate` needs a `url`")?;
    Ok(Some((url, Expect::parse("gate", get)?)))
}

#[derive(Debug, Clone)]
enum Master {
    PidFile(String),
    /// The container's PID 1 (nginx with `daemon off`), as a host pid.
    Container(String),
}

/// What a batch that fails does to the batches before it (`on_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    /// Restore the failed batch only: the batches before it stay on the next colour, and a
    /// re-run goes on from there (the default).
    Hold,
    /// Put every backend back on the live colour, as Argo Rollouts' abort does: production is
    /// where it was before the switch, and the release is recorded as aborted.
    Abort,
}

fn parse_on_failure(v: Option<String>) -> Result<OnFailure, String> {
    match v.as_deref().map(str::trim) {
        None | Some("") | Some("hold") => Ok(OnFailure::Hold),
        Some("abort") => Ok(OnFailure::Abort),
        Some(other) => Err(format!("`on_failure` is `hold` or `abort`, got `{other}`")),
    }
}

/// After the last batch: hold a fixed time, or poll a command until the number it prints is
/// below a bound (a database's connection count), within a timeout.
#[derive(Debug, Clone)]
struct Drain {
    hold: Option<Duration>,
    command: Option<String>,
    below: f64,
    timeout: Duration,
    interval: Duration,
}

fn parse_drain(v: Option<&Value>) -> Result<Option<Drain>, String> {
    let Some(v) = v else { return Ok(None) };
    if v.kind() != ValueKind::Map {
        return Err("`drain` is `{ hold: 60s }` or `{ command: CMD, below: N, timeout: 300s }`".into());
    }
    let get = |k: &str| {
        v.get_attr(k)
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_none())
            .map(|x| value_to_string(&x))
    };
    let secs = |k: &str, d: f64| -> Result<Duration, String> {
        match get(k) {
            Some(s) => crate::clock::parse_duration(&s),
            None => Ok(Duration::from_secs_f64(d)),
        }
    };
    let hold = get("hold").map(|h| crate::clock::parse_duration(&h)).transpose()?;
    let command = get("command");
    if hold.is_none() && command.is_none() {
        return Err("`drain` needs `hold` or `command`".into());
    }
    let below = match (&command, get("below")) {
        (Some(_), Some(b)) => b
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("`drain.below` must be a number, got `{b}`"))?,
        (Some(_), None) => return Err("`drain.command` needs `below`: the number to wait under".into()),
        (None, _) => 0.0,
    };
    Ok(Some(Drain {
        hold,
        command,
        below,
        timeout: secs("timeout", 300.0)?,
        interval: secs("interval", 1.0)?,
    }))
}

/// Returns what the drain observed, or why it did not finish.
async fn drain(ctx: &Ctx<'_>, d: &Drain) -> Result<Value, String> {
    let start = Instant::now();
    if let Some(h) = d.hold
        && interruptible_pause(
            ctx,
            h,
            Some((WaitKind::Drain, format!("the drain hold of {}", secs(h.as_secs_f64())))),
        )
        .await
    {
        return Err("interrupted during the drain hold".into());
    }
    let Some(cmd) = &d.command else {
        return Ok(Value::from_pairs([(
            "waited_s",
            Value::from(start.elapsed().as_secs_f64()),
        )]));
    };
    let deadline = Instant::now() + d.timeout;
    let mut wait = ctx.wait(WaitKind::Drain, format!("`{cmd}` below {}", d.below), Some(d.timeout));
    loop {
        wait.tick();
        let out = sh(ctx, cmd.clone()).await.map_err(|f| failure_text(&f))?;
        let text = out.stdout_text();
        let n = text.split_whitespace().last().and_then(|w| w.parse::<f64>().ok());
        match n {
            Some(n) if out.rc == 0 && n < d.below => {
                return Ok(Value::from_pairs([
                    ("waited_s", Value::from(start.elapsed().as_secs_f64())),
                    ("last", Value::from(n)),
                ]));
            }
            Some(n) if Instant::now() >= deadline => {
                return Err(format!(
                    "drain did not finish: `{cmd}` still says {n} (not below {}) after {} s",
                    d.below,
                    d.timeout.as_secs()
                ));
            }
            None if Instant::now() >= deadline => {
                return Err(format!(
                    "drain command `{cmd}` printed no number (exit {}): {}",
                    out.rc,
                    out.stderr_text().trim()
                ));
            }
            _ => {}
        }
        if interruptible_pause(ctx, d.interval, None).await {
            return Err("interrupted while draining".into());
        }
    }
}

/// The names `retire`'s `container` and `command` get on top of the backend host's variables.
const RETIRE_NAMES: &[&str] = &["old_colour", "new_colour", "backend"];

/// Per-batch retirement: once a batch is live on every proxy (nginx's old workers gone, so the
/// old backends get nothing more), its backends' old colour is stopped over each backend host's
/// own connection, so their pooled database connections close now instead of at the
/// database's idle timeout.
#[derive(Debug, Clone)]
struct Retire {
    by: RetireBy,
    /// `docker stop --time`: how long the container has to exit before it is killed.
    stop_timeout: Duration,
    /// Before stopping, wait until no connection from the proxy to the backend's old port
    /// remains (a long request), for at most this long.
    connections: Option<Duration>,
    /// What each backend that moves stops, rendered for it (`web-app1-blue`, or the command).
    targets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RetireBy {
    /// `docker stop --time T NAME` on the backend host.
    Container,
    /// A command run on the backend host (an app that is not a container).
    Command,
}

/// `retire: { container: NAME, stop_timeout: 10s, connections: 30s, enabled: true }` or
/// `{ command: CMD, ... }`; `container` and `command` are rendered for each backend in
/// `backends` (with that host's variables, `old_colour`, `new_colour` and `backend`), the rest
/// with the proxy's. `None` when not given or not `enabled`.
fn parse_retire(ctx: &Ctx<'_>, v: Option<&Value>, backends: &[Backend], to: &str) -> Result<Option<Retire>, String> {
    let Some(v) = v else { return Ok(None) };
    let form = "`retire` is `{ container: \"{{ container_prefix }}-{{ old_colour }}\", stop_timeout: 10s, \
                connections: 30s }` or `{ command: CMD, ... }`";
    // Passed unrendered: a whole `"{{ ... }}"` is the proxy's to render (`default(omit)`).
    let rendered;
    let v = if v.kind() == ValueKind::String {
        rendered = ctx
            .templar
            .render(&value_to_string(v), ctx.scope)
            .map_err(|e| format!("`retire`: {}", e.message))?;
        if rendered.is_none() || rendered.is_undefined() || rendered.as_str() == Some(crate::vars::OMIT) {
            return Ok(None);
        }
        &rendered
    } else {
        v
    };
    if v.kind() != ValueKind::Map {
        return Err(form.into());
    }
    let raw = |k: &str| {
        v.get_attr(k)
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_none())
            .map(|x| value_to_string(&x))
    };
    const OPTIONS: [&str; 5] = ["container", "command", "stop_timeout", "connections", "enabled"];
    for key in v.try_iter().map_err(|e| e.to_string())? {
        let key = value_to_string(&key);
        if !OPTIONS.contains(&key.as_str()) {
            let hint = crate::diagnostic::closest(&key, OPTIONS)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!("`retire.{key}` is not a retire option{hint}: {form}"));
        }
    }
    let proxy = |k: &str| -> Result<Option<String>, String> {
        raw(k)
            .map(|t| {
                ctx.templar
                    .render_string(&t, ctx.scope)
                    .map_err(|e| format!("`retire.{k}`: {}", e.message))
            })
            .transpose()
    };
    if let Some(e) = proxy("enabled")? {
        match e.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => {}
            "false" | "no" | "off" | "0" | "" => return Ok(None),
            other => return Err(format!("`retire.enabled` must be a boolean, got `{other}`")),
        }
    }
    let (by, template) = match (raw("container"), raw("command")) {
        (Some(c), None) => (RetireBy::Container, c),
        (None, Some(c)) => (RetireBy::Command, c),
        (Some(_), Some(_)) => return Err("`retire` takes `container` or `command`, not both".into()),
        (None, None) => return Err(format!("`retire` needs `container` or `command`: {form}")),
    };
    let stop_timeout = match proxy("stop_timeout")? {
        Some(t) => crate::clock::parse_duration(&t)?,
        None => Duration::from_secs(10),
    };
    let connections = proxy("connections")?
        .map(|t| crate::clock::parse_duration(&t))
        .transpose()?;
    let hostvars = ctx.scope.get_attr("hostvars").ok();
    let mut targets = BTreeMap::new();
    for b in backends {
        if !b.host {
            return Err(format!(
                "`retire` stops the old colour over each backend's own connection, but backend `{}` \
                 is not an inventory host; name inventory hosts in `backends`",
                b.name
            ));
        }
        let host = hostvars
            .as_ref()
            .and_then(|h| h.get_item(&Value::from(b.name.as_str())).ok())
            .filter(|h| !h.is_undefined())
            .unwrap_or_default();
        let own = Value::from_pairs([
            ("old_colour", Value::from(other(to))),
            ("new_colour", Value::from(to)),
            ("backend", Value::from(b.name.as_str())),
        ]);
        let scope = minijinja::value::merge_maps([ctx.scope.clone(), host, own]);
        let what = if by == RetireBy::Container {
            "container"
        } else {
            "command"
        };
        let target = ctx
            .templar
            .render_string(&template, &scope)
            .map_err(|e| format!("`retire.{what}` for backend `{}`: {}", b.name, e.message))?;
        if target.trim().is_empty() {
            return Err(format!("`retire.{what}` is empty for backend `{}`", b.name));
        }
        targets.insert(b.name.clone(), target);
    }
    Ok(Some(Retire {
        by,
        stop_timeout,
        connections,
        targets,
    }))
}

/// Retire `batch`'s old colour, in step with the other proxies: each waits until its own
/// connections to the batch's old ports are gone (`connections`), then one of them (the
/// lockstep's leader) stops the old colour on every backend host of the batch, and all learn
/// whether that worked. Returns what it took, or why it did not finish.
async fn retire_batch(ctx: &Ctx<'_>, a: &Apply, r: &Retire, batch: &[String]) -> Result<Value, String> {
    let t = Instant::now();
    let waited = match r.connections {
        Some(limit) if !batch.is_empty() => wait_connections(ctx, a, batch, limit).await,
        _ => Ok(()),
    };
    let wait_s = t.elapsed().as_secs_f64();
    let waited_ok = waited.is_ok();
    let (all_drained, lead) = match ctx.lockstep {
        Some(l) => l.step_leading(waited_ok).await,
        None => (waited_ok, true),
    };
    if !all_drained {
        // Nothing is stopped; take the second round too, so the proxies' rounds stay in step.
        if let Some(l) = ctx.lockstep {
            l.step(false).await;
        }
        waited?;
        return Err("another proxy still had connections to the old colour".into());
    }
    let t = Instant::now();
    let stopped = if lead && !batch.is_empty() {
        stop_old(ctx, r, batch).await
    } else {
        Ok(())
    };
    let all_ok = match ctx.lockstep {
        Some(l) => l.step(stopped.is_ok()).await,
        None => stopped.is_ok(),
    };
    stopped?;
    if !all_ok {
        return Err("retiring the old colour failed on another proxy".into());
    }
    Ok(Value::from_pairs([
        ("connections_wait_ms", Value::from((wait_s * 10000.0).round() / 10.0)),
        (
            "stop_ms",
            Value::from((t.elapsed().as_secs_f64() * 10000.0).round() / 10.0),
        ),
        ("led", Value::from(lead)),
    ]))
}

/// What retiring `batch` stops, per backend (`{ backend, container }` or `{ backend, command }`),
/// for the plan.
fn stops_of(r: &Retire, batch: &[String]) -> Value {
    let key = match r.by {
        RetireBy::Container => "container",
        RetireBy::Command => "command",
    };
    Value::from(
        batch
            .iter()
            .filter_map(|n| r.targets.get(n).map(|t| (n, t)))
            .map(|(n, t)| Value::from_pairs([("backend", Value::from(n.as_str())), (key, Value::from(t.as_str()))]))
            .collect::<Vec<_>>(),
    )
}

/// On the proxy, until no established connection to any of `batch`'s old ports remains.
async fn wait_connections(ctx: &Ctx<'_>, a: &Apply, batch: &[String], limit: Duration) -> Result<(), String> {
    let old = other(&a.to);
    let mut probes = Vec::new();
    for b in a.backends.iter().filter(|b| batch.contains(&b.name)) {
        let Some(port) = b.ports.get(&old) else { continue };
        let host = if b.address.contains(':') {
            format!("[{}]", b.address)
        } else {
            b.address.clone()
        };
        // `ss` prints one line per connection; nothing printed means none left.
        probes.push(format!(
            "n=$(ss -Htn state established dst {} | wc -l) || exit 3; [ \"$n\" = 0 ] || echo {}\" has $n\"",
            quote(&format!("{host}:{port}")),
            quote(&format!("{} ({host}:{port})", b.name))
        ));
    }
    if probes.is_empty() {
        return Ok(());
    }
    poll(
        ctx,
        &probes.join("\n"),
        limit,
        Duration::from_millis(100),
        Some("open connections to the old colour"),
    )
    .await
    .map_err(|e| match e {
        Some(left) => format!(
            "connections to the old colour still open after {} s: {left}",
            limit.as_secs_f64()
        ),
        None => "the proxy host is unreachable".into(),
    })
}

/// Stop the old colour of every backend of `batch`, each over its own host's connection, all
/// at once. Fails naming every backend and container that did not stop.
async fn stop_old(ctx: &Ctx<'_>, r: &Retire, batch: &[String]) -> Result<(), String> {
    let stops = batch.iter().map(|name| async move {
        let target = r
            .targets
            .get(name)
            .ok_or_else(|| format!("`{name}`: nothing to retire"))?;
        let (script, what) = match r.by {
            RetireBy::Container => (
                format!("docker stop --time {} {}", r.stop_timeout.as_secs(), quote(target)),
                format!("container `{target}`"),
            ),
            RetireBy::Command => (target.clone(), format!("`{}`", ctx.run.secrets.mask(target))),
        };
        let conn = (ctx.connect)(name).map_err(|e| format!("{what} on `{name}`: {e}"))?;
        let mut c = Command::new(script);
        c.timeout = Some(r.stop_timeout + Duration::from_secs(60));
        match conn.exec(&c).await {
            Ok(out) if out.rc == 0 => Ok(()),
            Ok(out) => Err(format!(
                "{what} on `{name}` did not stop (exit {}): {}",
                out.rc,
                truncate(out.stderr_text().trim(), 300)
            )),
            Err(e) => Err(format!("{what} on `{name}`: host unreachable: {e}")),
        }
    });
    let failed: Vec<String> = futures_util::future::join_all(stops)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// What the switch knows of the database behind the backends, for drain-aware planning.
#[derive(Debug, Clone)]
struct Database {
    /// The database's connection limit (`max_connections`).
    max_connections: u64,
    /// Connections each backend's pool holds while it serves.
    pool: u64,
    /// Connections from anything else (admin, cron, other apps).
    other: u64,
    /// How long an idle connection lives (the database's `wait_timeout`); the pause by default.
    wait_timeout: Duration,
}

fn parse_database(v: Option<&Value>, pause: Duration) -> Result<Option<Database>, String> {
    let Some(v) = v else { return Ok(None) };
    let form = "`database` is `{ max_connections: N, pool: N, other: N, wait_timeout: 10s }`";
    if v.kind() != ValueKind::Map {
        return Err(form.into());
    }
    let get = |k: &str| {
        v.get_attr(k)
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_none())
            .map(|x| value_to_string(&x))
    };
    let count = |k: &str, required: bool| -> Result<u64, String> {
        match get(k) {
            Some(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("`database.{k}` must be a whole number, got `{s}`")),
            None if required => Err(format!("`database.{k}` is required: {form}")),
            None => Ok(0),
        }
    };
    let wait_timeout = match get("wait_timeout") {
        Some(w) => crate::clock::parse_duration(&w)?,
        None => pause,
    };
    Ok(Some(Database {
        max_connections: count("max_connections", true)?,
        pool: count("pool", true)?.max(1),
        other: count("other", false)?,
        wait_timeout,
    }))
}

/// The expected database connections at each batch: every backend keeps its pool while it
/// serves; a backend that moves opens its new colour's pool at once, while its old colour's
/// pool stays until its idle connections time out (`wait_timeout` after the move). So a batch
/// peaks at `other + n·pool + pool·(backends moved within the last wait_timeout)`. With
/// `retire`, the old pools close when their containers stop, right after the batch: a batch
/// peaks at `other + n·pool + pool·(backends in the batch)`.
fn expected_peaks(sizes: &[usize], n: usize, db: &Database, pause: Duration, retire: bool) -> Vec<u64> {
    let pool = db.pool;
    (0..sizes.len())
        .map(|i| {
            let draining: usize = (0..=i)
                .filter(|&j| j == i || (!retire && pause.saturating_mul((i - j) as u32) < db.wait_timeout))
                .map(|j| sizes[j])
                .sum();
            db.other + pool * n as u64 + pool * draining as u64
        })
        .collect()
}

/// The fewest batches whose expected peak stays within the limit.
fn auto_batches(
    names: &[String],
    n: usize,
    db: &Database,
    pause: Duration,
    retire: bool,
) -> Result<Vec<Vec<String>>, String> {
    for count in 1..=names.len().max(1) {
        let batches = split_count(names, count);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        if expected_peaks(&sizes, n, db, pause, retire)
            .iter()
            .all(|p| *p <= db.max_connections)
        {
            return Ok(batches);
        }
    }
    let one = expected_peaks(&[1], n, db, pause, retire)[0];
    let worst = expected_peaks(&vec![1; names.len().max(1)], n, db, pause, retire)
        .into_iter()
        .max()
        .unwrap_or(one);
    if worst > one {
        // The pause is shorter than the idle timeout: the old pools of earlier batches pile up.
        return Err(format!(
            "no batching keeps the database within max_connections {}: even one backend at a time \
             peaks at {worst}, as each batch's old pool stays open for wait_timeout {} s after it \
             moves and the pause is {} s; pause at least wait_timeout, or `retire` the old colour",
            db.max_connections,
            db.wait_timeout.as_secs_f64(),
            pause.as_secs_f64()
        ));
    }
    Err(format!(
        "no batching keeps the database within max_connections {}: even one backend at a time \
         peaks at {one} ({} backends × pool {} + {} other + one new pool)",
        db.max_connections, n, db.pool, db.other
    ))
}

/// The batches a run makes, how they are numbered, and the plan recorded on the proxy.
#[derive(Debug, Clone, PartialEq)]
struct Planned {
    /// The switch's whole plan, recorded in the state.
    plan: Vec<Vec<String>>,
    /// Batches of this switch done before this run: its first batch is number `done + 1`.
    done: usize,
    /// The batches this run makes.
    batches: Vec<Vec<String>>,
    /// For the result's message: that the run goes on with the stored plan, or why it plans the
    /// rest again.
    note: Option<String>,
}

impl Planned {
    fn total(&self) -> usize {
        self.done + self.batches.len()
    }
}

/// How a run to `to` batches the backends still to move (`remaining`, of all `names`): a switch
/// under way to `to` goes on with the plan `state` recorded when it started, unless that plan no
/// longer fits the backends; then, as a new switch does, with `fresh`.
fn plan_switch(state: &State, to: &str, names: &[String], remaining: &[String], fresh: Vec<Vec<String>>) -> Planned {
    if state.target.as_deref() != Some(to) {
        return Planned {
            plan: fresh.clone(),
            done: 0,
            batches: fresh,
            note: None,
        };
    }
    let done = state.batches_done;
    match stored_batches(state, names, remaining) {
        Ok(batches) => Planned {
            note: Some(format!(
                "the switch to `{to}` under way resumes with batch {} of {} of the plan it started with",
                done + 1,
                done + batches.len()
            )),
            plan: state.plan.clone(),
            done,
            batches,
        },
        Err(why) => Planned {
            note: Some(format!(
                "{why}: the backends still to move are planned again, from batch {}",
                done + 1
            )),
            plan: state
                .plan
                .iter()
                .take(done)
                .cloned()
                .chain(fresh.iter().cloned())
                .collect(),
            done,
            batches: fresh,
        },
    }
}

/// The batches of the stored plan that still have backends to move (a batch a dead run left
/// pending among them), or why the plan no longer fits.
fn stored_batches(state: &State, names: &[String], remaining: &[String]) -> Result<Vec<Vec<String>>, String> {
    if state.plan.is_empty() {
        return Err("the state of the switch under way holds no batch plan (an older roll wrote it)".into());
    }
    // The state's backends are those of the run that planned the switch (or went on with it).
    let before: std::collections::BTreeSet<&str> = state.backends.keys().map(String::as_str).collect();
    let now: std::collections::BTreeSet<&str> = names.iter().map(String::as_str).collect();
    if before != now {
        let list = |set: Vec<&&str>| set.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let added: Vec<_> = now.difference(&before).collect();
        let removed: Vec<_> = before.difference(&now).collect();
        let mut what = Vec::new();
        if !added.is_empty() {
            what.push(format!("added {}", list(added)));
        }
        if !removed.is_empty() {
            what.push(format!("removed {}", list(removed)));
        }
        return Err(format!(
            "the backends changed since the switch started ({})",
            what.join("; ")
        ));
    }
    let batches: Vec<Vec<String>> = state
        .plan
        .iter()
        .map(|b| b.iter().filter(|n| remaining.contains(n)).cloned().collect::<Vec<_>>())
        .filter(|b| !b.is_empty())
        .collect();
    if let Some(n) = remaining.iter().find(|n| !batches.iter().any(|b| b.contains(n))) {
        return Err(format!(
            "the stored batch plan does not hold `{n}`, which is still to move"
        ));
    }
    Ok(batches)
}

fn split_count(names: &[String], count: usize) -> Vec<Vec<String>> {
    let n = names.len();
    let count = count.clamp(1, n.max(1));
    let mut out = Vec::new();
    let mut i = 0;
    for k in 0..count {
        let s = n / count + usize::from(k < n % count);
        if s > 0 {
            out.push(names[i..i + s].to_vec());
        }
        i += s;
    }
    out
}

/// Backends are inventory host names (`"{{ groups['app'] }}"`: the address is the host's
/// `ansible_host`, the ports come from `ports`), or mappings `{ name, address, ports }`.
pub(super) fn parse_backends(
    v: Option<&Value>,
    default_ports: Option<&Value>,
    scope: &Value,
) -> Result<Vec<Backend>, String> {
    let v = v.ok_or("`backends` is required")?;
    if v.kind() != ValueKind::Seq {
        return Err(
            "`backends` must be a list of host names or of `{ name, address, ports: { blue: PORT, green: PORT } }`"
                .into(),
        );
    }
    let ports_of = |pv: &Value| -> Result<BTreeMap<String, String>, String> {
        let mut ports = BTreeMap::new();
        for k in pv.try_iter().map_err(|e| e.to_string())? {
            let p = pv.get_item(&k).map_err(|e| e.to_string())?;
            ports.insert(k.to_string(), value_to_string(&p));
        }
        Ok(ports)
    };
    // A bare name must be an inventory host: anything else would go into the upstream as an
    // address nobody checked (`ghost1:8082`).
    let inventory: Vec<String> = scope
        .get_attr("groups")
        .and_then(|g| g.get_item(&Value::from("all")))
        .ok()
        .and_then(|all| all.try_iter().ok().map(|it| it.map(|h| value_to_string(&h)).collect()))
        .unwrap_or_default();
    let mut out = Vec::new();
    for b in v.try_iter().map_err(|e| e.to_string())? {
        if b.kind() == ValueKind::String {
            let name = value_to_string(&b);
            if !inventory.contains(&name) {
                let hint = crate::diagnostic::closest(&name, inventory.iter().map(String::as_str))
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "backend `{name}` is not an inventory host{hint}; name inventory hosts, or give a backend \
                     outside the inventory as `{{ name, address, ports }}`"
                ));
            }
            let host = scope
                .get_attr("hostvars")
                .and_then(|h| h.get_item(&Value::from(name.as_str())))
                .ok();
            let address = host
                .as_ref()
                .and_then(|h| h.get_attr("ansible_host").ok())
                .filter(|a| !a.is_undefined() && !a.is_none())
                .map(|a| value_to_string(&a))
                .unwrap_or_else(|| name.clone());
            let pv = default_ports.ok_or_else(|| {
                format!("backend `{name}` is a host name: give `ports: {{ blue: PORT, green: PORT }}`")
            })?;
            out.push(Backend {
                name,
                address,
                ports: ports_of(pv)?,
                host: true,
            });
            continue;
        }
        let get = |k: &str| b.get_attr(k).ok().filter(|x| !x.is_undefined() && !x.is_none());
        let name = get("name")
            .map(|x| value_to_string(&x))
            .ok_or("every backend needs a `name`")?;
        let address = get("address")
            .map(|x| value_to_string(&x))
            .ok_or_else(|| format!("backend `{name}` needs an `address`"))?;
        let pv = get("ports")
            .or_else(|| default_ports.cloned())
            .ok_or_else(|| format!("backend `{name}` needs `ports` per colour"))?;
        // Named after an inventory host, it is that host (`retire` reaches it over its
        // connection), at the address given.
        let host = inventory.contains(&name);
        out.push(Backend {
            name,
            address,
            ports: ports_of(&pv)?,
            host,
        });
    }
    Ok(out)
}

/// Batches of `names`: a count of batches, a batch size, or an Ansible `serial` list.
fn batches_of(names: &[String], args: &Args) -> Result<Vec<Vec<String>>, String> {
    let n = names.len();
    if let Some(count) = args.f64("batches")? {
        if !(count >= 1.0 && count.fract() == 0.0) {
            return Err(format!(
                "`batches` is a whole number of at least 1 (or `auto`), got `{count}`"
            ));
        }
        return Ok(split_count(names, count as usize));
    }
    // `batch_size` is one `serial` step, repeated; `serial` is Ansible's list.
    let (key, entries) = match (args.str("batch_size")?, args.get("serial")) {
        (Some(size), _) => ("batch_size", vec![size]),
        (None, Some(serial)) => ("serial", strings(serial)),
        (None, None) => return Ok(vec![names.to_vec()]),
    };
    let steps = entries
        .iter()
        .map(|e| {
            SerialStep::parse(e).ok_or_else(|| {
                format!(
                    "invalid `{key}` entry `{e}`: `{key}` is {}",
                    crate::batches::SERIAL_HELP
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        return Err(format!(
            "`{key}` is an empty list: it is {}",
            crate::batches::SERIAL_HELP
        ));
    }
    Ok(crate::batches::split(names, &serial_sizes(&steps, n)))
}

fn strings(v: &Value) -> Vec<String> {
    if v.kind() == ValueKind::Seq {
        v.try_iter()
            .map(|it| it.map(|x| value_to_string(&x)).collect())
            .unwrap_or_default()
    } else {
        vec![value_to_string(v)]
    }
}

fn other(colour: &str) -> String {
    if colour == "blue" {
        "green".into()
    } else {
        "blue".into()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The names the upstream template gets of its own, on top of the host's variables (which they
/// hide): the checker knows them as defined in it (`ParamKind::ModuleTemplate`).
const TEMPLATE_NAMES: &[&str] = &["backends", "app"];

/// The template's own variables, named as in `TEMPLATE_NAMES`: `backends`, each with `name`,
/// `address`, and the `colour` it is on in `colours` with that colour's `port`; and `app`.
fn template_vars(app: &str, backends: &[Backend], colours: &BTreeMap<String, String>) -> [(&'static str, Value); 2] {
    let list: Vec<Value> = backends
        .iter()
        .map(|b| {
            let colour = colours.get(&b.name).cloned().unwrap_or_default();
            let port = b.ports.get(&colour).cloned().unwrap_or_default();
            Value::from_pairs([
                ("name", Value::from(b.name.as_str())),
                ("address", Value::from(b.address.as_str())),
                ("port", Value::from(port)),
                ("colour", Value::from(colour)),
            ])
        })
        .collect();
    [("backends", Value::from(list)), ("app", Value::from(app))]
}

fn render(
    ctx: &Ctx<'_>,
    template: &crate::source::SourceFile,
    app: &str,
    backends: &[Backend],
    colours: &BTreeMap<String, String>,
) -> Result<String, String> {
    let scope = template_scope(ctx.scope, template_vars(app, backends, colours));
    ctx.render_template(template, &scope)
        .map_err(|e| format!("upstream template {e}"))
}

/// The host's variables with the template's own on top.
fn template_scope(host: &Value, own: [(&'static str, Value); 2]) -> Value {
    // The later map wins a lookup.
    minijinja::value::merge_maps([host.clone(), Value::from_pairs(own)])
}

async fn read_state(ctx: &Ctx<'_>, path: &str) -> Result<Option<State>, Failure> {
    match ctx.conn.read_file(path, ctx.become_user.as_deref()).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("state file `{path}` is not valid: {e}").into()),
    }
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let app = args.req_str("app")?;
    let to = args.req_str("to")?;
    let backends = parse_backends(args.get("backends"), args.get("ports"), ctx.scope)?;
    // Checked here too, so that a dry run refuses what the run would fail at its health check.
    if let Some(why) = limit_refusal(&app, &backends, ctx) {
        return Err(Failure::refused(why));
    }
    for b in &backends {
        if !b.ports.contains_key(&to) {
            return Err(format!("backend `{}` has no port for colour `{to}`", b.name).into());
        }
    }
    let template = ctx.template_source(&args.req_str("template")?)?;
    let dest = args.req_str("dest")?;
    let state_dir = args.str("state_dir")?.unwrap_or_else(|| "/var/lib/roll".into());
    let state_file = format!("{}/{app}.json", state_dir.trim_end_matches('/'));
    let previous = read_state(ctx, &state_file).await?;
    let first_deploy = previous.is_none() && ctx.conn.read_file(&dest, ctx.become_user.as_deref()).await?.is_none();
    let mut state = previous.unwrap_or_else(|| State {
        app: app.clone(),
        live: other(&to),
        ..State::default()
    });
    let mut colours: BTreeMap<String, String> = BTreeMap::new();
    for b in &backends {
        colours.insert(
            b.name.clone(),
            state
                .backends
                .get(&b.name)
                .cloned()
                .unwrap_or_else(|| state.live.clone()),
        );
    }
    // A batch that a dead run left `pending` may be on either colour in the file: redo it.
    let remaining: Vec<String> = backends
        .iter()
        .filter(|b| colours[&b.name] != to || state.pending.contains(&b.name))
        .map(|b| b.name.clone())
        .collect();
    let names: Vec<String> = backends.iter().map(|b| b.name.clone()).collect();
    let mut result = ModuleResult::ok()
        .with("app", app.as_str())
        .with("live", state.live.as_str())
        .with("to", to.as_str());
    // A saved plan holds only while the proxy is still live on the colour it was made from.
    result.guards.push(Guard {
        what: "live colour".into(),
        before: state.live.clone(),
        after: to.clone(),
    });
    // Backends a failed retirement left running on the old colour are retired by this run.
    let unretired: Vec<String> = state
        .unretired
        .iter()
        .filter(|n| names.contains(n) && !remaining.contains(n))
        .cloned()
        .collect();
    let retire = match first_deploy {
        // Nothing served before the first deploy: there is no old colour to stop.
        true => None,
        false => {
            let acting: Vec<Backend> = backends
                .iter()
                .filter(|b| remaining.contains(&b.name) || unretired.contains(&b.name))
                .cloned()
                .collect();
            parse_retire(ctx, args.get("retire"), &acting, &to)?
        }
    };
    let on_failure = parse_on_failure(args.str("on_failure")?)?;
    if on_failure == OnFailure::Abort && retire.is_some() {
        return Err(
            "`on_failure: abort` moves switched batches back to the old colour, which `retire` \
             stops batch by batch; set `retire.enabled: false` (the old colour then stops after the switch)"
                .to_string()
                .into(),
        );
    }
    if remaining.is_empty() && (unretired.is_empty() || retire.is_none()) {
        return Ok(Plan::Unchanged(result.with("batches", 0)));
    }
    let pause = match args.str("pause")? {
        Some(p) => crate::clock::parse_duration(&p)?,
        None => Duration::ZERO,
    };
    let database = parse_database(args.get("database"), pause)?;
    let auto = args.str("batches")?.is_some_and(|b| b.trim() == "auto");
    // With nothing behind the proxy yet there is nothing to drain: one batch.
    let fresh = if first_deploy {
        vec![remaining.clone()]
    } else if remaining.is_empty() {
        Vec::new()
    } else if auto {
        let db = database
            .as_ref()
            .ok_or("`batches: auto` needs `database: { max_connections: N, pool: N }` to plan by")?;
        auto_batches(&remaining, backends.len(), db, pause, retire.is_some())?
    } else {
        batches_of(&remaining, args)?
    };
    // Planned before `state.backends` takes this run's backends: a stored plan holds only for
    // the backends it was made for.
    let planned = plan_switch(&state, &to, &names, &remaining, fresh);
    state.backends = colours.clone();
    let batches = &planned.batches;
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    let peaks = match (&database, first_deploy) {
        (Some(db), false) => Some(expected_peaks(&sizes, backends.len(), db, pause, retire.is_some())),
        _ => None,
    };
    if let (Some(db), Some(peaks)) = (&database, &peaks)
        && let Some((k, peak)) = peaks.iter().enumerate().find(|(_, p)| **p > db.max_connections)
    {
        return Err(format!(
            "batch {} of {} would peak at {peak} database connections, above max_connections {}; \
             use more batches, or `batches: auto` to choose the fewest that fit",
            planned.done + k + 1,
            planned.total(),
            db.max_connections
        )
        .into());
    }
    let gate = parse_gate(args.get("gate"))?;
    // The plan: which backends move in which batch, when, and the first and final files.
    let before = render(ctx, &template, &app, &backends, &colours)?;
    let mut final_colours = colours.clone();
    for n in &remaining {
        final_colours.insert(n.clone(), to.clone());
    }
    let after = render(ctx, &template, &app, &backends, &final_colours)?;
    let plan: Vec<Value> = batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut pairs = vec![
                ("batch", Value::from(planned.done + i + 1)),
                ("offset_s", Value::from(pause.as_secs_f64() * i as f64)),
                ("backends", Value::from(b.clone())),
            ];
            if let Some(r) = &retire {
                pairs.push(("stops", stops_of(r, b)));
            }
            if let (Some(p), Some(db)) = (&peaks, &database) {
                pairs.push(("expected_peak", Value::from(p[i])));
                pairs.push(("max_connections", Value::from(db.max_connections)));
            }
            Value::from_pairs(pairs)
        })
        .collect();
    let mut preview = result.with("plan", Value::from(plan)).with("batches", batches.len());
    if let Some(r) = retire.as_ref().filter(|_| !unretired.is_empty()) {
        // Left running by a retirement that failed: stopped before the next batch.
        preview.data.insert("unretired".into(), stops_of(r, &unretired));
    }
    if on_failure == OnFailure::Abort {
        // What a failed batch does, for the dry run: every switched batch back to this colour.
        preview.data.insert("on_failure".into(), Value::from("abort"));
        preview.data.insert("abort_to".into(), Value::from(state.live.as_str()));
    }
    preview.changed = true;
    preview.msg = planned.note.clone();
    preview.diffs.push(FileDiff {
        path: dest.clone(),
        before,
        after,
        change: Change::Update,
    });

    // nginx in a container: HUP through docker, validate inside the container, and the master's
    // host pid from docker, so the wait for new workers works the same.
    let container = args.str("container")?;
    let validate = match (&container, args.str("validate")?) {
        (_, Some(v)) => Some(v),
        (Some(c), None) => Some(format!("docker exec {} nginx -t", quote(c))),
        (None, None) => None,
    };
    let reload = match (&container, args.str("reload")?) {
        (_, Some(r)) => r,
        (Some(c), None) => format!("docker kill -s HUP {}", quote(c)),
        (None, None) => "nginx -s reload".into(),
    };
    let master = match (container, args.str("pid_file")?) {
        (_, Some(p)) => Some(Master::PidFile(p)),
        (Some(c), None) => Some(Master::Container(c)),
        (None, None) => None,
    };
    let drain = parse_drain(args.get("drain"))?;
    // How long the switch is expected to take: the pauses between batches and the drain hold
    // (the batches themselves take a fraction of a second each).
    let hold = drain.as_ref().and_then(|d| d.hold).unwrap_or_default();
    let expected = pause.as_secs_f64() * (batches.len().saturating_sub(1)) as f64 + hold.as_secs_f64();
    preview.data.insert("expected_s".into(), Value::from(expected));
    let action = Apply {
        planned,
        state,
        to,
        release: args.str("release")?,
        backends,
        template,
        dest,
        state_file,
        validate,
        reload,
        master,
        gate,
        healthcheck: parse_healthcheck(args.get("healthcheck"))?,
        pause,
        drain,
        retire,
        on_failure,
        unretired,
        config: args.str("config")?,
        rollback: args.bool("rollback", false)?,
    };
    Ok(Plan::Change {
        preview,
        action: Box::new(action),
    })
}

async fn sh(ctx: &Ctx<'_>, script: String) -> Result<crate::connection::Output, Failure> {
    let mut c = Command::new(script);
    c.become_user = ctx.become_user.clone();
    c.timeout = Some(Duration::from_secs(120));
    Ok(ctx.conn.exec(&c).await?)
}

async fn write(ctx: &Ctx<'_>, dest: &str, content: String, validate: Option<String>) -> Result<(), Failure> {
    let w = Write {
        dest: dest.to_string(),
        content: content.into_bytes(),
        attrs: FileAttrs::default(),
        backup: false,
        validate,
        parents: false,
    };
    apply_write(w, ctx).await.map(|_| ())
}

/// The state's directory, private to roll's user and group; once per switch, before `record`.
async fn state_dir(ctx: &Ctx<'_>, a: &Apply) -> Result<(), Failure> {
    let dir = a.state_file.rsplit_once('/').map_or(".", |(d, _)| d).to_string();
    let mk = sh(ctx, format!("mkdir -p {} && chmod 750 {}", quote(&dir), quote(&dir))).await?;
    if mk.rc != 0 {
        return Err(format!("cannot create `{dir}`: {}", mk.stderr_text().trim()).into());
    }
    Ok(())
}

/// Write the state (its directory exists: `state_dir`).
async fn record(ctx: &Ctx<'_>, a: &Apply, state: &State) -> Result<(), Failure> {
    let json = serde_json::to_string_pretty(state).map_err(|e| e.to_string())?;
    super::files::write_record(ctx, &a.state_file, json.into_bytes()).await
}

/// One line in the proxy's audit log (beside the state): who, when, app, release, what. An
/// audit line that cannot be written does not undo a batch that was made.
async fn audit(ctx: &Ctx<'_>, a: &Apply, state: &State, step: &str) {
    let dir = a.state_file.rsplit_once('/').map_or(".", |(d, _)| d);
    let release = state.target_release.as_deref().or(state.release.as_deref());
    let step = ctx.run.secrets.mask(step);
    let _ = sh(ctx, super::deploy_lock::audit_line(dir, &state.app, release, &step)).await;
}

/// Reload and wait until the workers that served before have exited and new ones serve.
async fn reload(ctx: &Ctx<'_>, a: &Apply) -> Result<(), String> {
    let master = match &a.master {
        Some(Master::PidFile(p)) => format!("cat {}", quote(p)),
        Some(Master::Container(c)) => format!("docker inspect -f '{{{{.State.Pid}}}}' {}", quote(c)),
        None => String::new(),
    };
    let script = if master.is_empty() {
        a.reload.clone()
    } else {
        format!(
            "m=$({master}) || exit 1\nold=$(pgrep -P \"$m\" | tr '\\n' ' ')\n{reload} || exit 1\n\
             i=0; while [ $i -lt 300 ]; do\n  busy=0; for p in $old; do kill -0 \"$p\" 2>/dev/null && busy=1; done\n  \
             new=$(pgrep -P \"$m\" | tr '\\n' ' ')\n  if [ $busy = 0 ] && [ -n \"$new\" ]; then exit 0; fi\n  sleep 0.02; i=$((i+1))\ndone\n\
             echo 'old nginx workers did not exit within 6 s' >&2; exit 3",
            reload = a.reload
        )
    };
    let out = sh(ctx, script).await.map_err(|f| match f {
        Failure::Unreachable(m) => m,
        Failure::Failed(r) => r.msg.unwrap_or_default(),
    })?;
    if out.rc != 0 {
        return Err(format!("reload failed: {}", out.stderr_text().trim()));
    }
    Ok(())
}

async fn gate(ctx: &Ctx<'_>, a: &Apply) -> Result<(), String> {
    let Some((url, expect)) = &a.gate else { return Ok(()) };
    let probe = http_probe(url, expect, &format!("gate {url}"));
    poll(ctx, &probe, Duration::from_secs(10), Duration::from_millis(200), None)
        .await
        .map_err(|e| match e {
            Some(failing) => format!("{failing}, expected {}", expect.describe()),
            None => format!("gate {url}: the proxy host is unreachable"),
        })
}

/// Ask every backend of `batch` for the health path on `to`'s port, from the proxy host, until
/// all answer the expected status or the timeout passes.
async fn healthcheck(ctx: &Ctx<'_>, a: &Apply, h: &Healthcheck, batch: &[String]) -> Result<(), String> {
    let mut probes = Vec::new();
    for b in a.backends.iter().filter(|b| batch.contains(&b.name)) {
        let port = b
            .ports
            .get(&a.to)
            .ok_or_else(|| format!("backend `{}` has no port for `{}`", b.name, a.to))?;
        let host = if b.address.contains(':') {
            format!("[{}]", b.address)
        } else {
            b.address.clone()
        };
        let url = format!("http://{host}:{port}{}", h.path);
        probes.push(http_probe(&url, &h.expect, &format!("{} ({url})", b.name)));
    }
    let what = format!("{} to serve on {}", batch.join(", "), a.to);
    let probes = probes.join("\n");
    poll(ctx, &probes, h.timeout, Duration::from_millis(500), Some(&what))
        .await
        .map_err(|e| match e {
            Some(failing) => format!(
                "not serving on {} (expected {} from {}): {failing}",
                a.to,
                h.expect.describe(),
                h.path
            ),
            None => "health check: the proxy host is unreachable".to_string(),
        })
}

/// Shell lines, run on the proxy, that print `what answered CODE` unless `url` answers as
/// `expect` says, and what came back instead when the status is right but the body or the header
/// is not (the body's first 200 bytes, the header's values).
fn http_probe(url: &str, expect: &Expect, what: &str) -> String {
    let (w, status) = (quote(what), expect.status);
    let u = match &expect.host {
        Some(h) => format!("-H {} {}", quote(&format!("Host: {h}")), quote(url)),
        None => quote(url),
    };
    if expect.body.is_none() && expect.header.is_none() {
        return format!(
            "c=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 {u}); [ \"$c\" = {status} ] || echo {w}\" answered $c\""
        );
    }
    let mut checks = format!("if [ \"$c\" != {status} ]; then echo {w}\" answered $c\"\n");
    if let Some(body) = &expect.body {
        checks.push_str(&format!(
            "elif ! case \"$(cat \"$b\")\" in *{bq}*) true;; *) false;; esac; then\n  \
             s=$(head -c 200 \"$b\" | tr '\\r\\n\\t' '   ' | sed 's/ *$//'); [ \"$(wc -c < \"$b\")\" -le 200 ] || s=\"$s...\"\n  \
             echo {w}\" answered $c without \"{want}\" in its body: \\\"$s\\\"\"\n",
            bq = quote(body),
            want = quote(&format!("`{body}`")),
        ));
    }
    if let Some((name, value)) = &expect.header {
        // Every value the response gives the header, its name matched case-insensitively.
        checks.push_str(&format!(
            "else\n  v=$(N={n} awk 'BEGIN {{ n = tolower(ENVIRON[\"N\"]) }} {{ sub(/\\r$/, \"\"); i = index($0, \":\"); \
             if (i > 1 && tolower(substr($0, 1, i - 1)) == n) {{ x = substr($0, i + 1); gsub(/^[ \\t]+|[ \\t]+$/, \"\", x); print x }} }}' \"$h\")\n  \
             if [ -z \"$v\" ] && ! grep -qi {nc} \"$h\"; then echo {w}\" answered $c without a \"{nq}\" header\"\n  \
             elif ! printf '%s\\n' \"$v\" | grep -qxF -e {vq}; then\n    \
             echo {w}\" answered $c with \"{nq2}\"$(printf '%s' \"$v\" | head -c 200 | tr '\\r\\n' ' ,')\"{want}\n  fi\n",
            n = quote(name),
            nc = quote(&format!("^{name}:")),
            nq = quote(&format!("`{name}`")),
            nq2 = quote(&format!("`{name}: ")),
            vq = quote(value),
            want = quote(&format!("` (want `{name}: {value}`)")),
        ));
    }
    checks.push_str("fi\n");
    format!(
        "if b=$(mktemp) && h=$(mktemp); then\n\
         c=$(curl -s -D \"$h\" -o \"$b\" -w '%{{http_code}}' --max-time 2 {u})\n\
         {checks}\
         else echo {w}\" could not be asked: mktemp failed\"; fi\nrm -f \"$b\" \"$h\""
    )
}

/// Run `probes` on the proxy until they print nothing, every `interval`, for at most `timeout`.
/// Err(Some(what the last run printed)) on timeout, Err(None) when the proxy is unreachable.
/// With `what`, a wait that lasts past the first run is shown as waiting for `what`.
async fn poll(
    ctx: &Ctx<'_>,
    probes: &str,
    timeout: Duration,
    interval: Duration,
    what: Option<&str>,
) -> Result<(), Option<String>> {
    let deadline = Instant::now() + timeout;
    let mut wait = None;
    loop {
        let out = sh(ctx, probes.to_string()).await.map_err(|_| None)?;
        let failing = out.stdout_text().trim().replace('\n', "; ");
        if failing.is_empty() {
            return Ok(());
        }
        if let Some(w) = what {
            wait.get_or_insert_with(|| ctx.wait(WaitKind::Health, w.to_string(), Some(timeout)))
                .tick();
        }
        if Instant::now() >= deadline {
            return Err(Some(failing));
        }
        tokio::time::sleep(interval).await;
    }
}

apply_by!(Apply, apply);

async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let mut state = a.state.clone();
    // A new switch counts its batches from zero; a resumed one goes on counting.
    state.batches_done = a.planned.done;
    state.batches_total = a.planned.total();
    state.plan = a.planned.plan.clone();
    state.target = Some(a.to.clone());
    if let Some(r) = &a.release {
        state.target_release = Some(r.clone());
        ctx.run.locks.note_release(&state.app, r);
    }
    if a.config.is_some() {
        state.target_config = a.config.clone();
    }
    state.status = "switching".into();
    if let Some(note) = &a.planned.note {
        (ctx.progress)(Progress::Note {
            text: format!("{}: {note}", state.app),
        });
    }
    let mut colours = state.backends.clone();
    let (in_place_validate, after_swap_validate) = match &a.validate {
        Some(v) if v.contains("%s") => (Some(v.clone()), None),
        Some(v) => (None, Some(v.clone())),
        None => (None, None),
    };
    state_dir(ctx, &a).await?;
    let mut timeline = Vec::new();
    let start = Instant::now();
    let batches = &a.planned.batches;
    if let Some(r) = &a.retire {
        // What a failed retirement left running goes first (every proxy takes this step, so
        // that their lockstep rounds stay in line even when only some recorded it).
        if let Err(why) = retire_batch(ctx, &a, r, &a.unretired).await {
            return Err(retire_failed(ctx, &a, &mut state, &[], &why).await);
        }
        if !a.unretired.is_empty() {
            state.unretired.retain(|n| !a.unretired.contains(n));
            audit(
                ctx,
                &a,
                &state,
                &format!("retired {}: {}", other(&a.to), a.unretired.join(",")),
            )
            .await;
            if batches.is_empty() {
                settle(&mut state, &a);
            }
            state.updated = now();
            record(ctx, &a, &state).await?;
        }
    }
    for (k, batch) in batches.iter().enumerate() {
        let previous = ctx
            .conn
            .read_file(&a.dest, ctx.become_user.as_deref())
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut next = colours.clone();
        for n in batch {
            next.insert(n.clone(), a.to.clone());
        }
        (ctx.progress)(Progress::BatchStart {
            app: state.app.clone(),
            batch: state.batches_done + 1,
            of: state.batches_total,
            to: a.to.clone(),
            backends: batch.clone(),
        });
        let content = render(ctx, &a.template, &state.app, &a.backends, &next)?;
        // Where the batch's time goes on the proxy, for the timeline: write (with a `%s`
        // validation), validation of the whole config, reload until the new workers serve, gate
        // (with the backends' health checks before the write).
        let mut spent = [Duration::ZERO; 4];
        let mut spent_retire = Duration::ZERO;
        state.pending = batch.clone();
        state.updated = now();
        record(ctx, &a, &state).await?;
        let step = async {
            let t = Instant::now();
            if let Some(h) = &a.healthcheck {
                healthcheck(ctx, &a, h, batch).await.map_err(BatchError::Healthcheck)?;
            }
            spent[3] = t.elapsed();
            let t = Instant::now();
            write(
                ctx,
                &a.dest,
                content.clone(),
                in_place_validate.as_deref().map(failing_on_warnings),
            )
            .await
            .map_err(|f| in_place_failure(&f, in_place_validate.as_deref()))?;
            spent[0] = t.elapsed();
            if let Some(v) = &after_swap_validate {
                let t = Instant::now();
                let out = sh(ctx, v.clone())
                    .await
                    .map_err(|f| BatchError::Write(failure_text(&f)))?;
                spent[1] = t.elapsed();
                if out.rc != 0 {
                    return Err(BatchError::Validate(out.stderr_text().trim().to_string()));
                }
                let said = format!("{}\n{}", out.stdout_text(), out.stderr_text());
                if let Some(warned) = nginx_warnings(&said) {
                    return Err(BatchError::Validate(format!("`{v}` warned: {warned}")));
                }
            }
            let t = Instant::now();
            reload(ctx, &a).await.map_err(BatchError::Reload)?;
            spent[2] = t.elapsed();
            let t = Instant::now();
            let gated = gate(ctx, &a).await.map_err(BatchError::Gate);
            spent[3] += t.elapsed();
            gated
        };
        let local = step.await;
        // Every proxy learns whether all of them made this batch; one failure undoes it on all.
        let all_ok = match ctx.lockstep {
            Some(l) => l.step(local.is_ok()).await,
            None => local.is_ok(),
        };
        let failure = match local {
            Err(e) => Some(e),
            Ok(()) if !all_ok => Some(BatchError::OtherProxy),
            Ok(()) => None,
        };
        if let Some(why) = failure {
            if a.on_failure == OnFailure::Abort {
                return Err(abort(ctx, &a, state, &why).await);
            }
            // Back to the file that served before this batch; nginx reloads it if it had
            // already loaded the new one.
            if let Some(prev) = previous {
                write(ctx, &a.dest, prev, None).await?;
                if why.reloaded() {
                    let _ = reload(ctx, &a).await;
                }
            }
            state.status = format!(
                "failed: batch {} of {}: {why}",
                state.batches_done + 1,
                state.batches_total
            );
            state.pending.clear();
            state.updated = now();
            note_stopped(&mut state, &a, super::history::Outcome::Failed);
            record(ctx, &a, &state).await?;
            audit(
                ctx,
                &a,
                &state,
                &format!("switch to {} stopped: {}", a.to, state.status),
            )
            .await;
            let mut r = ModuleResult::failed(format!(
                "switch of `{}` stopped at batch {} of {}: {why}; the previous upstream is restored",
                state.app,
                state.batches_done + 1,
                state.batches_total
            ));
            r.data.insert("state".into(), crate::values::from_serde(&state));
            return Err(Failure::Failed(Box::new(r)));
        }
        colours = next;
        state.backends = colours.clone();
        state.pending.clear();
        state.batches_done += 1;
        state.updated = now();
        let switched_at = start.elapsed();
        if a.retire.is_some() {
            // Live on every proxy, the old colour still running until it is retired.
            state.unretired.extend(batch.iter().cloned());
        } else if k + 1 == batches.len() {
            settle(&mut state, &a);
        }
        record(ctx, &a, &state).await?;
        audit(
            ctx,
            &a,
            &state,
            &format!(
                "batch {} of {} to {}: {}",
                state.batches_done,
                state.batches_total,
                a.to,
                batch.join(",")
            ),
        )
        .await;
        let mut retired = None;
        if let Some(r) = &a.retire {
            let t = Instant::now();
            match retire_batch(ctx, &a, r, batch).await {
                Ok(v) => retired = Some(v),
                Err(why) => return Err(retire_failed(ctx, &a, &mut state, batch, &why).await),
            }
            spent_retire = t.elapsed();
            state.unretired.clear();
            if k + 1 == batches.len() {
                settle(&mut state, &a);
            }
            state.updated = now();
            record(ctx, &a, &state).await?;
        }
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        let mut entry = vec![
            ("batch", Value::from(state.batches_done)),
            ("at_s", Value::from(switched_at.as_secs_f64())),
            ("write_ms", Value::from(ms(spent[0]))),
            ("validate_ms", Value::from(ms(spent[1]))),
            ("reload_ms", Value::from(ms(spent[2]))),
            ("gate_ms", Value::from(ms(spent[3]))),
        ];
        (ctx.progress)(Progress::BatchDone {
            app: state.app.clone(),
            batch: state.batches_done,
            of: state.batches_total,
            to: a.to.clone(),
            backends: batch.clone(),
            write_ms: ms(spent[0]),
            validate_ms: ms(spent[1]),
            reload_ms: ms(spent[2]),
            gate_ms: ms(spent[3]),
        });
        if let Some(v) = retired {
            entry.push(("retire_ms", Value::from(ms(spent_retire))));
            entry.push(("retire", v));
        }
        let paused = Instant::now();
        let next = format!(
            "batch {}/{} of {}",
            state.batches_done + 1,
            state.batches_total,
            state.app
        );
        let interrupted =
            k + 1 < batches.len() && interruptible_pause(ctx, a.pause, Some((WaitKind::Pause, next))).await;
        if k + 1 < batches.len() {
            entry.push(("paused_s", Value::from(paused.elapsed().as_secs_f64())));
        }
        timeline.push(Value::from_pairs(entry));
        if interrupted {
            // Interrupted: this batch is done and recorded; a re-run goes on from the next.
            state.status = format!(
                "interrupted after batch {} of {}",
                state.batches_done, state.batches_total
            );
            state.updated = now();
            note_stopped(&mut state, &a, super::history::Outcome::Interrupted);
            record(ctx, &a, &state).await?;
            audit(ctx, &a, &state, &state.status).await;
            let mut r = ModuleResult::failed(format!(
                "interrupted: `{}` stopped after batch {} of {}; re-run to go on",
                state.app, state.batches_done, state.batches_total
            ));
            r.changed = true;
            r.data.insert("state".into(), crate::values::from_serde(&state));
            return Err(Failure::Failed(Box::new(r)));
        }
    }
    // Traffic is all on the new colour; the old colour's connections drain before the run goes
    // on (to stopping it).
    let drained = match &a.drain {
        None => Value::from(()),
        Some(d) => match drain(ctx, d).await {
            Ok(v) => v,
            Err(why) => {
                let mut r = ModuleResult::failed(format!("switched `{}` to {}, but {why}", state.app, a.to));
                r.changed = true;
                r.data.insert("state".into(), crate::values::from_serde(&state));
                return Err(Failure::Failed(Box::new(r)));
            }
        },
    };
    let mut done = ModuleResult::changed();
    done.msg = a.planned.note.clone();
    Ok(done
        .with("drain", drained)
        .with("state", crate::values::from_serde(&state))
        .with("timeline", Value::from(timeline))
        .with("live", state.live.as_str()))
}

/// The switch is done: every backend serves `to`, and the history says the release went live.
fn settle(state: &mut State, a: &Apply) {
    state.live = a.to.clone();
    state.target = None;
    state.plan.clear();
    state.release = state.target_release.take().or(state.release.take());
    state.config = state.target_config.take().or(state.config.take());
    state.status = "live".into();
    if let Some(release) = state.release.clone() {
        let config = state.config.clone();
        super::history::went_live(
            &mut state.history,
            &release,
            &a.to,
            config.as_deref(),
            a.rollback,
            now(),
        );
    }
}

/// A batch whose old colour did not retire: its traffic stays on the new colour (healthy, and
/// live on every proxy), the backends still to retire stay in the state for a re-run, and the
/// task fails naming the hosts and containers.
async fn retire_failed(ctx: &Ctx<'_>, a: &Apply, state: &mut State, batch: &[String], why: &str) -> Failure {
    let at = if batch.is_empty() {
        format!("retiring what an earlier run left ({})", state.unretired.join(", "))
    } else {
        format!("batch {} of {}", state.batches_done, state.batches_total)
    };
    state.status = format!("failed: {at}: retire: {why}");
    state.updated = now();
    let recorded = record(ctx, a, state).await;
    audit(ctx, a, state, &format!("switch to {} stopped: {}", a.to, state.status)).await;
    let mut r = ModuleResult::failed(format!(
        "switch of `{}` stopped at {at}: the old colour did not retire: {why}; the batch's traffic \
         stays on {} (healthy); re-run to retire what is left and go on",
        state.app, a.to
    ));
    r.changed = !batch.is_empty();
    if let Err(e) = recorded {
        r.msg = Some(format!(
            "{}; and the state could not be recorded: {}",
            r.msg.unwrap_or_default(),
            failure_text(&e)
        ));
    }
    r.data.insert("state".into(), crate::values::from_serde(&*state));
    Failure::Failed(Box::new(r))
}

/// `on_failure: abort`: a batch failed, so every backend goes back to the live colour (the
/// batches before it too), nginx reloads that file and the history records the release as
/// aborted. The task fails either way; it says whether production is back where it was.
async fn abort(ctx: &Ctx<'_>, a: &Apply, mut state: State, why: &BatchError) -> Failure {
    let at = format!("batch {} of {}", state.batches_done + 1, state.batches_total);
    let live: BTreeMap<String, String> = a
        .backends
        .iter()
        .map(|b| (b.name.clone(), state.live.clone()))
        .collect();
    let back = async {
        let content = render(ctx, &a.template, &state.app, &a.backends, &live)?;
        let in_place = a.validate.as_deref().filter(|v| v.contains("%s"));
        write(ctx, &a.dest, content, in_place.map(failing_on_warnings)).await?;
        if let Some(v) = a.validate.as_deref().filter(|v| !v.contains("%s")) {
            let out = sh(ctx, v.to_string()).await?;
            if out.rc != 0 {
                return Err(Failure::from(format!("`{v}` failed: {}", out.stderr_text().trim())));
            }
        }
        reload(ctx, a).await.map_err(Failure::from)
    };
    let moved_back = back.await;
    state.pending.clear();
    state.updated = now();
    match &moved_back {
        Ok(()) => {
            state.status = format!("aborted: {at}: {why}");
            note_stopped(&mut state, a, super::history::Outcome::Aborted);
            state.backends = live;
            state.target = None;
            state.target_release = None;
            state.target_config = None;
            state.plan.clear();
            state.batches_done = 0;
            state.batches_total = 0;
        }
        Err(f) => {
            state.status = format!("failed: {at}: {why}; the abort did not go through: {}", failure_text(f));
            note_stopped(&mut state, a, super::history::Outcome::Failed);
        }
    }
    let recorded = record(ctx, a, &state).await;
    audit(ctx, a, &state, &format!("switch to {} {}", a.to, state.status)).await;
    let mut r = ModuleResult::failed(match &moved_back {
        Ok(()) => format!(
            "switch of `{}` aborted at {at}: {why}; every backend is back on {}",
            state.app, state.live
        ),
        Err(f) => format!(
            "switch of `{}` stopped at {at}: {why}; moving every backend back to {} failed: {}",
            state.app,
            state.live,
            failure_text(f)
        ),
    });
    r.changed = true;
    if let Err(e) = recorded {
        r.msg = Some(format!(
            "{}; and the state could not be recorded: {}",
            r.msg.unwrap_or_default(),
            failure_text(&e)
        ));
    }
    r.data.insert("state".into(), crate::values::from_serde(&state));
    Failure::Failed(Box::new(r))
}

/// The history's entry for a switch that stopped part-way (its status says why), when the
/// release it moves to is known.
fn note_stopped(state: &mut State, a: &Apply, outcome: super::history::Outcome) {
    if let Some(release) = state.target_release.clone().or(state.release.clone()) {
        let note = state.status.clone();
        super::history::stopped(&mut state.history, &release, &a.to, outcome, &note, a.rollback, now());
    }
}

/// Pause between batches; returns true if the run was interrupted meanwhile. With a wait, the
/// reports show what it waits for, counting down each second (`... next in 12s`).
async fn interruptible_pause(ctx: &Ctx<'_>, pause: Duration, what: Option<(WaitKind, String)>) -> bool {
    use std::sync::atomic::Ordering;
    let end = Instant::now() + pause;
    let mut wait = what
        .filter(|_| !pause.is_zero())
        .map(|(kind, what)| ctx.wait(kind, what, Some(pause)));
    loop {
        if ctx.cancelled.load(Ordering::SeqCst) {
            return true;
        }
        let left = end.saturating_duration_since(Instant::now());
        if let Some(w) = &mut wait {
            w.tick();
        }
        if left.is_zero() {
            return ctx.cancelled.load(Ordering::SeqCst);
        }
        tokio::time::sleep(left.min(Duration::from_millis(50))).await;
    }
}

/// Why a batch did not go live on a proxy.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    /// A backend did not answer on its new colour (before anything was written).
    #[error("{0}")]
    Healthcheck(String),
    #[error("{0}")]
    Write(String),
    #[error("validation failed: {0}")]
    Validate(String),
    #[error("{0}")]
    Reload(String),
    #[error("{0}")]
    Gate(String),
    #[error("another proxy failed this batch")]
    OtherProxy,
}

impl BatchError {
    /// Whether nginx may have loaded the batch's file, so that putting the previous one back
    /// needs a reload.
    fn reloaded(&self) -> bool {
        matches!(
            self,
            BatchError::Reload(_) | BatchError::Gate(_) | BatchError::OtherProxy
        )
    }
}

/// The warning lines (nginx's `[warn]`) in what a validate command printed, joined, each from
/// `[warn]` on without nginx's pid (`[warn] conflicting server name "" on 0.0.0.0:80, ignored`):
/// a config that nginx accepts with a warning may still be wrong, as a second site that takes
/// the same `listen` and `server_name` is ignored, so the switch takes a warning as a failure.
fn nginx_warnings(output: &str) -> Option<String> {
    let lines: Vec<String> = output
        .lines()
        .filter_map(|l| l.find("[warn]").map(|i| &l[i + "[warn]".len()..]))
        .map(|rest| {
            let rest = rest.trim_start();
            // `16388#16388: ` when nginx logs through its error log.
            let rest = match rest.split_once(": ") {
                Some((pid, tail)) if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit() || c == '#') => tail,
                _ => rest,
            };
            format!("[warn] {}", truncate(rest.trim_end(), 300))
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// A `%s` validate command that also fails when it exits 0 but warns, so that the candidate is
/// refused before it replaces the live file. What the command said goes to stderr, as before.
fn failing_on_warnings(v: &str) -> String {
    format!(
        "o=$({{ {v}\n}} 2>&1); r=$?; echo \"$o\"; [ \"$r\" = 0 ] || exit \"$r\"; case \"$o\" in *'[warn]'*) exit 1;; esac"
    )
}

/// Why writing the candidate failed: a `%s` validation that refused it (`apply_write` exits 5)
/// says what the command said, its warnings first; anything else is a failed write.
fn in_place_failure(f: &Failure, validate: Option<&str>) -> BatchError {
    let Failure::Failed(r) = f else {
        return BatchError::Write(failure_text(f));
    };
    let (Some(v), Some(5)) = (validate, r.rc) else {
        return BatchError::Write(failure_text(f));
    };
    let said = r.stderr.as_deref().unwrap_or_default();
    // What the command said, without `apply_write`'s own `validation failed: CMD` after it (which
    // quotes the `[warn]` of `failing_on_warnings`).
    let said = match said.rfind("validation failed: ") {
        Some(i) if i == 0 || said[..i].ends_with('\n') => &said[..i],
        _ => said,
    };
    if let Some(warned) = nginx_warnings(said) {
        return BatchError::Validate(format!("`{v}` warned: {warned}"));
    }
    let lines: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    BatchError::Validate(if tail.is_empty() { failure_text(f) } else { tail })
}

/// At most `max` characters of `s`, with `...` when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Unreachable(m) => m.clone(),
        Failure::Failed(r) => r.msg.clone().unwrap_or_default(),
    }
}

/// Why the run's `--limit` must not run an app's rollout: it keeps the proxies without some of
/// the app's backends (the switch would point them at containers this run did not start), or
/// leaves out proxies of the play (they would keep the colour the run retires).
pub(super) fn limit_refusal(app: &str, backends: &[Backend], ctx: &Ctx<'_>) -> Option<String> {
    let inventory: Vec<String> = ctx
        .scope
        .get_attr("groups")
        .and_then(|g| g.get_item(&Value::from("all")))
        .ok()
        .and_then(|all| all.try_iter().ok().map(|it| it.map(|h| value_to_string(&h)).collect()))
        .unwrap_or_default();
    let cut = ctx.limit.left_out(
        backends
            .iter()
            .map(|b| b.name.as_str())
            .filter(|n| inventory.iter().any(|h| h == n)),
    );
    let flag = ctx.limit.flag();
    if !cut.is_empty() {
        return Some(format!(
            "{flag} leaves {} of app `{app}`'s {} backends out of the run ({}): the switch would send \
             their traffic to containers this run does not start; limit to whole apps (the proxies \
             and all their app servers), or run without --limit",
            cut.len(),
            backends.len(),
            cut.join(", ")
        ));
    }
    if !ctx.limit.play_left_out.is_empty() {
        return Some(format!(
            "{flag} leaves app `{app}`'s proxies {} out of the run: they would keep sending traffic to \
             the colour this run retires; limit to whole apps (every proxy and app server), or run \
             without --limit",
            ctx.limit.play_left_out.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, Value)]) -> Args {
        Args {
            free: None,
            map: pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        }
    }

    #[test]
    fn a_backend_name_must_be_an_inventory_host_or_an_explicit_address() {
        let scope = crate::values::from_serde(&serde_json::json!({
            "groups": {"all": ["app1", "app2"]},
            "hostvars": {"app1": {"ansible_host": "10.0.0.1"}, "app2": {}},
        }));
        let ports = crate::values::from_serde(&serde_json::json!({"blue": 8081, "green": 8082}));
        let names =
            |list: serde_json::Value| parse_backends(Some(&crate::values::from_serde(&list)), Some(&ports), &scope);
        let ok = names(serde_json::json!(["app1", "app2"])).unwrap();
        assert_eq!((ok[0].address.as_str(), ok[1].address.as_str()), ("10.0.0.1", "app2"));
        let err = names(serde_json::json!(["app1", "ghost1"])).unwrap_err();
        assert!(err.contains("backend `ghost1` is not an inventory host"), "{err}");
        let err = names(serde_json::json!(["app01"])).unwrap_err();
        assert!(err.contains("did you mean `app1`?"), "{err}");
        let outside = names(serde_json::json!([{"name": "ext", "address": "192.0.2.7"}])).unwrap();
        assert_eq!(outside[0].address, "192.0.2.7");
    }

    #[test]
    fn on_failure_is_hold_by_default_or_abort() {
        assert_eq!(parse_on_failure(None), Ok(OnFailure::Hold));
        assert_eq!(parse_on_failure(Some("hold".into())), Ok(OnFailure::Hold));
        assert_eq!(parse_on_failure(Some(" abort ".into())), Ok(OnFailure::Abort));
        assert_eq!(
            parse_on_failure(Some("rollback".into())),
            Err("`on_failure` is `hold` or `abort`, got `rollback`".into())
        );
    }

    #[test]
    fn batches_by_count_size_and_serial() {
        let names: Vec<String> = (1..=7).map(|i| format!("a{i}")).collect();
        let sizes = |a: Args| batches_of(&names, &a).unwrap().iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(args(&[("batches", Value::from(3))])), [3, 2, 2]);
        assert_eq!(sizes(args(&[("batch_size", Value::from(3))])), [3, 3, 1]);
        assert_eq!(
            sizes(args(&[(
                "serial",
                Value::from(vec![Value::from(1), Value::from("50%")])
            )])),
            [1, 3, 3]
        );
        assert_eq!(sizes(args(&[("batch_size", Value::from("30%"))])), [2, 2, 2, 1]);
        assert_eq!(sizes(args(&[("batch_size", Value::from("1%"))])), [1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(sizes(args(&[])), [7]);
        assert_eq!(sizes(args(&[("batches", Value::from(20))])), [1, 1, 1, 1, 1, 1, 1]);
        for (k, bad) in [
            ("batches", Value::from(0)),
            ("batches", Value::from(-3)),
            ("batches", Value::from(f64::NAN)),
            ("batch_size", Value::from("-50%")),
            ("batch_size", Value::from(0)),
            ("serial", Value::from(vec![Value::from(0)])),
        ] {
            assert!(
                batches_of(&names, &args(&[(k, bad.clone())])).is_err(),
                "{k}: {bad} accepted"
            );
        }
    }

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|n| n.to_string()).collect()
    }

    fn batches(b: &[&[&str]]) -> Vec<Vec<String>> {
        b.iter().map(|b| names(b)).collect()
    }

    /// A switch of app1..app5 to green, planned [app1, app2], [app3, app4], [app5], that stopped
    /// after its first batch.
    fn stopped_after_batch_1() -> State {
        State {
            app: "web".into(),
            live: "blue".into(),
            target: Some("green".into()),
            backends: [
                ("app1", "green"),
                ("app2", "green"),
                ("app3", "blue"),
                ("app4", "blue"),
                ("app5", "blue"),
            ]
            .into_iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect(),
            batches_done: 1,
            batches_total: 3,
            status: "interrupted after batch 1 of 3".into(),
            plan: batches(&[&["app1", "app2"], &["app3", "app4"], &["app5"]]),
            ..State::default()
        }
    }

    #[test]
    fn a_switch_under_way_goes_on_with_its_stored_plan() {
        let state = stopped_after_batch_1();
        let all = names(&["app1", "app2", "app3", "app4", "app5"]);
        let left = names(&["app3", "app4", "app5"]);
        // What planning the three left again would make.
        let fresh = batches(&[&["app3"], &["app4"], &["app5"]]);
        let p = plan_switch(&state, "green", &all, &left, fresh.clone());
        assert_eq!(p.batches, batches(&[&["app3", "app4"], &["app5"]]));
        assert_eq!((p.done, p.total()), (1, 3));
        assert_eq!(
            p.plan, state.plan,
            "the recorded plan stays the one the switch started with"
        );
        assert_eq!(
            p.note.as_deref(),
            Some("the switch to `green` under way resumes with batch 2 of 3 of the plan it started with")
        );
        // A batch a dead run left pending is redone, within the plan.
        let mut dead = state.clone();
        dead.backends.insert("app3".into(), "green".into());
        dead.pending = names(&["app3", "app4"]);
        let p = plan_switch(&dead, "green", &all, &left, fresh.clone());
        assert_eq!(p.batches, batches(&[&["app3", "app4"], &["app5"]]));
        // A switch to the other colour is a new one: planned afresh, counted from 1.
        let p = plan_switch(
            &state,
            "blue",
            &all,
            &names(&["app1", "app2"]),
            batches(&[&["app1", "app2"]]),
        );
        assert_eq!((p.done, p.total(), p.note), (0, 1, None));
        assert_eq!(p.plan, batches(&[&["app1", "app2"]]));
    }

    #[test]
    fn a_stored_plan_that_no_longer_fits_the_backends_is_made_again() {
        let state = stopped_after_batch_1();
        let fresh = batches(&[&["app3"], &["app4"]]);
        let p = plan_switch(
            &state,
            "green",
            &names(&["app1", "app2", "app3", "app4"]),
            &names(&["app3", "app4"]),
            fresh.clone(),
        );
        assert_eq!(p.batches, fresh);
        assert_eq!((p.done, p.total()), (1, 3));
        assert_eq!(
            p.plan,
            batches(&[&["app1", "app2"], &["app3"], &["app4"]]),
            "the batches done, then the new ones"
        );
        assert_eq!(
            p.note.as_deref(),
            Some(
                "the backends changed since the switch started (removed `app5`): the backends still \
                 to move are planned again, from batch 2"
            )
        );
        let all = names(&["app1", "app2", "app3", "app4", "app5", "app6", "app7"]);
        let left = names(&["app3", "app4", "app5", "app6", "app7"]);
        let why = stored_batches(&state, &all, &left).unwrap_err();
        assert_eq!(
            why,
            "the backends changed since the switch started (added `app6`, `app7`)"
        );
        let all = names(&["app1", "app2", "app3", "app4", "app6"]);
        let why = stored_batches(&state, &all, &left).unwrap_err();
        assert!(why.ends_with("(added `app6`; removed `app5`)"), "{why}");
        // A state an older roll wrote has no plan.
        let old = State {
            plan: Vec::new(),
            ..state.clone()
        };
        let all = names(&["app1", "app2", "app3", "app4", "app5"]);
        let left = names(&["app3", "app4", "app5"]);
        assert!(
            stored_batches(&old, &all, &left)
                .unwrap_err()
                .contains("holds no batch plan")
        );
        // A backend still to move that the plan does not hold (it moved back by hand).
        let mut moved = state.clone();
        moved.plan = batches(&[&["app2"], &["app3", "app4"], &["app5"]]);
        let left = names(&["app1", "app3", "app4", "app5"]);
        assert_eq!(
            stored_batches(&moved, &all, &left).unwrap_err(),
            "the stored batch plan does not hold `app1`, which is still to move"
        );
    }

    #[test]
    fn the_template_gets_the_names_the_checker_knows() {
        let b = Backend {
            name: "app1".into(),
            address: "10.0.0.1".into(),
            ports: [("blue".to_string(), "8081".to_string())].into_iter().collect(),
            host: true,
        };
        let colours = [("app1".to_string(), "blue".to_string())].into_iter().collect();
        let vars = template_vars("web", &[b], &colours);
        let names: Vec<&str> = vars.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, TEMPLATE_NAMES);
        let kind = NGINX_SWITCH.kind_of("template");
        assert_eq!(kind.template_names(), Some(TEMPLATE_NAMES));
        let first = vars[0].1.get_item(&Value::from(0)).unwrap();
        assert_eq!(first.get_attr("port").unwrap().as_str(), Some("8081"));
        assert_eq!(first.get_attr("colour").unwrap().as_str(), Some("blue"));
        // On top of the host's variables: a host's `app` is hidden, the rest stays.
        let host = Value::from_pairs([("app", Value::from("host's")), ("release", Value::from("r7"))]);
        let scope = template_scope(&host, vars);
        assert_eq!(scope.get_attr("app").unwrap().as_str(), Some("web"));
        assert_eq!(scope.get_attr("release").unwrap().as_str(), Some("r7"));
    }

    #[test]
    fn states_without_a_plan_load_and_a_settled_state_writes_none() {
        let old = r#"{"app":"web","live":"blue","target":"green","backends":{"app1":"green","app2":"blue"},
            "batches_done":1,"batches_total":2,"status":"switching","updated":1}"#;
        let state: State = serde_json::from_str(old).unwrap();
        assert!(state.plan.is_empty());
        let settled = State {
            target: None,
            status: "live".into(),
            ..state
        };
        assert!(!serde_json::to_string(&settled).unwrap().contains("plan"));
        let under_way = stopped_after_batch_1();
        let json = serde_json::to_string(&under_way).unwrap();
        assert!(
            json.contains(r#""plan":[["app1","app2"],["app3","app4"],["app5"]]"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<State>(&json).unwrap(), under_way);
    }

    #[test]
    fn nginx_warnings_are_found_in_what_validation_printed() {
        let quiet = "nginx: the configuration file /x/nginx.conf syntax is ok\nnginx: configuration file /x/nginx.conf test is successful\n";
        assert_eq!(nginx_warnings(quiet), None);
        let logged =
            "2026/12/01 09:55:08 [warn] 16388#16388: conflicting server name \"\" on 127.0.0.1:8080, ignored\n";
        assert_eq!(
            nginx_warnings(&format!("{logged}{quiet}")).as_deref(),
            Some("[warn] conflicting server name \"\" on 127.0.0.1:8080, ignored")
        );
        let plain = "nginx: [warn] the \"user\" directive makes sense only if the master process runs as root\nnginx: [warn] b\n";
        assert_eq!(
            nginx_warnings(plain).as_deref(),
            Some("[warn] the \"user\" directive makes sense only if the master process runs as root; [warn] b")
        );
        let long = format!("nginx: [warn] {}\n", "x".repeat(400));
        assert!(nginx_warnings(&long).unwrap().ends_with("x..."));
    }

    #[test]
    fn an_in_place_validation_that_warns_fails_and_says_what_it_said() {
        let run = |v: &str| {
            let cmd = failing_on_warnings(v).replace("%s", "/dev/null");
            let out = std::process::Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
        };
        assert_eq!(run("test -e %s && echo fine"), (Some(0), "fine\n".into()));
        assert_eq!(run("echo 'nginx: [warn] shadowed' >&2; test -e %s").0, Some(1));
        let (rc, said) = run("echo 'nginx: [emerg] bad' >&2; exit 3");
        assert_eq!((rc, said.as_str()), (Some(3), "nginx: [emerg] bad\n"));
        let mut r = ModuleResult::failed("failed to validate `/x`");
        r.rc = Some(5);
        r.stderr = Some(format!(
            "nginx: [warn] shadowed\nvalidation failed: {}",
            failing_on_warnings("nginx -t %s")
        ));
        let why = in_place_failure(&Failure::Failed(Box::new(r)), Some("nginx -t %s"));
        assert_eq!(
            why.to_string(),
            "validation failed: `nginx -t %s` warned: [warn] shadowed"
        );
    }

    #[test]
    fn gate_and_healthcheck_expect_a_status_a_body_and_a_header() {
        let map = |pairs: &[(&str, &str)]| {
            Value::from_pairs(pairs.iter().map(|(k, v)| (*k, Value::from(*v))).collect::<Vec<_>>())
        };
        let (url, e) = parse_gate(Some(&map(&[
            ("url", "http://p/health"),
            ("body", "web"),
            ("header", "x-app:  web "),
            ("host", "web.example"),
        ])))
        .unwrap()
        .unwrap();
        assert_eq!(url, "http://p/health");
        assert_eq!(
            e,
            Expect {
                status: 200,
                body: Some("web".into()),
                header: Some(("x-app".into(), "web".into())),
                host: Some("web.example".into()),
            }
        );
        assert!(http_probe(&url, &e, "gate").contains("-H 'Host: web.example' "));
        assert_eq!(e.describe(), "200 with `web` in the body and header `x-app: web`");
        let h = parse_healthcheck(Some(&map(&[
            ("path", "/health"),
            ("status", "204"),
            ("header", "X-App: web"),
        ])))
        .unwrap()
        .unwrap();
        assert_eq!(h.expect.describe(), "204 with header `X-App: web`");
        assert_eq!(
            parse_healthcheck(Some(&Value::from("/health")))
                .unwrap()
                .unwrap()
                .expect
                .describe(),
            "200"
        );
        for bad in ["X-App", ": web", "X App: web"] {
            let err = parse_gate(Some(&map(&[("url", "u"), ("header", bad)]))).unwrap_err();
            assert!(err.starts_with("`gate.header` is `\"Name: value\"`"), "{bad}: {err}");
        }
        assert!(
            parse_gate(Some(&map(&[("status", "200")])))
                .unwrap_err()
                .contains("needs a `url`")
        );
    }

    fn db(max: u64, pool: u64, other: u64, wait: u64) -> Database {
        Database {
            max_connections: max,
            pool,
            other,
            wait_timeout: Duration::from_secs(wait),
        }
    }

    #[test]
    fn expected_peaks_count_the_pools_still_draining() {
        let pause = Duration::from_secs(10);
        // 10 backends with pools of 8: steady 80 (+5 other). Moving 2 at a time with a pause at
        // least the idle timeout, each batch adds only its own new pools.
        assert_eq!(expected_peaks(&[2; 5], 10, &db(200, 8, 5, 10), pause, false), [101; 5]);
        // All at once doubles the pools.
        assert_eq!(expected_peaks(&[10], 10, &db(200, 8, 5, 10), pause, false), [165]);
        // A pause shorter than the idle timeout: the previous batch's old pools still count.
        assert_eq!(
            expected_peaks(&[2; 5], 10, &db(200, 8, 0, 15), pause, false),
            [96, 112, 112, 112, 112]
        );
    }

    #[test]
    fn with_retirement_a_batch_counts_only_its_own_pools_whatever_the_pause() {
        // The old pools close when their containers stop, right after their batch: no pause
        // is needed, and the previous batch's pools no longer count.
        for pause in [Duration::ZERO, Duration::from_secs(3)] {
            assert_eq!(expected_peaks(&[2; 5], 10, &db(200, 8, 0, 15), pause, true), [96; 5]);
        }
        assert_eq!(
            expected_peaks(&[3, 3, 4], 10, &db(200, 8, 5, 30), Duration::ZERO, true),
            [109, 109, 117]
        );
        // Without retirement and no pause, every batch's old pools pile up.
        assert_eq!(
            expected_peaks(&[2; 5], 10, &db(200, 8, 0, 15), Duration::ZERO, false),
            [96, 112, 128, 144, 160]
        );
        // So `batches: auto` with retirement and no pause fits in few batches where sleeping
        // would need the timeout between each.
        let names: Vec<String> = (1..=10).map(|i| format!("a{i}")).collect();
        let sizes = |retire| {
            auto_batches(&names, 10, &db(100, 8, 0, 15), Duration::ZERO, retire)
                .map(|b| b.iter().map(Vec::len).collect::<Vec<_>>())
        };
        assert_eq!(sizes(true).unwrap(), [2, 2, 2, 2, 2]);
        let err = sizes(false).unwrap_err();
        assert!(
            err.contains("even one backend at a time peaks at 160, as each batch's old pool stays open"),
            "{err}"
        );
        assert!(err.ends_with("or `retire` the old colour"), "{err}");
    }

    #[test]
    fn auto_batches_are_the_fewest_that_fit_under_the_limit() {
        let names: Vec<String> = (1..=10).map(|i| format!("a{i}")).collect();
        let pause = Duration::from_secs(10);
        let sizes = |d: Database| {
            auto_batches(&names, 10, &d, pause, false).map(|b| b.iter().map(Vec::len).collect::<Vec<_>>())
        };
        assert_eq!(sizes(db(200, 8, 0, 10)).unwrap(), [10]);
        // Room for 2 new pools above the steady 80: five batches of two.
        assert_eq!(sizes(db(96, 8, 0, 10)).unwrap(), [2, 2, 2, 2, 2]);
        assert_eq!(sizes(db(100, 8, 0, 10)).unwrap(), [2, 2, 2, 2, 2]);
        assert_eq!(sizes(db(104, 8, 0, 10)).unwrap(), [3, 3, 2, 2]);
        let err = sizes(db(85, 8, 0, 10)).unwrap_err();
        assert!(err.contains("even one backend at a time peaks at 88"), "{err}");
    }
}

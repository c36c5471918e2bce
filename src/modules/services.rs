//! Services: `systemd`/`systemd_service` on hosts that run systemd (`systemctl`), deciding and
//! reporting as ansible-core 2.19's systemd module does; `service` as Ansible's service action
//! runs it (on a systemd host it is the systemd module, without the parameters systemd does not
//! use; elsewhere init scripts run by `service`, enabled with `update-rc.d`); `service_facts`
//! from the init scripts and, under systemd, its units and unit files. `systemd` fails on a host
//! without systemd as Ansible's does, naming what the host runs instead.

use super::spec::{BUILTIN, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::Value;

/// `service`: start, stop, restart, reload a service; enable it at boot.
pub struct Service;

/// The parameters of ansible-core's service module and those its action passes on to the
/// systemd module on a systemd host (`daemon_reload` ...): which apply is known only on the
/// host, so `name`, and `state` or `enabled`, are required there (sysvinit), not here.
static SERVICE: ModuleSpec = ModuleSpec {
    params: &[
        p("name"),
        p("state").choices(&["started", "stopped", "reloaded", "restarted"]),
        p("enabled"),
        p("sleep"),
        p("pattern"),
        p("runlevel"),
        p("arguments").aliases(&["args"]),
        p("use"),
        p("force"),
        p("masked"),
        p("daemon_reload").aliases(&["daemon-reload"]),
        p("daemon_reexec").aliases(&["daemon-reexec"]),
        p("scope").choices(&["system", "user", "global"]),
        p("no_block"),
    ],
    required_by: &[("state", "name"), ("enabled", "name"), ("masked", "name")],
    ..ModuleSpec::new("service", BUILTIN)
};

/// The service module's own parameters (and aliases), as its error lists them.
const SERVICE_OWN: &[&str] = &[
    "arguments",
    "enabled",
    "name",
    "pattern",
    "runlevel",
    "sleep",
    "state",
    "args",
];

/// What Ansible's service action drops before it runs the systemd module.
const UNUSED_BY_SYSTEMD: &[&str] = &["pattern", "runlevel", "sleep", "arguments"];

impl Module for Service {
    fn spec(&self) -> &'static ModuleSpec {
        &SERVICE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_service(args, ctx))
    }
}

/// `systemd` / `systemd_service`: only where systemd runs.
pub struct Systemd;
/// The same module under its newer name.
pub struct SystemdService;

const SYSTEMD_PARAMS: &[super::spec::Param] = &[
    p("name").aliases(&["service", "unit"]),
    p("state").choices(&["reloaded", "restarted", "started", "stopped"]),
    p("enabled"),
    p("force"),
    p("masked"),
    p("daemon_reload").aliases(&["daemon-reload"]),
    p("daemon_reexec").aliases(&["daemon-reexec"]),
    p("scope").choices(&["system", "user", "global"]),
    p("no_block"),
];

/// `state`, `enabled` and `masked` act on a unit: they need its `name`.
const SYSTEMD_REQUIRED_BY: &[(&str, &str)] = &[("state", "name"), ("enabled", "name"), ("masked", "name")];

static SYSTEMD: ModuleSpec = ModuleSpec {
    params: SYSTEMD_PARAMS,
    required_by: SYSTEMD_REQUIRED_BY,
    ..ModuleSpec::new("systemd", BUILTIN)
};

static SYSTEMD_SERVICE: ModuleSpec = ModuleSpec {
    params: SYSTEMD_PARAMS,
    required_by: SYSTEMD_REQUIRED_BY,
    ..ModuleSpec::new("systemd_service", BUILTIN)
};

impl Module for Systemd {
    fn spec(&self) -> &'static ModuleSpec {
        &SYSTEMD
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_systemd(args, ctx))
    }
}

impl Module for SystemdService {
    fn spec(&self) -> &'static ModuleSpec {
        &SYSTEMD_SERVICE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_systemd(args, ctx))
    }
}

/// `service_facts`: every service the host's init scripts and systemd know, as
/// `ansible_facts.services`.
pub struct ServiceFacts;

static SERVICE_FACTS: ModuleSpec = ModuleSpec::new("service_facts", BUILTIN);

impl Module for ServiceFacts {
    fn spec(&self) -> &'static ModuleSpec {
        &SERVICE_FACTS
    }

    fn check<'a>(&'a self, _args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_facts(ctx))
    }
}

async fn exec(ctx: &Ctx<'_>, script: String) -> Result<crate::connection::Output, Failure> {
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    Ok(ctx.conn.exec(&cmd).await?)
}

/// What the host has for a service: its init script, the tools, its boot links.
#[derive(Debug, Default)]
struct Tools {
    systemd: bool,
    initscript: bool,
    service: bool,
    update_rc_d: bool,
    start_links: bool,
    kill_links: bool,
}

async fn tools(ctx: &Ctx<'_>, name: &str) -> Result<Tools, Failure> {
    let n = quote(name);
    // systemd runs the host when its runtime directory is there (sd_booted), as Ansible asks.
    let script = format!(
        "PATH=/sbin:/usr/sbin:/bin:/usr/bin:$PATH\n\
         command -v systemctl >/dev/null && [ -d /run/systemd/system ] && echo systemd\n\
         [ -f /etc/init.d/{n} ] && echo initscript\n\
         command -v service >/dev/null && echo service\n\
         command -v update-rc.d >/dev/null && echo update-rc.d\n\
         for l in /etc/rc?.d/S??{n}; do [ -e \"$l\" ] && echo start-links && break; done\n\
         for l in /etc/rc?.d/K??{n}; do [ -e \"$l\" ] && echo kill-links && break; done\n\
         true\n"
    );
    let out = exec(ctx, script).await?;
    let mut t = Tools::default();
    for l in out.stdout_text().lines() {
        match l {
            "systemd" => t.systemd = true,
            "initscript" => t.initscript = true,
            "service" => t.service = true,
            "update-rc.d" => t.update_rc_d = true,
            "start-links" => t.start_links = true,
            "kill-links" => t.kill_links = true,
            _ => {}
        }
    }
    Ok(t)
}

/// The command that controls the service: `service NAME`, else its init script.
fn control(t: &Tools, name: &str) -> String {
    if t.service {
        format!("service {}", quote(name))
    } else {
        format!("/etc/init.d/{}", quote(name))
    }
}

/// Run a control action detached from our output: the daemon it starts may keep its
/// descriptors, so its output goes through files (Ansible's `daemonize`).
fn detached(cmd: &str) -> String {
    format!(
        "PATH=/sbin:/usr/sbin:/bin:/usr/bin:$PATH\n\
         o=$(mktemp) e=$(mktemp)\n{cmd} >\"$o\" 2>\"$e\" </dev/null\nrc=$?\ncat \"$o\"; cat \"$e\" >&2; rm -f \"$o\" \"$e\"; exit $rc\n"
    )
}

/// Whether the service runs, from `service NAME status` as Ansible's LinuxService reads it;
/// `None` when it cannot tell.
fn running(name: &str, rc: i32, stdout: &str) -> Option<bool> {
    if [1, 2, 3, 4, 69].contains(&rc) {
        return Some(false);
    }
    if stdout.matches('\n').count() <= 1 {
        let clean = stdout.to_lowercase().replace(&name.to_lowercase(), "");
        if clean.contains("stop") {
            return Some(false);
        } else if clean.contains("run") {
            return Some(!clean.contains("not "));
        } else if clean.contains("start") && !clean.contains("not ") {
            return Some(true);
        } else if [
            "could not access pid file",
            "is dead and pid file exists",
            "dead but subsys locked",
            "dead but pid file exists",
        ]
        .iter()
        .any(|s| clean.contains(s))
        {
            return Some(false);
        }
    }
    (rc == 0).then_some(true)
}

struct Run {
    /// Commands to run in order; each fails the task with its stderr (or stdout).
    enable: Vec<String>,
    /// `start`, `stop`, `reload`, `restart` (as stop then start).
    action: Option<&'static str>,
    control: String,
    sleep: Option<u64>,
    preview: ModuleResult,
}

apply_by!(Run, apply);

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    for cmd in &run.enable {
        let out = exec(ctx, format!("PATH=/sbin:/usr/sbin:/bin:/usr/bin:$PATH\n{cmd}")).await?;
        if out.rc != 0 {
            let err = out.stderr_text();
            return Err(if err.is_empty() { out.stdout_text() } else { err }.into());
        }
    }
    if let Some(action) = run.action {
        let (rc, out, err) = if action == "restart" {
            let a = exec(ctx, detached(&format!("{} stop", run.control))).await?;
            if let Some(s) = run.sleep {
                tokio::time::sleep(std::time::Duration::from_secs(s)).await;
            }
            let b = exec(ctx, detached(&format!("{} start", run.control))).await?;
            if a.rc != 0 && b.rc == 0 {
                (b.rc, b.stdout_text(), b.stderr_text())
            } else {
                (
                    a.rc + b.rc,
                    a.stdout_text() + &b.stdout_text(),
                    a.stderr_text() + &b.stderr_text(),
                )
            }
        } else {
            let o = exec(ctx, detached(&format!("{} {action}", run.control))).await?;
            (o.rc, o.stdout_text(), o.stderr_text())
        };
        if rc != 0 && !err.contains("Job is already running") {
            return Err(if err.is_empty() { out } else { err }.into());
        }
    }
    Ok(run.preview)
}

/// Which module Ansible's service action runs: `use`, else the host's `service_mgr` fact, else
/// what its collector would say (PID 1's name; systemd's canary directories when PID 1 is
/// `init` or a shell).
async fn service_manager(args: &Args, ctx: &Ctx<'_>) -> Result<String, Failure> {
    let using = args.str("use")?.unwrap_or_else(|| "auto".into()).to_lowercase();
    if using != "auto" {
        return Ok(using);
    }
    let fact = ctx
        .scope
        .get_attr("ansible_facts")
        .ok()
        .and_then(|f| f.get_attr("service_mgr").ok())
        .and_then(|m| m.as_str().map(str::to_string));
    if let Some(m) = fact.filter(|m| !m.is_empty() && m != "auto") {
        return Ok(m);
    }
    let out = exec(
        ctx,
        "PATH=/sbin:/usr/sbin:/bin:/usr/bin:$PATH
         cat /proc/1/comm 2>/dev/null || echo
         command -v systemctl >/dev/null && for d in /run/systemd/system/ /dev/.run/systemd/ /dev/.systemd/; do
           [ -e \"$d\" ] && echo canary && break; done
         true
"
        .to_string(),
    )
    .await?;
    let text = out.stdout_text();
    let mut lines = text.lines();
    let pid1 = lines.next().unwrap_or("").trim().to_string();
    let canary = lines.any(|l| l == "canary");
    Ok(if pid1.is_empty() || pid1 == "init" || pid1.ends_with("sh") {
        if canary { "systemd" } else { "service" }.to_string()
    } else {
        pid1
    })
}

async fn check_service(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    if service_manager(args, ctx).await? == "systemd" {
        // The action runs the systemd module without `use` and what systemd does not use.
        let mut sd = args.clone();
        sd.map.shift_remove("use");
        let mut warnings = Vec::new();
        for k in UNUSED_BY_SYSTEMD {
            if sd.map.shift_remove(*k).is_some() {
                warnings.push(format!("Ignoring \"{k}\" as it is not used in \"systemd\""));
            }
        }
        return check_systemd_with(&sd, warnings, ctx).await;
    }
    // The service module's own argument checks, in ansible-core's order.
    if args.get("name").is_none() {
        return Err("missing required arguments: name".into());
    }
    if args.get("state").is_none() && args.get("enabled").is_none() {
        return Err("one of the following is required: state, enabled".into());
    }
    let unsupported: Vec<&str> = args
        .map
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "use" && !SERVICE_OWN.contains(k))
        .collect();
    if !unsupported.is_empty() {
        let mut unsupported = unsupported;
        unsupported.sort_unstable();
        return Err(format!(
            "Unsupported parameters for (ansible.legacy.service) module: {}. Supported parameters include: arguments, enabled, name, pattern, runlevel, sleep, state (args).",
            unsupported.join(", ")
        )
        .into());
    }
    let name = args.req_str("name")?;
    let state = args.str("state")?;
    let enabled = match args.get("enabled") {
        None => None,
        Some(_) => Some(args.bool("enabled", false)?),
    };
    let sleep = args.f64("sleep")?.map(|s| s.max(0.0) as u64);
    let arguments = args.str("arguments")?.unwrap_or_default();
    if args.str("pattern")?.is_some() {
        return Err("`pattern` is not supported by roll's service module yet".into());
    }
    let t = tools(ctx, &name).await?;
    if t.systemd {
        return Err(format!(
            "this host runs systemd; roll's `service` drives init scripts (sysvinit) only so far: use `systemd` for `{name}`"
        )
        .into());
    }
    if !t.initscript || !t.update_rc_d {
        // Ansible's fail_if_missing: no way to enable it, so no such service on this host.
        return Err(format!("Could not find the requested service {name}: host").into());
    }
    let control = {
        let c = control(&t, &name);
        if arguments.is_empty() {
            c
        } else {
            format!("{c} {arguments}")
        }
    };
    let mut r = ModuleResult::ok().with("name", name.as_str());
    let mut enable = Vec::new();
    let mut enable_changed = false;
    if let Some(want) = enabled {
        if want != t.start_links {
            enable_changed = true;
            let n = quote(&name);
            if want {
                if !t.kill_links {
                    enable.push(format!("update-rc.d {n} defaults"));
                }
                enable.push(format!("update-rc.d {n} enable"));
            } else {
                enable.push(format!("update-rc.d {n} disable"));
            }
        }
        r.data.insert("enabled".into(), Value::from(want));
    }
    let Some(state) = state else {
        r.changed = enable_changed;
        return Ok(plan(r, enable, None, control, sleep));
    };
    r.data.insert("state".into(), Value::from(state.as_str()));
    let st = exec(ctx, detached(&format!("{control} status"))).await?;
    let Some(is_running) = running(&name, st.rc, &st.stdout_text()) else {
        return Err("failed determining service state, possible typo of service name?".into());
    };
    let svc_change = match state.as_str() {
        "reloaded" | "started" => !is_running,
        "stopped" => is_running,
        _ => true,
    } || (is_running && state == "reloaded");
    let action = svc_change.then_some(match state.as_str() {
        "started" => "start",
        "reloaded" if !is_running => "start",
        "stopped" => "stop",
        "reloaded" => "reload",
        _ => "restart",
    });
    r.changed = enable_changed || svc_change;
    let shown = if state == "stopped" { "stopped" } else { "started" };
    r.data.insert("state".into(), Value::from(shown));
    // Check mode: Ansible stops at the state change and reports only that.
    if svc_change {
        let preview = ModuleResult::changed().with_msg("service state changed");
        return Ok(Plan::Change {
            preview,
            action: Box::new(Run {
                enable,
                action,
                control,
                sleep,
                preview: r,
            }),
        });
    }
    Ok(plan(r, enable, None, control, sleep))
}

fn plan(
    r: ModuleResult,
    enable: Vec<String>,
    action: Option<&'static str>,
    control: String,
    sleep: Option<u64>,
) -> Plan {
    if !r.changed {
        return Plan::Unchanged(r);
    }
    Plan::Change {
        preview: r.clone(),
        action: Box::new(Run {
            enable,
            action,
            control,
            sleep,
            preview: r,
        }),
    }
}

async fn check_systemd(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    check_systemd_with(args, Vec::new(), ctx).await
}

/// The systemd module, with the warnings of the service action that runs it (registered as
/// ansible-core registers them, in `warnings`).
async fn check_systemd_with(args: &Args, warnings: Vec<String>, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let mut sd = SystemdArgs::read(args)?;
    sd.warnings = warnings;
    let out = exec(
        ctx,
        "p=$PATH; PATH=/sbin:/usr/sbin:/bin:/usr/bin:$PATH\n\
         if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then echo systemd; exit 0; fi\n\
         c=$(cat /proc/1/comm 2>/dev/null); echo \"${c:-unknown}\"\n\
         command -v systemctl >/dev/null || echo \"$p\"\n"
            .to_string(),
    )
    .await?;
    let text = out.stdout_text();
    let mut lines = text.lines();
    let pid1 = lines.next().unwrap_or("unknown").trim().to_string();
    // The PATH the module's search saw, with the sbin directories Ansible adds.
    let path = lines.next().map(|p| {
        let mut dirs: Vec<&str> = p.split(':').filter(|d| !d.is_empty()).collect();
        for d in ["/sbin", "/usr/sbin", "/usr/local/sbin"] {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        dirs.join(":")
    });
    let path = path.unwrap_or_default();
    if pid1 == "systemd" {
        return check_unit(sd, ctx).await;
    }
    let manager = if pid1 == "init" || pid1.ends_with("sh") {
        "sysvinit (init scripts under /etc/init.d)".to_string()
    } else {
        format!("init scripts under /etc/init.d (PID 1 is `{pid1}`)")
    };
    if path.is_empty() {
        // systemctl is there, systemd is not running.
        return Err(format!(
            "System has not been booted with systemd as init system (PID 1); this host's service manager is {manager}: use `service`"
        )
        .into());
    }
    // Ansible's get_bin_path message, then what the host runs instead.
    Err(format!(
        "Failed to find required executable \"systemctl\" in paths: {path}; this host's service manager is {manager}: use `service`"
    )
    .into())
}

/// `state`: what the unit should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitState {
    Started,
    Stopped,
    Reloaded,
    Restarted,
}

impl UnitState {
    fn parse(s: &str) -> Option<UnitState> {
        Some(match s {
            "started" => UnitState::Started,
            "stopped" => UnitState::Stopped,
            "reloaded" => UnitState::Reloaded,
            "restarted" => UnitState::Restarted,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            UnitState::Started => "started",
            UnitState::Stopped => "stopped",
            UnitState::Reloaded => "reloaded",
            UnitState::Restarted => "restarted",
        }
    }
}

/// `scope`: which systemd instance `systemctl` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    System,
    User,
    Global,
}

/// The systemd module's parameters, read and checked as ansible-core checks them.
#[derive(Debug, Clone)]
struct SystemdArgs {
    name: Option<String>,
    state: Option<UnitState>,
    enabled: Option<bool>,
    masked: Option<bool>,
    force: bool,
    daemon_reload: bool,
    daemon_reexec: bool,
    scope: Scope,
    no_block: bool,
    /// What the service action said it left out.
    warnings: Vec<String>,
}

impl SystemdArgs {
    fn read(args: &Args) -> Result<SystemdArgs, Failure> {
        let opt_bool = |k: &str| -> Result<Option<bool>, Failure> {
            Ok(match args.get(k) {
                None => None,
                Some(_) => Some(args.bool(k, false)?),
            })
        };
        let name = args.str("name")?;
        // A templated value can only be checked here (the checker sees literal ones).
        for k in ["state", "enabled", "masked"] {
            if args.get(k).is_some() && name.is_none() {
                return Err(format!("missing parameter(s) required by '{k}': name").into());
            }
        }
        let state = match args.str("state")? {
            None => None,
            Some(s) => Some(UnitState::parse(&s).ok_or_else(|| {
                format!("value of state must be one of: reloaded, restarted, started, stopped, got: {s}")
            })?),
        };
        let scope = match args.str("scope")?.as_deref() {
            None | Some("system") => Scope::System,
            Some("user") => Scope::User,
            Some("global") => Scope::Global,
            Some(s) => return Err(format!("value of scope must be one of: system, user, global, got: {s}").into()),
        };
        if let Some(unit) = &name
            && let Some(g) = ["*", "?", "["].into_iter().find(|g| unit.contains(g))
        {
            return Err(format!(
                "This module does not currently support using glob patterns, found '{g}' in service name: {unit}"
            )
            .into());
        }
        Ok(SystemdArgs {
            name,
            state,
            enabled: opt_bool("enabled")?,
            masked: opt_bool("masked")?,
            force: args.bool("force", false)?,
            daemon_reload: args.bool("daemon_reload", false)?,
            daemon_reexec: args.bool("daemon_reexec", false)?,
            scope,
            no_block: args.bool("no_block", false)?,
            warnings: Vec::new(),
        })
    }

    /// `systemctl` with the switches the parameters ask for, as the module builds it.
    fn systemctl(&self) -> String {
        let mut c = String::from("systemctl");
        match self.scope {
            Scope::System => {}
            Scope::User => c.push_str(" --user"),
            Scope::Global => c.push_str(" --global"),
        }
        if self.no_block {
            c.push_str(" --no-block");
        }
        if self.force {
            c.push_str(" --force");
        }
        c
    }
}

/// One `systemctl` call as the module's `run_command` makes it: rc, stdout, stderr.
async fn systemctl(ctx: &Ctx<'_>, cmd: String) -> Result<(i32, String, String), Failure> {
    // `--user` needs the user's manager: the module sets XDG_RUNTIME_DIR when it is unset.
    let out = exec(
        ctx,
        format!(
            "PATH=/sbin:/usr/sbin:/bin:/usr/bin:$PATH\n\
             [ -n \"${{XDG_RUNTIME_DIR+x}}\" ] || export XDG_RUNTIME_DIR=/run/user/$(id -u)\n{cmd}\n"
        ),
    )
    .await?;
    Ok((out.rc, out.stdout_text(), out.stderr_text()))
}

/// `systemctl show` output as the module parses it: `KEY=VALUE` lines, values of `Exec*` keys
/// in braces may span lines.
fn parse_show(text: &str) -> crate::values::VarMap {
    let mut parsed = crate::values::VarMap::new();
    let mut multival: Vec<&str> = Vec::new();
    let mut key: Option<&str> = None;
    for line in text.split('\n') {
        match key {
            None => {
                if let Some((k, v)) = line.split_once('=') {
                    if k.starts_with("Exec") && v.trim_start().starts_with('{') && !v.trim_end().ends_with('}') {
                        multival.push(v);
                        key = Some(k);
                        continue;
                    }
                    parsed.insert(k.to_string(), Value::from(v.trim()));
                }
            }
            Some(k) => {
                multival.push(line);
                if line.trim_end().ends_with('}') {
                    parsed.insert(k.to_string(), Value::from(multival.join("\n").trim()));
                    multival.clear();
                    key = None;
                }
            }
        }
    }
    parsed
}

/// The module's `request_was_ignored`: systemctl said it ignored the request.
fn request_was_ignored(out: &str) -> bool {
    !out.contains('=') && (out.contains("ignoring request") || out.contains("ignoring command"))
}

/// `systemctl is-enabled` answers that mean systemd knows the unit (systemctl(1), systemd 244).
const ENABLED_STATES: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "linked",
    "linked-runtime",
    "masked",
    "masked-runtime",
    "static",
    "indirect",
    "disabled",
    "generated",
    "transient",
];

/// A planned `systemd` task: done again by `apply`, where each step acts (as the module runs
/// once, reading the unit after a daemon-reload or an unmask it did itself).
struct Unit {
    args: SystemdArgs,
}

apply_by!(Unit, apply_unit);

async fn apply_unit(u: Unit, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    drive(&u.args, ctx, true).await
}

async fn check_unit(args: SystemdArgs, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let r = drive(&args, ctx, false).await?;
    let reload = args.daemon_reload || args.daemon_reexec;
    if r.changed {
        let preview = r;
        return Ok(Plan::Change {
            preview,
            action: Box::new(Unit { args }),
        });
    }
    if reload {
        // A daemon-reload changes nothing Ansible reports, but it must run (not in check mode).
        return Ok(Plan::Probe {
            preview: r,
            action: Box::new(Unit { args }),
            in_check: false,
        });
    }
    Ok(Plan::Unchanged(r))
}

/// The systemd module's decisions, in its order; `act` runs the changes (`apply`), without it
/// only the reading commands run (check).
async fn drive(a: &SystemdArgs, ctx: &Ctx<'_>, act: bool) -> Result<ModuleResult, Failure> {
    let sc = a.systemctl();
    let mut r = ModuleResult::ok();
    r.data
        .insert("name".into(), a.name.as_deref().map_or(Value::from(()), Value::from));
    r.data
        .insert("status".into(), Value::from_pairs(Vec::<(String, Value)>::new()));
    if !a.warnings.is_empty() {
        r.data.insert("warnings".into(), Value::from(a.warnings.clone()));
    }
    for (wanted, what) in [(a.daemon_reload, "daemon-reload"), (a.daemon_reexec, "daemon-reexec")] {
        if wanted && act {
            let (rc, _, err) = systemctl(ctx, format!("{sc} {what}")).await?;
            if rc != 0 {
                return Err(format!("failure {rc} during {what}: {err}").into());
            }
        }
    }
    let Some(unit) = a.name.as_deref() else {
        return Ok(r);
    };
    let q = quote(unit);
    let sysv = exec(
        ctx,
        format!(
            "[ -e /etc/init.d/{q} ] && echo initd\n\
             for l in /etc/rc?.d/S??{q}; do [ -e \"$l\" ] && echo sysv-enabled && break; done\ntrue\n"
        ),
    )
    .await?
    .stdout_text();
    let is_initd = sysv.lines().any(|l| l == "initd");
    let sysv_enabled = sysv.lines().any(|l| l == "sysv-enabled");
    let mut status = crate::values::VarMap::new();
    let mut is_systemd = false;
    let (rc, out, err) = systemctl(ctx, format!("{sc} show {q}")).await?;
    if rc == 0 && !(request_was_ignored(&out) || request_was_ignored(&err)) {
        if !out.is_empty() {
            status = parse_show(&out);
            let load = status.get("LoadState").and_then(|v| v.as_str().map(str::to_string));
            is_systemd = load.as_deref().is_some_and(|l| l != "not-found");
            let is_masked = load.as_deref() == Some("masked");
            if is_systemd
                && !is_masked
                && let Some(e) = status.get("LoadError")
            {
                return Err(format!("Error loading unit file '{unit}': {e}").into());
            }
        }
    } else if !err.is_empty() && rc == 1 && err.contains("Failed to parse bus message") {
        // ansible/ansible#71528: old systemd; the unit files and is-active instead.
        status = parse_show(&out);
        let (base, sep, _) = match unit.split_once('@') {
            Some((b, s)) => (b, "@", s),
            None => (unit, "", ""),
        };
        let search = format!("{base}{sep}");
        let (_, files, _) = systemctl(ctx, format!("{sc} list-unit-files {}", quote(&format!("{search}*")))).await?;
        is_systemd = files.contains(&search);
        let (_, active, _) = systemctl(ctx, format!("{sc} is-active {q}")).await?;
        status.insert("ActiveState".into(), Value::from(active.trim_end_matches('\n')));
    } else {
        let (_, out, _) = systemctl(ctx, format!("{sc} is-enabled {q}")).await?;
        if ENABLED_STATES.contains(&out.trim()) {
            is_systemd = true;
        } else {
            let (rc, _, _) = systemctl(ctx, format!("{sc} list-unit-files {q}")).await?;
            if rc == 0 {
                is_systemd = true;
            } else {
                let (rc, out, err) = systemctl(ctx, sc.clone()).await?;
                if rc != 0 {
                    return Err(if err.is_empty() { out } else { err }.trim().to_string().into());
                }
            }
        }
    }
    r.data.insert(
        "status".into(),
        Value::from_pairs(status.clone().into_iter().collect::<Vec<_>>()),
    );
    let found = is_systemd || is_initd;
    let missing = || Failure::from(format!("Could not find the requested service {unit}: host"));

    if let Some(want) = a.masked {
        let (_, out, _) = systemctl(ctx, format!("{sc} is-enabled {q}")).await?;
        let masked = out.trim() == "masked";
        if masked != want {
            r.changed = true;
            let action = if want { "mask" } else { "unmask" };
            if act {
                let (rc, _, err) = systemctl(ctx, format!("{sc} {action} {q}")).await?;
                if rc != 0 {
                    // Some systemd versions (un)mask units that are not there: missing only then.
                    if !found {
                        return Err(missing());
                    }
                    return Err(format!("Failed to {action} the service ({unit}): {}", err.trim()).into());
                }
            }
        }
    }

    if let Some(want) = a.enabled {
        if !found {
            return Err(missing());
        }
        let (rc, out, _) = systemctl(ctx, format!("{sc} is-enabled {q} -l")).await?;
        let enabled = match rc {
            // Enabled at runtime only, through another unit, or an alias: enabling is asked
            // for and systemd decides.
            0 => !matches!(out.trim_end(), "enabled-runtime" | "indirect" | "alias"),
            1 => a.scope == Scope::System && is_initd && !out.trim().ends_with("disabled") && sysv_enabled,
            _ => false,
        };
        r.data.insert("enabled".into(), Value::from(enabled));
        if enabled != want {
            r.changed = true;
            let action = if want { "enable" } else { "disable" };
            if act {
                let (rc, out, err) = systemctl(ctx, format!("{sc} {action} {q}")).await?;
                if rc != 0 {
                    return Err(format!("Unable to {action} service {unit}: {out}{err}").into());
                }
            }
            r.data.insert("enabled".into(), Value::from(!enabled));
        }
    }

    if let Some(want) = a.state {
        if !found {
            return Err(missing());
        }
        r.data.insert("state".into(), Value::from(want.as_str()));
        let Some(active) = status.get("ActiveState").and_then(|v| v.as_str().map(str::to_string)) else {
            let mut f = ModuleResult::failed("Service is in unknown state");
            f.data.insert(
                "status".into(),
                Value::from_pairs(status.into_iter().collect::<Vec<_>>()),
            );
            return Err(Failure::Failed(Box::new(f)));
        };
        let running = matches!(active.as_str(), "active" | "activating");
        let action = match want {
            UnitState::Started => (!running).then_some("start"),
            UnitState::Stopped => (running || active == "deactivating").then_some("stop"),
            UnitState::Reloaded | UnitState::Restarted => {
                r.data.insert("state".into(), Value::from("started"));
                Some(match (running, want) {
                    (false, _) => "start",
                    (true, UnitState::Reloaded) => "reload",
                    _ => "restart",
                })
            }
        };
        if let Some(action) = action {
            r.changed = true;
            if act {
                let (rc, _, err) = systemctl(ctx, format!("{sc} {action} {q}")).await?;
                if rc != 0 {
                    return Err(format!("Unable to {action} service {unit}: {err}").into());
                }
            }
        }
    }
    Ok(r)
}

/// Where the systemd part of `service_facts`'s output starts, and its unit files'.
const UNITS: &str = "@@roll-units";
const UNIT_FILES: &str = "@@roll-unit-files";

async fn check_facts(ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    // Ansible's sysv path: `service --status-all` says running (+), stopped (-) or unknown (?).
    // Then, where systemd runs (is_systemd_managed), its units and unit files; a listing that
    // fails is left out, as the module only warns then.
    let out = exec(
        ctx,
        format!(
            "PATH=/sbin:/usr/sbin:/bin:/usr/bin:$PATH\nexport LC_ALL=C\n\
             service --status-all 2>/dev/null </dev/null; true\n\
             command -v systemctl >/dev/null || exit 0\n\
             sd=; for d in /run/systemd/system/ /dev/.run/systemd/ /dev/.systemd/; do [ -e \"$d\" ] && sd=1; done\n\
             [ -n \"$sd\" ] || [ \"$(cat /proc/1/comm 2>/dev/null)\" = systemd ] || exit 0\n\
             s=$(PATH=/usr/bin:/usr/local/bin:$PATH command -v systemctl)\n\
             o=$(\"$s\" list-units --no-pager --type service --all --plain) && printf '%s\\n%s\\n' {UNITS} \"$o\"\n\
             o=$(\"$s\" list-unit-files --no-pager --type service --all) && printf '%s\\n%s\\n' {UNIT_FILES} \"$o\"\n\
             true\n"
        ),
    )
    .await?;
    let text = out.stdout_text();
    let (sysv, rest) = text.split_once(&format!("{UNITS}\n")).map_or_else(
        || match text.split_once(&format!("{UNIT_FILES}\n")) {
            Some((a, b)) => (a.to_string(), format!("{UNIT_FILES}\n{b}")),
            None => (text.clone(), String::new()),
        },
        |(a, b)| (a.to_string(), b.to_string()),
    );
    let (units, files) = match rest.split_once(&format!("{UNIT_FILES}\n")) {
        Some((u, f)) => (u.to_string(), Some(f.to_string())),
        None => (rest, None),
    };
    let mut services = indexmap::IndexMap::new();
    sysv_services(&sysv, &mut services);
    systemd_units(&units, &mut services);
    if let Some(files) = files {
        let unknown = systemd_unit_files(&files, &mut services)?;
        if !unknown.is_empty() {
            // The module asks each unit file's unit for its ActiveState, one by one.
            let names: Vec<String> = unknown.iter().map(|u| quote(u)).collect();
            let out = exec(
                ctx,
                format!(
                    "PATH=/usr/bin:/usr/local/bin:/sbin:/usr/sbin:/bin:$PATH\nexport LC_ALL=C\n\
                     for u in {}; do o=$(systemctl show \"$u\" --property=ActiveState) && [ -n \"$o\" ] \
                     && printf '%s\\n' \"$o\" | tr -d '\\n' | sed 's/^ActiveState=//' || printf unknown; echo; done\n",
                    names.join(" ")
                ),
            )
            .await?;
            let text = out.stdout_text();
            let mut states = text.lines();
            for u in unknown {
                let state = states.next().filter(|s| !s.is_empty()).unwrap_or("unknown");
                if let Some(v) = services.get_mut(&u) {
                    v["state"] = serde_json::Value::from(state);
                }
            }
        }
    }
    let mut r = ModuleResult::ok();
    if services.is_empty() {
        r.skipped = true;
        r.msg = Some(
            "Failed to find any services. This can be due to privileges or some other configuration issue.".into(),
        );
        return Ok(Plan::Unchanged(r));
    }
    let pairs: Vec<(String, Value)> = services
        .into_iter()
        .map(|(k, v)| (k, crate::values::from_serde(&v)))
        .collect();
    r.facts.insert("services".into(), Value::from_pairs(pairs));
    Ok(Plan::Unchanged(r))
}

type Services = indexmap::IndexMap<String, serde_json::Value>;

/// `service --status-all` lines as `^\s*\[ (?P<state>\+|\-) \]\s+(?P<name>.+)$` reads them:
/// unknown ones (`[ ? ]`) are left out.
fn sysv_services(text: &str, services: &mut Services) {
    for line in text.lines() {
        let l = line.trim_start();
        let state = if l.starts_with("[ + ]") {
            "running"
        } else if l.starts_with("[ - ]") {
            "stopped"
        } else {
            continue;
        };
        let rest = &l[5..];
        if !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let name = rest.trim_start();
        if name.is_empty() {
            continue;
        }
        services.insert(
            name.to_string(),
            serde_json::json!({ "name": name, "state": state, "source": "sysv" }),
        );
    }
}

/// States that say more than ACTIVE does: any of them outside the description is the status.
const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

/// `systemctl list-units --type service --all --plain`, line by line as the module splits it.
fn systemd_units(text: &str, services: &mut Services) {
    for line in text.split('\n').filter(|l| l.contains(".service")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        let head = &fields[..fields.len() - 1];
        let status = BAD_STATES
            .iter()
            .find(|b| head.contains(b))
            .copied()
            .unwrap_or(fields[2]);
        let state = if fields[3] == "running" { "running" } else { "stopped" };
        services.insert(
            fields[0].to_string(),
            serde_json::json!({ "name": fields[0], "state": state, "status": status, "source": "systemd" }),
        );
    }
}

/// `systemctl list-unit-files --type service --all`: the status of units already listed (unless
/// a bad state), new entries for the others, whose names are returned to ask their state.
fn systemd_unit_files(text: &str, services: &mut Services) -> Result<Vec<String>, Failure> {
    let mut unknown = Vec::new();
    for line in text.split('\n').filter(|l| l.contains(".service")) {
        let mut f = line.split_whitespace();
        let (Some(name), Some(status)) = (f.next(), f.next()) else {
            return Err(format!("Malformed output discovered from systemd list-unit-files: {line}").into());
        };
        match services.get_mut(name) {
            None => {
                services.insert(
                    name.to_string(),
                    serde_json::json!({ "name": name, "state": "unknown", "status": status, "source": "systemd" }),
                );
                unknown.push(name.to_string());
            }
            Some(v) => {
                if !v["status"].as_str().is_some_and(|s| BAD_STATES.contains(&s)) {
                    v["status"] = serde_json::Value::from(status);
                }
            }
        }
    }
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::{Services, parse_show, running, systemd_unit_files, systemd_units};

    #[test]
    fn status_output_reads_as_ansible_reads_it() {
        assert_eq!(running("cron", 3, "cron is not running ... failed!\n"), Some(false));
        assert_eq!(running("cron", 0, "cron is running.\n"), Some(true));
        assert_eq!(running("x", 0, "x: not running\n"), Some(false));
        assert_eq!(running("x", 0, "a\nb\nc\n"), Some(true));
        assert_eq!(running("x", 5, "a\nb\nc\n"), None);
    }

    #[test]
    fn systemctl_show_reads_as_the_module_reads_it() {
        let text = "Type=simple\nDescription={ not multi-line\nExecStart={ path=/bin/sleep ; argv[]=/bin/sleep\n  infinity }\nActiveState=active \nNoValue\n";
        let m = parse_show(text);
        assert_eq!(m["Description"].as_str(), Some("{ not multi-line"));
        assert_eq!(
            m["ExecStart"].as_str(),
            Some("{ path=/bin/sleep ; argv[]=/bin/sleep\n  infinity }")
        );
        assert_eq!(m["ActiveState"].as_str(), Some("active"));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn units_and_unit_files_merge_as_service_facts_merges_them() {
        let mut s = Services::new();
        systemd_units(
            "UNIT LOAD ACTIVE SUB DESCRIPTION\n\
             dbus.service loaded active running D-Bus\n\
             x.service loaded failed failed X\n\
             y.service masked inactive dead y.service\n\
             3 loaded units listed.\n",
            &mut s,
        );
        assert_eq!(s["dbus.service"]["state"], "running");
        assert_eq!(s["dbus.service"]["status"], "active");
        assert_eq!(s["x.service"]["status"], "failed");
        let unknown = systemd_unit_files(
            "UNIT FILE STATE PRESET\ndbus.service static -\ny.service masked enabled\nz.service disabled enabled\n",
            &mut s,
        )
        .unwrap();
        assert_eq!(s["dbus.service"]["status"], "static");
        assert_eq!(s["y.service"]["status"], "masked");
        assert_eq!(unknown, vec!["z.service".to_string()]);
    }
}

//! `service` on hosts without systemd (init scripts run by `service`, enabled with
//! `update-rc.d`), deciding and reporting as ansible-core 2.19's service module does on that
//! path; `service_facts` from the init scripts there; and `systemd`/`systemd_service`, which
//! fail on such a host as Ansible's do, naming what the host runs instead.

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::Value;

/// `service`: start, stop, restart, reload a service; enable it at boot.
pub struct Service;

static SERVICE: ModuleSpec = ModuleSpec {
    params: &[
        req("name"),
        p("state").choices(&["started", "stopped", "reloaded", "restarted"]),
        p("enabled"),
        p("sleep"),
        p("pattern"),
        p("runlevel"),
        p("arguments").aliases(&["args"]),
        p("use"),
    ],
    one_of: &["state", "enabled"],
    ..ModuleSpec::new("service", BUILTIN)
};

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

static SYSTEMD: ModuleSpec = ModuleSpec {
    params: SYSTEMD_PARAMS,
    ..ModuleSpec::new("systemd", BUILTIN)
};

static SYSTEMD_SERVICE: ModuleSpec = ModuleSpec {
    params: SYSTEMD_PARAMS,
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

/// `service_facts`: every service the host's init scripts know, as `ansible_facts.services`.
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

async fn check_service(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
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

async fn check_systemd(_args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
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
        return Err("roll's `systemd` module is not built yet for hosts that run systemd".into());
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

async fn check_facts(ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    // Ansible's sysv path: `service --status-all` says running (+), stopped (-) or unknown (?).
    let out = exec(
        ctx,
        "PATH=/sbin:/usr/sbin:/bin:/usr/bin:$PATH\nservice --status-all 2>/dev/null </dev/null; true\n".to_string(),
    )
    .await?;
    let mut services = Vec::new();
    for line in out.stdout_text().lines() {
        // `^\s*\[ (?P<state>\+|\-) \]\s+(?P<name>.+)$`: unknown ones (`[ ? ]`) are left out.
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
        services.push((
            name.to_string(),
            crate::values::from_serde(&serde_json::json!({ "name": name, "state": state, "source": "sysv" })),
        ));
    }
    let mut r = ModuleResult::ok();
    r.facts.insert("services".into(), Value::from_pairs(services));
    Ok(Plan::Unchanged(r))
}

#[cfg(test)]
mod tests {
    use super::running;

    #[test]
    fn status_output_reads_as_ansible_reads_it() {
        assert_eq!(running("cron", 3, "cron is not running ... failed!\n"), Some(false));
        assert_eq!(running("cron", 0, "cron is running.\n"), Some(true));
        assert_eq!(running("x", 0, "x: not running\n"), Some(false));
        assert_eq!(running("x", 0, "a\nb\nc\n"), Some(true));
        assert_eq!(running("x", 5, "a\nb\nc\n"), None);
    }
}

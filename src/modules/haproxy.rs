//! `haproxy` (`community.general.haproxy`): a server of haproxy's backends enabled, disabled or
//! drained through haproxy's runtime API. As the Ansible module does, it talks to the unix
//! socket on the managed host (with `socat` there), sends the same commands and reports the
//! same `state_before`/`state_after`, `command` and `output`.

use super::spec::{GENERAL, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::Value;
use std::time::Duration;

/// `haproxy`: one server (`host`) of one backend, or of every backend that has it.
pub struct Haproxy;

static HAPROXY: ModuleSpec = ModuleSpec {
    params: &[
        req("state").choices(&["enabled", "disabled", "drain"]),
        req("host"),
        p("backend"),
        p("weight"),
        p("socket"),
        p("shutdown_sessions"),
        p("fail_on_not_found"),
        p("health"),
        p("agent"),
        p("wait"),
        p("wait_retries"),
        p("wait_interval"),
        p("drain"),
    ],
    ..ModuleSpec::new("haproxy", GENERAL)
};

impl Module for Haproxy {
    fn spec(&self) -> &'static ModuleSpec {
        &HAPROXY
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

const DEFAULT_SOCKET: &str = "/var/run/haproxy.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Enabled,
    Disabled,
    Drain,
}

/// What the task asks, read once.
#[derive(Debug, Clone)]
pub struct Settings {
    want: Want,
    host: String,
    backend: Option<String>,
    weight: Option<String>,
    socket: String,
    shutdown_sessions: bool,
    fail_on_not_found: bool,
    health: bool,
    agent: bool,
    wait: bool,
    retries: u64,
    interval: Duration,
    drain: bool,
}

fn settings(args: &Args) -> Result<Settings, Failure> {
    let want = match args.req_str("state")?.as_str() {
        "enabled" => Want::Enabled,
        "disabled" => Want::Disabled,
        "drain" => Want::Drain,
        other => return Err(format!("unknown state specified: '{other}'").into()),
    };
    let int = |k: &str, d: u64| -> Result<u64, Failure> {
        match args.f64(k)? {
            None => Ok(d),
            Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(n as u64),
            Some(n) => Err(format!("`{k}` must be a whole number of at least 0, got {n}").into()),
        }
    };
    let weight = args.str("weight")?.filter(|w| !w.is_empty());
    if let Some(w) = &weight {
        // haproxy's own bounds, said before anything is sent.
        let (num, relative) = match w.strip_suffix('%') {
            Some(n) => (n, true),
            None => (w.as_str(), false),
        };
        let max = if relative { 100 } else { 256 };
        if !num.trim().parse::<u32>().is_ok_and(|n| n <= max) {
            return Err(format!("`weight` must be 0 to 256, or 0% to 100% of the configured weight, got `{w}`").into());
        }
    }
    Ok(Settings {
        want,
        host: args.req_str("host")?,
        backend: args.str("backend")?.filter(|b| !b.is_empty()),
        weight,
        socket: args.str("socket")?.unwrap_or_else(|| DEFAULT_SOCKET.into()),
        shutdown_sessions: args.bool("shutdown_sessions", false)?,
        fail_on_not_found: args.bool("fail_on_not_found", false)?,
        health: args.bool("health", false)?,
        agent: args.bool("agent", false)?,
        wait: args.bool("wait", false)?,
        retries: int("wait_retries", 25)?,
        interval: Duration::from_secs(int("wait_interval", 5)?),
        drain: args.bool("drain", false)?,
    })
}

/// One server line of `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    pxname: String,
    svname: String,
    status: String,
    weight: String,
    scur: String,
}

/// The rows of `show stat` (CSV whose header line starts with `# `).
fn parse_stat(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.trim_start_matches("# ").lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("haproxy's `show stat` has no `{name}` column: {}", text.trim()))
    };
    let (px, sv, st, w, sc) = (
        col("pxname")?,
        col("svname")?,
        col("status")?,
        col("weight")?,
        col("scur")?,
    );
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let at = |i: usize| f.get(i).copied().unwrap_or("").to_string();
            Row {
                pxname: at(px),
                svname: at(sv),
                status: at(st),
                weight: at(w),
                scur: at(sc),
            }
        })
        .collect())
}

/// The state Ansible reports: the server's rows (of `backend`, or of every proxy), as
/// `{status, weight, scur}`, or none.
fn state_of(rows: &[Row], backend: Option<&str>, host: &str) -> Vec<Row> {
    rows.iter()
        .filter(|r| backend.is_none_or(|b| r.pxname == b) && r.svname == host)
        .cloned()
        .collect()
}

fn state_value(state: &[Row]) -> Value {
    if state.is_empty() {
        return Value::from(());
    }
    Value::from(
        state
            .iter()
            .map(|r| {
                Value::from_pairs(vec![
                    ("status".to_string(), Value::from(r.status.as_str())),
                    ("weight".to_string(), Value::from(r.weight.as_str())),
                    ("scur".to_string(), Value::from(r.scur.as_str())),
                ])
            })
            .collect::<Vec<_>>(),
    )
}

/// What decides "changed": the status and weight, not the session count, which traffic moves
/// between two looks (Ansible compares it too, and so reports a change under load where none
/// was made).
fn settled(state: &[Row]) -> Vec<(String, String)> {
    state.iter().map(|r| (r.status.clone(), r.weight.clone())).collect()
}

/// Send one line of commands to the runtime socket on the host and return haproxy's answer.
async fn send(ctx: &Ctx<'_>, socket: &str, line: &str) -> Result<String, Failure> {
    let mut cmd = Command::new(format!(
        "command -v socat >/dev/null || exit 127; exec socat -t 5 - {}",
        quote(&format!(
            "UNIX-CONNECT:{}",
            socket.replace(',', "\\,").replace(':', "\\:")
        ))
    ));
    cmd.stdin = Some(format!("{line}\n").into_bytes());
    cmd.env = ctx.env.clone();
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    match out.rc {
        0 => Ok(out.stdout_text()),
        127 => Err(
            "`socat` is not installed on the target host: the haproxy module talks to haproxy's runtime \
                    socket with it (install the package `socat`)"
                .to_string()
                .into(),
        ),
        rc => Err(format!(
            "cannot talk to haproxy's runtime socket `{socket}` (socat exited with {rc}): {}",
            out.stderr_text().trim()
        )
        .into()),
    }
}

async fn show_stat(ctx: &Ctx<'_>, socket: &str) -> Result<Vec<Row>, Failure> {
    let text = send(ctx, socket, "show stat").await?;
    Ok(parse_stat(&text)?)
}

/// The commands for one server, in the order the Ansible module sends them, `$px/$sv` filled in.
fn commands(s: &Settings, px: &str) -> Vec<(String, &'static str)> {
    let id = format!("{px}/{}", s.host);
    let disable = |out: &mut Vec<(String, &'static str)>| {
        let mut c = format!("get weight {id}");
        if s.agent {
            c.push_str(&format!("; disable agent {id}"));
        }
        if s.health {
            c.push_str(&format!("; disable health {id}"));
        }
        c.push_str(&format!("; disable server {id}"));
        if s.shutdown_sessions {
            c.push_str(&format!("; shutdown sessions server {id}"));
        }
        out.push((c, "MAINT"));
    };
    let mut out = Vec::new();
    match (s.want, s.drain) {
        (Want::Enabled, _) => {
            let mut c = format!("get weight {id}; enable server {id}");
            if s.agent {
                c.push_str(&format!("; enable agent {id}"));
            }
            if s.health {
                c.push_str(&format!("; enable health {id}"));
            }
            if let Some(w) = &s.weight {
                c.push_str(&format!("; set weight {id} {w}"));
            }
            out.push((c, "UP"));
        }
        (Want::Disabled, true) => {
            out.push((format!("set server {id} state drain"), "DRAIN"));
            disable(&mut out);
        }
        (Want::Disabled, false) => disable(&mut out),
        (Want::Drain, _) => out.push((format!("set server {id} state drain"), "DRAIN")),
    }
    out
}

/// Whether the server's row already is what the task asks (then the commands change nothing).
fn satisfied(s: &Settings, row: &Row, initial_weight: Option<u32>) -> bool {
    let admin = |st: &str| row.status.starts_with(st);
    match s.want {
        Want::Enabled => {
            let weight_ok = match &s.weight {
                None => true,
                Some(w) => match (w.strip_suffix('%'), initial_weight) {
                    (Some(pct), Some(iw)) => pct
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|p| row.weight == (iw * p / 100).to_string()),
                    (Some(_), None) => false,
                    (None, _) => row.weight == w.trim(),
                },
            };
            !admin("MAINT") && !admin("DRAIN") && weight_ok
        }
        Want::Disabled => admin("MAINT"),
        Want::Drain => admin("DRAIN"),
    }
}

/// The configured weight of a server, from `get weight`'s `N (initial M)`.
async fn initial_weight(ctx: &Ctx<'_>, socket: &str, id: &str) -> Result<Option<u32>, Failure> {
    let text = send(ctx, socket, &format!("get weight {id}")).await?;
    Ok(text
        .split("initial")
        .nth(1)
        .and_then(|r| r.trim().trim_end_matches(')').trim().parse().ok()))
}

/// The work `apply` does: for each backend that has the server, its commands and waits.
pub struct Act {
    s: Settings,
    backends: Vec<String>,
    before: Vec<Row>,
    changes: bool,
}

apply_by!(Act, apply);

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let s = settings(args)?;
    let rows = show_stat(ctx, &s.socket).await?;
    let candidates: Vec<String> = match &s.backend {
        Some(b) => vec![b.clone()],
        None => rows
            .iter()
            .filter(|r| r.svname == "BACKEND")
            .map(|r| r.pxname.clone())
            .collect(),
    };
    let mut backends = Vec::new();
    let mut changes = false;
    for b in candidates {
        let Some(row) = rows.iter().find(|r| r.pxname == b && r.svname == s.host) else {
            if s.fail_on_not_found {
                return Err(format!("The specified backend '{b}/{}' was not found!", s.host).into());
            }
            continue;
        };
        let iw = match &s.weight {
            Some(w) if w.ends_with('%') && s.want == Want::Enabled => {
                initial_weight(ctx, &s.socket, &format!("{b}/{}", s.host)).await?
            }
            _ => None,
        };
        changes |= !satisfied(&s, row, iw);
        backends.push(b);
    }
    let before = state_of(&rows, s.backend.as_deref(), &s.host);
    let mut preview = ModuleResult::ok().with("state_before", state_value(&before));
    let act = Box::new(Act {
        s,
        backends,
        before,
        changes,
    });
    if changes {
        preview.changed = true;
        return Ok(Plan::Change { preview, action: act });
    }
    // Nothing to change: the commands are still sent, as Ansible sends them (they answer
    // `get weight`, and re-enable checks with `health`/`agent`), but not in check mode.
    Ok(Plan::Probe {
        preview,
        action: act,
        in_check: false,
    })
}

async fn apply(a: Act, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let s = &a.s;
    let mut sent: Vec<Value> = Vec::new();
    let mut output: Vec<Value> = Vec::new();
    for b in &a.backends {
        for (cmd, status) in commands(s, b) {
            let answer = send(ctx, &s.socket, &cmd).await?;
            sent.push(Value::from(cmd.as_str()));
            output.push(Value::from(answer.trim()));
            if s.wait {
                wait_until(ctx, s, b, status).await?;
            }
        }
    }
    let after = state_of(&show_stat(ctx, &s.socket).await?, s.backend.as_deref(), &s.host);
    let mut r = ModuleResult {
        changed: a.changes && settled(&a.before) != settled(&after),
        ..ModuleResult::default()
    }
    .with("state_before", state_value(&a.before))
    .with("state_after", state_value(&after));
    if !sent.is_empty() {
        r = r.with("command", Value::from(sent)).with("output", Value::from(output));
    }
    Ok(r)
}

/// Wait for the server's status to contain `status` (and, with `drain`, no session left):
/// `wait_retries - 1` looks, `wait_interval` apart, as the Ansible module counts them.
async fn wait_until(ctx: &Ctx<'_>, s: &Settings, px: &str, status: &str) -> Result<(), Failure> {
    let what = format!("server {px}/{} to be {status}", s.host);
    let _w = ctx.wait(
        super::progress::WaitKind::Health,
        what,
        Some(s.interval * s.retries.saturating_sub(1) as u32),
    );
    for _ in 1..s.retries {
        let rows = show_stat(ctx, &s.socket).await?;
        if let Some(r) = rows.iter().find(|r| r.pxname == px && r.svname == s.host)
            && r.status.contains(status)
            && (!s.drain || r.scur == "0")
        {
            return Ok(());
        }
        if ctx.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(s.interval).await;
    }
    Err(format!(
        "server {px}/{} not status '{status}' after {} retries. Aborting.",
        s.host, s.retries
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act\n\
        self,FRONTEND,,,0,1,,,,,,,,,,,,OPEN,,\n\
        www,app1,0,0,2,3,,,,,,,,,,0,0,UP,10,1\n\
        www,app2,0,0,0,0,,,,,,,,,,0,0,MAINT,1,1\n\
        www,BACKEND,0,0,2,3,,,,,,,,,,0,0,UP,10,1\n\
        api,app1,0,0,0,0,,,,,,,,,,0,0,DRAIN,1,1\n";

    fn s(want: Want, weight: Option<&str>) -> Settings {
        Settings {
            want,
            host: "app1".into(),
            backend: None,
            weight: weight.map(str::to_string),
            socket: DEFAULT_SOCKET.into(),
            shutdown_sessions: false,
            fail_on_not_found: false,
            health: false,
            agent: false,
            wait: false,
            retries: 25,
            interval: Duration::from_secs(5),
            drain: false,
        }
    }

    #[test]
    fn show_stat_rows_and_a_servers_state_in_every_backend() {
        let rows = parse_stat(STAT).unwrap();
        let st = state_of(&rows, None, "app1");
        assert_eq!(
            st.iter()
                .map(|r| (r.pxname.as_str(), r.status.as_str(), r.scur.as_str()))
                .collect::<Vec<_>>(),
            [("www", "UP", "2"), ("api", "DRAIN", "0")]
        );
        assert!(state_of(&rows, Some("www"), "nope").is_empty());
        assert!(parse_stat("nonsense\n").is_err());
    }

    #[test]
    fn what_is_already_so_and_what_is_sent() {
        let rows = parse_stat(STAT).unwrap();
        let app1 = &rows[1];
        assert!(satisfied(&s(Want::Enabled, None), app1, None));
        assert!(satisfied(&s(Want::Enabled, Some("10")), app1, None));
        assert!(!satisfied(&s(Want::Enabled, Some("5")), app1, None));
        assert!(satisfied(&s(Want::Enabled, Some("50%")), app1, Some(20)));
        assert!(!satisfied(&s(Want::Disabled, None), app1, None));
        assert!(satisfied(&s(Want::Drain, None), &rows[4], None));
        let mut d = s(Want::Disabled, None);
        d.drain = true;
        d.shutdown_sessions = true;
        assert_eq!(
            commands(&d, "www"),
            [
                ("set server www/app1 state drain".to_string(), "DRAIN"),
                (
                    "get weight www/app1; disable server www/app1; shutdown sessions server www/app1".to_string(),
                    "MAINT"
                )
            ]
        );
        let mut e = s(Want::Enabled, Some("7"));
        e.health = true;
        assert_eq!(
            commands(&e, "www")[0].0,
            "get weight www/app1; enable server www/app1; enable health www/app1; set weight www/app1 7"
        );
    }
}

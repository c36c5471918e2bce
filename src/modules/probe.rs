//! `wait_for` and `uri`: work done from the target host that changes nothing on it. Like
//! Ansible, `uri` makes its request from the target, with `curl`, which must be installed there.

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::value::ValueKind;
use std::future::ready;
use std::time::{Duration, Instant};

/// `wait_for`: wait, from the host, for a port or a path (or until they go away).
pub struct WaitFor;

static WAIT_FOR: ModuleSpec = ModuleSpec {
    params: &[
        p("host"),
        p("port"),
        p("path"),
        p("state").choices(&["started", "stopped", "present", "absent", "drained"]),
        p("timeout"),
        p("delay"),
        p("sleep"),
        p("connect_timeout"),
        p("search_regex"),
        p("msg"),
    ],
    exclusive: &[("port", "path")],
    ..ModuleSpec::new("wait_for", BUILTIN)
};

impl Module for WaitFor {
    fn spec(&self) -> &'static ModuleSpec {
        &WAIT_FOR
    }

    fn check<'a>(&'a self, args: &'a Args, _ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(ready(check_wait_for(args)))
    }
}

/// `uri`: an HTTP request made from the host, with `curl`.
pub struct Uri;

static URI: ModuleSpec = ModuleSpec {
    params: &[
        req("url"),
        p("method").choices(&["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        p("status_code"),
        p("return_content"),
        p("timeout"),
        p("body"),
        p("body_format").choices(&["raw", "json"]),
        p("headers"),
        p("validate_certs"),
        p("follow_redirects"),
    ],
    ..ModuleSpec::new("uri", BUILTIN)
};

impl Module for Uri {
    fn spec(&self) -> &'static ModuleSpec {
        &URI
    }

    fn check<'a>(&'a self, args: &'a Args, _ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(ready(check_uri(args)))
    }
}

apply_by!(Wait, apply_wait_for);
apply_by!(Request, apply_uri);

pub struct Wait {
    probe: Option<String>,
    /// Whether the probe succeeding is what is waited for (`started`, `present`) or its failing.
    want_success: bool,
    what: String,
    timeout: Duration,
    delay: Duration,
    sleep: Duration,
    msg: Option<String>,
}

fn check_wait_for(args: &Args) -> Result<Plan, Failure> {
    let host = args.str("host")?.unwrap_or_else(|| "127.0.0.1".into());
    let state = args.str("state")?.unwrap_or_else(|| "started".into());
    let secs = |k: &str, d: f64| -> Result<Duration, String> {
        crate::clock::seconds(args.f64(k)?.unwrap_or(d)).map_err(|e| format!("`{k}`: {e}"))
    };
    let connect = args.f64("connect_timeout")?.unwrap_or(5.0).max(1.0) as u64;
    let (probe, what) = match (args.str("port")?, args.str("path")?) {
        (Some(port), _) => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("`port` must be a port number, got `{port}`"))?;
            let (h, p) = (quote(&host), port);
            // bash's /dev/tcp where bash exists, else nc; one of them is on every app server.
            let probe = format!(
                "if command -v bash >/dev/null 2>&1; then timeout {connect} bash -c 'exec 3<>/dev/tcp/$0/$1' {h} {p}; \
                 else nc -z -w {connect} {h} {p}; fi"
            );
            (Some(probe), format!("{host}:{port}"))
        }
        (None, Some(path)) => {
            let probe = match args.str("search_regex")? {
                Some(re) => format!("grep -E -q -- {} {}", quote(&re), quote(&path)),
                None => format!("test -e {}", quote(&path)),
            };
            (Some(probe), path)
        }
        (None, None) => (None, String::new()),
    };
    let want_success = matches!(state.as_str(), "started" | "present");
    let w = Wait {
        probe,
        want_success,
        what: what.clone(),
        timeout: secs("timeout", 300.0)?,
        delay: secs("delay", 0.0)?,
        sleep: secs("sleep", 1.0)?,
        msg: args.str("msg")?,
    };
    let mut preview = ModuleResult::ok().with_msg(format!(
        "would wait for {}",
        if what.is_empty() { "the timeout" } else { &what }
    ));
    preview.skipped = true;
    Ok(Plan::Probe {
        preview,
        action: Box::new(w),
        in_check: false,
    })
}

async fn apply_wait_for(w: Wait, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let start = Instant::now();
    tokio::time::sleep(w.delay).await;
    let Some(probe) = &w.probe else {
        tokio::time::sleep(w.timeout).await;
        return Ok(ModuleResult::ok().with("elapsed", start.elapsed().as_secs() as i64));
    };
    let deadline = start + w.delay + w.timeout;
    loop {
        let mut cmd = Command::new(probe.clone());
        cmd.timeout = Some(Duration::from_secs(30));
        cmd.become_user = ctx.become_user.clone();
        let ok = ctx.conn.exec(&cmd).await?.rc == 0;
        if ok == w.want_success {
            return Ok(ModuleResult::ok().with("elapsed", start.elapsed().as_secs() as i64));
        }
        if Instant::now() + w.sleep > deadline {
            let msg = w
                .msg
                .clone()
                .unwrap_or_else(|| format!("Timeout when waiting for {}", w.what));
            return Err(Failure::Failed(Box::new(
                ModuleResult::failed(msg).with("elapsed", start.elapsed().as_secs() as i64),
            )));
        }
        tokio::time::sleep(w.sleep).await;
    }
}

pub struct Request {
    url: String,
    script: String,
    body: Option<Vec<u8>>,
    expect: Vec<i64>,
    return_content: bool,
}

fn check_uri(args: &Args) -> Result<Plan, Failure> {
    let url = args.req_str("url")?;
    let method = args.str("method")?.unwrap_or_else(|| "GET".into()).to_uppercase();
    let timeout = args.f64("timeout")?.unwrap_or(30.0);
    let mut words: Vec<String> = vec![
        "curl".into(),
        "-sS".into(),
        "-X".into(),
        method.clone(),
        "--max-time".into(),
        format!("{timeout}"),
    ];
    if args.bool("follow_redirects", true)? {
        words.push("-L".into());
    }
    if !args.bool("validate_certs", true)? {
        words.push("-k".into());
    }
    if method == "HEAD" {
        words.push("-I".into());
    }
    if let Some(h) = args.get("headers") {
        if h.kind() != ValueKind::Map {
            return Err("`headers` must be a mapping".to_string().into());
        }
        for k in h.try_iter().map_err(|e| e.to_string())? {
            let v = h.get_item(&k).map_err(|e| e.to_string())?;
            words.push("-H".into());
            words.push(format!("{k}: {}", crate::values::value_to_string(&v)));
        }
    }
    let json = args.str("body_format")?.as_deref() == Some("json");
    let body = match args.get("body") {
        None => None,
        Some(b) if json || matches!(b.kind(), ValueKind::Map | ValueKind::Seq) => {
            words.push("-H".into());
            words.push("Content-Type: application/json".into());
            Some(serde_json::to_vec(b).map_err(|e| e.to_string())?)
        }
        Some(b) => Some(crate::values::value_to_string(b).into_bytes()),
    };
    if body.is_some() {
        words.push("--data-binary".into());
        words.push("@-".into());
    }
    words.push("-w".into());
    words.push("\n%{http_code}".into());
    words.push("--".into());
    words.push(url.clone());
    let script = format!(
        "command -v curl >/dev/null 2>&1 || {{ echo 'the uri module needs curl on the target host' >&2; exit 127; }}\n{}",
        crate::shell::join(&words)
    );
    let expect: Vec<i64> = match args.get("status_code") {
        None => vec![200],
        Some(v) if v.kind() == ValueKind::Seq => v
            .try_iter()
            .map_err(|e| e.to_string())?
            .map(|x| {
                crate::values::value_to_string(&x)
                    .parse::<i64>()
                    .map_err(|_| format!("`status_code` must hold numbers, got `{x}`"))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => vec![
            crate::values::value_to_string(v)
                .parse::<i64>()
                .map_err(|_| format!("`status_code` must be a number, got `{v}`"))?,
        ],
    };
    let mut preview = ModuleResult::ok().with_msg(format!("would request {method} {url}"));
    preview.skipped = true;
    let uri = Request {
        url,
        script,
        body,
        expect,
        return_content: args.bool("return_content", false)?,
    };
    Ok(Plan::Probe {
        preview,
        action: Box::new(uri),
        in_check: false,
    })
}

async fn apply_uri(u: Request, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let mut cmd = Command::new(u.script);
    cmd.stdin = u.body;
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    cmd.env = ctx.env.clone();
    let out = ctx.conn.exec(&cmd).await?;
    let text = out.stdout_text();
    let (content, code) = match text.rsplit_once('\n') {
        Some((c, code)) => (c.to_string(), code.trim().parse::<i64>().unwrap_or(-1)),
        None => (String::new(), text.trim().parse::<i64>().unwrap_or(-1)),
    };
    let mut r = ModuleResult::ok().with("url", u.url.as_str()).with("status", code);
    if u.return_content {
        if let Ok(j) = serde_json::from_str::<serde_json::Value>(&content) {
            r = r.with("json", crate::values::from_serde(&j));
        }
        r = r.with("content", content.clone());
    }
    if out.rc != 0 && code <= 0 {
        let mut f = ModuleResult::failed(format!(
            "Status code was -1 and not {:?}: Request failed: {}",
            u.expect,
            out.stderr_text().trim()
        ));
        f.data = r.data;
        f = f.with("status", -1);
        return Err(Failure::Failed(Box::new(f)));
    }
    if !u.expect.contains(&code) {
        let mut f = ModuleResult::failed(format!("Status code was {code} and not {:?}", u.expect));
        f.data = r.data;
        return Err(Failure::Failed(Box::new(f)));
    }
    r.msg = Some(format!("OK ({} bytes)", content.len()));
    Ok(r)
}

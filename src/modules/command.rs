//! `command` (no shell: words are quoted one by one) and `shell` (a script), with `chdir`,
//! `creates`, `removes` and `stdin`.

use super::spec::{BUILTIN, Capability, FreeForm, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command as RemoteCommand;
use crate::shell::quote;
use minijinja::Value;
use minijinja::value::ValueKind;

const COMMON: &[Capability] = &[Capability::WouldRunInCheck];

/// `command`: the words run without a shell.
pub struct Command;

static COMMAND: ModuleSpec = ModuleSpec {
    free_form: FreeForm::Yes,
    params: &[
        p("cmd"),
        p("argv"),
        p("chdir"),
        p("creates"),
        p("removes"),
        p("stdin"),
        p("stdin_add_newline"),
        p("strip_empty_ends"),
    ],
    one_of: &["cmd", "argv"],
    exclusive: &[("cmd", "argv")],
    capabilities: COMMON,
    ..ModuleSpec::new("command", BUILTIN)
};

impl Module for Command {
    fn spec(&self) -> &'static ModuleSpec {
        &COMMAND
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(false, args, ctx))
    }
}

/// `shell`: a script run by the shell.
pub struct Shell;

static SHELL: ModuleSpec = ModuleSpec {
    free_form: FreeForm::Yes,
    params: &[
        p("cmd"),
        p("chdir"),
        p("creates"),
        p("removes"),
        p("executable"),
        p("stdin"),
        p("stdin_add_newline"),
        p("strip_empty_ends"),
    ],
    one_of: &["cmd"],
    capabilities: COMMON,
    ..ModuleSpec::new("shell", BUILTIN)
};

impl Module for Shell {
    fn spec(&self) -> &'static ModuleSpec {
        &SHELL
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(true, args, ctx))
    }
}

/// A command ready to run.
pub struct Run {
    /// The shell script that runs it.
    script: String,
    /// What `cmd` shows in the result: the words for `command`, the script for `shell`.
    shown: Value,
    chdir: Option<String>,
    stdin: Option<Vec<u8>>,
    strip: bool,
}

async fn check(shell: bool, args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let chdir = args.str("chdir")?;
    let (script, shown) = if shell {
        let body = match (&args.free, args.str("cmd")?) {
            (Some(f), _) => f.clone(),
            (None, Some(c)) => c,
            (None, None) => return Err("no command given".to_string().into()),
        };
        let script = match args.str("executable")? {
            Some(exe) => format!("{} -c {}", quote(&exe), quote(&body)),
            None => body.clone(),
        };
        (script, Value::from(body))
    } else {
        let words: Vec<String> = if let Some(argv) = args.get("argv") {
            if argv.kind() != ValueKind::Seq {
                return Err("`argv` must be a list of words".to_string().into());
            }
            argv.try_iter()
                .map_err(|e| e.to_string())?
                .map(|w| crate::values::value_to_string(&w))
                .collect()
        } else {
            let line = match (&args.free, args.str("cmd")?) {
                (Some(f), _) => f.clone(),
                (None, Some(c)) => c,
                (None, None) => return Err("no command given".to_string().into()),
            };
            crate::shell::split(&line).ok_or_else(|| format!("unterminated quote in command `{line}`"))?
        };
        if words.is_empty() {
            return Err("no command given".to_string().into());
        }
        let script = format!("exec {}", crate::shell::join(&words));
        (script, Value::from(words))
    };

    for (key, want_exists) in [("creates", true), ("removes", false)] {
        let Some(path) = args.str(key)? else { continue };
        let full = match (&chdir, path.starts_with('/')) {
            (Some(d), false) => format!("{d}/{path}"),
            _ => path.clone(),
        };
        let mut probe = RemoteCommand::new(format!("test -e {}", quote(&full)));
        probe.become_user = ctx.become_user.clone();
        let exists = ctx.conn.exec(&probe).await?.rc == 0;
        if exists == want_exists {
            let why = if want_exists {
                format!("{path} exists")
            } else {
                format!("{path} does not exist")
            };
            let mut r = ModuleResult::ok().with_msg(format!(
                "Did not run command since '{path}' {}",
                if want_exists { "exists" } else { "does not exist" }
            ));
            r.rc = Some(0);
            r.stdout = Some(format!("skipped, since {why}"));
            r.stderr = Some(String::new());
            // ansible-core registers the times of a command it did not run as null.
            let r = r
                .with("cmd", shown)
                .with("start", Value::from(()))
                .with("end", Value::from(()))
                .with("delta", Value::from(()));
            return Ok(Plan::Unchanged(r));
        }
    }

    let stdin = args.str("stdin")?.map(|s| {
        let mut b = s.into_bytes();
        if args.bool("stdin_add_newline", true).unwrap_or(true) {
            b.push(b'\n');
        }
        b
    });
    let preview = ModuleResult::changed()
        .with_msg("command would run (check mode)")
        .with("cmd", shown.clone());
    let strip = args.bool("strip_empty_ends", true)?;
    Ok(Plan::Change {
        preview,
        action: Box::new(Run {
            script,
            shown,
            chdir,
            stdin,
            strip,
        }),
    })
}

apply_by!(Run, apply);

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let cmd = RemoteCommand {
        script: run.script,
        stdin: run.stdin,
        env: ctx.env.clone(),
        chdir: run.chdir,
        timeout: ctx.timeout,
        become_user: ctx.become_user.clone(),
        lines: ctx.lines.clone(),
    };
    let started = chrono::Local::now();
    let out = ctx.conn.exec(&cmd).await?;
    let ended = chrono::Local::now();
    let text = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).into_owned();
        if run.strip {
            s.trim_end_matches(['\n', '\r']).to_string()
        } else {
            s
        }
    };
    // `start` and `end` as Python's `str(datetime)`, `delta` as its `str(timedelta)`, as
    // ansible-core's command module registers them (measured here on the controller).
    let stamp = |t: &chrono::DateTime<chrono::Local>| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let micros = (ended - started).num_microseconds().unwrap_or(0).max(0);
    let delta = format!(
        "{}:{:02}:{:02}.{:06}",
        micros / 3_600_000_000,
        micros / 60_000_000 % 60,
        micros / 1_000_000 % 60,
        micros % 1_000_000
    );
    let mut r = ModuleResult::changed()
        .with("cmd", run.shown)
        .with("start", stamp(&started))
        .with("end", stamp(&ended))
        .with("delta", delta);
    r.rc = Some(out.rc as i64);
    r.stdout = Some(text(&out.stdout));
    r.stderr = Some(text(&out.stderr));
    r.msg = Some(if out.rc != 0 {
        r.failed = true;
        "non-zero return code".into()
    } else {
        String::new()
    });
    Ok(r)
}

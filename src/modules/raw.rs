//! `raw` (a command line run as the host's shell gets it, output unstripped) and `script` (a
//! controller script copied to a temporary directory on the host and run there, with `creates`,
//! `removes`, `chdir` and `executable`), with the results and check-mode answers of
//! ansible-core 2.19's action plugins of those names.

use super::spec::{BUILTIN, FreeForm, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;

/// `raw`: the line as it is, through the host's shell.
pub struct Raw;

static RAW: ModuleSpec = ModuleSpec {
    free_form: FreeForm::Yes,
    params: &[p("executable")],
    ..ModuleSpec::new("raw", BUILTIN)
};

impl Module for Raw {
    fn spec(&self) -> &'static ModuleSpec {
        &RAW
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_raw(args, ctx))
    }
}

/// `script`: a controller file run on the host.
pub struct Script;

static SCRIPT: ModuleSpec = ModuleSpec {
    free_form: FreeForm::Yes,
    params: &[
        p("cmd"),
        p("creates"),
        p("removes"),
        p("chdir"),
        p("executable"),
        p("decrypt"),
    ],
    one_of: &["cmd"],
    ..ModuleSpec::new("script", BUILTIN)
};

impl Module for Script {
    fn spec(&self) -> &'static ModuleSpec {
        &SCRIPT
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_script(args, ctx))
    }
}

/// Something to run, and how its result reads.
struct Run {
    script: String,
    stdin: Option<Vec<u8>>,
}

fn skipped(msg: Option<&str>) -> ModuleResult {
    let mut r = ModuleResult::ok();
    r.skipped = true;
    r.msg = msg.map(str::to_string);
    r
}

async fn check_raw(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let line = args.free.clone().ok_or("no command given")?;
    // Ansible's raw does not run in check mode: the task is skipped.
    if ctx.check_mode {
        return Ok(Plan::Unchanged(skipped(None)));
    }
    let script = match args.str("executable")? {
        Some(exe) => format!("exec {} -c {}", quote(&exe), quote(&line)),
        None => line,
    };
    Ok(Plan::Change {
        preview: ModuleResult::changed(),
        action: Box::new(Run { script, stdin: None }),
    })
}

async fn exists(ctx: &Ctx<'_>, path: &str) -> Result<bool, Failure> {
    let mut c = Command::new(format!("test -e {}", quote(path)));
    c.become_user = ctx.become_user.clone();
    Ok(ctx.conn.exec(&c).await?.rc == 0)
}

async fn check_script(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let line = match (&args.free, args.str("cmd")?) {
        (Some(f), _) => f.clone(),
        (None, Some(c)) => c,
        (None, None) => return Err("no script given".into()),
    };
    let creates = args.str("creates")?;
    let removes = args.str("removes")?;
    if let Some(c) = &creates
        && exists(ctx, c).await?
    {
        return Ok(Plan::Unchanged(skipped(Some(&format!(
            "{c} exists, matching creates option"
        )))));
    }
    if let Some(r) = &removes
        && !exists(ctx, r).await?
    {
        return Ok(Plan::Unchanged(skipped(Some(&format!(
            "{r} does not exist, matching removes option"
        )))));
    }
    let chdir = args.str("chdir")?;
    if let Some(d) = &chdir
        && !d.starts_with('/')
    {
        return Err(format!("chdir {d} must be an absolute path for a Unix-aware remote node").into());
    }
    let words = crate::shell::split(line.trim()).ok_or_else(|| format!("unterminated quote in `{line}`"))?;
    let first = words.first().ok_or("no script given")?;
    let path = ctx
        .find_source(first, crate::source::SourceDir::Files)
        .ok_or_else(|| format!("Could not find or access '{first}'"))?;
    let content = ctx.sources.read_controller_file(&path)?;
    if ctx.check_mode {
        // As Ansible: with `creates` or `removes` it would run (changed); without, it cannot say.
        if creates.is_some() || removes.is_some() {
            return Ok(Plan::Unchanged(ModuleResult::changed()));
        }
        return Ok(Plan::Unchanged(skipped(Some(
            "Check mode is not supported for this task.",
        ))));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("script");
    // The rest of the line stays as written: the script's arguments, read by the shell.
    let rest = line.trim().strip_prefix(first.as_str()).unwrap_or("").to_string();
    let target = format!("\"$d\"/{}{rest}", quote(name));
    let run = match args.str("executable")? {
        Some(exe) => format!("{exe} {target}"),
        None => target,
    };
    let cd = chdir
        .map(|d| format!("cd {} || exit 1\n", quote(&d)))
        .unwrap_or_default();
    let script = format!(
        "d=$(mktemp -d) || exit 1\ntrap 'rm -rf \"$d\"' EXIT\ncat > \"$d\"/{n} && chmod 700 \"$d\"/{n} || exit 1\n{cd}{run} </dev/null\n",
        n = quote(name)
    );
    Ok(Plan::Change {
        preview: ModuleResult::changed(),
        action: Box::new(Run {
            script,
            stdin: Some(content),
        }),
    })
}

apply_by!(Run, apply);

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let cmd = Command {
        script: run.script,
        stdin: run.stdin,
        env: ctx.env.clone(),
        chdir: None,
        timeout: ctx.timeout,
        become_user: ctx.become_user.clone(),
        // `roll run -m raw` streams a long command's output as `command` does.
        lines: ctx.lines.clone(),
    };
    let out = ctx.conn.exec(&cmd).await?;
    let mut r = ModuleResult::changed();
    r.rc = Some(out.rc.into());
    r.stdout = Some(out.stdout_text());
    r.stderr = Some(out.stderr_text());
    if out.rc != 0 {
        r.failed = true;
        r.msg = Some("non-zero return code".into());
    }
    Ok(r)
}

//! `tempfile`: a new temporary file or directory on the host (0600 / 0700, as Python's
//! `mkstemp`/`mkdtemp` make them), whose path the task registers.

use super::spec::{BUILTIN, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;

/// `tempfile`, as ansible-core 2.19's.
pub struct TempFile;

static TEMPFILE: ModuleSpec = ModuleSpec {
    params: &[
        p("state").choices(&["file", "directory"]),
        p("path"),
        p("prefix"),
        p("suffix"),
    ],
    ..ModuleSpec::new("tempfile", BUILTIN)
};

impl Module for TempFile {
    fn spec(&self) -> &'static ModuleSpec {
        &TEMPFILE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// The temporary path to make.
struct Make {
    dir: bool,
    path: Option<String>,
    prefix: String,
    suffix: String,
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let make = Make {
        dir: args.str("state")?.as_deref() == Some("directory"),
        path: args.str("path")?,
        prefix: args.str("prefix")?.unwrap_or_else(|| "ansible.".into()),
        suffix: args.str("suffix")?.unwrap_or_default(),
    };
    for (what, v) in [("prefix", &make.prefix), ("suffix", &make.suffix)] {
        if v.contains('/') {
            return Err(format!("{what} must be a valid file name component, got '{v}'").into());
        }
    }
    // ansible-core's module does not support check mode, so the task is skipped there: a
    // path that no run would make could not be registered anyway.
    if ctx.check_mode {
        let mut r = ModuleResult::ok().with_msg("remote module (tempfile) does not support check mode");
        r.skipped = true;
        return Ok(Plan::Unchanged(r));
    }
    let preview = ModuleResult::changed();
    Ok(Plan::Change {
        preview,
        action: Box::new(make),
    })
}

apply_by!(Make, apply);

async fn apply(m: Make, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    // Python's `gettempdir()` honours TMPDIR first, then /tmp.
    let dir = match &m.path {
        Some(p) => quote(p),
        None => "\"${TMPDIR:-/tmp}\"".to_string(),
    };
    let script = format!(
        "mktemp {}-p {dir} --suffix={} {}",
        if m.dir { "-d " } else { "" },
        quote(&m.suffix),
        quote(&format!("{}XXXXXXXX", m.prefix)),
    );
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(out.stderr_text().trim().to_string().into());
    }
    Ok(ModuleResult::changed().with("path", out.stdout_text().trim_end_matches('\n')))
}

//! `docker_container_exec` (`community.docker.docker_container_exec`): a command run in a
//! running container with `docker exec`, registering `stdout`, `stderr` and `rc` as the
//! collection does (a non-zero `rc` is a result, not a failure), or `exec_id` when detached.

use super::Action;
use crate::modules::spec::{DOCKER, ModuleSpec, p, req};
use crate::modules::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use minijinja::value::ValueKind;

/// `docker_container_exec`: `docker exec` in a running container.
pub struct DockerContainerExec;

static DOCKER_CONTAINER_EXEC: ModuleSpec = ModuleSpec {
    params: &[
        req("container"),
        p("argv"),
        p("command"),
        p("chdir"),
        p("detach"),
        p("user"),
        p("stdin"),
        p("stdin_add_newline"),
        p("strip_empty_ends"),
        p("tty"),
        p("env"),
    ],
    one_of: &["argv", "command"],
    exclusive: &[("argv", "command")],
    ..ModuleSpec::new("docker_container_exec", DOCKER)
};

impl Module for DockerContainerExec {
    fn spec(&self) -> &'static ModuleSpec {
        &DOCKER_CONTAINER_EXEC
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

pub struct Apply {
    container: String,
    words: Vec<String>,
    /// `env`'s values, by name: in docker's environment, never on its command line.
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    detach: bool,
    strip: bool,
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let container = args.req_str("container")?;
    let argv: Vec<String> = match (args.get("argv"), args.str("command")?) {
        (Some(v), _) if v.kind() == ValueKind::Seq => v
            .try_iter()
            .map_err(|e| e.to_string())?
            .map(|w| crate::values::value_to_string(&w))
            .collect(),
        (Some(_), _) => return Err("`argv` must be a list of words".to_string().into()),
        (None, Some(c)) => crate::shell::split(&c).ok_or_else(|| format!("unterminated quote in command `{c}`"))?,
        (None, None) => return Err("one of the following is required: argv, command".to_string().into()),
    };
    let detach = args.bool("detach", false)?;
    let mut stdin = args.str("stdin")?;
    if detach && stdin.is_some() {
        return Err("If detach=true, stdin cannot be provided.".to_string().into());
    }
    if let Some(s) = stdin.as_mut()
        && args.bool("stdin_add_newline", true)?
    {
        s.push('\n');
    }
    let mut words = vec!["exec".to_string()];
    if stdin.as_deref().is_some_and(|s| !s.is_empty()) {
        words.push("--interactive".into());
    }
    if args.bool("tty", false)? {
        words.push("--tty".into());
    }
    if detach {
        words.push("--detach".into());
    }
    if let Some(u) = args.str("user")? {
        words.extend(["--user".into(), u]);
    }
    if let Some(d) = args.str("chdir")? {
        words.extend(["--workdir".into(), d]);
    }
    let mut env_values = Vec::new();
    if let Some(env) = args.get("env") {
        if env.kind() != ValueKind::Map {
            return Err("`env` must be a mapping".to_string().into());
        }
        for k in env.try_iter().map_err(|e| e.to_string())? {
            let v = env.get_item(&k).map_err(|e| e.to_string())?;
            if v.kind() != ValueKind::String {
                return Err(format!(
                    "Non-string value found for env option. Ambiguous env options must be wrapped in quotes to avoid them being interpreted. Key: {k}"
                )
                .into());
            }
            // The value travels in docker's own environment (`--env NAME` reads it there).
            let name = crate::values::value_to_string(&k);
            // It is assigned by the shell that starts docker: a shell variable name.
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("`env` has a name that is not a variable name: `{name}`").into());
            }
            words.extend(["--env".into(), name.clone()]);
            env_values.push((name, crate::values::value_to_string(&v)));
        }
    }
    words.push(container.clone());
    words.extend(argv);
    // As the collection's module, which does not support check mode: skipped there.
    let mut preview = ModuleResult {
        skipped: true,
        ..ModuleResult::default()
    };
    preview.msg = Some("remote module (community.docker.docker_container_exec) does not support check mode".into());
    if !ctx.check_mode && super::inspect(ctx, "container", &container).await?.is_none() {
        return Err(format!("Could not find container \"{container}\"").into());
    }
    Ok(Plan::Probe {
        preview,
        action: Box::new(Action::Exec(Apply {
            container,
            words,
            env: env_values,
            stdin: stdin.filter(|s| !s.is_empty()).map(String::into_bytes),
            detach,
            strip: args.bool("strip_empty_ends", true)?,
        })),
        in_check: false,
    })
}

/// The exec instances a container has now (`docker inspect`'s `ExecIDs`).
async fn exec_ids(ctx: &Ctx<'_>, container: &str) -> Result<Vec<String>, Failure> {
    let v = super::inspect(ctx, "container", container).await?.unwrap_or_default();
    Ok(v["ExecIDs"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default())
}

pub async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    if a.detach {
        // The CLI does not print the exec's ID: it is the one the container did not have before.
        let before = exec_ids(ctx, &a.container).await?;
        let out = super::docker_env(ctx, &words, None, a.env).await?;
        if out.rc != 0 {
            return Err(super::docker_failure(&words, &out));
        }
        let after = exec_ids(ctx, &a.container).await?;
        let id = after.into_iter().find(|i| !before.contains(i)).unwrap_or_default();
        return Ok(ModuleResult::changed().with("exec_id", id));
    }
    let out = super::docker_env(ctx, &words, a.stdin, a.env).await?;
    let (mut stdout, mut stderr) = (out.stdout_text(), out.stderr_text());
    // The docker CLI's own failures (the container stopped or paused meanwhile) are not the
    // command's: they fail the task.
    if out.rc == 1 && stdout.is_empty() && stderr.starts_with("Error response from daemon:") {
        return Err(super::docker_failure(&words, &out));
    }
    if a.strip {
        stdout = stdout.trim_end_matches(['\r', '\n']).to_string();
        stderr = stderr.trim_end_matches(['\r', '\n']).to_string();
    }
    let mut r = ModuleResult::changed();
    r.stdout = Some(stdout);
    r.stderr = Some(stderr);
    r.rc = Some(out.rc as i64);
    Ok(r)
}

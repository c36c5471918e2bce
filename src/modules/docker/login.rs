//! `docker_login` (`community.docker.docker_login`): the password goes to `docker login
//! --password-stdin` on stdin, never on a command line; `state: absent` logs out. `config_path`
//! picks the docker config file (through `DOCKER_CONFIG`); `email`, which older releases of the
//! collection took, is accepted and ignored, as the registry API ignores it.

use super::Action;
use crate::modules::spec::{DOCKER, ModuleSpec, p};
use crate::modules::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};

/// `docker_login`: the host logged in to a registry.
pub struct DockerLogin;

static DOCKER_LOGIN: ModuleSpec = ModuleSpec {
    params: &[
        p("registry").aliases(&["registry_url", "url"]),
        p("username"),
        p("password"),
        p("email"),
        p("reauthorize").aliases(&["reauth"]),
        p("state").choices(&["present", "absent"]),
        p("config_path").aliases(&["dockercfg_path"]),
    ],
    ..ModuleSpec::new("docker_login", DOCKER)
};

impl Module for DockerLogin {
    fn spec(&self) -> &'static ModuleSpec {
        &DOCKER_LOGIN
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

pub struct Apply {
    /// `DOCKER_CONFIG` for the docker CLI, when `config_path` names another file.
    config_dir: Option<String>,
    registry: String,
    username: String,
    password: Option<String>,
    logout: bool,
}

/// The directory of the docker config file `config_path` names (the docker CLI reads
/// `config.json` in `DOCKER_CONFIG`), with `~` as the host's home.
async fn config_dir(ctx: &Ctx<'_>, config_path: Option<String>) -> Result<Option<String>, Failure> {
    let Some(path) = config_path else {
        return Ok(None);
    };
    let Some((dir, file)) = path.rsplit_once('/') else {
        return Err(format!("`config_path` must be a path ending in `/config.json`, got `{path}`").into());
    };
    if file != "config.json" {
        return Err(format!(
            "`config_path` must name a `config.json` (the file the docker CLI reads in its config directory), got `{path}`"
        )
        .into());
    }
    let dir = match dir.strip_prefix('~') {
        Some(rest) => {
            let mut cmd = crate::connection::Command::new("printf %s \"$HOME\"");
            cmd.become_user = ctx.become_user.clone();
            let home = ctx.conn.exec(&cmd).await?.stdout_text();
            format!("{home}{rest}")
        }
        None => dir.to_string(),
    };
    Ok(Some(dir))
}

/// The task's environment, with `DOCKER_CONFIG` when a config directory is given.
fn env_with(ctx: &Ctx<'_>, config_dir: &Option<String>) -> Vec<(String, String)> {
    let mut env = ctx.env.clone();
    if let Some(d) = config_dir {
        env.push(("DOCKER_CONFIG".into(), d.clone()));
    }
    env
}

/// Whether the host's docker config holds credentials for the registry.
async fn logged_in(ctx: &Ctx<'_>, registry: &str, config_dir: &Option<String>) -> Result<bool, Failure> {
    let cmd =
        crate::connection::Command::new("cat \"${DOCKER_CONFIG:-$HOME/.docker}/config.json\" 2>/dev/null || true");
    let mut cmd = cmd;
    cmd.env = env_with(ctx, config_dir);
    cmd.become_user = ctx.become_user.clone();
    let out = ctx.conn.exec(&cmd).await?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(v["auths"].get(registry).is_some())
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let registry = args
        .str("registry")?
        .unwrap_or_else(|| "https://index.docker.io/v1/".into());
    let logout = args.str("state")?.as_deref() == Some("absent");
    let config_dir = config_dir(ctx, args.str("config_path")?).await?;
    let have = logged_in(ctx, &registry, &config_dir).await?;
    let reauthorize = args.bool("reauthorize", false)?;
    if (logout && !have) || (!logout && have && !reauthorize) {
        let mut r = ModuleResult::ok().with("registry", registry);
        if logout {
            r = r.with("login_result", crate::values::from_serde(&serde_json::json!({})));
        }
        return Ok(Plan::Unchanged(r));
    }
    let username = if logout {
        String::new()
    } else {
        args.req_str("username")?
    };
    let password = if logout { None } else { Some(args.req_str("password")?) };
    if let Some(p) = &password {
        ctx.run.secrets.add(p);
    }
    let preview = ModuleResult::changed()
        .with("registry", registry.as_str())
        .with_msg(if logout {
            format!("would log out of {registry}")
        } else {
            format!("would log in to {registry} as {username}")
        });
    Ok(Plan::Change {
        preview,
        action: Box::new(Action::Login(Apply {
            config_dir,
            registry,
            username,
            password,
            logout,
        })),
    })
}

pub async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    // The CLI's global `--config` is the directory `config_path` names.
    let mut words: Vec<&str> = Vec::new();
    if let Some(d) = &a.config_dir {
        words.extend(["--config", d.as_str()]);
    }
    if a.logout {
        words.extend(["logout", &a.registry]);
        super::docker(ctx, &words, None).await?;
        return Ok(ModuleResult::changed()
            .with("registry", a.registry.as_str())
            .with("login_result", crate::values::from_serde(&serde_json::json!({}))));
    }
    let pw = a.password.unwrap_or_default().into_bytes();
    words.extend(["login", "--username", &a.username, "--password-stdin", &a.registry]);
    super::docker(ctx, &words, Some(pw)).await?;
    Ok(ModuleResult::changed().with("registry", a.registry.as_str()))
}

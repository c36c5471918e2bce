//! `docker_login` (`community.docker.docker_login`): the password goes to `docker login
//! --password-stdin` on stdin, never on a command line.

use super::Action;
use crate::modules::spec::{DOCKER, ModuleSpec, p};
use crate::modules::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};

/// `docker_login`: the host logged in to a registry.
pub struct DockerLogin;

static DOCKER_LOGIN: ModuleSpec = ModuleSpec {
    params: &[
        p("registry").aliases(&["registry_url"]),
        p("username"),
        p("password"),
        p("reauthorize"),
        p("state").choices(&["present", "absent"]),
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
    registry: String,
    username: String,
    password: Option<String>,
    logout: bool,
}

/// Whether the host's docker config holds credentials for the registry.
async fn logged_in(ctx: &Ctx<'_>, registry: &str) -> Result<bool, Failure> {
    let cmd =
        crate::connection::Command::new("cat \"${DOCKER_CONFIG:-$HOME/.docker}/config.json\" 2>/dev/null || true");
    let mut cmd = cmd;
    cmd.env = ctx.env.clone();
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
    let have = logged_in(ctx, &registry).await?;
    let reauthorize = args.bool("reauthorize", false)?;
    if (logout && !have) || (!logout && have && !reauthorize) {
        return Ok(Plan::Unchanged(ModuleResult::ok().with("registry", registry)));
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
            registry,
            username,
            password,
            logout,
        })),
    })
}

pub async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    if a.logout {
        super::docker(ctx, &["logout", &a.registry], None).await?;
    } else {
        let pw = a.password.unwrap_or_default().into_bytes();
        super::docker(
            ctx,
            &["login", "--username", &a.username, "--password-stdin", &a.registry],
            Some(pw),
        )
        .await?;
    }
    Ok(ModuleResult::changed().with("registry", a.registry))
}

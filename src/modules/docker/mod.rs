//! The docker modules: each runs the `docker` CLI on the target host over its connection.
//! Shared here: `docker inspect`, resolving what an image reference means (locally or in its
//! registry, without pulling), and running docker with its output checked.

pub mod container;
pub mod exec;
pub mod image;
pub mod info;
pub mod login;
pub mod network;
pub mod prune;
pub mod volume;

use super::{Ctx, Failure, ModuleResult};
use crate::connection::Command;
use crate::shell::join;

/// Run `docker ARGS...` (words quoted) and return stdout, or fail with the command and stderr.
pub(crate) async fn docker(ctx: &Ctx<'_>, args: &[&str], stdin: Option<Vec<u8>>) -> Result<String, Failure> {
    let out = docker_raw(ctx, args, stdin).await?;
    if out.rc != 0 {
        return Err(docker_failure(args, &out));
    }
    Ok(out.stdout_text())
}

pub(crate) async fn docker_raw(
    ctx: &Ctx<'_>,
    args: &[&str],
    stdin: Option<Vec<u8>>,
) -> Result<crate::connection::Output, Failure> {
    docker_env(ctx, args, stdin, Vec::new()).await
}

/// As [`docker_raw`], with variables in the docker CLI's environment (after the task's): values
/// that `--env NAME` passes on stay off the command line, where `ps` on the host would show them.
pub(crate) async fn docker_env(
    ctx: &Ctx<'_>,
    args: &[&str],
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
) -> Result<crate::connection::Output, Failure> {
    let mut words = vec!["docker"];
    words.extend_from_slice(args);
    let mut cmd = Command::new(join(&words));
    cmd.stdin = stdin;
    cmd.env = ctx.env.clone();
    cmd.env.extend(env);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc == 127 {
        return Err(Failure::Failed(Box::new(ModuleResult::failed(
            "`docker` is not installed on the target host (or not on its PATH)",
        ))));
    }
    Ok(out)
}

pub(crate) fn docker_failure(args: &[&str], out: &crate::connection::Output) -> Failure {
    let mut r = ModuleResult::failed(format!(
        "`docker {}` failed: {}",
        args.first().copied().unwrap_or(""),
        tail(&out.stderr_text(), 10).trim()
    ));
    r.rc = Some(out.rc as i64);
    r.stderr = Some(out.stderr_text());
    Failure::Failed(Box::new(r))
}

/// The last `n` lines of a text.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `docker inspect` of one object as JSON, or `None` if it does not exist.
pub(crate) async fn inspect(ctx: &Ctx<'_>, kind: &str, name: &str) -> Result<Option<serde_json::Value>, Failure> {
    let args = ["inspect", "--type", kind, name];
    let out = docker_raw(ctx, &args, None).await?;
    if out.rc != 0 {
        // Volumes say "no such volume", the other kinds "No such object".
        let err = out.stderr_text().to_lowercase();
        if err.contains("no such") || err.contains("not found") {
            return Ok(None);
        }
        return Err(docker_failure(&args, &out));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cannot read `docker inspect`: {e}"))?;
    Ok(v.as_array().and_then(|a| a.first()).cloned())
}

/// A container and an image (its ID and labels) in one `docker inspect` (one round trip, one
/// docker process): the usual "is anything to do?" question of `docker_container`.
pub(crate) async fn inspect_container_and_image(
    ctx: &Ctx<'_>,
    container: &str,
    image: &str,
) -> Result<(Option<serde_json::Value>, Option<String>, serde_json::Value), Failure> {
    let args = ["inspect", container, image];
    let out = docker_raw(ctx, &args, None).await?;
    let err = out.stderr_text();
    // Exit 1 with "No such object" for what is missing; anything else is a real failure.
    if out.rc != 0 && !err.lines().all(|l| l.contains("No such object") || l.trim().is_empty()) {
        return Err(docker_failure(&args, &out));
    }
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Array(vec![]));
    let mut cont = None;
    let mut image_id = None;
    let mut image_labels = serde_json::Value::Null;
    for v in list.as_array().into_iter().flatten() {
        if v.get("State").is_some() {
            cont = Some(v.clone());
        } else if v.get("RepoTags").is_some() {
            image_id = v["Id"].as_str().map(str::to_string);
            image_labels = v["Config"]["Labels"].clone();
        }
    }
    Ok((cont, image_id, image_labels))
}

/// What an image reference resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// The image ID (`sha256:...`, the digest of its config), if it could be determined.
    pub id: Option<String>,
    /// Whether that ID is the one present on the host.
    pub local: bool,
}

/// The image ID a reference stands for. With `check_registry`, the registry is asked (without
/// pulling: the manifest's config digest is the ID the pulled image will have); otherwise the
/// local image answers, falling back to the registry when there is none.
pub(crate) async fn resolve_image(ctx: &Ctx<'_>, image: &str, check_registry: bool) -> Result<ImageRef, Failure> {
    let local = match inspect(ctx, "image", image).await? {
        Some(v) => v["Id"].as_str().map(str::to_string),
        None => None,
    };
    resolve_known(ctx, image, local, check_registry).await
}

/// As [`resolve_image`], with the local image ID already known.
pub(crate) async fn resolve_known(
    ctx: &Ctx<'_>,
    image: &str,
    local: Option<String>,
    check_registry: bool,
) -> Result<ImageRef, Failure> {
    if !check_registry && local.is_some() {
        return Ok(ImageRef { id: local, local: true });
    }
    let remote = registry_image_id(ctx, image).await?;
    match remote {
        Some(id) => Ok(ImageRef {
            local: local.as_deref() == Some(id.as_str()),
            id: Some(id),
        }),
        None if local.is_some() => Ok(ImageRef { id: local, local: true }),
        None => Err(format!("image `{image}` is neither on the host nor in its registry").into()),
    }
}

/// The config digest of an image in its registry (`docker manifest inspect`), `None` if the
/// registry does not have it.
pub(crate) async fn registry_image_id(ctx: &Ctx<'_>, image: &str) -> Result<Option<String>, Failure> {
    let args = ["manifest", "inspect", "--insecure", image];
    let out = docker_raw(ctx, &args, None).await?;
    if out.rc != 0 {
        let err = out.stderr_text();
        if err.contains("no such manifest") || err.contains("not found") || err.contains("manifest unknown") {
            return Ok(None);
        }
        return Err(docker_failure(&args, &out));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cannot read the manifest of `{image}`: {e}"))?;
    Ok(v["config"]["digest"].as_str().map(str::to_string))
}

/// `docker pull`, passing through quoted.
pub(crate) async fn pull(ctx: &Ctx<'_>, image: &str) -> Result<(), Failure> {
    docker(ctx, &["pull", "--quiet", image], None).await.map(|_| ())
}

/// What a docker module's `apply` does, exactly as its `check` planned it.
pub enum Action {
    Pull { image: String },
    RemoveImage { image: String, force: bool },
    Image(image::Apply),
    Container(Box<container::Apply>),
    Login(login::Apply),
    Network(network::Apply),
    Prune(prune::Apply),
    Exec(exec::Apply),
    Volume(volume::Apply),
}

apply_by!(Action, apply);

async fn apply(action: Action, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    match action {
        Action::Pull { image } => {
            pull(ctx, &image).await?;
            let id = inspect(ctx, "image", &image)
                .await?
                .and_then(|v| v["Id"].as_str().map(str::to_string));
            Ok(ModuleResult::changed()
                .with("image", image)
                .with("id", id.unwrap_or_default()))
        }
        Action::RemoveImage { image, force } => {
            let mut words = vec!["image", "rm"];
            if force {
                words.push("--force");
            }
            words.push(&image);
            docker(ctx, &words, None).await?;
            Ok(ModuleResult::changed().with("image", image))
        }
        Action::Image(a) => image::apply(a, ctx).await,
        Action::Container(a) => container::apply(*a, ctx).await,
        Action::Login(a) => login::apply(a, ctx).await,
        Action::Network(a) => network::apply(a, ctx).await,
        Action::Prune(a) => prune::apply(a, ctx).await,
        Action::Exec(a) => exec::apply(a, ctx).await,
        Action::Volume(a) => volume::apply(a, ctx).await,
    }
}

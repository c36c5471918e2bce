//! `docker_image` (`community.docker.docker_image`): an image present on the host (pulled by
//! tag or digest, built from a context on the host, loaded from an archive on the host, or
//! required to be there already), optionally tagged into a repository and pushed; or absent.
//! As community.docker decides: an image that is there is not built, loaded or pulled again
//! unless `force_source`, and a rebuild that yields the same image ID is no change. In check
//! mode the registry is asked without pulling or pushing.

use super::{Action, docker, docker_raw, inspect, registry_image_id, resolve_image};
use crate::modules::spec::{DOCKER, ModuleSpec, p, req};
use crate::modules::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::shell::quote;
use crate::values::value_to_string;
use minijinja::Value;
use minijinja::value::ValueKind;

/// `docker_image`: an image present or absent.
pub struct DockerImage;

static DOCKER_IMAGE: ModuleSpec = ModuleSpec {
    params: &[
        req("name"),
        p("tag"),
        p("source").choices(&["build", "load", "pull", "local"]),
        p("build"),
        p("load_path"),
        p("repository"),
        p("push"),
        p("force_source"),
        p("force_tag"),
        p("force_absent"),
        p("archive_path"),
        p("state").choices(&["present", "absent"]),
    ],
    exclusive: &[("build", "load_path")],
    ..ModuleSpec::new("docker_image", DOCKER)
};

impl Module for DockerImage {
    fn spec(&self) -> &'static ModuleSpec {
        &DOCKER_IMAGE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// `name` with `tag` appended unless `name` already carries a tag or digest.
pub(crate) fn reference(args: &Args) -> Result<String, String> {
    let name = args.req_str("name")?;
    let last = name.rsplit('/').next().unwrap_or(&name);
    Ok(match args.str("tag")? {
        Some(tag) if !last.contains(':') && !last.contains('@') => format!("{name}:{tag}"),
        _ => name,
    })
}

/// A reference with its tag (`latest` when it has none), as the engine names it.
fn tagged(image: &str, default_tag: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:{default_tag}")
    }
}

/// One step of the work, in the order community.docker does it.
#[derive(Debug, Clone)]
pub enum ImageStep {
    /// `docker build` of a context directory on the host.
    Build {
        image: String,
        words: Vec<String>,
    },
    /// `docker load` of an archive on the host; the archive must hold `image`.
    Load {
        image: String,
        path: String,
    },
    Pull {
        image: String,
    },
    /// `docker tag FROM TO`; no change when `TO` already was that image.
    Tag {
        from: String,
        to: String,
    },
    Push {
        image: String,
    },
}

pub struct Apply {
    image: String,
    /// The image's ID before the run (a rebuild to the same ID is no change).
    before: Option<String>,
    steps: Vec<ImageStep>,
}

/// The `docker build` words for the `build:` options; unknown or unsupported options are
/// refused, never ignored.
fn build_words(build: &Value, image: &str) -> Result<(String, Vec<String>), String> {
    if build.kind() != ValueKind::Map {
        return Err("`build` must be a mapping with at least `path`".into());
    }
    let get = |k: &str| build.get_attr(k).ok().filter(|v| !v.is_undefined() && !v.is_none());
    let flag = |k: &str| -> Result<bool, String> {
        match get(k) {
            None => Ok(false),
            Some(v) if v.kind() == ValueKind::Bool => Ok(v.is_true()),
            Some(v) => match value_to_string(&v).to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" | "on" => Ok(true),
                "no" | "false" | "0" | "off" => Ok(false),
                other => Err(format!("`build.{k}` must be a boolean, got `{other}`")),
            },
        }
    };
    for k in build.try_iter().map_err(|e| e.to_string())? {
        let k = k.to_string();
        match k.as_str() {
            "path" | "dockerfile" | "args" | "pull" | "target" | "nocache" | "rm" | "network" | "etc_hosts"
            | "platform" | "cache_from" | "http_timeout" => {}
            "container_limits" | "use_config_proxy" | "shm_size" | "labels" | "secrets" | "outputs" => {
                return Err(format!("`build.{k}` is not supported by roll yet"));
            }
            other => return Err(format!("unknown option `build.{other}`")),
        }
    }
    let path = get("path")
        .map(|v| value_to_string(&v))
        .ok_or("If \"source\" is set to \"build\", the \"build.path\" option must be specified.")?;
    let mut words: Vec<String> = vec!["build".into(), "--tag".into(), image.into()];
    if let Some(d) = get("dockerfile") {
        let d = value_to_string(&d);
        // The engine reads it relative to the context, the CLI relative to its directory.
        let d = if d.starts_with('/') {
            d
        } else {
            format!("{}/{d}", path.trim_end_matches('/'))
        };
        words.extend(["--file".into(), d]);
    }
    if let Some(a) = get("args") {
        if a.kind() != ValueKind::Map {
            return Err("`build.args` must be a mapping".into());
        }
        for k in a.try_iter().map_err(|e| e.to_string())? {
            let v = a.get_item(&k).map_err(|e| e.to_string())?;
            words.extend(["--build-arg".into(), format!("{k}={}", value_to_string(&v))]);
        }
    }
    if let Some(h) = get("etc_hosts") {
        if h.kind() != ValueKind::Map {
            return Err("`build.etc_hosts` must be a mapping of names to addresses".into());
        }
        for k in h.try_iter().map_err(|e| e.to_string())? {
            let v = h.get_item(&k).map_err(|e| e.to_string())?;
            words.extend(["--add-host".into(), format!("{k}:{}", value_to_string(&v))]);
        }
    }
    if let Some(c) = get("cache_from") {
        for x in c
            .try_iter()
            .map_err(|_| "`build.cache_from` must be a list".to_string())?
        {
            words.extend(["--cache-from".into(), value_to_string(&x)]);
        }
    }
    for (k, f) in [
        ("target", "--target"),
        ("network", "--network"),
        ("platform", "--platform"),
    ] {
        if let Some(v) = get(k) {
            words.extend([f.into(), value_to_string(&v)]);
        }
    }
    if flag("pull")? {
        words.push("--pull".into());
    }
    if flag("nocache")? {
        words.push("--no-cache".into());
    }
    // community.docker's default: intermediate containers removed, also after a failure.
    let rm = get("rm").is_none() || flag("rm")?;
    words.push(if rm { "--force-rm".into() } else { "--rm=false".into() });
    words.push(path.clone());
    Ok((path, words))
}

/// Whether `test OP PATH` holds on the host.
async fn host_test(ctx: &Ctx<'_>, op: &str, path: &str) -> Result<bool, Failure> {
    let mut cmd = crate::connection::Command::new(format!("test {op} {}", quote(path)));
    cmd.become_user = ctx.become_user.clone();
    Ok(ctx.conn.exec(&cmd).await?.rc == 0)
}

fn image_id(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().and_then(|v| v["Id"].as_str().map(str::to_string))
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let image = reference(args)?;
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    if args.get("archive_path").is_some() {
        return Err("`archive_path` is not supported by roll yet".to_string().into());
    }
    if state == "absent" {
        let present = inspect(ctx, "image", &image).await?.is_some();
        if !present {
            return Ok(Plan::Unchanged(ModuleResult::ok().with("image", image)));
        }
        let mut preview = ModuleResult::changed().with("image", image.as_str());
        preview.diffs.push(FileDiff {
            path: format!("image {image}"),
            before: "present\n".into(),
            after: "absent\n".into(),
            change: Change::Remove,
        });
        let force = args.bool("force_absent", false)?;
        return Ok(Plan::Change {
            preview,
            action: Box::new(Action::RemoveImage { image, force }),
        });
    }
    let source = args.str("source")?.unwrap_or_else(|| "pull".into());
    let force = args.bool("force_source", false)?;
    let push = args.bool("push", false)?;
    let repository = args.str("repository")?;
    let simple = source == "pull" && !push && repository.is_none();
    if simple {
        return check_pull(&image, force, ctx).await;
    }
    let local = inspect(ctx, "image", &image).await?;
    let before = image_id(&local);
    let mut steps = Vec::new();
    let mut actions: Vec<Value> = Vec::new();
    if local.is_none() || force {
        match source.as_str() {
            "build" => {
                let build = args.get("build").ok_or(
                    "If \"source\" is set to \"build\", the \"build.path\" option must be specified.".to_string(),
                )?;
                let (path, words) = build_words(build, &tagged(&image, "latest"))?;
                if !host_test(ctx, "-d", &path).await? {
                    return Err(
                        format!("Requested build path {path} could not be found or you do not have access.").into(),
                    );
                }
                actions.push(Value::from(format!("Built image {image} from {path}")));
                steps.push(ImageStep::Build {
                    image: image.clone(),
                    words,
                });
            }
            "load" => {
                let path = args
                    .str("load_path")?
                    .ok_or("`source: load` needs `load_path`, an image archive on the host".to_string())?;
                if !host_test(ctx, "-f", &path).await? {
                    return Err(format!("Error loading image {image}. Specified path {path} does not exist.").into());
                }
                actions.push(Value::from(format!("Loaded image {image} from {path}")));
                steps.push(ImageStep::Load {
                    image: tagged(&image, "latest"),
                    path,
                });
            }
            "pull" => {
                actions.push(Value::from(format!("Pulled image {image}")));
                steps.push(ImageStep::Pull { image: image.clone() });
            }
            _ => {
                if local.is_none() {
                    return Err(format!("Cannot find the image {} locally.", tagged(&image, "latest")).into());
                }
            }
        }
    }
    // What the image will be once the source step ran: known now only when there is none.
    let known_id = if steps.is_empty() { before.clone() } else { None };
    let mut target = image.clone();
    let mut target_id = known_id.clone();
    if let Some(repo) = &repository {
        let tag = args.str("tag")?.unwrap_or_else(|| "latest".into());
        let to = tagged(repo, &tag);
        let there = image_id(&inspect(ctx, "image", &to).await?);
        // As community.docker: a repository tag that exists is left alone unless `force_tag`.
        if there.is_none() || args.bool("force_tag", false)? {
            actions.push(Value::from(format!("Tagged image {image} to {to}")));
            steps.push(ImageStep::Tag {
                from: image.clone(),
                to: to.clone(),
            });
        } else {
            target_id = there;
        }
        target = to;
    }
    if push {
        let in_registry = registry_image_id(ctx, &target).await?;
        if target_id.is_none() || in_registry != target_id {
            actions.push(Value::from(format!("Pushed image {target}")));
            steps.push(ImageStep::Push { image: target.clone() });
        }
    }
    let result = ModuleResult::ok()
        .with("image", image.as_str())
        .with("id", before.clone().unwrap_or_default());
    if steps.is_empty() {
        return Ok(Plan::Unchanged(
            result.with("actions", Value::from(Vec::<Value>::new())),
        ));
    }
    let mut preview = result.with("actions", Value::from(actions.clone()));
    preview.changed = true;
    preview.msg = Some(
        actions
            .iter()
            .map(|a| a.as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("; "),
    );
    preview.diffs.push(FileDiff {
        path: format!("image {image}"),
        before: match &before {
            Some(id) => format!("id: {id}\n"),
            None => "absent\n".into(),
        },
        after: actions
            .iter()
            .map(|a| format!("{}\n", a.as_str().unwrap_or("")))
            .collect(),
        change: if before.is_none() {
            Change::Create
        } else {
            Change::Update
        },
    });
    Ok(Plan::Change {
        preview,
        action: Box::new(Action::Image(Apply { image, before, steps })),
    })
}

/// `source: pull` alone (the deploy's "pull the release"): the registry decides.
async fn check_pull(image: &str, force: bool, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let resolved = resolve_image(ctx, image, force).await?;
    let id = resolved.id.clone().unwrap_or_default();
    if resolved.local {
        return Ok(Plan::Unchanged(ModuleResult::ok().with("image", image).with("id", id)));
    }
    let before = match inspect(ctx, "image", image).await? {
        Some(v) => format!("id: {}\n", v["Id"].as_str().unwrap_or("")),
        None => "absent\n".into(),
    };
    let mut preview = ModuleResult::changed().with("image", image).with("id", id.as_str());
    preview.msg = Some(format!("would pull {image}"));
    preview.diffs.push(FileDiff {
        path: format!("image {image}"),
        change: if before == "absent\n" {
            Change::Create
        } else {
            Change::Update
        },
        before,
        after: format!("id: {id}\n"),
    });
    Ok(Plan::Change {
        preview,
        action: Box::new(Action::Pull { image: image.into() }),
    })
}

pub async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let mut changed = false;
    let mut actions: Vec<Value> = Vec::new();
    let mut stdout = None;
    for step in &a.steps {
        match step {
            ImageStep::Build { image, words } => {
                let w: Vec<&str> = words.iter().map(String::as_str).collect();
                let out = docker_raw(ctx, &w, None).await?;
                if out.rc != 0 {
                    let mut r = ModuleResult::failed(format!(
                        "Error building {image}: {}",
                        super::tail(&out.stderr_text(), 10).trim()
                    ));
                    r.stdout = Some(out.stdout_text());
                    r.rc = Some(out.rc as i64);
                    return Err(Failure::Failed(Box::new(r)));
                }
                stdout = Some(out.stdout_text().trim_end().to_string());
                let now = image_id(&inspect(ctx, "image", image).await?);
                changed |= now != a.before;
                actions.push(Value::from(format!("Built image {image}")));
            }
            ImageStep::Load { image, path } => {
                let out = docker(ctx, &["load", "--input", path], None).await?;
                let loaded: Vec<&str> = out
                    .lines()
                    .filter_map(|l| l.strip_prefix("Loaded image:").map(str::trim))
                    .collect();
                if !loaded.contains(&image.as_str()) {
                    let ids: Vec<&str> = out
                        .lines()
                        .filter_map(|l| l.strip_prefix("Loaded image ID:").map(str::trim))
                        .collect();
                    let found: Vec<String> = loaded.iter().chain(&ids).map(|i| format!("'{i}'")).collect();
                    return Err(format!(
                        "The archive did not contain image '{image}'. Instead, found {}.",
                        found.join(", ")
                    )
                    .into());
                }
                let now = image_id(&inspect(ctx, "image", image).await?);
                changed |= now != a.before;
                actions.push(Value::from(format!("Loaded image {image} from {path}")));
            }
            ImageStep::Pull { image } => {
                super::pull(ctx, image).await?;
                let now = image_id(&inspect(ctx, "image", image).await?);
                changed |= now != a.before;
                actions.push(Value::from(format!("Pulled image {image}")));
            }
            ImageStep::Tag { from, to } => {
                let was = image_id(&inspect(ctx, "image", to).await?);
                docker(ctx, &["tag", from, to], None).await?;
                let now = image_id(&inspect(ctx, "image", to).await?);
                if was != now {
                    changed = true;
                    actions.push(Value::from(format!("Tagged image {from} to {to}")));
                }
            }
            ImageStep::Push { image } => {
                // Planned only when the registry holds another image (or none) under the name.
                docker(ctx, &["push", image], None).await?;
                changed = true;
                actions.push(Value::from(format!("Pushed image {image}")));
            }
        }
    }
    let id = image_id(&inspect(ctx, "image", &a.image).await?).unwrap_or_default();
    let mut r = ModuleResult {
        changed,
        stdout,
        ..ModuleResult::default()
    }
    .with("image", a.image.as_str())
    .with("id", id)
    .with("actions", Value::from(actions));
    r.msg = None;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_options_become_docker_build_words() {
        let build = crate::values::from_serde(&serde_json::json!({
            "path": "/ctx", "dockerfile": "Dockerfile.web", "args": {"V": 2},
            "target": "final", "nocache": true, "pull": "no",
        }));
        let (path, words) = build_words(&build, "web:1").unwrap();
        assert_eq!(path, "/ctx");
        assert_eq!(
            words.join(" "),
            "build --tag web:1 --file /ctx/Dockerfile.web --build-arg V=2 --target final --no-cache --force-rm /ctx"
        );
        let limits = crate::values::from_serde(&serde_json::json!({"path": "/ctx", "container_limits": {}}));
        assert!(build_words(&limits, "x").unwrap_err().contains("not supported"));
        let typo = crate::values::from_serde(&serde_json::json!({"path": "/ctx", "dockerfil": "x"}));
        assert_eq!(build_words(&typo, "x").unwrap_err(), "unknown option `build.dockerfil`");
        assert_eq!(tagged("127.0.0.1:5000/web", "7"), "127.0.0.1:5000/web:7");
        assert_eq!(tagged("web:1", "7"), "web:1");
    }
}

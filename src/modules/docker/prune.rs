//! `docker_prune_releases` (roll's own): keep the `keep` most recent releases of an app (by the
//! `roll.app` and `roll.release` labels of its containers) and remove the older releases'
//! stopped containers and their images. Running containers are never removed.

use super::{Action, docker, docker_raw};
use crate::modules::spec::{ModuleSpec, ROLL, p, req};
use crate::modules::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use minijinja::Value;

/// `docker_prune_releases`: old releases of an app removed.
pub struct DockerPruneReleases;

static DOCKER_PRUNE_RELEASES: ModuleSpec = ModuleSpec {
    params: &[req("app"), p("keep")],
    ..ModuleSpec::new("docker_prune_releases", ROLL)
};

impl Module for DockerPruneReleases {
    fn spec(&self) -> &'static ModuleSpec {
        &DOCKER_PRUNE_RELEASES
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

pub struct Apply {
    containers: Vec<String>,
    images: Vec<String>,
}

struct Found {
    id: String,
    name: String,
    release: String,
    created: String,
    running: bool,
    image: String,
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let app = args.req_str("app")?;
    let keep = args.f64("keep")?.unwrap_or(3.0).max(1.0) as usize;
    let filter = format!("label=roll.app={app}");
    let out = docker(
        ctx,
        &["ps", "--all", "--no-trunc", "--filter", &filter, "--format", "{{.ID}}"],
        None,
    )
    .await?;
    let ids: Vec<&str> = out.split_whitespace().collect();
    let mut found = Vec::new();
    if !ids.is_empty() {
        let mut a = vec!["inspect", "--type", "container"];
        a.extend(ids.iter().copied());
        let text = docker(ctx, &a, None).await?;
        let list: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("cannot read `docker inspect`: {e}"))?;
        for c in list.as_array().into_iter().flatten() {
            found.push(Found {
                id: c["Id"].as_str().unwrap_or("").to_string(),
                name: c["Name"].as_str().unwrap_or("").trim_start_matches('/').to_string(),
                release: c["Config"]["Labels"]["roll.release"].as_str().unwrap_or("").to_string(),
                created: c["Created"].as_str().unwrap_or("").to_string(),
                running: c["State"]["Running"].as_bool().unwrap_or(false),
                image: c["Image"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    // Releases, newest first by their newest container.
    let mut releases: Vec<(String, String)> = Vec::new();
    for f in &found {
        match releases.iter_mut().find(|(r, _)| *r == f.release) {
            Some((_, t)) if *t < f.created => *t = f.created.clone(),
            Some(_) => {}
            None => releases.push((f.release.clone(), f.created.clone())),
        }
    }
    releases.sort_by(|a, b| b.1.cmp(&a.1));
    let kept: Vec<String> = releases.iter().take(keep).map(|(r, _)| r.clone()).collect();
    let old: Vec<&Found> = found
        .iter()
        .filter(|f| !kept.contains(&f.release) && !f.running)
        .collect();
    let kept_images: Vec<&str> = found
        .iter()
        .filter(|f| kept.contains(&f.release) || f.running)
        .map(|f| f.image.as_str())
        .collect();
    let mut images: Vec<String> = old
        .iter()
        .map(|f| f.image.clone())
        .filter(|i| !kept_images.contains(&i.as_str()))
        .collect();
    images.sort();
    images.dedup();
    let base = ModuleResult::ok().with("kept", Value::from(kept.clone()));
    if old.is_empty() {
        return Ok(Plan::Unchanged(base));
    }
    let names: Vec<String> = old.iter().map(|f| f.name.clone()).collect();
    let mut preview = base.with("removed", Value::from(names.clone()));
    preview.changed = true;
    preview.diffs.push(FileDiff {
        path: format!("releases of {app}"),
        before: names.iter().map(|n| format!("{n}\n")).collect(),
        after: String::new(),
        change: Change::Remove,
    });
    let containers = old.iter().map(|f| f.id.clone()).collect();
    Ok(Plan::Change {
        preview,
        action: Box::new(Action::Prune(Apply { containers, images })),
    })
}

pub async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let mut args = vec!["rm"];
    args.extend(a.containers.iter().map(String::as_str));
    docker(ctx, &args, None).await?;
    let mut removed_images = Vec::new();
    for i in &a.images {
        // An image another container still uses stays; that is not an error.
        if docker_raw(ctx, &["image", "rm", i], None).await?.rc == 0 {
            removed_images.push(i.clone());
        }
    }
    Ok(ModuleResult::changed()
        .with("removed_containers", a.containers.len() as i64)
        .with("removed_images", Value::from(removed_images)))
}

//! `docker_prune_releases` (roll's own): keep the `keep` most recent releases of an app and
//! remove the older ones: their stopped containers (found by the `roll.app` and `roll.release`
//! labels) and their images (the tags of `image`'s repository, one per release, and the images
//! of the removed containers). An image any container on the host uses stays, and running
//! containers are never removed. The order of releases is `releases` (newest first, as
//! `roll.bluegreen_facts` reads it from the proxy's history), then the newest by creation time.

use super::{Action, docker, docker_raw};
use crate::modules::spec::{ModuleSpec, ROLL, p, req};
use crate::modules::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use minijinja::Value;

/// `docker_prune_releases`: old releases of an app removed.
pub struct DockerPruneReleases;

static DOCKER_PRUNE_RELEASES: ModuleSpec = ModuleSpec {
    params: &[req("app"), p("keep"), p("image"), p("releases")],
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
    /// References (`repo:tag`) or IDs, removed in this order.
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

/// A tag of the app's image repository: a release's image.
struct Tagged {
    reference: String,
    release: String,
    id: String,
    created: String,
}

async fn inspect_all(ctx: &Ctx<'_>, ids: &[&str]) -> Result<Vec<serde_json::Value>, Failure> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut a = vec!["inspect", "--type", "container"];
    a.extend(ids.iter().copied());
    let out = docker_raw(ctx, &a, None).await?;
    // A container removed since `docker ps` listed it is no longer there to keep an image.
    let gone = |l: &str| l.contains("No such container") || l.contains("No such object") || l.trim().is_empty();
    if out.rc != 0 && !out.stderr_text().lines().all(gone) {
        return Err(super::docker_failure(&a, &out));
    }
    let list: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cannot read `docker inspect`: {e}"))?;
    Ok(list.as_array().cloned().unwrap_or_default())
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let app = args.req_str("app")?;
    let keep = args.f64("keep")?.unwrap_or(3.0).max(1.0) as usize;
    let repo = args.str("image")?.map(|i| match i.rsplit_once(':') {
        // `repo:tag` names the repository; a registry's port (`host:5000/repo`) is not a tag.
        Some((r, t)) if !t.contains('/') => r.to_string(),
        _ => i,
    });
    let mut order: Vec<String> = Vec::new();
    if let Some(v) = args.get("releases") {
        let list = v
            .try_iter()
            .map_err(|_| "`releases` is a list of releases, newest first".to_string())?;
        // Each release counts once, where it first appears (`[release] + history`).
        for r in list.map(|r| crate::values::value_to_string(&r)) {
            if !order.contains(&r) {
                order.push(r);
            }
        }
    }
    // Every container on the host, for the images in use; the app's, for its releases.
    let all = docker(ctx, &["ps", "--all", "--quiet", "--no-trunc"], None).await?;
    let all_ids: Vec<&str> = all.split_whitespace().collect();
    let mut found = Vec::new();
    let mut in_use: Vec<(String, String)> = Vec::new();
    for c in inspect_all(ctx, &all_ids).await? {
        let image = c["Image"].as_str().unwrap_or("").to_string();
        let id = c["Id"].as_str().unwrap_or("").to_string();
        in_use.push((id.clone(), image.clone()));
        if c["Config"]["Labels"]["roll.app"].as_str() != Some(app.as_str()) {
            continue;
        }
        found.push(Found {
            id,
            name: c["Name"].as_str().unwrap_or("").trim_start_matches('/').to_string(),
            release: c["Config"]["Labels"]["roll.release"].as_str().unwrap_or("").to_string(),
            created: c["Created"].as_str().unwrap_or("").to_string(),
            running: c["State"]["Running"].as_bool().unwrap_or(false),
            image,
        });
    }
    let mut tagged = Vec::new();
    if let Some(repo) = &repo {
        let listing = docker(
            ctx,
            &[
                "images",
                "--no-trunc",
                "--format",
                "{{.Tag}}\t{{.ID}}\t{{.CreatedAt}}",
                repo,
            ],
            None,
        )
        .await?;
        for line in listing.lines() {
            let mut f = line.split('\t');
            let (Some(tag), Some(id), created) = (f.next(), f.next(), f.next().unwrap_or("")) else {
                continue;
            };
            if tag == "<none>" {
                continue;
            }
            tagged.push(Tagged {
                reference: format!("{repo}:{tag}"),
                release: tag.to_string(),
                id: id.to_string(),
                created: created.to_string(),
            });
        }
    }
    // Releases, newest first: as `releases` says, then by their newest container or image.
    // The releases `releases` names count even without an image yet (in a dry run, the
    // release being deployed is not pulled).
    let mut dated: Vec<(String, String)> = order.iter().map(|r| (r.clone(), String::new())).collect();
    let seen = found
        .iter()
        .map(|f| (&f.release, &f.created))
        .chain(tagged.iter().map(|t| (&t.release, &t.created)));
    for (r, t) in seen {
        match dated.iter_mut().find(|(x, _)| x == r) {
            Some((_, at)) if at.as_str() < t.as_str() => *at = t.clone(),
            Some(_) => {}
            None => dated.push((r.clone(), t.clone())),
        }
    }
    dated.sort_by(|a, b| {
        let rank = |r: &str| order.iter().position(|o| o == r).unwrap_or(usize::MAX);
        rank(&a.0).cmp(&rank(&b.0)).then(b.1.cmp(&a.1))
    });
    let kept: Vec<String> = dated.iter().take(keep).map(|(r, _)| r.clone()).collect();
    let old: Vec<&Found> = found
        .iter()
        .filter(|f| !kept.contains(&f.release) && !f.running)
        .collect();
    // The images that stay in use: those of every container that is not removed.
    let used: Vec<&str> = in_use
        .iter()
        .filter(|(id, _)| !old.iter().any(|f| &f.id == id))
        .map(|(_, image)| image.as_str())
        .collect();
    let kept_ids: Vec<&str> = tagged
        .iter()
        .filter(|t| kept.contains(&t.release))
        .map(|t| t.id.as_str())
        .collect();
    // A tag goes when its release is not kept, unless a container uses its image and no kept
    // tag keeps that image (a release re-tagged from another shares its image: untagging it
    // removes nothing a container needs).
    let mut images: Vec<String> = tagged
        .iter()
        .filter(|t| {
            let id = t.id.as_str();
            !kept.contains(&t.release) && (!used.contains(&id) || kept_ids.contains(&id))
        })
        .map(|t| t.reference.clone())
        .collect();
    for f in &old {
        let tagged_here = tagged.iter().any(|t| t.id == f.image);
        if !tagged_here && !used.contains(&f.image.as_str()) && !kept_ids.contains(&f.image.as_str()) {
            images.push(f.image.clone());
        }
    }
    images.sort();
    images.dedup();
    let base = ModuleResult::ok().with("kept", Value::from(kept.clone()));
    if old.is_empty() && images.is_empty() {
        return Ok(Plan::Unchanged(base));
    }
    let names: Vec<String> = old.iter().map(|f| f.name.clone()).collect();
    let mut preview = base
        .with("removed", Value::from(names.clone()))
        .with("removed_images", Value::from(images.clone()));
    preview.changed = true;
    preview.diffs.push(FileDiff {
        path: format!("releases of {app} (keeping {})", kept.join(", ")),
        before: names
            .iter()
            .map(|n| format!("container {n}\n"))
            .chain(images.iter().map(|i| format!("image {i}\n")))
            .collect(),
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
    if !a.containers.is_empty() {
        let mut args = vec!["rm"];
        args.extend(a.containers.iter().map(String::as_str));
        docker(ctx, &args, None).await?;
    }
    let mut removed_images = Vec::new();
    for i in &a.images {
        // An image a container created meanwhile uses stays; that is not an error.
        if docker_raw(ctx, &["image", "rm", i], None).await?.rc == 0 {
            removed_images.push(i.clone());
        }
    }
    Ok(ModuleResult::changed()
        .with("removed_containers", a.containers.len() as i64)
        .with("removed_images", Value::from(removed_images)))
}

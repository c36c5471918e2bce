//! `docker_image` (`community.docker.docker_image`): an image present (pulled by tag or digest)
//! or absent on the host. In check mode the registry is asked without pulling.

use super::{Action, resolve_image};
use crate::modules::spec::{DOCKER, ModuleSpec, p, req};
use crate::modules::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};

/// `docker_image`: an image present or absent.
pub struct DockerImage;

static DOCKER_IMAGE: ModuleSpec = ModuleSpec {
    params: &[
        req("name"),
        p("tag"),
        p("source").choices(&["pull"]),
        p("force_source"),
        p("state").choices(&["present", "absent"]),
    ],
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

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let image = reference(args)?;
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    if state == "absent" {
        let present = super::inspect(ctx, "image", &image).await?.is_some();
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
        return Ok(Plan::Change {
            preview,
            action: Box::new(Action::RemoveImage { image }),
        });
    }
    let force = args.bool("force_source", false)?;
    let resolved = resolve_image(ctx, &image, force).await?;
    let id = resolved.id.clone().unwrap_or_default();
    if resolved.local {
        return Ok(Plan::Unchanged(ModuleResult::ok().with("image", image).with("id", id)));
    }
    let before = match super::inspect(ctx, "image", &image).await? {
        Some(v) => format!("id: {}\n", v["Id"].as_str().unwrap_or("")),
        None => "absent\n".into(),
    };
    let mut preview = ModuleResult::changed()
        .with("image", image.as_str())
        .with("id", id.as_str());
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
        action: Box::new(Action::Pull { image }),
    })
}

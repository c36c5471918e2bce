//! `docker_image` (`community.docker.docker_image`): an image present (pulled by tag or digest)
//! or absent on the host. In check mode the registry is asked without pulling.

use super::{Action, resolve_image};
use crate::modules::{Action as ModAction, Args, Ctx, Failure, FileDiff, ModuleResult, Plan};

/// `name` with `tag` appended unless `name` already carries a tag or digest.
pub(crate) fn reference(args: &Args) -> Result<String, String> {
    let name = args.req_str("name")?;
    let last = name.rsplit('/').next().unwrap_or(&name);
    Ok(match args.str("tag")? {
        Some(tag) if !last.contains(':') && !last.contains('@') => format!("{name}:{tag}"),
        _ => name,
    })
}

pub async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
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
        });
        return Ok(Plan::Change {
            preview,
            action: ModAction::Docker(Action::RemoveImage { image }),
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
        before,
        after: format!("id: {id}\n"),
    });
    Ok(Plan::Change {
        preview,
        action: ModAction::Docker(Action::Pull { image }),
    })
}

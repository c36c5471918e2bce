//! `docker_container_info`: a container's `docker inspect`, to `register`.

use crate::modules::{Args, Ctx, Failure, ModuleResult};
use minijinja::Value;

pub async fn run(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let name = args.req_str("name")?;
    let found = super::inspect(ctx, "container", &name).await?;
    Ok(ModuleResult::ok().with("exists", found.is_some()).with(
        "container",
        found.as_ref().map_or(Value::from(()), crate::vars::from_serde),
    ))
}

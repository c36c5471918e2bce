//! `docker_container_info`: a container's `docker inspect`, to `register`.

use crate::modules::spec::{DOCKER, ModuleSpec, req};
use crate::modules::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use minijinja::Value;

/// `docker_container_info`: a container's `docker inspect`.
pub struct DockerContainerInfo;

static DOCKER_CONTAINER_INFO: ModuleSpec = ModuleSpec {
    params: &[req("name")],
    ..ModuleSpec::new("docker_container_info", DOCKER)
};

impl Module for DockerContainerInfo {
    fn spec(&self) -> &'static ModuleSpec {
        &DOCKER_CONTAINER_INFO
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(async move { run(args, ctx).await.map(Plan::Unchanged) })
    }
}

async fn run(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let name = args.req_str("name")?;
    let found = super::inspect(ctx, "container", &name).await?;
    Ok(ModuleResult::ok().with("exists", found.is_some()).with(
        "container",
        found.as_ref().map_or(Value::from(()), crate::values::from_serde),
    ))
}

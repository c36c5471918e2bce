//! `docker_network` (`community.docker.docker_network`): a network present or absent.

use super::Action;
use crate::modules::spec::{DOCKER, ModuleSpec, p, req};
use crate::modules::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use minijinja::value::ValueKind;

/// `docker_network`: a network present or absent.
pub struct DockerNetwork;

static DOCKER_NETWORK: ModuleSpec = ModuleSpec {
    params: &[
        req("name"),
        p("driver"),
        p("labels"),
        p("state").choices(&["present", "absent"]),
    ],
    ..ModuleSpec::new("docker_network", DOCKER)
};

impl Module for DockerNetwork {
    fn spec(&self) -> &'static ModuleSpec {
        &DOCKER_NETWORK
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

pub struct Apply {
    name: String,
    create: Option<Vec<String>>,
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let name = args.req_str("name")?;
    let absent = args.str("state")?.as_deref() == Some("absent");
    let exists = super::inspect(ctx, "network", &name).await?.is_some();
    if exists != absent {
        return Ok(Plan::Unchanged(ModuleResult::ok().with("network", name)));
    }
    let mut create = None;
    if !absent {
        let mut words = vec!["network".to_string(), "create".into()];
        if let Some(d) = args.str("driver")? {
            words.extend(["--driver".into(), d]);
        }
        if let Some(l) = args.get("labels") {
            if l.kind() != ValueKind::Map {
                return Err("`labels` must be a mapping".to_string().into());
            }
            for k in l.try_iter().map_err(|e| e.to_string())? {
                let v = l.get_item(&k).map_err(|e| e.to_string())?;
                words.extend(["--label".into(), format!("{k}={}", crate::values::value_to_string(&v))]);
            }
        }
        words.push(name.clone());
        create = Some(words);
    }
    let mut preview = ModuleResult::changed().with("network", name.as_str());
    let (b, a) = if absent {
        ("present\n", "absent\n")
    } else {
        ("absent\n", "present\n")
    };
    preview.diffs.push(FileDiff {
        path: format!("network {name}"),
        before: b.into(),
        after: a.into(),
        change: if absent { Change::Remove } else { Change::Create },
    });
    Ok(Plan::Change {
        preview,
        action: Box::new(Action::Network(Apply { name, create })),
    })
}

pub async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    match &a.create {
        Some(words) => {
            let w: Vec<&str> = words.iter().map(String::as_str).collect();
            super::docker(ctx, &w, None).await?;
        }
        None => {
            super::docker(ctx, &["network", "rm", &a.name], None).await?;
        }
    }
    Ok(ModuleResult::changed().with("network", a.name))
}

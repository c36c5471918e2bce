//! `docker_volume` (`community.docker.docker_volume`): a named volume present (with its driver,
//! driver options and labels; recreated when asked) or absent, reporting `volume` and, in check
//! mode or with `--diff`, the collection's `actions` and `diff`.

use super::Action;
use crate::modules::spec::{DOCKER, ModuleSpec, p, req};
use crate::modules::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::values::value_to_string;
use minijinja::Value;
use minijinja::value::ValueKind;
use serde_json::json;

/// `docker_volume`: a named volume present or absent.
pub struct DockerVolume;

static DOCKER_VOLUME: ModuleSpec = ModuleSpec {
    params: &[
        req("volume_name").aliases(&["name"]),
        p("state").choices(&["present", "absent"]),
        p("driver"),
        p("driver_options"),
        p("labels"),
        p("recreate").choices(&["always", "never", "options-changed"]),
        p("debug"),
    ],
    ..ModuleSpec::new("docker_volume", DOCKER)
};

impl Module for DockerVolume {
    fn spec(&self) -> &'static ModuleSpec {
        &DOCKER_VOLUME
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

pub struct Apply {
    name: String,
    remove: bool,
    create: Option<Vec<String>>,
}

/// A mapping parameter as ordered `(key, value)` strings.
fn pairs(args: &Args, k: &str) -> Result<Vec<(String, String)>, Failure> {
    let Some(v) = args.get(k) else {
        return Ok(Vec::new());
    };
    if v.kind() != ValueKind::Map {
        return Err(format!("`{k}` must be a mapping").into());
    }
    let mut out = Vec::new();
    for key in v.try_iter().map_err(|e| e.to_string())? {
        let val = v.get_item(&key).map_err(|e| e.to_string())?;
        out.push((value_to_string(&key), value_to_string(&val)));
    }
    Ok(out)
}

/// What differs between the asked volume and the one there, as the collection names it
/// (`driver`, `driver_options.KEY`, `labels.KEY`): `(name, asked, there)`.
fn differences(
    have: &serde_json::Value,
    driver: &str,
    options: &[(String, String)],
    labels: &[(String, String)],
) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    let mut d = Vec::new();
    if have["Driver"].as_str() != Some(driver) {
        d.push(("driver".into(), json!(driver), have["Driver"].clone()));
    }
    let have_opts = &have["Options"];
    if !options.is_empty() && have_opts.as_object().is_none_or(|o| o.is_empty()) {
        let asked: serde_json::Map<String, serde_json::Value> =
            options.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        d.push(("driver_options".into(), json!(asked), have_opts.clone()));
    } else {
        for (k, v) in options {
            if have_opts[k].as_str() != Some(v.as_str()) {
                d.push((format!("driver_options.{k}"), json!(v), have_opts[k].clone()));
            }
        }
    }
    for (k, v) in labels {
        if have["Labels"][k].as_str() != Some(v.as_str()) {
            d.push((format!("labels.{k}"), json!(v), have["Labels"][k].clone()));
        }
    }
    d
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let name = args.req_str("volume_name")?;
    let absent = args.str("state")?.as_deref() == Some("absent");
    let driver = args.str("driver")?.unwrap_or_else(|| "local".into());
    let options = pairs(args, "driver_options")?;
    let labels = pairs(args, "labels")?;
    let recreate = args.str("recreate")?.unwrap_or_else(|| "never".into());
    let debug = args.bool("debug", false)?;
    let have = super::inspect(ctx, "volume", &name).await?;

    let mut actions: Vec<String> = Vec::new();
    let mut remove = false;
    let mut create = false;
    let mut diffs = Vec::new();
    if absent {
        remove = have.is_some();
        if remove {
            actions.push(format!("Removed volume {name}"));
        }
    } else {
        diffs = have
            .as_ref()
            .map(|h| differences(h, &driver, &options, &labels))
            .unwrap_or_default();
        if have.is_some() && (recreate == "always" || (recreate == "options-changed" && !diffs.is_empty())) {
            remove = true;
            actions.push(format!("Removed volume {name}"));
        }
        if have.is_none() || remove {
            create = true;
            actions.push(format!("Created volume {name} with driver {driver}"));
        }
    }

    let mut result = ModuleResult::ok();
    if !absent {
        result.data.insert(
            "volume".into(),
            have.as_ref().map(crate::values::from_serde).unwrap_or(Value::from(())),
        );
    }
    // The collection reports `actions` only in check mode (or with `debug`), and `diff` then or
    // with --diff.
    if ctx.check_mode || debug {
        result
            .data
            .insert("actions".into(), crate::values::from_serde(&actions));
    }
    if ctx.diff || ctx.check_mode || debug {
        let mut diff = serde_json::Map::new();
        if !absent {
            let legacy: Vec<serde_json::Value> = diffs
                .iter()
                .map(|(k, asked, there)| json!({ k.as_str(): { "parameter": asked, "container": there } }))
                .collect();
            diff.insert("differences".into(), json!(legacy));
        }
        if ctx.diff {
            let mut before = serde_json::Map::new();
            let mut after = serde_json::Map::new();
            before.insert("exists".into(), json!(have.is_some()));
            after.insert("exists".into(), json!(!absent));
            for (k, asked, there) in &diffs {
                before.insert(k.clone(), there.clone());
                after.insert(k.clone(), asked.clone());
            }
            diff.insert("before".into(), json!(before));
            diff.insert("after".into(), json!(after));
        }
        result.data.insert("diff".into(), crate::values::from_serde(&diff));
    }
    if !remove && !create {
        return Ok(Plan::Unchanged(result));
    }
    result.changed = true;
    if ctx.diff {
        let state = |exists: bool| if exists { "present\n" } else { "absent\n" };
        result.diffs.push(FileDiff {
            path: format!("volume {name}"),
            before: state(have.is_some()).into(),
            after: state(!absent).into(),
            change: match (absent, remove) {
                (true, _) => Change::Remove,
                (false, true) => Change::Replace,
                (false, false) => Change::Create,
            },
        });
    }
    let create = create.then(|| {
        let mut words = vec!["volume".to_string(), "create".into(), "--driver".into(), driver.clone()];
        for (k, v) in &options {
            words.extend(["--opt".into(), format!("{k}={v}")]);
        }
        for (k, v) in &labels {
            words.extend(["--label".into(), format!("{k}={v}")]);
        }
        words.push(name.clone());
        words
    });
    Ok(Plan::Change {
        preview: result,
        action: Box::new(Action::Volume(Apply { name, remove, create })),
    })
}

pub async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    if a.remove {
        super::docker(ctx, &["volume", "rm", &a.name], None).await?;
    }
    let mut r = ModuleResult::changed();
    if let Some(words) = &a.create {
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        super::docker(ctx, &w, None).await?;
        let v = super::inspect(ctx, "volume", &a.name).await?;
        r.data.insert(
            "volume".into(),
            v.as_ref().map(crate::values::from_serde).unwrap_or(Value::from(())),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::differences;
    use serde_json::json;

    fn s(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_what_was_asked_is_compared_and_named_as_the_collection_names_it() {
        let have =
            json!({"Driver": "local", "Options": {"type": "tmpfs", "o": "size=1m"}, "Labels": {"a": "1", "b": "2"}});
        assert!(differences(&have, "local", &s(&[("type", "tmpfs")]), &s(&[("a", "1")])).is_empty());
        let d = differences(&have, "local", &s(&[("o", "size=2m")]), &s(&[("a", "9")]));
        let names: Vec<&str> = d.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["driver_options.o", "labels.a"]);
        let none = json!({"Driver": "local", "Options": null, "Labels": null});
        let d = differences(&none, "other", &s(&[("type", "tmpfs")]), &[]);
        let names: Vec<&str> = d.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["driver", "driver_options"]);
    }
}

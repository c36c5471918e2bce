//! `docker_container` (`community.docker.docker_container`): a container in the wanted state
//! with exactly the wanted configuration. The effective configuration (image ID included) is
//! hashed into a label, so "unchanged" is one `docker inspect`; any difference replaces the
//! container, and the diff names the fields that differ. Environment values go only to a 0600
//! env file on the host: never to a command line, a label or the output (the config records a
//! short hash per value, so a diff can name the variable that changed).

use super::{Action, docker, docker_raw, inspect, tail};
use crate::connection::FileAttrs;
use crate::modules::files::Write;
use crate::modules::spec::{DOCKER, ModuleSpec, p, req};
use crate::modules::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::values::value_to_string;
use minijinja::Value;
use minijinja::value::ValueKind;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `docker_container`: a container running, stopped or absent.
pub struct DockerContainer;

static DOCKER_CONTAINER: ModuleSpec = ModuleSpec {
    params: &[
        req("name"),
        p("image"),
        p("command"),
        p("env"),
        p("env_file"),
        p("ports").aliases(&["published_ports"]),
        p("volumes"),
        p("labels"),
        p("networks"),
        p("network_mode"),
        p("restart_policy"),
        p("healthcheck"),
        p("stop_signal"),
        p("stop_timeout"),
        p("log_driver"),
        p("log_options"),
        p("state").choices(&["started", "stopped", "absent", "present"]),
        p("recreate"),
        p("pull"),
        p("detach"),
        p("cleanup"),
        p("wait_healthy"),
        p("entrypoint"),
        p("user"),
        p("working_dir"),
        p("hostname"),
        p("etc_hosts"),
        p("memory"),
        p("cpus"),
        p("dns_servers"),
        p("capabilities"),
        p("cap_drop"),
        p("devices"),
        p("ulimits"),
        p("volumes_from"),
        p("links"),
        p("restart"),
        p("force_kill").aliases(&["killed"]),
        p("comparisons"),
        p("container_default_behavior").choices(&["compatibility", "no_defaults"]),
    ],
    exclusive: &[("networks", "network_mode")],
    ..ModuleSpec::new("docker_container", DOCKER)
};

impl Module for DockerContainer {
    fn spec(&self) -> &'static ModuleSpec {
        &DOCKER_CONTAINER
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

pub const HASH_LABEL: &str = "roll.config-hash";
pub const CONFIG_LABEL: &str = "roll.config";

fn config_hash(config_text: &str) -> String {
    Sha256::digest(config_text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How to wait for a started container to serve.
#[derive(Debug, Clone)]
pub struct Health {
    /// An HTTP path checked on the published port, from the host; `None`: the container's own
    /// HEALTHCHECK status.
    http: Option<String>,
    timeout: Duration,
}

pub struct Apply {
    name: String,
    image: String,
    pull: bool,
    replace: bool,
    op: Op,
    /// `docker run`/`docker create` arguments after the subcommand.
    run_args: Vec<String>,
    extra_networks: Vec<String>,
    env_file: Option<Vec<u8>>,
    health: Option<Health>,
    stop_timeout: Option<String>,
    host_port: Option<String>,
    /// `force_kill`: stopping is `docker kill`.
    kill: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Run,
    Create,
    Start,
    Stop,
    /// `restart: true` on a matching running container: stopped and started again.
    Restart,
    Remove,
    /// A one-off command in a new container (`detach: false`).
    Once,
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(v) if v.kind() == ValueKind::Seq => Ok(v
            .try_iter()
            .map_err(|e| e.to_string())?
            .map(|x| value_to_string(&x))
            .collect()),
        Some(v) if v.kind() == ValueKind::String => Ok(vec![value_to_string(v)]),
        Some(_) => Err(format!("`{what}` must be a list")),
    }
}

fn map(v: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    if v.kind() != ValueKind::Map {
        return Err(format!("`{what}` must be a mapping"));
    }
    for k in v.try_iter().map_err(|e| e.to_string())? {
        let val = v.get_item(&k).map_err(|e| e.to_string())?;
        out.insert(k.to_string(), value_to_string(&val));
    }
    Ok(out)
}

/// The labels the task sets, without roll's own config labels (a task that passes back a
/// container's `Config.Labels` has them).
fn config_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| *k != HASH_LABEL && *k != CONFIG_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether the configuration a container was created with (its `roll.config` label) is the
/// wanted one once the labels its image carries are left out of both: docker gives a container
/// its image's labels, so a task that passes back a container's `Config.Labels` (image labels
/// included) asks for the container it has, which is started, not replaced. The hash alone
/// cannot say so: it is made before a pulled image's labels are known.
fn same_but_image_labels(recorded: &Json, wanted: &Json, image_labels: &Json) -> bool {
    let strip = |c: &Json| -> Json {
        let mut c = c.clone();
        if let Some(l) = c.get_mut("labels").and_then(Json::as_object_mut) {
            l.retain(|k, v| image_labels.get(k) != Some(&*v));
        }
        c
    };
    !recorded.is_null() && !image_labels.is_null() && strip(recorded) == strip(wanted)
}

fn short_hash(s: &[u8]) -> String {
    let d = Sha256::digest(s);
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// `KEY=VALUE` lines of the env file (values with newlines cannot be passed by docker).
fn env_file_content(env: &BTreeMap<String, String>, from_file: &str) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    for line in from_file.lines() {
        let l = line.trim();
        if !l.is_empty() && !l.starts_with('#') {
            out.push_str(l);
            out.push('\n');
        }
    }
    for (k, v) in env {
        if v.contains('\n') {
            return Err(format!(
                "the value of `{k}` holds a newline, which docker's env files cannot carry"
            ));
        }
        out.push_str(&format!("{k}={v}\n"));
    }
    Ok(out.into_bytes())
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let name = args.req_str("name")?;
    let state = args.str("state")?.unwrap_or_else(|| "started".into());
    let base = ModuleResult::ok().with("name", name.as_str());
    let image_arg = match args.get("image") {
        Some(v) => Some(super::image::reference(&Args {
            free: None,
            map: [("name".to_string(), v.clone())].into_iter().collect(),
        })?),
        None => None,
    };
    let (current, local_image, image_labels) = match (&image_arg, state.as_str()) {
        (Some(image), s) if s != "absent" => super::inspect_container_and_image(ctx, &name, image).await?,
        _ => (inspect(ctx, "container", &name).await?, None, Json::Null),
    };
    if state == "absent" {
        let Some(cur) = current else {
            return Ok(Plan::Unchanged(base));
        };
        let mut preview = base;
        preview.changed = true;
        preview.diffs.push(FileDiff {
            path: format!("container {name}"),
            before: state_line(&cur),
            after: "absent\n".into(),
            change: Change::Remove,
        });
        return Ok(Plan::Change {
            preview,
            action: apply_action(simple(name, Op::Remove, None, false)),
        });
    }
    // `state: stopped` with only a name stops the container as it is: there is no wanted
    // configuration to compare it with (a deploy retiring the old colour says just this).
    if state == "stopped"
        && image_arg.is_none()
        && let Some(cur) = &current
    {
        if !cur["State"]["Running"].as_bool().unwrap_or(false) {
            return Ok(Plan::Unchanged(base.with("state", "stopped")));
        }
        let mut preview = base;
        preview.changed = true;
        preview.diffs.push(FileDiff {
            path: format!("container {name}"),
            before: state_line(cur),
            after: "stopped\n".into(),
            change: Change::Stop,
        });
        return Ok(Plan::Change {
            preview,
            action: apply_action(simple(
                name,
                Op::Stop,
                args.str("stop_timeout")?,
                args.bool("force_kill", false)?,
            )),
        });
    }
    let (image, local_image) = match image_arg {
        Some(i) => (i, local_image),
        None => match &current {
            // Stopping an existing container needs no image.
            Some(cur) if state == "stopped" => (
                cur["Config"]["Image"].as_str().unwrap_or("").to_string(),
                cur["Image"].as_str().map(str::to_string),
            ),
            // Nothing to stop: a deploy's clean-up after a failed start says `stopped` for
            // hosts where the container was never created.
            None if state == "stopped" => return Ok(Plan::Unchanged(base.with("state", "absent"))),
            _ => return Err("`image` is required to create a container".to_string().into()),
        },
    };
    let detach = args.bool("detach", true)?;
    let pull = args.bool("pull", false)?;
    let resolved = super::resolve_known(ctx, &image, local_image, pull).await?;
    let image_id = resolved.id.clone().unwrap_or_default();

    // The effective configuration, canonical (sorted keys), with no secret in it.
    let env = map(args.get("env"), "env")?;
    let env_file_text = match args.str("env_file")? {
        None => String::new(),
        Some(f) => {
            let path = ctx
                .find_source(&f, crate::source::SourceDir::Files)
                .ok_or_else(|| format!("env file `{f}` not found"))?;
            let bytes = ctx.sources.read_controller_file(&path)?;
            String::from_utf8(bytes).map_err(|_| format!("`{}` is not UTF-8 text", path.display()))?
        }
    };
    let env_content = env_file_content(&env, &env_file_text)?;
    let env_hashes: BTreeMap<String, String> = String::from_utf8_lossy(&env_content)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), short_hash(v.as_bytes())))
        })
        .collect();
    let command = match args.get("command") {
        None => None,
        Some(v) if v.kind() == ValueKind::Seq => Some(strings(Some(v), "command")?),
        Some(v) => Some(
            crate::shell::split(&value_to_string(v)).ok_or_else(|| "unterminated quote in `command`".to_string())?,
        ),
    };
    let mut ports = strings(args.get("ports"), "ports")?;
    ports.sort();
    let mut volumes = strings(args.get("volumes"), "volumes")?;
    volumes.sort();
    let networks: Vec<String> = match args.get("networks") {
        None => Vec::new(),
        Some(v) if v.kind() == ValueKind::Seq => v
            .try_iter()
            .map_err(|e| e.to_string())?
            .map(|n| {
                if n.kind() == ValueKind::Map {
                    n.get_attr("name").map(|x| value_to_string(&x)).unwrap_or_default()
                } else {
                    value_to_string(&n)
                }
            })
            .collect(),
        Some(_) => return Err("`networks` must be a list".to_string().into()),
    };
    let labels = map(args.get("labels"), "labels")?;
    let hashed_labels = config_labels(&labels);
    let log_options = map(args.get("log_options"), "log_options")?;
    let healthcheck = match args.get("healthcheck") {
        None => Json::Null,
        Some(h) if h.kind() == ValueKind::Map => serde_json::to_value(h).map_err(|e| e.to_string())?,
        Some(_) => return Err("`healthcheck` must be a mapping".to_string().into()),
    };
    let config = json!({
        "image": image,
        "image_id": image_id,
        "command": command,
        "env": env_hashes,
        "ports": ports,
        "volumes": volumes,
        "networks": networks,
        "network_mode": args.str("network_mode")?,
        "labels": hashed_labels,
        "restart_policy": args.str("restart_policy")?,
        "healthcheck": healthcheck,
        "stop_signal": args.str("stop_signal")?,
        "stop_timeout": args.str("stop_timeout")?,
        "log_driver": args.str("log_driver")?,
        "log_options": log_options,
    });
    let (config, extra_run) = with_extras(config, args)?;
    let config_text = serde_json::to_string(&config).map_err(|e| e.to_string())?;
    let hash = config_hash(&config_text);

    // docker run/create arguments.
    let mut run: Vec<String> = vec![
        "--name".into(),
        name.clone(),
        "--label".into(),
        format!("{HASH_LABEL}={hash}"),
    ];
    run.extend(["--label".into(), format!("{CONFIG_LABEL}={config_text}")]);
    for (k, v) in labels.iter().filter(|(k, _)| *k != HASH_LABEL && *k != CONFIG_LABEL) {
        run.extend(["--label".into(), format!("{k}={v}")]);
    }
    for p in &ports {
        run.extend(["--publish".into(), p.clone()]);
    }
    for v in &volumes {
        run.extend(["--volume".into(), v.clone()]);
    }
    if let Some(m) = args.str("network_mode")? {
        run.extend(["--network".into(), m]);
    } else if let Some(first) = networks.first() {
        run.extend(["--network".into(), first.clone()]);
    }
    if let Some(r) = args.str("restart_policy")? {
        run.extend(["--restart".into(), r]);
    }
    if let Some(h) = args.get("healthcheck") {
        let test = h.get_attr("test").ok().filter(|t| !t.is_undefined());
        if let Some(t) = test {
            let cmd = if t.kind() == ValueKind::Seq {
                let words = strings(Some(&t), "healthcheck.test")?;
                match words.first().map(String::as_str) {
                    Some("CMD-SHELL") => words[1..].join(" "),
                    Some("CMD") => crate::shell::join(&words[1..]),
                    _ => crate::shell::join(&words),
                }
            } else {
                value_to_string(&t)
            };
            run.extend(["--health-cmd".into(), cmd]);
        }
        for (k, flag) in [
            ("interval", "--health-interval"),
            ("timeout", "--health-timeout"),
            ("retries", "--health-retries"),
            ("start_period", "--health-start-period"),
        ] {
            if let Ok(v) = h.get_attr(k)
                && !v.is_undefined()
            {
                run.extend([flag.into(), value_to_string(&v)]);
            }
        }
    }
    run.extend(extra_run);
    if let Some(s) = args.str("stop_signal")? {
        run.extend(["--stop-signal".into(), s]);
    }
    if let Some(t) = args.str("stop_timeout")? {
        run.extend(["--stop-timeout".into(), t]);
    }
    if let Some(d) = args.str("log_driver")? {
        run.extend(["--log-driver".into(), d]);
    }
    for (k, v) in &log_options {
        run.extend(["--log-opt".into(), format!("{k}={v}")]);
    }
    let env_file = (!env_content.is_empty()).then_some(env_content);
    let health = match args.get("wait_healthy") {
        None => None,
        Some(v) if v.kind() == ValueKind::Bool => v.is_true().then_some(Health {
            http: None,
            timeout: Duration::from_secs(60),
        }),
        Some(v) if v.kind() == ValueKind::Map => {
            let http = v
                .get_attr("http")
                .ok()
                .filter(|x| !x.is_undefined())
                .map(|x| value_to_string(&x));
            let timeout = v
                .get_attr("timeout")
                .ok()
                .filter(|x| !x.is_undefined())
                .map(|x| crate::clock::parse_duration(&value_to_string(&x)))
                .transpose()?
                .unwrap_or(Duration::from_secs(60));
            Some(Health { http, timeout })
        }
        Some(_) => {
            return Err(
                "`wait_healthy` is `true` or a mapping like `{ http: /health, timeout: 60s }`"
                    .to_string()
                    .into(),
            );
        }
    };
    let host_port = ports.first().and_then(|p| {
        let parts: Vec<&str> = p.split(':').collect();
        match parts.len() {
            3 => Some(format!(
                "{}:{}",
                if parts[0].is_empty() || parts[0] == "0.0.0.0" {
                    "127.0.0.1"
                } else {
                    parts[0]
                },
                parts[1]
            )),
            2 => Some(format!("127.0.0.1:{}", parts[0])),
            _ => None,
        }
    });
    let mut apply = Apply {
        name: name.clone(),
        image: image.clone(),
        pull: !resolved.local,
        replace: false,
        op: Op::Run,
        run_args: run,
        extra_networks: networks.iter().skip(1).cloned().collect(),
        env_file,
        health,
        stop_timeout: args.str("stop_timeout")?,
        host_port,
        kill: args.bool("force_kill", false)?,
    };
    apply.run_args.push(image.clone());
    if let Some(rest) = config["entrypoint"].as_array() {
        apply
            .run_args
            .extend(rest.iter().skip(1).filter_map(|w| w.as_str().map(str::to_string)));
    }
    if let Some(c) = &command {
        apply.run_args.extend(c.iter().cloned());
    }

    let result = base
        .with("image", image.as_str())
        .with("image_id", image_id.as_str())
        .with("config_hash", hash.as_str());
    if !detach {
        let mut preview = result;
        preview.changed = true;
        preview.msg = Some(format!("would run a one-off container of {image}"));
        apply.op = Op::Once;
        return Ok(Plan::Change {
            preview,
            action: apply_action(apply),
        });
    }
    let recreate = args.bool("recreate", false)?;
    let restart = args.bool("restart", false)?;
    let want_running = state == "started";
    let rules = comparisons(args.get("comparisons"))?;
    let matches = |cur: &Json| {
        let recorded: Json = cur["Config"]["Labels"][CONFIG_LABEL]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Json::Null);
        if !rules.is_empty() {
            return compare(&recorded, &config, &image_labels, &rules);
        }
        cur["Config"]["Labels"][HASH_LABEL].as_str() == Some(hash.as_str())
            || same_but_image_labels(&recorded, &config, &image_labels)
    };
    match current {
        Some(cur) if !recreate && matches(&cur) => {
            let running = cur["State"]["Running"].as_bool().unwrap_or(false);
            let op = match (state.as_str(), running) {
                ("started", false) => Op::Start,
                ("started", true) if restart => Op::Restart,
                ("stopped", true) => Op::Stop,
                _ => {
                    return Ok(Plan::Unchanged(
                        result.with("state", if running { "running" } else { "stopped" }),
                    ));
                }
            };
            apply.op = op;
            let mut preview = result;
            preview.changed = true;
            preview.diffs.push(FileDiff {
                path: format!("container {name}"),
                before: state_line(&cur),
                after: match op {
                    Op::Start => "running\n".into(),
                    Op::Restart => "restarted\n".into(),
                    _ => "stopped\n".into(),
                },
                change: if op == Op::Stop { Change::Stop } else { Change::Start },
            });
            Ok(Plan::Change {
                preview,
                action: apply_action(apply),
            })
        }
        Some(cur) => {
            // A different configuration (or image): the container is replaced.
            apply.replace = true;
            apply.op = if want_running { Op::Run } else { Op::Create };
            let before: Json = cur["Config"]["Labels"][CONFIG_LABEL]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Json::Null);
            let mut preview = result.with("replaced", true);
            preview.changed = true;
            preview.diffs.push(FileDiff {
                path: format!("container {name}"),
                before: fields(&before, &config, true),
                after: fields(&before, &config, false),
                change: Change::Replace,
            });
            Ok(Plan::Change {
                preview,
                action: apply_action(apply),
            })
        }
        None => {
            apply.op = if want_running { Op::Run } else { Op::Create };
            let mut preview = result;
            preview.changed = true;
            preview.diffs.push(FileDiff {
                path: format!("container {name}"),
                before: "absent\n".into(),
                after: fields(&Json::Null, &config, false),
                change: Change::Create,
            });
            Ok(Plan::Change {
                preview,
                action: apply_action(apply),
            })
        }
    }
}

/// How one option of the recorded configuration is compared with the wanted one
/// (`comparisons:`, as community.docker names the modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Strict,
    Ignore,
    /// The container may have more entries (list items, mapping keys) than the task asks.
    AllowMorePresent,
}

/// The options `comparisons: {"*": ...}` sets.
const OPTIONS: &[&str] = &[
    "image",
    "command",
    "env",
    "ports",
    "volumes",
    "networks",
    "network_mode",
    "labels",
    "restart_policy",
    "healthcheck",
    "stop_signal",
    "stop_timeout",
    "log_driver",
    "log_options",
    "entrypoint",
    "user",
    "working_dir",
    "hostname",
    "etc_hosts",
    "memory",
    "cpus",
    "dns_servers",
    "capabilities",
    "cap_drop",
    "devices",
    "ulimits",
    "volumes_from",
    "links",
];

/// The configuration keys an option of `comparisons:` stands for.
fn config_keys(option: &str) -> Option<&'static [&'static str]> {
    Some(match option {
        "image" => &["image", "image_id"],
        "command" => &["command"],
        "env" => &["env"],
        "published_ports" | "ports" => &["ports"],
        "volumes" => &["volumes"],
        "networks" => &["networks"],
        "network_mode" => &["network_mode"],
        "labels" => &["labels"],
        "restart_policy" => &["restart_policy"],
        "healthcheck" => &["healthcheck"],
        "stop_signal" => &["stop_signal"],
        "stop_timeout" => &["stop_timeout"],
        "log_driver" => &["log_driver"],
        "log_options" => &["log_options"],
        "entrypoint" => &["entrypoint"],
        "user" => &["user"],
        "working_dir" => &["working_dir"],
        "hostname" => &["hostname"],
        "etc_hosts" => &["etc_hosts"],
        "memory" => &["memory"],
        "cpus" => &["cpus"],
        "dns_servers" => &["dns_servers"],
        "capabilities" => &["capabilities"],
        "cap_drop" => &["cap_drop"],
        "devices" => &["devices"],
        "ulimits" => &["ulimits"],
        "volumes_from" => &["volumes_from"],
        "links" => &["links"],
        _ => return None,
    })
}

/// `comparisons:` read into a rule per configuration key; `*` sets every key's rule first.
fn comparisons(v: Option<&Value>) -> Result<BTreeMap<&'static str, Rule>, Failure> {
    let given = map(v, "comparisons")?;
    let mut out = BTreeMap::new();
    let rule = |k: &str, r: &str| match r {
        "strict" => Ok(Rule::Strict),
        "ignore" => Ok(Rule::Ignore),
        "allow_more_present" => Ok(Rule::AllowMorePresent),
        other => Err(format!(
            "`comparisons.{k}` is `strict`, `ignore` or `allow_more_present`, got `{other}`"
        )),
    };
    if let Some(r) = given.get("*") {
        let r = rule("*", r)?;
        for o in OPTIONS {
            for k in config_keys(o).unwrap_or(&[]) {
                out.insert(*k, r);
            }
        }
    }
    for (o, r) in given.iter().filter(|(o, _)| *o != "*") {
        let keys = config_keys(o).ok_or_else(|| format!("`comparisons` names an unknown option `{o}`"))?;
        let r = rule(o, r)?;
        for k in keys {
            out.insert(*k, r);
        }
    }
    Ok(out)
}

/// Whether a container whose recorded configuration is `recorded` is the wanted one under the
/// task's comparison rules (image labels left out, as without rules).
fn compare(recorded: &Json, wanted: &Json, image_labels: &Json, rules: &BTreeMap<&str, Rule>) -> bool {
    let (Some(rec), Some(want)) = (recorded.as_object(), wanted.as_object()) else {
        return false;
    };
    let keys: std::collections::BTreeSet<&String> = rec.keys().chain(want.keys()).collect();
    keys.into_iter().all(|k| {
        let (r, w) = (rec.get(k).unwrap_or(&Json::Null), want.get(k).unwrap_or(&Json::Null));
        let (r, w) = if k == "labels" {
            let strip = |l: &Json| -> Json {
                let mut l = l.clone();
                if let Some(o) = l.as_object_mut() {
                    o.retain(|key, val| image_labels.get(key) != Some(&*val));
                }
                l
            };
            (strip(r), strip(w))
        } else {
            (r.clone(), w.clone())
        };
        match rules.get(k.as_str()).copied().unwrap_or(Rule::Strict) {
            Rule::Ignore => true,
            Rule::Strict => r == w,
            Rule::AllowMorePresent => match (&r, &w) {
                (Json::Array(ra), Json::Array(wa)) => wa.iter().all(|x| ra.contains(x)),
                (Json::Object(ro), Json::Object(wo)) => wo.iter().all(|(key, val)| ro.get(key) == Some(val)),
                _ => r == w,
            },
        }
    })
}

/// The options a deploy adds now and then (`user`, `etc_hosts`, `memory`...): each is in the
/// recorded configuration only when the task sets it, so a container made before roll knew the
/// option keeps its hash; a changed value replaces the container as any other does.
fn with_extras(mut config: Json, args: &Args) -> Result<(Json, Vec<String>), Failure> {
    let mut run = Vec::new();
    let obj = config.as_object_mut().ok_or("config is not a mapping")?;
    if let Some(v) = args.get("entrypoint") {
        // A list of words; a string is read as Ansible reads a `list` option: split at commas.
        let words = if v.kind() == ValueKind::Seq {
            strings(Some(v), "entrypoint")?
        } else {
            value_to_string(v).split(',').map(|w| w.trim().to_string()).collect()
        };
        // docker takes the program; the rest of the entrypoint goes before the command.
        obj.insert("entrypoint".into(), json!(words));
        run.extend(["--entrypoint".into(), words.first().cloned().unwrap_or_default()]);
    }
    for (k, flag) in [
        ("user", "--user"),
        ("working_dir", "--workdir"),
        ("hostname", "--hostname"),
        ("memory", "--memory"),
        ("cpus", "--cpus"),
    ] {
        if let Some(v) = args.str(k)? {
            obj.insert(k.into(), json!(v));
            run.extend([flag.into(), v]);
        }
    }
    if args.get("etc_hosts").is_some() {
        let hosts = map(args.get("etc_hosts"), "etc_hosts")?;
        for (h, ip) in &hosts {
            run.extend(["--add-host".into(), format!("{h}:{ip}")]);
        }
        obj.insert("etc_hosts".into(), json!(hosts));
    }
    for (k, flag) in [
        ("dns_servers", "--dns"),
        ("capabilities", "--cap-add"),
        ("cap_drop", "--cap-drop"),
        ("devices", "--device"),
        ("volumes_from", "--volumes-from"),
        ("links", "--link"),
    ] {
        if args.get(k).is_some() {
            let mut list = strings(args.get(k), k)?;
            if k != "dns_servers" {
                // Order does not matter to docker but for DNS servers.
                list.sort();
            }
            for x in &list {
                run.extend([flag.into(), x.clone()]);
            }
            obj.insert(k.into(), json!(list));
        }
    }
    if args.get("ulimits").is_some() {
        let mut list = strings(args.get("ulimits"), "ulimits")?;
        list.sort();
        for u in &list {
            // community.docker writes `nofile:1024:2048`; docker takes `nofile=1024:2048`.
            let (name, limits) = u
                .split_once(':')
                .ok_or_else(|| format!("`ulimits` entries are `NAME:SOFT[:HARD]`, got `{u}`"))?;
            run.extend(["--ulimit".into(), format!("{name}={limits}")]);
        }
        obj.insert("ulimits".into(), json!(list));
    }
    Ok((config, run))
}

fn apply_action(a: Apply) -> Box<dyn crate::modules::Apply> {
    Box::new(Action::Container(Box::new(a)))
}

fn simple(name: String, op: Op, stop_timeout: Option<String>, kill: bool) -> Apply {
    Apply {
        name,
        image: String::new(),
        pull: false,
        replace: false,
        op,
        run_args: Vec::new(),
        extra_networks: Vec::new(),
        env_file: None,
        health: None,
        stop_timeout,
        host_port: None,
        kill,
    }
}

fn state_line(cur: &Json) -> String {
    format!("{}\n", cur["State"]["Status"].as_str().unwrap_or("unknown"))
}

/// `field: value` lines of the fields that differ (all fields when `before` is null).
fn fields(before: &Json, after: &Json, old: bool) -> String {
    let mut out = String::new();
    let Some(a) = after.as_object() else { return out };
    for (k, v) in a {
        let b = &before[k];
        if !before.is_null() && b == v {
            continue;
        }
        let shown = if old { b } else { v };
        if old && before.is_null() {
            continue;
        }
        // A new container's diff lists only what is set.
        if before.is_null()
            && (v.is_null()
                || v.as_object().is_some_and(|o| o.is_empty())
                || v.as_array().is_some_and(|a| a.is_empty()))
        {
            continue;
        }
        if k == "env" {
            // Only the names of the variables whose values differ, never values.
            let names: Vec<String> = match (b.as_object(), v.as_object()) {
                (Some(bo), Some(vo)) => {
                    let mut n: Vec<String> = vo
                        .keys()
                        .chain(bo.keys())
                        .filter(|k| bo.get(*k) != vo.get(*k))
                        .cloned()
                        .collect();
                    n.sort();
                    n.dedup();
                    n
                }
                _ => shown
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default(),
            };
            out.push_str(&format!(
                "env: {} ({})\n",
                if old { "old values" } else { "new values" },
                names.join(", ")
            ));
            continue;
        }
        out.push_str(&format!("{k}: {shown}\n"));
    }
    out
}

/// Where the env file of a container lives on the host: `$HOME/.roll/env/NAME.env`.
async fn env_path(ctx: &Ctx<'_>, name: &str) -> Result<String, Failure> {
    let mut cmd = crate::connection::Command::new(
        "d=\"$HOME/.roll/env\"; mkdir -p \"$d\" && chmod 700 \"$HOME/.roll\" \"$d\" && printf %s \"$d\"",
    );
    cmd.become_user = ctx.become_user.clone();
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(format!("cannot create the env file directory: {}", out.stderr_text().trim()).into());
    }
    Ok(format!("{}/{name}.env", out.stdout_text().trim()))
}

pub async fn apply(a: Apply, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let result = ModuleResult::changed().with("name", a.name.as_str());
    match a.op {
        Op::Remove => {
            docker(ctx, &["rm", "--force", &a.name], None).await?;
            return Ok(result.with("state", "absent"));
        }
        Op::Start => {
            docker(ctx, &["start", &a.name], None).await?;
            wait(&a, ctx).await?;
            return Ok(result.with("state", "running"));
        }
        Op::Stop if a.kill => {
            docker(ctx, &["kill", &a.name], None).await?;
            return Ok(result.with("state", "stopped"));
        }
        Op::Stop | Op::Restart => {
            let mut args = vec![if a.op == Op::Stop { "stop" } else { "restart" }];
            if let Some(t) = &a.stop_timeout {
                args.extend(["--time", t]);
            }
            args.push(&a.name);
            docker(ctx, &args, None).await?;
            if a.op == Op::Stop {
                return Ok(result.with("state", "stopped"));
            }
            wait(&a, ctx).await?;
            return Ok(result.with("state", "running"));
        }
        _ => {}
    }
    let mut run_args = a.run_args.clone();
    if let Some(content) = &a.env_file {
        let path = env_path(ctx, &a.name).await?;
        let w = Write {
            dest: path.clone(),
            content: content.clone(),
            attrs: FileAttrs {
                mode: Some(0o600),
                ..FileAttrs::default()
            },
            backup: false,
            validate: None,
            parents: false,
        };
        crate::modules::files::apply_write(w, ctx).await?;
        run_args.splice(0..0, ["--env-file".to_string(), path]);
    }
    if a.pull {
        super::pull(ctx, &a.image).await?;
    }
    if a.replace {
        docker(ctx, &["rm", "--force", &a.name], None).await?;
    }
    if a.op == Op::Once {
        let mut words: Vec<&str> = vec!["run", "--rm"];
        // A one-off has no name: `--name` and its labels would clash with a service container.
        let skip_name: Vec<String> = run_args.clone();
        let mut i = 0;
        let mut rest: Vec<&str> = Vec::new();
        while i < skip_name.len() {
            if skip_name[i] == "--name" {
                i += 2;
                continue;
            }
            rest.push(&skip_name[i]);
            i += 1;
        }
        words.extend(rest);
        let out = docker_raw(ctx, &words, None).await?;
        let mut r = ModuleResult::changed().with("image", a.image.as_str());
        r.rc = Some(out.rc as i64);
        r.stdout = Some(out.stdout_text().trim_end().to_string());
        r.stderr = Some(out.stderr_text().trim_end().to_string());
        if out.rc != 0 {
            r.failed = true;
            r.msg = Some(format!("the one-off container exited with {}", out.rc));
        }
        return Ok(r);
    }
    let sub = if a.op == Op::Run { "run" } else { "create" };
    let mut words: Vec<&str> = vec![sub];
    if a.op == Op::Run {
        words.push("--detach");
    }
    words.extend(run_args.iter().map(String::as_str));
    let id = docker(ctx, &words, None).await?.trim().to_string();
    for n in &a.extra_networks {
        docker(ctx, &["network", "connect", n, &a.name], None).await?;
    }
    if a.op == Op::Run {
        wait(&a, ctx).await?;
    }
    Ok(result
        .with("id", id)
        .with("state", if a.op == Op::Run { "running" } else { "created" }))
}

/// Wait until the container is healthy: its HEALTHCHECK, or an HTTP check of its published
/// port from the host. A failure shows the container's last log lines and health log.
async fn wait(a: &Apply, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let Some(h) = &a.health else { return Ok(()) };
    let start = Instant::now();
    let mut last;
    let mut waiting = None;
    loop {
        let cur = inspect(ctx, "container", &a.name).await?.unwrap_or(Json::Null);
        let state = &cur["State"];
        if !state["Running"].as_bool().unwrap_or(false) {
            last = format!(
                "the container is {} (exit code {})",
                state["Status"].as_str().unwrap_or("gone"),
                state["ExitCode"]
            );
            break;
        }
        match (&h.http, &a.host_port) {
            (Some(path), Some(hp)) => {
                let url = format!("http://{hp}{path}");
                let cmd = crate::connection::Command::new(format!(
                    "curl -fsS -o /dev/null --max-time 2 {}",
                    crate::shell::quote(&url)
                ));
                let out = ctx.conn.exec(&cmd).await?;
                if out.rc == 0 {
                    return Ok(());
                }
                last = format!("GET {url}: {}", out.stderr_text().trim());
            }
            (Some(_), None) => {
                return Err("`wait_healthy.http` needs a published port in `ports`"
                    .to_string()
                    .into());
            }
            (None, _) => match state["Health"]["Status"].as_str() {
                Some("healthy") => return Ok(()),
                Some(s) => last = format!("health status {s}"),
                None => {
                    return Err(
                        "`wait_healthy` without `http` needs a HEALTHCHECK in the image or `healthcheck:`"
                            .to_string()
                            .into(),
                    );
                }
            },
        }
        if start.elapsed() >= h.timeout {
            break;
        }
        // Not healthy at the first look: say what the run waits for.
        waiting
            .get_or_insert_with(|| {
                ctx.wait(
                    crate::modules::progress::WaitKind::Health,
                    format!("container `{}` to become healthy", a.name),
                    Some(h.timeout),
                )
            })
            .tick();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(waiting);
    let logs = docker_raw(ctx, &["logs", "--tail", "20", &a.name], None)
        .await
        .map(|o| format!("{}{}", o.stdout_text(), o.stderr_text()))
        .unwrap_or_default();
    let cur = inspect(ctx, "container", &a.name)
        .await
        .ok()
        .flatten()
        .unwrap_or(Json::Null);
    let health_log: Vec<String> = cur["State"]["Health"]["Log"]
        .as_array()
        .map(|l| {
            l.iter()
                .rev()
                .take(3)
                .rev()
                .map(|e| format!("exit {}: {}", e["ExitCode"], e["Output"].as_str().unwrap_or("").trim()))
                .collect()
        })
        .unwrap_or_default();
    let mut msg = format!(
        "container `{}` did not become healthy within {} s: {last}",
        a.name,
        h.timeout.as_secs()
    );
    msg.push_str(&format!("\nlast log lines:\n{}", tail(logs.trim_end(), 20)));
    if !health_log.is_empty() {
        msg.push_str(&format!("\nhealth log:\n{}", health_log.join("\n")));
    }
    Err(Failure::Failed(Box::new(
        ModuleResult::failed(msg).with("name", a.name.as_str()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_labels_and_roll_config_labels_are_not_configuration() {
        let given: BTreeMap<String, String> = [("roll.release", "2"), (HASH_LABEL, "abc"), (CONFIG_LABEL, "{}")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(config_labels(&given).keys().collect::<Vec<_>>(), ["roll.release"]);
        let image = json!({ "release": "2", "org.opencontainers.image.title": "roll-demo" });
        let recorded = json!({ "image": "demo:2", "labels": { "roll.release": "2" } });
        // The container's own labels passed back, image labels included: the same container.
        let passed_back = json!({ "image": "demo:2", "labels": { "roll.release": "2", "release": "2" } });
        assert!(same_but_image_labels(&recorded, &passed_back, &image));
        // A label the image has with another value is the task's own; another image is another.
        let other_value = json!({ "image": "demo:2", "labels": { "roll.release": "2", "release": "3" } });
        assert!(!same_but_image_labels(&recorded, &other_value, &image));
        let other_image = json!({ "image": "demo:3", "labels": { "roll.release": "2" } });
        assert!(!same_but_image_labels(&recorded, &other_image, &image));
    }

    #[test]
    fn comparisons_ignore_or_allow_more_of_an_option() {
        let recorded =
            json!({"image": "web:1", "image_id": "sha256:a", "dns_servers": ["1.1.1.1", "9.9.9.9"], "memory": "64m"});
        let wanted = json!({"image": "web:2", "image_id": "sha256:b", "dns_servers": ["9.9.9.9"], "memory": "64m"});
        let rules = |pairs: &[(&'static str, Rule)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        assert!(!compare(
            &recorded,
            &wanted,
            &Json::Null,
            &rules(&[("memory", Rule::Strict)])
        ));
        let lenient = rules(&[
            ("image", Rule::Ignore),
            ("image_id", Rule::Ignore),
            ("dns_servers", Rule::AllowMorePresent),
        ]);
        assert!(compare(&recorded, &wanted, &Json::Null, &lenient));
        // More wanted than present is a difference, also when more present is allowed.
        assert!(!compare(&wanted, &recorded, &Json::Null, &lenient));
        let cmp = crate::values::from_serde(&json!({"*": "ignore", "memory": "strict"}));
        let read = comparisons(Some(&cmp)).unwrap();
        assert_eq!(read.get("memory"), Some(&Rule::Strict));
        assert_eq!(read.get("image_id"), Some(&Rule::Ignore));
        let bad = crate::values::from_serde(&json!({"memroy": "ignore"}));
        assert!(comparisons(Some(&bad)).is_err());
    }

    #[test]
    fn env_files_carry_values_and_reject_newlines() {
        let env: BTreeMap<String, String> = [("B".to_string(), "2".to_string())].into();
        assert_eq!(env_file_content(&env, "# c\nA=1\n\n").unwrap(), b"A=1\nB=2\n");
        let bad: BTreeMap<String, String> = [("X".to_string(), "a\nb".to_string())].into();
        assert!(env_file_content(&bad, "").is_err());
    }

    #[test]
    fn diffs_name_changed_env_keys_without_values() {
        let before = json!({"image": "web:1", "env": {"A": "h1", "SECRET": "h2"}});
        let after = json!({"image": "web:2", "env": {"A": "h1", "SECRET": "h3"}});
        assert_eq!(
            fields(&before, &after, true),
            "image: \"web:1\"\nenv: old values (SECRET)\n"
        );
        assert_eq!(
            fields(&before, &after, false),
            "image: \"web:2\"\nenv: new values (SECRET)\n"
        );
    }
}

//! `roll.app_claim`: what an app holds on a proxy and on its app servers, recorded beside the
//! switch state (`DIR/claims/APP.json`, apart from the states `roll status` reads: each site's `listen` + `server_name`, each backend's host
//! port per colour) and checked against every other app's record there before anything changes.
//! Two apps claiming the same `listen` + `server_name` (nginx would serve one and ignore the
//! other's site with only a warning) or the same host port on an app server (the second container
//! cannot start, or answers for the first) are refused, in a dry run as in a run, naming both
//! apps and the claim. It also refuses a `--limit` that cuts an app off from its proxies or the
//! reverse, since the switch would then point a proxy at containers the run did not start.

use super::nginx_switch::{Backend, limit_refusal, parse_backends};
use super::spec::{ModuleSpec, ROLL, p, req};
use super::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use crate::values::value_to_string;
use minijinja::Value;
use minijinja::value::ValueKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `roll.app_claim`: record an app's sites and host ports on the proxy, refusing another app's.
pub struct AppClaim;

static APP_CLAIM: ModuleSpec = ModuleSpec {
    params: &[
        req("app"),
        p("dir"),
        req("listen"),
        p("server_name"),
        p("backends"),
        p("ports"),
    ],
    ..ModuleSpec::new("app_claim", ROLL)
};

impl Module for AppClaim {
    fn spec(&self) -> &'static ModuleSpec {
        &APP_CLAIM
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// One app's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub app: String,
    pub sites: Vec<Site>,
    #[serde(default)]
    pub ports: Vec<HostPort>,
}

/// A `listen` + `server_name` pair, as nginx compares them (see [`listen_key`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    pub listen: String,
    pub server_name: String,
}

/// A host port an app's container publishes on an app server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    pub host: String,
    pub address: String,
    pub port: u16,
    pub colour: String,
}

/// `listen` as nginx groups servers by it: the address and port (its parameters such as
/// `default_server` do not make another socket), a bare port being every address.
pub fn listen_key(listen: &str) -> String {
    let first = listen.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
        return format!("*:{first}");
    }
    match first.strip_prefix("0.0.0.0:") {
        Some(port) => format!("*:{port}"),
        None => first,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(v) if v.kind() == ValueKind::Seq => v
            .try_iter()
            .map(|it| it.map(|x| value_to_string(&x)).collect())
            .unwrap_or_default(),
        Some(v) => vec![value_to_string(v)],
    }
}

/// What `args` claim: every `listen` with every `server_name` (names separated by spaces, as in
/// nginx; none is nginx's `""`), and every backend's port per colour.
fn claims_of(app: &str, args: &Args, backends: &[Backend]) -> Result<Claims, String> {
    let listens: Vec<String> = strings(args.get("listen"))
        .iter()
        .map(|l| listen_key(l))
        .filter(|l| !l.is_empty())
        .collect();
    if listens.is_empty() {
        return Err("`listen` is the address and port of the app's site (`80`, `10.0.0.5:8080`), or a list".into());
    }
    let mut names: Vec<String> = strings(args.get("server_name"))
        .iter()
        .flat_map(|n| n.split_whitespace().map(str::to_ascii_lowercase).collect::<Vec<_>>())
        .collect();
    if names.is_empty() {
        names.push(String::new());
    }
    let mut sites = Vec::new();
    for listen in &listens {
        for name in &names {
            sites.push(Site {
                listen: listen.clone(),
                server_name: name.clone(),
            });
        }
    }
    sites.sort();
    sites.dedup();
    let mut ports = Vec::new();
    for b in backends {
        for (colour, port) in &b.ports {
            let port =
                crate::values::parse_port(port).map_err(|e| format!("backend `{}`'s `{colour}` port: {e}", b.name))?;
            ports.push(HostPort {
                host: b.name.clone(),
                address: b.address.clone(),
                port,
                colour: colour.clone(),
            });
        }
    }
    ports.sort();
    ports.dedup();
    Ok(Claims {
        app: app.to_string(),
        sites,
        ports,
    })
}

/// The first claim of `mine` that `other` holds too, said with both apps' names.
pub fn conflict(mine: &Claims, other: &Claims) -> Option<String> {
    if mine.app == other.app {
        return None;
    }
    let shown = |name: &str| {
        if name.is_empty() {
            "\"\" (none)".to_string()
        } else {
            format!("`{name}`")
        }
    };
    for s in &mine.sites {
        if other.sites.contains(s) {
            return Some(format!(
                "app `{}` claims server_name {} on `listen {}`, which app `{}` already serves: nginx would \
                 answer both apps' requests with one site and ignore the other",
                mine.app,
                shown(&s.server_name),
                s.listen,
                other.app
            ));
        }
    }
    for p in &mine.ports {
        if let Some(o) = other.ports.iter().find(|o| o.address == p.address && o.port == p.port) {
            return Some(format!(
                "app `{}` claims host port {} on {} ({}) for its {} colour, which app `{}` already holds \
                 for its {} colour",
                mine.app, p.port, p.host, p.address, p.colour, other.app, o.colour
            ));
        }
    }
    None
}

async fn sh(ctx: &Ctx<'_>, script: String) -> Result<crate::connection::Output, Failure> {
    let mut c = Command::new(script);
    c.become_user = ctx.become_user.clone();
    c.timeout = Some(Duration::from_secs(60));
    Ok(ctx.conn.exec(&c).await?)
}

/// Every app's record in `dir`, with its file.
async fn read_all(ctx: &Ctx<'_>, dir: &str) -> Result<Vec<(String, Claims)>, Failure> {
    let script = format!(
        "for f in {}/claims/*.json; do [ -f \"$f\" ] || continue; printf '\\n--- %s\\n' \"$f\"; cat \"$f\"; done",
        quote(dir)
    );
    let out = sh(ctx, script).await?;
    if out.rc != 0 {
        return Err(format!("cannot read the claims in `{dir}`: {}", out.stderr_text().trim()).into());
    }
    let text = out.stdout_text();
    let mut all = Vec::new();
    for part in text.split("\n--- ").skip(1) {
        let (file, json) = part.split_once('\n').unwrap_or((part, ""));
        let claims: Claims = serde_json::from_str(json)
            .map_err(|e| format!("claims file `{file}` is not valid ({e}); remove it if its app is gone"))?;
        all.push((file.to_string(), claims));
    }
    Ok(all)
}

fn first_conflict(mine: &Claims, all: &[(String, Claims)]) -> Option<String> {
    all.iter()
        .find_map(|(file, other)| conflict(mine, other).map(|c| format!("{c} (its claims: `{file}`)")))
}

const HINT: &str = "give each app its own `server_name` (`proxy_server_name`) or `listen`, and its own host ports";

struct Record {
    dir: String,
    file: String,
    claims: Claims,
    previous: Option<String>,
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let app = args.req_str("app")?;
    let dir = args.str("dir")?.unwrap_or_else(|| "/var/lib/roll".into());
    let dir = dir.trim_end_matches('/').to_string();
    let backends = match args.get("backends") {
        Some(_) => parse_backends(args.get("backends"), args.get("ports"), ctx.scope)?,
        None => Vec::new(),
    };
    if let Some(why) = limit_refusal(&app, &backends, ctx) {
        return Err(Failure::refused(why));
    }
    let claims = claims_of(&app, args, &backends)?;
    let all = read_all(ctx, &dir).await?;
    if let Some(c) = first_conflict(&claims, &all) {
        return Err(Failure::refused(format!("{c}; nothing was changed: {HINT}")));
    }
    let file = format!("{dir}/claims/{app}.json");
    let after = serde_json::to_string_pretty(&claims).map_err(|e| e.to_string())? + "\n";
    let previous = ctx.conn.read_file(&file, ctx.become_user.as_deref()).await?;
    let previous = previous.map(|b| String::from_utf8_lossy(&b).into_owned());
    let result = ModuleResult::ok()
        .with("app", app.as_str())
        .with("path", file.as_str())
        .with("sites", crate::values::from_serde(&claims.sites))
        .with("ports", claims.ports.len());
    let same = previous
        .as_deref()
        .and_then(|p| serde_json::from_str::<Claims>(p).ok())
        .is_some_and(|p| p == claims);
    if same {
        return Ok(Plan::Unchanged(result));
    }
    let mut preview = result;
    preview.changed = true;
    preview.diffs.push(FileDiff {
        path: file.clone(),
        before: previous.clone().unwrap_or_default(),
        after,
        change: if previous.is_some() {
            Change::Update
        } else {
            Change::Create
        },
    });
    Ok(Plan::Change {
        preview,
        action: Box::new(Record {
            dir,
            file,
            claims,
            previous,
        }),
    })
}

/// Write the record, then look again: of two apps claiming the same thing at once, each sees
/// the other's record and takes its own back, so neither wins by a race.
async fn record(r: Record, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let mk = sh(
        ctx,
        format!(
            "mkdir -p {c} && chmod 750 {d} {c}",
            d = quote(&r.dir),
            c = quote(&format!("{}/claims", r.dir))
        ),
    )
    .await?;
    if mk.rc != 0 {
        return Err(format!("cannot create `{}`: {}", r.dir, mk.stderr_text().trim()).into());
    }
    let json = serde_json::to_string_pretty(&r.claims).map_err(|e| e.to_string())? + "\n";
    write(ctx, &r.file, json).await?;
    let all = read_all(ctx, &r.dir).await?;
    if let Some(c) = first_conflict(&r.claims, &all) {
        match &r.previous {
            Some(p) => write(ctx, &r.file, p.clone()).await?,
            None => {
                sh(ctx, format!("rm -f {}", quote(&r.file))).await?;
            }
        }
        return Err(Failure::refused(format!(
            "{c}, claimed at the same time; this app's claims are as they were: {HINT}"
        )));
    }
    Ok(ModuleResult::changed())
}

async fn write(ctx: &Ctx<'_>, dest: &str, content: String) -> Result<(), Failure> {
    super::files::write_record(ctx, dest, content.into_bytes()).await
}

apply_by!(Record, record);

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(app: &str, sites: &[(&str, &str)], ports: &[(&str, u16)]) -> Claims {
        Claims {
            app: app.into(),
            sites: sites
                .iter()
                .map(|(l, n)| Site {
                    listen: listen_key(l),
                    server_name: n.to_string(),
                })
                .collect(),
            ports: ports
                .iter()
                .map(|(a, p)| HostPort {
                    host: "app1".into(),
                    address: a.to_string(),
                    port: *p,
                    colour: "blue".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn listen_is_compared_as_nginx_groups_servers() {
        assert_eq!(listen_key("80"), "*:80");
        assert_eq!(listen_key("0.0.0.0:80 default_server"), "*:80");
        assert_eq!(listen_key("10.0.0.5:8080"), "10.0.0.5:8080");
        assert_eq!(listen_key("[::]:80 ipv6only=on"), "[::]:80");
    }

    #[test]
    fn the_same_site_or_host_port_of_two_apps_conflicts_naming_both() {
        let web = claims("web", &[("8080", "web")], &[("127.0.0.1", 8081)]);
        let api = claims("api", &[("0.0.0.0:8080", "api")], &[("127.0.0.1", 8091)]);
        assert_eq!(conflict(&api, &web), None);
        let shop = claims("shop", &[("0.0.0.0:8080 default_server", "web")], &[]);
        let c = conflict(&shop, &web).unwrap();
        assert!(
            c.contains("app `shop`") && c.contains("`web`") && c.contains("listen *:8080"),
            "{c}"
        );
        let port = claims("shop", &[("8080", "shop")], &[("127.0.0.1", 8081)]);
        let c = conflict(&port, &web).unwrap();
        assert!(c.contains("host port 8081") && c.contains("app `web`"), "{c}");
        // An app's own record never conflicts with itself.
        assert_eq!(conflict(&web, &web.clone()), None);
    }
}

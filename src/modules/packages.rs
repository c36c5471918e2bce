//! `apt` (packages through apt-get, deciding from dpkg's status and apt's candidates as
//! ansible-core 2.19's apt module decides), `package` (the host's manager: apt here), and
//! `yum`/`dnf`, which fail clearly on a host that does not have them.

use super::spec::{BUILTIN, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::Value;
use minijinja::value::ValueKind;

/// `apt`: Debian packages.
pub struct Apt;

static APT: ModuleSpec = ModuleSpec {
    params: &[
        p("name").aliases(&["package", "pkg"]),
        p("state").choices(&["absent", "present", "latest"]),
        p("update_cache").aliases(&["update-cache"]),
        p("cache_valid_time"),
        p("install_recommends").aliases(&["install-recommends"]),
        p("purge"),
        p("autoremove"),
        p("force"),
    ],
    ..ModuleSpec::new("apt", BUILTIN)
};

impl Module for Apt {
    fn spec(&self) -> &'static ModuleSpec {
        &APT
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_apt(args, ctx))
    }
}

/// `package`: the host's package manager's module.
pub struct Package;

static PACKAGE: ModuleSpec = ModuleSpec {
    params: &[
        p("name").aliases(&["pkg"]),
        p("state").choices(&["absent", "present", "latest"]),
        p("use"),
    ],
    ..ModuleSpec::new("package", BUILTIN)
};

impl Module for Package {
    fn spec(&self) -> &'static ModuleSpec {
        &PACKAGE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_package(args, ctx))
    }
}

/// `yum` and `dnf`: only where they are; roll does not drive them yet.
pub struct Yum;
/// See [`Yum`].
pub struct Dnf;

const RPM_PARAMS: &[super::spec::Param] = &[
    p("name").aliases(&["pkg"]),
    p("state").choices(&["absent", "present", "installed", "latest", "removed"]),
    p("update_cache").aliases(&["expire-cache"]),
    p("enablerepo"),
    p("disablerepo"),
];

static YUM: ModuleSpec = ModuleSpec {
    params: RPM_PARAMS,
    ..ModuleSpec::new("yum", BUILTIN)
};

static DNF: ModuleSpec = ModuleSpec {
    params: RPM_PARAMS,
    ..ModuleSpec::new("dnf", BUILTIN)
};

impl Module for Yum {
    fn spec(&self) -> &'static ModuleSpec {
        &YUM
    }

    fn check<'a>(&'a self, _args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_rpm("yum", ctx))
    }
}

impl Module for Dnf {
    fn spec(&self) -> &'static ModuleSpec {
        &DNF
    }

    fn check<'a>(&'a self, _args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_rpm("dnf", ctx))
    }
}

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH";
/// What Ansible's apt module runs apt-get with.
const APT_ENV: &str =
    "export DEBIAN_FRONTEND=noninteractive DEBIAN_PRIORITY=critical LANG=C LC_ALL=C LC_MESSAGES=C LC_CTYPE=C";
const DPKG_OPTIONS: &str = "-o \"Dpkg::Options::=--force-confdef\" -o \"Dpkg::Options::=--force-confold\"";

async fn exec(ctx: &Ctx<'_>, script: String) -> Result<crate::connection::Output, Failure> {
    let mut cmd = Command::new(format!("{PATH}\n{APT_ENV}\n{script}"));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    Ok(ctx.conn.exec(&cmd).await?)
}

/// The host's package managers, in the order Ansible's `pkg_mgr` fact looks for them.
async fn managers(ctx: &Ctx<'_>) -> Result<Vec<String>, Failure> {
    let out = exec(
        ctx,
        "for m in dnf5 dnf yum apt-get zypper apk pacman; do command -v $m >/dev/null && echo $m; done; true".into(),
    )
    .await?;
    Ok(out.stdout_text().lines().map(str::to_string).collect())
}

async fn check_rpm(module: &str, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let have = managers(ctx).await?;
    let other = have
        .first()
        .map_or("none that roll knows".to_string(), |m| format!("`{m}`"));
    if have.iter().any(|m| m.starts_with(module)) {
        return Err(format!("roll's `{module}` module is not built yet (this host has {module})").into());
    }
    Err(format!("this host has no `{module}`: its package manager is {other}; use `package` or `apt`").into())
}

async fn check_package(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let have = managers(ctx).await?;
    let want = args.str("use")?.filter(|u| u != "auto");
    let apt = match &want {
        Some(u) => u == "apt",
        None => have.first().is_some_and(|m| m == "apt-get"),
    };
    if !apt {
        let m = want.or_else(|| have.first().cloned()).unwrap_or_else(|| "none".into());
        return Err(format!("roll's `package` drives apt only so far; this host's package manager is `{m}`").into());
    }
    let mut a = args.clone();
    a.map.shift_remove("use");
    check_apt(&a, ctx).await
}

#[derive(Debug, Clone)]
struct Params {
    names: Vec<String>,
    state: String,
    update_cache: bool,
    cache_valid_time: i64,
    install_recommends: Option<bool>,
    purge: bool,
    autoremove: bool,
    force: bool,
}

/// dpkg's and apt's view of one package.
#[derive(Debug, Clone)]
struct Status {
    name: String,
    /// apt knows the package (it has a policy entry).
    known: bool,
    installed: Option<String>,
    /// Removed but its configuration files are left.
    has_files: bool,
    candidate: Option<String>,
}

#[derive(Debug)]
struct State {
    /// The cache's mtime (update-success stamp, else the lists directory) and the host's now.
    cache_time: i64,
    now: i64,
    packages: Vec<Status>,
}

async fn read(ctx: &Ctx<'_>, names: &[String]) -> Result<State, Failure> {
    let mut s = String::from(
        "t=$(stat -c %Y /var/lib/apt/periodic/update-success-stamp 2>/dev/null || stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0)\n\
         echo \"T $t $(date +%s)\"\n",
    );
    for n in names {
        let q = quote(n);
        s.push_str(&format!(
            "st=$(dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}' {q} 2>/dev/null)\n\
             pol=$(apt-cache policy {q} 2>/dev/null)\n\
             c=$(printf '%s\\n' \"$pol\" | sed -n 's/^ *Candidate: //p')\n\
             printf 'P %s|%s|%s|%s\\n' {q} \"$([ -n \"$pol\" ] && echo known)\" \"$c\" \"$st\"\n"
        ));
    }
    let out = exec(ctx, s).await?;
    let mut st = State {
        cache_time: 0,
        now: 0,
        packages: Vec::new(),
    };
    for line in out.stdout_text().lines() {
        if let Some(rest) = line.strip_prefix("T ") {
            let mut f = rest.split_whitespace().map(|x| x.parse::<f64>().unwrap_or(0.0) as i64);
            st.cache_time = f.next().unwrap_or(0);
            st.now = f.next().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("P ") {
            let f: Vec<&str> = rest.splitn(5, '|').collect();
            if f.len() < 4 {
                continue;
            }
            let abbrev = f[3].trim();
            let version = f.get(4).copied().unwrap_or("");
            st.packages.push(Status {
                name: f[0].to_string(),
                known: f[1] == "known",
                installed: abbrev.starts_with("ii").then(|| version.to_string()),
                has_files: abbrev.starts_with("rc"),
                candidate: Some(f[2].trim())
                    .filter(|c| !c.is_empty() && *c != "(none)")
                    .map(str::to_string),
            });
        }
    }
    Ok(st)
}

fn names_arg(args: &Args) -> Result<Vec<String>, Failure> {
    let Some(v) = args.get("name") else {
        return Ok(Vec::new());
    };
    let list: Vec<String> = if v.kind() == ValueKind::Seq {
        v.try_iter()
            .map_err(|e| e.to_string())?
            .map(|x| crate::values::value_to_string(&x))
            .collect()
    } else {
        crate::values::value_to_string(v)
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let list: Vec<String> = list
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    for n in &list {
        if n.contains(['=', '*', '?', '[']) || n.ends_with(".deb") {
            return Err(
                format!("`{n}`: version specs, wildcards and .deb files are not supported by roll's apt yet").into(),
            );
        }
    }
    Ok(list)
}

/// What the packages need: the apt-get command (none: nothing to do), or a failure.
fn decide(p: &Params, st: &State, check_mode: bool) -> Result<Option<String>, Failure> {
    let pkgs: Vec<String> = if p.state == "absent" {
        st.packages
            .iter()
            .filter(|s| s.installed.is_some() || (s.has_files && p.purge))
            .map(|s| quote(&s.name))
            .collect()
    } else {
        let mut out = Vec::new();
        for s in &st.packages {
            if !s.known {
                return Err(format!("No package matching '{}' is available", s.name).into());
            }
            match (&s.installed, &s.candidate) {
                (None, None) => {
                    return Err(format!("no available installation candidate for {}", s.name).into());
                }
                (None, Some(_)) => out.push(quote(&s.name)),
                (Some(v), Some(c)) if p.state == "latest" && v != c => out.push(quote(&s.name)),
                _ => {}
            }
        }
        out
    };
    if pkgs.is_empty() {
        return Ok(None);
    }
    let sim = if check_mode { " --simulate" } else { "" };
    let force = if p.force { " --force-yes" } else { "" };
    let autoremove = if p.autoremove { " --auto-remove" } else { "" };
    let list = pkgs.join(" ");
    Ok(Some(if p.state == "absent" {
        let purge = if p.purge { " --purge" } else { "" };
        format!("apt-get -q -y {DPKG_OPTIONS}{purge}{force}{autoremove}{sim} remove {list}")
    } else {
        let rec = match p.install_recommends {
            Some(false) => " -o APT::Install-Recommends=no",
            Some(true) => " -o APT::Install-Recommends=yes",
            None => "",
        };
        format!("apt-get -y {DPKG_OPTIONS}{force}{autoremove}{sim} install {list}{rec}")
    }))
}

/// The result when the packages need nothing (`cache_updated`/`_time` only where Ansible says).
fn unchanged(p: &Params, cache_updated: bool, cache_time: i64) -> ModuleResult {
    let mut r = ModuleResult::ok();
    r.changed = p.names.is_empty() && cache_updated;
    if p.state != "absent" || p.names.is_empty() {
        r = r
            .with("cache_updated", cache_updated)
            .with("cache_update_time", cache_time);
    }
    r
}

fn changed(p: &Params, cache_updated: bool, cache_time: i64) -> ModuleResult {
    let mut r = ModuleResult::changed().with("diff", Value::from_pairs(Vec::<(String, Value)>::new()));
    if p.state != "absent" {
        r = r
            .with("cache_updated", cache_updated)
            .with("cache_update_time", cache_time);
    }
    r
}

struct Run {
    params: Params,
    /// Update the cache first, then decide again on the fresh cache.
    update: bool,
    cmd: Option<String>,
    cache_time: i64,
}

apply_by!(Run, apply);

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let p = &run.params;
    let (mut cmd, mut cache_updated, mut cache_time) = (run.cmd, false, run.cache_time);
    if run.update {
        let out = exec(ctx, "apt-get update -q".into()).await?;
        if out.rc != 0 {
            return Err(format!("Failed to update apt cache: {}", out.stderr_text().trim()).into());
        }
        let st = read(ctx, &p.names).await?;
        cache_updated = st.cache_time != run.cache_time;
        cache_time = st.cache_time;
        cmd = decide(p, &st, false)?;
    }
    let Some(cmd) = cmd else {
        return Ok(unchanged(p, cache_updated, cache_time));
    };
    let out = exec(ctx, cmd.clone()).await?;
    let (stdout, stderr) = (out.stdout_text(), out.stderr_text());
    if out.rc != 0 {
        let msg = if p.state == "absent" {
            let list = cmd.rsplit_once(" remove ").map_or("", |(_, l)| l);
            format!("'apt-get remove {list}' failed: {stderr}")
        } else {
            format!("'{cmd}' failed: {stderr}")
        };
        let mut f = ModuleResult::failed(msg);
        f.rc = Some(i64::from(out.rc));
        f.stdout = Some(stdout);
        f.stderr = Some(stderr);
        return Err(Failure::Failed(Box::new(f)));
    }
    let mut r = changed(p, cache_updated, cache_time);
    r.stdout = Some(stdout);
    r.stderr = Some(stderr);
    Ok(r)
}

async fn check_apt(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let names = names_arg(args)?;
    let cache_valid_time = match args.f64("cache_valid_time")? {
        Some(t) => t as i64,
        None => 0,
    };
    let p = Params {
        state: args.str("state")?.unwrap_or_else(|| "present".into()),
        update_cache: args.bool("update_cache", false)?,
        cache_valid_time,
        install_recommends: match args.get("install_recommends") {
            None => None,
            Some(_) => Some(args.bool("install_recommends", true)?),
        },
        purge: args.bool("purge", false)?,
        autoremove: args.bool("autoremove", false)?,
        force: args.bool("force", false)?,
        names,
    };
    if p.names.is_empty() && p.autoremove {
        return Err("`autoremove` without `name` is not supported by roll's apt yet".into());
    }
    if p.names.is_empty() && !p.update_cache && args.get("cache_valid_time").is_none() {
        return Err("one of the following is required: autoclean, autoremove, deb, name, update_cache, upgrade".into());
    }
    let st = read(ctx, &p.names).await?;
    let needs_update =
        (p.update_cache || args.get("cache_valid_time").is_some()) && st.cache_time + p.cache_valid_time < st.now;
    if needs_update && !ctx.check_mode {
        // The packages are decided on the fresh cache, after the update. (Not a dry run, so the
        // preview is never shown; it carries no fields, which would be merged into the result.)
        let preview = ModuleResult::changed();
        return Ok(Plan::Change {
            preview,
            action: Box::new(Run {
                params: p,
                update: true,
                cmd: None,
                cache_time: st.cache_time,
            }),
        });
    }
    // Check mode says the cache would be updated, and decides on the cache as it is.
    let cmd = decide(&p, &st, false)?;
    let Some(cmd) = cmd else {
        return Ok(Plan::Unchanged(unchanged(&p, needs_update, st.cache_time)));
    };
    let preview = changed(&p, needs_update, st.cache_time);
    Ok(Plan::Change {
        preview,
        action: Box::new(Run {
            params: p,
            update: false,
            cmd: Some(cmd),
            cache_time: st.cache_time,
        }),
    })
}

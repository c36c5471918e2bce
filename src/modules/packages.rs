//! `apt` (packages through apt-get, deciding from dpkg's status and apt's candidates as
//! ansible-core 2.19's apt module decides), `package` (the host's manager: apt here), and
//! `yum`/`dnf`, which fail clearly on a host that does not have them.

use super::spec::{BUILTIN, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::Value;

/// `apt`: Debian packages.
pub struct Apt;

/// apt's parameters, which `package` passes on to apt as Ansible's package action does.
macro_rules! apt_params {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            p("name").aliases(&["package", "pkg"]),
            p("state").choices(&["absent", "present", "latest"]),
            p("update_cache").aliases(&["update-cache"]),
            p("update_cache_retries"),
            p("update_cache_retry_max_delay"),
            p("cache_valid_time"),
            p("deb"),
            p("default_release").aliases(&["default-release"]),
            p("install_recommends").aliases(&["install-recommends"]),
            p("purge"),
            p("autoremove"),
            p("fail_on_autoremove"),
            p("only_upgrade"),
            p("force"),
            p("force_apt_get"),
            p("dpkg_options"),
            p("lock_timeout"),
            p("allow_unauthenticated").aliases(&["allow-unauthenticated"]),
            p("allow_downgrade").aliases(&["allow-downgrade", "allow_downgrades", "allow-downgrades"]),
            p("allow_change_held_packages"),
            // Ansible's module installs python3-apt for itself; roll's needs nothing.
            p("auto_install_module_deps"),
        ]
    };
}

static APT: ModuleSpec = ModuleSpec {
    params: apt_params!(),
    exclusive: &[("deb", "name")],
    not_yet: &[
        "upgrade",
        "autoclean",
        "clean",
        "policy_rc_d",
        "state=build-dep",
        "state=fixed",
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
    params: apt_params!(p("use")),
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
    not_here(module, &[module], ctx).await
}

/// A module for another system's package tools: it fails on every host, saying whether the
/// host has none of `tools` (and what its package manager is) or roll does not drive them yet.
pub(super) async fn not_here(module: &str, tools: &[&str], ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let have = managers(ctx).await?;
    let probe: Vec<String> = tools.iter().map(|t| quote(t)).collect();
    let out = exec(
        ctx,
        format!(
            "for t in {}; do command -v \"$t\" >/dev/null && echo \"$t\"; done; true",
            probe.join(" ")
        ),
    )
    .await?;
    if let Some(t) = out.stdout_text().lines().next() {
        return Err(format!("roll's `{module}` module is not built yet (this host has {t})").into());
    }
    let other = have
        .first()
        .map_or("none that roll knows".to_string(), |m| format!("`{m}`"));
    let alt = if have.first().is_some_and(|m| m == "apt-get") {
        "; use `package` or `apt`"
    } else {
        ""
    };
    let which = tools.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(" or ");
    Err(format!("this host has no {which}: its package manager is {other}{alt}").into())
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

/// How a package spec pins its version (`name=1.2*`, `name>=1.2`), as ansible-core splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    /// `=`: the version is a glob the installed or installed version must match.
    Eq,
    /// `>=`: at least this version.
    Ge,
}

/// One entry of `name`: a package and the version it asks for.
#[derive(Debug, Clone)]
struct Spec {
    /// As written (`hello=2.10*`), for messages.
    text: String,
    name: String,
    version: Option<(Cmp, String)>,
}

#[derive(Debug, Clone)]
struct Params {
    specs: Vec<Spec>,
    deb: Option<String>,
    state: String,
    update_cache: bool,
    update_cache_retries: u32,
    cache_valid_time: i64,
    default_release: Option<String>,
    install_recommends: Option<bool>,
    purge: bool,
    autoremove: bool,
    fail_on_autoremove: bool,
    only_upgrade: bool,
    force: bool,
    dpkg_options: String,
    lock_timeout: i64,
    allow_unauthenticated: bool,
    allow_downgrade: bool,
    allow_change_held_packages: bool,
}

impl Params {
    fn names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    /// `-o "Dpkg::Options::=--X"` for each of `dpkg_options`, and the lock timeout.
    fn dpkg(&self) -> String {
        format!(
            "{} -o DPkg::Lock::Timeout={}",
            expand_dpkg_options(&self.dpkg_options),
            self.lock_timeout
        )
    }
}

fn expand_dpkg_options(options: &str) -> String {
    options
        .split(',')
        .map(|o| format!("-o \"Dpkg::Options::=--{o}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// dpkg's and apt's view of one package.
#[derive(Debug, Clone)]
struct Status {
    spec: Spec,
    /// apt knows the package (it has a policy entry).
    known: bool,
    installed: Option<String>,
    /// The installed version is what the spec asks for.
    matches: bool,
    /// Removed but its configuration files are left.
    has_files: bool,
    /// The version apt would install for the spec (`=` pins it; a candidate that does not
    /// match the glob is none), with `default_release` at apt-get -t's priority.
    candidate: Option<String>,
    /// The candidate is at least the `>=` version.
    candidate_ge: bool,
}

#[derive(Debug)]
struct State {
    /// The cache's mtime (update-success stamp, else the lists directory) and the host's now, to
    /// the nanosecond, as ansible-core compares them: a cache updated earlier in the same second
    /// is not fresh.
    cache_mtime: f64,
    now: f64,
    packages: Vec<Status>,
}

impl State {
    /// The cache's time as ansible-core reports (and compares after an update): whole seconds.
    fn cache_time(&self) -> i64 {
        self.cache_mtime.floor() as i64
    }
}

async fn read(ctx: &Ctx<'_>, p: &Params) -> Result<State, Failure> {
    let mut s = String::from(
        "t=$(stat -c %.9Y /var/lib/apt/periodic/update-success-stamp 2>/dev/null || stat -c %.9Y /var/lib/apt/lists 2>/dev/null || echo 0)\n\
         echo \"T $t $(date +%s.%N)\"\n",
    );
    let target = p
        .default_release
        .as_ref()
        .map_or(String::new(), |r| format!("-t {}", quote(r)));
    for spec in &p.specs {
        let q = quote(&spec.name);
        s.push_str(&format!(
            "st=$(dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}' {q} 2>/dev/null)\n\
             iv=${{st#*|}}; m=1; g=1\n\
             pol=$(apt-cache {target} policy {q} 2>/dev/null)\n"
        ));
        match &spec.version {
            None => {}
            Some((Cmp::Eq, v)) => {
                // ansible-core pins the version at 1001, above every built-in priority, on top of
                // the host's preferences; the glob is left unquoted for `case` to match it.
                let qv = quote(v);
                s.push_str(&format!(
                    "pf=$(mktemp); {{ cat /etc/apt/preferences 2>/dev/null; printf '\\nPackage: %s\\nPin: version %s\\nPin-Priority: 1001\\n' {q} {qv}; }} >\"$pf\"\n\
                     [ -n \"$pol\" ] && pol=$(apt-cache -o Dir::Etc::Preferences=\"$pf\" {target} policy {q} 2>/dev/null)\n\
                     rm -f \"$pf\"\n\
                     c=$(printf '%s\\n' \"$pol\" | sed -n 's/^ *Candidate: //p')\n\
                     case \"$c\" in {v}) ;; *) c= ;; esac\n\
                     case \"$iv\" in {v}) ;; *) m= ;; esac\n"
                ));
            }
            Some((Cmp::Ge, v)) => {
                let qv = quote(v);
                s.push_str(&format!(
                    "c=$(printf '%s\\n' \"$pol\" | sed -n 's/^ *Candidate: //p')\n\
                     dpkg --compare-versions \"$iv\" ge {qv} 2>/dev/null || m=\n\
                     dpkg --compare-versions \"$c\" ge {qv} 2>/dev/null || g=\n"
                ));
            }
        }
        if spec.version.is_none() {
            s.push_str("c=$(printf '%s\\n' \"$pol\" | sed -n 's/^ *Candidate: //p')\n");
        }
        s.push_str("printf 'P %s|%s|%s|%s|%s\\n' \"$([ -n \"$pol\" ] && echo known)\" \"$c\" \"$m\" \"$g\" \"$st\"\n");
    }
    let out = exec(ctx, s).await?;
    let mut st = State {
        cache_mtime: 0.0,
        now: 0.0,
        packages: Vec::new(),
    };
    let mut specs = p.specs.iter();
    for line in out.stdout_text().lines() {
        if let Some(rest) = line.strip_prefix("T ") {
            let mut f = rest.split_whitespace().map(|x| x.parse::<f64>().unwrap_or(0.0));
            st.cache_mtime = f.next().unwrap_or(0.0);
            st.now = f.next().unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("P ") {
            let Some(spec) = specs.next() else { break };
            let f: Vec<&str> = rest.splitn(6, '|').collect();
            if f.len() < 5 {
                return Err(format!("cannot read apt's state of `{}`", spec.name).into());
            }
            let abbrev = f[4].trim();
            let version = f.get(5).copied().unwrap_or("");
            st.packages.push(Status {
                spec: spec.clone(),
                known: f[0] == "known",
                installed: abbrev.starts_with("ii").then(|| version.to_string()),
                matches: f[2] == "1",
                has_files: abbrev.starts_with("rc"),
                candidate: Some(f[1].trim())
                    .filter(|c| !c.is_empty() && *c != "(none)")
                    .map(str::to_string),
                candidate_ge: f[3] == "1",
            });
        }
    }
    Ok(st)
}

/// ansible-core's `package_split`: `name`, `name=VERSION` or `name>=VERSION`.
fn split_spec(text: &str) -> Result<Spec, Failure> {
    if text.matches('=').count() > 1 {
        return Err(format!("invalid package spec: {text}").into());
    }
    let (name, version) = match text.split_once('=') {
        Some((n, v)) => match n.strip_suffix('>') {
            Some(n) => (n, Some((Cmp::Ge, v))),
            None => (n, Some((Cmp::Eq, v))),
        },
        None => (text, None),
    };
    if name.contains(['*', '?', '[', ']', '!']) {
        return Err(format!("`{text}`: package name wildcards are not supported by roll's apt yet").into());
    }
    // A version is matched by the shell as a glob: only the characters of Debian versions
    // and of globs may reach it.
    if let Some((_, v)) = version
        && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || ".+~:-_*?[]".contains(c)))
    {
        return Err(format!("invalid package spec: {text}").into());
    }
    Ok(Spec {
        text: text.to_string(),
        name: name.to_string(),
        version: version.map(|(c, v)| (c, v.to_string())),
    })
}

fn names_arg(args: &Args) -> Result<Vec<Spec>, Failure> {
    let list = args.list("name").unwrap_or_default();
    let list: Vec<String> = list
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    list.iter()
        .map(|n| {
            if n == "*" || n.ends_with(".deb") {
                return Err(format!("`{n}`: upgrading all packages and .deb files in `name` are not supported by roll's apt yet (use `deb:`)").into());
            }
            split_spec(n)
        })
        .collect()
}

/// What the packages need, as ansible-core's `install` and `remove` decide it: the apt-get
/// command without `--simulate` (none: nothing to do), or a failure.
fn decide(p: &Params, st: &State) -> Result<Option<AptGet>, Failure> {
    if p.state == "absent" {
        let pkgs: Vec<String> = st
            .packages
            .iter()
            .filter(|s| (s.installed.is_some() && s.matches) || (s.has_files && p.purge))
            .map(|s| format!("'{}'", s.spec.text))
            .collect();
        if pkgs.is_empty() {
            return Ok(None);
        }
        return Ok(Some(AptGet::Remove(pkgs.join(" "))));
    }
    let upgrade = p.state == "latest";
    let mut out = Vec::new();
    for s in &st.packages {
        if !s.known {
            return Err(format!("No package matching '{}' is available", s.spec.name).into());
        }
        let installed = s.installed.is_some();
        if !installed && p.only_upgrade {
            continue;
        }
        let installed_version = installed && s.matches;
        let installable = match (&s.installed, &s.candidate) {
            (Some(iv), Some(c)) if iv != c && (!matches!(s.spec.version, Some((Cmp::Ge, _))) || s.candidate_ge) => {
                Some(c.clone())
            }
            (Some(_), _) => None,
            (None, c) => c.clone(),
        };
        if !installed_version && installable.is_none() {
            return Err(format!("no available installation candidate for {}", s.spec.text).into());
        }
        match installable {
            Some(v) if !installed || upgrade || !installed_version => out.push(format!("'{}={v}'", s.spec.name)),
            Some(_) if installed_version => {
                // ansible-core's legacy case: a glob that matches both the installed version and
                // a newer one asks for the glob again.
                if let Some((Cmp::Eq, v)) = &s.spec.version {
                    out.push(format!("'{}={v}'", s.spec.name));
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(AptGet::Install(out.join(" "))))
}

/// An apt-get run the packages need: the packages, quoted as ansible-core quotes them.
#[derive(Debug, Clone)]
enum AptGet {
    Install(String),
    Remove(String),
}

impl AptGet {
    /// The command line ansible-core's apt runs (its failure message shows it).
    fn command(&self, p: &Params, simulate: bool) -> String {
        let on = |b: bool, s: &'static str| if b { s } else { "" };
        let sim = on(simulate, "--simulate");
        let force = on(p.force, "--force-yes");
        let autoremove = on(p.autoremove, "--auto-remove");
        let dpkg = p.dpkg();
        match self {
            AptGet::Remove(list) => {
                let purge = on(p.purge, "--purge");
                let held = on(p.allow_change_held_packages, "--allow-change-held-packages");
                format!("/usr/bin/apt-get -q -y {dpkg} {purge} {force} {autoremove} {sim} {held} remove {list}")
            }
            AptGet::Install(list) => {
                let only = on(p.only_upgrade, "--only-upgrade");
                let no_remove = on(p.fail_on_autoremove, "--no-remove");
                let mut cmd =
                    format!("/usr/bin/apt-get -y {dpkg} {only}  {force} {autoremove} {no_remove} {sim} install {list}");
                if let Some(r) = &p.default_release {
                    cmd.push_str(&format!(" -t '{r}'"));
                }
                match p.install_recommends {
                    Some(false) => cmd.push_str(" -o APT::Install-Recommends=no"),
                    Some(true) => cmd.push_str(" -o APT::Install-Recommends=yes"),
                    None => {}
                }
                if p.allow_unauthenticated {
                    cmd.push_str(" --allow-unauthenticated");
                }
                if p.allow_downgrade {
                    cmd.push_str(" --allow-downgrades");
                }
                if p.allow_change_held_packages {
                    cmd.push_str(" --allow-change-held-packages");
                }
                cmd
            }
        }
    }

    /// Run it (simulated in check mode): the result as ansible-core reports it, with `diff`'s
    /// `prepared` (apt-get's plan) under `--diff`.
    async fn run(&self, p: &Params, ctx: &Ctx<'_>, simulate: bool, mark: &[String]) -> Result<ModuleResult, Failure> {
        let cmd = self.command(p, simulate);
        let out = exec(ctx, cmd.clone()).await?;
        let (stdout, stderr) = (out.stdout_text(), out.stderr_text());
        if out.rc != 0 {
            let msg = match self {
                AptGet::Remove(list) => format!("'apt-get remove {list}' failed: {stderr}"),
                AptGet::Install(_) => format!("'{cmd}' failed: {stderr}"),
            };
            let mut f = ModuleResult::failed(msg);
            f.rc = Some(i64::from(out.rc));
            f.stdout = Some(stdout);
            f.stderr = Some(stderr);
            return Err(Failure::Failed(Box::new(f)));
        }
        if let (AptGet::Install(_), false, false) = (self, simulate, mark.is_empty()) {
            // ansible-core marks the named packages manually installed after an install.
            let names: Vec<String> = mark.iter().map(|n| quote(n)).collect();
            exec(ctx, format!("apt-mark manual {} >/dev/null", names.join(" "))).await?;
        }
        let diff = if ctx.diff { prepared(&stdout) } else { empty_map() };
        let mut r = ModuleResult::changed().with("diff", diff);
        r.stdout = Some(stdout);
        r.stderr = Some(stderr);
        Ok(r)
    }
}

fn empty_map() -> Value {
    Value::from_pairs(Vec::<(String, Value)>::new())
}

/// ansible-core's `parse_diff`: apt-get's output from after "Reading state information..."
/// to the "N upgraded" line, as `diff.prepared`.
fn prepared(output: &str) -> Value {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "Reading state information...")
        .map_or(0, |i| i + 1);
    let upgraded = regex::Regex::new(r"^[0-9]+ (packages )?upgraded").ok();
    let end = lines
        .iter()
        .position(|l| upgraded.as_ref().is_some_and(|r| r.is_match(l)))
        .map_or(lines.len(), |i| i + 1);
    let text = lines.get(start..end.max(start)).unwrap_or(&[]).join("\n");
    Value::from_pairs(vec![("prepared".to_string(), Value::from(text))])
}

/// The result when the packages need nothing (`cache_updated`/`_time` only where Ansible says).
fn unchanged(p: &Params, cache_updated: bool, cache_time: i64) -> ModuleResult {
    let mut r = ModuleResult::ok();
    r.changed = p.specs.is_empty() && cache_updated;
    if p.state != "absent" || p.specs.is_empty() {
        r = r
            .with("cache_updated", cache_updated)
            .with("cache_update_time", cache_time);
    }
    r
}

fn with_cache(p: &Params, mut r: ModuleResult, cache_updated: bool, cache_time: i64) -> ModuleResult {
    if p.state != "absent" {
        r = r
            .with("cache_updated", cache_updated)
            .with("cache_update_time", cache_time);
    }
    r
}

/// An install that failed reports the cache as a successful one does.
fn failed_with_cache(p: &Params, e: Failure, cache_updated: bool, cache_time: i64) -> Failure {
    match e {
        Failure::Failed(r) if p.state != "absent" => {
            Failure::Failed(Box::new(with_cache(p, *r, cache_updated, cache_time)))
        }
        other => other,
    }
}

struct Run {
    params: Params,
    /// Update the cache first, then decide again on the fresh cache.
    update: bool,
    cmd: Option<AptGet>,
    cache_time: i64,
}

apply_by!(Run, apply);

async fn update_cache(p: &Params, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let mut err = String::new();
    for _ in 0..p.update_cache_retries.max(1) {
        let out = exec(ctx, "apt-get update -q".into()).await?;
        if out.rc == 0 {
            return Ok(());
        }
        err = out.stderr_text().trim().to_string();
    }
    Err(format!(
        "Failed to update apt cache after {} retries: {}",
        p.update_cache_retries,
        if err.is_empty() { "unknown reason" } else { &err }
    )
    .into())
}

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let p = &run.params;
    let (mut cmd, mut cache_updated, mut cache_time) = (run.cmd, false, run.cache_time);
    if run.update {
        update_cache(p, ctx).await?;
        let st = read(ctx, p).await?;
        cache_updated = st.cache_time() != run.cache_time;
        cache_time = st.cache_time();
        if let Some(deb) = &p.deb {
            return match deb_plan(p, deb, ctx).await? {
                Plan::Change { action, .. } => action.apply(ctx).await,
                Plan::Unchanged(r) | Plan::Probe { preview: r, .. } => Ok(r),
            };
        }
        cmd = decide(p, &st)?;
    }
    let Some(cmd) = cmd else {
        return Ok(unchanged(p, cache_updated, cache_time));
    };
    let r = cmd
        .run(p, ctx, false, &p.names())
        .await
        .map_err(|e| failed_with_cache(p, e, cache_updated, cache_time))?;
    Ok(with_cache(p, r, cache_updated, cache_time))
}

fn params(args: &Args) -> Result<Params, Failure> {
    let int = |k: &str, d: i64| -> Result<i64, Failure> { Ok(args.f64(k)?.map_or(d, |t| t as i64)) };
    let p = Params {
        specs: names_arg(args)?,
        deb: args.str("deb")?,
        state: args.str("state")?.unwrap_or_else(|| "present".into()),
        update_cache: args.bool("update_cache", false)?,
        update_cache_retries: u32::try_from(int("update_cache_retries", 5)?).unwrap_or(5),
        cache_valid_time: int("cache_valid_time", 0)?,
        default_release: args.str("default_release")?.filter(|r| !r.is_empty()),
        install_recommends: match args.get("install_recommends") {
            None => None,
            Some(_) => Some(args.bool("install_recommends", true)?),
        },
        purge: args.bool("purge", false)?,
        autoremove: args.bool("autoremove", false)?,
        fail_on_autoremove: args.bool("fail_on_autoremove", false)?,
        only_upgrade: args.bool("only_upgrade", false)?,
        force: args.bool("force", false)?,
        dpkg_options: args
            .str("dpkg_options")?
            .unwrap_or_else(|| "force-confdef,force-confold".into()),
        lock_timeout: int("lock_timeout", 60)?,
        allow_unauthenticated: args.bool("allow_unauthenticated", false)?,
        allow_downgrade: args.bool("allow_downgrade", false)?,
        allow_change_held_packages: args.bool("allow_change_held_packages", false)?,
    };
    if let Some(r) = &p.default_release
        && r.contains('\'')
    {
        return Err(format!("`default_release` cannot contain a quote: {r}").into());
    }
    Ok(p)
}

async fn check_apt(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let p = params(args)?;
    if p.specs.is_empty() && p.deb.is_none() && p.autoremove {
        return Err("`autoremove` without `name` is not supported by roll's apt yet".into());
    }
    if p.specs.is_empty() && p.deb.is_none() && !p.update_cache && args.get("cache_valid_time").is_none() {
        return Err("one of the following is required: autoclean, autoremove, deb, name, update_cache, upgrade".into());
    }
    if p.deb.is_some() && p.state != "present" {
        return Err("deb only supports state=present".into());
    }
    let st = read(ctx, &p).await?;
    // ansible-core: `update_cache or cache_valid_time` (so an explicit 0 alone updates nothing),
    // and the cache is fresh only while `mtime + cache_valid_time >= now`.
    let needs_update =
        (p.update_cache || p.cache_valid_time != 0) && st.cache_mtime + (p.cache_valid_time as f64) < st.now;
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
                cache_time: st.cache_time(),
            }),
        });
    }
    if let Some(deb) = &p.deb {
        return deb_plan(&p, deb, ctx).await;
    }
    // Check mode says the cache would be updated, and decides on the cache as it is.
    let Some(cmd) = decide(&p, &st)? else {
        return Ok(Plan::Unchanged(unchanged(&p, needs_update, st.cache_time())));
    };
    // ansible-core runs apt-get with --simulate in check mode: what it says (or how it fails)
    // is the preview.
    let preview = if ctx.check_mode {
        let r = cmd
            .run(&p, ctx, true, &[])
            .await
            .map_err(|e| failed_with_cache(&p, e, needs_update, st.cache_time()))?;
        with_cache(&p, r, needs_update, st.cache_time())
    } else {
        ModuleResult::changed()
    };
    Ok(Plan::Change {
        preview,
        action: Box::new(Run {
            params: p,
            update: false,
            cmd: Some(cmd),
            cache_time: st.cache_time(),
        }),
    })
}

/// `deb:`: a package file on the host, installed with dpkg after its missing dependencies
/// (through apt), as ansible-core's `install_deb` does.
struct DebRun {
    params: Params,
    deb: String,
    deps: Option<AptGet>,
}

apply_by!(DebRun, apply_deb);

/// What a .deb says about itself and how it stands against what is installed.
async fn deb_plan(p: &Params, deb: &str, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    if deb.contains("://") {
        return Err(format!("`deb: {deb}`: downloading a .deb is not supported by roll's apt yet").into());
    }
    let q = quote(deb);
    let script = format!(
        "[ -r {q} ] || {{ echo \"E cannot read\"; exit 0; }}\n\
         n=$(dpkg --field {q} Package) || {{ echo \"E dpkg --field failed\"; exit 0; }}\n\
         v=$(dpkg --field {q} Version)\n\
         st=$(dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}' \"$n\" 2>/dev/null); iv=${{st#*|}}\n\
         s=new\n\
         case \"$st\" in ii*) if dpkg --compare-versions \"$v\" eq \"$iv\"; then s=same; elif dpkg --compare-versions \"$v\" lt \"$iv\"; then s=older; else s=newer; fi;; esac\n\
         echo \"S $s\"\n\
         dpkg --field {q} Depends | tr ',' '\\n' | sed 's/|.*//; s/(.*//; s/^ *//; s/ *$//' | while read -r d; do\n\
           [ -n \"$d\" ] || continue\n\
           dpkg-query -W -f='${{db:Status-Abbrev}}' \"$d\" 2>/dev/null | grep -q '^ii' || echo \"D $d\"\n\
         done\n\
         {rec}",
        rec = if p.install_recommends == Some(true) {
            format!("dpkg --field {q} Recommends | tr ',' ' ' | tr -s ' ' '\\n' | sed '/^$/d; s/^/D /'\n")
        } else {
            String::new()
        }
    );
    let out = exec(ctx, script).await?;
    let text = out.stdout_text();
    if let Some(e) = text.lines().find_map(|l| l.strip_prefix("E ")) {
        return Err(format!("Unable to install package: {deb}: {e}").into());
    }
    let state = text.lines().find_map(|l| l.strip_prefix("S ")).unwrap_or("new");
    if state == "same" {
        let r = ModuleResult::ok()
            .with("stdout", "")
            .with("stderr", "")
            .with("diff", "");
        return Ok(Plan::Unchanged(r));
    }
    if state == "older" && !(p.force || p.allow_downgrade) {
        return Err("A later version is already installed".into());
    }
    let deps: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("D "))
        .map(|d| format!("'{d}'"))
        .collect();
    let mut dp = p.clone();
    dp.autoremove = false;
    dp.specs.clear();
    let deps = (!deps.is_empty()).then(|| AptGet::Install(deps.join(" ")));
    let run = DebRun {
        params: dp,
        deb: deb.to_string(),
        deps,
    };
    let preview = if ctx.check_mode {
        deb_install(&run, ctx, true).await?
    } else {
        ModuleResult::changed()
    };
    Ok(Plan::Change {
        preview,
        action: Box::new(run),
    })
}

async fn apply_deb(run: DebRun, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    deb_install(&run, ctx, false).await
}

async fn deb_install(run: &DebRun, ctx: &Ctx<'_>, simulate: bool) -> Result<ModuleResult, Failure> {
    let p = &run.params;
    let (mut stdout, mut stderr) = (String::new(), String::new());
    // The dependencies' result (its `diff` too) leads, as ansible-core's `install_deb` merges it.
    let mut deps_diff = None;
    if let Some(deps) = &run.deps {
        let names: Vec<String> = match deps {
            AptGet::Install(list) | AptGet::Remove(list) => list
                .split_whitespace()
                .map(|n| n.trim_matches('\'').to_string())
                .collect(),
        };
        // ansible-core installs them with apt's defaults, not the task's release or force.
        let mut dp = p.clone();
        dp.default_release = None;
        dp.force = false;
        dp.only_upgrade = false;
        let r = deps.run(&dp, ctx, simulate, &names).await?;
        stdout = r.stdout.clone().unwrap_or_default();
        stderr = r.stderr.clone().unwrap_or_default();
        deps_diff = r.data.get("diff").cloned();
    }
    let mut options: Vec<String> = p.dpkg_options.split(',').map(|o| format!("--{o}")).collect();
    if simulate {
        options.push("--simulate".into());
    }
    if p.force {
        options.push("--force-all".into());
    }
    let cmd = format!("dpkg {} -i {}", options.join(" "), quote(&run.deb));
    let out = exec(ctx, cmd.clone()).await?;
    let (o, e) = (out.stdout_text(), out.stderr_text());
    let diff = match deps_diff {
        Some(d) => match d.get_attr("prepared").ok().filter(|v| !v.is_undefined()) {
            Some(before) => Value::from_pairs(vec![("prepared".to_string(), Value::from(format!("{before}\n\n{o}")))]),
            None => d,
        },
        None => prepared(&o),
    };
    stdout.push_str(&o);
    stderr.push_str(&e);
    if out.rc != 0 {
        let mut f = ModuleResult::failed(format!("{cmd} failed"));
        f.stdout = Some(stdout);
        f.stderr = Some(stderr);
        return Err(Failure::Failed(Box::new(f)));
    }
    let mut r = ModuleResult::changed().with("diff", diff);
    r.stdout = Some(stdout);
    r.stderr = Some(stderr);
    Ok(r)
}

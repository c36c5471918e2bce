//! `pip`: Python packages through the host's pip, into a virtualenv it creates when asked, as
//! ansible-core 2.19's pip module does (check mode compares `pip list` with the requirements;
//! a run runs pip and reports what pip says it installed or removed).

use super::spec::{BUILTIN, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::{join, quote, split};
use minijinja::Value;
use std::cmp::Ordering;

/// `pip`.
pub struct Pip;

static PIP: ModuleSpec = ModuleSpec {
    params: &[
        p("name"),
        p("state").choices(&["present", "absent", "latest", "forcereinstall"]),
        p("version"),
        p("requirements"),
        p("virtualenv"),
        p("virtualenv_site_packages"),
        p("virtualenv_command"),
        p("virtualenv_python"),
        p("extra_args"),
        p("editable"),
        p("chdir"),
        p("executable"),
        p("umask"),
        p("break_system_packages"),
    ],
    one_of: &["name", "requirements"],
    exclusive: &[("name", "requirements"), ("executable", "virtualenv")],
    ..ModuleSpec::new("pip", BUILTIN)
};

impl Module for Pip {
    fn spec(&self) -> &'static ModuleSpec {
        &PIP
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_pip(args, ctx))
    }
}

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH";

/// Run `script` in `dir` (with `umask`), in the C locale as ansible-core's pip lists.
async fn exec(ctx: &Ctx<'_>, w: &Want, script: &str) -> Result<crate::connection::Output, Failure> {
    let umask = w.umask.map_or(String::new(), |u| format!("umask {u:o}\n"));
    let brk = if w.break_system_packages {
        "export PIP_BREAK_SYSTEM_PACKAGES=1\n"
    } else {
        ""
    };
    let mut cmd = Command::new(format!(
        "{PATH}\nexport LANG=C LC_ALL=C LC_MESSAGES=C\n{brk}{umask}cd {} || exit 1\n{script}",
        quote(&w.chdir)
    ));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    cmd.env = ctx.env.clone();
    Ok(ctx.conn.exec(&cmd).await?)
}

/// A requirement as `packaging` reads it: a canonical name and version specifiers; anything
/// else (a path, a URL) is passed to pip as written and never counts as installed.
#[derive(Debug, Clone)]
struct Requirement {
    text: String,
    plain: Option<Plain>,
}

#[derive(Debug, Clone)]
struct Plain {
    name: String,
    canonical: String,
    extras: Vec<String>,
    specs: Vec<(String, String)>,
    marker: Option<String>,
}

const OPS: &[&str] = &["===", "~=", "==", "!=", "<=", ">=", "<", ">"];

fn canonicalize(name: &str) -> String {
    let re = regex::Regex::new(r"[-_.]+").expect("a valid regex");
    re.replace_all(name, "-").to_lowercase()
}

fn parse_requirement(text: &str) -> Requirement {
    let plain = (|| {
        let (body, marker) = match text.split_once(';') {
            Some((b, m)) => (b, Some(m.trim().to_string())),
            None => (text, None),
        };
        let re = regex::Regex::new(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?\s*(.*?)\s*$")
            .expect("a valid regex");
        let c = re.captures(body)?;
        let name = c.get(1)?.as_str().to_string();
        let mut extras: Vec<String> = c
            .get(2)
            .map(|e| {
                e.as_str()
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        extras.sort();
        let rest = c.get(3).map_or("", |m| m.as_str());
        let rest = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).unwrap_or(rest);
        let mut specs = Vec::new();
        for part in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let op = OPS.iter().find(|o| part.starts_with(**o))?;
            let v = part[op.len()..].trim();
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || ".*+!_-".contains(c)) {
                return None;
            }
            specs.push((op.to_string(), v.to_string()));
        }
        Some(Plain {
            canonical: canonicalize(&name),
            name,
            extras,
            specs,
            marker,
        })
    })();
    Requirement {
        text: text.to_string(),
        plain,
    }
}

impl Requirement {
    /// `str(Requirement)`: the name, sorted extras, sorted specifiers, the marker.
    fn to_pip(&self) -> String {
        let Some(p) = &self.plain else {
            return self.text.clone();
        };
        let mut s = p.name.clone();
        if !p.extras.is_empty() {
            s.push_str(&format!("[{}]", p.extras.join(",")));
        }
        let mut specs: Vec<String> = p.specs.iter().map(|(o, v)| format!("{o}{v}")).collect();
        specs.sort();
        s.push_str(&specs.join(","));
        if let Some(m) = &p.marker {
            s.push_str(&format!("; {m}"));
        }
        s
    }

    fn satisfied_by(&self, version: &str) -> bool {
        let Some(p) = &self.plain else { return false };
        p.specs.iter().all(|(op, v)| spec_contains(op, v, version))
    }
}

/// A version's release numbers, and what follows them (pre/post/dev releases sort by text).
fn version_key(v: &str) -> (Vec<u64>, String) {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let v = v.split_once('!').map_or(v, |(_, r)| r);
    let mut nums = Vec::new();
    let mut rest = String::new();
    for (i, part) in v.split('.').enumerate() {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || digits.len() != part.len() {
            if !digits.is_empty() {
                nums.push(digits.parse().unwrap_or(0));
            }
            rest = v.split('.').skip(i).collect::<Vec<_>>().join(".")[digits.len()..].to_string();
            break;
        }
        nums.push(digits.parse().unwrap_or(0));
    }
    while nums.last() == Some(&0) && nums.len() > 1 {
        nums.pop();
    }
    (nums, rest)
}

fn compare(a: &str, b: &str) -> Ordering {
    let (an, ar) = version_key(a);
    let (bn, br) = version_key(b);
    // A pre-release (`1.0rc1`) sorts before its release; a post-release (`1.0.post1`) after.
    let rank = |r: &str| {
        if r.is_empty() {
            1
        } else if r.starts_with(".post") || r.starts_with("post") || r.starts_with('-') {
            2
        } else {
            0
        }
    };
    an.cmp(&bn).then(rank(&ar).cmp(&rank(&br))).then(ar.cmp(&br))
}

/// PEP 440's specifier test, for the versions pip lists.
fn spec_contains(op: &str, want: &str, have: &str) -> bool {
    if op == "===" {
        return want == have;
    }
    if let Some(prefix) = want.strip_suffix(".*") {
        let (pn, _) = version_key(prefix);
        let (hn, _) = version_key(have);
        let mut hn = hn;
        hn.resize(hn.len().max(pn.len()), 0);
        let m = hn.starts_with(&pn);
        return if op == "!=" { !m } else { m };
    }
    let c = compare(have, want);
    match op {
        "==" => c == Ordering::Equal,
        "!=" => c != Ordering::Equal,
        ">=" => c != Ordering::Less,
        "<=" => c != Ordering::Greater,
        ">" => c == Ordering::Greater,
        "<" => c == Ordering::Less,
        "~=" => {
            let (wn, _) = version_key(want);
            let mut prefix = wn.clone();
            prefix.pop();
            let (hn, _) = version_key(have);
            c != Ordering::Less && hn.starts_with(&prefix)
        }
        _ => false,
    }
}

/// ansible-core's `_recover_package_name`: `name` items split at commas, specifier pieces
/// joined back to their package.
fn recover_names(names: &[String]) -> Vec<String> {
    let parts: Vec<&str> = names.iter().flat_map(|n| n.split(',')).collect();
    let is_name = |n: &str| !OPS.iter().chain(&[">", "<"]).any(|o| n.trim_start().starts_with(o));
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut brackets = false;
    for n in parts {
        if is_name(n) && !brackets {
            if !current.is_empty() {
                out.push(current.join(","));
            }
            current.clear();
        }
        if n.contains('[') {
            brackets = true;
        }
        if brackets && n.contains(']') {
            brackets = false;
        }
        current.push(n);
    }
    out.push(current.join(","));
    out
}

#[derive(Debug, Clone)]
struct Want {
    state: String,
    names: Option<Vec<String>>,
    packages: Vec<Requirement>,
    version: Option<String>,
    requirements: Option<String>,
    env: Option<String>,
    site_packages: bool,
    venv_command: String,
    venv_python: Option<String>,
    extra_args: Option<String>,
    chdir: String,
    executable: Option<String>,
    umask: Option<u32>,
    break_system_packages: bool,
}

fn want(args: &Args) -> Result<Want, Failure> {
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    let version = args.str("version")?;
    if state == "latest" && version.is_some() {
        return Err("version is incompatible with state=latest".into());
    }
    let names = args.list("name");
    let mut packages: Vec<Requirement> = names
        .as_deref()
        .map(|n| recover_names(n).iter().map(|r| parse_requirement(r)).collect())
        .unwrap_or_default();
    if let Some(v) = &version {
        if packages.len() > 1 {
            return Err("'version' argument is ambiguous when installing multiple package distributions. Please specify version restrictions next to each package in 'name' argument.".into());
        }
        if let Some(first) = packages.first_mut() {
            if first.plain.as_ref().is_some_and(|p| !p.specs.is_empty()) {
                return Err("The 'version' argument conflicts with any version specifier provided along with a package name. Please keep the version specifier, but remove the 'version' argument.".into());
            }
            let v = v.trim_start();
            let sep = if v.starts_with(|c: char| c.is_ascii_digit()) {
                "=="
            } else {
                " "
            };
            *first = parse_requirement(&format!("{}{sep}{v}", first.to_pip()));
        }
    }
    let umask = match args.str("umask")? {
        None => None,
        Some(u) => Some(u32::from_str_radix(u.trim(), 8).map_err(|_| Failure::from("umask must be an octal integer"))?),
    };
    let chdir = args.str("chdir")?;
    let mut env = args.str("virtualenv")?;
    if let (Some(e), Some(c)) = (&env, &chdir)
        && !e.starts_with('/')
    {
        env = Some(format!("{}/{e}", c.trim_end_matches('/')));
    }
    let mut extra_args = args.str("extra_args")?;
    if args.bool("editable", false)? {
        let mut list: Vec<String> = extra_args
            .as_deref()
            .map(|e| e.split(' ').map(str::to_string).collect())
            .unwrap_or_default();
        if !list.iter().any(|a| a == "-e") {
            list.push("-e".into());
        }
        extra_args = Some(list.join(" "));
    }
    Ok(Want {
        state,
        names,
        packages,
        version,
        requirements: args.str("requirements")?,
        env,
        site_packages: args.bool("virtualenv_site_packages", false)?,
        venv_command: args.str("virtualenv_command")?.unwrap_or_else(|| "virtualenv".into()),
        venv_python: args.str("virtualenv_python")?,
        extra_args,
        chdir: chdir.unwrap_or_else(|| "/tmp".into()),
        executable: args.str("executable")?,
        umask,
        break_system_packages: args.bool("break_system_packages", false)?,
    })
}

/// What the host has for this task: the pip to run (none yet: the virtualenv is to be made),
/// the python for the virtualenv, and whether the virtualenv exists.
struct Host {
    pip: Option<Vec<String>>,
    python: String,
    venv_exists: bool,
}

async fn find_host(w: &Want, ctx: &Ctx<'_>) -> Result<Host, Failure> {
    let env = w.env.as_deref().map(quote).unwrap_or_default();
    let script = format!(
        "echo \"PY $(command -v python3)\"\n\
         python3 -c 'import pip' 2>/dev/null && echo PIPMOD\n\
         for b in pip3 {exe}; do p=$(command -v \"$b\") && echo \"BIN $b $p\"; done\n\
         e={env}\n\
         if [ -n \"$e\" ]; then [ -e \"$e/bin/activate\" ] && echo VENV; for b in pip3 pip; do [ -x \"$e/bin/$b\" ] && echo \"VPIP $e/bin/$b\"; done; fi; true",
        exe = w
            .executable
            .as_deref()
            .filter(|e| !e.starts_with('/'))
            .map(quote)
            .unwrap_or_default()
    );
    let out = exec(ctx, w, &script).await?;
    let text = out.stdout_text();
    let python = text
        .lines()
        .find_map(|l| l.strip_prefix("PY "))
        .unwrap_or("")
        .trim()
        .to_string();
    let venv_exists = text.lines().any(|l| l == "VENV");
    let bin = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix("BIN ")
                    .and_then(|r| r.strip_prefix(name))
                    .and_then(|r| r.strip_prefix(' '))
            })
            .map(str::to_string)
    };
    let pip = if let Some(e) = &w.env {
        match text.lines().find_map(|l| l.strip_prefix("VPIP ")) {
            Some(p) => Some(vec![p.to_string()]),
            None if !venv_exists => None,
            None => {
                return Err(format!("Unable to find pip in the virtualenv, {e}, under any of these names: pip3, pip. Make sure pip is present in the virtualenv.").into());
            }
        }
    } else if let Some(x) = &w.executable {
        if x.starts_with('/') {
            Some(vec![x.clone()])
        } else {
            Some(vec![bin(x).ok_or_else(|| {
                format!("Unable to find any of {x} to use.  pip needs to be installed.")
            })?])
        }
    } else if text.lines().any(|l| l == "PIPMOD") && !python.is_empty() {
        Some(vec![python.clone(), "-m".into(), "pip".into()])
    } else {
        Some(vec![bin("pip3").ok_or(
            "Unable to find any of pip3 to use.  pip needs to be installed.",
        )?])
    };
    Ok(Host {
        pip,
        python,
        venv_exists,
    })
}

/// ansible-core's `_fail`: pip's output as the message, the command beside it.
fn pip_failed(cmd: Value, out: &str, err: &str) -> Failure {
    let mut msg = String::new();
    if !out.is_empty() {
        msg.push_str(&format!("stdout: {out}"));
    }
    if !err.is_empty() {
        msg.push_str(&format!("\n:stderr: {err}"));
    }
    Failure::Failed(Box::new(ModuleResult::failed(msg).with("cmd", cmd)))
}

fn words(v: &[String]) -> Value {
    Value::from(v.iter().map(|s| Value::from(s.as_str())).collect::<Vec<_>>())
}

/// `pip list --format=freeze` (or `pip freeze`): the command, its output, its stderr.
async fn list_packages(w: &Want, pip: &[String], ctx: &Ctx<'_>) -> Result<(String, String, String), Failure> {
    let mut cmd = pip.to_vec();
    cmd.extend(["list".to_string(), "--format=freeze".to_string()]);
    let out = exec(ctx, w, &join(&cmd)).await?;
    if out.rc == 0 {
        return Ok((cmd.join(" "), out.stdout_text(), out.stderr_text()));
    }
    let mut cmd = pip.to_vec();
    cmd.push("freeze".into());
    let out = exec(ctx, w, &join(&cmd)).await?;
    if out.rc != 0 {
        return Err(pip_failed(
            Value::from(cmd.join(" ")),
            &out.stdout_text(),
            &out.stderr_text(),
        ));
    }
    Ok((cmd.join(" "), out.stdout_text(), out.stderr_text()))
}

fn state_args(state: &str) -> &'static [&'static str] {
    match state {
        "absent" => &["uninstall", "-y"],
        "latest" => &["install", "-U"],
        "forcereinstall" => &["install", "-U", "--force-reinstall"],
        _ => &["install"],
    }
}

struct Run {
    want: Want,
    host: Host,
}

apply_by!(Run, apply);

async fn check_pip(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let w = want(args)?;
    if w.names.is_none() && w.requirements.is_none() {
        return Err("one of the following is required: name, requirements".into());
    }
    let host = find_host(&w, ctx).await?;
    if w.env.is_some() && !host.venv_exists && ctx.check_mode {
        return Ok(Plan::Change {
            preview: ModuleResult::changed(),
            action: Box::new(Run { want: w, host }),
        });
    }
    if !ctx.check_mode {
        // A run always runs pip, as ansible-core's does: what pip says decides `changed`.
        return Ok(Plan::Change {
            preview: ModuleResult::changed(),
            action: Box::new(Run { want: w, host }),
        });
    }
    if w.extra_args.is_some() || w.requirements.is_some() || w.state == "latest" || w.names.is_none() {
        return Ok(Plan::Change {
            preview: ModuleResult::changed(),
            action: Box::new(Run { want: w, host }),
        });
    }
    let pip = host.pip.clone().unwrap_or_default();
    let (cmd, out, err) = list_packages(&w, &pip, ctx).await?;
    let installed: Vec<(String, String)> = out
        .lines()
        .filter(|l| !l.starts_with("You are using") && !l.starts_with("You should consider") && !l.is_empty())
        .filter_map(|l| l.split_once("=="))
        .map(|(n, v)| (canonicalize(n), v.to_string()))
        .collect();
    let mut changed = false;
    for r in &w.packages {
        let present = r
            .plain
            .as_ref()
            .is_some_and(|p| installed.iter().any(|(n, v)| *n == p.canonical && r.satisfied_by(v)));
        if (w.state == "present" && !present) || (w.state == "absent" && present) {
            changed = true;
            break;
        }
    }
    let mut r = ModuleResult::ok().with("cmd", cmd);
    r.changed = changed;
    r.stdout = Some(out);
    r.stderr = Some(err);
    if !changed {
        return Ok(Plan::Unchanged(r));
    }
    Ok(Plan::Change {
        preview: r,
        action: Box::new(Run { want: w, host }),
    })
}

async fn make_venv(w: &Want, host: &Host, env: &str, ctx: &Ctx<'_>) -> Result<(String, String), Failure> {
    let mut cmd = split(&w.venv_command).unwrap_or_default();
    if cmd.is_empty() {
        return Err("`virtualenv_command` is empty".into());
    }
    let find = exec(ctx, w, &format!("command -v {}", quote(&cmd[0]))).await?;
    let found = find.stdout_text().trim().to_string();
    if find.rc != 0 || found.is_empty() {
        return Err(format!("Failed to find required executable \"{}\" in paths: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", cmd[0]).into());
    }
    if !cmd[0].contains('/') {
        cmd[0] = found;
    }
    let is_venv = cmd[0].ends_with("pyvenv") || cmd.windows(2).any(|p| p[0] == "-m" && p[1] == "venv");
    if w.site_packages {
        cmd.push("--system-site-packages".into());
    } else {
        let help = exec(ctx, w, &format!("{} --help", quote(&cmd[0]))).await?;
        if help.stdout_text().split_whitespace().any(|x| x == "--no-site-packages") {
            cmd.push("--no-site-packages".into());
        }
    }
    if !is_venv {
        cmd.push(format!("-p{}", w.venv_python.as_deref().unwrap_or(&host.python)));
    } else if w.venv_python.is_some() {
        return Err(
            "virtualenv_python should not be used when using the venv module or pyvenv as virtualenv_command".into(),
        );
    }
    cmd.push(env.to_string());
    let out = exec(ctx, w, &join(&cmd)).await?;
    if out.rc != 0 {
        return Err(pip_failed(words(&cmd), &out.stdout_text(), &out.stderr_text()));
    }
    Ok((out.stdout_text(), out.stderr_text()))
}

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let Run { want: w, host } = run;
    let (mut out, mut err) = (String::new(), String::new());
    let mut created = false;
    let mut pip = host.pip.clone();
    if let Some(env) = &w.env
        && !host.venv_exists
    {
        let (o, e) = make_venv(&w, &host, env, ctx).await?;
        out.push_str(&o);
        err.push_str(&e);
        created = true;
        pip = find_host(&w, ctx).await?.pip;
    }
    let Some(pip) = pip else {
        let env = w.env.clone().unwrap_or_default();
        return Err(format!("Unable to find pip in the virtualenv, {env}, under any of these names: pip3, pip. Make sure pip is present in the virtualenv.").into());
    };
    let mut cmd = pip.clone();
    cmd.extend(state_args(&w.state).iter().map(|s| s.to_string()));
    if let Some(x) = &w.extra_args {
        cmd.extend(split(x).ok_or_else(|| format!("cannot split `extra_args`: {x}"))?);
    }
    let has_vcs = w.names.as_ref().is_some_and(|n| {
        let vcs = regex::Regex::new(r"^(svn|git|hg|bzr)\+").expect("a valid regex");
        n.iter().any(|x| vcs.is_match(x))
    });
    if w.names.is_some() {
        cmd.extend(w.packages.iter().map(Requirement::to_pip));
    } else if let Some(r) = &w.requirements {
        cmd.extend(["-r".to_string(), r.clone()]);
    }
    let before = if w.requirements.is_some() || has_vcs {
        Some(list_packages(&w, &pip, ctx).await?.1)
    } else {
        None
    };
    let prefix = w
        .env
        .as_ref()
        .map_or(String::new(), |e| format!("PATH={}/bin:$PATH ", quote(e)));
    let res = exec(ctx, &w, &format!("{prefix}{}", join(&cmd))).await?;
    let (o, e) = (res.stdout_text(), res.stderr_text());
    out.push_str(&o);
    err.push_str(&e);
    let not_installed =
        res.rc == 1 && w.state == "absent" && (o.contains("not installed") || e.contains("not installed"));
    if res.rc != 0 && !not_installed {
        return Err(pip_failed(words(&cmd), &out, &err));
    }
    let changed = if w.state == "absent" {
        o.contains("Successfully uninstalled")
    } else {
        match before {
            None => o.contains("Successfully installed"),
            Some(b) => b != list_packages(&w, &pip, ctx).await?.1,
        }
    };
    let opt = |v: &Option<String>| v.as_deref().map_or(Value::from(()), Value::from);
    let mut r = ModuleResult::ok()
        .with("cmd", words(&cmd))
        .with("name", w.names.as_deref().map_or(Value::from(()), words))
        .with("version", opt(&w.version))
        .with("state", w.state.as_str())
        .with("requirements", opt(&w.requirements))
        .with("virtualenv", opt(&w.env));
    r.changed = changed || created;
    r.stdout = Some(out);
    r.stderr = Some(err);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_read_and_match_as_packaging_does() {
        let r = parse_requirement("Django >= 1.11 , <2.0");
        assert_eq!(r.to_pip(), "Django<2.0,>=1.11");
        assert!(r.satisfied_by("1.11.3"));
        assert!(!r.satisfied_by("2.0"));
        assert_eq!(r.plain.as_ref().unwrap().canonical, "django");
        assert!(
            parse_requirement("/tmp/x-1.0.tar.gz").plain.is_none()
                || parse_requirement("/tmp/x-1.0.tar.gz").to_pip() == "/tmp/x-1.0.tar.gz"
        );
        assert!(parse_requirement("demo==1.*").satisfied_by("1.4"));
        assert!(parse_requirement("demo~=1.4").satisfied_by("1.9"));
        assert!(!parse_requirement("demo~=1.4").satisfied_by("2.0"));
        assert!(!parse_requirement("demo>1.0").satisfied_by("1.0rc1"));
        assert_eq!(
            recover_names(&["django>1.11.1".into(), "<1.11.3".into(), "ipaddress".into()]),
            vec!["django>1.11.1,<1.11.3", "ipaddress"]
        );
    }
}

//! `user` and `group`: local accounts on a Linux host through shadow-utils (`useradd`,
//! `usermod`, `userdel`, `groupadd`, `groupmod`, `groupdel`), deciding what to run as
//! ansible-core 2.19's user and group modules (their Linux path) decide it, and reporting what
//! they report. One read of `getent` per task gives the state; the change is one command.

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::{join, quote};
use minijinja::Value;
use minijinja::value::ValueKind;

/// `user`: a local account.
pub struct User;

static USER: ModuleSpec = ModuleSpec {
    params: &[
        req("name").aliases(&["user"]),
        p("state").choices(&["present", "absent"]),
        p("uid"),
        p("non_unique"),
        p("group"),
        p("groups"),
        p("append"),
        p("comment"),
        p("home"),
        p("shell"),
        p("password"),
        p("update_password").choices(&["always", "on_create"]),
        p("create_home").aliases(&["createhome"]),
        p("move_home"),
        p("skeleton"),
        p("system"),
        p("force"),
        p("remove"),
        p("password_lock"),
    ],
    ..ModuleSpec::new("user", BUILTIN)
};

impl Module for User {
    fn spec(&self) -> &'static ModuleSpec {
        &USER
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_user(args, ctx))
    }
}

/// `group`: a local group.
pub struct Group;

static GROUP: ModuleSpec = ModuleSpec {
    params: &[
        req("name"),
        p("state").choices(&["present", "absent"]),
        p("gid"),
        p("system"),
        p("force"),
        p("non_unique"),
    ],
    ..ModuleSpec::new("group", BUILTIN)
};

impl Module for Group {
    fn spec(&self) -> &'static ModuleSpec {
        &GROUP
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_group(args, ctx))
    }
}

/// A line of `/etc/passwd` (`pwd.getpwnam`), with the shadow hash in place of `x`.
#[derive(Debug, Clone)]
struct Passwd {
    uid: i64,
    gid: i64,
    comment: String,
    home: String,
    shell: String,
    password: String,
}

/// A line of `/etc/group`.
#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: i64,
    members: Vec<String>,
}

/// What one read of the host says about an account and the groups.
#[derive(Debug, Default)]
struct Accounts {
    user: Option<Passwd>,
    groups: Vec<GroupEntry>,
    /// Those of the paths asked about that exist.
    existing: Vec<String>,
    /// Whether the account's own home exists.
    home_exists: bool,
}

impl Accounts {
    /// `grp.getgrgid(int(g))`, else `grp.getgrnam(g)`, as Ansible looks a group up.
    fn group(&self, g: &str) -> Option<&GroupEntry> {
        g.parse::<i64>()
            .ok()
            .and_then(|gid| self.groups.iter().find(|e| e.gid == gid))
            .or_else(|| self.groups.iter().find(|e| e.name == g))
    }
}

fn parse_group_line(line: &str) -> Option<GroupEntry> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 4 {
        return None;
    }
    Some(GroupEntry {
        name: f[0].to_string(),
        gid: f[2].parse().ok()?,
        members: f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect(),
    })
}

/// Read the account `name` (when given), every group, and which of `paths` exist.
async fn read(ctx: &Ctx<'_>, name: Option<&str>, paths: &[&str]) -> Result<Accounts, Failure> {
    let mut s = String::from("export LC_ALL=C\n");
    if let Some(n) = name {
        let n = quote(n);
        s.push_str(&format!(
            "if l=$(getent passwd {n}); then printf 'P %s\\n' \"$l\"; printf 'S %s\\n' \"$(getent shadow {n} | cut -d: -f2)\"; \
             h=$(printf %s \"$l\" | cut -d: -f6); [ -n \"$h\" ] && [ -e \"$h\" ] && echo H; fi\n"
        ));
    }
    s.push_str("getent group | sed 's/^/G /'\n");
    for path in paths {
        let q = quote(path);
        s.push_str(&format!("[ -e {q} ] && printf 'E %s\\n' {q}\n"));
    }
    s.push_str("true\n");
    let out = exec(ctx, s).await?;
    if out.rc != 0 {
        return Err(format!("cannot read the host's accounts: {}", out.stderr_text().trim()).into());
    }
    let mut a = Accounts::default();
    let mut shadow = None;
    for line in out.stdout_text().lines() {
        if let Some(rest) = line.strip_prefix("P ") {
            let f: Vec<&str> = rest.splitn(7, ':').collect();
            if f.len() == 7 {
                a.user = Some(Passwd {
                    uid: f[2].parse().unwrap_or(-1),
                    gid: f[3].parse().unwrap_or(-1),
                    comment: f[4].to_string(),
                    home: f[5].to_string(),
                    shell: f[6].to_string(),
                    password: f[1].to_string(),
                });
            }
        } else if let Some(rest) = line.strip_prefix("S ") {
            shadow = Some(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("G ") {
            a.groups.extend(parse_group_line(rest));
        } else if let Some(rest) = line.strip_prefix("E ") {
            a.existing.push(rest.to_string());
        } else if line == "H" {
            a.home_exists = true;
        }
    }
    // Ansible's user_info: a one-character (or empty) passwd field means "look in shadow".
    if let (Some(u), Some(sh)) = (a.user.as_mut(), shadow)
        && u.password.chars().count() <= 1
    {
        u.password = sh;
    }
    Ok(a)
}

async fn exec(ctx: &Ctx<'_>, script: String) -> Result<crate::connection::Output, Failure> {
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    Ok(ctx.conn.exec(&cmd).await?)
}

/// An integer parameter (`uid`, `gid`): Ansible's `type='int'`.
fn int_arg(args: &Args, k: &str) -> Result<Option<i64>, Failure> {
    match args.str(k)? {
        None => Ok(None),
        Some(s) => {
            s.trim().parse::<i64>().map(Some).map_err(|_| {
                format!("argument '{k}' is of type str and we were unable to convert to int: '{s}'").into()
            })
        }
    }
}

/// A `type='list', elements='str'` parameter: a list, or a comma-separated string.
fn list_arg(args: &Args, k: &str) -> Result<Option<Vec<String>>, Failure> {
    let Some(v) = args.get(k) else { return Ok(None) };
    if v.kind() == ValueKind::Seq {
        let items = v.try_iter().map_err(|e| e.to_string())?;
        return Ok(Some(items.map(|x| crate::values::value_to_string(&x)).collect()));
    }
    let s = crate::values::value_to_string(v);
    Ok(Some(
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
    ))
}

/// The command a change runs and what happens after it.
struct Run {
    argv: Vec<String>,
    /// A home directory to make after the command (Ansible's create_homedir + chown_homedir).
    make_home: Option<(String, Option<String>)>,
    /// The result as the plan saw it; fields that the host now tells are read again.
    preview: ModuleResult,
    /// The account to read back for `uid`, `group`... (`None`: the group module's `gid`).
    read_back: ReadBack,
}

enum ReadBack {
    Nothing,
    User { name: String, groups: Option<String> },
    Group { name: String, system: bool },
}

apply_by!(Run, apply);

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let mut r = run.preview;
    if !run.argv.is_empty() {
        let out = exec(ctx, join(&run.argv)).await?;
        let stdout = out.stdout_text();
        let stderr = out.stderr_text();
        if out.rc != 0 {
            let mut f = ModuleResult::failed(stderr.clone());
            f.rc = Some(i64::from(out.rc));
            if let ReadBack::User { name, .. } | ReadBack::Group { name, .. } = &run.read_back {
                f.data.insert("name".into(), Value::from(name.as_str()));
            }
            return Err(Failure::Failed(Box::new(f)));
        }
        // Ansible reports them only when there is something to say.
        r.stdout = (!stdout.is_empty()).then_some(stdout);
        r.stderr = (!stderr.is_empty()).then_some(stderr);
    }
    match &run.read_back {
        ReadBack::Nothing => {}
        ReadBack::User { name, groups } => {
            let a = read(ctx, Some(name), &[]).await?;
            if let Some(u) = &a.user {
                if let Some((home, skel)) = &run.make_home {
                    make_home(ctx, home, skel.as_deref(), u.uid, u.gid).await?;
                }
                user_fields(&mut r, u, groups.as_deref());
            }
        }
        ReadBack::Group { name, system } => {
            let a = read(ctx, None, &[]).await?;
            if let Some(g) = a.groups.iter().find(|g| &g.name == name) {
                r.data.insert("system".into(), Value::from(*system));
                r.data.insert("gid".into(), Value::from(g.gid));
            }
        }
    }
    Ok(r)
}

/// A missing home directory, made as Ansible makes it: a copy of the skeleton (or an empty
/// directory), the mode from login.defs' HOME_MODE or UMASK, owned by the user throughout.
async fn make_home(ctx: &Ctx<'_>, home: &str, skel: Option<&str>, uid: i64, gid: i64) -> Result<(), Failure> {
    let h = quote(home);
    let k = quote(skel.unwrap_or("/etc/skel"));
    let script = format!(
        "set -e\n[ -e {h} ] && exit 0\n\
         if [ -e {k} ] && [ {k} != /dev/null ]; then mkdir -p \"$(dirname {h})\"; cp -a {k} {h}; else mkdir -p {h}; fi\n\
         if [ -f /etc/login.defs ]; then\n\
         \x20 m=$(awk '$1==\"HOME_MODE\" && $2~/^[0-9]+$/ {{print $2; exit}}' /etc/login.defs)\n\
         \x20 if [ -z \"$m\" ]; then u=$(awk '$1==\"UMASK\" && $2~/^[0-9]+$/ {{v=$2}} END {{print v}}' /etc/login.defs); \
         m=$(printf '%o' $(( 0777 & ~0${{u:-022}} ))); fi\n\
         \x20 chmod \"$m\" {h}\nfi\n\
         chown -R {uid}:{gid} {h}\n"
    );
    let out = exec(ctx, script).await?;
    if out.rc != 0 {
        return Err(out.stderr_text().trim().to_string().into());
    }
    Ok(())
}

/// The account's fields as Ansible's user module reports a present user.
fn user_fields(r: &mut ModuleResult, u: &Passwd, groups: Option<&str>) {
    r.data.insert("uid".into(), Value::from(u.uid));
    r.data.insert("group".into(), Value::from(u.gid));
    r.data.insert("comment".into(), Value::from(u.comment.as_str()));
    r.data.insert("home".into(), Value::from(u.home.as_str()));
    r.data.insert("shell".into(), Value::from(u.shell.as_str()));
    if let Some(g) = groups {
        r.data.insert("groups".into(), Value::from(g));
    }
}

fn change(preview: ModuleResult, run: Run) -> Plan {
    Plan::Change {
        preview,
        action: Box::new(run),
    }
}

async fn check_user(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let name = args.req_str("name")?;
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    let uid = int_arg(args, "uid")?;
    let non_unique = args.bool("non_unique", false)?;
    let group = args.str("group")?;
    let groups = list_arg(args, "groups")?;
    let append = args.bool("append", false)?;
    let comment = args.str("comment")?;
    let home = args.str("home")?;
    let shell = args.str("shell")?;
    let password = args.str("password")?;
    let update_password = args.str("update_password")?.unwrap_or_else(|| "always".into());
    let create_home = args.bool("create_home", true)?;
    let move_home = args.bool("move_home", false)?;
    let skeleton = args.str("skeleton")?;
    let system = args.bool("system", false)?;
    let force = args.bool("force", false)?;
    let remove = args.bool("remove", false)?;
    let password_lock = match args.get("password_lock") {
        None => None,
        Some(_) => Some(args.bool("password_lock", false)?),
    };
    if let Some(pw) = &password {
        ctx.run.secrets.add(pw);
    }
    // Ansible joins the list and splits it again: `groups` is reported as that string.
    let groups_s = groups.as_ref().map(|g| g.join(","));

    let mut paths: Vec<&str> = Vec::new();
    if let Some(h) = &home {
        paths.push(h);
        paths.push(parent(h));
    }
    let a = read(ctx, Some(&name), &paths).await?;
    let mut r = ModuleResult::ok()
        .with("name", name.as_str())
        .with("state", state.as_str());

    if state == "absent" {
        let Some(_) = &a.user else {
            return Ok(Plan::Unchanged(r));
        };
        let mut argv = vec!["userdel".to_string()];
        if force {
            argv.push("-f".into());
        }
        if remove {
            argv.push("-r".into());
        }
        argv.push(name.clone());
        r.changed = true;
        r.data.insert("force".into(), Value::from(force));
        r.data.insert("remove".into(), Value::from(remove));
        return Ok(change(
            ModuleResult::changed(),
            Run {
                argv,
                make_home: None,
                preview: r,
                read_back: ReadBack::Nothing,
            },
        ));
    }

    let group_of = |g: &str| {
        a.group(g)
            .ok_or_else(|| Failure::from(format!("Group {g} does not exist")))
    };
    let Some(u) = a.user.clone() else {
        // useradd, as Ansible's create_user_useradd builds it.
        let mut argv = vec!["useradd".to_string()];
        if let Some(uid) = uid {
            argv.extend(["-u".into(), uid.to_string()]);
            if non_unique {
                argv.push("-o".into());
            }
        }
        if let Some(g) = &group {
            group_of(g)?;
            argv.extend(["-g".into(), g.clone()]);
        } else if a.group(&name).is_some() {
            argv.push("-N".into());
        }
        if let Some(gs) = groups.as_ref().filter(|g| !g.is_empty()) {
            let primary = group.as_deref().and_then(|g| a.group(g)).map(|g| g.gid);
            let mut set: Vec<String> = Vec::new();
            for g in gs {
                let e = group_of(g)?;
                if Some(e.gid) != primary && !set.contains(g) {
                    set.push(g.clone());
                }
            }
            argv.extend(["-G".into(), set.join(",")]);
        }
        if let Some(c) = &comment {
            argv.extend(["-c".into(), c.clone()]);
        }
        let mut make_home = None;
        if let Some(h) = &home {
            // useradd cannot make missing parents: Ansible makes the home itself then.
            if create_home && !a.existing.iter().any(|e| e == parent(h)) {
                make_home = Some((h.clone(), skeleton.clone()));
            }
            argv.extend(["-d".into(), h.clone()]);
        }
        if let Some(s) = &shell {
            argv.extend(["-s".into(), s.clone()]);
        }
        if let Some(pw) = &password {
            argv.push("-p".into());
            argv.push(if password_lock == Some(true) {
                format!("!{pw}")
            } else {
                pw.clone()
            });
        }
        if create_home {
            argv.push("-m".into());
            if let Some(k) = &skeleton {
                argv.extend(["-k".into(), k.clone()]);
            }
        } else {
            argv.push("-M".into());
        }
        if system {
            argv.push("-r".into());
        }
        argv.push(name.clone());
        r.changed = true;
        r.data.insert("system".into(), Value::from(system));
        r.data.insert("create_home".into(), Value::from(create_home));
        if password.is_some() {
            r.data.insert("password".into(), Value::from("NOT_LOGGING_PASSWORD"));
        }
        // A home under missing parents is made (and chowned) by roll, as Ansible makes it.
        return Ok(change(
            ModuleResult::changed(),
            Run {
                argv,
                make_home,
                preview: r,
                read_back: ReadBack::User {
                    name: name.clone(),
                    groups: groups_s.clone(),
                },
            },
        ));
    };

    // usermod, as Ansible's modify_user_usermod builds it.
    let mut argv = vec!["usermod".to_string()];
    if let Some(uid) = uid.filter(|&x| x != u.uid) {
        argv.extend(["-u".into(), uid.to_string()]);
        if non_unique {
            argv.push("-o".into());
        }
    }
    if let Some(g) = &group {
        let e = group_of(g)?;
        if e.gid != u.gid {
            argv.extend(["-g".into(), e.gid.to_string()]);
        }
    }
    if let Some(gs) = &groups {
        let current: Vec<&str> = a
            .groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == &name))
            .map(|g| g.name.as_str())
            .collect();
        let mut wanted: Vec<String> = Vec::new();
        for g in gs {
            let e = group_of(g)?;
            if !wanted.contains(&e.name) {
                wanted.push(e.name.clone());
            }
        }
        let missing = wanted.iter().any(|g| !current.contains(&g.as_str()));
        let extra = current.iter().any(|c| !wanted.iter().any(|w| w == c));
        let need = if gs.is_empty() {
            !current.is_empty() && !append
        } else if append {
            missing
        } else {
            missing || extra
        };
        if need {
            if append && !gs.is_empty() {
                argv.push("-a".into());
            }
            argv.extend(["-G".into(), wanted.join(",")]);
        }
    }
    if let Some(c) = comment.as_ref().filter(|c| **c != u.comment) {
        argv.extend(["-c".into(), c.clone()]);
    }
    if let Some(h) = home.as_ref().filter(|h| **h != u.home) {
        argv.extend(["-d".into(), h.clone()]);
        if move_home {
            argv.push("-m".into());
        }
    }
    if let Some(s) = shell.as_ref().filter(|s| **s != u.shell) {
        argv.extend(["-s".into(), s.clone()]);
    }
    let locked = u.password.starts_with('!');
    if password_lock == Some(true) && !locked {
        argv.push("-L".into());
    } else if password_lock == Some(false) && locked {
        argv.push("-U".into());
    }
    if let Some(pw) = &password
        && update_password == "always"
        && u.password.trim_start_matches('!') != pw.trim_start_matches('!')
    {
        argv.retain(|x| x != "-U" && x != "-L");
        argv.push("-p".into());
        argv.push(if password_lock == Some(true) {
            format!("!{pw}")
        } else {
            pw.clone()
        });
    }
    r.data.insert("append".into(), Value::from(append));
    r.data.insert("move_home".into(), Value::from(move_home));
    if password.is_some() {
        r.data.insert("password".into(), Value::from("NOT_LOGGING_PASSWORD"));
    }
    user_fields(&mut r, &u, groups_s.as_deref());
    // The home that should exist afterwards: Ansible makes a missing one when create_home.
    let want_home = home.clone().unwrap_or_else(|| u.home.clone());
    let home_missing = create_home
        && match &home {
            Some(h) => !a.existing.contains(h),
            None => !a.home_exists,
        };
    let modifies = argv.len() > 1;
    if !modifies && !home_missing {
        return Ok(Plan::Unchanged(r));
    }
    r.changed = true;
    let preview = r.clone();
    argv.push(name.clone());
    Ok(change(
        preview.clone(),
        Run {
            argv: if modifies { argv } else { Vec::new() },
            make_home: home_missing.then(|| (want_home, skeleton.clone())),
            preview,
            read_back: ReadBack::User {
                name: name.clone(),
                groups: groups_s,
            },
        },
    ))
}

fn parent(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((p, _)) => p,
        None => ".",
    }
}

async fn check_group(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let name = args.req_str("name")?;
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    let gid = int_arg(args, "gid")?;
    let system = args.bool("system", false)?;
    let force = args.bool("force", false)?;
    let non_unique = args.bool("non_unique", false)?;
    if non_unique && gid.is_none() {
        return Err("non_unique is True but all of the following are missing: gid".into());
    }
    let a = read(ctx, None, &[]).await?;
    let current = a.groups.iter().find(|g| g.name == name);
    let mut r = ModuleResult::ok()
        .with("name", name.as_str())
        .with("state", state.as_str());
    let read_back = ReadBack::Group {
        name: name.clone(),
        system,
    };
    if state == "absent" {
        if current.is_none() {
            return Ok(Plan::Unchanged(r));
        }
        let mut argv = vec!["groupdel".to_string()];
        if force {
            argv.push("-f".into());
        }
        argv.push(name.clone());
        r.changed = true;
        return Ok(change(
            ModuleResult::changed(),
            Run {
                argv,
                make_home: None,
                preview: r,
                read_back: ReadBack::Nothing,
            },
        ));
    }
    let Some(g) = current else {
        let mut argv = vec!["groupadd".to_string()];
        if let Some(gid) = gid {
            argv.extend(["-g".into(), gid.to_string()]);
            if non_unique {
                argv.push("-o".into());
            }
        }
        if system {
            argv.push("-r".into());
        }
        argv.push(name.clone());
        r.changed = true;
        return Ok(change(
            ModuleResult::changed(),
            Run {
                argv,
                make_home: None,
                preview: r,
                read_back,
            },
        ));
    };
    r.data.insert("system".into(), Value::from(system));
    r.data.insert("gid".into(), Value::from(g.gid));
    match gid.filter(|&x| x != g.gid) {
        None => Ok(Plan::Unchanged(r)),
        Some(new) => {
            let mut argv = vec!["groupmod".to_string(), "-g".into(), new.to_string()];
            if non_unique {
                argv.push("-o".into());
            }
            argv.push(name.clone());
            r.changed = true;
            Ok(change(
                r.clone(),
                Run {
                    argv,
                    make_home: None,
                    preview: r,
                    read_back,
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_lines_parse_with_and_without_members() {
        let g = parse_group_line("ops:x:999:alice,bob").unwrap();
        assert_eq!((g.name.as_str(), g.gid), ("ops", 999));
        assert_eq!(g.members, ["alice", "bob"]);
        assert!(parse_group_line("app:x:2500:").unwrap().members.is_empty());
        assert!(parse_group_line("broken").is_none());
    }

    #[test]
    fn parents_of_homes() {
        assert_eq!(parent("/srv/alice"), "/srv");
        assert_eq!(parent("/alice"), "/");
        assert_eq!(parent("/srv/a/b/"), "/srv/a");
    }
}

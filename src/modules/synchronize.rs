//! `synchronize` (`ansible.posix.synchronize`): rsync between the controller and a host (push,
//! or `mode: pull`), through the ssh master roll already holds for that host, so rsync reaches
//! it with exactly the user, port, key, ssh config and known hosts roll's own connection uses.
//! What changed is read from rsync's itemized output; check mode is `rsync --dry-run`.

use super::spec::{ModuleSpec, p, req};
use super::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::connection::{Command, Connection, Local};
use crate::shell::{join, quote};
use crate::source::SourceDir;
use minijinja::Value;
use minijinja::value::ValueKind;
use std::path::PathBuf;

/// `synchronize` lives in ansible.posix; ansible-core's routing maps the short name to it.
const POSIX: &[&str] = &["ansible.posix"];

/// What rsync prints before each itemized change (`--out-format`), as the Ansible module does.
const CHANGED_MARKER: &str = "<<CHANGED>>";

/// `synchronize`: rsync a tree to or from a host.
pub struct Synchronize;

static SYNCHRONIZE: ModuleSpec = ModuleSpec {
    params: &[
        req("src"),
        req("dest"),
        p("mode").choices(&["push", "pull"]),
        p("archive"),
        p("checksum"),
        p("compress"),
        p("existing_only"),
        p("delete"),
        p("dirs"),
        p("recursive"),
        p("links"),
        p("copy_links"),
        p("perms"),
        p("times"),
        p("owner"),
        p("group"),
        p("rsync_path"),
        p("rsync_timeout"),
        p("rsync_opts"),
        p("partial"),
        p("delay_updates"),
        p("link_dest"),
        p("set_remote_user"),
        // How rsync's own ssh reaches the host when it runs on a delegate; through roll's
        // master (the usual case) the master already settled all of these.
        p("dest_port"),
        p("private_key"),
        p("verify_host"),
        p("use_ssh_args"),
        p("ssh_connection_multiplexing"),
        p("ssh_args"),
    ],
    // `mode: pull` writes the host's tree on the controller.
    capabilities: &[super::Capability::WritesController],
    ..ModuleSpec::new("synchronize", POSIX)
};

impl Module for Synchronize {
    fn spec(&self) -> &'static ModuleSpec {
        &SYNCHRONIZE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// Where rsync runs, and how it reaches the other end.
enum Route {
    /// Both paths are on the machine rsync runs on: the controller (a local host) or the host
    /// itself (`delegate_to` the task's own host).
    Local(Connection),
    /// rsync runs on the controller and reaches the host through roll's master for it.
    Master { remote: crate::connection::ssh::Ssh },
    /// rsync runs on a delegate (`conn`) and reaches the host with the delegate's own ssh.
    Delegate {
        conn: Connection,
        target: crate::connection::ssh::Target,
    },
}

/// One rsync invocation, as planned: the words before the paths, and both paths.
pub struct Sync {
    route: Route,
    /// rsync's options, without `--dry-run` and `--rsh`.
    opts: Vec<String>,
    /// An `--rsh` of the user's own in `rsync_opts`: then roll adds none.
    own_rsh: bool,
    src: Endpoint,
    dest: Endpoint,
    link_dest: bool,
    become_user: Option<String>,
}

/// A path of the transfer: on the machine rsync runs on, or on the host at the other end.
#[derive(Clone)]
enum Endpoint {
    Here(String),
    Remote(String),
}

apply_by!(Sync, apply);

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let sync = plan(args, ctx)?;
    // The plan is rsync's own answer: a dry run of the same transfer lists what it would do.
    let dry = run(&sync, ctx, true).await?;
    let mut result = dry.result(ctx);
    if !ctx.check_mode {
        // The command reported is the one the run executes.
        result
            .data
            .insert("cmd".into(), Value::from(dry.cmd.replacen(" --dry-run", "", 1)));
    }
    Ok(if dry.changed {
        Plan::Change {
            preview: result,
            action: Box::new(sync),
        }
    } else {
        Plan::Unchanged(result)
    })
}

async fn apply(sync: Sync, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let done = run(&sync, ctx, false).await?;
    let mut r = done.result(ctx);
    // What the dry run planned was done: the task changed the host even if rsync, racing
    // another writer, found nothing left to do.
    r.changed = true;
    Ok(r)
}

fn plan(args: &Args, ctx: &Ctx<'_>) -> Result<Sync, Failure> {
    let pull = args.str("mode")?.as_deref() == Some("pull");
    let src = args.req_str("src")?;
    let dest = args.req_str("dest")?;
    let host = ctx
        .scope
        .get_attr("inventory_hostname")
        .ok()
        .filter(|v| !v.is_undefined())
        .map(|v| crate::values::value_to_string(&v))
        .unwrap_or_default();
    // Ansible's rule: rsync runs on the delegate, or on the controller without one; when that
    // is the host the files go to (`delegate_to` the task's own host, or a local host) both
    // paths are local to it.
    let route = match (ctx.delegate_to, ctx.conn) {
        (Some(d), conn) if d == host => Route::Local(conn.clone()),
        (None, Connection::Local(_)) => Route::Local(ctx.conn.clone()),
        (None, Connection::Ssh(s)) => Route::Master { remote: s.clone() },
        (Some(_), Connection::Local(_)) => match (ctx.connect)(&host)? {
            Connection::Ssh(s) => Route::Master { remote: s },
            local => Route::Local(local),
        },
        (Some(_), delegate) => match (ctx.connect)(&host)? {
            Connection::Ssh(s) => Route::Delegate {
                conn: delegate.clone(),
                target: s.target().clone(),
            },
            Connection::Local(_) => {
                return Err(format!(
                    "`synchronize` delegated to another host cannot reach `{host}`, which runs on the controller"
                )
                .into());
            }
        },
    };
    let local = matches!(route, Route::Local(_));
    // The side rsync runs on is looked up like Ansible's: a relative path is a file of the
    // role or playbook (`files/`), keeping a trailing slash (it means "the contents of").
    let origin = |path: String| -> String {
        if local || path.contains(':') || path.starts_with('/') || matches!(route, Route::Delegate { .. }) {
            return path;
        }
        let found = crate::source::find_path_in(ctx.role_dir, ctx.playbook_dir, &path, SourceDir::Files)
            .unwrap_or_else(|| ctx.playbook_dir.join(&path));
        // Absolute, as Ansible's: the command reported then reads the same from anywhere.
        let found = std::fs::canonicalize(&found).unwrap_or(found);
        let mut s = found.display().to_string();
        if path.ends_with('/') && !s.ends_with('/') {
            s.push('/');
        }
        s
    };
    let (src, dest) = match (local, pull) {
        (true, _) => (Endpoint::Here(src), Endpoint::Here(dest)),
        (false, false) => (Endpoint::Here(origin(src)), Endpoint::Remote(dest)),
        (false, true) => (Endpoint::Remote(src), Endpoint::Here(origin(dest))),
    };

    let mut opts = Vec::new();
    let flag = |opts: &mut Vec<String>, on: bool, word: &str| {
        if on {
            opts.push(word.to_string());
        }
    };
    if args.bool("delay_updates", true)? {
        opts.extend(["--delay-updates".to_string(), "-F".to_string()]);
    }
    flag(&mut opts, args.bool("compress", true)?, "--compress");
    if let Some(t) = args.f64("rsync_timeout")?
        && t > 0.0
    {
        opts.push(format!("--timeout={}", t as u64));
    }
    flag(&mut opts, args.bool("delete", false)?, "--delete-after");
    flag(&mut opts, args.bool("existing_only", false)?, "--existing");
    flag(&mut opts, args.bool("checksum", false)?, "--checksum");
    flag(&mut opts, args.bool("copy_links", false)?, "--copy-links");
    let tri = |k: &str| -> Result<Option<bool>, Failure> {
        Ok(match args.get(k) {
            None => None,
            Some(_) => Some(args.bool(k, false)?),
        })
    };
    let archive = args.bool("archive", true)?;
    let each = ["recursive", "links", "perms", "times", "owner", "group"];
    if archive {
        opts.push("--archive".into());
        for k in each {
            if tri(k)? == Some(false) {
                opts.push(format!("--no-{k}"));
            }
        }
    } else {
        for k in each {
            if tri(k)? == Some(true) {
                opts.push(format!("--{k}"));
            }
        }
    }
    flag(&mut opts, args.bool("dirs", false)?, "--dirs");
    let mut rsync_path = args.str("rsync_path")?;
    let mut become_user = None;
    match (&route, &ctx.become_user) {
        // As Ansible: escalation happens on the host rsync connects to, never on the
        // controller; with a delegate to itself, rsync itself runs as that user.
        (Route::Local(_), b) => become_user = b.clone(),
        (_, Some(u)) if rsync_path.is_none() => rsync_path = Some(format!("sudo -u {u} rsync")),
        _ => {}
    }
    if let Some(rp) = rsync_path {
        opts.push(format!("--rsync-path={rp}"));
    }
    let rsync_opts = string_list(args, "rsync_opts")?;
    let own_rsh = rsync_opts.iter().any(|o| o.contains("--rsh"));
    opts.extend(rsync_opts);
    flag(&mut opts, args.bool("partial", false)?, "--partial");
    let link_dest = string_list(args, "link_dest")?;
    if !link_dest.is_empty() {
        // -vv: rsync does not count a hard link to the old tree as a change without it.
        opts.extend(["-H".to_string(), "-vv".to_string()]);
        for l in &link_dest {
            opts.push(format!("--link-dest={l}"));
        }
    }
    opts.push(format!("--out-format={CHANGED_MARKER}%i %n%L"));
    let mut sync = Sync {
        route,
        opts,
        own_rsh,
        src,
        dest,
        link_dest: !link_dest.is_empty(),
        become_user,
    };
    delegate_ssh(&mut sync, args)?;
    Ok(sync)
}

/// On a delegate, rsync's own ssh reaches the host as Ansible's would: the host's user, port
/// and key, and (unless `verify_host`) without checking its key.
fn delegate_ssh(sync: &mut Sync, args: &Args) -> Result<(), Failure> {
    let Route::Delegate { target, .. } = &sync.route else {
        return Ok(());
    };
    if sync.own_rsh {
        return Ok(());
    }
    let mut ssh = vec!["ssh".to_string()];
    if !args.bool("ssh_connection_multiplexing", false)? {
        ssh.extend(["-S".into(), "none".into()]);
    }
    if let Some(k) = args
        .str("private_key")?
        .or_else(|| target.key.as_ref().map(|k| k.display().to_string()))
    {
        ssh.extend(["-i".into(), k]);
    }
    if let Some(port) = args.str("dest_port")?.or_else(|| target.port.map(|p| p.to_string())) {
        ssh.extend(["-o".into(), format!("Port={port}")]);
    }
    if !args.bool("verify_host", false)? {
        ssh.extend([
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
        ]);
    }
    let mut rsh = join(&ssh);
    if let Some(extra) = args.str("ssh_args")? {
        rsh = format!("{rsh} {extra}");
    }
    sync.opts.push(format!("--rsh={rsh}"));
    sync.own_rsh = true;
    Ok(())
}

/// A list of strings given as a list or as one comma-separated string (Ansible's `type: list`).
fn string_list(args: &Args, k: &str) -> Result<Vec<String>, Failure> {
    match args.get(k) {
        None => Ok(Vec::new()),
        Some(v) if v.kind() == ValueKind::Seq => Ok(v
            .try_iter()
            .map_err(|e| e.to_string())?
            .map(|x| crate::values::value_to_string(&x))
            .collect()),
        Some(v) => Ok(crate::values::value_to_string(v)
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()),
    }
}

/// What one rsync run printed.
struct Ran {
    changed: bool,
    cmd: String,
    /// The output without the markers, as Ansible's `msg`.
    out: String,
    dest: String,
}

impl Ran {
    fn result(&self, ctx: &Ctx<'_>) -> ModuleResult {
        let lines: Vec<Value> = self
            .out
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(Value::from)
            .collect();
        let mut r = ModuleResult {
            changed: self.changed,
            rc: Some(0),
            msg: Some(self.out.clone()),
            ..ModuleResult::default()
        };
        r.data.insert("cmd".into(), Value::from(self.cmd.as_str()));
        r.data.insert("stdout_lines".into(), Value::from(lines));
        if ctx.diff && self.changed {
            r.data.insert(
                "diff".into(),
                Value::from(std::collections::BTreeMap::from([(
                    "prepared".to_string(),
                    Value::from(self.out.as_str()),
                )])),
            );
            r.diffs.push(FileDiff {
                path: self.dest.clone(),
                before: String::new(),
                after: self.out.clone(),
                change: Change::Update,
            });
        }
        r
    }
}

/// The words of the rsync command line, given the remote side's spelling (`HOST:`) and `--rsh`.
fn words(sync: &Sync, dry: bool, host: &str, rsh: Option<String>) -> Vec<String> {
    let mut w = vec!["rsync".to_string()];
    if dry {
        w.push("--dry-run".into());
    }
    w.extend(sync.opts.iter().cloned());
    if let Some(r) = rsh
        && !sync.own_rsh
    {
        w.push(format!("--rsh={r}"));
    }
    for e in [&sync.src, &sync.dest] {
        w.push(match e {
            Endpoint::Here(p) => p.clone(),
            Endpoint::Remote(p) => format!("{host}:{p}"),
        });
    }
    w
}

/// An address as the host part of an rsync path (IPv6 in brackets).
fn rsync_host(address: &str, user: Option<&str>) -> String {
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    match user {
        Some(u) => format!("{u}@{host}"),
        None => host,
    }
}

async fn run(sync: &Sync, ctx: &Ctx<'_>, dry: bool) -> Result<Ran, Failure> {
    let dest = match &sync.dest {
        Endpoint::Here(p) | Endpoint::Remote(p) => p.clone(),
    };
    let (out, cmd) = match &sync.route {
        Route::Local(conn) => {
            let w = words(sync, dry, "", None);
            let mut c = Command::new(join(&w));
            c.become_user = sync.become_user.clone();
            c.timeout = ctx.timeout;
            c.env = ctx.env.clone();
            (conn.exec(&c).await?, join(&w))
        }
        Route::Delegate { conn, target } => {
            let w = words(sync, dry, &rsync_host(&target.address, target.user.as_deref()), None);
            let mut c = Command::new(join(&w));
            c.timeout = ctx.timeout;
            c.env = ctx.env.clone();
            (conn.exec(&c).await?, join(&w))
        }
        Route::Master { remote } => {
            let host = rsync_host(&remote.target().address, None);
            remote
                .over_master(|socket: PathBuf| async move {
                    // A mux client of roll's master: no config, no second login, no fallback
                    // to a connection of its own should the master be gone.
                    let rsh = format!(
                        "ssh -F /dev/null -o ControlMaster=no -o BatchMode=yes -S {}",
                        quote(&socket.display().to_string())
                    );
                    let w = words(sync, dry, &host, Some(rsh));
                    let mut c = Command::new(join(&w));
                    c.timeout = ctx.timeout;
                    c.env = ctx.env.clone();
                    let out = Connection::Local(Local::default()).exec(&c).await;
                    // The socket's name is the run's own: the command reported names the host.
                    let shown = join(&words(sync, dry, &host, Some("ssh".into())));
                    out.map(|o| (o, shown))
                })
                .await??
        }
    };
    if out.rc == 127 {
        return Err("`rsync` is not installed (Debian package rsync) where it runs"
            .to_string()
            .into());
    }
    if out.rc != 0 {
        let mut r = ModuleResult::failed(out.stderr_text());
        r.rc = Some(out.rc as i64);
        r.data.insert("cmd".into(), Value::from(cmd));
        return Err(Failure::Failed(Box::new(r)));
    }
    let text = out.stdout_text();
    let changed = if sync.link_dest {
        !text.contains(&format!("{CHANGED_MARKER}."))
    } else {
        text.contains(CHANGED_MARKER)
    };
    Ok(Ran {
        changed,
        cmd,
        out: text.replace(CHANGED_MARKER, ""),
        dest,
    })
}

#[cfg(test)]
mod tests {
    use super::rsync_host;

    #[test]
    fn an_ipv6_address_is_bracketed_and_a_user_prefixed() {
        assert_eq!(rsync_host("::1", None), "[::1]");
        assert_eq!(rsync_host("10.0.0.1", Some("deploy")), "deploy@10.0.0.1");
    }
}

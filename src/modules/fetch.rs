//! `fetch`: a file of the host copied to the controller (`dest/HOST/SRC`, or `dest` itself with
//! `flat`), rewritten only when its SHA-1 differs from the copy already there, as ansible-core
//! 2.19's action plugin does it.

use super::files::{md5_hex, sha1_hex};
use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::Value;
use std::path::{Component, Path, PathBuf};

/// `fetch`, as ansible-core's.
pub struct Fetch;

static FETCH: ModuleSpec = ModuleSpec {
    params: &[
        req("src"),
        req("dest"),
        p("flat"),
        p("fail_on_missing"),
        p("validate_checksum"),
    ],
    capabilities: &[super::Capability::WritesController],
    ..ModuleSpec::new("fetch", BUILTIN)
};

impl Module for Fetch {
    fn spec(&self) -> &'static ModuleSpec {
        &FETCH
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// The copy to make: the host's `src` written to the controller's `dest`.
struct Transfer {
    src: String,
    dest: PathBuf,
    remote_checksum: String,
    validate: bool,
}

/// `os.path.normpath` for the controller path: `.` and repeated slashes go, `..` pops.
fn normpath(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// What is at `src` on the host (links followed).
enum Remote {
    Absent,
    Directory,
    File { sha1: String },
}

async fn remote(src: &str, ctx: &Ctx<'_>) -> Result<Remote, Failure> {
    let p = quote(src);
    let mut cmd = Command::new(format!(
        "if [ -d {p} ]; then echo directory; elif [ -e {p} ]; then s=$(sha1sum < {p}) || exit 1; echo \"file ${{s%% *}}\"; else echo absent; fi"
    ));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(format!("cannot read `{src}`: {}", out.stderr_text().trim()).into());
    }
    let text = out.stdout_text();
    Ok(match text.trim() {
        "directory" => Remote::Directory,
        "absent" => Remote::Absent,
        other => Remote::File {
            sha1: other.trim_start_matches("file ").to_string(),
        },
    })
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    // The action plugin refuses check mode outright: the task is skipped.
    if ctx.check_mode {
        let mut r = ModuleResult::ok().with_msg("check mode not (yet) supported for this module");
        r.skipped = true;
        return Ok(Plan::Unchanged(r));
    }
    let src = args.req_str("src")?;
    let original_dest = args.req_str("dest")?;
    let flat = args.bool("flat", false)?;
    let fail_on_missing = args.bool("fail_on_missing", true)?;
    let validate = args.bool("validate_checksum", true)?;
    let remote_checksum = match remote(&src, ctx).await? {
        Remote::File { sha1 } => sha1,
        Remote::Directory => {
            let msg = "remote file is a directory, fetch cannot work on directories";
            if fail_on_missing {
                return Err(msg.into());
            }
            return Ok(Plan::Unchanged(
                ModuleResult::ok().with_msg(format!("{msg}, not transferring, ignored")),
            ));
        }
        Remote::Absent => {
            // ansible-core says "ignored" whether or not it then fails the task.
            let msg = "the remote file does not exist, not transferring, ignored";
            if fail_on_missing {
                return Err(msg.into());
            }
            return Ok(Plan::Unchanged(
                ModuleResult::ok().with_msg(msg).with("file", src.as_str()),
            ));
        }
    };
    let dwim = |d: &str| {
        if Path::new(d).is_absolute() {
            PathBuf::from(d)
        } else {
            ctx.playbook_dir.join(d)
        }
    };
    let dest = if flat {
        let mut d = original_dest.clone();
        if Path::new(&d).is_dir() && !d.ends_with('/') {
            return Err(
                "dest is an existing directory, use a trailing slash if you want to fetch src into that directory"
                    .into(),
            );
        }
        if d.ends_with('/') {
            d.push_str(src.rsplit('/').next().unwrap_or(&src));
            if Path::new(&d).is_dir() {
                return Err(format!(
                    "calculated dest '{d}' is an existing directory, use another path that does not point to an existing directory"
                )
                .into());
            }
        }
        dwim(&d)
    } else {
        let host = ctx
            .scope
            .get_attr("inventory_hostname")
            .ok()
            .filter(|v| !v.is_undefined())
            .map(|v| v.to_string())
            .unwrap_or_default();
        PathBuf::from(format!("{}/{host}/{src}", dwim(&original_dest).display()))
    };
    let dest = normpath(&dest);
    let dest_text = dest.display().to_string();
    let local = std::fs::read(&dest).ok().filter(|_| dest.is_file());
    if let Some(data) = &local
        && sha1_hex(data) == remote_checksum
    {
        return Ok(Plan::Unchanged(
            ModuleResult::ok()
                .with("md5sum", md5_hex(data))
                .with("file", src.as_str())
                .with("dest", dest_text.as_str())
                .with("checksum", remote_checksum.as_str()),
        ));
    }
    let preview = ModuleResult::changed().with("dest", dest_text.as_str());
    let action = Transfer {
        src,
        dest,
        remote_checksum,
        validate,
    };
    Ok(Plan::Change {
        preview,
        action: Box::new(action),
    })
}

apply_by!(Transfer, apply);

async fn apply(t: Transfer, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let data = ctx
        .conn
        .read_file(&t.src, ctx.become_user.as_deref())
        .await?
        .ok_or_else(|| format!("the remote file `{}` disappeared, not transferring", t.src))?;
    let dest = t.dest.display().to_string();
    let write = || -> std::io::Result<()> {
        if let Some(dir) = t.dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&t.dest, &data)
    };
    write().map_err(|e| format!("Failed to fetch the file to `{dest}`: {e}"))?;
    let checksum = sha1_hex(&data);
    let mut r = ModuleResult::changed()
        .with("md5sum", md5_hex(&data))
        .with("dest", dest.as_str())
        .with("remote_md5sum", Value::from(()))
        .with("checksum", checksum.as_str())
        .with("remote_checksum", t.remote_checksum.as_str());
    if t.validate && checksum != t.remote_checksum {
        r.changed = false;
        r.failed = true;
        r.msg = Some("checksum mismatch".into());
        r.data.insert("file".into(), Value::from(t.src.as_str()));
        return Err(Failure::Failed(Box::new(r)));
    }
    Ok(r)
}

//! `copy`: given content, a file or a directory from the controller, or with `remote_src` a file
//! or directory already on the host, written as every file module writes (`files`); a
//! directory's tree is `copy_tree`'s.

use super::files::{Then, file_params, plan_upload, plan_write, sha1_hex};
use super::spec::{BUILTIN, ModuleSpec, ParamKind, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::FileKind;

/// `copy`: given content, or a file or directory from the controller or the host.
pub struct Copy;

static COPY: ModuleSpec = ModuleSpec {
    params: file_params![
        p("src").kind(ParamKind::ControllerFile),
        p("content"),
        req("dest"),
        p("backup"),
        p("validate"),
        p("force"),
        p("remote_src"),
        p("directory_mode"),
    ],
    one_of: &["src", "content"],
    exclusive: &[("src", "content")],
    ..ModuleSpec::new("copy", BUILTIN)
};

impl Module for Copy {
    fn spec(&self) -> &'static ModuleSpec {
        &COPY
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_copy(args, ctx))
    }
}

async fn check_copy(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let mut dest = args.req_str("dest")?;
    let content = match (args.get("content"), args.str("src")?) {
        (Some(c), _) => {
            let s = match c.kind() {
                minijinja::value::ValueKind::String => c.as_str().unwrap_or("").to_string(),
                _ => serde_json::to_string(c).map_err(|e| e.to_string())?,
            };
            s.into_bytes()
        }
        (None, Some(src)) if args.bool("remote_src", false)? => {
            let stat = ctx.conn.stat(&src, ctx.become_user.as_deref()).await?;
            let dest_stat = ctx.conn.stat(&dest, ctx.become_user.as_deref()).await?;
            // An existing directory as `dest` gets the source's name under it (nothing, for `src/`).
            let into_dir = |d: &str| {
                let base = src.rsplit('/').next().unwrap_or("");
                if d.ends_with('/') {
                    format!("{d}{base}")
                } else {
                    format!("{d}/{base}")
                }
            };
            if stat.kind == FileKind::Directory {
                // `src/` copies what the directory holds, `src` the directory itself.
                let shown = if dest_stat.kind == FileKind::Directory {
                    into_dir(&dest)
                } else {
                    dest.clone()
                };
                let entries = super::copy_tree::remote_tree(&src, !src.ends_with('/'), ctx).await?;
                return super::copy_tree::plan_tree(
                    &dest,
                    &shown,
                    &src,
                    super::copy_tree::From::Host,
                    entries,
                    args,
                    ctx,
                )
                .await;
            }
            if dest.ends_with('/') || dest_stat.kind == FileKind::Directory {
                dest = into_dir(&dest);
            }
            let content = ctx
                .conn
                .read_file(&src, ctx.become_user.as_deref())
                .await?
                .ok_or_else(|| format!("Source {src} not found"))?;
            return plan_remote_file(dest, src, content, args, ctx).await;
        }
        (None, Some(src)) => {
            let found =
                crate::source::find_path_in(ctx.role_dir, ctx.playbook_dir, &src, crate::source::SourceDir::Files);
            if let Some(dir) = found.as_ref().filter(|p| p.is_dir()) {
                let trailing = src.ends_with('/');
                let mut shown = dir.display().to_string();
                if trailing && !shown.ends_with('/') {
                    shown.push('/');
                }
                let entries = super::copy_tree::local_tree(dir, !trailing, ctx)?;
                return super::copy_tree::plan_tree(
                    &dest,
                    &dest,
                    &shown,
                    super::copy_tree::From::Controller,
                    entries,
                    args,
                    ctx,
                )
                .await;
            }
            let path = ctx
                .find_source(&src, crate::source::SourceDir::Files)
                .ok_or_else(|| ctx.missing_source(&src, crate::source::SourceDir::Files))?;
            if dest.ends_with('/') {
                dest.push_str(path.file_name().and_then(|n| n.to_str()).unwrap_or(""));
            }
            // A vault-encrypted source is sent decrypted, as Ansible's `copy` does.
            ctx.sources.read_controller_file(&path)?
        }
        (None, None) => return Err("give `content` or `src`".to_string().into()),
    };
    plan_upload(dest, content, args, ctx).await
}

/// `copy: remote_src:` of one file: written as any copy, reported as the module on the host
/// reports it (`src`, the SHA-1, and the size only of a destination that exists).
async fn plan_remote_file(
    dest: String,
    src: String,
    content: Vec<u8>,
    args: &Args,
    ctx: &Ctx<'_>,
) -> Result<Plan, Failure> {
    let checksum = sha1_hex(&content);
    let exists = super::copy_tree::size(&dest, ctx).await?.is_some();
    let shape = |mut r: ModuleResult| {
        r = r.with("src", src.as_str()).with("checksum", checksum.as_str());
        if !exists {
            r.data.shift_remove("size");
        }
        r
    };
    Ok(match plan_write(dest, content, args, ctx).await? {
        Plan::Unchanged(r) => Plan::Unchanged(shape(r)),
        // The source is the file on the host, not the temporary file the write went through.
        Plan::Change { preview, action } => Plan::Change {
            preview: shape(preview),
            action: Box::new(Then {
                inner: action,
                shape: move |r: ModuleResult| r.with("src", src.as_str()),
            }),
        },
        probe => probe,
    })
}

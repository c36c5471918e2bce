//! `template` and `file`, and the writing every file module shares (`copy`'s too): compare the
//! wanted file or path state with the host's, then write atomically (temp file beside the
//! destination, validate, rename) or change the path.

use super::spec::{BUILTIN, ModuleSpec, ParamKind, p, req};
use super::{Apply, Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::connection::{Command, FileAttrs, FileKind, FileStat};
use crate::shell::quote;

/// A file module's own parameters followed by ansible-core's common file arguments
/// (`add_file_common_args`): `mode`, `owner`, `group`, the SELinux context keys, `unsafe_writes`
/// and `attributes`. The SELinux keys are accepted and do nothing, as ansible-core does on a
/// host where SELinux is off (Debian's default); `unsafe_writes` only matters where an atomic
/// rename is impossible, which roll's writes never fall back from; `attributes` (chattr flags)
/// is accepted and not applied.
macro_rules! file_params {
    ($($param:expr),* $(,)?) => {
        &[
            $($param,)*
            $crate::modules::spec::p("mode"),
            $crate::modules::spec::p("owner"),
            $crate::modules::spec::p("group"),
            $crate::modules::spec::p("seuser"),
            $crate::modules::spec::p("serole"),
            $crate::modules::spec::p("setype"),
            $crate::modules::spec::p("selevel"),
            $crate::modules::spec::p("unsafe_writes"),
            $crate::modules::spec::p("attributes").aliases(&["attr"]),
        ]
    };
}
pub(crate) use file_params;

/// `template`: a file rendered from a Jinja template on the controller.
pub struct Template;

static TEMPLATE: ModuleSpec = ModuleSpec {
    params: file_params![
        req("src").kind(ParamKind::TemplateFile),
        req("dest"),
        p("backup"),
        p("validate"),
        p("force"),
    ],
    ..ModuleSpec::new("template", BUILTIN)
};

impl Module for Template {
    fn spec(&self) -> &'static ModuleSpec {
        &TEMPLATE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_template(args, ctx))
    }
}

/// `file`: a path's state (directory, absent, touched, link) and attributes.
pub struct File;

static FILE: ModuleSpec = ModuleSpec {
    params: file_params![
        p("path").aliases(&["dest", "name"]),
        p("state").choices(&["file", "directory", "absent", "touch", "link", "hard"]),
        p("src"),
        p("recurse"),
        p("force"),
    ],
    one_of: &["path"],
    ..ModuleSpec::new("file", BUILTIN)
};

impl Module for File {
    fn spec(&self) -> &'static ModuleSpec {
        &FILE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_file(args, ctx))
    }
}

/// A file to write.
pub struct Write {
    pub(crate) dest: String,
    pub(crate) content: Vec<u8>,
    pub(crate) attrs: FileAttrs,
    pub(crate) backup: bool,
    pub(crate) validate: Option<String>,
    /// Create a missing parent directory instead of failing.
    pub(crate) parents: bool,
}

/// A change to a path made by `file`.
pub enum FileOp {
    Mkdir {
        path: String,
        attrs: FileAttrs,
        recurse: bool,
    },
    Remove {
        path: String,
    },
    Touch {
        path: String,
        attrs: FileAttrs,
    },
    Link {
        src: String,
        path: String,
        hard: bool,
    },
    Attrs {
        path: String,
        attrs: FileAttrs,
        recurse: bool,
    },
}

fn attrs(args: &Args) -> Result<FileAttrs, String> {
    Ok(FileAttrs {
        mode: args.mode("mode")?,
        owner: args.str("owner")?,
        group: args.str("group")?,
    })
}

/// Attribute differences between what is there and what is wanted, as `key: before → after` lines.
fn attr_changes(stat: &FileStat, want: &FileAttrs) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if let Some(m) = want.mode
        && m != stat.mode
    {
        out.push(("mode".into(), format!("{:04o}", stat.mode), format!("{m:04o}")));
    }
    if let Some(o) = &want.owner
        && o != &stat.owner
        && o.parse::<u32>().is_err()
    {
        out.push(("owner".into(), stat.owner.clone(), o.clone()));
    }
    if let Some(g) = &want.group
        && g != &stat.group
        && g.parse::<u32>().is_err()
    {
        out.push(("group".into(), stat.group.clone(), g.clone()));
    }
    out
}

fn attr_diff(path: &str, changes: &[(String, String, String)]) -> FileDiff {
    FileDiff {
        path: path.to_string(),
        before: changes.iter().map(|(k, b, _)| format!("{k}: {b}\n")).collect(),
        after: changes.iter().map(|(k, _, a)| format!("{k}: {a}\n")).collect(),
        change: Change::Update,
    }
}

async fn check_template(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let src = args.req_str("src")?;
    let dest = args.req_str("dest")?;
    let file = ctx.template_source(&src)?;
    let fullpath = std::path::absolute(&file.path).unwrap_or_else(|_| file.path.clone());
    let vars = crate::vars::template_vars(&src, &fullpath, Some(&dest));
    let scope = crate::vars::with_template_vars(ctx.scope, vars, &["ansible_managed"]);
    let rendered = ctx.render_template(&file, &scope)?;
    plan_write(dest, rendered.into_bytes(), args, ctx).await
}

/// A destination as it is now: its stat and, when it is a file, its content.
pub struct CurrentFile {
    pub stat: FileStat,
    pub content: Option<Vec<u8>>,
}

impl CurrentFile {
    pub fn is_dir(&self) -> bool {
        self.stat.kind == FileKind::Directory
    }
}

/// Read a destination: one stat and, unless it is absent or a directory, one read.
pub async fn read_current(dest: &str, ctx: &Ctx<'_>) -> Result<CurrentFile, Failure> {
    let stat = ctx.conn.stat(dest, ctx.become_user.as_deref()).await?;
    let content = match stat.kind {
        FileKind::Absent | FileKind::Directory => None,
        _ => ctx.conn.read_file(dest, ctx.become_user.as_deref()).await?,
    };
    Ok(CurrentFile { stat, content })
}

pub(crate) async fn plan_write(dest: String, content: Vec<u8>, args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let current = read_current(&dest, ctx).await?;
    if current.is_dir() {
        return Err(format!("destination `{dest}` is a directory").into());
    }
    if current.content.is_some() && !args.bool("force", true)? {
        let r = ModuleResult::ok()
            .with("dest", dest.as_str())
            .with("size", content.len() as i64);
        return Ok(Plan::Unchanged(r.with_msg("file exists and `force` is false")));
    }
    Ok(plan_content(dest, current, content, args, false)?.0)
}

/// [`plan_content`] for a module that reports its own fields: `result` is what it registers,
/// marked changed with the write's diff when there is one (and the write's `backup_file`).
pub fn plan_content_as(
    dest: String,
    current: CurrentFile,
    content: Vec<u8>,
    args: &Args,
    parents: bool,
    result: ModuleResult,
) -> Result<Plan, Failure> {
    let (plan, _) = plan_content(dest, current, content, args, parents)?;
    Ok(match plan {
        Plan::Change { preview, action } => {
            let mut r = result;
            r.changed = true;
            r.diffs = preview.diffs;
            Plan::Change {
                preview: r.clone(),
                action: Box::new(Reported {
                    inner: action,
                    result: r,
                }),
            }
        }
        _ => Plan::Unchanged(result),
    })
}

/// A write, reported with the module's own fields.
struct Reported {
    inner: Box<dyn Apply>,
    result: ModuleResult,
}

impl Apply for Reported {
    fn apply<'a>(self: Box<Self>, ctx: &'a Ctx<'a>) -> Step<'a, ModuleResult> {
        Box::pin(async move {
            let done = self.inner.apply(ctx).await?;
            let mut r = self.result;
            if let Some(b) = done.data.get("backup_file") {
                r.data.insert("backup_file".into(), b.clone());
            }
            Ok(r)
        })
    }
}

/// The plan that makes `dest` hold `content` with the task's `mode`/`owner`/`group` (and
/// `backup`/`validate`), given what is there now; also whether attributes change. `parents`
/// creates a missing parent directory, as `lineinfile: create: true` does.
pub fn plan_content(
    dest: String,
    current: CurrentFile,
    content: Vec<u8>,
    args: &Args,
    parents: bool,
) -> Result<(Plan, bool), Failure> {
    let want = attrs(args)?;
    let base = ModuleResult::ok()
        .with("dest", dest.as_str())
        .with("size", content.len() as i64);
    let same_content = current.content.as_deref() == Some(content.as_slice());
    let changes = if current.content.is_some() {
        attr_changes(&current.stat, &want)
    } else {
        Vec::new()
    };
    if same_content && changes.is_empty() {
        return Ok((Plan::Unchanged(base), false));
    }
    let mut preview = base;
    preview.changed = true;
    if !same_content {
        preview.diffs.push(FileDiff {
            path: dest.clone(),
            before: current
                .content
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
            after: String::from_utf8_lossy(&content).into_owned(),
            change: if current.content.is_some() {
                Change::Update
            } else {
                Change::Create
            },
        });
    }
    let attrs_change = !changes.is_empty();
    if attrs_change {
        preview.diffs.push(attr_diff(&dest, &changes));
    }
    // When only attributes differ, the file is left in place and only they are changed.
    if same_content {
        let action = Box::new(FileOp::Attrs {
            path: dest,
            attrs: want,
            recurse: false,
        });
        return Ok((Plan::Change { preview, action }, attrs_change));
    }
    let write = Write {
        dest,
        content,
        attrs: want,
        backup: args.bool("backup", false)?,
        validate: args.str("validate")?,
        parents,
    };
    let action = Box::new(write);
    Ok((Plan::Change { preview, action }, attrs_change))
}

apply_by!(Write, apply_write);
apply_by!(FileOp, apply_file);

/// Write one of roll's own records on the host (a switch state, a claim): atomically, 0640, into
/// a directory that exists.
pub async fn write_record(ctx: &Ctx<'_>, dest: &str, content: Vec<u8>) -> Result<(), Failure> {
    let w = Write {
        dest: dest.to_string(),
        content,
        attrs: FileAttrs {
            mode: Some(0o640),
            ..FileAttrs::default()
        },
        backup: false,
        validate: None,
        parents: false,
    };
    apply_write(w, ctx).await.map(|_| ())
}

pub async fn apply_write(w: Write, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let p = quote(&w.dest);
    let mut script = format!(
        "umask 077\nd=$(dirname {p})\n{}[ -d \"$d\" ] || {{ echo \"directory $d does not exist\" >&2; exit 1; }}\n\
         t=$(mktemp \"$d/.roll.XXXXXXXX\") || exit 1\ntrap 'rm -f \"$t\"' EXIT\ncat > \"$t\" || exit 1\n",
        // A created parent gets the usual 0755, as Python's os.makedirs gives it in Ansible.
        if w.parents {
            "[ -d \"$d\" ] || (umask 022; mkdir -p \"$d\") || exit 1\n"
        } else {
            ""
        }
    );
    if let Some(o) = &w.attrs.owner {
        script.push_str(&format!("chown {} \"$t\" || exit 1\n", quote(o)));
    }
    if let Some(g) = &w.attrs.group {
        script.push_str(&format!("chgrp {} \"$t\" || exit 1\n", quote(g)));
    }
    // The temp file stays 0600 until it is complete and owned as asked; chmod comes after chown,
    // which would clear set-id bits.
    match w.attrs.mode {
        Some(m) => script.push_str(&format!("chmod {m:o} \"$t\" || exit 1\n")),
        None => script.push_str(&format!(
            "if [ -e {p} ]; then chmod \"$(stat -c %a {p})\" \"$t\"; else chmod 644 \"$t\"; fi || exit 1\n"
        )),
    }
    if let Some(v) = &w.validate {
        // `%s` is the candidate file; it is validated before it replaces anything.
        let cmd = v.replace("%s", "\"$t\"");
        script.push_str(&format!(
            "( {cmd} ) >&2 || {{ echo \"validation failed: {}\" >&2; exit 5; }}\n",
            v.replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`")
        ));
    }
    if w.backup {
        script.push_str(&format!(
            "if [ -e {p} ]; then b={p}.$(date +%Y-%m-%d@%H:%M:%S)~; cp -p {p} \"$b\" || exit 1; echo \"$b\"; fi\n"
        ));
    }
    script.push_str(&format!("mv -f \"$t\" {p} || exit 1\ntrap - EXIT\n"));
    let mut cmd = Command::new(script);
    cmd.stdin = Some(w.content.clone());
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        let mut r = ModuleResult::failed(if out.rc == 5 {
            format!("failed to validate `{}`", w.dest)
        } else {
            format!("cannot write `{}`: {}", w.dest, out.stderr_text().trim())
        });
        r.stderr = Some(out.stderr_text().trim_end().to_string());
        r.rc = Some(out.rc as i64);
        return Err(Failure::Failed(Box::new(r)));
    }
    let mut r = ModuleResult::changed()
        .with("dest", w.dest.as_str())
        .with("size", w.content.len() as i64);
    let backup = out.stdout_text().trim().to_string();
    if !backup.is_empty() {
        r = r.with("backup_file", backup);
    }
    Ok(r)
}

async fn check_file(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let path = args.req_str("path")?;
    let want = attrs(args)?;
    let stat = ctx.conn.stat(&path, ctx.become_user.as_deref()).await?;
    let state = match args.str("state")? {
        Some(s) => s,
        None if stat.kind == FileKind::Directory => "directory".into(),
        None => "file".into(),
    };
    let now = kind_name(&stat.kind);
    let base = ModuleResult::ok()
        .with("path", path.as_str())
        .with("state", state.as_str());
    let state_diff = |to: &str| FileDiff {
        path: path.clone(),
        before: format!("state: {now}\n"),
        after: format!("state: {to}\n"),
        change: match (stat.kind == FileKind::Absent, to) {
            (true, _) => Change::Create,
            (false, "absent") => Change::Remove,
            _ => Change::Update,
        },
    };
    let recurse = args.bool("recurse", false)?;
    if recurse && state != "directory" {
        let r = ModuleResult::failed("recurse option requires state to be 'directory'").with("path", path.as_str());
        return Err(Failure::Failed(Box::new(r)));
    }
    let change = |preview: ModuleResult, op: FileOp| {
        Ok(Plan::Change {
            preview,
            action: Box::new(op),
        })
    };
    match state.as_str() {
        "absent" => {
            if stat.kind == FileKind::Absent {
                return Ok(Plan::Unchanged(base));
            }
            let mut p = base;
            p.changed = true;
            p.diffs.push(state_diff("absent"));
            change(p, FileOp::Remove { path })
        }
        "directory" => match &stat.kind {
            FileKind::Absent => {
                let mut p = base;
                p.changed = true;
                p.diffs.push(state_diff("directory"));
                change(
                    p,
                    FileOp::Mkdir {
                        path,
                        attrs: want,
                        recurse,
                    },
                )
            }
            FileKind::Directory => attrs_plan(base, &path, &stat, want, recurse, ctx).await,
            other => Err(format!("`{path}` exists and is a {}, not a directory", kind_name(other)).into()),
        },
        "file" => match &stat.kind {
            FileKind::Absent => Err(format!("file `{path}` does not exist; use `state: touch` to create it").into()),
            FileKind::Directory => Err(format!("`{path}` is a directory, not a file").into()),
            _ => attrs_plan(base, &path, &stat, want, false, ctx).await,
        },
        "touch" => {
            // Touch always changes the timestamps, as in Ansible.
            let mut p = base;
            p.changed = true;
            if stat.kind == FileKind::Absent {
                p.diffs.push(state_diff("file"));
            }
            change(p, FileOp::Touch { path, attrs: want })
        }
        "link" | "hard" => {
            let src = args.req_str("src")?;
            let hard = state == "hard";
            let done = match &stat.kind {
                FileKind::Link(target) => !hard && *target == src,
                FileKind::File if hard => {
                    let out = ctx
                        .conn
                        .exec(&Command::new(format!("[ {} -ef {} ]", quote(&path), quote(&src))))
                        .await?;
                    out.rc == 0
                }
                _ => false,
            };
            if done {
                return Ok(Plan::Unchanged(base.with("src", src.as_str())));
            }
            if stat.kind == FileKind::Directory {
                return Err(format!("`{path}` is a directory; refusing to replace it with a link").into());
            }
            let mut p = base.with("src", src.as_str());
            p.changed = true;
            p.diffs.push(FileDiff {
                path: path.clone(),
                before: match &stat.kind {
                    FileKind::Link(t) => format!("link: {t}\n"),
                    k => format!("state: {}\n", kind_name(k)),
                },
                after: if hard {
                    format!("hard link: {src}\n")
                } else {
                    format!("link: {src}\n")
                },
                change: if stat.kind == FileKind::Absent {
                    Change::Create
                } else {
                    Change::Update
                },
            });
            change(p, FileOp::Link { src, path, hard })
        }
        other => Err(format!("unknown state `{other}`").into()),
    }
}

async fn attrs_plan(
    base: ModuleResult,
    path: &str,
    stat: &FileStat,
    want: FileAttrs,
    recurse: bool,
    ctx: &Ctx<'_>,
) -> Result<Plan, Failure> {
    let changes = attr_changes(stat, &want);
    // `recurse` applies the attributes to everything below too (links themselves excepted, as
    // ansible-core's walk skips them): a tree that already has them everywhere is unchanged.
    let below = recurse && below_differs(path, &want, ctx).await?;
    if changes.is_empty() && !below {
        return Ok(Plan::Unchanged(base));
    }
    let mut p = base;
    p.changed = true;
    if !changes.is_empty() {
        p.diffs.push(attr_diff(path, &changes));
    }
    Ok(Plan::Change {
        preview: p,
        action: Box::new(FileOp::Attrs {
            path: path.to_string(),
            attrs: want,
            recurse,
        }),
    })
}

/// Whether anything below directory `path` lacks the wanted mode, owner or group: one `find`
/// that stops at the first such path. Links keep their own mode (Linux has no `lchmod`) but take
/// the owner and group, as `chown -R` and ansible-core's walk give them.
async fn below_differs(path: &str, want: &FileAttrs, ctx: &Ctx<'_>) -> Result<bool, Failure> {
    let mut ids = Vec::new();
    if let Some(o) = &want.owner {
        ids.push(format!("! -user {}", quote(o)));
    }
    if let Some(g) = &want.group {
        ids.push(format!("! -group {}", quote(g)));
    }
    let mut all = ids.clone();
    if let Some(m) = want.mode {
        all.push(format!("! -perm {m:o}"));
    }
    if all.is_empty() {
        return Ok(false);
    }
    let links = if ids.is_empty() {
        String::new()
    } else {
        format!(" -o -type l \\( {} \\)", ids.join(" -o "))
    };
    let mut cmd = Command::new(format!(
        "find {} -mindepth 1 \\( ! -type l \\( {} \\){links} \\) -print -quit",
        quote(path),
        all.join(" -o ")
    ));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(format!("cannot read the tree below `{path}`: {}", out.stderr_text().trim()).into());
    }
    Ok(!out.stdout.is_empty())
}

fn kind_name(k: &FileKind) -> &'static str {
    match k {
        FileKind::Absent => "absent",
        FileKind::File => "file",
        FileKind::Directory => "directory",
        FileKind::Link(_) => "link",
        FileKind::Other => "special file",
    }
}

fn attrs_script(path: &str, a: &FileAttrs, recurse: bool) -> String {
    let r = if recurse { "-R " } else { "" };
    let p = quote(path);
    let mut s = String::new();
    if let Some(m) = a.mode {
        s.push_str(&format!("chmod {r}{m:o} {p} || exit 1\n"));
    }
    if let Some(o) = &a.owner {
        s.push_str(&format!("chown {r}{} {p} || exit 1\n", quote(o)));
    }
    if let Some(g) = &a.group {
        s.push_str(&format!("chgrp {r}{} {p} || exit 1\n", quote(g)));
    }
    s
}

async fn apply_file(op: FileOp, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let (script, path) = match &op {
        FileOp::Mkdir { path, attrs, recurse } => (
            format!(
                "mkdir -p {} || exit 1\n{}",
                quote(path),
                attrs_script(path, attrs, *recurse)
            ),
            path,
        ),
        FileOp::Remove { path } => (format!("rm -rf -- {}", quote(path)), path),
        FileOp::Touch { path, attrs } => (
            format!("touch {} || exit 1\n{}", quote(path), attrs_script(path, attrs, false)),
            path,
        ),
        FileOp::Link { src, path, hard } => {
            let flags = if *hard { "-f" } else { "-sfn" };
            (format!("ln {flags} {} {}", quote(src), quote(path)), path)
        }
        FileOp::Attrs { path, attrs, recurse } => (attrs_script(path, attrs, *recurse), path),
    };
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(Failure::Failed(Box::new(ModuleResult::failed(format!(
            "cannot change `{path}`: {}",
            out.stderr_text().trim()
        )))));
    }
    Ok(ModuleResult::changed().with("path", path.as_str()))
}

//! `template` and `file`, and the writing every file module shares (`copy`'s too): compare the
//! wanted file or path state with the host's, then write atomically (temp file beside the
//! destination, validate, rename) or change the path.

use super::spec::{BUILTIN, ModuleSpec, ParamKind, p, req};
use super::{Apply, Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::connection::{Command, FileAttrs, FileKind, FileStat, stat_script};
use crate::shell::quote;
use minijinja::Value;

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

/// A change to a path made by `file` (and by `copy`/`template` when only attributes differ).
pub struct FileOp {
    path: String,
    kind: OpKind,
    attrs: FileAttrs,
    /// The path's state before and the state asked for, as ansible-core's `file` names them in
    /// the `diff` it registers.
    prev: &'static str,
    wanted: &'static str,
    /// What the result names the path: `dest` for links and `touch`, else `path`.
    key: &'static str,
}

enum OpKind {
    /// Each missing directory is made with the attributes, as ansible-core's `file` makes them.
    Mkdir,
    Remove,
    Touch,
    Link {
        src: String,
        hard: bool,
    },
    Attrs {
        recurse: bool,
    },
}

impl FileOp {
    /// Attributes set on an existing file (what `copy`, `template` and the line editors do when
    /// the content is already right).
    fn attrs_of(path: String, attrs: FileAttrs, stat: &FileStat) -> FileOp {
        FileOp {
            path,
            kind: OpKind::Attrs { recurse: false },
            attrs,
            prev: state_name(stat),
            wanted: "file",
            key: "path",
        }
    }
}

/// The SHA-1 of `data` in hex: ansible-core's `checksum`.
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest as _;
    hex(&sha1::Sha1::digest(data))
}

/// The MD5 of `data` in hex: ansible-core's `md5sum`.
pub(crate) fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex(&md5::Md5::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A path's state as ansible-core's `file` names it (`get_state`).
fn state_name(stat: &FileStat) -> &'static str {
    match stat.kind {
        FileKind::Absent => "absent",
        FileKind::Directory => "directory",
        FileKind::Link(_) => "link",
        _ if stat.links > 1 => "hard",
        _ => "file",
    }
}

/// A mode as ansible-core prints one (`'0%03o'`).
fn mode_text(mode: u32) -> String {
    format!("0{mode:03o}")
}

/// The fields ansible-core adds to every result that names an existing path
/// (`AnsibleModule.add_path_info`): ids and names, mode, state and size, of the path itself.
pub(crate) fn path_info(r: ModuleResult, stat: &FileStat) -> ModuleResult {
    if stat.kind == FileKind::Absent {
        return r;
    }
    r.with("uid", stat.uid)
        .with("gid", stat.gid)
        .with("owner", stat.owner.as_str())
        .with("group", stat.group.as_str())
        .with("mode", mode_text(stat.mode))
        .with("state", state_name(stat))
        .with("size", stat.size)
}

/// The `diff` ansible-core's `file` registers: the path and, when they differ, the states before
/// and after (`initial_diff`), then each attribute that changed (`set_*_if_different`).
fn registered_file_diff(path: &str, prev: &str, wanted: &str, changed: Vec<(&str, Value, Value)>) -> Value {
    let mut before = vec![("path".to_string(), Value::from(path))];
    let mut after = before.clone();
    if prev != wanted {
        before.push(("state".into(), Value::from(prev)));
        after.push(("state".into(), Value::from(wanted)));
    }
    for (k, b, a) in changed {
        before.push((k.into(), b));
        after.push((k.into(), a));
    }
    Value::from_pairs(vec![
        ("before".to_string(), Value::from_pairs(before)),
        ("after".to_string(), Value::from_pairs(after)),
    ])
}

fn attrs(args: &Args) -> Result<FileAttrs, String> {
    Ok(FileAttrs {
        mode: args.mode("mode")?,
        owner: args.str("owner")?,
        group: args.str("group")?,
    })
}

/// Attribute differences between what is there and what is wanted, as `key: before → after`
/// lines. A numeric owner or group is compared with the id.
fn attr_changes(stat: &FileStat, want: &FileAttrs) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if let Some(m) = want.mode
        && m != stat.mode
    {
        out.push(("mode".into(), mode_text(stat.mode), mode_text(m)));
    }
    for (key, wanted, name, id) in [
        ("owner", &want.owner, &stat.owner, stat.uid),
        ("group", &want.group, &stat.group, stat.gid),
    ] {
        let Some(w) = wanted else { continue };
        match w.parse::<u32>() {
            Ok(n) if n != id => out.push((key.into(), id.to_string(), w.clone())),
            Ok(_) => {}
            Err(_) if w != name => out.push((key.into(), name.clone(), w.clone())),
            Err(_) => {}
        }
    }
    out
}

/// What check mode can register of attribute changes: the mode, and an owner or group given
/// as an id (ansible-core registers ids, which a name gives only once it is applied).
fn registered_changes(changes: &[(String, String, String)]) -> Vec<(&str, Value, Value)> {
    changes
        .iter()
        .filter_map(|(k, b, a)| match (k.as_str(), b.parse::<u32>(), a.parse::<u32>()) {
            ("mode", _, _) => Some(("mode", Value::from(b.as_str()), Value::from(a.as_str()))),
            (k, Ok(b), Ok(a)) => Some((
                if k == "owner" { "owner" } else { "group" },
                Value::from(b),
                Value::from(a),
            )),
            _ => None,
        })
        .collect()
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
    plan_upload(dest, rendered.into_bytes(), args, ctx).await
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

/// The plan that makes `dest` hold `content`, unless it exists and `force` is false: what the
/// `copy` module on the host does and reports.
pub(crate) async fn plan_write(dest: String, content: Vec<u8>, args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    match writable(&dest, &content, args, ctx).await? {
        Ok(current) => Ok(plan_content(dest, current, content, args, false)?.0),
        Err(kept) => Ok(kept),
    }
}

/// The destination as it is now, or the plan when nothing is to be written there: an error for
/// a directory, the unchanged result for a file that exists while `force` is false.
async fn writable(
    dest: &str,
    content: &[u8],
    args: &Args,
    ctx: &Ctx<'_>,
) -> Result<Result<CurrentFile, Plan>, Failure> {
    let current = read_current(dest, ctx).await?;
    if current.is_dir() {
        return Err(format!("destination `{dest}` is a directory").into());
    }
    if current.content.is_some() && !args.bool("force", true)? {
        let r = ModuleResult::ok().with("dest", dest).with("size", content.len() as i64);
        return Ok(Err(Plan::Unchanged(r.with_msg("file exists and `force` is false"))));
    }
    Ok(Ok(current))
}

/// [`plan_write`] of content from the controller, registered as ansible-core's copy action
/// (`copy`, `template`) registers it: new content as the `copy` module reports it (`dest`, the
/// `src` it went through, `md5sum`, `checksum`, the file's attributes; in check mode only that it
/// changes, and the diff), content already right as the `file` module reports setting the
/// attributes (`path`, the attributes' `diff`, the attributes, plus `checksum` and `dest`), and
/// `diff: []` outside diff mode.
pub(crate) async fn plan_upload(dest: String, content: Vec<u8>, args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let current = match writable(&dest, &content, args, ctx).await? {
        Ok(current) => current,
        Err(kept) => return Ok(kept),
    };
    let stat = current.stat.clone();
    let same_content = current.content.as_deref() == Some(content.as_slice());
    let checksum = sha1_hex(&content);
    let md5sum = md5_hex(&content);
    let copied = |mut r: ModuleResult| {
        // Outside diff mode the action registers its empty list of diffs.
        if !ctx.diff {
            r = r.with("diff", Value::from(Vec::<Value>::new()));
        }
        r
    };
    let as_file = |r: ModuleResult, changes: &[(String, String, String)]| {
        let mut r = path_info(r.with("path", dest.as_str()), &stat)
            .with("checksum", checksum.as_str())
            .with("dest", dest.as_str());
        if ctx.diff {
            let prev = state_name(&stat);
            r = r.with(
                "diff",
                registered_file_diff(&dest, prev, "file", registered_changes(changes)),
            );
        }
        copied(r)
    };
    let changes = attr_changes(&stat, &attrs(args)?);
    Ok(match plan_content(dest.clone(), current, content, args, false)?.0 {
        Plan::Unchanged(_) => Plan::Unchanged(as_file(ModuleResult::ok(), &changes)),
        Plan::Change { preview, action } if same_content => {
            let mut p = as_file(ModuleResult::changed(), &changes);
            p.diffs = preview.diffs;
            Plan::Change { preview: p, action }
        }
        // New content in check mode: the action registers only that it changes, and the diff.
        Plan::Change { preview, action } if ctx.check_mode => {
            let mut p = copied(ModuleResult::changed());
            p.diffs = preview.diffs;
            Plan::Change { preview: p, action }
        }
        Plan::Change { preview, action } => Plan::Change {
            preview: copied(
                preview
                    .with("checksum", checksum.as_str())
                    .with("md5sum", md5sum.as_str()),
            ),
            action,
        },
        probe => probe,
    })
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

/// An action whose result is reshaped once it ran (a module reporting a write its own way).
pub(crate) struct Then<F> {
    pub inner: Box<dyn Apply>,
    pub shape: F,
}

impl<F: FnOnce(ModuleResult) -> ModuleResult + Send + 'static> Apply for Then<F> {
    fn apply<'a>(self: Box<Self>, ctx: &'a Ctx<'a>) -> Step<'a, ModuleResult> {
        Box::pin(async move {
            let done = self.inner.apply(ctx).await?;
            Ok((self.shape)(done))
        })
    }
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
        let action = Box::new(FileOp::attrs_of(dest, want, &current.stat));
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

/// ansible-core's `backup_local`, as a shell step before a file `p` (quoted) is replaced: a copy
/// beside it named `NAME.PID.YYYY-MM-DD@HH:MM:SS~`, printed as `backup PATH`. The pid is the
/// shell's, one per step, so that two backups of one file in the same second both stay.
pub(crate) fn backup_script(p: &str) -> String {
    format!(
        "if [ -e {p} ]; then b={p}.$$.$(date +%Y-%m-%d@%H:%M:%S)~; cp -p {p} \"$b\" || exit 1; echo \"backup $b\"; fi\n"
    )
}

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
        script.push_str(&backup_script(&p));
    }
    // What was written where, and the file as it now is, for the result (the same round trip).
    script.push_str(&format!(
        "mv -f \"$t\" {p} || exit 1\ntrap - EXIT\necho \"src $t\"\necho {DONE}\n{}\n",
        stat_script(&w.dest)
    ));
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
    let text = out.stdout_text();
    let (said, after) = text.split_once(&format!("{DONE}\n")).unwrap_or((&text, ""));
    let mut r = ModuleResult::changed()
        .with("dest", w.dest.as_str())
        .with("size", w.content.len() as i64);
    for line in said.lines() {
        if let Some(b) = line.strip_prefix("backup ") {
            r = r.with("backup_file", b);
        } else if let Some(t) = line.strip_prefix("src ") {
            r = r.with("src", t);
        }
    }
    Ok(path_info(r, &FileStat::parse(after)))
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
    let wanted: &'static str = match state.as_str() {
        "absent" => "absent",
        "directory" => "directory",
        "file" => "file",
        "touch" => "touch",
        "link" => "link",
        "hard" => "hard",
        other => return Err(format!("unknown state `{other}`").into()),
    };
    let prev = state_name(&stat);
    let key = if matches!(wanted, "link" | "hard" | "touch") {
        "dest"
    } else {
        "path"
    };
    // What the module registers before it acts (an unchanged path, or check mode): the path as
    // it is, and in diff mode the diff ansible-core computes before acting.
    let found = |r: ModuleResult, changes: &[(String, String, String)]| {
        let mut r = path_info(r.with(key, path.as_str()), &stat);
        if ctx.diff {
            r = r.with(
                "diff",
                registered_file_diff(&path, prev, wanted, registered_changes(changes)),
            );
        }
        r
    };
    let now = kind_name(&stat.kind);
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
    let op = |kind: OpKind, attrs: FileAttrs| FileOp {
        path: path.clone(),
        kind,
        attrs,
        prev,
        wanted,
        key,
    };
    let change = |mut preview: ModuleResult, diff: Option<FileDiff>, op: FileOp| {
        preview.changed = true;
        preview.diffs.extend(diff);
        Ok(Plan::Change {
            preview,
            action: Box::new(op),
        })
    };
    match wanted {
        "absent" => {
            let gone = |r: ModuleResult| r.with("path", path.as_str()).with("state", "absent");
            if stat.kind == FileKind::Absent {
                return Ok(Plan::Unchanged(gone(ModuleResult::ok())));
            }
            let mut p = gone(ModuleResult::ok());
            if ctx.diff {
                p = p.with("diff", registered_file_diff(&path, prev, wanted, Vec::new()));
            }
            change(p, Some(state_diff("absent")), op(OpKind::Remove, want))
        }
        "directory" => match &stat.kind {
            FileKind::Absent => change(
                found(ModuleResult::ok(), &[]),
                Some(state_diff("directory")),
                op(OpKind::Mkdir, want),
            ),
            FileKind::Directory => attrs_plan(found, &path, &stat, op, want, recurse, ctx).await,
            other => Err(format!("`{path}` exists and is a {}, not a directory", kind_name(other)).into()),
        },
        "file" => match &stat.kind {
            FileKind::Absent => Err(format!("file `{path}` does not exist; use `state: touch` to create it").into()),
            FileKind::Directory => Err(format!("`{path}` is a directory, not a file").into()),
            _ => attrs_plan(found, &path, &stat, op, want, false, ctx).await,
        },
        "touch" => {
            // Touch always changes the timestamps, as in Ansible.
            let created = (stat.kind == FileKind::Absent).then(|| state_diff("file"));
            let changes = attr_changes(&stat, &want);
            change(found(ModuleResult::ok(), &changes), created, op(OpKind::Touch, want))
        }
        _ => {
            let src = args.req_str("src")?;
            let hard = wanted == "hard";
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
            let found = |r: ModuleResult| found(r.with("src", src.as_str()), &[]);
            if done {
                return Ok(Plan::Unchanged(found(ModuleResult::ok())));
            }
            if stat.kind == FileKind::Directory {
                return Err(format!("`{path}` is a directory; refusing to replace it with a link").into());
            }
            let shown = FileDiff {
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
            };
            change(
                found(ModuleResult::ok()),
                Some(shown),
                op(OpKind::Link { src: src.clone(), hard }, want),
            )
        }
    }
}

async fn attrs_plan(
    found: impl Fn(ModuleResult, &[(String, String, String)]) -> ModuleResult,
    path: &str,
    stat: &FileStat,
    op: impl Fn(OpKind, FileAttrs) -> FileOp,
    want: FileAttrs,
    recurse: bool,
    ctx: &Ctx<'_>,
) -> Result<Plan, Failure> {
    let changes = attr_changes(stat, &want);
    // `recurse` applies the attributes to everything below too (links themselves excepted, as
    // ansible-core's walk skips them): a tree that already has them everywhere is unchanged.
    let below = recurse && below_differs(path, &want, ctx).await?;
    if changes.is_empty() && !below {
        return Ok(Plan::Unchanged(found(ModuleResult::ok(), &changes)));
    }
    let mut p = found(ModuleResult::changed(), &changes);
    if !changes.is_empty() {
        p.diffs.push(attr_diff(path, &changes));
    }
    Ok(Plan::Change {
        preview: p,
        action: Box::new(op(OpKind::Attrs { recurse }, want)),
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

/// The commands that give `word` (a quoted path or a shell variable) the attributes; chmod after
/// chown, which would clear set-id bits.
fn attrs_script(word: &str, a: &FileAttrs, recurse: bool) -> String {
    let r = if recurse { "-R " } else { "" };
    let mut s = String::new();
    if let Some(o) = &a.owner {
        s.push_str(&format!("chown {r}{} {word} || exit 1\n", quote(o)));
    }
    if let Some(g) = &a.group {
        s.push_str(&format!("chgrp {r}{} {word} || exit 1\n", quote(g)));
    }
    if let Some(m) = a.mode {
        s.push_str(&format!("chmod {r}{m:o} {word} || exit 1\n"));
    }
    s
}

/// The markers between the parts of what a change's script prints: the path as it was made
/// (before its attributes), its times then, and the path after the change.
const MADE: &str = "--roll-made--";
const TIMES: &str = "--roll-times--";
const DONE: &str = "--roll-done--";

/// Make the change in one command, which also reports the path before and after its attributes
/// are set, so the result is registered as ansible-core's `file` registers it.
async fn apply_file(op: FileOp, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let p = quote(&op.path);
    let (made, times) = (
        format!("echo {MADE}\n{}\n", stat_script(&op.path)),
        format!("echo {TIMES}\nstat -c '%.9Y %.9X' {p}\n"),
    );
    let done = format!("echo {DONE}\n{}\n", stat_script(&op.path));
    let script = match &op.kind {
        // Each directory `mkdir -p` makes gets the attributes, topmost first.
        OpKind::Mkdir => format!(
            "new=; d={p}\nwhile [ ! -e \"$d\" ] && [ ! -L \"$d\" ]; do new=\"$d\n$new\"; d=$(dirname \"$d\"); done\n\
             mkdir -p -- {p} || exit 1\n{made}\
             printf '%s' \"$new\" | while IFS= read -r d; do\n[ -n \"$d\" ] || continue\n{}done || exit 1\n{done}",
            attrs_script("\"$d\"", &op.attrs, false)
        ),
        OpKind::Remove => format!("rm -rf -- {p}"),
        OpKind::Touch => format!(
            "[ -e {p} ] || : > {p} || exit 1\n{made}{times}{}touch {p} || exit 1\n{times}{done}",
            attrs_script(&p, &op.attrs, false)
        ),
        OpKind::Link { src, hard } => {
            let flags = if *hard { "-f" } else { "-sfn" };
            format!("ln {flags} {} {p} || exit 1\n{done}", quote(src))
        }
        OpKind::Attrs { recurse } => format!("{made}{}{done}", attrs_script(&p, &op.attrs, *recurse)),
    };
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(Failure::Failed(Box::new(ModuleResult::failed(format!(
            "cannot change `{}`: {}",
            op.path,
            out.stderr_text().trim()
        )))));
    }
    let r = ModuleResult::changed().with(op.key, op.path.as_str());
    if matches!(op.kind, OpKind::Remove) {
        let r = r.with("state", "absent");
        return Ok(if ctx.diff {
            r.with("diff", registered_file_diff(&op.path, op.prev, op.wanted, Vec::new()))
        } else {
            r
        });
    }
    let text = out.stdout_text();
    let part = |marker: &str| {
        text.split(&format!("{marker}\n"))
            .nth(1)
            .map(|t| t.split("--roll-").next().unwrap_or(""))
    };
    let after = FileStat::parse(part(DONE).unwrap_or(""));
    let mut r = path_info(r, &after);
    if let OpKind::Link { src, .. } = &op.kind {
        r = r.with("src", src.as_str());
    }
    if ctx.diff {
        let mut changed = Vec::new();
        if let Some(made) = part(MADE).map(FileStat::parse) {
            if made.mode != after.mode {
                changed.push((
                    "mode",
                    Value::from(mode_text(made.mode)),
                    Value::from(mode_text(after.mode)),
                ));
            }
            if made.uid != after.uid {
                changed.push(("owner", Value::from(made.uid), Value::from(after.uid)));
            }
            if made.gid != after.gid {
                changed.push(("group", Value::from(made.gid), Value::from(after.gid)));
            }
        }
        // `touch`'s times, before and after, as the module's float seconds.
        let stamps: Vec<Vec<f64>> = text
            .split(&format!("{TIMES}\n"))
            .skip(1)
            .map(|t| t.split_whitespace().take(2).filter_map(|n| n.parse().ok()).collect())
            .collect();
        if let [b, a] = stamps.as_slice()
            && b.len() == 2
            && a.len() == 2
        {
            changed.push(("mtime", Value::from(b[0]), Value::from(a[0])));
            changed.push(("atime", Value::from(b[1]), Value::from(a[1])));
        }
        r = r.with("diff", registered_file_diff(&op.path, op.prev, op.wanted, changed));
    }
    Ok(r)
}

//! `unarchive`: a zip or tar archive (plain, gzip, bzip2, xz) unpacked into a directory on the
//! host with the host's `unzip` or `tar`, as ansible-core 2.19's module does: the archive comes
//! from the controller (copied over) or, with `remote_src`, is already on the host; `creates`
//! skips it; it is unpacked only when a file in it is missing from `dest` or differs there
//! (compared after unpacking it into a temporary directory beside `dest`, which check mode also
//! does and then removes); `list_files` returns its member names.

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::Value;
use minijinja::value::ValueKind;

/// `unarchive`: unpack an archive.
pub struct Unarchive;

static UNARCHIVE: ModuleSpec = ModuleSpec {
    params: &[
        req("src"),
        req("dest"),
        p("remote_src"),
        p("copy"),
        p("creates"),
        p("list_files"),
        p("extra_opts"),
        p("exclude"),
        p("include"),
        p("keep_newer"),
        p("owner"),
        p("group"),
        p("decrypt"),
    ],
    exclusive: &[("include", "exclude")],
    ..ModuleSpec::new("unarchive", BUILTIN)
};

impl Module for Unarchive {
    fn spec(&self) -> &'static ModuleSpec {
        &UNARCHIVE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

async fn sh(ctx: &Ctx<'_>, script: String, stdin: Option<Vec<u8>>) -> Result<crate::connection::Output, Failure> {
    let mut cmd = Command::new(script);
    cmd.stdin = stdin;
    cmd.env = ctx.env.clone();
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    Ok(ctx.conn.exec(&cmd).await?)
}

fn list(args: &Args, key: &str) -> Result<Vec<String>, Failure> {
    match args.get(key) {
        None => Ok(Vec::new()),
        Some(v) if v.kind() == ValueKind::Seq => Ok(v
            .try_iter()
            .map_err(|e| e.to_string())?
            .map(|x| crate::values::value_to_string(&x))
            .collect()),
        Some(v) => Ok(vec![crate::values::value_to_string(v)]),
    }
}

/// The handler Ansible names for the archive's format, and the shell commands that list it
/// and unpack it into `$to` (with the task's options, members and exclusions).
fn handler(format: &str, extra: &str, members: &str, exclude: &[String]) -> (&'static str, String, String) {
    let tar = |flag: &str, name: &'static str| {
        let excl: String = exclude.iter().map(|e| format!(" --exclude={}", quote(e))).collect();
        (
            name,
            format!("tar -t{flag}f \"$src\" {members}"),
            format!("tar -x{flag}f \"$src\" -C \"$to\"{excl} {extra} {members}"),
        )
    };
    match format {
        "zip" => {
            let excl = if exclude.is_empty() {
                String::new()
            } else {
                format!(" -x {}", exclude.iter().map(|e| quote(e)).collect::<Vec<_>>().join(" "))
            };
            (
                "ZipArchive",
                "unzip -Z1 \"$src\"".to_string(),
                format!("unzip -o -q {extra} \"$src\" {members}{excl} -d \"$to\""),
            )
        }
        "gzip" => tar("z", "TgzArchive"),
        "bzip2" => tar("j", "TarBzipArchive"),
        "xz" => tar("J", "TarXzArchive"),
        _ => tar("", "TarArchive"),
    }
}

struct Action {
    script: String,
    stdin: Option<Vec<u8>>,
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let src = args.req_str("src")?;
    let dest = args.req_str("dest")?;
    let remote = args.bool("remote_src", !args.bool("copy", true)?)?;
    if let Some(c) = args.str("creates")? {
        let out = sh(ctx, format!("test -e {}", quote(&c)), None).await?;
        if out.rc == 0 {
            let mut r = ModuleResult::ok().with_msg(format!("skipped, since {c} exists"));
            r.skipped = true;
            return Ok(Plan::Unchanged(r));
        }
    }
    let content = if remote {
        None
    } else {
        let path = ctx
            .find_source(&src, crate::source::SourceDir::Files)
            .ok_or_else(|| format!("Source '{src}' failed to transfer"))?;
        Some(ctx.sources.read_controller_file(&path)?)
    };
    let extra = list(args, "extra_opts")?
        .iter()
        .map(|o| quote(o))
        .collect::<Vec<_>>()
        .join(" ");
    let include = list(args, "include")?;
    let members = include.iter().map(|o| quote(o)).collect::<Vec<_>>().join(" ");
    let exclude = list(args, "exclude")?;
    let d = quote(&dest);
    // One script: the archive in place (copied over, kept in a temporary file), its format
    // (what `file` or the first bytes say), its members, and whether dest already holds them.
    let mut s = String::from("set -u\nw=$(mktemp -d) || exit 1\ntrap 'rm -rf \"$w\"' EXIT\n");
    if remote {
        s.push_str(&format!(
            "src={}\n[ -e \"$src\" ] || {{ echo \"Source '$src' does not exist\" >&2; exit 3; }}\n",
            quote(&src)
        ));
    } else {
        s.push_str("src=\"$w/archive\"; cat > \"$src\" || exit 1\n");
    }
    s.push_str(&format!(
        "[ -s \"$src\" ] || {{ echo \"Invalid archive '{src}', the file is 0 bytes\" >&2; exit 3; }}\n\
         [ -d {d} ] || {{ echo \"Destination '{dest}' is not a directory\" >&2; exit 3; }}\n\
         m=$(od -An -tx1 -N6 \"$src\" | tr -d ' \\n')\n\
         case $m in 504b*) f=zip;; 1f8b*) f=gzip;; 425a68*) f=bzip2;; fd377a585a00) f=xz;; *) f=tar;; esac\n\
         echo \"format $f\"\n"
    ));
    let script_for = |f: &str| {
        let (name, ls, x) = handler(f, &extra, &members, &exclude);
        format!(
            "{f})\n  echo \"handler {name}\"\n  {ls} > \"$w/list\" 2>\"$w/err\" || {{ echo \"Failed to find handler for \\\"$src\\\": $(cat \"$w/err\")\" >&2; exit 3; }}\n  x() {{ {x}; }} ;;\n"
        )
    };
    s.push_str("case $f in\n");
    for f in ["zip", "gzip", "bzip2", "xz", "tar"] {
        s.push_str(&script_for(f));
    }
    s.push_str("esac\n");
    s.push_str("sed 's/^/file /' \"$w/list\"\n");
    // Unpacked into the temporary directory (with the task's options), then what it holds is
    // compared path by path with dest.
    s.push_str(&format!(
        "mkdir \"$w/x\" && to=\"$w/x\" && x >\"$w/out\" 2>&1 || {{ echo \"failed to unpack $src: $(cat \"$w/out\")\" >&2; exit 4; }}\n\
         same=yes\n\
         cd \"$w/x\" && find . -mindepth 1 > \"$w/got\" || exit 1\n\
         while IFS= read -r n; do\n\
         \x20 if [ -L \"$n\" ]; then [ -L {d}/\"$n\" ] || same=no\n\
         \x20 elif [ -d \"$n\" ]; then [ -d {d}/\"$n\" ] || same=no\n\
         \x20 elif [ -f \"$n\" ]; then cmp -s \"$n\" {d}/\"$n\" || same=no; fi\n\
         done < \"$w/got\"\n\
         cd / && echo \"same $same\"\n"
    ));
    let out = sh(ctx, s, content.clone()).await?;
    if out.rc != 0 {
        let err = out.stderr_text();
        return Err(err
            .trim()
            .lines()
            .last()
            .unwrap_or("unarchive failed")
            .to_string()
            .into());
    }
    let text = out.stdout_text();
    let mut files = Vec::new();
    let (mut handler_name, mut format, mut same) = (String::new(), String::new(), false);
    for line in text.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "file" => files.push(Value::from(v)),
            "handler" => handler_name = v.to_string(),
            "format" => format = v.to_string(),
            "same" => same = v == "yes",
            _ => {}
        }
    }
    let mut r = ModuleResult::ok()
        .with("handler", handler_name.as_str())
        .with("dest", dest.as_str())
        .with("src", src.as_str());
    if args.bool("list_files", false)? {
        r = r.with("files", Value::from(files));
    }
    // Ansible's tar handlers do not run in check mode (the task is skipped); its zip one does.
    if ctx.check_mode && format != "zip" {
        let mut r = ModuleResult::ok()
            .with_msg("remote module (ansible.legacy.unarchive) does not support check mode when using gtar");
        r.skipped = true;
        return Ok(Plan::Unchanged(r));
    }
    if same {
        return Ok(Plan::Unchanged(r));
    }
    r.changed = true;
    let (_, _, x) = handler(&format, &extra, &members, &exclude);
    let mut apply = String::from("set -u\nw=$(mktemp -d) || exit 1\ntrap 'rm -rf \"$w\"' EXIT\n");
    if remote {
        apply.push_str(&format!("src={}\n", quote(&src)));
    } else {
        apply.push_str("src=\"$w/archive\"; cat > \"$src\" || exit 1\n");
    }
    apply.push_str(&format!("to={d}\n{x}\n"));
    let mut attrs = String::new();
    if let Some(o) = args.str("owner")? {
        attrs.push_str(&format!("chown -R {} {d}\n", quote(&o)));
    }
    if let Some(g) = args.str("group")? {
        attrs.push_str(&format!("chgrp -R {} {d}\n", quote(&g)));
    }
    apply.push_str(&attrs);
    Ok(Plan::Change {
        preview: r,
        action: Box::new(Action {
            script: apply,
            stdin: content,
        }),
    })
}

apply_by!(Action, apply);

async fn apply(a: Action, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let out = sh(ctx, a.script, a.stdin).await?;
    let mut r = ModuleResult::changed();
    let results = Value::from_pairs([
        ("rc", Value::from(out.rc)),
        ("out", Value::from(out.stdout_text())),
        ("err", Value::from(out.stderr_text())),
    ]);
    r.data.insert("extract_results".into(), results);
    if out.rc != 0 {
        r.failed = true;
        r.msg = Some(format!("failed to unpack: {}", out.stderr_text().trim()));
        return Err(Failure::Failed(Box::new(r)));
    }
    Ok(r)
}

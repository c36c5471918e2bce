//! `stat` and `slurp`: read a path's metadata, or a file's bytes, as ansible-core 2.19 reports
//! them. `stat` is one shell command on the host (GNU `stat`, `test`, `readlink`, the checksum
//! tool, `file` and `lsattr` when present), parsed here into Ansible's fields.

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::{Command, FileKind};
use crate::shell::quote;
use base64::Engine;
use minijinja::Value;

/// `stat`: a path's type, mode, owner, times, and optionally checksum, MIME type, attributes.
pub struct Stat;

static STAT: ModuleSpec = ModuleSpec {
    params: &[
        req("path").aliases(&["dest", "name"]),
        p("follow"),
        p("get_checksum"),
        p("get_mime").aliases(&["mime", "mime_type", "mime-type"]),
        p("get_attributes").aliases(&["attr", "attributes"]),
        p("checksum_algorithm")
            .aliases(&["checksum", "checksum_algo"])
            .choices(&["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]),
    ],
    ..ModuleSpec::new("stat", BUILTIN)
};

impl Module for Stat {
    fn spec(&self) -> &'static ModuleSpec {
        &STAT
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_stat(args, ctx))
    }
}

/// `slurp`: a file's content, base64-encoded.
pub struct Slurp;

static SLURP: ModuleSpec = ModuleSpec {
    params: &[req("src").aliases(&["path"])],
    ..ModuleSpec::new("slurp", BUILTIN)
};

impl Module for Slurp {
    fn spec(&self) -> &'static ModuleSpec {
        &SLURP
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_slurp(args, ctx))
    }
}

/// The permission bits Ansible's `stat` and `find` report one by one, by their names.
pub(super) const MODE_BITS: [(&str, u32); 11] = [
    ("wusr", 0o200),
    ("rusr", 0o400),
    ("xusr", 0o100),
    ("wgrp", 0o020),
    ("rgrp", 0o040),
    ("xgrp", 0o010),
    ("woth", 0o002),
    ("roth", 0o004),
    ("xoth", 0o001),
    ("isuid", 0o4000),
    ("isgid", 0o2000),
];

/// ansible-core's names for `lsattr`'s flags (module_utils/common/file.py).
const FILE_ATTRIBUTES: &[(char, &str)] = &[
    ('A', "noatime"),
    ('a', "append"),
    ('c', "compressed"),
    ('C', "nocow"),
    ('d', "nodump"),
    ('D', "dirsync"),
    ('e', "extents"),
    ('E', "encrypted"),
    ('h', "blocksize"),
    ('i', "immutable"),
    ('I', "indexed"),
    ('j', "journalled"),
    ('N', "inline"),
    ('s', "zero"),
    ('S', "synchronous"),
    ('t', "notail"),
    ('T', "blockroot"),
    ('u', "undelete"),
    ('X', "compressedraw"),
    ('Z', "compresseddirty"),
];

/// The one command that reads everything `stat` reports; each line is `key value`.
fn script(path: &str, follow: bool, checksum: Option<&str>, mime: bool, attributes: bool) -> String {
    let p = quote(path);
    let l = if follow { "-L " } else { "" };
    // Whether the path is there at all: followed, a dangling link is not.
    let there = if follow {
        format!("[ -e {p} ]")
    } else {
        format!("[ -e {p} ] || [ -L {p} ]")
    };
    let mut s = format!(
        "export LC_ALL=C\n\
         if ! st=$(stat {l}-c '%f %u %g %s %i %d %h %.9X %.9Y %.9Z %b %o %t %T' -- {p} 2>/dev/null); then\n\
         \x20 if {there}; then stat {l}-- {p} >&2; exit 1; fi\n\
         \x20 echo absent; exit 0\n\
         fi\n\
         echo \"stat $st\"\n\
         echo \"user $(stat {l}-c %U -- {p})\"\n\
         echo \"group $(stat {l}-c %G -- {p})\"\n\
         [ -r {p} ] && echo readable\n\
         [ -w {p} ] && echo writeable\n\
         [ -x {p} ] && echo executable\n"
    );
    // A link's own fields, only when the link itself is what is examined.
    if !follow {
        s.push_str(&format!(
            "if [ -L {p} ]; then printf 'source %s\\n' \"$(readlink -f -- {p})\"; printf 'target %s\\n' \"$(readlink -- {p})\"; fi\n"
        ));
    }
    if let Some(algo) = checksum {
        // Ansible checksums a regular, readable file: a link only when `follow` made its target
        // the thing examined.
        let not_link = if follow {
            "true".to_string()
        } else {
            format!("[ ! -L {p} ]")
        };
        s.push_str(&format!(
            "if [ -f {p} ] && [ -r {p} ] && {not_link}; then echo \"checksum $({algo}sum < {p} | cut -d' ' -f1)\"; fi\n"
        ));
    }
    if mime {
        s.push_str(&format!(
            "if command -v file >/dev/null && m=$(file --mime-type --mime-encoding -- {p}); then printf 'mime %s\\n' \"${{m##*:}}\"; else echo 'mime unknown'; fi\n"
        ));
    }
    if attributes {
        s.push_str(&format!(
            "if command -v lsattr >/dev/null && a=$(lsattr -vd -- {p} 2>/dev/null); then printf 'attr %s\\n' \"$a\"; fi\n"
        ));
    }
    s
}

/// Linux's `makedev`, for `device_type` (st_rdev) from `stat`'s major and minor.
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

/// Ansible's `stat` dictionary from the script's output.
fn parse(path: &str, out: &str, mime: bool, attributes: bool) -> Result<Vec<(String, Value)>, String> {
    let mut v: Vec<(String, Value)> = Vec::new();
    let mut put = |k: &str, x: Value| v.push((k.to_string(), x));
    let bad = || format!("unexpected output from stat: {out}");
    let mut lines = out.lines();
    let first = lines.next().ok_or_else(bad)?;
    if first == "absent" {
        put("exists", Value::from(false));
        return Ok(v);
    }
    let f: Vec<&str> = first.strip_prefix("stat ").ok_or_else(bad)?.split(' ').collect();
    if f.len() != 14 {
        return Err(bad());
    }
    let int = |i: usize, radix: u32| u64::from_str_radix(f[i], radix).map_err(|_| bad());
    let float = |i: usize| f[i].parse::<f64>().map_err(|_| bad());
    let raw = int(0, 16)?;
    let mode = raw & 0o7777;
    let kind = raw & 0o170000;
    put("exists", Value::from(true));
    put("path", Value::from(path));
    put("mode", Value::from(format!("{mode:04o}")));
    for (k, t) in [
        ("isdir", 0o040000),
        ("ischr", 0o020000),
        ("isblk", 0o060000),
        ("isreg", 0o100000),
        ("isfifo", 0o010000),
        ("islnk", 0o120000),
        ("issock", 0o140000),
    ] {
        put(k, Value::from(kind == t));
    }
    put("uid", Value::from(int(1, 10)?));
    put("gid", Value::from(int(2, 10)?));
    put("size", Value::from(int(3, 10)?));
    put("inode", Value::from(int(4, 10)?));
    put("dev", Value::from(int(5, 10)?));
    put("nlink", Value::from(int(6, 10)?));
    put("atime", Value::from(float(7)?));
    put("mtime", Value::from(float(8)?));
    put("ctime", Value::from(float(9)?));
    for (k, bit) in MODE_BITS {
        put(k, Value::from(mode & u64::from(bit) != 0));
    }
    put("blocks", Value::from(int(10, 10)?));
    put("block_size", Value::from(int(11, 10)?));
    put("device_type", Value::from(makedev(int(12, 16)?, int(13, 16)?)));
    let (mut readable, mut writeable, mut executable) = (false, false, false);
    let mut attr = None;
    let mut mime_seen = false;
    for line in lines {
        let (k, rest) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "readable" => readable = true,
            "writeable" => writeable = true,
            "executable" => executable = true,
            // `stat` says UNKNOWN where Python's pwd/grp lookups fail and Ansible leaves the key out.
            "user" if rest != "UNKNOWN" => put("pw_name", Value::from(rest)),
            "group" if rest != "UNKNOWN" => put("gr_name", Value::from(rest)),
            "source" => put("lnk_source", Value::from(rest)),
            "target" => put("lnk_target", Value::from(rest)),
            "checksum" => put("checksum", Value::from(rest)),
            "mime" => {
                let (m, c) = match rest.split_once(';') {
                    Some((m, c)) => (m.trim(), c.split_once('=').map_or("unknown", |(_, c)| c.trim())),
                    None => ("unknown", "unknown"),
                };
                put("mimetype", Value::from(m));
                put("charset", Value::from(c));
                mime_seen = true;
            }
            "attr" => attr = Some(rest.to_string()),
            _ => {}
        }
    }
    put("readable", Value::from(readable));
    put("writeable", Value::from(writeable));
    put("executable", Value::from(executable));
    if mime && !mime_seen {
        put("mimetype", Value::from("unknown"));
        put("charset", Value::from("unknown"));
    }
    if attributes {
        let mut parts = attr.as_deref().unwrap_or("").split_whitespace();
        let (version, flags) = match (parts.next(), parts.next()) {
            (Some(ver), Some(flags)) => (Value::from(ver), flags.replace('-', "")),
            _ => (Value::from(()), String::new()),
        };
        let names: Vec<Value> = flags
            .chars()
            .filter_map(|c| {
                FILE_ATTRIBUTES
                    .iter()
                    .find(|(f, _)| *f == c)
                    .map(|(_, n)| Value::from(*n))
            })
            .collect();
        put("version", version);
        put("attributes", Value::from(names));
        put("attr_flags", Value::from(flags));
    }
    Ok(v)
}

async fn check_stat(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let path = args.req_str("path")?;
    let follow = args.bool("follow", false)?;
    let algo = args.str("checksum_algorithm")?.unwrap_or_else(|| "sha1".into());
    let checksum = args.bool("get_checksum", true)?.then_some(algo.as_str());
    let mime = args.bool("get_mime", true)?;
    let attributes = args.bool("get_attributes", true)?;
    let mut cmd = Command::new(script(&path, follow, checksum, mime, attributes));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        let err = out.stderr_text();
        return Err(err
            .trim()
            .rsplit(": ")
            .next()
            .unwrap_or("stat failed")
            .to_string()
            .into());
    }
    let fields = parse(&path, &out.stdout_text(), mime, attributes)?;
    Ok(Plan::Unchanged(ModuleResult::ok().with(
        "stat",
        crate::values::from_serde(&fields.into_iter().collect::<crate::values::VarMap>()),
    )))
}

async fn check_slurp(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let src = args.req_str("src")?;
    let stat = ctx.conn.stat(&src, ctx.become_user.as_deref()).await?;
    let content = match stat.kind {
        FileKind::Absent => None,
        FileKind::Directory => {
            return Err(format!("Source is a directory and must be a file: {src}").into());
        }
        _ => ctx.conn.read_file(&src, ctx.become_user.as_deref()).await?,
    };
    let Some(content) = content else {
        return Err(format!("File not found: {src}").into());
    };
    let r = ModuleResult::ok()
        .with("content", base64::engine::general_purpose::STANDARD.encode(content))
        .with("encoding", "base64")
        .with("source", src.as_str());
    Ok(Plan::Unchanged(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_combine_as_linux_makedev_does() {
        // /dev/null is 1:3, /dev/tty 5:0.
        assert_eq!(makedev(1, 3), 259);
        assert_eq!(makedev(5, 0), 1280);
    }

    #[test]
    fn an_absent_path_is_only_exists_false() {
        let v = parse("/x", "absent\n", true, true).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "exists");
    }
}

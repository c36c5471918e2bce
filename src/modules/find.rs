//! `find`: the files, directories or links under paths that match names, age, size, mode and
//! content, as ansible-core 2.19 reports them. One `find -printf` per run lists every entry
//! with its metadata; the walk Ansible does with `os.walk` (each directory's files, then its
//! directories, then down into them) and its filters are reproduced here. A `contains` pattern
//! reads the candidate files in one more command. With `follow`, `find -L` reports what links
//! lead to (Ansible's entries under `follow` are still the links themselves, by `lstat`).

use super::lines::python_regex;
use super::spec::{BUILTIN, ModuleSpec, ParamKind, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use crate::values::{VarMap, from_serde, value_to_string};
use minijinja::Value;
use std::collections::BTreeMap;

pub struct Find;

static FIND: ModuleSpec = ModuleSpec {
    params: &[
        req("paths").aliases(&["name", "path"]),
        p("patterns").aliases(&["pattern"]),
        p("excludes").aliases(&["exclude"]),
        p("contains").kind(ParamKind::Regex),
        p("read_whole_file"),
        p("file_type").choices(&["any", "directory", "file", "link"]),
        p("age"),
        p("age_stamp").choices(&["atime", "ctime", "mtime"]),
        p("size"),
        p("recurse"),
        p("hidden"),
        p("follow"),
        p("get_checksum"),
        p("checksum_algorithm")
            .aliases(&["checksum", "checksum_algo"])
            .choices(&["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]),
        p("use_regex"),
        p("depth"),
        p("mode"),
        p("exact_mode"),
        p("encoding"),
        p("limit"),
    ],
    ..ModuleSpec::new("find", BUILTIN)
};

impl Module for Find {
    fn spec(&self) -> &'static ModuleSpec {
        &FIND
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_find(args, ctx))
    }
}

/// One entry `find -printf` listed.
#[derive(Debug, Clone)]
struct Entry {
    /// `f`, `d`, `l`, `p`, `s`, `c`, `b` of the entry itself; `dir` whether it leads to a
    /// directory (a link to one does, as `os.walk` counts it among the directories).
    kind: char,
    dir: bool,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    inode: u64,
    dev: u64,
    nlink: u64,
    atime: f64,
    mtime: f64,
    ctime: f64,
    user: String,
    group: String,
    path: String,
}

/// Fields of `-printf`, NUL-terminated so that any file name survives.
const FORMAT: &str = r"%y %Y %m %U %G %s %i %D %n %A@ %T@ %C@ %u/%g/%p\0";

fn parse_entry(rec: &str) -> Option<Entry> {
    let mut it = rec.splitn(13, ' ');
    let mut next = || it.next();
    let kind = next()?.chars().next()?;
    let target = next()?.chars().next()?;
    let mode = u32::from_str_radix(next()?, 8).ok()?;
    let num = |s: Option<&str>| s?.parse::<u64>().ok();
    let (uid, gid, size, inode, dev, nlink) = (
        num(next())?,
        num(next())?,
        num(next())?,
        num(next())?,
        num(next())?,
        num(next())?,
    );
    let float = |s: Option<&str>| s?.parse::<f64>().ok();
    let (atime, mtime, ctime) = (float(next())?, float(next())?, float(next())?);
    let rest = next()?;
    let (user, rest) = rest.split_once('/')?;
    let (group, path) = rest.split_once('/')?;
    Some(Entry {
        kind,
        dir: target == 'd',
        mode,
        uid,
        gid,
        size,
        inode,
        dev,
        nlink,
        atime,
        mtime,
        ctime,
        user: user.to_string(),
        group: group.to_string(),
        path: path.to_string(),
    })
}

/// `os.walk`'s order (top-down; in each directory its non-directories, then its directories,
/// each in listing order) over entries `find` listed depth-first: one group per directory
/// walked, with the number of entries it holds (what Ansible counts as examined). Entries
/// deeper than `max_depth` are counted in their directory but neither kept nor walked into.
fn walk_order(root: &str, entries: Vec<Entry>, follow: bool, max_depth: Option<usize>) -> Vec<(usize, Vec<Entry>)> {
    let root = match root.trim_end_matches('/') {
        "" => "/".to_string(),
        r => r.to_string(),
    };
    let root_depth = root.matches('/').count();
    let mut children: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for e in entries {
        let parent = e.path.rsplit_once('/').map_or("", |(p, _)| p).to_string();
        children.entry(parent).or_default().push(e);
    }
    let mut groups = Vec::new();
    // Depth-first, in order: a stack of directories still to visit, pushed in reverse.
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Some(list) = children.remove(&dir) else {
            continue;
        };
        let looked = list.len();
        let (dirs, files): (Vec<Entry>, Vec<Entry>) = list
            .into_iter()
            .filter(|e| max_depth.is_none_or(|m| e.path.matches('/').count() - root_depth <= m))
            .partition(|e| e.dir);
        for d in dirs.iter().rev() {
            // A link to a directory is among `dirs` but walked into only with `follow`.
            if d.kind != 'l' || follow {
                stack.push(d.path.clone());
            }
        }
        let mut group = files;
        group.extend(dirs);
        groups.push((looked, group));
    }
    groups
}

/// Python's `fnmatch.fnmatch` on a file name (case-sensitive, as on POSIX).
fn fnmatch(name: &str, pattern: &str) -> bool {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("(?s:.*)"),
            '?' => re.push_str("(?s:.)"),
            '[' => {
                let mut class = String::new();
                let mut closed = false;
                let mut first = true;
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n == ']' && !first {
                        closed = true;
                        break;
                    }
                    first = false;
                    class.push(n);
                }
                if closed {
                    let class = class.strip_prefix('!').map_or(class.clone(), |c| format!("^{c}"));
                    re.push('[');
                    re.push_str(&class.replace('\\', "\\\\"));
                    re.push(']');
                } else {
                    re.push_str("\\[");
                    re.push_str(&regex::escape(&class));
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(name))
}

fn list_arg(args: &Args, k: &str) -> Result<Vec<String>, Failure> {
    let Some(v) = args.get(k) else { return Ok(Vec::new()) };
    let items: Vec<String> = match v.try_iter() {
        Ok(it) if v.as_str().is_none() => it.map(|x| value_to_string(&x)).collect(),
        _ => value_to_string(v).split(',').map(|s| s.trim().to_string()).collect(),
    };
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

/// `age` and `size` with their units, as ansible-core parses them.
fn with_unit(s: &str, units: &[(char, i64)]) -> Option<i64> {
    let s = s.to_lowercase();
    let (num, unit) = match s.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => (&s[..s.len() - 1], Some(c)),
        _ => (s.as_str(), None),
    };
    let n: i64 = num.parse().ok()?;
    match unit {
        None => Some(n),
        Some(u) => units.iter().find(|(c, _)| *c == u).and_then(|(_, m)| n.checked_mul(*m)),
    }
}

fn statinfo(e: &Entry) -> VarMap {
    let mut m = VarMap::new();
    let kind = |c: char| Value::from(e.kind == c);
    m.insert("path".into(), Value::from(e.path.as_str()));
    m.insert("mode".into(), Value::from(format!("{:04o}", e.mode & 0o7777)));
    m.insert("isdir".into(), kind('d'));
    m.insert("ischr".into(), kind('c'));
    m.insert("isblk".into(), kind('b'));
    m.insert("isreg".into(), kind('f'));
    m.insert("isfifo".into(), kind('p'));
    m.insert("islnk".into(), kind('l'));
    m.insert("issock".into(), kind('s'));
    m.insert("uid".into(), Value::from(e.uid));
    m.insert("gid".into(), Value::from(e.gid));
    m.insert("size".into(), Value::from(e.size));
    m.insert("inode".into(), Value::from(e.inode));
    m.insert("dev".into(), Value::from(e.dev));
    m.insert("nlink".into(), Value::from(e.nlink));
    m.insert("atime".into(), Value::from(e.atime));
    m.insert("mtime".into(), Value::from(e.mtime));
    m.insert("ctime".into(), Value::from(e.ctime));
    // `find` prints the number where there is no name; Python's lookup then gives "".
    let name = |n: &str, id: u64| {
        if n == id.to_string() {
            String::new()
        } else {
            n.to_string()
        }
    };
    m.insert("gr_name".into(), Value::from(name(&e.group, e.gid)));
    m.insert("pw_name".into(), Value::from(name(&e.user, e.uid)));
    for (k, bit) in super::stat::MODE_BITS {
        m.insert(k.into(), Value::from(e.mode & bit != 0));
    }
    m
}

async fn check_find(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let paths = list_arg(args, "paths")?;
    let use_regex = args.bool("use_regex", false)?;
    let mut patterns = list_arg(args, "patterns")?;
    if patterns.is_empty() {
        patterns.push(if use_regex { ".*" } else { "*" }.to_string());
    }
    let excludes = list_arg(args, "excludes")?;
    let file_type = args.str("file_type")?.unwrap_or_else(|| "file".into());
    let recurse = args.bool("recurse", false)?;
    let hidden = args.bool("hidden", false)?;
    let follow = args.bool("follow", false)?;
    let exact_mode = args.bool("exact_mode", true)?;
    let get_checksum = args.bool("get_checksum", false)?;
    let algo = args.str("checksum_algorithm")?.unwrap_or_else(|| "sha1".into());
    let read_whole = args.bool("read_whole_file", false)?;
    let age_stamp = args.str("age_stamp")?.unwrap_or_else(|| "mtime".into());
    let age = match args.str("age")? {
        None => None,
        Some(a) => Some(
            with_unit(&a, &[('s', 1), ('m', 60), ('h', 3600), ('d', 86400), ('w', 604800)])
                .ok_or_else(|| format!("failed to process age `{a}`"))?,
        ),
    };
    let size = match args.str("size")? {
        None => None,
        Some(s) => Some(
            with_unit(
                &s,
                &[('b', 1), ('k', 1 << 10), ('m', 1 << 20), ('g', 1 << 30), ('t', 1 << 40)],
            )
            .ok_or_else(|| format!("failed to process size `{s}`"))?,
        ),
    };
    let depth = match args.get("depth") {
        None => None,
        Some(v) => Some(
            value_to_string(v)
                .parse::<usize>()
                .map_err(|_| "`depth` must be a whole number")?,
        ),
    };
    let limit = match args.get("limit") {
        None => None,
        Some(v) => match value_to_string(v).parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(n) => return Err(format!("limit cannot be {n} (use None for unlimited)").into()),
            Err(_) => return Err("`limit` must be a whole number".into()),
        },
    };
    let mode = match args.str("mode")? {
        None => None,
        Some(m) => Some(u32::from_str_radix(&m, 8).map_err(|_| format!("`mode` must be octal, got `{m}`"))? & 0o7777),
    };
    let compile = |ps: &[String]| -> Result<Vec<regex::bytes::Regex>, String> {
        // Python's `re.match` anchors at the start only.
        ps.iter()
            .map(|p| python_regex(&format!("(?:{p})"), false, false))
            .collect()
    };
    let (pat_re, excl_re) = if use_regex {
        (compile(&patterns)?, compile(&excludes)?)
    } else {
        (Vec::new(), Vec::new())
    };
    let matches = |name: &str, pats: &[String], res: &[regex::bytes::Regex]| {
        if use_regex {
            res.iter()
                .any(|r| r.find(name.as_bytes()).is_some_and(|m| m.start() == 0))
        } else {
            pats.iter().any(|p| fnmatch(name, p))
        }
    };
    let name_ok =
        |name: &str| matches(name, &patterns, &pat_re) && (excludes.is_empty() || !matches(name, &excludes, &excl_re));

    // One command lists every entry under every path; a path that is no directory says so.
    // `depth: 0` is no limit in Ansible (it tests the value for truth); the entries one level
    // deeper are listed too, as Ansible examines them before it stops.
    let depth = depth.filter(|d| *d > 0 && recurse);
    let max = match (recurse, depth) {
        (false, _) => "-maxdepth 1 ".to_string(),
        (true, Some(d)) => format!("-maxdepth {} ", d + 1),
        (true, None) => String::new(),
    };
    let l = if follow { "-L " } else { "" };
    let mut script = String::from("export LC_ALL=C\n");
    for p in &paths {
        let q = quote(p);
        script.push_str(&format!(
            "if [ -d {q} ]; then printf 'root\\0'; find {l}{q} -mindepth 1 {max}-printf '{FORMAT}' 2>/dev/null; else printf 'notdir\\0'; fi\n"
        ));
    }
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    let text = out.stdout_text();
    let mut sections: Vec<Option<Vec<Entry>>> = Vec::new();
    for rec in text.split('\0').filter(|r| !r.is_empty()) {
        match rec {
            "root" => sections.push(Some(Vec::new())),
            "notdir" => sections.push(None),
            r => {
                let e = parse_entry(r).ok_or_else(|| format!("unexpected output from find: {r}"))?;
                if let Some(Some(list)) = sections.last_mut() {
                    list.push(e);
                }
            }
        }
    }
    let now = crate::clock::now_unix() as f64;
    let mut skipped = VarMap::new();
    let mut candidates: Vec<Entry> = Vec::new();
    let mut looked = 0;
    // With `contains`, a candidate may still be dropped later: `limit` then counts at the end.
    let limit_now = if args.get("contains").is_some() { None } else { limit };
    'paths: for (path, section) in paths.iter().zip(sections) {
        let Some(entries) = section else {
            skipped.insert(path.clone(), Value::from(format!("'{path}' is not a directory")));
            continue;
        };
        for (n, group) in walk_order(path, entries, follow, depth) {
            looked += n;
            for e in group {
                let name = e.path.rsplit('/').next().unwrap_or("");
                if name.starts_with('.') && !hidden {
                    continue;
                }
                let stamp = match age_stamp.as_str() {
                    "atime" => e.atime,
                    "ctime" => e.ctime,
                    _ => e.mtime,
                };
                let age_ok = age.is_none_or(|a| {
                    if a >= 0 {
                        now - stamp >= a as f64
                    } else {
                        now - stamp <= (-a) as f64
                    }
                });
                let size_ok = size.is_none_or(|s| {
                    if s >= 0 {
                        e.size >= s as u64
                    } else {
                        e.size <= (-s) as u64
                    }
                });
                let mode_ok = mode.is_none_or(|m| {
                    if exact_mode {
                        e.mode & 0o7777 == m
                    } else {
                        e.mode & m != 0
                    }
                });
                let common = name_ok(name) && age_ok && mode_ok;
                let take = match (file_type.as_str(), e.kind) {
                    ("any", 'f') => common && size_ok,
                    ("any", _) => common,
                    ("directory", 'd') | ("link", 'l') => common,
                    ("file", 'f') => common && size_ok,
                    _ => false,
                };
                if take {
                    candidates.push(e);
                    if Some(candidates.len()) == limit_now {
                        break 'paths;
                    }
                }
            }
        }
    }
    // `contains` (files only) and checksums read the candidates' bytes, in one more command.
    let contains = match args.str("contains")? {
        Some(c) if file_type == "file" => Some(c),
        _ => None,
    };
    let wants_bytes = |e: &Entry| e.kind == 'f' && (contains.is_some() || get_checksum);
    let mut sums: BTreeMap<String, (Vec<u8>, String)> = BTreeMap::new();
    let readable: Vec<&Entry> = candidates.iter().filter(|e| wants_bytes(e)).collect();
    if !readable.is_empty() {
        let mut s = String::new();
        for e in &readable {
            let q = quote(&e.path);
            let body = if contains.is_some() {
                format!("base64 -w0 < {q}")
            } else {
                ":".into()
            };
            let sum = if get_checksum {
                format!("{algo}sum < {q} | cut -d' ' -f1 | tr -d '\\n'")
            } else {
                ":".into()
            };
            s.push_str(&format!(
                "{{ {body}; }} 2>/dev/null; printf '\\0'; {{ {sum}; }} 2>/dev/null; printf '\\0'\n"
            ));
        }
        let mut cmd = Command::new(s);
        cmd.become_user = ctx.become_user.clone();
        cmd.timeout = ctx.timeout;
        let out = ctx.conn.exec(&cmd).await?;
        let text = out.stdout_text();
        let mut parts = text.split('\0');
        for e in &readable {
            let body = parts.next().unwrap_or("");
            let sum = parts.next().unwrap_or("").to_string();
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap_or_default();
            sums.insert(e.path.clone(), (bytes, sum));
        }
    }
    let content_re = match &contains {
        Some(c) => Some(python_regex(c, false, false)?),
        None => None,
    };
    let mut files: Vec<Value> = Vec::new();
    let mut msg = "All paths examined";
    for e in candidates {
        if let (Some(re), 'f') = (&content_re, e.kind) {
            let bytes = sums.get(&e.path).map(|(b, _)| b.as_slice()).unwrap_or(b"");
            let hit = if read_whole {
                re.is_match(bytes)
            } else {
                // Line by line with `re.match`: anchored at each line's start.
                bytes.split_inclusive(|&b| b == b'\n').any(|line| {
                    re.find(line.strip_suffix(b"\n").unwrap_or(line))
                        .is_some_and(|m| m.start() == 0)
                })
            };
            if !hit {
                continue;
            }
        }
        let mut m = statinfo(&e);
        if get_checksum && e.kind == 'f' {
            m.insert(
                "checksum".into(),
                Value::from(sums.get(&e.path).map(|(_, s)| s.clone()).unwrap_or_default()),
            );
        }
        files.push(from_serde(&m));
        if Some(files.len()) == limit {
            msg = "Limit of matches reached";
            break;
        }
    }
    if !skipped.is_empty() {
        msg = "Not all paths examined, check warnings for details";
    }
    let r = ModuleResult::ok()
        .with_msg(msg)
        .with("matched", files.len())
        .with("examined", looked)
        .with("skipped_paths", from_serde(&skipped))
        .with("files", Value::from(files));
    Ok(Plan::Unchanged(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_globs_as_python_does() {
        assert!(fnmatch("app.log", "*.log"));
        assert!(!fnmatch("app.log.1", "*.log"));
        assert!(fnmatch("a1", "a[0-9]"));
        assert!(fnmatch("ab", "a[!0-9]"));
        assert!(fnmatch("a[", "a["));
        assert!(fnmatch(".hidden", "*"));
    }

    #[test]
    fn ages_and_sizes_take_ansibles_units() {
        let age = [('s', 1), ('m', 60), ('h', 3600), ('d', 86400), ('w', 604800)];
        assert_eq!(with_unit("2d", &age), Some(172800));
        assert_eq!(with_unit("-30M", &age), Some(-1800));
        assert_eq!(with_unit("10", &age), Some(10));
        assert_eq!(with_unit("1y", &age), None);
    }
}

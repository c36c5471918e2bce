//! `copy` of a directory (from the controller, or on the host with `remote_src`): the source
//! tree's files and directories compared, path by path, with what is under the destination
//! (one command for all of them), then the missing or different ones written as `copy` writes
//! a file and the directories made or given `directory_mode`, as ansible-core 2.19's action
//! plugin does it file by file.

use super::files::{Write, apply_write};
use super::{Apply, Args, Change, Ctx, Failure, FileDiff, ModuleResult, Plan, Step};
use crate::connection::{Command, FileAttrs};
use crate::shell::quote;
use std::path::Path;

/// One path of the source tree, relative to the destination directory.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory; `implicit` for the destination itself (and, without a trailing slash, the
    /// source directory's own name under it): made (with `directory_mode`) when missing, but an
    /// existing one is left as it is, as ansible-core only creates those on the way to a file.
    Dir { rel: String, implicit: bool },
    /// A file, with its content and (from the host) the source's mode, which a copy on the host
    /// keeps.
    File {
        rel: String,
        content: Vec<u8>,
        mode: Option<u32>,
    },
}

/// What the destination has at one path.
#[derive(Debug, PartialEq, Eq)]
enum There {
    Absent,
    Dir {
        mode: u32,
        owner: String,
        group: String,
    },
    File {
        mode: u32,
        owner: String,
        group: String,
        sha1: String,
    },
    Other,
}

/// The tree of a directory on the controller (links followed, as `local_follow` does by
/// default), in name order. `with_top` puts the directory's own name in front of every path.
pub fn local_tree(dir: &Path, with_top: bool, ctx: &Ctx<'_>) -> Result<Vec<Entry>, Failure> {
    let mut out = vec![Entry::Dir {
        rel: String::new(),
        implicit: true,
    }];
    let top = if with_top {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        out.push(Entry::Dir {
            rel: name.clone(),
            implicit: true,
        });
        name
    } else {
        String::new()
    };
    walk(dir, &top, ctx, &mut out, 0)?;
    Ok(out)
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

fn walk(dir: &Path, rel: &str, ctx: &Ctx<'_>, out: &mut Vec<Entry>, depth: usize) -> Result<(), Failure> {
    // A link back up the tree would recurse forever; ansible-core copies such a link as a link.
    if depth > 64 {
        return Err(format!("`{}` nests too deep (a link loop?)", dir.display()).into());
    }
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut dirs = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if path.is_dir() {
            dirs.push(name);
        } else if path.is_file() {
            out.push(Entry::File {
                rel: join(rel, &name),
                // A vault-encrypted file is sent decrypted, as Ansible's `copy` does.
                content: ctx.sources.read_controller_file(&path)?,
                mode: None,
            });
        }
    }
    for name in dirs {
        out.push(Entry::Dir {
            rel: join(rel, &name),
            implicit: false,
        });
        walk(&dir.join(&name), &join(rel, &name), ctx, out, depth + 1)?;
    }
    Ok(())
}

/// The tree of a directory on the host (`remote_src`), each file's content and mode read.
pub async fn remote_tree(src: &str, with_top: bool, ctx: &Ctx<'_>) -> Result<Vec<Entry>, Failure> {
    let root = src.trim_end_matches('/');
    let mut cmd = Command::new(format!(
        "cd {} || exit 1; find -L . -mindepth 1 \\( -type d -printf 'd 0 %P\\0' -o -type f -printf 'f %m %P\\0' \\)",
        quote(if root.is_empty() { "/" } else { root })
    ));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(format!("cannot read `{src}`: {}", out.stderr_text().trim()).into());
    }
    let top = if with_top {
        root.rsplit('/').next().unwrap_or("").to_string()
    } else {
        String::new()
    };
    let mut listed: Vec<(String, char, u32)> = out
        .stdout
        .split(|&b| b == 0)
        .filter(|r| r.len() > 4)
        .filter_map(|r| {
            let r = String::from_utf8_lossy(r);
            let mut parts = r.splitn(3, ' ');
            let kind = parts.next()?.chars().next()?;
            let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
            Some((parts.next()?.to_string(), kind, mode))
        })
        .collect();
    listed.sort();
    let mut entries = vec![Entry::Dir {
        rel: String::new(),
        implicit: true,
    }];
    if with_top {
        entries.push(Entry::Dir {
            rel: top.clone(),
            implicit: true,
        });
    }
    for (rel, kind, mode) in listed {
        if kind == 'd' {
            entries.push(Entry::Dir {
                rel: join(&top, &rel),
                implicit: false,
            });
            continue;
        }
        let content = ctx
            .conn
            .read_file(&format!("{root}/{rel}"), ctx.become_user.as_deref())
            .await?
            .unwrap_or_default();
        entries.push(Entry::File {
            rel: join(&top, &rel),
            content,
            mode: Some(mode),
        });
    }
    // Directories before the files in them: a parent's path sorts before its children's.
    entries.sort_by(|a, b| rel_of(a).cmp(rel_of(b)));
    Ok(entries)
}

fn rel_of(e: &Entry) -> &str {
    match e {
        Entry::Dir { rel, .. } | Entry::File { rel, .. } => rel,
    }
}

fn sha1(data: &[u8]) -> String {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the destination has at each entry's path: one command, one line per entry.
async fn survey(root: &str, entries: &[Entry], ctx: &Ctx<'_>) -> Result<Vec<There>, Failure> {
    let mut script = String::new();
    for e in entries {
        let p = quote(&format!("{root}{}", rel_of(e)));
        script.push_str(&format!(
            "if [ -L {p} ] && [ ! -e {p} ]; then echo o; elif [ -d {p} ]; then echo \"d $(stat -L -c '%a %U %G' {p})\"; \
             elif [ -f {p} ]; then echo \"f $(stat -L -c '%a %U %G' {p}) $(sha1sum < {p} | cut -c1-40)\"; \
             elif [ -e {p} ]; then echo o; else echo a; fi\n"
        ));
    }
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(format!("cannot read `{root}`: {}", out.stderr_text().trim()).into());
    }
    let text = out.stdout_text();
    let there: Vec<There> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let mode = |s: &str| u32::from_str_radix(s, 8).unwrap_or(0);
            match f.as_slice() {
                ["a"] => There::Absent,
                ["d", m, o, g] => There::Dir {
                    mode: mode(m),
                    owner: o.to_string(),
                    group: g.to_string(),
                },
                ["f", m, o, g, s] => There::File {
                    mode: mode(m),
                    owner: o.to_string(),
                    group: g.to_string(),
                    sha1: s.to_string(),
                },
                _ => There::Other,
            }
        })
        .collect();
    if there.len() != entries.len() {
        return Err(format!("cannot read `{root}`: {}", out.stderr_text().trim()).into());
    }
    Ok(there)
}

/// One step of a tree copy.
enum Step1 {
    Mkdir {
        path: String,
        mode: Option<u32>,
        owner: Option<String>,
        group: Option<String>,
    },
    Attrs {
        path: String,
        attrs: FileAttrs,
    },
    Write(Write),
}

/// The planned copy: its steps in order (directories before what they hold).
pub struct TreeCopy {
    steps: Vec<Step1>,
    result: ModuleResult,
    /// The path whose size the result reports after the copy (a copy on the host).
    size_of: Option<String>,
}

/// The size of a path on the host, if it exists.
pub async fn size(path: &str, ctx: &Ctx<'_>) -> Result<Option<i64>, Failure> {
    let p = quote(path);
    let mut cmd = Command::new(format!("[ -e {p} ] && stat -L -c %s {p}; true"));
    cmd.become_user = ctx.become_user.clone();
    let out = ctx.conn.exec(&cmd).await?;
    Ok(out.stdout_text().trim().parse().ok())
}

fn differs(want: &FileAttrs, mode: u32, owner: &str, group: &str) -> bool {
    want.mode.is_some_and(|m| m != mode)
        || want
            .owner
            .as_deref()
            .is_some_and(|o| o != owner && o.parse::<u32>().is_err())
        || want
            .group
            .as_deref()
            .is_some_and(|g| g != group && g.parse::<u32>().is_err())
}

/// Where a tree is copied from, which decides what the result shows: from the controller, what
/// ansible-core's action plugin reports (the destination with a slash and the found source, or
/// a lone file's own result); on the host, what its module reports (both as given, no checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Controller,
    Host,
}

/// Plan the copy of `entries` into directory `dest` (given with or without its trailing slash);
/// `shown_src` is the source as the result names it.
pub async fn plan_tree(
    dest: &str,
    shown_dest: &str,
    shown_src: &str,
    from: From,
    entries: Vec<Entry>,
    args: &Args,
    ctx: &Ctx<'_>,
) -> Result<Plan, Failure> {
    let root = format!("{}/", dest.trim_end_matches('/'));
    let there = survey(&root, &entries, ctx).await?;
    let file_attrs = FileAttrs {
        mode: args.mode("mode")?,
        owner: args.str("owner")?,
        group: args.str("group")?,
    };
    let dir_attrs = FileAttrs {
        mode: args.mode("directory_mode")?,
        ..file_attrs.clone()
    };
    let force = args.bool("force", true)?;
    let backup = args.bool("backup", false)?;
    let mut steps = Vec::new();
    let mut diffs = Vec::new();
    let files = entries.iter().filter(|e| matches!(e, Entry::File { .. })).count();
    let mut single = None;
    for (e, t) in entries.into_iter().zip(there) {
        let path = format!("{root}{}", rel_of(&e));
        let path = if path.len() > 1 {
            path.trim_end_matches('/').to_string()
        } else {
            path
        };
        match (e, t) {
            (Entry::Dir { implicit, .. }, There::Absent) => {
                diffs.push(FileDiff {
                    path: path.clone(),
                    before: "state: absent\n".into(),
                    after: "state: directory\n".into(),
                    change: Change::Create,
                });
                // A directory made on the way to a file gets `directory_mode` too.
                let _ = implicit;
                steps.push(Step1::Mkdir {
                    path,
                    mode: dir_attrs.mode,
                    owner: dir_attrs.owner.clone(),
                    group: dir_attrs.group.clone(),
                });
            }
            (Entry::Dir { implicit: true, .. }, There::Dir { .. }) => {}
            (Entry::Dir { .. }, There::Dir { mode, owner, group }) => {
                if differs(&dir_attrs, mode, &owner, &group) {
                    steps.push(Step1::Attrs {
                        path,
                        attrs: dir_attrs.clone(),
                    });
                }
            }
            (Entry::Dir { .. }, _) => return Err(format!("`{path}` exists and is not a directory").into()),
            (Entry::File { .. }, There::Dir { .. }) => {
                return Err(format!("destination `{path}` is a directory").into());
            }
            (Entry::File { content, mode, .. }, t) => {
                let sum = sha1(&content);
                let want = FileAttrs {
                    mode: file_attrs.mode.or(mode),
                    ..file_attrs.clone()
                };
                if files == 1 && from == From::Controller {
                    single = Some((path.clone(), sum.clone(), content.len()));
                }
                let same = matches!(&t, There::File { sha1, .. } if *sha1 == sum);
                if let There::File { mode, owner, group, .. } = &t
                    && (same || !force)
                {
                    if differs(&want, *mode, owner, group) {
                        steps.push(Step1::Attrs { path, attrs: want });
                    }
                    continue;
                }
                let before = match &t {
                    There::File { .. } if ctx.diff => ctx
                        .conn
                        .read_file(&path, ctx.become_user.as_deref())
                        .await?
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                diffs.push(FileDiff {
                    path: path.clone(),
                    before,
                    after: String::from_utf8_lossy(&content).into_owned(),
                    change: if t == There::Absent {
                        Change::Create
                    } else {
                        Change::Update
                    },
                });
                steps.push(Step1::Write(Write {
                    dest: path,
                    content,
                    attrs: want,
                    backup,
                    validate: None,
                    parents: true,
                }));
            }
        }
    }
    // One file in the tree: ansible-core reports that file's own copy result.
    let mut result = match single.clone() {
        Some((path, sum, size)) => ModuleResult::ok()
            .with("dest", path.as_str())
            .with("checksum", sum)
            .with("size", size as i64),
        None if from == From::Controller => ModuleResult::ok().with("dest", root.as_str()).with("src", shown_src),
        None => ModuleResult::ok()
            .with("dest", shown_dest)
            .with("src", shown_src)
            .with("md5sum", minijinja::Value::from(()))
            .with("checksum", minijinja::Value::from(())),
    };
    // On the host, the module's result has the destination's size when it exists (its
    // `add_path_info`), before the copy in check mode and after it in a run.
    let size_of = (from == From::Host).then(|| shown_dest.to_string());
    if let Some(p) = &size_of
        && let Some(size) = size(p, ctx).await?
    {
        result = result.with("size", size);
    }
    if steps.is_empty() {
        return Ok(Plan::Unchanged(result));
    }
    result.changed = true;
    result.diffs = diffs;
    // In check mode ansible-core's action plugin says only `changed` for a lone file it would copy.
    let preview = if single.is_some() {
        let mut p = ModuleResult::changed();
        p.diffs = result.diffs.clone();
        p
    } else {
        result.clone()
    };
    Ok(Plan::Change {
        preview,
        action: Box::new(TreeCopy { steps, result, size_of }),
    })
}

impl Apply for TreeCopy {
    fn apply<'a>(self: Box<Self>, ctx: &'a Ctx<'a>) -> Step<'a, ModuleResult> {
        Box::pin(apply_tree(*self, ctx))
    }
}

async fn apply_tree(t: TreeCopy, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let mut script = String::new();
    let mut writes = Vec::new();
    for s in t.steps {
        match s {
            Step1::Mkdir {
                path,
                mode,
                owner,
                group,
            } => {
                let p = quote(&path);
                script.push_str(&format!("mkdir -p {p} || exit 1\n"));
                if let Some(m) = mode {
                    script.push_str(&format!("chmod {m:o} {p} || exit 1\n"));
                }
                if let Some(o) = owner {
                    script.push_str(&format!("chown {} {p} || exit 1\n", quote(&o)));
                }
                if let Some(g) = group {
                    script.push_str(&format!("chgrp {} {p} || exit 1\n", quote(&g)));
                }
            }
            Step1::Attrs { path, attrs } => {
                let p = quote(&path);
                if let Some(o) = &attrs.owner {
                    script.push_str(&format!("chown {} {p} || exit 1\n", quote(o)));
                }
                if let Some(g) = &attrs.group {
                    script.push_str(&format!("chgrp {} {p} || exit 1\n", quote(g)));
                }
                if let Some(m) = attrs.mode {
                    script.push_str(&format!("chmod {m:o} {p} || exit 1\n"));
                }
            }
            Step1::Write(w) => writes.push(w),
        }
    }
    if !script.is_empty() {
        let mut cmd = Command::new(script);
        cmd.become_user = ctx.become_user.clone();
        cmd.timeout = ctx.timeout;
        let out = ctx.conn.exec(&cmd).await?;
        if out.rc != 0 {
            return Err(format!("cannot make the directories: {}", out.stderr_text().trim()).into());
        }
    }
    for w in writes {
        apply_write(w, ctx).await?;
    }
    let mut r = t.result;
    if let Some(p) = &t.size_of
        && let Some(n) = size(p, ctx).await?
    {
        r = r.with("size", n);
    }
    Ok(r)
}

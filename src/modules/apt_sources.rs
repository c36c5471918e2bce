//! apt's sources: `apt_repository` (one-line `.list` entries, edited as ansible-core 2.19's
//! module edits them: every `.list` file read, the entry enabled, added or removed, files
//! rewritten normalised) and `deb822_repository` (one `.sources` file per repository, written
//! field by field as ansible-core writes it), and `apt_key` (keys in apt-key's keyrings, from
//! data or a file on the host; keyservers and URLs need a network roll's tests do not assume).

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::connection::{Command, FileAttrs};
use crate::shell::quote;
use minijinja::Value;
use minijinja::value::ValueKind;

/// `apt_repository`: a repository line in `/etc/apt/sources.list.d/*.list`.
pub struct AptRepository;

static APT_REPOSITORY: ModuleSpec = ModuleSpec {
    params: &[
        req("repo"),
        p("state").choices(&["absent", "present"]),
        p("mode"),
        p("update_cache").aliases(&["update-cache"]),
        p("update_cache_retries"),
        p("update_cache_retry_max_delay"),
        p("filename"),
        p("install_python_apt"),
        p("validate_certs"),
        p("codename"),
    ],
    ..ModuleSpec::new("apt_repository", BUILTIN)
};

impl Module for AptRepository {
    fn spec(&self) -> &'static ModuleSpec {
        &APT_REPOSITORY
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_repository(args, ctx))
    }
}

/// `deb822_repository`: a `.sources` file in `/etc/apt/sources.list.d`.
pub struct Deb822Repository;

static DEB822_REPOSITORY: ModuleSpec = ModuleSpec {
    params: &[
        req("name"),
        p("allow_downgrade_to_insecure"),
        p("allow_insecure"),
        p("allow_weak"),
        p("architectures"),
        p("by_hash"),
        p("check_date"),
        p("check_valid_until"),
        p("components"),
        p("date_max_future"),
        p("enabled"),
        p("inrelease_path"),
        p("languages"),
        p("pdiffs"),
        p("signed_by"),
        p("suites"),
        p("targets"),
        p("trusted"),
        p("types"),
        p("uris"),
        p("mode"),
        p("state").choices(&["present", "absent"]),
    ],
    ..ModuleSpec::new("deb822_repository", BUILTIN)
};

impl Module for Deb822Repository {
    fn spec(&self) -> &'static ModuleSpec {
        &DEB822_REPOSITORY
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_deb822(args, ctx))
    }
}

/// `apt_key`: a key in apt's (deprecated) apt-key keyrings.
pub struct AptKey;

static APT_KEY: ModuleSpec = ModuleSpec {
    params: &[
        p("id"),
        p("url"),
        p("data"),
        p("file"),
        p("keyring"),
        p("validate_certs"),
        p("keyserver"),
        p("state").choices(&["absent", "present"]),
    ],
    exclusive: &[
        ("data", "file"),
        ("data", "keyserver"),
        ("data", "url"),
        ("file", "keyserver"),
        ("file", "url"),
        ("keyserver", "url"),
    ],
    ..ModuleSpec::new("apt_key", BUILTIN)
};

impl Module for AptKey {
    fn spec(&self) -> &'static ModuleSpec {
        &APT_KEY
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_key(args, ctx))
    }
}

const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH";

async fn exec(ctx: &Ctx<'_>, script: String) -> Result<crate::connection::Output, Failure> {
    let mut cmd = Command::new(format!("{PATH}\nexport LANG=C LC_ALL=C\n{script}"));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    Ok(ctx.conn.exec(&cmd).await?)
}

/// One line of a `.list` file as ansible-core's `SourcesList._parse` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    valid: bool,
    enabled: bool,
    source: String,
    comment: String,
}

const SOURCE_TYPES: &[&str] = &["deb", "deb-src"];

/// The line, and the text ansible-core names in "Invalid repository string" for it.
fn parse_line(raw: &str) -> (Line, String) {
    let mut line = raw.trim().to_string();
    let mut enabled = true;
    if let Some(rest) = line.strip_prefix('#') {
        enabled = false;
        line = rest.to_string();
    }
    let mut comment = String::new();
    if let Some(i) = line.find('#')
        && i > 0
    {
        comment = line[i + 1..].trim().to_string();
        line.truncate(i);
    }
    let mut source = line.trim().to_string();
    let mut valid = false;
    if !source.is_empty() {
        let chunks: Vec<&str> = source.split_whitespace().collect();
        if SOURCE_TYPES.contains(&chunks[0]) {
            valid = true;
            source = chunks.join(" ");
        }
    }
    (
        Line {
            valid,
            enabled,
            source,
            comment,
        },
        line,
    )
}

impl Line {
    fn dump(&self) -> String {
        let mut s = String::new();
        if !self.enabled {
            s.push_str("# ");
        }
        s.push_str(&self.source);
        if !self.comment.is_empty() {
            s.push_str(" # ");
            s.push_str(&self.comment);
        }
        s.push('\n');
        s
    }
}

/// A sources file as read: its path, where it links to, its text and its lines.
#[derive(Debug, Clone)]
struct ListFile {
    path: String,
    link: Option<String>,
    text: Option<String>,
    lines: Vec<Line>,
    new: bool,
}

impl ListFile {
    /// What ansible-core's `dump` holds for it: none when it has no lines.
    fn dump(&self) -> Option<String> {
        (!self.lines.is_empty()).then(|| self.lines.iter().map(Line::dump).collect())
    }
}

const MARK: &str = "\u{1e}ROLL-FILE ";

/// `/etc/apt/sources.list` and `sources.list.d/*.list`, as ansible-core loads them.
async fn read_lists(ctx: &Ctx<'_>) -> Result<Vec<ListFile>, Failure> {
    let script = format!(
        "for f in {SOURCES_LIST} {SOURCES_DIR}/*.list; do [ -f \"$f\" ] || continue\n\
         printf '{MARK}%s\\036%s\\n' \"$f\" \"$([ -L \"$f\" ] && readlink \"$f\")\"; cat \"$f\"; echo; done"
    );
    let out = exec(ctx, script).await?;
    let text = out.stdout_text();
    let mut files = Vec::new();
    for chunk in text.split(MARK).skip(1) {
        let (head, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let (path, link) = head.split_once('\u{1e}').unwrap_or((head, ""));
        // `echo` ended the file's last line; one newline is ours.
        let body = body.strip_suffix('\n').unwrap_or(body);
        files.push(ListFile {
            path: path.to_string(),
            link: Some(link.to_string()).filter(|l| !l.is_empty()),
            text: Some(body.to_string()),
            lines: body.lines().map(|l| parse_line(l).0).collect(),
            new: false,
        });
    }
    Ok(files)
}

/// ansible-core's `_suggest_filename`: the host part of the URI, cleaned, `.list`.
fn suggest_filename(source: &str, filename: Option<&str>) -> String {
    let options = regex::Regex::new(r"\[[^\]]+\]").expect("a valid regex");
    let scheme = regex::Regex::new(r"\w+://").expect("a valid regex");
    let line = options.replace_all(source, "");
    let line = scheme.replace_all(&line, "");
    let first = line
        .split_whitespace()
        .find(|p| !SOURCE_TYPES.contains(p))
        .unwrap_or("");
    let first = first.rsplit_once('@').map_or(first, |(_, h)| h);
    let name = match filename {
        Some(f) => f.to_string(),
        None => first
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("_"),
    };
    format!("{name}.list")
}

fn expand_path(file: &str) -> String {
    if file.contains('/') {
        file.to_string()
    } else {
        format!("{SOURCES_DIR}/{file}")
    }
}

fn as_list(v: &[String]) -> Value {
    Value::from(v.iter().map(|s| Value::from(s.as_str())).collect::<Vec<_>>())
}

/// The files to write (or remove, when `None`), and the apt-get update after them.
struct Edit {
    writes: Vec<(ListFile, Option<String>)>,
    before: Vec<ListFile>,
    update_cache: bool,
    retries: u32,
    mode: u32,
}

apply_by!(Edit, apply_edit);

async fn check_repository(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let repo = args.req_str("repo")?;
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    if repo.is_empty() {
        return Err("Please set argument 'repo' to a non-empty value".into());
    }
    if repo.starts_with("ppa:") {
        return Err(format!(
            "`{repo}`: roll's apt_repository does not add PPAs (that needs Launchpad's API); give the repository line and its key"
        )
        .into());
    }
    let (line, text) = parse_line(&repo);
    if !line.valid || !line.enabled {
        return Err(format!("Invalid repository string: {text}").into());
    }
    let before = read_lists(ctx).await?;
    let mut files = before.clone();
    if state == "present" {
        let mut found = false;
        for f in &mut files {
            for l in &mut f.lines {
                if l.valid && l.source == line.source {
                    l.enabled = true;
                    found = true;
                }
            }
        }
        if !found {
            let path = expand_path(&suggest_filename(&line.source, args.str("filename")?.as_deref()));
            let entry = Line {
                comment: String::new(),
                ..line.clone()
            };
            match files.iter_mut().find(|f| f.path == path) {
                Some(f) => {
                    f.lines.push(entry);
                    f.new = true;
                }
                None => files.push(ListFile {
                    path,
                    link: None,
                    text: None,
                    lines: vec![entry],
                    new: true,
                }),
            }
        }
    } else {
        for f in &mut files {
            f.lines.retain(|l| !(l.valid && l.enabled && l.source == line.source));
        }
    }
    let dump_before: Vec<(String, Option<String>)> = before.iter().map(|f| (f.path.clone(), f.dump())).collect();
    let dump_after: Vec<(String, Option<String>)> = files.iter().map(|f| (f.path.clone(), f.dump())).collect();
    let had = |path: &str, d: &[(String, Option<String>)]| d.iter().any(|(p, t)| p == path && t.is_some());
    let changed = dump_before.iter().filter(|(_, t)| t.is_some()).collect::<Vec<_>>()
        != dump_after.iter().filter(|(_, t)| t.is_some()).collect::<Vec<_>>();
    let mut added: Vec<String> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    if changed {
        for (path, _) in &dump_after {
            if had(path, &dump_after) && !had(path, &dump_before) {
                added.push(path.clone());
            }
        }
        for (path, _) in &dump_before {
            if had(path, &dump_before) && !had(path, &dump_after) {
                removed.push(path.clone());
            }
        }
    }
    let lookup = |d: &[(String, Option<String>)], path: &str| {
        d.iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    let mut r = ModuleResult::ok()
        .with("repo", repo.as_str())
        .with("state", state.as_str())
        .with("sources_added", as_list(&added))
        .with("sources_removed", as_list(&removed));
    r.changed = changed;
    let mut diff = Vec::new();
    for path in added.iter().chain(&removed) {
        let (b, a) = (lookup(&dump_before, path), lookup(&dump_after, path));
        let header = |had: bool| if had { path.as_str() } else { "/dev/null" };
        diff.push(Value::from_pairs(vec![
            ("before".to_string(), Value::from(b.as_str())),
            ("after".to_string(), Value::from(a.as_str())),
            ("before_header".to_string(), Value::from(header(removed.contains(path)))),
            ("after_header".to_string(), Value::from(header(added.contains(path)))),
        ]));
        r.diffs.push(FileDiff {
            path: path.clone(),
            change: if added.contains(path) {
                Change::Create
            } else {
                Change::Remove
            },
            before: b,
            after: a,
        });
    }
    r = r.with("diff", Value::from(if ctx.diff { diff } else { Vec::new() }));
    if !changed {
        return Ok(Plan::Unchanged(r));
    }
    // ansible-core's save rewrites every file it read, normalised, and removes those left empty.
    let writes = files
        .into_iter()
        .filter_map(|f| {
            let d = f.dump();
            (d != f.text || f.new).then_some((f, d))
        })
        .collect();
    let mode = args.mode("mode")?.unwrap_or(0o644);
    let edit = Edit {
        writes,
        before,
        update_cache: args.bool("update_cache", true)?,
        retries: args.f64("update_cache_retries")?.map_or(5, |n| n as u32),
        mode,
    };
    Ok(Plan::Change {
        preview: r,
        action: Box::new(edit),
    })
}

async fn write(ctx: &Ctx<'_>, path: &str, content: Option<&str>, mode: Option<u32>) -> Result<(), Failure> {
    match content {
        None => {
            let out = exec(ctx, format!("rm -f {}", quote(path))).await?;
            if out.rc != 0 {
                return Err(format!("cannot remove `{path}`: {}", out.stderr_text().trim()).into());
            }
            Ok(())
        }
        Some(text) => {
            let w = super::files::Write {
                dest: path.to_string(),
                content: text.as_bytes().to_vec(),
                attrs: FileAttrs {
                    mode,
                    ..FileAttrs::default()
                },
                backup: false,
                validate: None,
                parents: true,
            };
            super::files::apply_write(w, ctx).await.map(|_| ())
        }
    }
}

async fn apply_edit(edit: Edit, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    for (f, content) in &edit.writes {
        let dest = f.link.as_deref().map_or(f.path.clone(), |l| {
            if l.starts_with('/') {
                l.to_string()
            } else {
                format!("{SOURCES_DIR}/{l}")
            }
        });
        let mode = f.new.then_some(edit.mode);
        write(ctx, &dest, content.as_deref(), mode).await?;
    }
    if edit.update_cache
        && let Err(e) = update_cache(ctx, edit.retries).await
    {
        // As ansible-core does: the sources go back to what they were.
        for (f, _) in &edit.writes {
            let old = edit.before.iter().find(|b| b.path == f.path);
            let back = old.and_then(|b| b.dump());
            write(ctx, &f.path, back.as_deref(), None).await?;
        }
        return Err(e);
    }
    Ok(ModuleResult::changed())
}

async fn update_cache(ctx: &Ctx<'_>, retries: u32) -> Result<(), Failure> {
    let mut err = String::new();
    for _ in 0..retries.max(1) {
        let out = exec(ctx, "apt-get update -q".into()).await?;
        if out.rc == 0 {
            return Ok(());
        }
        err = out.stderr_text().trim().to_string();
    }
    Err(format!(
        "Failed to update apt cache after {retries} retries: {}",
        if err.is_empty() { "unknown reason" } else { &err }
    )
    .into())
}

/// A deb822 list parameter: a list, or a comma-separated string, as Ansible's `type: list`.
fn list_param(args: &Args, k: &str) -> Result<Option<Vec<String>>, Failure> {
    let Some(v) = args.get(k) else { return Ok(None) };
    Ok(Some(if v.kind() == ValueKind::Seq {
        v.try_iter()
            .map_err(|e| e.to_string())?
            .map(|x| crate::values::value_to_string(&x))
            .collect()
    } else {
        crate::values::value_to_string(v)
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    }))
}

/// ansible-core's `format_field_name`.
fn field_name(k: &str) -> String {
    match k {
        "name" => "X-Repolib-Name".into(),
        "uris" => "URIs".into(),
        _ => k
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| {
                        f.to_uppercase()
                            .chain(c.flat_map(char::to_lowercase))
                            .collect::<String>()
                    })
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// ansible-core's `format_multiline`: a folded field, blank lines as `.`.
fn multiline(v: &str) -> String {
    let body: Vec<String> = v
        .trim()
        .lines()
        .map(|l| {
            let l = l.trim();
            format!("    {}", if l.is_empty() { "." } else { l })
        })
        .collect();
    format!("\n{}", body.join("\n"))
}

const BOOLS: &[&str] = &[
    "allow_downgrade_to_insecure",
    "allow_insecure",
    "allow_weak",
    "by_hash",
    "check_date",
    "check_valid_until",
    "enabled",
    "pdiffs",
    "trusted",
];
const LISTS: &[&str] = &[
    "architectures",
    "components",
    "languages",
    "suites",
    "targets",
    "types",
    "uris",
];

/// What `deb822_repository` writes (or removes).
struct Deb822Write {
    dest: String,
    /// `None`: remove the file and the slug's keyrings.
    content: Option<String>,
    write_content: bool,
    mode: u32,
    slug: String,
}

apply_by!(Deb822Write, apply_deb822);

async fn check_deb822(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let name = args.req_str("name")?;
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    let lower = name.to_lowercase();
    let dashed = regex::Regex::new(r"[_\s]+")
        .expect("a valid regex")
        .replace_all(&lower, "-");
    let slug = regex::Regex::new(r"[^a-z0-9-]+")
        .expect("a valid regex")
        .replace_all(&dashed, "")
        .into_owned();
    let dest = format!("{SOURCES_DIR}/{slug}.sources");
    let keyring = |ext: &str| format!("/etc/apt/keyrings/{slug}.{ext}");
    if state == "absent" {
        let out = exec(
            ctx,
            format!(
                "for f in {} {} {}; do [ -e \"$f\" ] && echo \"$f\"; done; true",
                quote(&dest),
                quote(&keyring("asc")),
                quote(&keyring("gpg"))
            ),
        )
        .await?;
        let r = ModuleResult::ok()
            .with("repo", Value::from(()))
            .with("dest", dest.as_str())
            .with("key_filename", keyring("gpg"));
        if out.stdout_text().trim().is_empty() {
            return Ok(Plan::Unchanged(r));
        }
        let mut preview = r;
        preview.changed = true;
        if ctx.check_mode {
            super::get_url::path_info(&mut preview, &dest, ctx).await?;
        }
        return Ok(Plan::Change {
            preview,
            action: Box::new(Deb822Write {
                dest,
                content: None,
                write_content: false,
                mode: 0,
                slug,
            }),
        });
    }
    let mut fields: Vec<(&str, String)> = Vec::new();
    let mut key_filename = Value::from(());
    let mut keys: Vec<&str> = DEB822_REPOSITORY
        .params
        .iter()
        .map(|p| p.name)
        .filter(|k| !["mode", "state"].contains(k))
        .collect();
    keys.sort_unstable();
    // A URL (`https://...`) would be fetched: Python's urlparse finds a scheme.
    let scheme = regex::Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:").expect("a valid regex");
    for k in keys {
        let value = if BOOLS.contains(&k) {
            if args.get(k).is_none() {
                continue;
            }
            (if args.bool(k, false)? { "yes" } else { "no" }).to_string()
        } else if LISTS.contains(&k) {
            match list_param(args, k)? {
                Some(l) => l.join(" "),
                None if k == "types" => "deb".into(),
                None => continue,
            }
        } else if k == "signed_by" {
            let Some(v) = args.str(k)? else { continue };
            if scheme.is_match(&v) && !v.contains('\n') {
                return Err(format!(
                    "Could not fetch signed_by key: roll's deb822_repository does not download keys (`{v}`); give the key's text or a file on the host"
                )
                .into());
            }
            let is_file = !v.contains('\n') && exec(ctx, format!("[ -f {} ]", quote(&v))).await?.rc == 0;
            if is_file {
                key_filename = Value::from(v.as_str());
            }
            v
        } else {
            let Some(v) = args.str(k)? else { continue };
            if k == "date_max_future" {
                (args.f64(k)?.unwrap_or(0.0) as i64).to_string()
            } else {
                v
            }
        };
        let value = if value.contains('\n') { multiline(&value) } else { value };
        fields.push((k, value));
    }
    let mut repo = String::new();
    for (k, v) in &fields {
        if v.starts_with('\n') {
            repo.push_str(&format!("{}:{v}\n", field_name(k)));
        } else {
            repo.push_str(&format!("{}: {v}\n", field_name(k)));
        }
    }
    let mode = args.mode("mode")?.unwrap_or(0o644);
    let out = exec(
        ctx,
        format!(
            "if [ -f {0} ]; then stat -c %a {0}; cat {0}; else echo none; fi",
            quote(&dest)
        ),
    )
    .await?;
    let text = out.stdout_text();
    let (head, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    let (current, now_mode) = match u32::from_str_radix(head.trim(), 8) {
        Ok(m) => (Some(body.to_string()), Some(m)),
        Err(_) => (None, None),
    };
    let write_content = current.as_deref() != Some(repo.as_str());
    let r = ModuleResult::ok()
        .with("repo", repo.as_str())
        .with("dest", dest.as_str())
        .with("key_filename", key_filename);
    // ansible-core adds the file's attributes (as they are now) to a result naming a `dest`.
    let mut r = r;
    if !write_content && now_mode == Some(mode) {
        super::get_url::path_info(&mut r, &dest, ctx).await?;
        return Ok(Plan::Unchanged(r));
    }
    let mut preview = r;
    preview.changed = true;
    if ctx.check_mode {
        super::get_url::path_info(&mut preview, &dest, ctx).await?;
    }
    Ok(Plan::Change {
        preview,
        action: Box::new(Deb822Write {
            dest,
            content: Some(repo),
            write_content,
            mode,
            slug,
        }),
    })
}

async fn apply_deb822(w: Deb822Write, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    match &w.content {
        None => {
            let script = format!(
                "rm -f {} /etc/apt/keyrings/{slug}.asc /etc/apt/keyrings/{slug}.gpg",
                quote(&w.dest),
                slug = w.slug
            );
            let out = exec(ctx, script).await?;
            if out.rc != 0 {
                return Err(format!("cannot remove `{}`: {}", w.dest, out.stderr_text().trim()).into());
            }
        }
        Some(text) if w.write_content => write(ctx, &w.dest, Some(text), Some(w.mode)).await?,
        Some(_) => {
            let out = exec(ctx, format!("chmod {:o} {}", w.mode, quote(&w.dest))).await?;
            if out.rc != 0 {
                return Err(format!("cannot chmod `{}`: {}", w.dest, out.stderr_text().trim()).into());
            }
        }
    }
    let mut r = ModuleResult::changed();
    super::get_url::path_info(&mut r, &w.dest, ctx).await?;
    Ok(r)
}

/// ansible-core's `parse_output_for_keys`: the key ids of `pub`/`sub` lines not expired.
fn keys_in(output: &str, short: bool) -> Vec<String> {
    output
        .split('\n')
        .filter(|l| (l.starts_with("pub") || l.starts_with("sub")) && !l.contains("expired"))
        .filter_map(|l| {
            let tokens: Vec<&str> = l.split_whitespace().collect();
            match tokens.get(1).and_then(|c| c.split_once('/')) {
                Some((_, code)) if !code.contains('/') => Some(code.to_string()),
                _ => l.split(':').nth(4).map(str::to_string),
            }
        })
        .map(|k| {
            if short {
                k[k.len().saturating_sub(8)..].to_string()
            } else {
                k
            }
        })
        .collect()
}

/// ansible-core's `parse_key_id`: the short id, the fingerprint compared, the id.
fn parse_key_id(id: &str) -> Option<(String, String, String)> {
    let up = id.to_uppercase();
    let key = up.strip_prefix("0X").unwrap_or(&up).to_string();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let n = key.len();
    if n != 8 && n != 16 && n <= 16 {
        return None;
    }
    let short = key[n - 8..].to_string();
    let fp = if n > 16 { key[n - 16..].to_string() } else { key.clone() };
    Some((short, fp, key))
}

fn apt_key_cmd(keyring: Option<&str>) -> String {
    match keyring {
        Some(k) => format!("apt-key --keyring {} ", quote(k)),
        None => "apt-key ".into(),
    }
}

async fn all_keys(ctx: &Ctx<'_>, keyring: Option<&str>, short: bool) -> Result<Vec<String>, Failure> {
    let cmd = format!("{}adv --list-public-keys --keyid-format=long", apt_key_cmd(keyring));
    let out = exec(ctx, cmd.clone()).await?;
    if out.rc != 0 {
        let mut f = ModuleResult::failed("Unable to list public keys").with("cmd", cmd);
        f.rc = Some(i64::from(out.rc));
        f.stdout = Some(out.stdout_text());
        f.stderr = Some(out.stderr_text());
        return Err(Failure::Failed(Box::new(f)));
    }
    Ok(keys_in(&out.stdout_text(), short))
}

fn strings(v: &[String]) -> Value {
    Value::from(v.iter().map(|s| Value::from(s.as_str())).collect::<Vec<_>>())
}

/// What `apt_key` adds or removes.
struct KeyChange {
    add: Option<KeySource>,
    keyring: Option<String>,
    short: String,
    fp: String,
    short_format: bool,
    result: ModuleResult,
}

enum KeySource {
    File(String),
    Data(String),
}

apply_by!(KeyChange, apply_key);

async fn check_key(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    let keyring = args.str("keyring")?;
    let (data, file) = (args.str("data")?, args.str("file")?);
    let found = exec(ctx, "command -v apt-key; command -v gpg; true".into()).await?;
    let found = found.stdout_text();
    if !found.lines().any(|l| l.ends_with("/apt-key")) {
        return Err("Failed to find required executable \"apt-key\". Apt-key has been deprecated. See the deb822_repository as an alternative.".into());
    }
    if !found.lines().any(|l| l.ends_with("/gpg")) {
        return Err("Failed to find required executable \"gpg\"".into());
    }
    let mut id = args.str("id")?;
    if id.is_none() {
        if args.get("keyserver").is_some() {
            return Err("Missing key_id, required with keyserver.".into());
        }
        if let Some(u) = args.str("url")? {
            return Err(format!(
                "`url: {u}`: roll's apt_key does not download keys; give `data` or a `file` on the host"
            )
            .into());
        }
        let (arg, stdin, what) = match (&file, &data) {
            (Some(f), _) => (quote(f), None, f.clone()),
            (None, Some(d)) => ("-".to_string(), Some(d.clone()), "inline data".to_string()),
            (None, None) => (String::new(), None, String::new()),
        };
        if !arg.is_empty() {
            let mut cmd = Command::new(format!("{PATH}\nexport LANG=C LC_ALL=C\ngpg --with-colons {arg}"));
            cmd.stdin = stdin.map(String::into_bytes);
            cmd.become_user = ctx.become_user.clone();
            cmd.timeout = ctx.timeout;
            let out = ctx.conn.exec(&cmd).await?;
            if out.rc != 0 {
                let mut f = ModuleResult::failed(format!("Unable to extract key from '{what}'"));
                f.stdout = Some(out.stdout_text());
                f.stderr = Some(out.stderr_text());
                return Err(Failure::Failed(Box::new(f)));
            }
            id = keys_in(&out.stdout_text(), false).into_iter().next();
        }
    }
    let mut r = ModuleResult::ok().with("id", id.as_deref().map_or(Value::from(()), Value::from));
    let Some((short, fp, key_id)) = id.as_deref().and_then(parse_key_id) else {
        let mut f = r.clone();
        f.failed = true;
        f.msg = Some("Invalid key_id".into());
        return Err(Failure::Failed(Box::new(f)));
    };
    r = r
        .with("short_id", short.as_str())
        .with("fp", fp.as_str())
        .with("key_id", key_id.as_str());
    let short_format = key_id.len() == 8;
    let keys = all_keys(ctx, keyring.as_deref(), short_format).await?;
    r = r.with("before", strings(&keys));
    let add = if state == "present" {
        let want = if short_format { &short } else { &fp };
        if keys.contains(want) {
            return Ok(Plan::Unchanged(r));
        }
        Some(match (file, data) {
            (Some(f), _) => KeySource::File(f),
            (None, Some(d)) => KeySource::Data(d),
            (None, None) => {
                let how = if args.get("keyserver").is_some() {
                    "from a keyserver"
                } else {
                    "from a URL"
                };
                return Err(format!("roll's apt_key does not fetch keys {how} (that needs a network); give `data` or a `file` on the host").into());
            }
        })
    } else {
        if !keys.contains(&fp) {
            return Ok(Plan::Unchanged(r));
        }
        None
    };
    r.changed = true;
    Ok(Plan::Change {
        preview: r.clone(),
        action: Box::new(KeyChange {
            add,
            keyring,
            short,
            fp,
            short_format,
            result: r,
        }),
    })
}

async fn apply_key(k: KeyChange, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let base = apt_key_cmd(k.keyring.as_deref());
    let (cmd, stdin, msg) = match &k.add {
        Some(KeySource::File(f)) => (
            format!("{base}add {}", quote(f)),
            None,
            format!("Unable to add a key from file {f}"),
        ),
        Some(KeySource::Data(d)) => (
            format!("{base}add -"),
            Some(d.clone().into_bytes()),
            "Unable to add a key from binary data".to_string(),
        ),
        None => (
            format!("{base}del {}", k.short),
            None,
            format!("Unable to remove a key with id {}", k.short),
        ),
    };
    let mut c = Command::new(format!("{PATH}\nexport LANG=C LC_ALL=C\n{cmd}"));
    c.stdin = stdin;
    c.become_user = ctx.become_user.clone();
    c.timeout = ctx.timeout;
    let out = ctx.conn.exec(&c).await?;
    if out.rc != 0 {
        let mut f = ModuleResult::failed(msg).with("cmd", cmd);
        f.rc = Some(i64::from(out.rc));
        f.stdout = Some(out.stdout_text());
        f.stderr = Some(out.stderr_text());
        return Err(Failure::Failed(Box::new(f)));
    }
    let after = all_keys(ctx, k.keyring.as_deref(), k.short_format).await?;
    let mut r = k.result.with("after", strings(&after));
    let want = if k.short_format { &k.short } else { &k.fp };
    let present = after.contains(if k.add.is_some() { want } else { &k.fp });
    if present != k.add.is_some() {
        let what = if k.add.is_some() {
            "failed to add the key"
        } else {
            "the key was not removed"
        };
        r.failed = true;
        r.msg = Some(format!(
            "apt-key did not return an error, but {what} (check that the id is correct and *not* a subkey)"
        ));
        return Err(Failure::Failed(Box::new(r)));
    }
    Ok(r)
}

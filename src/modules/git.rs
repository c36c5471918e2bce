//! `git`: a checkout of a repository at a version (a branch, a tag, a commit id or `HEAD`) on
//! the host, as ansible-core 2.19's module makes it: the same git commands (clone, fetch,
//! checkout, reset), the same decisions and the same results (`before`, `after`,
//! `remote_url_changed`, `diff.prepared`). What the remote has is read once with `ls-remote`;
//! the decisions are made here from it.
//!
//! One difference on purpose: in check mode with `--diff`, Ansible fetches into the destination
//! (and sets a changed remote URL) to show the diff; roll fetches the new commits into a
//! temporary object directory instead, so check mode leaves the repository as it was.

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::connection::{Command, Output};
use crate::shell::quote;
use minijinja::Value;

/// `git`: clone, update and check out a repository.
pub struct Git;

static GIT: ModuleSpec = ModuleSpec {
    params: &[
        req("repo").aliases(&["name"]),
        p("dest"),
        p("version"),
        p("remote"),
        p("refspec"),
        p("force"),
        p("depth"),
        p("clone"),
        p("update"),
        p("bare"),
        p("single_branch"),
        p("recursive"),
        p("accept_hostkey"),
        p("accept_newhostkey"),
        p("key_file"),
        p("ssh_opts"),
        p("executable"),
        p("umask"),
    ],
    exclusive: &[("accept_hostkey", "accept_newhostkey")],
    ..ModuleSpec::new("git", BUILTIN)
};

impl Module for Git {
    fn spec(&self) -> &'static ModuleSpec {
        &GIT
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// The task's arguments, checked.
#[derive(Debug, Clone)]
struct Want {
    repo: String,
    dest: Option<String>,
    version: String,
    remote: String,
    refspec: Option<String>,
    force: bool,
    depth: Option<u32>,
    bare: bool,
    single_branch: bool,
    recursive: bool,
    git: String,
    /// What every git command runs with: C locale, no prompts, the ssh options.
    env: Vec<(String, String)>,
    umask: Option<String>,
}

/// The refs a remote has (`ls-remote`), in its order.
#[derive(Debug, Clone, Default)]
struct Refs(Vec<(String, String)>);

impl Refs {
    fn parse(text: &str) -> Refs {
        Refs(
            text.lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(sha, name)| (sha.trim().to_string(), name.trim().to_string()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(_, n)| n == name).map(|(s, _)| s.as_str())
    }

    fn is_branch(&self, v: &str) -> bool {
        self.get(&format!("refs/heads/{v}")).is_some()
    }

    fn is_tag(&self, v: &str) -> bool {
        self.get(&format!("refs/tags/{v}")).is_some()
    }

    /// The commit a tag names: an annotated tag's `^{}`, else the tag itself.
    fn tag(&self, v: &str) -> Option<&str> {
        self.get(&format!("refs/tags/{v}^{{}}"))
            .or_else(|| self.get(&format!("refs/tags/{v}")))
    }
}

/// What the destination holds now.
#[derive(Debug, Clone, Default)]
struct Here {
    /// The destination has a repository (its `config`).
    repo: bool,
    before: Option<String>,
    local_mods: bool,
    url: Option<String>,
    /// The branch HEAD is on, or for a detached HEAD the remote's HEAD branch.
    head_branch: Option<String>,
    local_branches: Vec<String>,
}

fn failed_with(msg: String, before: Option<&str>) -> Failure {
    let mut r = ModuleResult::failed(msg);
    if let Some(b) = before {
        r.data.insert("before".into(), Value::from(b));
    }
    Failure::Failed(Box::new(r))
}

fn want(args: &Args) -> Result<Want, Failure> {
    let mut repo = args.req_str("repo")?;
    // Ansible gives local paths a file:// URL, which shallow clones need.
    if repo.starts_with('/') {
        repo = format!("file://{repo}");
    }
    let dest = args.str("dest")?.map(|d| d.trim_end_matches('/').to_string());
    let clone = args.bool("clone", true)?;
    if dest.is_none() && clone {
        return Err("the destination directory must be specified unless clone=no".into());
    }
    let depth = match args.f64("depth")? {
        None => None,
        Some(d) if d >= 0.0 && d.fract() == 0.0 && d < f64::from(u32::MAX) => Some(d as u32).filter(|d| *d > 0),
        Some(d) => return Err(format!("`depth` must be a whole number, got {d}").into()),
    };
    let mut ssh = format!("ssh {}", args.str("ssh_opts")?.unwrap_or_default());
    if args.bool("accept_hostkey", false)? && !ssh.contains("StrictHostKeyChecking=") {
        ssh.push_str(" -o StrictHostKeyChecking=no");
    }
    if args.bool("accept_newhostkey", false)? && !ssh.contains("StrictHostKeyChecking=") {
        ssh.push_str(" -o StrictHostKeyChecking=accept-new");
    }
    ssh.push_str(" -o BatchMode=yes");
    if let Some(key) = args.str("key_file")? {
        ssh.push_str(&format!(" -i {} -o IdentitiesOnly=yes", quote(&key)));
    }
    let umask = args.str("umask")?;
    if let Some(u) = &umask
        && u32::from_str_radix(u, 8).is_err()
    {
        return Err("umask must be an octal integer".into());
    }
    Ok(Want {
        repo,
        dest,
        version: args.str("version")?.unwrap_or_else(|| "HEAD".into()),
        remote: args.str("remote")?.unwrap_or_else(|| "origin".into()),
        refspec: args.str("refspec")?,
        force: args.bool("force", false)?,
        depth,
        bare: args.bool("bare", false)?,
        single_branch: args.bool("single_branch", false)?,
        recursive: args.bool("recursive", true)?,
        git: args.str("executable")?.unwrap_or_else(|| "git".into()),
        env: vec![
            ("LC_ALL".into(), "C".into()),
            ("LANG".into(), "C".into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_SSH_COMMAND".into(), ssh),
        ],
        umask,
    })
}

/// Run a script on the host with git's environment, in `cwd` when given.
async fn sh(w: &Want, ctx: &Ctx<'_>, cwd: Option<&str>, script: String) -> Result<Output, Failure> {
    let mut env = ctx.env.clone();
    env.extend(w.env.iter().cloned());
    let mut s = String::new();
    if let Some(u) = &w.umask {
        s.push_str(&format!("umask {u}\n"));
    }
    s.push_str(&script);
    let cmd = Command {
        script: s,
        stdin: None,
        env,
        chdir: cwd.map(str::to_string),
        timeout: ctx.timeout,
        become_user: ctx.become_user.clone(),
        lines: None,
    };
    Ok(ctx.conn.exec(&cmd).await?)
}

/// Run one git command (words) and fail the task with `what` and its output if it fails.
async fn git(w: &Want, ctx: &Ctx<'_>, cwd: Option<&str>, words: &[&str], what: &str) -> Result<Output, Failure> {
    let script = format!("{} {}", quote(&w.git), crate::shell::join(words));
    let out = sh(w, ctx, cwd, script).await?;
    if out.rc != 0 {
        let mut r = ModuleResult::failed(format!(
            "{what}: {} {}",
            out.stdout_text().trim(),
            out.stderr_text().trim()
        ));
        r.rc = Some(out.rc.into());
        r.stdout = Some(out.stdout_text());
        r.stderr = Some(out.stderr_text());
        return Err(Failure::Failed(Box::new(r)));
    }
    Ok(out)
}

/// The repository directory of a destination: `dest` itself when bare, else `dest/.git`, or
/// the directory a `.git` file points to.
fn repo_dir_script(dest: &str, bare: bool) -> String {
    let d = quote(dest);
    if bare {
        format!("rd={d}\n")
    } else {
        format!(
            "rd={d}/.git\nif [ -f \"$rd\" ]; then g=$(sed -n 's/^gitdir: //p' \"$rd\"); case $g in /*) rd=$g;; *) rd={d}/$g;; esac; fi\n"
        )
    }
}

/// Read the destination and the remote's refs in one command.
async fn look(w: &Want, ctx: &Ctx<'_>) -> Result<(Here, Refs), Failure> {
    let g = quote(&w.git);
    let remote = quote(&w.remote);
    let mut s = String::new();
    if let Some(dest) = &w.dest {
        let d = quote(dest);
        s.push_str(&repo_dir_script(dest, w.bare));
        s.push_str(&format!(
            "if [ -f \"$rd/config\" ]; then\n\
             \x20 echo repo\n\
             \x20 cd {d} || exit 1\n\
             \x20 echo \"before $({g} rev-parse HEAD 2>/dev/null)\"\n\
             \x20 echo \"url $({g} ls-remote --get-url {remote} 2>/dev/null)\"\n"
        ));
        if !w.bare {
            s.push_str(&format!(
                "\x20 echo \"mods $({g} status --porcelain | grep -cv '^??')\"\n\
                 \x20 {g} branch --no-color -a | sed 's/^/branch /'\n"
            ));
        }
        s.push_str(&format!(
            "\x20 h=$(head -n1 \"$rd/HEAD\")\n\
             \x20 if {g} branch --no-color 2>/dev/null | grep -q '^\\* (\\(no branch\\|HEAD detached\\)'; then h=$(head -n1 \"$rd/refs/remotes/\"{remote}\"/HEAD\" 2>/dev/null); fi\n\
             \x20 echo \"head $h\"\n\
             \x20 echo refs; {g} ls-remote {remote} || exit 2\n\
             else\n\
             \x20 echo refs; {g} ls-remote {} || exit 2\n\
             fi\n",
            quote(&w.repo)
        ));
    } else {
        s.push_str(&format!("echo refs; {g} ls-remote {} || exit 2\n", quote(&w.repo)));
    }
    let out = sh(w, ctx, None, s).await?;
    let text = out.stdout_text();
    if out.rc != 0 {
        return Err(format!("cannot read the remote `{}`: {}", w.repo, out.stderr_text().trim()).into());
    }
    let (head, refs) = text.split_once("refs\n").unwrap_or((&text, ""));
    let mut here = Here::default();
    for line in head.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "repo" => here.repo = true,
            "before" if !v.is_empty() => here.before = Some(v.to_string()),
            "url" if !v.is_empty() => here.url = Some(v.to_string()),
            "mods" => here.local_mods = v.trim().parse::<u32>().unwrap_or(0) > 0,
            "branch" => here.local_branches.push(v.trim().to_string()),
            "head" => here.head_branch = Some(head_branch(v, &w.remote)),
            _ => {}
        }
    }
    Ok((here, Refs::parse(refs)))
}

/// Ansible's `head_splitter`: the branch name in a HEAD file's line (`ref: refs/heads/main`).
fn head_branch(line: &str, remote: &str) -> String {
    let line = line.replacen(&format!("refs/remotes/{remote}"), "", 1);
    let last = line.split(' ').next_back().unwrap_or("");
    last.splitn(3, '/').last().unwrap_or("").trim_end().to_string()
}

/// The commit the remote has for the version (Ansible's `get_remote_head`); a commit id is
/// itself.
fn remote_head(w: &Want, here: &Here, refs: &Refs) -> Result<String, Failure> {
    let missing = || Failure::from(format!("Could not determine remote revision for {}", w.version));
    if w.version == "HEAD" {
        return match (&here.repo, &here.head_branch) {
            (true, Some(b)) => refs
                .get(&format!("refs/heads/{b}"))
                .map(str::to_string)
                .ok_or_else(missing),
            _ => refs.get("HEAD").map(str::to_string).ok_or_else(missing),
        };
    }
    if refs.is_branch(&w.version) {
        return Ok(refs.get(&format!("refs/heads/{}", w.version)).unwrap_or("").to_string());
    }
    if refs.is_tag(&w.version) {
        return refs.tag(&w.version).map(str::to_string).ok_or_else(missing);
    }
    Ok(w.version.clone())
}

/// Whether two commit names are one commit: equal, or one a prefix of the other (a short id).
fn same_commit(a: &str, b: &str) -> bool {
    a == b || (a.len() >= 4 && b.len() >= 4 && (a.starts_with(b) || b.starts_with(a)))
}

/// Ansible's `unfrackgitpath` for comparing remote URLs: a path without its trailing slash.
fn same_url(a: &str, b: &str) -> bool {
    a == b || a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Ansible's `diff` value: `{prepared: TEXT}`.
fn prepared_value(text: String) -> Value {
    Value::from(std::collections::BTreeMap::from([(
        "prepared".to_string(),
        Value::from(text),
    )]))
}

fn newly(after: &str) -> Value {
    prepared_value(format!(">> Newly checked out {after}"))
}

fn version_diff(dest: &str, before: Option<&str>, after: &str) -> FileDiff {
    FileDiff {
        path: dest.to_string(),
        before: before.map(|b| format!("HEAD: {b}\n")).unwrap_or_default(),
        after: format!("HEAD: {after}\n"),
        change: if before.is_some() {
            Change::Update
        } else {
            Change::Create
        },
    }
}

/// `git diff before after` as Ansible's `diff.prepared` says it.
async fn prepared(w: &Want, ctx: &Ctx<'_>, dest: &str, before: &str, after: &str, objects: Option<&str>) -> Value {
    let env = match objects {
        Some(dir) => format!(
            "GIT_OBJECT_DIRECTORY={} GIT_ALTERNATE_OBJECT_DIRECTORIES=\"$(pwd)/$({} rev-parse --git-dir)/objects\" ",
            quote(dir),
            quote(&w.git)
        ),
        None => String::new(),
    };
    let script = format!("{env}{} diff {} {}", quote(&w.git), quote(before), quote(after));
    let text = match sh(w, ctx, Some(dest), script).await {
        Ok(out) if out.rc == 0 && !out.stdout.is_empty() => out.stdout_text(),
        Ok(out) if out.rc == 0 => format!(">> No visual differences between {before} and {after}"),
        Ok(out) if !out.stderr.is_empty() => format!(
            ">> Failed to get proper diff between {before} and {after}:\n>> {}",
            out.stderr_text()
        ),
        _ => format!(">> Failed to get proper diff between {before} and {after}"),
    };
    prepared_value(text)
}

/// In check mode, the diff of an update: the new commits fetched into a temporary object
/// directory, so the repository itself is not touched.
async fn check_diff(w: &Want, ctx: &Ctx<'_>, here: &Here, before: &str, after: &str, refs: &Refs) -> Value {
    let dest = w.dest.as_deref().unwrap_or_default();
    let fetch_ref = if w.version == "HEAD" {
        refs.0
            .iter()
            .find(|(s, n)| s == after && n.starts_with("refs/heads/"))
            .map(|(_, n)| n.clone())
    } else if refs.is_branch(&w.version) {
        Some(format!("refs/heads/{}", w.version))
    } else if refs.is_tag(&w.version) {
        Some(format!("refs/tags/{}", w.version))
    } else {
        None
    };
    // Fetched from the URL, not the remote's name: a named remote's tracking refs would be
    // updated to commits that only the temporary directory holds.
    let (Some(r), Some(url)) = (fetch_ref, &here.url) else {
        return prepared(w, ctx, dest, before, after, None).await;
    };
    let g = quote(&w.git);
    let script = format!(
        "t=$(mktemp -d) || exit 1\n\
         GIT_OBJECT_DIRECTORY=\"$t\" GIT_ALTERNATE_OBJECT_DIRECTORIES=\"$(pwd)/$({g} rev-parse --git-dir)/objects\" \
         {g} fetch -q --no-write-fetch-head --no-tags {} {} >/dev/null 2>&1\n\
         echo \"$t\"",
        quote(url),
        quote(&r)
    );
    let dir = match sh(w, ctx, Some(dest), script).await {
        Ok(out) if out.rc == 0 => out.stdout_text().trim().to_string(),
        _ => return prepared(w, ctx, dest, before, after, None).await,
    };
    let v = prepared(w, ctx, dest, before, after, Some(&dir)).await;
    let _ = sh(w, ctx, None, format!("rm -rf {}", quote(&dir))).await;
    v
}

/// What `apply` does.
enum Work {
    Clone,
    Update { here: Here, refs: Refs, url_changed: bool },
}

struct Action {
    want: Want,
    work: Work,
    refs: Refs,
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let w = want(args)?;
    let clone = args.bool("clone", true)?;
    let update = args.bool("update", true)?;
    let (here, refs) = look(&w, ctx).await?;
    let dest = w.dest.clone().unwrap_or_default();

    if !here.repo {
        let head = remote_head(&w, &here, &refs)?;
        let mut r = ModuleResult::changed()
            .with("before", Value::from(()))
            .with("after", head.as_str());
        if ctx.diff {
            r = r.with("diff", newly(&head));
            r.diffs.push(version_diff(&dest, None, &head));
        }
        // `clone: false` only reports what the remote has, as changed, as Ansible does.
        if !clone {
            return Ok(Plan::Unchanged(r));
        }
        return Ok(Plan::Change {
            preview: r,
            action: Box::new(Action {
                want: w,
                work: Work::Clone,
                refs: refs.clone(),
            }),
        });
    }

    let before = here.before.clone().unwrap_or_default();
    if !update {
        return Ok(Plan::Unchanged(
            ModuleResult::ok()
                .with("before", before.as_str())
                .with("after", before.as_str()),
        ));
    }
    if here.local_mods && !w.force {
        return Err(failed_with(
            format!("Local modifications exist in the destination: {dest} (force=no)."),
            Some(&before),
        ));
    }
    let url_changed = here.url.as_deref().is_some_and(|u| !same_url(u, &w.repo));
    let head = remote_head(&w, &here, &refs)?;
    let changes = !same_commit(&before, &head) || url_changed || here.local_mods;
    let mut r = ModuleResult::ok()
        .with("before", before.as_str())
        .with("after", if changes { head.as_str() } else { before.as_str() })
        .with("remote_url_changed", url_changed);
    if !changes {
        return Ok(Plan::Unchanged(r));
    }
    r.changed = true;
    if ctx.diff && !same_commit(&before, &head) {
        if ctx.check_mode {
            r = r.with("diff", check_diff(&w, ctx, &here, &before, &head, &refs).await);
        }
        r.diffs.push(version_diff(&dest, Some(&before), &head));
    }
    Ok(Plan::Change {
        preview: r,
        action: Box::new(Action {
            want: w,
            work: Work::Update {
                here,
                refs: refs.clone(),
                url_changed,
            },
            refs,
        }),
    })
}

apply_by!(Action, apply);

async fn apply(a: Action, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let w = &a.want;
    let dest = w.dest.clone().unwrap_or_default();
    let mut r = ModuleResult::ok();
    let (before, local_mods, url_changed) = match &a.work {
        Work::Clone => {
            clone(w, ctx, &dest, &a.refs).await?;
            r.data.insert("before".into(), Value::from(()));
            (None, false, false)
        }
        Work::Update {
            here,
            refs,
            url_changed,
        } => {
            let before = here.before.clone().unwrap_or_default();
            if here.local_mods {
                git(w, ctx, Some(&dest), &["reset", "--hard", "HEAD"], "Failed to reset").await?;
                r.msg = Some(format!("Local modifications exist in the destination: {dest}"));
            }
            if *url_changed {
                git(
                    w,
                    ctx,
                    Some(&dest),
                    &["remote", "set-url", &w.remote, &w.repo],
                    &format!("Failed to set a new url {} for {}", w.repo, w.remote),
                )
                .await?;
            }
            fetch(w, ctx, &dest, here, refs).await?;
            r.data.insert("before".into(), Value::from(before.as_str()));
            r.data.insert("remote_url_changed".into(), Value::from(*url_changed));
            (Some(before), here.local_mods, *url_changed)
        }
    };
    if !w.bare {
        switch_version(w, ctx, &dest, &a.refs).await?;
        if w.recursive {
            let out = sh(
                w,
                ctx,
                Some(&dest),
                format!(
                    "[ -f .gitmodules ] || exit 0\n{g} submodule sync && {g} submodule update --init --recursive",
                    g = quote(&w.git)
                ),
            )
            .await?;
            if out.rc != 0 {
                return Err(format!("Failed to init/update submodules: {}", out.stderr_text().trim()).into());
            }
        }
    }
    let after = git(w, ctx, Some(&dest), &["rev-parse", "HEAD"], "Failed to read HEAD")
        .await?
        .stdout_text()
        .trim()
        .to_string();
    r.data.insert("after".into(), Value::from(after.as_str()));
    if before.as_deref() != Some(after.as_str()) || local_mods || url_changed {
        r.changed = true;
        if ctx.diff {
            let d = match &before {
                None => newly(&after),
                Some(b) if b != &after => prepared(w, ctx, &dest, b, &after, None).await,
                Some(_) => Value::from(()),
            };
            if !d.is_none() {
                r.data.insert("diff".into(), d);
                r.diffs.push(version_diff(&dest, before.as_deref(), &after));
            }
        }
    }
    Ok(r)
}

/// Ansible's `clone`.
async fn clone(w: &Want, ctx: &Ctx<'_>, dest: &str, refs: &Refs) -> Result<(), Failure> {
    let parent = match dest.rsplit_once('/') {
        Some(("", _)) => "/".to_string(),
        Some((p, _)) => p.to_string(),
        None => ".".to_string(),
    };
    let mut words: Vec<String> = vec!["clone".into()];
    if w.bare {
        words.push("--bare".into());
    } else {
        words.extend(["--origin".into(), w.remote.clone()]);
    }
    let branch_or_tag = refs.is_branch(&w.version) || refs.is_tag(&w.version);
    if let Some(d) = w.depth {
        if w.version == "HEAD" || w.refspec.is_some() {
            words.extend(["--depth".into(), d.to_string()]);
        } else if branch_or_tag {
            words.extend(["--depth".into(), d.to_string(), "--branch".into(), w.version.clone()]);
        }
    }
    if w.single_branch {
        words.push("--single-branch".into());
        if branch_or_tag {
            words.extend(["--branch".into(), w.version.clone()]);
        }
    }
    words.extend([w.repo.clone(), dest.to_string()]);
    let out = sh(
        w,
        ctx,
        None,
        format!(
            "mkdir -p {} 2>/dev/null; cd {} || exit 1\n{} {}",
            quote(&parent),
            quote(&parent),
            quote(&w.git),
            crate::shell::join(&words)
        ),
    )
    .await?;
    if out.rc != 0 {
        return Err(format!("Failed to clone {}: {}", w.repo, out.stderr_text().trim()).into());
    }
    if w.bare && w.remote != "origin" {
        git(
            w,
            ctx,
            Some(dest),
            &["remote", "add", &w.remote, &w.repo],
            "Failed to add the remote",
        )
        .await?;
    }
    if let Some(spec) = &w.refspec {
        let depth = w.depth.map(|d| d.to_string());
        let mut f: Vec<&str> = vec!["fetch"];
        if let Some(d) = &depth {
            f.extend(["--depth", d]);
        }
        f.extend([w.remote.as_str(), spec.as_str()]);
        git(w, ctx, Some(dest), &f, "Failed to download remote objects and refs").await?;
    }
    Ok(())
}

/// Ansible's `fetch`: the fewest refs a shallow checkout needs, else every branch and tag.
async fn fetch(w: &Want, ctx: &Ctx<'_>, dest: &str, here: &Here, refs: &Refs) -> Result<(), Failure> {
    let mut words: Vec<String> = vec!["fetch".into()];
    let mut specs: Vec<String> = Vec::new();
    if let Some(d) = w.depth {
        let current = here.head_branch.clone().unwrap_or_default();
        if let Some(s) = &w.refspec {
            specs.push(s.clone());
        } else if w.version == "HEAD" {
            specs.push(current);
        } else if refs.is_branch(&w.version) {
            if current != w.version {
                specs.push(format!("+refs/heads/{v}:refs/heads/{v}", v = w.version));
            }
            specs.push(format!("+refs/heads/{v}:refs/remotes/{}/{v}", w.remote, v = w.version));
        } else if refs.is_tag(&w.version) {
            specs.push(format!("+refs/tags/{v}:refs/tags/{v}", v = w.version));
        }
        if !specs.is_empty() {
            words.extend(["--depth".into(), d.to_string()]);
        }
    }
    if w.depth.is_none() || specs.is_empty() {
        if w.bare {
            specs = vec!["+refs/heads/*:refs/heads/*".into(), "+refs/tags/*:refs/tags/*".into()];
        } else {
            words.push("--tags".into());
        }
        if let Some(s) = &w.refspec {
            specs.push(s.clone());
        }
    }
    if w.force {
        words.push("--force".into());
    }
    words.push(w.remote.clone());
    words.extend(specs);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    git(w, ctx, Some(dest), &words, "Failed to download remote objects and refs").await?;
    Ok(())
}

/// Ansible's `switch_version`: check out the branch (tracking the remote's), tag or commit.
async fn switch_version(w: &Want, ctx: &Ctx<'_>, dest: &str, refs: &Refs) -> Result<(), Failure> {
    let r = &w.remote;
    let v = &w.version;
    if v == "HEAD" {
        let out = sh(
            w,
            ctx,
            Some(dest),
            format!(
                "h=$(head -n1 \"$({g} rev-parse --git-dir)/HEAD\")\n\
                 if {g} branch --no-color | grep -q '^\\* (\\(no branch\\|HEAD detached\\)'; then h=$(head -n1 \"$({g} rev-parse --git-dir)/refs/remotes/\"{rq}\"/HEAD\"); fi\n\
                 echo \"$h\"",
                g = quote(&w.git),
                rq = quote(r)
            ),
        )
        .await?;
        let branch = head_branch(out.stdout_text().trim(), r);
        git(
            w,
            ctx,
            Some(dest),
            &["checkout", "--force", &branch],
            &format!("Failed to checkout branch {branch}"),
        )
        .await?;
        git(
            w,
            ctx,
            Some(dest),
            &["reset", "--hard", &format!("{r}/{branch}"), "--"],
            &format!("Failed to checkout branch {branch}"),
        )
        .await?;
        return Ok(());
    }
    if refs.is_branch(v) {
        let local = async {
            let out = git(
                w,
                ctx,
                Some(dest),
                &["branch", "--no-color"],
                "Could not determine branch data",
            )
            .await?;
            Ok::<bool, Failure>(
                out.stdout_text()
                    .lines()
                    .any(|l| l.trim_start_matches('*').trim() == v.as_str()),
            )
        };
        let mut is_local = local.await?;
        if let Some(d) = w.depth
            && !is_local
        {
            let spec = format!("+refs/heads/{v}:refs/heads/{v} +refs/heads/{v}:refs/remotes/{r}/{v}");
            let mut words: Vec<String> = vec!["fetch".into(), format!("--depth={d}"), r.clone()];
            words.extend(spec.split(' ').map(str::to_string));
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            git(
                w,
                ctx,
                Some(dest),
                &words,
                &format!("Failed to fetch branch from remote: {v}"),
            )
            .await?;
            is_local = true;
            // The fetch made the local branch; check it out as an existing one.
        }
        let fail = format!("Failed to checkout {v}");
        if !is_local {
            git(
                w,
                ctx,
                Some(dest),
                &["checkout", "--track", "-b", v, &format!("{r}/{v}")],
                &fail,
            )
            .await?;
        } else {
            git(
                w,
                ctx,
                Some(dest),
                &["checkout", "--force", v],
                &format!("Failed to checkout branch {v}"),
            )
            .await?;
            git(w, ctx, Some(dest), &["reset", "--hard", &format!("{r}/{v}")], &fail).await?;
        }
        return Ok(());
    }
    git(
        w,
        ctx,
        Some(dest),
        &["checkout", "--force", v],
        &format!("Failed to checkout {v}"),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_files_name_their_branch_as_ansible_splits_them() {
        assert_eq!(head_branch("ref: refs/heads/main", "origin"), "main");
        assert_eq!(head_branch("ref: refs/heads/feature/x", "origin"), "feature/x");
        assert_eq!(head_branch("ref: refs/remotes/origin/HEAD", "origin"), "HEAD");
        assert_eq!(head_branch("ref: refs/remotes/origin/main", "origin"), "main");
    }

    #[test]
    fn an_annotated_tag_names_the_commit_it_points_to() {
        let refs =
            Refs::parse("c1\tHEAD\nc1\trefs/heads/main\nt1\trefs/tags/v1\nc0\trefs/tags/v1^{}\nc2\trefs/tags/v2\n");
        assert_eq!(refs.tag("v1"), Some("c0"));
        assert_eq!(refs.tag("v2"), Some("c2"));
        assert!(refs.is_branch("main") && !refs.is_branch("v1"));
        assert!(refs.is_tag("v1") && !refs.is_tag("main"));
    }

    #[test]
    fn a_short_commit_id_is_the_same_commit() {
        assert!(same_commit("7f91e67a696f9d2bb0f4d221165081f8886084d7", "7f91e67"));
        assert!(!same_commit("7f91e67a696f9d2bb0f4d221165081f8886084d7", "bb1fbc7"));
        assert!(!same_commit("abc", ""));
    }
}

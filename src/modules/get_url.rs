//! `get_url`: a file downloaded over HTTP(S) or FTP onto the host, as ansible-core 2.19's module
//! does it: the download happens on the managed host (here with its `curl`), into a temporary
//! file beside the destination that replaces it only when its SHA-1 differs; `checksum`
//! (`ALGO:HEX`, or `ALGO:URL` of a checksum file) is verified first, and with it an existing
//! destination that already matches is not downloaded again. Without `force`, an existing
//! destination is asked for with `If-Modified-Since`. Check mode sends a HEAD request, as
//! Ansible does, and reports what it reports.

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::{Command, FileAttrs};
use crate::shell::quote;
use minijinja::Value;
use minijinja::value::ValueKind;

/// `get_url`: download a file.
pub struct GetUrl;

static GET_URL: ModuleSpec = ModuleSpec {
    params: &[
        req("url"),
        req("dest"),
        p("checksum"),
        p("force"),
        p("headers"),
        p("timeout"),
        p("mode"),
        p("owner"),
        p("group"),
        p("backup"),
        p("validate_certs"),
        p("url_username").aliases(&["username"]),
        p("url_password").aliases(&["password"]),
        p("force_basic_auth"),
        p("http_agent"),
        p("use_proxy"),
        p("tmp_dest"),
    ],
    ..ModuleSpec::new("get_url", BUILTIN)
};

impl Module for GetUrl {
    fn spec(&self) -> &'static ModuleSpec {
        &GET_URL
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

const ALGORITHMS: &[&str] = &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

#[derive(Debug, Clone)]
struct Want {
    url: String,
    dest: String,
    /// The algorithm and the expected digest (lowercase hex).
    checksum: Option<(String, String)>,
    force: bool,
    backup: bool,
    attrs: FileAttrs,
    /// curl's options: timeout, headers, credentials, agent, TLS.
    curl: String,
    tmp_dest: Option<String>,
}

fn want(args: &Args) -> Result<Want, Failure> {
    let url = args.req_str("url")?;
    let dest = args.req_str("dest")?;
    let timeout = args.f64("timeout")?.unwrap_or(10.0);
    let mut curl = format!(
        "curl -sS -L --max-time {timeout} -A {}",
        quote(&args.str("http_agent")?.unwrap_or_else(|| "ansible-httpget".into()))
    );
    if !args.bool("validate_certs", true)? {
        curl.push_str(" -k");
    }
    if let Some(u) = args.str("url_username")? {
        let pw = args.str("url_password")?.unwrap_or_default();
        curl.push_str(&format!(" -u {}", quote(&format!("{u}:{pw}"))));
        if args.bool("force_basic_auth", false)? {
            curl.push_str(" --basic");
        }
    }
    if !args.bool("use_proxy", true)? {
        curl.push_str(" --noproxy '*'");
    }
    if let Some(h) = args.get("headers") {
        if h.kind() != ValueKind::Map {
            return Err("`headers` must be a mapping of header names to values".into());
        }
        for k in h.try_iter().map_err(|e| e.to_string())? {
            let v = h.get_item(&k).map_err(|e| e.to_string())?;
            curl.push_str(&format!(
                " -H {}",
                quote(&format!(
                    "{}: {}",
                    crate::values::value_to_string(&k),
                    crate::values::value_to_string(&v)
                ))
            ));
        }
    }
    let checksum = match args.str("checksum")?.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let (algo, value) = c
                .split_once(':')
                .ok_or("The checksum parameter has to be in format <algorithm>:<checksum>")?;
            if !ALGORITHMS.contains(&algo) {
                return Err(format!(
                    "Could not hash file with algorithm `{algo}`: choose one of {}",
                    ALGORITHMS.join(", ")
                )
                .into());
            }
            Some((algo.to_string(), value.to_string()))
        }
    };
    Ok(Want {
        url,
        dest,
        checksum,
        force: args.bool("force", false)?,
        backup: args.bool("backup", false)?,
        attrs: FileAttrs {
            mode: args.mode("mode")?,
            owner: args.str("owner")?,
            group: args.str("group")?,
        },
        curl,
        tmp_dest: args.str("tmp_dest")?,
    })
}

async fn sh(ctx: &Ctx<'_>, script: String) -> Result<crate::connection::Output, Failure> {
    let mut cmd = Command::new(script);
    cmd.env = ctx.env.clone();
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    Ok(ctx.conn.exec(&cmd).await?)
}

/// The last path segment of a URL (Ansible's `url_filename`), `index.html` for none.
fn url_filename(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let path = path
        .split_once("://")
        .map_or(path, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => "index.html".into(),
    }
}

fn is_url(s: &str) -> bool {
    ["http://", "https://", "ftp://", "file://"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Ansible's `parse_digest_lines`: `(digest, file)` pairs from GNU or BSD checksum lines, or a
/// file that is one digest alone.
fn parse_digest_lines(filename: &str, text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 && lines[0].split_whitespace().count() == 1 {
        return vec![(lines[0].trim().to_string(), filename.to_string())];
    }
    let bsd = regex::Regex::new(r"^(\w+) ?\((?P<path>.+)\) ?= (?P<digest>[\w.]+)$").expect("a valid pattern");
    let gnu = regex::Regex::new(r"^(?P<digest>[\w.]+)\s+(\*|\./|\.)?(?P<path>.+)$").expect("a valid pattern");
    lines
        .iter()
        .filter_map(|l| {
            if let Some(c) = bsd.captures(l) {
                Some((c["digest"].to_string(), c["path"].to_string()))
            } else {
                gnu.captures(l).map(|c| {
                    (
                        c["digest"].to_string(),
                        c["path"].trim_start_matches(['.', '/']).to_string(),
                    )
                })
            }
        })
        .collect()
}

/// The expected digest: given, or read from the checksum file a URL names.
async fn expected_digest(w: &Want, ctx: &Ctx<'_>) -> Result<Option<(String, String)>, Failure> {
    let Some((algo, value)) = &w.checksum else {
        return Ok(None);
    };
    let mut value = value.clone();
    if is_url(&value) {
        let out = sh(ctx, format!("{} {}", w.curl, quote(&value))).await?;
        if out.rc != 0 {
            return Err(format!("Request failed: {}", out.stderr_text().trim()).into());
        }
        let filename = url_filename(&w.url);
        value = parse_digest_lines(&filename, &out.stdout_text())
            .into_iter()
            .find(|(_, f)| *f == filename)
            .map(|(d, _)| d)
            .ok_or_else(|| format!("Unable to find a checksum for file '{filename}' in '{value}'"))?;
    }
    let value: String = value
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_lowercase();
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("The checksum format is invalid".into());
    }
    Ok(Some((algo.clone(), value)))
}

/// `key value` lines a host script printed.
fn fields(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' ').or(Some((l, ""))))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What Ansible adds to a result whose `dest` exists: its owner, mode, size...
pub(crate) async fn path_info(r: &mut ModuleResult, dest: &str, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let out = sh(
        ctx,
        format!("stat -c '%u %g %U %G %a %s %F' -- {} 2>/dev/null || true", quote(dest)),
    )
    .await?;
    let text = out.stdout_text();
    let f: Vec<&str> = text.trim().splitn(7, ' ').collect();
    if f.len() < 7 {
        return Ok(());
    }
    let mode = u32::from_str_radix(f[4], 8).unwrap_or(0);
    r.data
        .insert("uid".into(), Value::from(f[0].parse::<u64>().unwrap_or(0)));
    r.data
        .insert("gid".into(), Value::from(f[1].parse::<u64>().unwrap_or(0)));
    r.data.insert("owner".into(), Value::from(f[2]));
    r.data.insert("group".into(), Value::from(f[3]));
    r.data.insert("mode".into(), Value::from(format!("{mode:04o}")));
    r.data
        .insert("size".into(), Value::from(f[5].parse::<u64>().unwrap_or(0)));
    let state = match f[6] {
        "directory" => "directory",
        "symbolic link" => "link",
        _ => "file",
    };
    r.data.insert("state".into(), Value::from(state));
    Ok(())
}

/// A request's outcome, as the host's curl reported it.
struct Response {
    rc: i32,
    code: u16,
    /// Content-Length of the final response, if it said.
    length: Option<String>,
    /// The file name Content-Disposition gives, if any.
    filename: Option<String>,
    sha1: String,
    digest: Option<String>,
    tmp: String,
    error: String,
}

impl Response {
    fn ok_msg(&self) -> String {
        format!("OK ({} bytes)", self.length.as_deref().unwrap_or("unknown"))
    }
}

/// Request the URL into a temporary file on the host (`head`: a HEAD request, as check mode
/// sends), conditional on an existing destination's time unless forced.
async fn request(
    w: &Want,
    ctx: &Ctx<'_>,
    dir: &str,
    head: bool,
    since: Option<&str>,
    algo: Option<&str>,
) -> Result<Response, Failure> {
    let tmpdir = w.tmp_dest.clone().unwrap_or_else(|| dir.to_string());
    let mut curl = w.curl.clone();
    // A HEAD request's headers are not the file: it stays empty, as Ansible's does.
    let body = if head {
        curl.push_str(" -I");
        "/dev/null"
    } else {
        "\"$t\""
    };
    match since {
        Some(path) if !w.force => curl.push_str(&format!(" -z {}", quote(path))),
        _ if w.force => curl.push_str(" -H 'Cache-Control: no-cache'"),
        _ => {}
    }
    let digest = algo
        .map(|a| format!("echo \"digest $({a}sum < \"$t\" | cut -d' ' -f1)\"\n"))
        .unwrap_or_default();
    let script = format!(
        "t=$(mktemp {}/.roll-get_url.XXXXXXXX) || exit 1\n\
         code=$({curl} -o {body} -D \"$t.h\" -w '%{{http_code}}' {} 2>\"$t.e\"); echo \"rc $?\"\n\
         echo \"code $code\"\n\
         echo \"length $(tr -d '\\r' < \"$t.h\" | awk 'tolower($1)==\"content-length:\" {{v=$2}} /^HTTP\\// {{v=\"\"}} END {{print v}}')\"\n\
         echo \"filename $(tr -d '\\r' < \"$t.h\" | sed -n 's/^[Cc]ontent-[Dd]isposition:.*filename=\"\\{{0,1\\}}\\([^\";]*\\).*/\\1/p' | tail -n1)\"\n\
         echo \"sha1 $(sha1sum < \"$t\" | cut -d' ' -f1)\"\n\
         {digest}echo \"error $(tr '\\n' ' ' < \"$t.e\")\"\n\
         rm -f \"$t.h\" \"$t.e\"\n\
         echo \"tmp $t\"\n",
        quote(&tmpdir),
        quote(&w.url)
    );
    let out = sh(ctx, script).await?;
    if out.rc != 0 {
        return Err(format!("cannot download into `{tmpdir}`: {}", out.stderr_text().trim()).into());
    }
    let f = fields(&out.stdout_text());
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    Ok(Response {
        rc: get("rc").trim().parse().unwrap_or(-1),
        code: get("code").trim().parse().unwrap_or(0),
        length: Some(get("length").trim().to_string()).filter(|s| !s.is_empty()),
        filename: Some(get("filename").trim().to_string())
            .filter(|s| !s.is_empty())
            .map(|n| n.rsplit('/').next().unwrap_or("").to_string()),
        sha1: get("sha1").trim().to_string(),
        digest: f.get("digest").map(|d| d.trim().to_string()),
        tmp: get("tmp").trim().to_string(),
        error: get("error").trim().to_string(),
    })
}

fn base(w: &Want, dest: &str) -> ModuleResult {
    ModuleResult::ok()
        .with("checksum_dest", Value::from(()))
        .with("checksum_src", Value::from(()))
        .with("dest", dest)
        .with("elapsed", 0)
        .with("url", w.url.as_str())
}

/// What the destination is now: a directory, a file (with its SHA-1 and the task's digest),
/// or absent; and whether its attributes differ from the task's.
struct Dest {
    is_dir: bool,
    exists: bool,
    digest: Option<String>,
}

async fn look(w: &Want, ctx: &Ctx<'_>, algo: Option<&str>) -> Result<Dest, Failure> {
    let d = quote(&w.dest);
    let digest = algo
        .map(|a| format!("[ -f {d} ] && echo \"digest $({a}sum < {d} | cut -d' ' -f1)\"\n"))
        .unwrap_or_default();
    let out = sh(
        ctx,
        format!("if [ -d {d} ]; then echo dir; elif [ -e {d} ]; then echo exists; fi\n{digest}true"),
    )
    .await?;
    let text = out.stdout_text();
    let f = fields(&text);
    Ok(Dest {
        is_dir: f.contains_key("dir"),
        exists: f.contains_key("exists"),
        digest: f.get("digest").map(|s| s.trim().to_string()),
    })
}

/// The attribute changes (`chmod`/`chown`/`chgrp` lines) that would make `dest` as the task
/// asks; empty when it already is.
async fn attr_script(w: &Want, dest: &str, ctx: &Ctx<'_>) -> Result<String, Failure> {
    let a = &w.attrs;
    if a.mode.is_none() && a.owner.is_none() && a.group.is_none() {
        return Ok(String::new());
    }
    let st = ctx.conn.stat(dest, ctx.become_user.as_deref()).await?;
    let p = quote(dest);
    let mut s = String::new();
    if let Some(o) = &a.owner
        && o != &st.owner
    {
        s.push_str(&format!("chown {} {p} || exit 1\n", quote(o)));
    }
    if let Some(g) = &a.group
        && g != &st.group
    {
        s.push_str(&format!("chgrp {} {p} || exit 1\n", quote(g)));
    }
    if let Some(m) = a.mode
        && (m != st.mode || !s.is_empty())
    {
        s.push_str(&format!("chmod {m:o} {p} || exit 1\n"));
    }
    Ok(s)
}

enum Work {
    /// Only the attributes of a destination that already matches.
    Attrs(String),
    Download {
        since: bool,
        dest_is_dir: bool,
    },
}

struct Action {
    want: Want,
    digest: Option<(String, String)>,
    work: Work,
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let mut w = want(args)?;
    let digest = expected_digest(&w, ctx).await?;
    let algo = digest.as_ref().map(|(a, _)| a.as_str());
    let here = look(&w, ctx, algo).await?;
    let dest = w.dest.clone();

    if !here.is_dir && here.exists {
        let mismatch = !w.force
            && digest
                .as_ref()
                .is_some_and(|(_, want)| here.digest.as_deref() != Some(want.as_str()));
        if !w.force && digest.is_some() && !mismatch {
            let mut r = base(&w, &dest);
            path_info(&mut r, &dest, ctx).await?;
            let attrs = attr_script(&w, &dest, ctx).await?;
            if attrs.is_empty() {
                return Ok(Plan::Unchanged(r.with_msg("file already exists")));
            }
            r.changed = true;
            return Ok(Plan::Change {
                preview: r.with_msg("file already exists but file attributes changed"),
                action: Box::new(Action {
                    want: w,
                    digest,
                    work: Work::Attrs(attrs),
                }),
            });
        }
        if mismatch {
            w.force = true;
        }
    }
    let since = !here.is_dir && here.exists;
    let dir = if here.is_dir { dest.clone() } else { parent(&dest) };

    if ctx.check_mode {
        let resp = request(&w, ctx, &dir, true, since.then_some(dest.as_str()), None).await?;
        let _ = sh(ctx, format!("rm -f {}", quote(&resp.tmp))).await;
        let mut r = outcome(&w, &resp, &dest)?;
        if resp.code == 304 {
            path_info(&mut r, &dest, ctx).await?;
            return Ok(Plan::Unchanged(r));
        }
        let final_dest = final_dest(&w, here.is_dir, &resp);
        let mut r = base(&w, &final_dest).with_msg(resp.ok_msg());
        r.data.insert("checksum_src".into(), Value::from(resp.sha1.as_str()));
        let dest_sha1 = sha1_of(ctx, &final_dest).await?;
        if let Some(s) = &dest_sha1 {
            r.data.insert("checksum_dest".into(), Value::from(s.as_str()));
        }
        if dest_sha1.as_deref() == Some(resp.sha1.as_str()) {
            return Ok(Plan::Unchanged(r));
        }
        r.changed = true;
        return Ok(Plan::Change {
            preview: r,
            action: Box::new(Action {
                want: w,
                digest,
                work: Work::Download {
                    since,
                    dest_is_dir: here.is_dir,
                },
            }),
        });
    }

    // Only what every outcome has: a 304 answer reports no checksums, as in Ansible.
    let mut preview = ModuleResult::changed()
        .with("dest", dest.as_str())
        .with("url", w.url.as_str());
    preview.changed = true;
    Ok(Plan::Change {
        preview,
        action: Box::new(Action {
            want: w,
            digest,
            work: Work::Download {
                since,
                dest_is_dir: here.is_dir,
            },
        }),
    })
}

fn parent(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((p, _)) => p.into(),
        None => ".".into(),
    }
}

/// Where the file goes: `dest`, or in a directory `dest` the name the response gives
/// (Content-Disposition) or the URL's last segment.
fn final_dest(w: &Want, is_dir: bool, resp: &Response) -> String {
    if !is_dir {
        return w.dest.clone();
    }
    let name = resp.filename.clone().unwrap_or_else(|| url_filename(&w.url));
    format!("{}/{name}", w.dest.trim_end_matches('/'))
}

async fn sha1_of(ctx: &Ctx<'_>, path: &str) -> Result<Option<String>, Failure> {
    let p = quote(path);
    let out = sh(ctx, format!("[ -f {p} ] && sha1sum < {p} | cut -d' ' -f1; true")).await?;
    Ok(Some(out.stdout_text().trim().to_string()).filter(|s| !s.is_empty()))
}

/// A response that ends the task: 304 (unchanged), a failed request, or a status other than
/// 200. `Ok` with a 200 is the base result to go on from.
fn outcome(w: &Want, resp: &Response, dest: &str) -> Result<ModuleResult, Failure> {
    if resp.rc != 0 && resp.code == 0 {
        let mut r = ModuleResult::failed(format!("Request failed: {}", resp.error.trim_start_matches("curl: ")));
        r.data.insert("url".into(), Value::from(w.url.as_str()));
        r.data.insert("dest".into(), Value::from(dest));
        r.data.insert("elapsed".into(), Value::from(0));
        return Err(Failure::Failed(Box::new(r)));
    }
    if resp.code == 304 {
        return Ok(ModuleResult::ok()
            .with("url", w.url.as_str())
            .with("dest", dest)
            .with_msg("HTTP Error 304: Not Modified")
            .with("status_code", 304)
            .with("elapsed", 0));
    }
    if resp.code != 200 && !w.url.starts_with("file:/") {
        let mut r = ModuleResult::failed("Request failed");
        r.data.insert("status_code".into(), Value::from(resp.code));
        r.data.insert("url".into(), Value::from(w.url.as_str()));
        r.data.insert("dest".into(), Value::from(dest));
        r.data.insert("elapsed".into(), Value::from(0));
        return Err(Failure::Failed(Box::new(r)));
    }
    Ok(ModuleResult::ok())
}

apply_by!(Action, apply);

async fn apply(a: Action, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let w = &a.want;
    let (since, dest_is_dir) = match a.work {
        Work::Attrs(script) => {
            let out = sh(ctx, script).await?;
            if out.rc != 0 {
                return Err(format!("cannot change `{}`: {}", w.dest, out.stderr_text().trim()).into());
            }
            let mut r = base(w, &w.dest).with_msg("file already exists but file attributes changed");
            r.changed = true;
            path_info(&mut r, &w.dest, ctx).await?;
            return Ok(r);
        }
        Work::Download { since, dest_is_dir } => (since, dest_is_dir),
    };
    let dir = if dest_is_dir { w.dest.clone() } else { parent(&w.dest) };
    let start = std::time::Instant::now();
    let algo = a.digest.as_ref().map(|(al, _)| al.as_str());
    let resp = request(w, ctx, &dir, false, since.then_some(w.dest.as_str()), algo).await?;
    let elapsed = start.elapsed().as_secs();
    let cleanup = |tmp: String| async move {
        let _ = sh(ctx, format!("rm -f {}", quote(&tmp))).await;
    };
    let mut r = match outcome(w, &resp, &w.dest) {
        Ok(r) => r,
        Err(e) => {
            cleanup(resp.tmp.clone()).await;
            return Err(e);
        }
    };
    if resp.code == 304 {
        cleanup(resp.tmp.clone()).await;
        path_info(&mut r, &w.dest, ctx).await?;
        return Ok(r);
    }
    let dest = final_dest(w, dest_is_dir, &resp);
    r = base(w, &dest).with("elapsed", elapsed).with("src", resp.tmp.as_str());
    r.data.insert("checksum_src".into(), Value::from(resp.sha1.as_str()));
    let dest_sha1 = sha1_of(ctx, &dest).await?;
    if let Some(s) = &dest_sha1 {
        r.data.insert("checksum_dest".into(), Value::from(s.as_str()));
    }
    if let Some((_, want)) = &a.digest
        && resp.digest.as_deref() != Some(want.as_str())
    {
        cleanup(resp.tmp.clone()).await;
        r.failed = true;
        r.msg = Some(format!(
            "The checksum for {} did not match {want}; it was {}.",
            resp.tmp,
            resp.digest.as_deref().unwrap_or("")
        ));
        return Err(Failure::Failed(Box::new(r)));
    }
    let p = quote(&dest);
    let t = quote(&resp.tmp);
    let mut script = String::new();
    if dest_sha1.as_deref() != Some(resp.sha1.as_str()) {
        if w.backup {
            script.push_str(&super::files::backup_script(&p));
        }
        // A replaced file keeps its mode and owner; a new one gets the usual 0666 less umask.
        script.push_str(&format!(
            "if [ -e {p} ]; then chmod --reference={p} {t} && chown --reference={p} {t}; else chmod $(printf '%o' $((0666 & ~$(umask)))) {t}; fi || exit 1\n\
             mv -f {t} {p} || exit 1\n"
        ));
        r.changed = true;
    } else {
        script.push_str(&format!("rm -f {t}\n"));
    }
    let out = sh(ctx, script).await?;
    if out.rc != 0 {
        cleanup(resp.tmp.clone()).await;
        return Err(format!("failed to copy {} to {dest}: {}", resp.tmp, out.stderr_text().trim()).into());
    }
    if let Some(b) = fields(&out.stdout_text()).get("backup") {
        r.data.insert("backup_file".into(), Value::from(b.as_str()));
    }
    let attrs = attr_script(w, &dest, ctx).await?;
    if !attrs.is_empty() {
        let out = sh(ctx, attrs).await?;
        if out.rc != 0 {
            return Err(format!("cannot change `{dest}`: {}", out.stderr_text().trim()).into());
        }
        r.changed = true;
    }
    let md5 = sh(ctx, format!("md5sum < {p} | cut -d' ' -f1")).await?;
    r.data.insert("md5sum".into(), Value::from(md5.stdout_text().trim()));
    r.data.insert("status_code".into(), Value::from(resp.code));
    r.msg = Some(resp.ok_msg());
    path_info(&mut r, &dest, ctx).await?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_its_file_by_its_last_segment() {
        assert_eq!(url_filename("http://h:1/a/b/app.tar.gz?x=1"), "app.tar.gz");
        assert_eq!(url_filename("http://h/"), "index.html");
        assert_eq!(url_filename("http://h"), "index.html");
    }

    #[test]
    fn checksum_files_are_read_in_gnu_and_bsd_form_or_as_one_digest() {
        let gnu = parse_digest_lines("app.txt", "abc123  app.txt\ndef456 *./other.txt\n");
        assert_eq!(gnu[0], ("abc123".into(), "app.txt".into()));
        assert_eq!(gnu[1], ("def456".into(), "other.txt".into()));
        let bsd = parse_digest_lines("app.txt", "SHA256 (app.txt) = abc123\n");
        assert_eq!(bsd[0], ("abc123".into(), "app.txt".into()));
        assert_eq!(parse_digest_lines("app.txt", "abc123\n")[0].1, "app.txt");
    }
}

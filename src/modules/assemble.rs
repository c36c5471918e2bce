//! `assemble`: a file made of a directory's fragments in name order (on the host by default,
//! from the controller with `remote_src: false`), delimited and filtered as ansible-core 2.19's
//! `assemble` does, then written as `copy` writes it.

use super::files::{file_params, md5_hex, plan_content_as, read_current, sha1_hex};
use super::spec::{BUILTIN, ModuleSpec, ParamKind, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;

/// `assemble`, as ansible-core's.
pub struct Assemble;

static ASSEMBLE: ModuleSpec = ModuleSpec {
    params: file_params![
        req("src"),
        req("dest"),
        p("delimiter"),
        p("regexp").kind(ParamKind::Regex),
        p("ignore_hidden"),
        p("remote_src"),
        p("backup"),
        p("validate"),
        p("decrypt"),
        p("follow"),
    ],
    ..ModuleSpec::new("assemble", BUILTIN)
};

impl Module for Assemble {
    fn spec(&self) -> &'static ModuleSpec {
        &ASSEMBLE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// Python's `codecs.escape_decode`: the string escapes of a bytes literal.
fn escape_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' || i + 1 == s.len() {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let c = s[i + 1];
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' | b'\'' | b'"' => out.push(c),
            b'\n' => {}
            b'x' => {
                let hex = s.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.extend_from_slice(b"\\x"),
                }
            }
            b'0'..=b'7' => {
                let mut n = u32::from(c - b'0');
                let mut taken = 0;
                while taken < 2 && i < s.len() && (b'0'..=b'7').contains(&s[i]) {
                    n = n * 8 + u32::from(s[i] - b'0');
                    i += 1;
                    taken += 1;
                }
                out.push((n & 0xff) as u8);
            }
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    out
}

/// The fragments joined as `assemble_from_fragments` joins them: a newline after a fragment
/// that lacks one, the delimiter (and a newline after it) between fragments.
pub fn join(fragments: &[Vec<u8>], delimiter: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut delimiter = delimiter.filter(|d| !d.is_empty()).map(|d| d.as_bytes().to_vec());
    let mut add_newline = false;
    for (n, f) in fragments.iter().enumerate() {
        if add_newline {
            out.push(b'\n');
        }
        if n > 0
            && let Some(d) = &mut delimiter
        {
            // ansible-core decodes the escapes again for each delimiter it writes.
            *d = escape_decode(d);
            out.extend_from_slice(d);
            if d.last() != Some(&b'\n') {
                out.push(b'\n');
            }
        }
        out.extend_from_slice(f);
        add_newline = !f.ends_with(b"\n");
    }
    out
}

/// Which of a directory's regular files (links followed) are fragments, in Python's sorted order.
fn pick(mut names: Vec<String>, regexp: Option<&regex::bytes::Regex>, ignore_hidden: bool) -> Vec<String> {
    names.sort();
    names
        .into_iter()
        .filter(|n| regexp.is_none_or(|re| re.is_match(n.as_bytes())))
        .filter(|n| !(ignore_hidden && n.starts_with('.')))
        .collect()
}

async fn remote_fragments(
    src: &str,
    regexp: Option<&regex::bytes::Regex>,
    ignore_hidden: bool,
    ctx: &Ctx<'_>,
) -> Result<Vec<Vec<u8>>, Failure> {
    let p = quote(src);
    let mut cmd = Command::new(format!(
        "if [ ! -e {p} ]; then printf 'Source (%s) does not exist\\n' {p} >&2; exit 3; fi\n\
         if [ ! -d {p} ]; then printf 'Source (%s) is not a directory\\n' {p} >&2; exit 3; fi\n\
         find {p} -mindepth 1 -maxdepth 1 -xtype f -printf '%f\\0'"
    ));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(out.stderr_text().trim().to_string().into());
    }
    let names: Vec<String> = out
        .stdout
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let mut fragments = Vec::new();
    for name in pick(names, regexp, ignore_hidden) {
        let path = format!("{}/{name}", src.trim_end_matches('/'));
        let data = ctx.conn.read_file(&path, ctx.become_user.as_deref()).await?;
        fragments.push(data.unwrap_or_default());
    }
    Ok(fragments)
}

fn local_fragments(
    src: &str,
    regexp: Option<&regex::bytes::Regex>,
    ignore_hidden: bool,
    decrypt: bool,
    ctx: &Ctx<'_>,
) -> Result<(Vec<Vec<u8>>, String), Failure> {
    let dir = crate::source::find_path_in(ctx.role_dir, ctx.playbook_dir, src, crate::source::SourceDir::Files)
        .filter(|d| d.is_dir())
        .ok_or_else(|| format!("Source ({src}) is not a directory"))?;
    let names = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut fragments = Vec::new();
    for name in pick(names, regexp, ignore_hidden) {
        let path = dir.join(&name);
        let data = if decrypt {
            ctx.sources.read_controller_file(&path)?
        } else {
            std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
        };
        fragments.push(data);
    }
    Ok((fragments, dir.display().to_string()))
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let src = args.req_str("src")?;
    let dest = args.req_str("dest")?;
    let regexp = match args.str("regexp")? {
        Some(r) => Some(super::lines::python_regex(&r, false, false)?),
        None => None,
    };
    let ignore_hidden = args.bool("ignore_hidden", false)?;
    if let Some(v) = args.str("validate")?
        && !v.contains("%s")
    {
        return Err(format!("validate must contain %s: {v}").into());
    }
    let remote_src = args.bool("remote_src", true)?;
    let (fragments, shown_src) = if remote_src {
        (
            remote_fragments(&src, regexp.as_ref(), ignore_hidden, ctx).await?,
            src.clone(),
        )
    } else {
        local_fragments(&src, regexp.as_ref(), ignore_hidden, args.bool("decrypt", true)?, ctx)?
    };
    let content = join(&fragments, args.str("delimiter")?.as_deref());
    let checksum = sha1_hex(&content);
    let md5sum = md5_hex(&content);
    let current = read_current(&dest, ctx).await?;
    if current.is_dir() {
        return Err(format!("destination `{dest}` is a directory").into());
    }
    let mut result = ModuleResult::ok()
        .with("src", shown_src.as_str())
        .with("dest", dest.as_str())
        .with("checksum", checksum)
        .with("md5sum", md5sum);
    // From the controller, ansible-core reports what its `copy` (or `file`) module returned,
    // which has no message; the module on the host says "OK".
    if remote_src {
        result.msg = Some("OK".into());
    }
    plan_content_as(dest, current, content, args, false, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_get_a_newline_and_the_decoded_delimiter_between_them() {
        let f = vec![b"a".to_vec(), b"b\n".to_vec(), b"c".to_vec()];
        assert_eq!(join(&f, None), b"a\nb\nc");
        assert_eq!(join(&f, Some("#--")), b"a\n#--\nb\n#--\nc");
        assert_eq!(join(&f, Some("\\n")), b"a\n\nb\n\nc");
    }
}

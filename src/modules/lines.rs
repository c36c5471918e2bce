//! `lineinfile`, `blockinfile` and `replace`: edit a text file as ansible-core 2.19's modules
//! do (the same matching rules, messages and results), computed on the controller from the
//! file's current content and written as `copy` writes it (atomic, validated, backed up).
//!
//! Their patterns are Python regular expressions. roll matches them with the `regex` crate,
//! which has the same syntax for everything but look-around and backreferences inside the
//! pattern; those are refused with the pattern's place before the run, never matched wrongly.

use super::files::{CurrentFile, file_params, plan_content, read_current};
use super::spec::{BUILTIN, ModuleSpec, ParamKind, p, req};
use super::{Apply, Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use regex::bytes::{Captures, Regex};

/// `lineinfile`: one line present (added, or replacing the line a pattern matches) or absent.
pub struct LineInFile;

static LINEINFILE: ModuleSpec = ModuleSpec {
    params: file_params![
        req("path").aliases(&["dest", "destfile", "name"]),
        p("state").choices(&["present", "absent"]),
        p("regexp").aliases(&["regex"]).kind(ParamKind::Regex),
        p("search_string"),
        p("line").aliases(&["value"]),
        p("insertafter").kind(ParamKind::Regex),
        p("insertbefore").kind(ParamKind::Regex),
        p("backrefs"),
        p("create"),
        p("firstmatch"),
        p("backup"),
        p("validate"),
    ],
    exclusive: &[
        ("insertbefore", "insertafter"),
        ("regexp", "search_string"),
        ("backrefs", "search_string"),
    ],
    ..ModuleSpec::new("lineinfile", BUILTIN)
};

impl Module for LineInFile {
    fn spec(&self) -> &'static ModuleSpec {
        &LINEINFILE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_lineinfile(args, ctx))
    }
}

/// `blockinfile`: a block of lines between two marker lines, inserted, updated or removed.
pub struct BlockInFile;

static BLOCKINFILE: ModuleSpec = ModuleSpec {
    params: file_params![
        req("path").aliases(&["dest", "destfile", "name"]),
        p("state").choices(&["present", "absent"]),
        p("marker"),
        p("block").aliases(&["content"]),
        p("insertafter").kind(ParamKind::Regex),
        p("insertbefore").kind(ParamKind::Regex),
        p("create"),
        p("backup"),
        p("validate"),
        p("marker_begin"),
        p("marker_end"),
        p("append_newline"),
        p("prepend_newline"),
    ],
    exclusive: &[("insertbefore", "insertafter")],
    ..ModuleSpec::new("blockinfile", BUILTIN)
};

impl Module for BlockInFile {
    fn spec(&self) -> &'static ModuleSpec {
        &BLOCKINFILE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_blockinfile(args, ctx))
    }
}

/// `replace`: every match of a pattern replaced, optionally only between `after` and `before`.
pub struct Replace;

static REPLACE: ModuleSpec = ModuleSpec {
    params: file_params![
        req("path").aliases(&["dest", "destfile", "name"]),
        req("regexp").kind(ParamKind::Regex),
        p("replace"),
        p("after").kind(ParamKind::Regex),
        p("before").kind(ParamKind::Regex),
        p("backup"),
        p("validate"),
        p("encoding").choices(&["utf-8", "utf8"]),
    ],
    ..ModuleSpec::new("replace", BUILTIN)
};

impl Module for Replace {
    fn spec(&self) -> &'static ModuleSpec {
        &REPLACE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_replace(args, ctx))
    }
}

/// A Python regular expression as a `regex` one: the syntax is shared except look-around and
/// backreferences, which the `regex` crate refuses (so the error names them).
pub fn python_regex(pattern: &str, multiline: bool, dot_all: bool) -> Result<Regex, String> {
    let flags = match (multiline, dot_all) {
        (true, true) => "(?ms)",
        (true, false) => "(?m)",
        (false, true) => "(?s)",
        (false, false) => "",
    };
    regex::bytes::RegexBuilder::new(&format!("{flags}{}", literal_braces(pattern)))
        .size_limit(1 << 24)
        .build()
        .map_err(|e| {
            let why = match e {
                regex::Error::Syntax(s) if s.contains("look-around") || s.contains("backreferences") => {
                    "look-around and backreferences are not supported by roll's regular expressions".to_string()
                }
                regex::Error::Syntax(s) => s.lines().last().unwrap_or("").trim().to_string(),
                other => other.to_string(),
            };
            format!("invalid regular expression `{pattern}`: {why}")
        })
}

/// Python reads a `{` that does not open a repetition (`{2}`, `{2,}`, `{,3}`, `{2,3}`) as the
/// character itself (`^{ "fact": true }`); Rust's engine refuses it, so it is escaped here, and
/// `{,3}` gets its lower bound.
fn literal_braces(pattern: &str) -> std::borrow::Cow<'_, str> {
    let is_repetition = |rest: &str| {
        let Some(end) = rest.find('}') else { return false };
        let inner = &rest[1..end];
        let (lo, hi) = inner.split_once(',').unwrap_or((inner, ""));
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        !inner.is_empty() && inner != "," && digits(lo) && digits(hi)
    };
    if !pattern.contains('{') {
        return pattern.into();
    }
    let mut out = String::with_capacity(pattern.len() + 4);
    let (mut escaped, mut class) = (false, false);
    for (i, c) in pattern.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' if !class => class = true,
            ']' if class => class = false,
            '{' if !class && !is_repetition(&pattern[i..]) => {
                out.push_str("\\{");
                continue;
            }
            // `{,3}` is `{0,3}` to Python; Rust's engine wants the lower bound written.
            '{' if !class && pattern[i..].starts_with("{,") => {
                out.push_str("{0");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out.into()
}

/// Python's `match.expand(template)`: `\1`, `\g<1>`, `\g<name>` and the escapes `\n \t \r \\`.
fn expand(template: &[u8], caps: &Captures) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(template.len());
    let mut i = 0;
    let group = |out: &mut Vec<u8>, name: &str| -> Result<(), String> {
        let m = match name.parse::<usize>() {
            Ok(n) if n < caps.len() => caps.get(n),
            Ok(n) => return Err(format!("invalid group reference {n}")),
            Err(_) => caps.name(name),
        };
        out.extend_from_slice(m.map_or(&b""[..], |m| m.as_bytes()));
        Ok(())
    };
    while i < template.len() {
        let c = template[i];
        if c != b'\\' || i + 1 == template.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let next = template[i + 1];
        match next {
            b'0'..=b'9' => {
                let digits: Vec<u8> = template[i + 1..]
                    .iter()
                    .take(2)
                    .take_while(|b| b.is_ascii_digit())
                    .copied()
                    .collect();
                group(&mut out, std::str::from_utf8(&digits).unwrap_or("0"))?;
                i += 1 + digits.len();
            }
            b'g' if template.get(i + 2) == Some(&b'<') => {
                let end = template[i + 3..]
                    .iter()
                    .position(|&b| b == b'>')
                    .ok_or("missing `>` in a `\\g<...>` group reference")?;
                let name = String::from_utf8_lossy(&template[i + 3..i + 3 + end]).into_owned();
                group(&mut out, &name)?;
                i += 4 + end;
            }
            b'n' => (out.push(b'\n'), i += 2).1,
            b't' => (out.push(b'\t'), i += 2).1,
            b'r' => (out.push(b'\r'), i += 2).1,
            b'\\' => (out.push(b'\\'), i += 2).1,
            other if other.is_ascii_alphabetic() => {
                return Err(format!("bad escape `\\{}` in the replacement", other as char));
            }
            _ => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Lines as Python's `readlines()` gives them: each keeps its `\n`.
fn split_lines(content: &[u8]) -> Vec<Vec<u8>> {
    content.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |p| p + 1);
    &line[..end]
}

/// What a pattern is matched against: the line without its `\n`. Python's `$` (without
/// MULTILINE) matches before a final newline as well as at the end; the `regex` crate's only at
/// the end, so stripping that one newline gives both the same matches.
fn body(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

fn ends_with_eol(line: &[u8]) -> bool {
    matches!(line.last(), Some(b'\n' | b'\r'))
}

/// What `lineinfile` does to a file's lines.
#[derive(Debug, Default)]
pub struct LineArgs {
    pub present: bool,
    pub regexp: Option<Regex>,
    pub search_string: Option<Vec<u8>>,
    pub line: Option<Vec<u8>>,
    pub insertafter: Option<String>,
    pub insertbefore: Option<String>,
    pub backrefs: bool,
    pub firstmatch: bool,
}

/// The edit: the new lines, the message, and for `absent` how many lines were found.
pub struct Edited {
    pub lines: Vec<Vec<u8>>,
    pub msg: String,
    pub changed: bool,
    pub found: usize,
}

/// `lineinfile` on a file's lines, as ansible-core's `present()`/`absent()` do it.
pub fn edit_lines(mut lines: Vec<Vec<u8>>, a: &LineArgs) -> Result<Edited, String> {
    if !a.present {
        let mut found = 0;
        lines.retain(|l| {
            let hit = match (&a.regexp, &a.search_string, &a.line) {
                (Some(re), _, _) => re.is_match(body(l)),
                (None, Some(s), _) => contains(l, s),
                (None, None, Some(line)) => trim_eol(l) == line.as_slice(),
                (None, None, None) => false,
            };
            found += usize::from(hit);
            !hit
        });
        return Ok(Edited {
            lines,
            msg: if found > 0 {
                format!("{found} line(s) removed")
            } else {
                String::new()
            },
            changed: found > 0,
            found,
        });
    }
    let line = a.line.clone().ok_or("line is required with state=present")?;
    let (after, before) = match (&a.insertafter, &a.insertbefore) {
        (None, None) => (Some("EOF".to_string()), None),
        (x, y) => (x.clone(), y.clone()),
    };
    let ins = match (&after, &before) {
        (Some(x), _) if x != "BOF" && x != "EOF" => Some(python_regex(x, false, false)?),
        (None, Some(y)) if y != "BOF" => Some(python_regex(y, false, false)?),
        _ => None,
    };
    // index.0: the line the pattern (or the exact line) is on; index.1: where to insert.
    let (mut at, mut insert_at): (Option<usize>, Option<usize>) = (None, None);
    let mut matched = false;
    if let Some(re) = &a.regexp {
        for (n, l) in lines.iter().enumerate() {
            if re.is_match(body(l)) {
                at = Some(n);
                matched = true;
                if a.firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(s) = &a.search_string {
        for (n, l) in lines.iter().enumerate() {
            if contains(l, s) {
                at = Some(n);
                matched = true;
                if a.firstmatch {
                    break;
                }
            }
        }
    }
    let mut exact = false;
    if !matched {
        for (n, l) in lines.iter().enumerate() {
            if trim_eol(l) == line.as_slice() {
                at = Some(n);
                exact = true;
            } else if let Some(re) = &ins
                && re.is_match(body(l))
            {
                if after.is_some() {
                    insert_at = Some(n + 1);
                    if a.firstmatch {
                        break;
                    }
                }
                if before.is_some() {
                    insert_at = Some(n);
                    if a.firstmatch {
                        break;
                    }
                }
            }
        }
    }
    let with_eol = |l: &[u8]| {
        let mut v = l.to_vec();
        v.push(b'\n');
        v
    };
    let mut msg = "";
    let mut changed = false;
    if let Some(at) = at {
        // A line is found only by the pattern, the search string or as the exact line.
        debug_assert!(matched || exact);
        let mut new_line = match (&a.regexp, a.backrefs && matched) {
            (Some(re), true) => match re.captures(body(&lines[at])) {
                Some(c) => expand(&line, &c)?,
                None => line.clone(),
            },
            _ => line.clone(),
        };
        if !new_line.ends_with(b"\n") {
            new_line.push(b'\n');
        }
        if lines[at] != new_line {
            lines[at] = new_line;
            msg = "line replaced";
            changed = true;
        }
    } else if a.backrefs {
        // Without a match there is nothing to expand the backreferences from.
    } else if before.as_deref() == Some("BOF") || after.as_deref() == Some("BOF") {
        lines.insert(0, with_eol(&line));
        msg = "line added";
        changed = true;
    } else if after.as_deref() == Some("EOF") || insert_at.is_none() {
        if let Some(last) = lines.last()
            && !ends_with_eol(last)
        {
            lines.push(b"\n".to_vec());
        }
        lines.push(with_eol(&line));
        msg = "line added";
        changed = true;
    } else if let (Some(_), Some(i)) = (&after, insert_at) {
        if lines.len() == i {
            if trim_eol(&lines[i - 1]) != line.as_slice() {
                lines.push(with_eol(&line));
                msg = "line added";
                changed = true;
            }
        } else if trim_eol(&lines[i]) != line.as_slice() {
            lines.insert(i, with_eol(&line));
            msg = "line added";
            changed = true;
        }
    } else if let Some(i) = insert_at {
        lines.insert(i, with_eol(&line));
        msg = "line added";
        changed = true;
    }
    Ok(Edited {
        lines,
        msg: msg.to_string(),
        changed,
        found: 0,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// What `blockinfile` does to a file's content.
pub struct BlockArgs {
    pub present: bool,
    pub block: Vec<u8>,
    pub marker: String,
    pub marker_begin: String,
    pub marker_end: String,
    pub insertafter: Option<String>,
    pub insertbefore: Option<String>,
    pub append_newline: bool,
    pub prepend_newline: bool,
}

/// `blockinfile` on a file's content (`None`: the file does not exist), as ansible-core does it.
pub fn edit_block(original: Option<&[u8]>, a: &BlockArgs) -> Result<(Vec<u8>, &'static str), String> {
    // Python's bytes.splitlines(True): lines end at \n, \r\n or \r.
    let splitlines = |b: &[u8]| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\n' || b[i] == b'\r' {
                let end = if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
                    i + 2
                } else {
                    i + 1
                };
                out.push(b[start..end].to_vec());
                start = end;
                i = end;
            } else {
                i += 1;
            }
        }
        if start < b.len() {
            out.push(b[start..].to_vec());
        }
        out
    };
    let mut lines = original.map(splitlines).unwrap_or_default();
    let (after, before) = match (&a.insertafter, &a.insertbefore) {
        (None, None) => (Some("EOF".to_string()), None),
        (x, y) => (x.clone(), y.clone()),
    };
    let insertre = match (&after, &before) {
        (Some(x), _) if x != "EOF" => Some(python_regex(x, false, false)?),
        (None, Some(y)) if y != "BOF" => Some(python_regex(y, false, false)?),
        _ => None,
    };
    let marker0 = format!("{}\n", a.marker.replace("{mark}", &a.marker_begin)).into_bytes();
    let marker1 = format!("{}\n", a.marker.replace("{mark}", &a.marker_end)).into_bytes();
    let mut block_lines = Vec::new();
    if a.present && !a.block.is_empty() {
        let mut block = a.block.clone();
        if !block.ends_with(b"\n") {
            block.push(b'\n');
        }
        block_lines.push(marker0.clone());
        block_lines.extend(splitlines(&block));
        block_lines.push(marker1.clone());
    }
    let n0 = lines.iter().rposition(|l| *l == marker0);
    let n1 = lines.iter().rposition(|l| *l == marker1);
    let mut n0 = match (n0, n1) {
        (Some(b), Some(e)) if b < e => {
            lines.drain(b..=e);
            b
        }
        (Some(b), Some(e)) => {
            lines.drain(e..=b);
            e
        }
        _ => match &insertre {
            Some(re) => {
                let multiline = after
                    .as_deref()
                    .or(before.as_deref())
                    .is_some_and(|p| p.contains("(?m"));
                let mut n = None;
                if multiline {
                    let whole = original.unwrap_or(b"");
                    if let Some(m) = re.find(whole) {
                        let upto = if after.is_some() { m.end() } else { m.start() };
                        n = Some(whole[..upto].iter().filter(|&&b| b == b'\n').count());
                    }
                } else {
                    for (i, l) in lines.iter().enumerate() {
                        if re.is_match(body(l)) {
                            n = Some(i);
                        }
                    }
                }
                match n {
                    None => lines.len(),
                    Some(n) if after.is_some() => n + 1,
                    Some(n) => n,
                }
            }
            None if before.is_some() => 0,
            None => lines.len(),
        },
    };
    if n0 > 0 && !lines[n0 - 1].ends_with(b"\n") {
        lines[n0 - 1].push(b'\n');
    }
    if a.prepend_newline && a.present && n0 != 0 && lines[n0 - 1] != b"\n" {
        lines.insert(n0, b"\n".to_vec());
        n0 += 1;
    }
    let count = block_lines.len();
    let had_block = count > 0;
    lines.splice(n0..n0, block_lines);
    if a.append_newline && a.present {
        let after_block = n0 + count;
        if after_block < lines.len() && lines[after_block] != b"\n" {
            lines.insert(after_block, b"\n".to_vec());
        }
    }
    let result = lines.concat();
    let msg = if original == Some(result.as_slice()) || (original.is_none() && result.is_empty() && !had_block) {
        ""
    } else if original.is_none() {
        "File created"
    } else if !had_block {
        "Block removed"
    } else {
        "Block inserted"
    };
    Ok((result, msg))
}

/// `replace` on a file's text: the new text and the number of replacements (0: unchanged), or
/// the message when `after`/`before` match nothing.
pub fn edit_replace(
    contents: &str,
    regexp: &str,
    replace: &str,
    after: Option<&str>,
    before: Option<&str>,
) -> Result<Result<(String, usize), String>, String> {
    let pattern = match (after.filter(|s| !s.is_empty()), before.filter(|s| !s.is_empty())) {
        (Some(a), Some(b)) => format!("{a}(?P<subsection>.*?){b}"),
        (Some(a), None) => format!("{a}(?P<subsection>.*)"),
        (None, Some(b)) => format!("(?P<subsection>.*){b}"),
        (None, None) => String::new(),
    };
    let (start, end) = if pattern.is_empty() {
        (0, contents.len())
    } else {
        let re = python_regex(&pattern, false, true)?;
        match re.captures(contents.as_bytes()).and_then(|c| c.name("subsection")) {
            Some(m) => (m.start(), m.end()),
            None => {
                return Ok(Err(format!(
                    "Pattern for before/after params did not match the given file: {pattern}"
                )));
            }
        }
    };
    let section = &contents.as_bytes()[start..end];
    let re = python_regex(regexp, true, false)?;
    let mut out = Vec::with_capacity(section.len());
    let mut last = 0;
    let mut n = 0;
    for c in re.captures_iter(section) {
        let m = c.get(0).expect("group 0");
        out.extend_from_slice(&section[last..m.start()]);
        out.extend(expand(replace.as_bytes(), &c)?);
        last = m.end();
        n += 1;
    }
    out.extend_from_slice(&section[last..]);
    if n == 0 || out == section {
        return Ok(Ok((contents.to_string(), 0)));
    }
    let mut text = contents.as_bytes()[..start].to_vec();
    text.extend(out);
    text.extend_from_slice(&contents.as_bytes()[end..]);
    let text = String::from_utf8(text).map_err(|_| "the replacement is not valid UTF-8".to_string())?;
    Ok(Ok((text, n)))
}

/// A path the module edits must not be a directory; a missing one is an error unless created.
fn missing_or_dir(path: &str, current: &CurrentFile, create: bool, what: &str) -> Option<Failure> {
    let fail = |rc: i64, msg: String| {
        let mut r = ModuleResult::failed(msg);
        r.rc = Some(rc);
        Some(Failure::Failed(Box::new(r)))
    };
    if current.is_dir() {
        return fail(256, format!("Path {path} is a directory !"));
    }
    if current.content.is_none() && !create {
        return fail(257, format!("{what} {path} does not exist !"));
    }
    None
}

fn regex_arg(args: &Args, k: &str) -> Result<Option<Regex>, Failure> {
    match args.str(k)? {
        Some(s) => Ok(Some(python_regex(&s, false, false)?)),
        None => Ok(None),
    }
}

/// The `diff` lineinfile and blockinfile register in diff mode, changed or not: the content's
/// texts, then the file attributes' headers, as ansible-core's modules report them.
fn registered_diff(path: &str, before: Option<&[u8]>, after: &[u8]) -> minijinja::Value {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let content = minijinja::Value::from_pairs(vec![
        ("before", minijinja::Value::from(text(before.unwrap_or_default()))),
        ("after", minijinja::Value::from(text(after))),
        ("before_header", minijinja::Value::from(format!("{path} (content)"))),
        ("after_header", minijinja::Value::from(format!("{path} (content)"))),
    ]);
    let attributes = minijinja::Value::from_pairs(vec![
        (
            "before_header",
            minijinja::Value::from(format!("{path} (file attributes)")),
        ),
        (
            "after_header",
            minijinja::Value::from(format!("{path} (file attributes)")),
        ),
    ]);
    minijinja::Value::from(vec![content, attributes])
}

/// Turn the new content into a plan: `plan_content` decides whether anything changes (content
/// or attributes); the result carries the module's own message and fields.
#[allow(clippy::too_many_arguments)]
async fn finish(
    path: String,
    current: CurrentFile,
    content: Vec<u8>,
    changed: bool,
    msg: String,
    extra: Vec<(&'static str, minijinja::Value)>,
    backup_key: &'static str,
    args: &Args,
    ctx: &Ctx<'_>,
) -> Result<Plan, Failure> {
    let content = if changed {
        content
    } else {
        current.content.clone().unwrap_or_default()
    };
    let created = current.content.is_none();
    let (plan, attrs_changed) = plan_content(path, current, content, args, true)?;
    let shape = |mut r: ModuleResult| {
        r.data.shift_remove("dest");
        r.data.shift_remove("size");
        let mut m = msg.clone();
        if attrs_changed && !(created && ctx.check_mode) {
            if !m.is_empty() {
                m.push_str(" and ");
            }
            m.push_str("ownership, perms or SE linux context changed");
        }
        r.msg = Some(m);
        for (k, v) in &extra {
            r.data.insert((*k).to_string(), v.clone());
        }
        r
    };
    Ok(match plan {
        Plan::Unchanged(r) => Plan::Unchanged(shape(r)),
        Plan::Change { preview, action } => {
            let shaped = shape(preview);
            Plan::Change {
                action: Box::new(Shaped {
                    inner: action,
                    result: shaped.clone(),
                    backup_key,
                }),
                preview: shaped,
            }
        }
        probe @ Plan::Probe { .. } => probe,
    })
}

/// An edit's write, reporting the module's result (message, `backup`) rather than the write's.
struct Shaped {
    inner: Box<dyn Apply>,
    result: ModuleResult,
    /// Where the result names the backup: `backup` for `lineinfile`, `backup_file` for the others.
    backup_key: &'static str,
}

impl Apply for Shaped {
    fn apply<'a>(self: Box<Self>, ctx: &'a Ctx<'a>) -> Step<'a, ModuleResult> {
        Box::pin(async move {
            let done = self.inner.apply(ctx).await?;
            let mut r = self.result;
            r.diffs = Vec::new();
            if let Some(b) = done.data.get("backup_file") {
                r.data.insert(self.backup_key.into(), b.clone());
            }
            Ok(r)
        })
    }
}

async fn check_lineinfile(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let path = args.req_str("path")?;
    let present = args.str("state")?.as_deref() != Some("absent");
    let a = LineArgs {
        present,
        regexp: regex_arg(args, "regexp")?,
        search_string: args.str("search_string")?.map(String::into_bytes),
        line: args.str("line")?.map(String::into_bytes),
        insertafter: args.str("insertafter")?,
        insertbefore: args.str("insertbefore")?,
        backrefs: args.bool("backrefs", false)?,
        firstmatch: args.bool("firstmatch", false)?,
    };
    if a.backrefs && a.regexp.is_none() && present {
        return Err("regexp is required with backrefs=true".into());
    }
    if !present && a.regexp.is_none() && a.search_string.is_none() && a.line.is_none() {
        return Err("one of line, search_string, or regexp is required with state=absent".into());
    }
    let current = read_current(&path, ctx).await?;
    if current.is_dir() {
        return Err(missing_or_dir(&path, &current, true, "").expect("a directory"));
    }
    if !present && current.content.is_none() {
        return Ok(Plan::Unchanged(ModuleResult::ok().with_msg("file not present")));
    }
    if let Some(f) = missing_or_dir(&path, &current, args.bool("create", false)?, "Destination") {
        return Err(f);
    }
    let lines = split_lines(current.content.as_deref().unwrap_or(b""));
    let e = edit_lines(lines, &a)?;
    let mut extra = vec![("backup", minijinja::Value::from(""))];
    if !present {
        extra.push(("found", minijinja::Value::from(e.found)));
    }
    let new = e.lines.concat();
    if ctx.diff {
        extra.push(("diff", registered_diff(&path, current.content.as_deref(), &new)));
    }
    finish(path, current, new, e.changed, e.msg, extra, "backup", args, ctx).await
}

async fn check_blockinfile(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let path = args.req_str("path")?;
    let present = args.str("state")?.as_deref() != Some("absent");
    let current = read_current(&path, ctx).await?;
    if current.is_dir() {
        return Err(missing_or_dir(&path, &current, true, "").expect("a directory"));
    }
    // As ansible-core orders it: a missing file fails unless `create`, even to remove a block.
    if let Some(f) = missing_or_dir(&path, &current, args.bool("create", false)?, "Path") {
        return Err(f);
    }
    if !present && current.content.is_none() {
        return Ok(Plan::Unchanged(
            ModuleResult::ok().with_msg(format!("File {path} not present")),
        ));
    }
    let a = BlockArgs {
        present,
        block: args.str("block")?.unwrap_or_default().into_bytes(),
        marker: args
            .str("marker")?
            .unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into()),
        marker_begin: args.str("marker_begin")?.unwrap_or_else(|| "BEGIN".into()),
        marker_end: args.str("marker_end")?.unwrap_or_else(|| "END".into()),
        insertafter: args.str("insertafter")?,
        insertbefore: args.str("insertbefore")?,
        append_newline: args.bool("append_newline", false)?,
        prepend_newline: args.bool("prepend_newline", false)?,
    };
    let (content, msg) = edit_block(current.content.as_deref(), &a)?;
    let changed = !msg.is_empty();
    let mut extra = Vec::new();
    if ctx.diff {
        extra.push(("diff", registered_diff(&path, current.content.as_deref(), &content)));
    }
    finish(
        path,
        current,
        content,
        changed,
        msg.to_string(),
        extra,
        "backup_file",
        args,
        ctx,
    )
    .await
}

async fn check_replace(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let path = args.req_str("path")?;
    let current = read_current(&path, ctx).await?;
    if let Some(f) = missing_or_dir(&path, &current, false, "Path") {
        return Err(f);
    }
    let text = String::from_utf8(current.content.clone().unwrap_or_default())
        .map_err(|_| format!("`{path}` is not UTF-8 text"))?;
    let regexp = args.req_str("regexp")?;
    let replace = args.str("replace")?.unwrap_or_default();
    let (after, before) = (args.str("after")?, args.str("before")?);
    match edit_replace(&text, &regexp, &replace, after.as_deref(), before.as_deref())? {
        Err(msg) => Ok(Plan::Unchanged(ModuleResult::ok().with_msg(msg).with("rc", 0))),
        Ok((new, n)) => {
            let msg = if n > 0 {
                format!("{n} replacements made")
            } else {
                String::new()
            };
            let extra = vec![("rc", minijinja::Value::from(0))];
            finish(
                path,
                current,
                new.into_bytes(),
                n > 0,
                msg,
                extra,
                "backup_file",
                args,
                ctx,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn la(line: &str) -> LineArgs {
        LineArgs {
            present: true,
            line: Some(line.as_bytes().to_vec()),
            ..LineArgs::default()
        }
    }

    #[test]
    fn a_brace_that_opens_no_repetition_is_the_character_as_in_python() {
        // python3 -c 'import re; print(bool(re.match(r"^{ \"fact\": true }", "{ \"fact\": true }")))'
        let r = python_regex(r#"^{ "fact": true }"#, false, false).unwrap();
        assert!(r.is_match(br#"{ "fact": true }"#));
        for (p, text, hit) in [
            (r"a{2}", "aa", true),
            (r"a{2,}", "aaa", true),
            (r"a{,2}b", "b", true),
            (r"a{x}", "a{x}", true),
            (r"a{}", "a{}", true),
            (r"\{2}", "{2}", true),
            (r"[{]", "{", true),
        ] {
            let r = python_regex(p, false, false).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(r.is_match(text.as_bytes()), hit, "{p} on {text}");
        }
    }

    fn run(content: &str, a: &LineArgs) -> (String, String) {
        let e = edit_lines(split_lines(content.as_bytes()), a).unwrap();
        (String::from_utf8(e.lines.concat()).unwrap(), e.msg)
    }

    #[test]
    fn a_missing_line_is_appended_and_an_existing_one_left_alone() {
        assert_eq!(run("a\nb", &la("c")), ("a\nb\nc\n".into(), "line added".into()));
        assert_eq!(run("a\nc\n", &la("c")), ("a\nc\n".into(), "".into()));
    }

    #[test]
    fn backrefs_expand_python_style_groups() {
        let a = LineArgs {
            regexp: Some(python_regex(r"^(?P<k>\w+)=(\d+)$", false, false).unwrap()),
            backrefs: true,
            ..la(r"\g<k>=\2\2")
        };
        assert_eq!(run("x=1\n", &a), ("x=11\n".into(), "line replaced".into()));
        // Without a match, backrefs leave the file as it is.
        assert_eq!(run("y\n", &a), ("y\n".into(), "".into()));
    }

    #[test]
    fn look_around_is_refused_with_the_pattern() {
        let e = python_regex("^(?!#)x", false, false).unwrap_err();
        assert!(e.contains("`^(?!#)x`") && e.contains("look-around"), "{e}");
    }
}

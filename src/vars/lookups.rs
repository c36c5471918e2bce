//! Ansible's lookups (`lookup`, `query`/`q`): env, file, template, pipe, lines, first_found,
//! fileglob, vars, items, dict, sequence, password, with ansible-core 2.19's answers (the table
//! in tests/lookups, made by ansible-playbook).
//!
//! The trust boundary is Ansible's: the playbook is code the operator runs, so `file`,
//! `template`, `first_found` and `fileglob` read controller files relative to it (the search
//! path: `ansible_search_path`, else the playbook's directory, with `files/` or `templates/`
//! first) and `pipe`/`lines` run commands on the controller, in the playbook's directory.
//! What a lookup returns is data: it is not rendered again.

use crate::secrets::Secrets;
use minijinja::value::{Kwargs, Rest, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fail(name: &str, msg: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("the lookup `{name}` failed: {msg}"),
    )
}

type Vault = Arc<std::sync::RwLock<crate::vault::Keyring>>;

pub fn register(env: &mut Environment<'static>, secrets: Arc<Secrets>, vault: Vault) {
    let s = secrets.clone();
    let v = vault.clone();
    env.add_function(
        "lookup",
        move |state: &State, name: String, args: Rest<ValueOrKwargs>| -> Result<Value, Error> {
            let (terms, kwargs) = split(args);
            let wantlist = kwargs
                .as_ref()
                .and_then(|k| k.get::<bool>("wantlist").ok())
                .unwrap_or(false);
            let ran = run(&s, &v, state, &name, terms, kwargs.as_ref())?;
            let Some(ran) = ran else { return Ok(Value::from(())) };
            if wantlist {
                return Ok(Value::from(ran));
            }
            Ok(join(ran))
        },
    );
    for alias in ["query", "q"] {
        let s = secrets.clone();
        let v = vault.clone();
        env.add_function(
            alias,
            move |state: &State, name: String, args: Rest<ValueOrKwargs>| -> Result<Value, Error> {
                let (terms, kwargs) = split(args);
                Ok(run(&s, &v, state, &name, terms, kwargs.as_ref())?
                    .map(Value::from)
                    .unwrap_or_else(|| Value::from(Vec::<Value>::new())))
            },
        );
    }
}

/// `lookup`'s answer: one result as itself, several strings joined by commas (as Ansible's
/// lookups always returned them), anything else as the list.
fn join(ran: Vec<Value>) -> Value {
    match ran.len() {
        0 => Value::from(""),
        1 => ran.into_iter().next().unwrap_or_default(),
        _ if ran.iter().all(|v| v.kind() == ValueKind::String) => Value::from(
            ran.iter()
                .map(|v| v.as_str().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => Value::from(ran),
    }
}

fn split(args: Rest<ValueOrKwargs>) -> (Vec<Value>, Option<Kwargs>) {
    let mut values = args.into_values();
    let kwargs = match values.last() {
        Some(v) if v.is_kwargs() => values.pop().and_then(|v| Kwargs::try_from(v).ok()),
        _ => None,
    };
    (values, kwargs)
}

fn kw<'a, T: minijinja::value::ArgType<'a, Output = T>>(k: Option<&'a Kwargs>, key: &'a str) -> Option<T> {
    k.and_then(|k| k.get::<Option<T>>(key).ok().flatten())
}

/// The results of one lookup; `None` when it failed with `errors='ignore'`.
fn run(
    secrets: &Secrets,
    vault: &Vault,
    state: &State,
    name: &str,
    terms: Vec<Value>,
    kwargs: Option<&Kwargs>,
) -> Result<Option<Vec<Value>>, Error> {
    let errors: String = kw(kwargs, "errors").unwrap_or_else(|| "strict".to_string());
    let ran = match name {
        "env" | "ansible.builtin.env" => env(secrets, &terms, kwargs),
        "file" | "ansible.builtin.file" => file(secrets, vault, state, &terms, kwargs),
        "template" | "ansible.builtin.template" => template(state, &terms, kwargs),
        "pipe" | "ansible.builtin.pipe" => pipe(state, &terms, false),
        "lines" | "ansible.builtin.lines" => pipe(state, &terms, true),
        "first_found" | "ansible.builtin.first_found" => first_found(state, &terms, kwargs),
        "fileglob" | "ansible.builtin.fileglob" => fileglob(state, &terms),
        "vars" | "ansible.builtin.vars" => vars(state, &terms, kwargs),
        "items" | "ansible.builtin.items" => Ok(flatten_once(terms)),
        "list" | "ansible.builtin.list" => Ok(terms),
        "dict" | "ansible.builtin.dict" => dict(&terms),
        "sequence" | "ansible.builtin.sequence" => sequence(&terms),
        "password" | "ansible.builtin.password" => password(secrets, state, &terms, kwargs),
        "together" | "ansible.builtin.together" => together(&terms),
        "nested" | "ansible.builtin.nested" => nested(&terms),
        "subelements" | "ansible.builtin.subelements" => subelements(&terms),
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("unknown lookup plugin `{other}`; roll provides {}", provided()),
            ));
        }
    };
    match ran {
        Ok(v) => Ok(Some(v)),
        Err(_) if errors == "ignore" || errors == "warn" => Ok(None),
        Err(e) => Err(e),
    }
}

fn text(v: &Value) -> String {
    crate::values::value_to_string(v)
}

fn env(secrets: &Secrets, terms: &[Value], kwargs: Option<&Kwargs>) -> Result<Vec<Value>, Error> {
    let default: Option<String> = kw(kwargs, "default");
    Ok(terms
        .iter()
        .map(|n| {
            // The controller's environment holds CI tokens and passwords: masked.
            let v = std::env::var(text(n))
                .ok()
                .or_else(|| default.clone())
                .unwrap_or_default();
            secrets.add(&v);
            Value::from(v)
        })
        .collect())
}

/// The directories lookups search: `ansible_search_path`, else the playbook's directory.
fn search_path(state: &State) -> Vec<PathBuf> {
    if let Some(list) = state.lookup("ansible_search_path").filter(|v| !v.is_undefined())
        && let Ok(it) = list.try_iter()
    {
        return it.map(|p| PathBuf::from(text(&p))).collect();
    }
    let dir = state
        .lookup("playbook_dir")
        .filter(|v| !v.is_undefined() && !v.is_none())
        .map(|v| text(&v))
        .unwrap_or_else(|| ".".into());
    vec![PathBuf::from(dir)]
}

/// A controller file as Ansible finds it: absolute as it is; else in each directory of the
/// search path, under `subdir` (`files`, `templates`) first.
fn find(state: &State, subdir: Option<&str>, needle: &str) -> Option<PathBuf> {
    let p = Path::new(needle);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    for dir in search_path(state) {
        let mut candidates = Vec::new();
        if let Some(sub) = subdir {
            candidates.push(dir.join(sub).join(p));
        }
        candidates.push(dir.join(p));
        if let Some(found) = candidates.into_iter().find(|c| c.exists()) {
            return Some(found);
        }
    }
    None
}

fn file(
    secrets: &Secrets,
    vault: &Vault,
    state: &State,
    terms: &[Value],
    kwargs: Option<&Kwargs>,
) -> Result<Vec<Value>, Error> {
    let rstrip: bool = kw(kwargs, "rstrip").unwrap_or(true);
    let lstrip: bool = kw(kwargs, "lstrip").unwrap_or(false);
    terms
        .iter()
        .map(|t| {
            let name = text(t);
            let path = find(state, Some("files"), &name)
                .filter(|p| p.is_file())
                .ok_or_else(|| fail("file", format!("cannot find the file `{name}`")))?;
            let mut content =
                std::fs::read_to_string(&path).map_err(|e| fail("file", format!("cannot read `{name}`: {e}")))?;
            // A vault-encrypted file is read decrypted, and what it holds is a secret.
            if crate::vault::is_vaulted(&content) {
                let keyring = vault.read().unwrap_or_else(|e| e.into_inner()).clone();
                content = keyring
                    .decrypt(&content)
                    .map_err(|e| fail("file", format!("`{name}` is vault-encrypted and {e}")))?;
                secrets.add(&content);
            }
            if rstrip {
                content.truncate(content.trim_end().len());
            }
            if lstrip {
                content = content.trim_start().to_string();
            }
            Ok(Value::from(content))
        })
        .collect()
}

/// The variables a template lookup renders with: every variable of the calling template, the
/// template vars ansible-core adds (`ansible_managed` unless the caller has one), then
/// `template_vars`.
fn context(state: &State, extra: Option<Value>, template: super::VarMap) -> Value {
    let mut pairs: Vec<(String, Value)> = state
        .known_variables()
        .into_iter()
        .filter_map(|n| state.lookup(&n).map(|v| (n.to_string(), v)))
        .collect();
    for (k, v) in template {
        if k == "ansible_managed" && pairs.iter().any(|(n, _)| *n == k) {
            continue;
        }
        pairs.retain(|(n, _)| *n != k);
        pairs.push((k, v));
    }
    if let Some(extra) = extra
        && let Ok(keys) = extra.try_iter()
    {
        for k in keys {
            if let Ok(v) = extra.get_item(&k) {
                pairs.retain(|(n, _)| *n != text(&k));
                pairs.push((text(&k), v));
            }
        }
    }
    Value::from_pairs(pairs)
}

fn template(state: &State, terms: &[Value], kwargs: Option<&Kwargs>) -> Result<Vec<Value>, Error> {
    let extra: Option<Value> = kw(kwargs, "template_vars");
    terms
        .iter()
        .map(|t| {
            let name = text(t);
            let path = find(state, Some("templates"), &name)
                .filter(|p| p.is_file())
                .ok_or_else(|| fail("template", format!("the template file `{name}` could not be found")))?;
            let source =
                std::fs::read_to_string(&path).map_err(|e| fail("template", format!("cannot read `{name}`: {e}")))?;
            let fullpath = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            let ctx = context(state, extra.clone(), super::template_vars(&name, &fullpath, None));
            state
                .env()
                .render_str(&source, ctx)
                .map(Value::from)
                .map_err(|e| fail("template", format!("in `{name}`: {e}")))
        })
        .collect()
}

/// `pipe`: a command's output (right-stripped); `lines`: its lines, one result each. Both run
/// `sh -c` on the controller, in the playbook's directory, as Ansible does.
fn pipe(state: &State, terms: &[Value], lines: bool) -> Result<Vec<Value>, Error> {
    let name = if lines { "lines" } else { "pipe" };
    let dir = search_path(state)
        .into_iter()
        .next()
        .unwrap_or_else(|| PathBuf::from("."));
    let mut out = Vec::new();
    for t in terms {
        let cmd = text(t);
        let o = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| fail(name, format!("cannot run `{cmd}`: {e}")))?;
        if !o.status.success() {
            return Err(fail(
                name,
                format!("`{cmd}` exited with {}", o.status.code().unwrap_or(-1)),
            ));
        }
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        if lines {
            out.extend(stdout.lines().map(Value::from));
        } else {
            out.push(Value::from(stdout.trim_end()));
        }
    }
    Ok(out)
}

fn first_found(state: &State, terms: &[Value], kwargs: Option<&Kwargs>) -> Result<Vec<Value>, Error> {
    let mut files: Vec<String> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    let mut skip: bool = kw(kwargs, "skip").unwrap_or(false);
    let kw_files: Option<Value> = kw(kwargs, "files");
    let kw_paths: Option<Value> = kw(kwargs, "paths");
    fn words(v: &Value, out: &mut Vec<String>) {
        match v.kind() {
            ValueKind::Seq => v.try_iter().into_iter().flatten().for_each(|i| words(&i, out)),
            _ => out.extend(
                text(v)
                    .split([',', ';'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
        }
    }
    let add = |t: &Value, files: &mut Vec<String>, paths: &mut Vec<String>, skip: &mut bool| match t.kind() {
        ValueKind::Map => {
            if let Ok(f) = t.get_attr("files")
                && !f.is_undefined()
            {
                words(&f, files);
            }
            if let Ok(p) = t.get_attr("paths")
                && !p.is_undefined()
            {
                words(&p, paths);
            }
            if let Ok(s) = t.get_attr("skip")
                && !s.is_undefined()
            {
                *skip = s.is_true();
            }
        }
        ValueKind::Seq => t.try_iter().into_iter().flatten().for_each(|i| {
            if i.kind() == ValueKind::Map {
                // A dict inside the list: its files and paths, as Ansible reads it.
                if let Ok(f) = i.get_attr("files") {
                    words(&f, files);
                }
                if let Ok(p) = i.get_attr("paths") {
                    words(&p, paths);
                }
            } else {
                words(&i, files)
            }
        }),
        _ => words(t, files),
    };
    for t in terms {
        add(t, &mut files, &mut paths, &mut skip);
    }
    if let Some(f) = kw_files {
        words(&f, &mut files);
    }
    if let Some(p) = kw_paths {
        words(&p, &mut paths);
    }
    let candidates: Vec<String> = if paths.is_empty() {
        files
    } else {
        paths
            .iter()
            .flat_map(|p| files.iter().map(move |f| Path::new(p).join(f).display().to_string()))
            .collect()
    };
    // `with_first_found` looks under the directory its task's module reads from (`templates/`
    // for `template`, ...), as Ansible's loop does; a lookup in a template looks beside the playbook.
    let subdir: Option<String> = kw(kwargs, "_subdir");
    for c in candidates {
        if let Some(found) = find(state, subdir.as_deref(), &c) {
            let abs = std::path::absolute(&found).unwrap_or(found);
            return Ok(vec![Value::from(abs.display().to_string())]);
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    Err(fail("first_found", "no file was found when using first_found"))
}

fn fileglob(state: &State, terms: &[Value]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in terms {
        let term = text(t);
        let p = Path::new(&term);
        let pattern = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dirs: Vec<PathBuf> = match p.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => find(state, Some("files"), &d.display().to_string())
                .into_iter()
                .collect(),
            None => search_path(state)
                .into_iter()
                .flat_map(|d| [d.join("files"), d])
                .collect(),
        };
        let matcher = wildmatch::WildMatch::new(&pattern);
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut found: Vec<String> = entries
                .flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // As Python's glob: a leading dot is matched only by a pattern that starts with one.
                .filter(|n| matcher.matches(n) && (!n.starts_with('.') || pattern.starts_with('.')))
                .map(|n| {
                    let full = dir.join(n);
                    std::path::absolute(&full).unwrap_or(full).display().to_string()
                })
                .collect();
            if !found.is_empty() {
                found.sort();
                out.extend(found.into_iter().map(Value::from));
                break;
            }
        }
    }
    Ok(out)
}

fn vars(state: &State, terms: &[Value], kwargs: Option<&Kwargs>) -> Result<Vec<Value>, Error> {
    let default: Option<Value> = kw(kwargs, "default");
    terms
        .iter()
        .map(|t| {
            let name = text(t);
            match state.lookup(&name).filter(|v| !v.is_undefined()) {
                Some(v) => Ok(v),
                None => default
                    .clone()
                    .ok_or_else(|| fail("vars", format!("no variable named `{name}` was found"))),
            }
        })
        .collect()
}

fn flatten_once(terms: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for t in terms {
        match t.kind() {
            ValueKind::Seq => out.extend(t.try_iter().into_iter().flatten()),
            _ => out.push(t),
        }
    }
    out
}

fn dict(terms: &[Value]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in terms {
        if t.kind() != ValueKind::Map {
            return Err(fail("dict", format!("it expects a mapping, got {}", t.kind())));
        }
        for k in t.try_iter()? {
            let v = t.get_item(&k)?;
            out.push(Value::from_pairs(vec![("key", k), ("value", v)]));
        }
    }
    Ok(out)
}

/// `start=1 end=10 stride=2 format=web%02d` or `count=`, or the short form
/// `[start-]end[/stride][:format]`; decimal numbers only, as in ansible-core 2.19.
fn sequence(terms: &[Value]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in terms {
        let term = text(t);
        let (mut start, mut end, mut stride, mut count, mut format) = (1i64, None, 1i64, None, "%d".to_string());
        let int = |k: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| fail("sequence", format!("`{k}` must be a whole number, got `{v}`")))
        };
        if term.contains('=') {
            let mut unknown = Vec::new();
            for (k, v) in kv(&term) {
                match k.as_str() {
                    "start" => start = int(&k, &v)?,
                    "end" => end = Some(int(&k, &v)?),
                    "stride" => stride = int(&k, &v)?,
                    "count" => count = Some(int(&k, &v)?),
                    "format" => format = v,
                    _ => unknown.push(k),
                }
            }
            if !unknown.is_empty() {
                return Err(fail("sequence", format!("unknown arguments {}", unknown.join(", "))));
            }
        } else {
            let (range, fmt) = match term.split_once(':') {
                Some((r, f)) => (r.to_string(), Some(f.to_string())),
                None => (term.clone(), None),
            };
            let (range, st) = match range.split_once('/') {
                Some((r, s)) => (r.to_string(), Some(int("stride", s)?)),
                None => (range, None),
            };
            match range.split_once('-') {
                Some((a, b)) => {
                    start = int("start", a)?;
                    end = Some(int("end", b)?);
                }
                None => end = Some(int("end", &range)?),
            }
            if let Some(s) = st {
                stride = s;
            }
            if let Some(f) = fmt {
                format = f;
            }
        }
        let end = match (end, count) {
            (Some(_), Some(_)) => return Err(fail("sequence", "give `end` or `count`, not both")),
            (Some(e), None) => e,
            (None, Some(c)) => {
                if c == 0 {
                    continue;
                }
                start + (c - 1) * stride
            }
            (None, None) => return Err(fail("sequence", "give `end` or `count`")),
        };
        if stride == 0 {
            continue;
        }
        if stride > 0 && end < start {
            return Err(fail("sequence", "to count backwards make stride negative"));
        }
        if stride < 0 && end > start {
            return Err(fail("sequence", "to count forward don't make stride negative"));
        }
        let mut i = start;
        while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
            out.push(Value::from(printf(&format, i)?));
            if out.len() > 1_000_000 {
                return Err(fail("sequence", "more than a million items"));
            }
            i += stride;
        }
    }
    Ok(out)
}

/// Python's `format % n` for one integer: `%d`, `%5d`, `%05d`, `%x`, `%X`, `%o`, `%s`, `%%`.
fn printf(format: &str, n: i64) -> Result<String, Error> {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut used = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '-' {
                flags.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let conv = chars
            .next()
            .ok_or_else(|| fail("sequence", format!("bad format `{format}`")))?;
        let body = match conv {
            '%' => {
                out.push('%');
                continue;
            }
            'd' | 'i' | 's' => n.to_string(),
            'x' => format!("{n:x}"),
            'X' => format!("{n:X}"),
            'o' => format!("{n:o}"),
            _ => return Err(fail("sequence", format!("bad format `{format}`"))),
        };
        used = true;
        let left = flags.starts_with('-');
        let digits = flags.trim_start_matches('-');
        let zero = digits.starts_with('0');
        let width: usize = digits.parse().unwrap_or(0);
        let padded = if body.len() >= width {
            body
        } else if left {
            format!("{body:<width$}")
        } else if zero {
            let (sign, rest) = body.strip_prefix('-').map_or(("", body.as_str()), |r| ("-", r));
            format!("{sign}{}{rest}", "0".repeat(width - body.len()))
        } else {
            format!("{body:>width$}")
        };
        out.push_str(&padded);
    }
    if !used {
        return Err(fail("sequence", format!("the format `{format}` has no `%d`")));
    }
    Ok(out)
}

const ASCII_LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// `password`: a random password, stored in the file the term names (created with mode 0600
/// and its directories; read back on later runs), or fresh every time for `/dev/null`. Every
/// password is a secret of the run.
fn password(secrets: &Secrets, state: &State, terms: &[Value], kwargs: Option<&Kwargs>) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in terms {
        let term = text(t);
        let (path, rest) = match term.split_once(' ') {
            Some((p, r)) => (p.to_string(), r.to_string()),
            None => (term.clone(), String::new()),
        };
        let mut length: usize = kw(kwargs, "length").unwrap_or(20);
        let mut chars: Option<String> = kw::<Value>(kwargs, "chars").map(|v| match v.kind() {
            ValueKind::Seq => v
                .try_iter()
                .into_iter()
                .flatten()
                .map(|c| text(&c))
                .collect::<Vec<_>>()
                .join(","),
            _ => text(&v),
        });
        for (k, v) in kv(&rest) {
            match k.as_str() {
                "length" => {
                    length = v
                        .parse()
                        .map_err(|_| fail("password", format!("`length` must be a whole number, got `{v}`")))?
                }
                "chars" => chars = Some(v),
                "seed" | "encrypt" | "ident" => {
                    return Err(fail("password", format!("roll does not support `{k}` yet")));
                }
                _ => return Err(fail("password", format!("unknown argument `{k}`"))),
            }
        }
        let alphabet = alphabet(chars.as_deref().unwrap_or("ascii_letters,digits,.,:-_"));
        let file = if path == "/dev/null" {
            None
        } else {
            let p = Path::new(&path);
            Some(if p.is_absolute() {
                p.to_path_buf()
            } else {
                search_path(state).into_iter().next().unwrap_or_default().join(p)
            })
        };
        let existing = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).map(|s| {
            let line = s.lines().next().unwrap_or("").to_string();
            line.split(" salt=").next().unwrap_or("").to_string()
        });
        let pw = match existing {
            Some(pw) => pw,
            None => {
                let pw = random_password(&alphabet, length)?;
                if let Some(f) = &file {
                    store(f, &pw).map_err(|e| fail("password", format!("cannot write `{}`: {e}", f.display())))?;
                }
                pw
            }
        };
        secrets.add(&pw);
        out.push(Value::from(pw));
    }
    Ok(out)
}

/// The characters of `chars`: names of Python's string constants, or themselves (`,,` is a comma).
fn alphabet(spec: &str) -> Vec<char> {
    let mut out: Vec<char> = Vec::new();
    let spec = spec.replace(",,", "\u{0}");
    for part in spec.split(',') {
        let part = part.replace('\u{0}', ",");
        match part.as_str() {
            "ascii_letters" => out.extend(ASCII_LETTERS.chars()),
            "ascii_lowercase" => out.extend(ASCII_LETTERS[..26].chars()),
            "ascii_uppercase" => out.extend(ASCII_LETTERS[26..].chars()),
            "digits" => out.extend(DIGITS.chars()),
            "hexdigits" => out.extend("0123456789abcdefABCDEF".chars()),
            "octdigits" => out.extend("01234567".chars()),
            "punctuation" => out.extend(PUNCTUATION.chars()),
            other => out.extend(other.chars()),
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Uniformly random characters of `alphabet` from the system's random source.
fn random_password(alphabet: &[char], length: usize) -> Result<String, Error> {
    if alphabet.is_empty() {
        return Err(fail("password", "no characters to make it of"));
    }
    let n = alphabet.len() as u32;
    // Rejection sampling: bytes past the last whole multiple of n would favour low characters.
    let limit = (256 / n) * n;
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 64];
    while out.chars().count() < length {
        getrandom::fill(&mut buf).map_err(|e| fail("password", format!("no random source: {e}")))?;
        for &b in &buf {
            if (b as u32) < limit && out.chars().count() < length {
                out.push(alphabet[(b as u32 % n) as usize]);
            }
        }
    }
    Ok(out)
}

fn store(path: &Path, pw: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{pw}")
}

/// `k=v k2='v 2'` words (quotes group a value), as Ansible's lookups read their terms.
fn kv(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut words = Vec::new();
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None => out.push((w, String::new())),
        }
    }
    out
}

fn list_of(name: &str, v: &Value) -> Result<Vec<Value>, Error> {
    match v.kind() {
        ValueKind::Seq => Ok(v.try_iter()?.collect()),
        _ => Err(fail(name, format!("it expects lists, got {}", v.kind()))),
    }
}

/// `together`: the lists side by side (the shorter ones padded with none), as `zip_longest`.
fn together(terms: &[Value]) -> Result<Vec<Value>, Error> {
    if terms.is_empty() {
        return Err(fail("together", "it needs at least one list"));
    }
    let lists: Vec<Vec<Value>> = terms.iter().map(|t| list_of("together", t)).collect::<Result<_, _>>()?;
    let n = lists.iter().map(Vec::len).max().unwrap_or(0);
    Ok((0..n)
        .map(|i| {
            Value::from(
                lists
                    .iter()
                    .map(|l| l.get(i).cloned().unwrap_or(Value::from(())))
                    .collect::<Vec<_>>(),
            )
        })
        .collect())
}

/// `nested`: every combination, the first list outermost.
fn nested(terms: &[Value]) -> Result<Vec<Value>, Error> {
    if terms.is_empty() {
        return Err(fail("nested", "it needs at least one list"));
    }
    let mut out: Vec<Vec<Value>> = vec![Vec::new()];
    for t in terms {
        let list = list_of("nested", t)?;
        let mut next = Vec::with_capacity(out.len() * list.len());
        for prefix in &out {
            for x in &list {
                let mut row = prefix.clone();
                row.push(x.clone());
                next.push(row);
            }
        }
        if next.len() > 1_000_000 {
            return Err(fail("nested", "more than a million combinations"));
        }
        out = next;
    }
    Ok(out.into_iter().map(Value::from).collect())
}

/// `subelements`: `[records, 'key.path', {skip_missing: true}]` → `[record, element]` for each
/// element of each record's list at the path.
fn subelements(terms: &[Value]) -> Result<Vec<Value>, Error> {
    let usage = "it takes a list (or mapping) of records, a key, and optionally {skip_missing: true}";
    let (records, key) = match terms {
        [r, k] | [r, k, _] => (r, text(k)),
        _ => return Err(fail("subelements", usage)),
    };
    let skip_missing = match terms.get(2) {
        Some(flags) if flags.kind() == ValueKind::Map => {
            for k in flags.try_iter()? {
                if text(&k) != "skip_missing" {
                    return Err(fail("subelements", format!("unknown flag `{}`", text(&k))));
                }
            }
            flags.get_attr("skip_missing")?.is_true()
        }
        Some(_) => return Err(fail("subelements", usage)),
        None => false,
    };
    let records: Vec<Value> = match records.kind() {
        ValueKind::Seq => records.try_iter()?.collect(),
        ValueKind::Map => records
            .try_iter()?
            .map(|k| records.get_item(&k))
            .collect::<Result<_, _>>()?,
        _ => return Err(fail("subelements", usage)),
    };
    let mut out = Vec::new();
    for rec in records {
        if rec.kind() != ValueKind::Map {
            return Err(fail("subelements", "the records must be mappings"));
        }
        let mut cur = rec.clone();
        let mut missing = false;
        for part in key.split('.') {
            match cur.get_attr(part) {
                Ok(v) if !v.is_undefined() => cur = v,
                _ => {
                    missing = true;
                    break;
                }
            }
        }
        if missing {
            if skip_missing {
                continue;
            }
            return Err(fail("subelements", format!("could not find `{key}` in a record")));
        }
        if cur.kind() != ValueKind::Seq {
            return Err(fail("subelements", format!("`{key}` of a record is not a list")));
        }
        // As Ansible, the record is shown without the list it gives.
        let parts: Vec<&str> = key.split('.').collect();
        let rest = without(&rec, &parts)?;
        for el in cur.try_iter()? {
            out.push(Value::from(vec![rest.clone(), el]));
        }
    }
    Ok(out)
}

/// A mapping without the key at `path` (`["mysql", "hosts"]` leaves `mysql: {}`).
fn without(v: &Value, path: &[&str]) -> Result<Value, Error> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(v.clone());
    };
    let mut pairs = Vec::new();
    for k in v.try_iter()? {
        let item = v.get_item(&k)?;
        if text(&k) == *first {
            if rest.is_empty() {
                continue;
            }
            pairs.push((k, without(&item, rest)?));
        } else {
            pairs.push((k, item));
        }
    }
    Ok(Value::from_pairs(pairs))
}

/// The lookup plugins roll has (each also as `ansible.builtin.NAME`).
pub const NAMES: &[&str] = &[
    "env",
    "file",
    "template",
    "pipe",
    "lines",
    "first_found",
    "fileglob",
    "vars",
    "items",
    "list",
    "dict",
    "sequence",
    "password",
    "together",
    "nested",
    "subelements",
];

/// Whether `lookup('NAME')` is one roll has, by short or `ansible.builtin.` name.
pub fn known(name: &str) -> bool {
    NAMES.contains(&name.strip_prefix("ansible.builtin.").unwrap_or(name))
}

/// `env, file, ... and subelements`, for messages.
pub fn provided() -> String {
    let (last, rest) = NAMES.split_last().unwrap_or((&"", &[]));
    format!("{} and {last}", rest.join(", "))
}

//! ansible.cfg found and read as ansible-core 2.19 does, with the `ANSIBLE_*` variables over it.
//!
//! Only the first file found is read (`ANSIBLE_CONFIG`, `./ansible.cfg` unless the working
//! directory is world-writable, `~/.ansible.cfg`, `/etc/ansible/ansible.cfg`). Its text is
//! Python `configparser` INI as Ansible reads it: `=` or `:` between key and value, `#`/`;`
//! comment lines, `;` inline comments, indented continuation lines, `[DEFAULT]` seen from every
//! section, keys case-insensitive, no interpolation (`raw=True`), a duplicate key an error.
//! Values take the types of ansible-core's `config/base.yml` (boolean, integer, path,
//! pathspec, pathlist); path values are relative to the file's directory, as Ansible resolves
//! them. A key roll does not know is ignored as Ansible ignores it (listed with `-v`); one roll
//! knows but cannot honour is warned about once.

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources, Span};
use std::path::{Path, PathBuf};

/// What a setting's text becomes (ansible-core's `ensure_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Str,
    Bool,
    Int,
    /// One path (`~` and `$VAR` expanded, relative to the file's directory).
    Path,
    /// Paths separated by `:`.
    PathSpec,
    /// Paths separated by `,`.
    PathList,
}

/// What roll does with a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// roll honours it.
    Used,
    /// Accepted: roll's behaviour already matches, or it only tunes Ansible's own machinery.
    Accepted,
    /// roll knows it but cannot honour a value other than Ansible's default; warned about.
    Unsupported(&'static str),
}

struct Spec {
    section: &'static str,
    key: &'static str,
    env: &'static str,
    ty: Type,
    usage: Use,
}

const fn spec(section: &'static str, key: &'static str, env: &'static str, ty: Type, usage: Use) -> Spec {
    Spec {
        section,
        key,
        env,
        ty,
        usage,
    }
}

/// The settings roll reads, with the names, variables and types of ansible-core's base.yml (and
/// of its ssh connection plugin for `[ssh_connection]`).
const SPECS: &[Spec] = &[
    spec("defaults", "inventory", "ANSIBLE_INVENTORY", Type::PathList, Use::Used),
    spec(
        "defaults",
        "roles_path",
        "ANSIBLE_ROLES_PATH",
        Type::PathSpec,
        Use::Used,
    ),
    spec(
        "defaults",
        "filter_plugins",
        "ANSIBLE_FILTER_PLUGINS",
        Type::PathSpec,
        Use::Used,
    ),
    spec(
        "defaults",
        "test_plugins",
        "ANSIBLE_TEST_PLUGINS",
        Type::PathSpec,
        Use::Used,
    ),
    spec("defaults", "remote_user", "ANSIBLE_REMOTE_USER", Type::Str, Use::Used),
    spec("defaults", "remote_port", "ANSIBLE_REMOTE_PORT", Type::Int, Use::Used),
    spec(
        "defaults",
        "private_key_file",
        "ANSIBLE_PRIVATE_KEY_FILE",
        Type::Path,
        Use::Used,
    ),
    spec("defaults", "forks", "ANSIBLE_FORKS", Type::Int, Use::Used),
    spec("defaults", "timeout", "ANSIBLE_TIMEOUT", Type::Int, Use::Used),
    spec(
        "defaults",
        "host_key_checking",
        "ANSIBLE_HOST_KEY_CHECKING",
        Type::Bool,
        Use::Used,
    ),
    spec("defaults", "gathering", "ANSIBLE_GATHERING", Type::Str, Use::Used),
    spec(
        "defaults",
        "vault_password_file",
        "ANSIBLE_VAULT_PASSWORD_FILE",
        Type::Path,
        Use::Used,
    ),
    spec(
        "privilege_escalation",
        "become",
        "ANSIBLE_BECOME",
        Type::Bool,
        Use::Used,
    ),
    spec(
        "privilege_escalation",
        "become_user",
        "ANSIBLE_BECOME_USER",
        Type::Str,
        Use::Used,
    ),
    spec(
        "privilege_escalation",
        "become_exe",
        "ANSIBLE_BECOME_EXE",
        Type::Str,
        Use::Used,
    ),
    spec(
        "privilege_escalation",
        "become_flags",
        "ANSIBLE_BECOME_FLAGS",
        Type::Str,
        Use::Used,
    ),
    spec(
        "privilege_escalation",
        "become_method",
        "ANSIBLE_BECOME_METHOD",
        Type::Str,
        Use::Used,
    ),
    spec(
        "privilege_escalation",
        "become_ask_pass",
        "ANSIBLE_BECOME_ASK_PASS",
        Type::Bool,
        Use::Unsupported("roll asks for no become password: give the remote user passwordless sudo"),
    ),
    spec(
        "defaults",
        "ask_pass",
        "ANSIBLE_ASK_PASS",
        Type::Bool,
        Use::Unsupported("roll connects with ssh keys only: give `private_key_file` or an ssh agent"),
    ),
    spec(
        "defaults",
        "hash_behaviour",
        "ANSIBLE_HASH_BEHAVIOUR",
        Type::Str,
        Use::Unsupported("roll replaces dictionaries as Ansible's default `replace` does: use the `combine` filter"),
    ),
    spec(
        "defaults",
        "strategy",
        "ANSIBLE_STRATEGY",
        Type::Str,
        Use::Unsupported("roll runs plays with the `linear` strategy"),
    ),
    spec(
        "defaults",
        "fact_caching",
        "ANSIBLE_CACHE_PLUGIN",
        Type::Str,
        Use::Unsupported("roll keeps facts for the run only (Ansible's `memory` cache)"),
    ),
    spec(
        "defaults",
        "pipelining",
        "ANSIBLE_PIPELINING",
        Type::Bool,
        Use::Accepted,
    ),
    spec(
        "defaults",
        "ask_vault_pass",
        "ANSIBLE_ASK_VAULT_PASS",
        Type::Bool,
        Use::Accepted,
    ),
    spec(
        "defaults",
        "retry_files_enabled",
        "ANSIBLE_RETRY_FILES_ENABLED",
        Type::Bool,
        Use::Accepted,
    ),
    spec("defaults", "nocows", "ANSIBLE_NOCOWS", Type::Bool, Use::Accepted),
    spec(
        "defaults",
        "interpreter_python",
        "ANSIBLE_PYTHON_INTERPRETER",
        Type::Str,
        Use::Accepted,
    ),
    spec(
        "defaults",
        "deprecation_warnings",
        "ANSIBLE_DEPRECATION_WARNINGS",
        Type::Bool,
        Use::Accepted,
    ),
    spec(
        "defaults",
        "stdout_callback",
        "ANSIBLE_STDOUT_CALLBACK",
        Type::Str,
        Use::Accepted,
    ),
    spec(
        "defaults",
        "callbacks_enabled",
        "ANSIBLE_CALLBACKS_ENABLED",
        Type::Str,
        Use::Accepted,
    ),
    spec("defaults", "transport", "ANSIBLE_TRANSPORT", Type::Str, Use::Accepted),
    spec(
        "ssh_connection",
        "pipelining",
        "ANSIBLE_SSH_PIPELINING",
        Type::Bool,
        Use::Accepted,
    ),
    spec("ssh_connection", "ssh_args", "ANSIBLE_SSH_ARGS", Type::Str, Use::Used),
    spec(
        "ssh_connection",
        "ssh_common_args",
        "ANSIBLE_SSH_COMMON_ARGS",
        Type::Str,
        Use::Used,
    ),
    spec(
        "ssh_connection",
        "ssh_extra_args",
        "ANSIBLE_SSH_EXTRA_ARGS",
        Type::Str,
        Use::Used,
    ),
    spec(
        "ssh_connection",
        "control_path",
        "ANSIBLE_SSH_CONTROL_PATH",
        Type::Str,
        Use::Accepted,
    ),
    spec(
        "ssh_connection",
        "control_path_dir",
        "ANSIBLE_SSH_CONTROL_PATH_DIR",
        Type::Str,
        Use::Accepted,
    ),
    spec(
        "ssh_connection",
        "scp_if_ssh",
        "ANSIBLE_SCP_IF_SSH",
        Type::Str,
        Use::Accepted,
    ),
    spec(
        "ssh_connection",
        "transfer_method",
        "ANSIBLE_SSH_TRANSFER_METHOD",
        Type::Str,
        Use::Accepted,
    ),
    spec(
        "ssh_connection",
        "retries",
        "ANSIBLE_SSH_RETRIES",
        Type::Int,
        Use::Accepted,
    ),
];

/// The environment variables the configuration reads (the process's, or a test's).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        // An empty variable counts as unset, as it does for roll's own variables.
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// ansible.cfg and the `ANSIBLE_*` variables, resolved (`None`: neither says; the caller's
/// default, or the command line, applies).
#[derive(Debug, Clone, Default)]
pub struct AnsibleConfig {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    pub inventory: Vec<PathBuf>,
    pub roles_path: Option<Vec<PathBuf>>,
    /// `filter_plugins` and `test_plugins`: where Python filters and tests are looked for.
    pub filter_plugins: Option<Vec<PathBuf>>,
    pub test_plugins: Option<Vec<PathBuf>>,
    pub remote_user: Option<String>,
    pub remote_port: Option<u16>,
    pub private_key_file: Option<PathBuf>,
    pub forks: Option<u32>,
    pub timeout: Option<u64>,
    pub host_key_checking: Option<bool>,
    pub gathering: Option<crate::modules::facts::Gathering>,
    pub vault_password_file: Option<PathBuf>,
    pub r#become: Option<bool>,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    pub become_exe: Option<String>,
    pub become_flags: Option<String>,
    /// `[ssh_connection] ssh_args`, `ssh_common_args`, `ssh_extra_args`: words for ssh.
    pub ssh_args: Option<String>,
    pub ssh_common_args: Option<String>,
    pub ssh_extra_args: Option<String>,
    /// Settings roll cannot honour, once each (`[WARNING]` lines for the command layer).
    pub warnings: Vec<String>,
    /// Keys of the file roll does not use (accepted, or unknown to roll), for `-v`.
    pub ignored: Vec<String>,
}

/// One `key = value` of the file.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: String,
    /// The value's place (the key's when the value is empty).
    span: Span,
}

/// The sections of an INI file in order, `[DEFAULT]` apart.
#[derive(Debug, Clone, Default)]
struct Ini {
    defaults: Vec<Entry>,
    sections: Vec<(String, Vec<Entry>)>,
}

impl Ini {
    fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        self.sections
            .iter()
            .find(|(s, _)| s == section)
            .and_then(|(_, es)| es.iter().find(|e| e.key == key))
            .or_else(|| {
                // configparser shows `[DEFAULT]` in every section that exists.
                self.sections
                    .iter()
                    .any(|(s, _)| s == section)
                    .then(|| self.defaults.iter().find(|e| e.key == key))
                    .flatten()
            })
    }
}

/// The file Ansible would read, and the warning it gives for a world-writable working
/// directory whose ansible.cfg it skips.
pub fn find(env: &dyn Env, cwd: &Path) -> (Option<PathBuf>, Option<String>) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut candidates: Vec<PathBuf> = Vec::new();
    let from_env = env.var("ANSIBLE_CONFIG").map(|c| {
        let p = expand(&c, env, cwd);
        if p.is_dir() { p.join("ansible.cfg") } else { p }
    });
    candidates.extend(from_env.clone());
    let mut skipped_public = false;
    if let Ok(meta) = std::fs::metadata(cwd) {
        let cfg = cwd.join("ansible.cfg");
        if meta.permissions().mode() & 0o002 != 0 {
            skipped_public = cfg.exists();
        } else {
            candidates.push(cfg);
        }
    }
    if let Some(home) = env.var("HOME") {
        candidates.push(PathBuf::from(home).join(".ansible.cfg"));
    }
    candidates.push(PathBuf::from("/etc/ansible/ansible.cfg"));
    let found = candidates
        .into_iter()
        .find(|p| p.exists() && std::fs::File::open(p).is_ok());
    // Unless ANSIBLE_CONFIG named the file read.
    let warning = (skipped_public && (from_env.is_none() || found != from_env)).then(|| {
        format!(
            "Ansible is being run in a world writable directory ({}), ignoring it as an ansible.cfg source.",
            cwd.display()
        )
    });
    (found, warning)
}

/// Read the configuration: the file [`find`] names, then the environment over it.
pub fn load(sources: &Sources, env: &dyn Env, cwd: &Path) -> Result<AnsibleConfig, Vec<Diagnostic>> {
    let (file, warning) = find(env, cwd);
    let mut cfg = AnsibleConfig::default();
    cfg.warnings.extend(warning);
    let ini = match &file {
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| {
                vec![Diagnostic::error(format!(
                    "cannot read the Ansible configuration `{}`: {e}",
                    path.display()
                ))]
            })?;
            let text = String::from_utf8(text).map_err(|_| {
                vec![
                    Diagnostic::error(format!(
                        "the Ansible configuration `{}` is not UTF-8 text",
                        path.display()
                    ))
                    .with_help("save ansible.cfg as UTF-8, as Ansible requires"),
                ]
            })?;
            let id = sources.add(path.clone(), text);
            parse(sources, id).map_err(|d| vec![d])?
        }
        None => Ini::default(),
    };
    let base = file
        .as_deref()
        .and_then(Path::parent)
        .map(|d| {
            if d.as_os_str().is_empty() {
                cwd.to_path_buf()
            } else {
                cwd.join(d)
            }
        })
        .unwrap_or_else(|| cwd.to_path_buf());
    for (section, entries) in &ini.sections {
        for e in entries {
            if !SPECS.iter().any(|s| s.section == section && s.key == e.key)
                || SPECS
                    .iter()
                    .any(|s| s.section == section && s.key == e.key && s.usage == Use::Accepted)
            {
                cfg.ignored.push(format!("[{section}] {}", e.key));
            }
        }
    }
    let mut errs = Vec::new();
    for s in SPECS {
        // The environment wins over the file; a path from it is relative to the working
        // directory, one from the file to the file's directory.
        let (raw, span, dir) = match env.var(s.env) {
            Some(v) => (v, None, cwd),
            None => match ini.get(s.section, s.key) {
                // Ansible unquotes a text value once typed; a path or a number keeps its quotes.
                Some(e) if s.ty == Type::Str => (unquote(&e.value).to_string(), Some(e.span), base.as_path()),
                Some(e) => (e.value.clone(), Some(e.span), base.as_path()),
                None => continue,
            },
        };
        let origin = match span {
            Some(_) => format!("`{}` in [{}]", s.key, s.section),
            None => format!("`{}`", s.env),
        };
        let bad = |what: &str| {
            let d = Diagnostic::error(format!("{origin} must be {what}, found `{raw}`"));
            let d = match span {
                Some(sp) => d.with_span(sp),
                None => d,
            };
            d.with_help(format!("Ansible reads `{}` as {what}", s.key))
        };
        let int = || -> Result<i64, Diagnostic> {
            let t = raw.trim();
            t.parse::<i64>()
                .ok()
                .or_else(|| {
                    // Python's Decimal: `5.0` is 5, `5.5` is refused.
                    t.parse::<f64>()
                        .ok()
                        .filter(|f| f.fract() == 0.0 && f.is_finite())
                        .map(|f| f as i64)
                })
                .ok_or_else(|| bad("an integer"))
        };
        if let Use::Unsupported(why) = s.usage {
            let default = match s.key {
                "hash_behaviour" => "replace",
                "strategy" => "linear",
                "fact_caching" => "memory",
                _ => "false",
            };
            let on = match s.ty {
                Type::Bool => boolean(&raw),
                _ => raw.trim() != default,
            };
            if on {
                let at = match span {
                    Some(sp) => sources.location(sp),
                    None => format!("the environment ({})", s.env),
                };
                cfg.warnings
                    .push(format!("{at}: `{} = {raw}` is not supported: {why}", s.key));
            }
            continue;
        }
        if s.usage == Use::Accepted {
            continue;
        }
        match s.key {
            "inventory" => cfg.inventory = paths(&raw, ',', env, dir),
            "roles_path" => cfg.roles_path = Some(paths(&raw, ':', env, dir)),
            "filter_plugins" => cfg.filter_plugins = Some(paths(&raw, ':', env, dir)),
            "test_plugins" => cfg.test_plugins = Some(paths(&raw, ':', env, dir)),
            "remote_user" => cfg.remote_user = Some(raw.clone()).filter(|u| !u.is_empty()),
            "remote_port" => match int() {
                Ok(p) if (1..=65535).contains(&p) => cfg.remote_port = Some(p as u16),
                Ok(_) => errs.push(bad("a port from 1 to 65535")),
                Err(d) => errs.push(d),
            },
            "private_key_file" => cfg.private_key_file = Some(expand(&raw, env, dir)),
            "vault_password_file" => cfg.vault_password_file = Some(expand(&raw, env, dir)),
            "forks" => match int() {
                Ok(n) if n >= 1 && n <= u32::MAX as i64 => cfg.forks = Some(n as u32),
                Ok(_) => errs.push(bad("a positive integer")),
                Err(d) => errs.push(d),
            },
            "timeout" => match int() {
                Ok(n) if n >= 0 => cfg.timeout = Some(n as u64),
                Ok(_) => errs.push(bad("a number of seconds")),
                Err(d) => errs.push(d),
            },
            "host_key_checking" => cfg.host_key_checking = Some(boolean(&raw)),
            "gathering" => {
                use crate::modules::facts::Gathering;
                cfg.gathering = Some(match raw.trim() {
                    "implicit" => Gathering::Implicit,
                    "explicit" => Gathering::Explicit,
                    "smart" => Gathering::Smart,
                    _ => {
                        errs.push(bad("`implicit`, `explicit` or `smart`"));
                        continue;
                    }
                })
            }
            "ssh_args" => cfg.ssh_args = Some(raw.clone()),
            "ssh_common_args" => cfg.ssh_common_args = Some(raw.clone()),
            "ssh_extra_args" => cfg.ssh_extra_args = Some(raw.clone()),
            "become" => cfg.r#become = Some(boolean(&raw)),
            "become_user" => cfg.become_user = Some(raw.clone()),
            "become_exe" => cfg.become_exe = Some(raw.clone()).filter(|x| !x.is_empty()),
            "become_flags" => cfg.become_flags = Some(raw.clone()),
            "become_method" => {
                if raw.trim() != "sudo" {
                    let at = match span {
                        Some(sp) => sources.location(sp),
                        None => format!("the environment ({})", s.env),
                    };
                    cfg.warnings.push(format!(
                        "{at}: `become_method = {raw}` is not supported: roll becomes another user with sudo"
                    ));
                }
                cfg.become_method = Some(raw.clone());
            }
            _ => {}
        }
    }
    cfg.file = file;
    if errs.is_empty() { Ok(cfg) } else { Err(errs) }
}

/// Ansible's non-strict boolean: `yes`, `on`, `1`, `true`, `t`, `y` (any case) are true, every
/// other text false.
fn boolean(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "on" | "1" | "true" | "t" | "1.0"
    )
}

/// Ansible's `unquote`: one pair of matching quotes around the whole value goes.
fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// A pathspec (`:`, entries as written) or a pathlist (`,`, entries trimmed).
fn paths(raw: &str, sep: char, env: &dyn Env, dir: &Path) -> Vec<PathBuf> {
    raw.split(sep)
        .map(|p| if sep == ',' { p.trim() } else { p })
        .filter(|p| !p.is_empty())
        .map(|p| expand(p, env, dir))
        .collect()
}

/// ansible-core's `unfrackpath(follow=False)`: `$VAR`/`${VAR}` and `~` expanded, relative to
/// `dir`, `.` and `..` folded without asking the filesystem.
fn expand(raw: &str, env: &dyn Env, dir: &Path) -> PathBuf {
    let raw = raw.replace(
        "{{CWD}}",
        &std::env::current_dir().unwrap_or_default().to_string_lossy(),
    );
    let mut out = String::new();
    let mut rest = raw.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(j) => (&b[..j], &b[j + 1..]),
                None => ("", after),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], &after[n..])
        };
        // Python's expandvars leaves unknown variables as written.
        match (!name.is_empty()).then(|| env.var(name)).flatten() {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..rest.len() - tail.len()]),
        }
        rest = tail;
    }
    out.push_str(rest);
    let expanded = match (out.strip_prefix('~'), env.var("HOME")) {
        (Some(r), Some(home)) if r.is_empty() || r.starts_with('/') => format!("{home}{r}"),
        _ => out,
    };
    let p = Path::new(&expanded);
    let joined = if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
    let mut norm = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                norm.pop();
            }
            other => norm.push(other.as_os_str()),
        }
    }
    norm
}

/// Python configparser's reading of the text (`inline_comment_prefixes=(';',)`, strict).
fn parse(sources: &Sources, id: FileId) -> Result<Ini, Diagnostic> {
    let file = sources.get(id);
    let text = file.text.as_str();
    let mut ini = Ini::default();
    // Index of the current section in `ini.sections`; `Some(None)` is `[DEFAULT]`.
    let mut current: Option<Option<usize>> = None;
    // The entry a continuation line extends, and the indent of its key.
    let mut last: Option<(usize, usize)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let strip_inline = |s: &str| -> usize {
            // `;` starts a comment where it follows white space.
            let b = s.as_bytes();
            (1..b.len())
                .find(|&i| b[i] == b';' && b[i - 1].is_ascii_whitespace())
                .unwrap_or(b.len())
        };
        let trimmed = body.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let content = body[..strip_inline(body)].trim();
        let indent = body.len() - body.trim_start().len();
        if content.is_empty() {
            // configparser keeps empty lines inside a multi-line value but trims them at its
            // end; a value never ends in one here.
            last = None;
            continue;
        }
        let span_of = |from: usize, len: usize| Span::new(id, start + from, start + from + len.max(1));
        if let Some((idx, key_indent)) = last
            && indent > key_indent
        {
            let entries = match current {
                Some(Some(i)) => &mut ini.sections[i].1,
                _ => &mut ini.defaults,
            };
            let e = &mut entries[idx];
            e.value.push('\n');
            e.value.push_str(content);
            continue;
        }
        if let Some(name) = content.strip_prefix('[').and_then(|c| c.rfind(']').map(|j| &c[..j])) {
            last = None;
            if name == "DEFAULT" {
                current = Some(None);
                continue;
            }
            if ini.sections.iter().any(|(s, _)| s == name) {
                return Err(Diagnostic::at(
                    format!("section `[{name}]` appears twice in the Ansible configuration"),
                    span_of(indent, content.len()),
                )
                .with_help("Ansible refuses a repeated section: merge the two"));
            }
            ini.sections.push((name.to_string(), Vec::new()));
            current = Some(Some(ini.sections.len() - 1));
            continue;
        }
        let Some(section) = current else {
            return Err(Diagnostic::at(
                "a setting before any `[section]` header",
                span_of(indent, content.len()),
            )
            .with_help("settings go under a header such as `[defaults]`, as Ansible requires"));
        };
        let Some(d) = content.find(['=', ':']) else {
            return Err(Diagnostic::at(
                format!("expected `key = value`, found `{content}`"),
                span_of(indent, content.len()),
            )
            .with_help("write `key = value` (or `key: value`); comments start with `#` or `;`"));
        };
        let key = content[..d].trim().to_lowercase();
        if key.is_empty() {
            return Err(Diagnostic::at(
                format!("expected `key = value`, found `{content}`"),
                span_of(indent, content.len()),
            )
            .with_help("a setting needs a name before its `=`"));
        }
        let value = content[d + 1..].trim().to_string();
        let value_col = indent + d + 1 + (content[d + 1..].len() - content[d + 1..].trim_start().len());
        let entries = match section {
            Some(i) => &mut ini.sections[i].1,
            None => &mut ini.defaults,
        };
        if entries.iter().any(|e| e.key == key) {
            let name = match section {
                Some(i) => ini.sections[i].0.clone(),
                None => "DEFAULT".to_string(),
            };
            return Err(Diagnostic::at(
                format!("`{key}` is set twice in `[{name}]` of the Ansible configuration"),
                span_of(indent, d),
            )
            .with_help("Ansible refuses a repeated key: keep one"));
        }
        let span = if value.is_empty() {
            span_of(indent, d)
        } else {
            span_of(value_col, value.len())
        };
        entries.push(Entry { key, value, span });
        last = Some((entries.len() - 1, indent));
    }
    Ok(ini)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Vars(HashMap<&'static str, String>);
    impl Env for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn ini(text: &str) -> Result<Ini, Diagnostic> {
        let s = Sources::new();
        let id = s.add("ansible.cfg", text.to_string());
        parse(&s, id)
    }

    #[test]
    fn reads_configparser_text() {
        let i = ini(
            "# c\n[defaults]\nForks: 7 ; seven\nroles_path = a;b\n  c\n[DEFAULT]\nremote_user=x\n[ssh_connection]\n",
        )
        .unwrap();
        assert_eq!(i.get("defaults", "forks").unwrap().value, "7");
        // `;` without white space before it is part of the value; an indented line continues it.
        assert_eq!(i.get("defaults", "roles_path").unwrap().value, "a;b\nc");
        assert_eq!(i.get("ssh_connection", "remote_user").unwrap().value, "x");
        assert!(i.get("privilege_escalation", "remote_user").is_none());
    }

    #[test]
    fn refuses_what_configparser_refuses() {
        assert!(ini("forks = 1\n").is_err());
        assert!(ini("[defaults]\nforks = 1\nFORKS = 2\n").is_err());
        assert!(ini("[defaults]\njust words\n").is_err());
        assert!(ini("[a]\n[a]\n").is_err());
    }

    #[test]
    fn paths_expand_as_unfrackpath() {
        let env = Vars(HashMap::from([("HOME", "/home/u".to_string()), ("X", "x".to_string())]));
        let d = Path::new("/p/q");
        assert_eq!(expand("~/k", &env, d), PathBuf::from("/home/u/k"));
        assert_eq!(expand("../$X/${X}y/$NOPE", &env, d), PathBuf::from("/p/x/xy/$NOPE"));
        assert_eq!(
            paths("a:/b", ':', &env, d),
            vec![PathBuf::from("/p/q/a"), PathBuf::from("/b")]
        );
    }

    /// The text and the values `ansible-config dump --only-changed` (ansible-core 2.19.14)
    /// printed for it, the file in /tmp/acfg and HOME=/root: DEFAULT_FORKS 7, DEFAULT_GATHERING
    /// explicit, DEFAULT_HOST_LIST ['/tmp/acfg/hosts', '/tmp/other'], DEFAULT_PRIVATE_KEY_FILE
    /// /tmp/acfg/"keys/id", DEFAULT_REMOTE_USER fromdefault, DEFAULT_ROLES_PATH
    /// ['/tmp/acfg/a', '/root/b\nc'], DEFAULT_TIMEOUT 5, HOST_KEY_CHECKING False, DEFAULT_BECOME
    /// True.
    #[test]
    fn resolves_as_ansible_config_dump() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("acfg");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("ansible.cfg"),
            "# comment\n[DEFAULT]\nremote_user = fromdefault\n[defaults]\nForks: 7 ; seven\nroles_path = a:~/b\n  c\ninventory = hosts, ../other\ntimeout = 5.0\nhost_key_checking = nope\nunknown_key = 1\ngathering = explicit\nprivate_key_file = \"keys/id\"\n[privilege_escalation]\nbecome = yes\n[ssh_connection]\nssh_args = -o X=y\n",
        )
        .unwrap();
        let env = Vars(HashMap::from([
            ("HOME", "/root".to_string()),
            ("ANSIBLE_CONFIG", dir.display().to_string()),
        ]));
        let c = load(&Sources::new(), &env, Path::new("/")).unwrap();
        assert_eq!(c.file, Some(dir.join("ansible.cfg")));
        assert_eq!(c.forks, Some(7));
        assert_eq!(c.gathering, Some(crate::modules::facts::Gathering::Explicit));
        assert_eq!(c.inventory, [dir.join("hosts"), d.path().join("other")]);
        assert_eq!(c.private_key_file, Some(dir.join("\"keys/id\"")));
        assert_eq!(c.remote_user.as_deref(), Some("fromdefault"));
        assert_eq!(c.roles_path, Some(vec![dir.join("a"), PathBuf::from("/root/b\nc")]));
        assert_eq!(c.timeout, Some(5));
        assert_eq!(c.host_key_checking, Some(false));
        assert_eq!(c.r#become, Some(true));
        assert_eq!(c.ignored, ["[defaults] unknown_key"]);
        assert_eq!(c.ssh_args.as_deref(), Some("-o X=y"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn booleans_are_ansibles() {
        for t in ["yes", "True", "on", "1", "t", "Y"] {
            assert!(boolean(t), "{t}");
        }
        for f in ["no", "False", "off", "0", "nope", ""] {
            assert!(!boolean(f), "{f}");
        }
    }
}

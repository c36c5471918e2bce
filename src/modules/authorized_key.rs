//! `authorized_key` (`ansible.posix.authorized_key`): keys present in or absent from a user's
//! `authorized_keys`, parsed, merged and written back line for line as the Ansible module does
//! (options, comments, the order of kept lines, `exclusive`), with the directory managed.

use super::spec::{ModuleSpec, p, req};
use super::{Args, Change, Ctx, Failure, FileDiff, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use indexmap::IndexMap;
use minijinja::Value;

const POSIX: &[&str] = &["ansible.posix"];

/// `authorized_key`: one or several public keys for a user.
pub struct AuthorizedKey;

static AUTHORIZED_KEY: ModuleSpec = ModuleSpec {
    params: &[
        req("user"),
        req("key"),
        p("path"),
        p("manage_dir"),
        p("state").choices(&["present", "absent"]),
        p("key_options"),
        p("exclusive"),
        p("comment"),
        p("validate_certs"),
        p("follow"),
    ],
    ..ModuleSpec::new("authorized_key", POSIX)
};

impl Module for AuthorizedKey {
    fn spec(&self) -> &'static ModuleSpec {
        &AUTHORIZED_KEY
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// The key types OpenSSH accepts, as the Ansible module lists them.
const KEY_TYPES: &[&str] = &[
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-dss",
    "ssh-rsa",
    "ssh-xmss@openssh.com",
    "ssh-xmss-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
];

/// Key options in the order written (`from="10.0.0.1",no-pty`): a value, or a bare flag.
type Options = Vec<(String, Option<String>)>;

/// One line of an authorized_keys file, parsed.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    Key {
        key: String,
        kind: String,
        options: Options,
        comment: String,
    },
    /// A comment, blank or invalid line: written back as it was.
    Kept(String),
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Kept(raw) => raw.clone(),
            Line::Key {
                key,
                kind,
                options,
                comment,
            } => {
                let opts: Vec<String> = options
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    })
                    .collect();
                let mut prefix = opts.join(",");
                if !opts.is_empty() {
                    prefix.push(' ');
                }
                // The module writes the space before an empty comment too.
                format!("{prefix}{kind} {key} {comment}\n")
            }
        }
    }
}

/// `no-pty,from="a,b"` → its options, commas inside quotes kept.
fn parse_options(text: &str) -> Options {
    let mut out = Vec::new();
    let mut part = String::new();
    let mut quote: Option<char> = None;
    let mut parts = Vec::new();
    for c in text.chars() {
        match (quote, c) {
            (None, ',') => parts.push(std::mem::take(&mut part)),
            (None, '"' | '\'') => {
                quote = Some(c);
                part.push(c);
            }
            (Some(q), _) if c == q => {
                quote = None;
                part.push(c);
            }
            _ => part.push(c),
        }
    }
    parts.push(part);
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        match p.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
            None => out.push((p, None)),
        }
    }
    out
}

/// A line as the module parses it: `None` when it holds no key type it knows.
fn parse_key(raw: &str) -> Option<Line> {
    let raw = raw.replace("\\#", "#");
    let parts: Vec<&str> = raw.split_whitespace().collect();
    if parts.first() == Some(&"#") {
        return Some(Line::Kept(raw));
    }
    let at = parts.iter().position(|p| KEY_TYPES.contains(p))?;
    let key = parts.get(at + 1)?;
    Some(Line::Key {
        key: key.to_string(),
        kind: parts[at].to_string(),
        options: parse_options(&parts[..at].join(" ")),
        comment: parts.get(at + 2..).map(|c| c.join(" ")).unwrap_or_default(),
    })
}

/// A file's lines by identity (the key, or the line itself), each with its rank.
fn parse_file(text: &str) -> IndexMap<String, (Line, usize)> {
    let mut keys = IndexMap::new();
    for (rank, line) in text.split_inclusive('\n').enumerate() {
        let parsed = parse_key(line).unwrap_or_else(|| Line::Kept(line.to_string()));
        let id = match &parsed {
            Line::Key { key, .. } => key.clone(),
            Line::Kept(raw) => raw.clone(),
        };
        keys.insert(id, (parsed, rank));
    }
    keys
}

fn serialize(keys: &IndexMap<String, (Line, usize)>) -> String {
    let mut lines: Vec<&(Line, usize)> = keys.values().collect();
    lines.sort_by_key(|(_, rank)| *rank);
    lines.iter().map(|(l, _)| l.render()).collect()
}

/// The new content, or `None` when the file already is as asked.
fn merge(existing: &str, new_keys: &[Line], present: bool, exclusive: bool) -> Option<String> {
    let mut keys = parse_file(existing);
    let base_rank = keys.len();
    let mut write = false;
    let mut wanted = Vec::new();
    for (rank, new) in new_keys.iter().enumerate() {
        let Line::Key { key, .. } = new else { continue };
        let mut matched = false;
        if let Some((old, _)) = keys.get(key) {
            if old != new && present {
                keys.shift_remove(key);
                write = true;
            } else {
                matched = true;
            }
        }
        if present {
            wanted.push(key.clone());
            if !matched {
                keys.insert(key.clone(), (new.clone(), base_rank + rank));
                write = true;
            }
        } else if matched {
            keys.shift_remove(key);
            write = true;
        }
    }
    if present && exclusive {
        let before = keys.len();
        keys.retain(|k, _| wanted.contains(k));
        write |= keys.len() != before;
    }
    write.then(|| serialize(&keys))
}

/// The keys asked for: one per line, blank lines and comments left out; an invalid one fails.
fn wanted_keys(args: &Args) -> Result<Vec<Line>, Failure> {
    let key = args.req_str("key")?;
    if key.starts_with("http") {
        return Err("`key` as a URL is not supported by roll: give the key itself"
            .to_string()
            .into());
    }
    let options = args.str("key_options")?;
    let comment = args.str("comment")?;
    let mut out = Vec::new();
    for line in key.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let Some(Line::Key {
            key,
            kind,
            options: own,
            comment: own_comment,
        }) = parse_key(line)
        else {
            return Err(failed(format!("invalid key specified: {line}")));
        };
        out.push(Line::Key {
            key,
            kind,
            options: options.as_deref().map(parse_options).unwrap_or(own),
            comment: comment.clone().unwrap_or(own_comment),
        });
    }
    Ok(out)
}

/// A user's account, as the host's passwd says.
struct Account {
    home: String,
    uid: String,
    gid: String,
}

async fn account(ctx: &Ctx<'_>, user: &str) -> Result<Option<Account>, Failure> {
    let out = ctx
        .conn
        .exec(&Command::new(format!("getent passwd {}", quote(user))))
        .await?;
    let text = out.stdout_text();
    let f: Vec<&str> = text.trim_end().split(':').collect();
    if out.rc != 0 || f.len() < 7 {
        return Ok(None);
    }
    Ok(Some(Account {
        uid: f[2].into(),
        gid: f[3].into(),
        home: f[5].into(),
    }))
}

pub struct Write {
    file: String,
    content: String,
    manage_dir: bool,
    owner: Option<(String, String)>,
    /// `path` was given: the result describes the file written.
    path_info: bool,
}

apply_by!(Write, apply);

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let user = args.req_str("user")?;
    let path = args.str("path")?;
    let manage_dir = args.bool("manage_dir", true)?;
    let present = args.str("state")?.as_deref() != Some("absent");
    let exclusive = args.bool("exclusive", false)?;
    let follow = args.bool("follow", false)?;
    let new_keys = wanted_keys(args)?;

    let acct = match (&path, ctx.check_mode) {
        (Some(_), true) => None,
        _ => match account(ctx, &user).await? {
            Some(a) => Some(a),
            None if ctx.check_mode => {
                return Err(failed(
                    "Either user must exist or you must provide full path to key file in check mode".into(),
                ));
            }
            None => {
                return Err(failed(format!(
                    "Failed to lookup user {user}: \"getpwnam(): name not found: '{user}'\""
                )));
            }
        },
    };
    let keyfile = match (&path, &acct) {
        (Some(p), _) => p.clone(),
        (None, Some(a)) => format!("{}/.ssh/authorized_keys", a.home.trim_end_matches('/')),
        (None, None) => return Err(format!("Failed to lookup user {user}").into()),
    };
    let mut file = keyfile.clone();
    if follow {
        let out = ctx
            .conn
            .exec(&Command::new(format!("readlink -m {}", quote(&keyfile))))
            .await?;
        if out.rc == 0 {
            file = out.stdout_text().trim_end().to_string();
        }
    }
    let existing = ctx
        .conn
        .read_file(&keyfile, ctx.become_user.as_deref())
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();

    let mut result = ModuleResult::ok();
    for (k, v) in [
        ("user", Value::from(user.as_str())),
        ("key", args.get("key").cloned().unwrap_or_default()),
        ("path", path.as_deref().map(Value::from).unwrap_or(Value::from(()))),
        ("manage_dir", Value::from(manage_dir)),
        ("state", Value::from(if present { "present" } else { "absent" })),
        (
            "key_options",
            args.str("key_options")?.map(Value::from).unwrap_or(Value::from(())),
        ),
        ("exclusive", Value::from(exclusive)),
        (
            "comment",
            args.str("comment")?.map(Value::from).unwrap_or(Value::from(())),
        ),
        ("validate_certs", Value::from(args.bool("validate_certs", true)?)),
        ("follow", Value::from(follow)),
        ("keyfile", Value::from(keyfile.as_str())),
    ] {
        result.data.insert(k.into(), v);
    }
    // With `path`, Ansible's result describes the file (owner, mode, size, `state: file`).
    if path.is_some() {
        super::get_url::path_info(&mut result, &keyfile, ctx).await?;
    }
    let Some(content) = merge(&existing, &new_keys, present, exclusive) else {
        return Ok(Plan::Unchanged(result));
    };
    result.changed = true;
    if ctx.diff {
        result.data.insert(
            "diff".into(),
            crate::values::from_serde(&serde_json::json!({
                "before_header": keyfile,
                "after_header": file,
                "before": existing,
                "after": content,
            })),
        );
        result.diffs.push(FileDiff {
            path: file.clone(),
            before: existing.clone(),
            after: content.clone(),
            change: if existing.is_empty() {
                Change::Create
            } else {
                Change::Update
            },
        });
    }
    Ok(Plan::Change {
        preview: result,
        action: Box::new(Write {
            file,
            content,
            manage_dir: manage_dir && acct.is_some(),
            owner: acct.map(|a| (a.uid, a.gid)),
            path_info: path.is_some(),
        }),
    })
}

async fn apply(w: Write, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let f = quote(&w.file);
    let mut script = String::from("set -e\numask 077\n");
    let own = w.owner.as_ref().map(|(u, g)| format!("{u}:{g}"));
    if w.manage_dir
        && let Some(o) = &own
    {
        // The module manages the file's own directory: 0700, the user's.
        script.push_str(&format!(
            "d=$(dirname {f})\n[ -d \"$d\" ] || mkdir -m 700 \"$d\"\nchown {o} \"$d\"\nchmod 700 \"$d\"\n"
        ));
    }
    script.push_str(&format!(
        "if [ ! -e {f} ]; then (umask 022; mkdir -p \"$(dirname {f})\"); : > {f}; fi\n"
    ));
    if let Some(o) = &own {
        script.push_str(&format!("chown {o} {f} || true\nchmod 600 {f} || true\n"));
    }
    // Written beside it and moved over it, keeping its owner and mode.
    script.push_str(&format!(
        "t=$(mktemp \"$(dirname {f})/.roll.XXXXXXXX\")\ntrap 'rm -f \"$t\"' EXIT\ncat > \"$t\"\n\
         chown --reference={f} \"$t\" 2>/dev/null || true\nchmod --reference={f} \"$t\"\nmv -f \"$t\" {f}\ntrap - EXIT\n"
    ));
    let mut cmd = Command::new(script);
    cmd.stdin = Some(w.content.into_bytes());
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc != 0 {
        return Err(format!("cannot write `{}`: {}", w.file, out.stderr_text().trim()).into());
    }
    let mut r = ModuleResult::changed();
    if w.path_info {
        super::get_url::path_info(&mut r, &w.file, ctx).await?;
    }
    Ok(r)
}

/// A failure as ansible-core 2.19 registers a module's `fail_json` without an exception.
fn failed(msg: String) -> Failure {
    let r = ModuleResult::failed(msg).with("exception", "(traceback unavailable)");
    Failure::Failed(Box::new(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Line {
        parse_key(text).unwrap()
    }

    #[test]
    fn a_key_is_added_after_the_lines_there_and_written_as_the_module_writes_it() {
        let existing = "# managed\nssh-ed25519 AAAAold old@host\n";
        let got = merge(existing, &[key("ssh-ed25519 AAAAnew")], true, false).unwrap();
        assert_eq!(got, "# managed\nssh-ed25519 AAAAold old@host\nssh-ed25519 AAAAnew \n");
        assert_eq!(merge(&got, &[key("ssh-ed25519 AAAAnew")], true, false), None);
    }

    #[test]
    fn changed_options_replace_the_key_and_exclusive_drops_the_others() {
        let existing = "ssh-ed25519 AAAA1 a\nssh-ed25519 AAAA2 b\n";
        let new = key("no-pty,from=\"10.0.0.1,10.0.0.2\" ssh-ed25519 AAAA1 a");
        let got = merge(existing, std::slice::from_ref(&new), true, true).unwrap();
        assert_eq!(got, "no-pty,from=\"10.0.0.1,10.0.0.2\" ssh-ed25519 AAAA1 a\n");
        assert_eq!(
            merge(existing, &[key("ssh-ed25519 AAAA2 b")], false, false).unwrap(),
            "ssh-ed25519 AAAA1 a\n"
        );
        assert_eq!(merge(existing, &[key("ssh-ed25519 AAAA3")], false, false), None);
    }
}

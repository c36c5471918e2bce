//! `roll run`, Ansible's ad-hoc command: the command line becomes a one-task play (its YAML
//! tree spans the command line, so diagnostics point into it) that goes through the same
//! parser, checker, variables, executor and reports as `roll play`.

use crate::commands::play::{self, Interrupt};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::exec::Reporter;
use crate::exit::Exit;
use crate::modules::spec::{Capability, FreeForm};
use crate::playbook::check;
use crate::settings::Output;
use crate::source::{FileId, Sources, Span};
use crate::yaml::{Kind, Node};
use std::sync::Arc;

/// What diagnostics call the command line.
const SOURCE_NAME: &str = "command line";

/// How long a command runs before its output is passed on line by line instead of shown
/// whole with its result: Ansible's layout for quick commands, live lines for `docker logs -f`.
pub const STREAM_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

pub fn run(args: crate::cli::RunArgs) -> Exit {
    // As for `roll play`: the checker and the run recurse; on a thread sized for them.
    let ran = std::thread::Builder::new()
        .name("roll-run".into())
        .stack_size(play::RUN_STACK)
        .spawn(move || adhoc(args));
    match ran.map(|t| t.join()) {
        Ok(Ok(exit)) => exit,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => {
            eprintln!("error: cannot start the run's thread: {e}");
            Exit::Error
        }
    }
}

/// The command line as diagnostics show it, and where each part of it is.
struct Line {
    file: FileId,
    pattern: Span,
    module: Span,
    args: Span,
    args_offset: usize,
}

fn adhoc(a: crate::cli::RunArgs) -> Exit {
    let sources = Sources::new();
    let out = Output::with_color(a.color);
    // ansible.cfg applies to the ad-hoc command as to playbooks (connection settings, become,
    // the inventory when `-i` is not given).
    let cfg = match play::ansible_config(&sources, &out, 0) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let inventory = match crate::settings::inventory(a.inventory.clone(), &cfg) {
        Ok(i) => i,
        Err(d) => return play::invalid(&sources, d.into(), &out),
    };
    sources.set_project(play::project_dirs(std::path::Path::new("."), &inventory));
    match crate::commands::vault::keyring(&a.vault) {
        Ok(k) => sources.set_vault(k),
        Err(d) => return play::invalid(&sources, d.into(), &out),
    }
    let line = command_line(&sources, &a);
    let tree = match play_tree(&sources, &line, &a) {
        Ok(t) => t,
        Err(d) => return play::invalid(&sources, d, &out),
    };
    let extra_vars = match crate::settings::parse_extra_vars(&a.extra_vars, &sources) {
        Ok(v) => v,
        Err(items) => return play::invalid(&sources, Diagnostics { items }, &out),
    };
    // Ansible's ad-hoc play lives in the working directory: `group_vars/` there apply.
    let pb_path = std::path::PathBuf::from(SOURCE_NAME);
    let pb = crate::playbook::parse_tree(&sources, &tree, &pb_path);
    let inv = crate::inventory::load(&sources, &inventory, &[std::path::PathBuf::from(".")]);
    let (mut pb, mut inv) = match (pb, inv) {
        (Ok(pb), Ok(inv)) => (pb, inv),
        (Err(mut x), Err(y)) => {
            x.extend(y);
            return play::invalid(&sources, x, &out);
        }
        (Err(x), _) | (_, Err(x)) => return play::invalid(&sources, x, &out),
    };
    pb.dir = std::path::PathBuf::from(".");
    for p in &mut pb.plays {
        p.dir = pb.dir.clone();
    }
    if let Some(user) = &a.user {
        // `-u` is the remote user where the inventory names none (below `ansible_user`).
        for h in &mut inv.hosts {
            if !["ansible_user", "ansible_ssh_user", "user", "ssh_user"]
                .iter()
                .any(|k| h.vars.contains_key(*k))
            {
                Arc::make_mut(&mut h.vars).insert("ansible_user".into(), minijinja::Value::from(user.as_str()));
            }
        }
    }
    let names: Vec<String> = extra_vars.keys().cloned().collect();
    let checked = match check::check(check::CheckInput {
        sources: &sources,
        playbook: &pb,
        inventory: &mut inv,
        limit: a.limit.as_deref(),
        extra_vars: &names,
        start_at_task: None,
        purpose: check::Purpose::Run,
    }) {
        Ok(c) => c,
        Err(d) => return play::invalid(&sources, d, &out),
    };
    let command_like = crate::modules::registry::lookup(&a.module).is_some_and(|m| {
        let spec = m.spec();
        spec.free_form == FreeForm::Yes && spec.has(Capability::WouldRunInCheck)
    });
    let json = a.format == crate::cli::Format::Json;
    let settings = crate::settings::Play {
        playbook: pb_path,
        inventory,
        limit: a.limit.clone(),
        extra_vars,
        opts: crate::exec::Options {
            check: a.check,
            diff: a.diff,
            forks: a.forks as usize,
            interactive: out.interactive,
            ssh: crate::settings::ssh_options(a.ssh, &cfg),
            command_timeout: (a.command_timeout > 0).then(|| std::time::Duration::from_secs(a.command_timeout)),
            // `-o` puts each host's output on its one line, so nothing streams there.
            stream_output: (!a.one_line).then_some(STREAM_AFTER),
            r#become: cfg.r#become.unwrap_or(false),
            become_user: cfg.become_user.clone(),
            become_exe: cfg.become_exe.clone(),
            become_flags: cfg.become_flags.clone(),
            ..crate::exec::Options::default()
        },
        json,
        junit: None,
        quiet: true,
        verbose: 0,
        list_hosts: false,
        list_tasks: false,
        list_tags: false,
        syntax_check: false,
        // An ad-hoc command gathers no facts.
        gathering: None,
        config_file: cfg.file.clone(),
    };
    if let Err(d) = play::descriptors_suffice(&inv, &checked, settings.opts.forks) {
        return play::invalid(&sources, d.into(), &out);
    }
    let vars = play::run_vars(&sources, &pb, inv, &settings);
    let log: Box<dyn Reporter> = if json {
        Box::new(crate::report::JsonLines::new(std::io::stdout()))
    } else {
        Box::new(crate::report::AdHoc::new(
            std::io::stdout(),
            out.color,
            a.one_line,
            a.diff,
            command_like,
        ))
    };
    match play::execute(sources, pb, checked, vars, &settings, log, Interrupt::StopNow) {
        Some(summary) => play::exit_of(&summary, false),
        None => Exit::Error,
    }
}

/// The command line as one source text, `PATTERN -m MODULE -a ARGS`, so that a diagnostic can
/// underline the part it is about.
fn command_line(sources: &Sources, a: &crate::cli::RunArgs) -> Line {
    let mut text = String::new();
    let mut part = |s: &str, before: &str| {
        text.push_str(before);
        let start = text.len();
        text.push_str(s);
        (start, text.len())
    };
    let p = part(&a.pattern, "");
    let m = part(&a.module, " -m ");
    let args = if a.args.is_empty() {
        part("", "")
    } else {
        part(&a.args, " -a ")
    };
    let file = sources.add(SOURCE_NAME, text);
    Line {
        file,
        pattern: Span::new(file, p.0, p.1),
        module: Span::new(file, m.0, m.1),
        args: Span::new(file, args.0, args.1),
        args_offset: args.0,
    }
}

/// The play Ansible's `ansible` builds (`lib/ansible/cli/adhoc.py`, `_play_ds`): one task, no
/// fact gathering, the module's arguments parsed from `-a` as it parses them.
fn play_tree(sources: &Sources, line: &Line, a: &crate::cli::RunArgs) -> Result<Node, Diagnostics> {
    let s = |text: &str, span: Span| Node {
        kind: Kind::Str(text.to_string()),
        span,
    };
    let module = crate::modules::registry::lookup(&a.module);
    let args = module_args(sources, line, a, module)?;
    let task = Node {
        kind: Kind::Map(vec![(s(&a.module, line.module), args)]),
        span: line.module,
    };
    let whole = Span::new(line.file, 0, sources.get(line.file).text.len());
    let mut play = vec![
        (s("name", whole), s("Ansible Ad-Hoc", whole)),
        (s("hosts", line.pattern), s(&a.pattern, line.pattern)),
        (
            s("gather_facts", whole),
            Node {
                kind: Kind::Bool(false),
                span: whole,
            },
        ),
    ];
    if a.r#become {
        play.push((
            s("become", whole),
            Node {
                kind: Kind::Bool(true),
                span: whole,
            },
        ));
    }
    if let Some(u) = &a.become_user {
        play.push((s("become_user", whole), s(u, whole)));
    }
    play.push((
        s("tasks", whole),
        Node {
            kind: Kind::Seq(vec![task]),
            span: whole,
        },
    ));
    Ok(Node {
        kind: Kind::Seq(vec![Node {
            kind: Kind::Map(play),
            span: whole,
        }]),
        span: whole,
    })
}

/// `-a` as Ansible reads it: a JSON mapping when it looks like one; for a free-form module
/// (`command`, `shell`) the string itself (its known `key=value` words are parameters); else
/// `key=value` words, each value a YAML scalar.
fn module_args(
    sources: &Sources,
    line: &Line,
    a: &crate::cli::RunArgs,
    module: Option<&'static dyn crate::modules::Module>,
) -> Result<Node, Diagnostics> {
    let raw = a.args.as_str();
    let span = line.args;
    if raw.trim().is_empty() {
        return Ok(Node { kind: Kind::Null, span });
    }
    let trimmed = raw.trim();
    if trimmed.starts_with('{') && trimmed.ends_with('}') {
        // Parsed where it stands on the command line, so that spans match.
        let padded = format!("{}{raw}", " ".repeat(line.args_offset));
        let id = sources.add(SOURCE_NAME, padded);
        if let Ok(node) = crate::yaml::parse(sources, id)
            && node.as_map().is_some()
        {
            return Ok(node);
        }
    }
    let words = words(raw, line).map_err(Diagnostics::from)?;
    if module.is_some_and(|m| m.spec().free_form == FreeForm::Yes) {
        return Ok(Node {
            kind: Kind::Str(raw.to_string()),
            span,
        });
    }
    let name = module.map_or(a.module.as_str(), |m| m.spec().name);
    let mut pairs = Vec::new();
    let mut errs = Diagnostics::default();
    for (word, at) in words {
        match word.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                let key_span = Span::new(line.file, at.start as usize, at.start as usize + k.len());
                pairs.push((
                    Node {
                        kind: Kind::Str(k.to_string()),
                        span: key_span,
                    },
                    Node {
                        kind: crate::yaml::plain_scalar(v.to_string()),
                        span: at,
                    },
                ));
            }
            _ => errs.push(
                Diagnostic::at(
                    format!("`-a`: `{name}` takes `key=value` parameters, `{word}` is not one"),
                    at,
                )
                .with_help(format!("write `-m {name} -a 'key=value ...'`, or a JSON mapping")),
            ),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Node {
        kind: Kind::Map(pairs),
        span,
    })
}

/// The words of `-a` as Ansible's `split_args` finds them: split at whitespace outside quotes
/// and outside Jinja blocks (`{{ x }}`, `{% %}`, `{# #}`), each with its span, quotes then
/// removed; an unclosed quote or block is an error where it opens.
fn words(raw: &str, line: &Line) -> Result<Vec<(String, Span)>, Diagnostic> {
    let at = |start: usize, end: usize| Span::new(line.file, line.args_offset + start, line.args_offset + end);
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<(char, usize)> = None;
    // Open Jinja blocks: where each opened.
    let mut blocks: Vec<usize> = Vec::new();
    let mut escaped = false;
    let chars: Vec<(usize, char)> = raw.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (i, c) = chars[k];
        let next = chars.get(k + 1).map(|&(_, n)| n);
        k += 1;
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some((q, _)), c) if c == q => quote = None,
            (Some(('"', _)), '\\') => escaped = true,
            (Some(_), _) => {}
            (None, '{') if matches!(next, Some('{' | '%' | '#')) => {
                start.get_or_insert(i);
                blocks.push(i);
                k += 1;
            }
            (None, '}' | '%' | '#') if next == Some('}') && !blocks.is_empty() => {
                blocks.pop();
                k += 1;
            }
            (None, '\\') => {
                start.get_or_insert(i);
                escaped = true;
            }
            (None, '\'' | '"') if blocks.is_empty() => {
                start.get_or_insert(i);
                quote = Some((c, i));
            }
            (None, c) if c.is_whitespace() && blocks.is_empty() => {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
            }
            (None, _) => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some((q, i)) = quote {
        return Err(
            Diagnostic::at(format!("`-a`: the quote `{q}` is never closed"), at(i, i + 1))
                .with_help("close the quote, or quote the whole `-a` value for your shell: `-a 'msg=\"two words\"'`"),
        );
    }
    if let Some(&i) = blocks.first() {
        return Err(Diagnostic::at("`-a`: this Jinja block is never closed", at(i, i + 2))
            .with_help("close it with `}}` (or `%}`, `#}`)"));
    }
    if let Some(s) = start {
        out.push((s, raw.len()));
    }
    Ok(out.into_iter().map(|(s, e)| (unquote(&raw[s..e]), at(s, e))).collect())
}

/// A word without its quotes (`msg="two words"` → `msg=two words`); Jinja blocks are kept as
/// written, quotes inside them included.
fn unquote(word: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        match (quote, c) {
            (None, '{') if matches!(next, Some('{' | '%' | '#')) => {
                depth += 1;
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (None, '}' | '%' | '#') if depth > 0 && next == Some('}') => {
                depth -= 1;
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ if depth > 0 => out.push(c),
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unquote;

    #[test]
    fn words_lose_their_quotes_but_jinja_blocks_stay_whole() {
        assert_eq!(unquote(r#"msg="two words""#), "msg=two words");
        assert_eq!(unquote(r#"a='x y'z"#), "a=x yz");
        assert_eq!(unquote(r#"p={{ "a b" | upper }}/x"#), r#"p={{ "a b" | upper }}/x"#);
        assert_eq!(unquote(r"a=b\ c"), "a=b c");
    }
}

//! Semantic checks of a parsed playbook against its inventory, run before any host is touched:
//! host patterns, handlers, template syntax, undefined variables, template and copy sources (a
//! template a module renders with names of its own is checked with those names defined).

use super::{Body, Play, Playbook, Task};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::{Inventory, pattern};
use crate::modules::{Capability, ParamKind};
use crate::source::{FileId, SourceDir, Sources, Span, find_source};
use crate::values::is_template;
use crate::vars::Templar;
use crate::yaml::{Kind, Node};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// What checking proved and later stages reuse.
#[derive(Debug, Default)]
pub struct Checked {
    /// Hosts of each play, after `--limit` (empty when the limit leaves none).
    pub play_hosts: Vec<Vec<usize>>,
    /// Template files read while checking, by resolved path.
    pub template_files: HashMap<PathBuf, FileId>,
    /// Template files checked, with the names their module provides: each pair once.
    templates_checked: HashSet<(PathBuf, &'static [&'static str])>,
}

pub struct CheckInput<'a> {
    pub sources: &'a Sources,
    pub playbook: &'a Playbook,
    pub inventory: &'a mut Inventory,
    pub limit: Option<&'a str>,
    pub extra_vars: &'a [String],
    pub start_at_task: Option<&'a str>,
}

/// In the known names: facts are gathered, so an `ansible_` name may be a per-interface fact.
const HOST_FACT: &str = "ansible_*";

/// Whether a name is defined before the run (or may be, as a fact only the host names).
fn is_known(known: &HashSet<String>, name: &str) -> bool {
    known.contains(name) || (name.starts_with("ansible_") && known.contains(HOST_FACT))
}

const MAGIC: &[&str] = &[
    "inventory_hostname",
    "inventory_hostname_short",
    "ansible_host",
    "group_names",
    "groups",
    "hostvars",
    "play_hosts",
    "ansible_play_batch",
    "ansible_play_hosts",
    "ansible_play_hosts_all",
    "ansible_check_mode",
    "playbook_dir",
    "inventory_dir",
    "omit",
    "ansible_loop",
    "ansible_loop_var",
    "ansible_facts",
    "range",
    "lookup",
    "dict",
    "namespace",
    "loop",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
    "debug",
    "environment",
];

pub fn check(input: CheckInput) -> Result<Checked, Diagnostics> {
    let CheckInput {
        sources,
        playbook,
        inventory,
        limit,
        extra_vars,
        start_at_task,
    } = input;
    let mut diags = Diagnostics::default();
    let mut out = Checked::default();
    let templar = Templar::new();

    // A `--limit` that leaves no host would run nothing and exit 0: in CI, a deploy that
    // silently did not happen. It is invalid input, like a pattern that matches nothing.
    let limit_hosts: Option<HashSet<usize>> = match limit {
        None => None,
        Some(l) => match pattern::resolve(inventory, l) {
            Ok(h) if h.is_empty() => {
                diags.push(
                    Diagnostic::error(format!("invalid `--limit`: pattern `{l}` leaves no host"))
                        .with_help("its `!` and `&` terms remove every host it names; `roll inventory -i INV --graph` lists the groups and hosts"),
                );
                None
            }
            Ok(h) => Some(h.into_iter().collect()),
            Err(msg) => {
                diags.push(
                    Diagnostic::error(format!("invalid `--limit`: {msg}"))
                        .with_help("`roll inventory -i INV --graph` lists the groups and hosts"),
                );
                None
            }
        },
    };

    let mut known: HashSet<String> = MAGIC.iter().map(|s| s.to_string()).collect();
    known.extend(extra_vars.iter().cloned());
    for h in &inventory.hosts {
        known.extend(h.vars.keys().cloned());
    }
    let mut gathers = false;
    for play in &playbook.plays {
        known.extend(play.vars.keys().cloned());
        for (_, tasks) in play.sections() {
            for t in tasks {
                t.walk(&mut |t: &Task| {
                    if let Some(r) = &t.register {
                        known.insert(r.clone());
                    }
                    for l in &t.kw.vars {
                        known.extend(l.keys().cloned());
                    }
                    known.insert(t.loop_control.loop_var.clone());
                    if let Some(i) = &t.loop_control.index_var {
                        known.insert(i.clone());
                    }
                    if let Body::Module(m) = &t.body
                        && m.spec().has(Capability::SetsFacts)
                    {
                        known.extend(m.args.iter().map(|(k, _)| k.clone()));
                    }
                    if let Body::Module(m) = &t.body
                        && m.spec().has(Capability::GathersFacts)
                    {
                        gathers = true;
                    }
                });
            }
        }
        gathers |= play.gather_facts;
    }
    if gathers {
        known.extend(crate::modules::facts::FACT_NAMES.iter().map(|f| f.to_string()));
        // Per-interface facts (`ansible_eth0`) are named by the host: with facts gathered, any
        // `ansible_` name may be one.
        known.insert(HOST_FACT.to_string());
    }
    for n in &inventory.template_nodes {
        check_node(sources, &templar, n, &known, false, &mut diags);
    }

    let mut start_found = start_at_task.is_none();
    // Whether every play's `hosts` resolved and one of them names a host: only then is a run
    // left without hosts the limit's doing.
    let (mut hosts_resolved, mut hosts_named) = (true, false);
    for play in &playbook.plays {
        match pattern::resolve(inventory, &play.hosts) {
            Ok(hosts) => {
                hosts_named |= !hosts.is_empty();
                let hosts = match &limit_hosts {
                    Some(l) => hosts.into_iter().filter(|h| l.contains(h)).collect(),
                    None => hosts,
                };
                out.play_hosts.push(hosts);
            }
            Err(msg) => {
                diags.push(
                    Diagnostic::at(format!("invalid `hosts` in play: {msg}"), play.hosts_span)
                        .with_help("`roll inventory -i INV --graph` lists the groups and hosts"),
                );
                out.play_hosts.push(Vec::new());
                hosts_resolved = false;
            }
        }
        check_play(sources, &templar, play, playbook, &known, &mut out, &mut diags);
        if let Some(name) = start_at_task {
            for (_, tasks) in play.sections() {
                for t in tasks {
                    t.walk(&mut |t: &Task| {
                        if t.display_name() == name {
                            start_found = true;
                        }
                    });
                }
            }
        }
    }
    if let (Some(l), Some(_)) = (limit, &limit_hosts)
        && hosts_resolved
        && hosts_named
        && out.play_hosts.iter().all(Vec::is_empty)
    {
        let mut patterns: Vec<String> = Vec::new();
        for p in &playbook.plays {
            let shown = format!("`{}`", p.hosts);
            if !patterns.contains(&shown) {
                patterns.push(shown);
            }
        }
        diags.push(
            Diagnostic::error(format!("invalid `--limit`: pattern `{l}` leaves no host in any play")).with_help(
                format!(
                    "the plays run on {}; `roll play PLAYBOOK -i INV --list-hosts` lists their hosts",
                    patterns.join(", ")
                ),
            ),
        );
    }
    if !start_found {
        let mut names = Vec::new();
        for play in &playbook.plays {
            for (_, tasks) in play.sections() {
                for t in tasks {
                    t.walk(&mut |t: &Task| names.push(t.display_name()));
                }
            }
        }
        let name = start_at_task.unwrap_or("");
        diags.push(
            Diagnostic::error(format!("`--start-at-task`: no task is named `{name}`"))
                .suggest(name, names.iter().map(String::as_str))
                .or_help("`roll play PLAYBOOK --list-tasks` lists the task names"),
        );
    }
    if diags.is_empty() { Ok(out) } else { Err(diags) }
}

fn check_play(
    sources: &Sources,
    templar: &Templar,
    play: &Play,
    playbook: &Playbook,
    known: &HashSet<String>,
    out: &mut Checked,
    diags: &mut Diagnostics,
) {
    let mut handler_names: HashSet<String> = HashSet::new();
    for h in &play.handlers {
        if let Some(n) = &h.name {
            handler_names.insert(n.scalar_text().unwrap_or_default());
        }
        handler_names.extend(h.listen.iter().cloned());
    }
    for (_, tasks) in play.sections() {
        for t in tasks {
            t.walk(&mut |t: &Task| {
                for (n, span) in &t.notify {
                    if !handler_names.contains(n) {
                        diags.push(
                            Diagnostic::at(format!("`notify` names no handler: `{n}`"), *span)
                                .suggest(n, handler_names.iter().map(String::as_str))
                                .or_help("add a handler with this `name` or `listen` to the play's `handlers:`"),
                        );
                    }
                }
                check_task(sources, templar, t, playbook, known, out, diags);
            });
        }
    }
}

fn check_task(
    sources: &Sources,
    templar: &Templar,
    t: &Task,
    playbook: &Playbook,
    known: &HashSet<String>,
    out: &mut Checked,
    diags: &mut Diagnostics,
) {
    let nodes = |n: &Option<Node>| n.iter().cloned().collect::<Vec<_>>();
    for n in nodes(&t.name) {
        check_node(sources, templar, &n, known, false, diags);
    }
    for n in
        t.kw.when
            .iter()
            .chain(t.changed_when.iter().flatten())
            .chain(t.failed_when.iter().flatten())
            .chain(t.until.iter())
    {
        check_node(sources, templar, n, known, true, diags);
    }
    for n in [
        &t.retries,
        &t.delay,
        &t.kw.delegate_to,
        &t.kw.ignore_errors,
        &t.kw.run_once,
        &t.kw.no_log,
        &t.loop_control.label,
        &t.loop_control.pause,
    ]
    .into_iter()
    .flatten()
    {
        check_node(sources, templar, n, known, false, diags);
    }
    for n in &t.kw.environment {
        check_node(sources, templar, n, known, false, diags);
    }
    if let Some(l) = &t.loop_ {
        check_node(sources, templar, &l.items, known, false, diags);
    }
    let Body::Module(m) = &t.body else { return };
    if let Some(f) = &m.free_form {
        check_node(sources, templar, f, known, false, diags);
    }
    let spec = m.spec();
    for (name, node) in &m.args {
        let kind = spec.kind_of(name);
        check_node(sources, templar, node, known, kind == ParamKind::Expression, diags);
        let Some(s) = node.as_str() else { continue };
        if let Some(provides) = kind.template_names() {
            // A templated name is known only on the host; the module reports it there.
            if !is_template(s) {
                check_template_param(sources, templar, s, node.span, provides, playbook, known, out, diags);
            }
            continue;
        }
        match kind {
            ParamKind::Variable => check_expr_str(sources, templar, s, node.span, known, diags),
            ParamKind::Regex if !is_template(s) => {
                if let Err(e) = crate::modules::lines::python_regex(s, false, false) {
                    diags.push(Diagnostic::at(e, node.span).with_help(
                        "write the pattern without look-around or backreferences (roll matches with Rust's `regex` syntax, which Python's otherwise shares)",
                    ));
                }
            }
            ParamKind::ControllerFile
                if !is_template(s) && find_source(&playbook.dir, s, SourceDir::Files).is_none() =>
            {
                diags.push(not_found(
                    format!("{} source `{s}` not found", spec.name),
                    node.span,
                    playbook,
                    SourceDir::Files,
                ))
            }
            _ => {}
        }
    }
}

/// A template file a task names: found, read once, and checked once for each set of names its
/// module renders it with besides the host's variables (`ParamKind::ModuleTemplate`).
#[allow(clippy::too_many_arguments)]
fn check_template_param(
    sources: &Sources,
    templar: &Templar,
    s: &str,
    span: Span,
    provides: &'static [&'static str],
    playbook: &Playbook,
    known: &HashSet<String>,
    out: &mut Checked,
    diags: &mut Diagnostics,
) {
    let Some(path) = find_source(&playbook.dir, s, SourceDir::Templates) else {
        diags.push(not_found(
            format!("template `{s}` not found"),
            span,
            playbook,
            SourceDir::Templates,
        ));
        return;
    };
    let id = match out.template_files.get(&path) {
        Some(id) => *id,
        None => match sources.load_template(&path) {
            Ok(id) => {
                out.template_files.insert(path.clone(), id);
                id
            }
            Err(e) => {
                diags.push(Diagnostic::at(format!("cannot read template `{s}`: {e}"), span));
                return;
            }
        },
    };
    if !out.templates_checked.insert((path, provides)) {
        return;
    }
    if provides.is_empty() {
        check_template_file(sources, templar, id, known, diags);
    } else {
        let mut known = known.clone();
        known.extend(provides.iter().map(|n| n.to_string()));
        check_template_file(sources, templar, id, &known, diags);
    }
}

/// A controller file that is not where a task's file is looked for.
fn not_found(message: String, span: Span, playbook: &Playbook, dir: SourceDir) -> Diagnostic {
    let sub = dir.name();
    Diagnostic::at(message, span).with_help(format!(
        "looked in `{}`, `{}`, `{}` and the working directory",
        crate::source::display_path(&playbook.dir.join(sub)).display(),
        playbook.dir.display(),
        crate::source::display_path(&playbook.dir.join("..").join(sub)).display(),
    ))
}

fn check_template_file(
    sources: &Sources,
    templar: &Templar,
    id: FileId,
    known: &HashSet<String>,
    diags: &mut Diagnostics,
) {
    let file = sources.get(id);
    if let Err(e) = templar.check(&file.text) {
        let span = match (&e.range, e.line) {
            (Some(r), _) => Span::new(id, r.start, r.end),
            (None, Some(line)) => {
                let s = file.offset_of(line, 1);
                Span::new(id, s, file.line_end(s))
            }
            _ => Span::new(id, 0, 0),
        };
        let help = e.help.unwrap_or_else(|| {
            "fix the template syntax; Jinja blocks are `{% ... %}` and expressions `{{ ... }}`".into()
        });
        diags.push(Diagnostic::at(e.message, span).with_help(help));
        return;
    }
    for name in templar.undeclared(&file.text) {
        if !is_known(known, &name) && !guarded(&file.text, &name) {
            let at = find_in_blocks(&file.text, &name).unwrap_or(0);
            diags.push(undefined(&name, Span::new(id, at, at + name.len()), known));
        }
    }
}

fn undefined(name: &str, span: Span, known: &HashSet<String>) -> Diagnostic {
    Diagnostic::at(format!("undefined variable `{name}`"), span)
        .suggest(name, known.iter().map(String::as_str))
        .or_help("define it in the inventory, group_vars, the play's `vars`, or with `-e`")
}

/// Check every templated string in a node: syntax, and variables that nothing defines.
fn check_node(
    sources: &Sources,
    templar: &Templar,
    node: &Node,
    known: &HashSet<String>,
    expr: bool,
    diags: &mut Diagnostics,
) {
    match &node.kind {
        Kind::Str(s) if expr => check_expr_str(sources, templar, s, node.span, known, diags),
        Kind::Str(s) if is_template(s) => {
            if let Err(e) = templar.check(s) {
                let help = e.help.unwrap_or_else(|| {
                    "Jinja expressions are written `{{ name }}` and blocks `{% if x %}...{% endif %}`".into()
                });
                diags.push(Diagnostic::at(e.message, node.span).with_help(help));
                return;
            }
            for name in templar.undeclared(s) {
                if !is_known(known, &name) && !guarded(s, &name) {
                    diags.push(undefined(&name, name_span(sources, node.span, &name), known));
                }
            }
        }
        Kind::Seq(items) => items
            .iter()
            .for_each(|i| check_node(sources, templar, i, known, expr, diags)),
        Kind::Map(pairs) => pairs
            .iter()
            .for_each(|(_, v)| check_node(sources, templar, v, known, expr, diags)),
        _ => {}
    }
}

fn check_expr_str(
    sources: &Sources,
    templar: &Templar,
    s: &str,
    span: Span,
    known: &HashSet<String>,
    diags: &mut Diagnostics,
) {
    let e = s.trim();
    let e = e.strip_prefix("{{").and_then(|x| x.strip_suffix("}}")).unwrap_or(e);
    if let Err(err) = templar.check_expr(e) {
        let help = err.help.unwrap_or_else(|| {
            "conditions are Jinja expressions without `{{ }}`, e.g. `result.rc == 0 and not skip`".into()
        });
        diags.push(
            Diagnostic::at(
                format!(
                    "invalid expression: {}",
                    err.message.trim_start_matches("template syntax error: ")
                ),
                span,
            )
            .with_help(help),
        );
        return;
    }
    for name in templar.undeclared(&format!("{{{{ {e} }}}}")) {
        if !is_known(known, &name) && !guarded(e, &name) {
            diags.push(undefined(&name, name_span(sources, span, &name), known));
        }
    }
}

/// The span of `name` inside a scalar's text on its line, or the whole scalar.
fn name_span(sources: &Sources, span: Span, name: &str) -> Span {
    let file = sources.get(span.file);
    let start = span.start as usize;
    let end = file.line_end(start);
    if let Some(i) = find_in_blocks(&file.text[start..end], name) {
        return Span::new(span.file, start + i, start + i + name.len());
    }
    span
}

/// Whether every use of `name` may be undefined on purpose: `name | default(...)`,
/// `name is defined`. Such variables are not required to exist anywhere.
fn guarded(text: &str, name: &str) -> bool {
    let re = regex::Regex::new(&format!(
        r"\b{}\b((\.\w+)|(\[[^\]]*\]))*\s*(\|\s*(default|d|mandatory)\b|is\s+(not\s+)?(defined|undefined)\b)",
        regex::escape(name)
    ));
    re.is_ok_and(|re| re.is_match(text))
}

/// The first use of `word` inside `{{ }}` or `{% %}`, as a byte offset.
fn find_in_blocks(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(open) = text[from..].find(['{']).map(|i| from + i) {
        let rest = &text[open..];
        let close = if rest.starts_with("{{") {
            rest.find("}}")
        } else if rest.starts_with("{%") {
            rest.find("%}")
        } else {
            from = open + 1;
            continue;
        };
        let Some(close) = close else { break };
        if let Some(i) = find_word(&rest[..close], word) {
            return Some(open + i);
        }
        from = open + close;
    }
    find_word(text, word)
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

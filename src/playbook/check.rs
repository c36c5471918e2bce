//! Semantic checks of a parsed playbook against its inventory, run before any host is touched:
//! host patterns, handlers, template syntax, unknown filters and tests, undefined variables,
//! template and copy sources (a template a module renders with names of its own is checked with
//! those names defined).

use super::{Body, Play, Playbook, Task};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::{Inventory, pattern};
use crate::modules::{Capability, ParamKind};
use crate::source::{FileId, SourceDir, Sources, Span, find_path_in, find_source_in};
use crate::values::is_template;
use crate::vars::{Plugin, PluginUse, Templar};
use crate::yaml::{Kind, Node};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::LazyLock;

/// What checking proved and later stages reuse.
#[derive(Debug, Default)]
pub struct Checked {
    /// Hosts of each play, after `--limit` (empty when the limit leaves none).
    pub play_hosts: Vec<Vec<usize>>,
    /// Hosts of each play that `--limit` leaves out (empty without a limit).
    pub limited_out: Vec<Vec<usize>>,
    /// The hosts `--limit` keeps, with the pattern as given; `None` without a limit.
    pub limit: Option<(String, HashSet<usize>)>,
    /// Template files read while checking, by resolved path.
    pub template_files: HashMap<PathBuf, FileId>,
    /// Template files checked, with the names their module provides: each pair once.
    templates_checked: HashSet<(PathBuf, &'static [&'static str])>,
    /// Whether a missing controller source is left to its task (which then fails in Ansible's
    /// words): when only listing, or once an earlier task of the run may have written it.
    sources_deferred: bool,
}

/// What the checked playbook is for: it decides when a missing controller source is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `--syntax-check` and the `--list-*` listings: like ansible-playbook, they never look a
    /// source up (a source that exists is still read and checked).
    Listing,
    /// A run or `--check`: a missing source is refused before any host is touched, unless an
    /// earlier task may write files on the controller (`fetch`, a task delegated to localhost).
    Run,
}

pub struct CheckInput<'a> {
    pub sources: &'a Sources,
    pub playbook: &'a Playbook,
    pub inventory: &'a mut Inventory,
    pub limit: Option<&'a str>,
    pub extra_vars: &'a [String],
    pub start_at_task: Option<&'a str>,
    pub purpose: Purpose,
}

/// In the known names: facts are gathered, so an `ansible_` name may be a per-interface fact.
const HOST_FACT: &str = "ansible_*";

/// In the known names: a `set_fact` with a templated name (`"{{ item.fact }}": v`) may define
/// any name, known only on the host.
const ANY_NAME: &str = "*";

/// Whether a name is defined before the run (or may be, as a fact only the host names).
fn is_known(known: &HashSet<String>, name: &str) -> bool {
    known.contains(name) || known.contains(ANY_NAME) || (name.starts_with("ansible_") && known.contains(HOST_FACT))
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
    "ansible_diff_mode",
    "ansible_version",
    "ansible_run_tags",
    "ansible_skip_tags",
    "ansible_limit",
    "ansible_forks",
    "ansible_verbosity",
    "ansible_config_file",
    "ansible_failed_task",
    "ansible_failed_result",
    "inventory_file",
    "playbook_dir",
    "inventory_dir",
    "omit",
    "ansible_loop",
    "ansible_loop_var",
    "ansible_facts",
    "range",
    "lookup",
    "query",
    "q",
    "now",
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
    // What the `template` module and lookup give a template file (vars::template_vars).
    "ansible_managed",
    "template_host",
    "template_path",
    "template_mtime",
    "template_uid",
    "template_run_date",
    "template_destpath",
    "template_fullpath",
    "ansible_parent_role_names",
    "ansible_parent_role_paths",
];

pub fn check(input: CheckInput) -> Result<Checked, Diagnostics> {
    let CheckInput {
        sources,
        playbook,
        inventory,
        limit,
        extra_vars,
        start_at_task,
        purpose,
    } = input;
    let mut diags = Diagnostics::default();
    let mut out = Checked {
        sources_deferred: purpose == Purpose::Listing,
        ..Checked::default()
    };
    let templar = Templar::with_plugins(Default::default(), playbook.python.clone());

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
    let mut roles_seen: HashSet<*const super::RoleCtx> = HashSet::new();
    let mut gathers = false;
    for play in &playbook.plays {
        known.extend(play.vars.keys().cloned());
        known.extend(play.role_defaults.keys().cloned());
        known.extend(play.role_exports.keys().cloned());
        for (_, tasks) in play.sections() {
            for t in tasks {
                t.walk(&mut |t: &Task| {
                    if let Some(r) = &t.register {
                        known.insert(r.clone());
                    }
                    for l in t.kw.vars.iter().chain(&t.kw.params) {
                        known.extend(l.keys().cloned());
                    }
                    if let Some(r) = &t.role
                        && roles_seen.insert(std::sync::Arc::as_ptr(r))
                    {
                        for m in [&r.defaults, &r.vars, &r.params] {
                            known.extend(m.keys().cloned());
                        }
                    }
                    if let Body::Include(i) = &t.body {
                        for l in &i.apply.params {
                            known.extend(l.keys().cloned());
                        }
                    }
                    if let Body::Module(m) = &t.body {
                        known.extend(defined_by_files(sources, t, m, play));
                    }
                    known.insert(t.loop_control.loop_var.clone());
                    if let Some(i) = &t.loop_control.index_var {
                        known.insert(i.clone());
                    }
                    if let Body::Module(m) = &t.body
                        && m.spec().has(Capability::SetsFacts)
                    {
                        for (k, _) in &m.args {
                            known.insert(if is_template(k) {
                                ANY_NAME.to_string()
                            } else {
                                k.clone()
                            });
                        }
                    }
                    if let Body::Module(m) = &t.body {
                        known.extend(m.spec().facts.iter().map(|f| f.to_string()));
                        gathers |= m.spec().has(Capability::GathersFacts);
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
                let (hosts, left_out) = match &limit_hosts {
                    Some(l) => hosts.into_iter().partition(|h| l.contains(h)),
                    None => (hosts, Vec::new()),
                };
                out.play_hosts.push(hosts);
                out.limited_out.push(left_out);
            }
            Err(msg) => {
                diags.push(
                    Diagnostic::at(format!("invalid `hosts` in play: {msg}"), play.hosts_span)
                        .with_help("`roll inventory -i INV --graph` lists the groups and hosts"),
                );
                out.play_hosts.push(Vec::new());
                out.limited_out.push(Vec::new());
                hosts_resolved = false;
            }
        }
        check_play(sources, &templar, play, inventory, &known, &mut out, &mut diags);
        if let Some(name) = start_at_task {
            for (_, tasks) in play.sections() {
                for t in tasks {
                    t.walk(&mut |t: &Task| {
                        if t.is_named(name) {
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
    out.limit = limit.zip(limit_hosts).map(|(l, h)| (l.to_string(), h));
    once_per_variable(&mut diags);
    if diags.is_empty() { Ok(out) } else { Err(diags) }
}

fn check_play(
    sources: &Sources,
    templar: &Templar,
    play: &Play,
    inventory: &Inventory,
    known: &HashSet<String>,
    out: &mut Checked,
    diags: &mut Diagnostics,
) {
    for n in play.serial_template.iter().chain(&play.max_fail_template) {
        check_node(sources, templar, n, known, false, diags);
    }
    let mut handler_names: HashSet<String> = HashSet::new();
    for h in &play.handlers {
        if let Some(n) = &h.name {
            handler_names.insert(n.scalar_text().unwrap_or_default());
            if h.role.is_some() {
                handler_names.insert(h.display_name());
            }
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
                check_task(sources, templar, t, play, known, out, diags);
                // Tasks are walked in the order they run (handlers last): what this one may
                // write on the controller is there for the ones after it.
                if !out.sources_deferred {
                    let hosts = out.play_hosts.last().map(Vec::as_slice).unwrap_or_default();
                    out.sources_deferred = may_write_controller(t, play, hosts, inventory);
                }
            });
        }
    }
}

fn check_task(
    sources: &Sources,
    templar: &Templar,
    t: &Task,
    play: &Play,
    known: &HashSet<String>,
    out: &mut Checked,
    diags: &mut Diagnostics,
) {
    let nodes = |n: &Option<Node>| n.iter().cloned().collect::<Vec<_>>();
    for n in nodes(&t.name) {
        check_node(sources, templar, &n, known, false, diags);
    }
    // A list of conditions is ANDed and read in order, stopping at the first false one: a
    // variable an earlier condition requires (`x is defined`) is defined in the later ones.
    for list in [
        &t.kw.when[..],
        t.changed_when.as_deref().unwrap_or_default(),
        t.failed_when.as_deref().unwrap_or_default(),
        t.until.as_slice(),
    ] {
        let mut guarded_known: Option<HashSet<String>> = None;
        for n in list {
            check_node(
                sources,
                templar,
                n,
                guarded_known.as_ref().unwrap_or(known),
                true,
                diags,
            );
            let required = n.as_str().map(required_defined).unwrap_or_default();
            if !required.is_empty() {
                guarded_known.get_or_insert_with(|| known.clone()).extend(required);
            }
        }
    }
    for n in [
        &t.retries,
        &t.delay,
        &t.kw.delegate_to,
        &t.kw.ignore_errors,
        &t.kw.run_once,
        &t.kw.no_log,
        &t.kw.throttle,
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
    if let Body::Include(i) = &t.body {
        check_node(sources, templar, &i.target, known, false, diags);
    }
    let Body::Module(m) = &t.body else { return };
    let role_dir = t.role.as_ref().map(|r| r.dir.as_path());
    if let Some(f) = &m.free_form {
        check_node(sources, templar, f, known, false, diags);
    }
    let spec = m.spec();
    // `copy: remote_src:` (unless literally false) puts `src` on the host, not the controller.
    let remote_src = m.args.iter().any(|(n, v)| {
        n == "remote_src"
            && !matches!(&v.kind, Kind::Bool(false))
            && !v
                .as_str()
                .is_some_and(|s| ["no", "false", "False", "off", "0"].contains(&s))
    });
    if spec.has(Capability::SetsFacts) {
        // The templated names of `set_fact` are rendered on the host: check them as templates.
        let keys = m.raw_map.as_ref().and_then(|r| r.as_map()).unwrap_or_default();
        for (k, _) in keys {
            if k.as_str().is_some_and(is_template) {
                check_node(sources, templar, k, known, false, diags);
            }
        }
    }
    for (name, node) in &m.args {
        let kind = spec.kind_of(name);
        if kind == ParamKind::ControllerFile && remote_src {
            continue;
        }
        if let Some(own) = kind.per_host_names() {
            // Rendered by the module with the names it provides on top of the host's.
            let mut known = known.clone();
            known.extend(own.iter().map(|n| n.to_string()));
            check_node(sources, templar, node, &known, false, diags);
            continue;
        }
        check_node(sources, templar, node, known, kind == ParamKind::Expression, diags);
        let Some(s) = node.as_str() else { continue };
        if let Some(provides) = kind.template_names() {
            // A templated name is known only on the host; the module reports it there.
            if !is_template(s) {
                check_template_param(
                    sources,
                    templar,
                    s,
                    node.span,
                    provides,
                    (role_dir, play),
                    known,
                    out,
                    diags,
                );
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
                if !is_template(s)
                    && !out.sources_deferred
                    && find_path_in(role_dir, &play.dir, s, SourceDir::Files).is_none() =>
            {
                diags.push(not_found(
                    s,
                    format!("{} source `{s}` not found", spec.name),
                    node.span,
                    (role_dir, play),
                    SourceDir::Files,
                ))
            }
            ParamKind::ControllerFile if !is_template(s) => {
                // A vault-encrypted source the run cannot decrypt is refused before any host.
                if let Some(path) = find_source_in(role_dir, &play.dir, s, SourceDir::Files)
                    && Sources::is_vaulted_file(&path)
                    && let Err(e) = sources.read_controller_file(&path)
                {
                    diags.push(Diagnostic::at(e, node.span).with_help(
                        "give the vault password with `--vault-password-file FILE`, `--vault-id LABEL@FILE` or `--ask-vault-pass`",
                    ));
                }
            }
            _ => {}
        }
    }
}

/// The variables a module of variables files (`include_vars`) defines, as far as they can be
/// known before the run: its `name`, else every variable of its literal files (and of a
/// literal `with_first_found` list); a templated name could be any file of the role's (or the
/// playbook's) `vars/`, so all of theirs count.
fn defined_by_files(sources: &Sources, t: &Task, m: &super::ModuleCall, play: &Play) -> Vec<String> {
    let spec = m.spec();
    let mut files: Vec<&Node> = Vec::new();
    if spec.free_form_kind == ParamKind::VarsFile
        && let Some(f) = &m.free_form
    {
        files.push(f);
    }
    let mut out = Vec::new();
    for (name, node) in &m.args {
        match spec.kind_of(name) {
            ParamKind::VarsFile => files.push(node),
            ParamKind::DefinesVariable => out.extend(node.scalar_text()),
            _ => {}
        }
    }
    if files.is_empty() || !out.is_empty() {
        return out;
    }
    let mut names: Vec<String> = Vec::new();
    let mut templated = false;
    for f in files {
        match f.as_str() {
            Some(s) if is_template(s) => match t.loop_.as_ref().map(|l| &l.items.kind) {
                Some(Kind::Seq(items)) => {
                    for i in items {
                        match i.as_str() {
                            Some(s) if !is_template(s) => names.push(s.to_string()),
                            _ => templated = true,
                        }
                    }
                }
                _ => templated = true,
            },
            Some(s) => names.push(s.to_string()),
            None => {}
        }
    }
    let role_dir = t.role.as_ref().map(|r| r.dir.as_path());
    for n in &names {
        if let Some(p) = crate::source::find_path_in(role_dir, &play.dir, n, SourceDir::Vars) {
            out.extend(crate::modules::include_vars::names_in(&p, sources));
        }
    }
    if templated {
        for d in [role_dir.map(|r| r.join("vars")), Some(play.dir.join("vars"))]
            .into_iter()
            .flatten()
        {
            if d.is_dir() {
                out.extend(crate::modules::include_vars::names_in(&d, sources));
            }
        }
    }
    out
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
    place: (Option<&std::path::Path>, &Play),
    known: &HashSet<String>,
    out: &mut Checked,
    diags: &mut Diagnostics,
) {
    let Some(path) = find_source_in(place.0, &place.1.dir, s, SourceDir::Templates) else {
        if out.sources_deferred {
            return;
        }
        diags.push(not_found(
            s,
            format!("template `{s}` not found"),
            span,
            place,
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

/// Whether a task may write files on the controller when it runs, so that a later task's
/// missing controller source may be there by then: a module that writes there wherever it runs
/// (`fetch`), or any module but the controller's own (`debug`, `set_fact`: they write no file)
/// on a task that runs on the controller: delegated to `localhost`, `127.0.0.1`, a host whose
/// connection is local or a templated name (known only at run time), or, undelegated, with a
/// local connection (the task's `connection: local` or a play host's `ansible_connection`).
fn may_write_controller(t: &Task, play: &Play, hosts: &[usize], inventory: &Inventory) -> bool {
    let Body::Module(m) = &t.body else { return false };
    let spec = m.spec();
    if spec.has(Capability::WritesController) {
        return true;
    }
    if spec.has(Capability::Controller) {
        return false;
    }
    let literal = |n: &Option<Node>| n.as_ref().and_then(Node::scalar_text);
    let local_vars = |v: &crate::values::VarMap| crate::connection::runs_locally(v);
    if literal(&t.kw.connection).is_some_and(|c| c == "local")
        || local_vars(&play.vars)
        || t.kw.vars.iter().any(|v| local_vars(v))
    {
        return true;
    }
    match literal(&t.kw.delegate_to) {
        Some(d) if is_template(&d) => true,
        Some(d) => {
            crate::inventory::is_localhost_name(&d)
                || inventory.host(&d).is_some_and(|h| local_vars(&inventory.hosts[h].vars))
        }
        None => hosts.iter().any(|&h| local_vars(&inventory.hosts[h].vars)),
    }
}

/// A controller file that is not where a task's file is looked for.
fn not_found(
    src: &str,
    message: String,
    span: Span,
    place: (Option<&std::path::Path>, &Play),
    dir: SourceDir,
) -> Diagnostic {
    if std::path::Path::new(src).is_absolute() {
        return Diagnostic::at(message, span).with_help(
            "an absolute path is looked for as written, on the controller; a file an earlier task writes there (`fetch`, `delegate_to: localhost`) is looked for when the task runs",
        );
    }
    let sub = dir.name();
    let pdir = &place.1.dir;
    let role = place
        .0
        .map(|r| format!("`{}`, ", crate::source::display_path(&r.join(sub)).display()))
        .unwrap_or_default();
    Diagnostic::at(message, span).with_help(format!(
        "looked in {role}`{}`, `{}`, `{}` and the working directory",
        crate::source::display_path(&pdir.join(sub)).display(),
        pdir.display(),
        crate::source::display_path(&pdir.join("..").join(sub)).display(),
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
    for u in templar.unknown_plugins(&file.text, false) {
        diags.push(unknown_plugin(templar, &u, Span::new(id, u.range.start, u.range.end)));
    }
    for name in templar.undeclared(&file.text) {
        if !is_known(known, &name) && !guarded(&file.text, &name) {
            let at = find_in_blocks(&file.text, &name).unwrap_or(0);
            diags.push(undefined(&name, Span::new(id, at, at + name.len()), known));
        }
    }
}

/// A filter or test roll's templates do not have: the run would fail on the hosts at the first
/// render, so it is refused with the rest of what roll does not support.
fn unknown_plugin(templar: &Templar, u: &PluginUse, span: Span) -> Diagnostic {
    let noun = u.kind.noun();
    let dir = match u.kind {
        Plugin::Filter => "filter_plugins",
        Plugin::Test => "test_plugins",
        Plugin::Lookup => {
            return Diagnostic::at(format!("unknown lookup plugin `{}`", u.name), span).with_help(format!(
                "roll provides the lookups {}; lookup plugins written in Python (`lookup_plugins/`, collections) are not loaded",
                crate::vars::lookups::provided()
            ));
        }
    };
    let message = format!("unknown Jinja {noun} `{}`", u.name);
    let short = ["ansible.builtin.", "ansible.legacy."]
        .iter()
        .find_map(|p| u.name.strip_prefix(p))
        .filter(|short| templar.has_plugin(u.kind, short));
    if let Some(short) = short {
        return Diagnostic::at(message, span)
            .with_help(format!("roll has this {noun} under its short name: write `{short}`"));
    }
    let mut help = format!(
        "roll's templates have Jinja's and Ansible's {noun}s, and those of the Python {noun} plugins in \
         `{dir}/` beside the playbook or in its roles, and in collections: none defines `{}`",
        u.name
    );
    // A plugin file that did not load may be the one that defines it.
    for (path, why) in templar.python_problems() {
        let _ = write!(help, "; {} could not be loaded ({why})", path.display());
    }
    Diagnostic::at(message, span).with_help(help)
}

fn undefined(name: &str, span: Span, known: &HashSet<String>) -> Diagnostic {
    Diagnostic::at(format!("undefined variable `{name}`"), span)
        .suggest(name, known.iter().map(String::as_str))
        .or_help("define it in the inventory, group_vars, the play's `vars`, or with `-e`")
}

/// The label under a `mandatory` use of a variable nothing defines.
const MANDATORY: &str = "mandatory here";

/// A variable `name | mandatory('why')` requires, that nothing defines: its message is the help.
fn required(name: &str, span: Span, why: Option<String>) -> Diagnostic {
    let d = Diagnostic::at(format!("undefined variable `{name}`"), span).with_label(MANDATORY);
    match why {
        Some(w) => d.with_help(w),
        None => d.with_help(format!(
            "it is mandatory: define it in the inventory or the play, or pass `-e {name}=...`"
        )),
    }
}

/// One diagnostic per undefined variable: its `mandatory` use when there is one (whose message
/// says what the variable is for), else the first, with how many other uses there are.
fn once_per_variable(diags: &mut Diagnostics) {
    let mut seen: Vec<(String, usize, usize)> = Vec::new();
    let mut kept = Vec::new();
    for d in std::mem::take(&mut diags.items) {
        if !d.message.starts_with("undefined variable `") {
            kept.push(d);
            continue;
        }
        match seen.iter_mut().find(|(m, _, _)| *m == d.message) {
            Some((_, first, more)) => {
                *more += 1;
                let k: &mut Diagnostic = &mut kept[*first];
                if d.label.as_deref() == Some(MANDATORY) && k.label.as_deref() != Some(MANDATORY) {
                    *k = d;
                }
            }
            None => {
                seen.push((d.message.clone(), kept.len(), 0));
                kept.push(d);
            }
        }
    }
    for (_, first, more) in seen {
        if more > 0 {
            let d = &mut kept[first];
            let also = format!(
                "(it is used {more} more time{} as well)",
                if more == 1 { "" } else { "s" }
            );
            d.help = Some(match d.help.take() {
                Some(h) => format!("{h} {also}"),
                None => also,
            });
        }
    }
    diags.items = kept;
}

/// The message of `name | mandatory('MESSAGE')` in `text`, if it has one.
fn mandatory_message(text: &str, name: &str) -> Option<String> {
    static MESSAGE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"^\s*\|\s*mandatory\s*\(\s*(?:'([^']*)'|"([^"]*)")"#).expect("a valid regex")
    });
    word_ends(text, name).find_map(|end| {
        let c = MESSAGE.captures(&text[end..])?;
        c.get(1).or(c.get(2)).map(|m| m.as_str().to_string())
    })
}

/// Whether `text` uses `name | mandatory`.
fn is_mandatory(text: &str, name: &str) -> bool {
    static MANDATORY_USE: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"^\s*\|\s*mandatory\b").expect("a valid regex"));
    word_ends(text, name).any(|end| MANDATORY_USE.is_match(&text[end..]))
}

/// Where each use of `name` as a whole word in `text` ends (`\bname\b`: a `.` before it counts
/// as a boundary). The checker asks this of every variable in every template, so the patterns
/// that follow a name are compiled once, not once per name.
fn word_ends<'t>(text: &'t str, name: &'t str) -> impl Iterator<Item = usize> + 't {
    word_uses(text, name).map(|(_, end)| end)
}

/// Each use of `word` in `text` with no letter, digit or `_` on either side, as (start, end).
fn word_uses<'t>(text: &'t str, word: &'t str) -> impl Iterator<Item = (usize, usize)> + 't {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    std::iter::from_fn(move || {
        if word.is_empty() {
            return None;
        }
        while let Some(i) = text.get(from..)?.find(word) {
            let at = from + i;
            let end = at + word.len();
            from = end;
            let before = text[..at].chars().next_back();
            let after = text[end..].chars().next();
            if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
                return Some((at, end));
            }
        }
        None
    })
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
            for u in templar.unknown_plugins(s, false) {
                diags.push(unknown_plugin(templar, &u, name_span(sources, node.span, &u.name)));
            }
            for name in templar.undeclared(s) {
                if !is_known(known, &name) && !guarded(s, &name) {
                    let span = name_span(sources, node.span, &name);
                    diags.push(if is_mandatory(s, &name) {
                        required(&name, span, mandatory_message(s, &name))
                    } else {
                        undefined(&name, span, known)
                    });
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
    for u in templar.unknown_plugins(e, true) {
        diags.push(unknown_plugin(templar, &u, name_span(sources, span, &u.name)));
    }
    for name in templar.undeclared(&format!("{{{{ {e} }}}}")) {
        if !is_known(known, &name) && !guarded(e, &name) {
            let at = name_span(sources, span, &name);
            diags.push(if is_mandatory(e, &name) {
                required(&name, at, mandatory_message(e, &name))
            } else {
                undefined(&name, at, known)
            });
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

/// The variables a condition cannot be true without: the `x is defined` (or `x is not
/// undefined`) terms it ANDs at its top level.
fn required_defined(cond: &str) -> Vec<String> {
    static DEFINED: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^\(?\s*([A-Za-z_]\w*)\s+is\s+(?:defined|not\s+undefined)\s*\)?$").expect("a valid regex")
    });
    let re = &*DEFINED;
    let cond = cond.trim();
    let cond = cond
        .strip_prefix("{{")
        .and_then(|c| c.strip_suffix("}}"))
        .unwrap_or(cond);
    // Top-level conjuncts only (no brackets, quotes or `or` to look through).
    if cond.contains([' ', '\t']) && (cond.contains(" or ") || cond.contains(['\'', '"'])) {
        return Vec::new();
    }
    cond.split(" and ")
        .filter_map(|c| re.captures(c.trim()).map(|m| m[1].to_string()))
        .collect()
}

/// Whether every use of `name` may be undefined on purpose: `name | default(...)`,
/// `name is defined`. Such variables are not required to exist anywhere (`mandatory` ones are:
/// nothing defining one is found before any host is touched).
fn guarded(text: &str, name: &str) -> bool {
    static GUARD: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^((\.\w+)|(\[[^\]]*\]))*\s*(\|\s*(default|d)\b|is\s+(not\s+)?(defined|undefined)\b)")
            .expect("a valid regex")
    });
    word_ends(text, name).any(|end| GUARD.is_match(&text[end..]))
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
    // A variable's own use: not an attribute (`x.word`).
    word_uses(text, word)
        .find(|&(at, _)| !text[..at].ends_with('.'))
        .map(|(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::required_defined;

    #[test]
    fn a_condition_requires_the_variables_it_tests_defined_at_its_top_level() {
        assert_eq!(required_defined("x is defined"), ["x"]);
        assert_eq!(
            required_defined("{{ x is defined and y is not undefined }}"),
            ["x", "y"]
        );
        assert!(required_defined("x is defined or y").is_empty());
        assert!(required_defined("x is not defined").is_empty());
        assert!(required_defined("x.y is defined").is_empty());
        assert!(required_defined("'a and b' is defined").is_empty());
    }

    #[test]
    fn a_guard_or_mandatory_counts_only_after_the_whole_name() {
        use super::{guarded, is_mandatory, mandatory_message};
        assert!(guarded("{{ port | default(80) }}", "port"));
        assert!(guarded("{{ cfg.a['b'] |d(1) }}", "cfg"));
        assert!(guarded("{% if port is not defined %}", "port"));
        assert!(guarded("{{ app.port | default(1) }}", "port"));
        assert!(!guarded("{{ ports | default(80) }}", "port"));
        assert!(!guarded("{{ port }} {{ x | default(1) }}", "port"));
        assert!(!guarded("{{ hé_port | default(1) }}", "port"));
        assert!(is_mandatory("{{ x }} {{ token | mandatory }}", "token"));
        assert!(!is_mandatory("{{ tokens | mandatory }}", "token"));
        assert_eq!(
            mandatory_message("{{ t }} {{ t | mandatory('set t') }}", "t").as_deref(),
            Some("set t")
        );
        assert_eq!(mandatory_message("{{ t | mandatory }}", "t"), None);
    }
}

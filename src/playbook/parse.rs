//! YAML nodes → plays and tasks. Every problem becomes a diagnostic with a span; parsing goes on
//! after an error so that all the problems of a file are reported together.

use super::{Body, Keywords, Loop, LoopControl, Meta, MetaAction, ModuleCall, Play, Playbook, RoleCtx, Task};
use crate::batches::SerialStep;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::modules::spec::{Capability, FreeForm, ModuleSpec};
use crate::modules::{Module, registry};
use crate::source::{FileId, Sources, Span};
use crate::values::VarMap;
use crate::yaml::{self, Kind, Node};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys that make a task an import or an include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IncludeKey {
    ImportTasks,
    IncludeTasks,
    ImportRole,
    IncludeRole,
}

impl IncludeKey {
    pub(super) fn parse(key: &str) -> Option<IncludeKey> {
        let short = key
            .strip_prefix("ansible.builtin.")
            .or_else(|| key.strip_prefix("ansible.legacy."))
            .unwrap_or(key);
        Some(match short {
            "import_tasks" => IncludeKey::ImportTasks,
            "include_tasks" => IncludeKey::IncludeTasks,
            "import_role" => IncludeKey::ImportRole,
            "include_role" => IncludeKey::IncludeRole,
            _ => return None,
        })
    }

    pub(super) fn is_role(self) -> bool {
        matches!(self, IncludeKey::ImportRole | IncludeKey::IncludeRole)
    }
}

/// The files of one role directory, parsed once per run however often the role is used.
#[derive(Debug, Default)]
pub(super) struct RoleFiles {
    pub meta: Option<Node>,
    pub argument_specs: Option<Node>,
}

const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "serial",
    "max_fail_percentage",
    "any_errors_fatal",
    "vars",
    "vars_files",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "tags",
    "gather_facts",
    "connection",
    "become",
    "become_user",
    "become_method",
    "become_exe",
    "become_flags",
    "remote_user",
    "port",
    "environment",
    "ignore_errors",
    "force_handlers",
    "check_mode",
    "diff",
    "no_log",
    "timeout",
    "order",
    "strategy",
    "roles",
    "vars_prompt",
    "collections",
    "module_defaults",
];

const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "register",
    "loop",
    "loop_control",
    "with_items",
    "with_list",
    "with_dict",
    "with_fileglob",
    "with_first_found",
    "with_sequence",
    "with_together",
    "with_subelements",
    "with_nested",
    "with_lines",
    "with_file",
    "with_template",
    "with_pipe",
    "with_env",
    "with_vars",
    "with_password",
    "until",
    "retries",
    "delay",
    "notify",
    "tags",
    "delegate_to",
    "run_once",
    "ignore_errors",
    "changed_when",
    "failed_when",
    "no_log",
    "check_mode",
    "diff",
    "timeout",
    "environment",
    "vars",
    "args",
    "action",
    "local_action",
    "become",
    "become_user",
    "become_method",
    "become_exe",
    "become_flags",
    "any_errors_fatal",
    "connection",
    "listen",
    "throttle",
    "remote_user",
    "port",
    "module_defaults",
    "import_tasks",
    "include_tasks",
    "import_role",
    "include_role",
];

const BLOCK_KEYS: &[&str] = &[
    "name",
    "block",
    "rescue",
    "always",
    "when",
    "tags",
    "vars",
    "ignore_errors",
    "no_log",
    "check_mode",
    "diff",
    "environment",
    "delegate_to",
    "run_once",
    "become",
    "become_user",
    "become_method",
    "become_exe",
    "become_flags",
    "timeout",
    "any_errors_fatal",
    "connection",
    "throttle",
    "notify",
    "remote_user",
    "port",
    "module_defaults",
];

/// What a task's action key names: a module, `meta`, or an import/include (decided here, not
/// modules).
enum Action {
    Module(&'static dyn Module),
    Meta,
    Include(IncludeKey),
}

/// Keys that Ansible has and roll does not, with what to do instead.
fn unsupported(key: &str) -> Option<&'static str> {
    Some(match key {
        "import_playbook" => "`import_playbook` is a playbook entry of its own: `- import_playbook: other.yml`",
        "async" | "poll" => "asynchronous tasks are not supported; use `timeout:`",
        _ => return None,
    })
}

/// A parameter or value Ansible's module takes and roll's does not yet ([`ModuleSpec::not_yet`]).
fn not_yet(what: &str, module: &str, span: Span, spec: &ModuleSpec) -> Diagnostic {
    Diagnostic::at(
        format!("{what} of module `{module}` is not supported by roll yet"),
        span,
    )
    .with_help(format!(
        "Ansible's `{}` takes it and roll's does not yet: leave it out, or do that step with `command`",
        spec.name
    ))
}

/// Load and parse a playbook file (and its `vars_files`).
pub fn load(sources: &Sources, path: &Path) -> Result<Playbook, Diagnostics> {
    load_with(sources, path, &VarMap::new())
}

/// [`load`], with the run's extra vars for what Ansible renders as it reads the playbook (a
/// templated role name in `roles:`).
pub fn load_with(sources: &Sources, path: &Path, extra: &VarMap) -> Result<Playbook, Diagnostics> {
    let file = sources.load(path).map_err(|e| {
        Diagnostics::from(
            Diagnostic::unreadable("playbook", path, &e)
                .or_help("give the path of a playbook file, as in `roll play playbooks/deploy.yml`"),
        )
    })?;
    let root = yaml::parse(sources, file).map_err(Diagnostics::from)?;
    parse_tree_with(sources, &root, path, extra)
}

/// Parse a playbook whose text is already in `sources` (as `file`); `path` places its
/// `vars_files` and templates. `load` reads the file first; the fuzz targets call this directly.
pub fn parse(sources: &Sources, file: FileId, path: &Path) -> Result<Playbook, Diagnostics> {
    let root = yaml::parse(sources, file).map_err(Diagnostics::from)?;
    parse_tree(sources, &root, path)
}

/// Parse a playbook given as a YAML tree (`roll run` builds one from its command line, with
/// spans into it); `path` places its files, as for [`parse`].
pub fn parse_tree(sources: &Sources, root: &Node, path: &Path) -> Result<Playbook, Diagnostics> {
    parse_tree_with(sources, root, path, &VarMap::new())
}

fn parse_tree_with(sources: &Sources, root: &Node, path: &Path, extra: &VarMap) -> Result<Playbook, Diagnostics> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut p = Parser::new(sources, dir.clone());
    p.extra = extra.clone();
    let plays = match &root.kind {
        Kind::Seq(items) => {
            let mut plays = Vec::new();
            p.entries(items, &mut plays);
            plays
        }
        Kind::Null => {
            p.diags.push(
                Diagnostic::at("the playbook is empty", root.span)
                    .with_help("a playbook is a list of plays: `- hosts: all`"),
            );
            Vec::new()
        }
        _ => {
            p.diags.push(
                Diagnostic::at(
                    format!("a playbook must be a list of plays, found {}", root.type_name()),
                    root.span,
                )
                .with_help("start each play with `- name:` or `- hosts:`"),
            );
            Vec::new()
        }
    };
    if !p.diags.is_empty() {
        return Err(p.diags);
    }
    let mut role_dirs: Vec<PathBuf> = p.roles.keys().cloned().collect();
    role_dirs.sort();
    let python = crate::vars::python::PythonPlugins::load(&super::plugins::find(sources, &dir, &role_dirs));
    Ok(Playbook {
        path: path.to_path_buf(),
        dir,
        plays,
        python: Arc::new(python),
    })
}

pub(super) struct Parser<'a> {
    pub(super) sources: &'a Sources,
    /// The directory of the playbook being read (an imported playbook's own): roles and
    /// templates are looked for from here.
    pub(super) dir: PathBuf,
    pub(super) diags: Diagnostics,
    /// The directory of the file whose tasks are being read: relative task files start here.
    pub(super) base: PathBuf,
    /// The role whose tasks are being read.
    pub(super) role: Option<Arc<RoleCtx>>,
    /// YAML files read so far, by canonical path: a role used many times is read once.
    pub(super) files: HashMap<PathBuf, Arc<Node>>,
    pub(super) roles: HashMap<PathBuf, Arc<RoleFiles>>,
    pub(super) play_roles: PlayRoles,
    /// Nesting of task files and imported playbooks, against include cycles.
    pub(super) depth: usize,
    /// The run's extra vars: with the play's vars, what a role name is rendered with.
    pub(super) extra: VarMap,
    /// The `vars` and `vars_files` of the play being read.
    pub(super) play_vars: Arc<VarMap>,
}

/// What the roles of the play being read contribute to it.
#[derive(Default)]
pub(super) struct PlayRoles {
    pub defaults: VarMap,
    pub exports: VarMap,
    pub handlers: Vec<Task>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(sources: &'a Sources, dir: PathBuf) -> Parser<'a> {
        Parser {
            sources,
            base: dir.clone(),
            dir,
            diags: Diagnostics::default(),
            role: None,
            files: HashMap::new(),
            roles: HashMap::new(),
            play_roles: PlayRoles::default(),
            depth: 0,
            extra: VarMap::new(),
            play_vars: Arc::default(),
        }
    }
}

impl Parser<'_> {
    pub(super) fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The entries of a playbook file: plays, and `import_playbook`s read in their place.
    fn entries(&mut self, items: &[Node], plays: &mut Vec<Play>) {
        for n in items {
            let import = n.as_map().and_then(|pairs| {
                pairs.iter().find(|(k, _)| {
                    matches!(
                        k.as_str(),
                        Some(
                            "import_playbook"
                                | "ansible.builtin.import_playbook"
                                | "ansible.legacy.import_playbook"
                                | "include_playbook"
                        )
                    )
                })
            });
            match import {
                Some((k, v)) => self.import_playbook(n, k, v, plays),
                None => plays.extend(self.play(n)),
            }
        }
    }

    /// `- import_playbook: other.yml` with `when`, `vars` and `tags`: the other playbook's plays,
    /// read relative to this one, each with the import's conditions, tags and vars.
    fn import_playbook(&mut self, n: &Node, k: &Node, v: &Node, plays: &mut Vec<Play>) {
        let Some(name) = self.string(v, "`import_playbook`") else {
            return;
        };
        let mut when = Vec::new();
        let mut tags = Vec::new();
        let mut vars = VarMap::new();
        for (pk, pv) in n.as_map().unwrap_or_default() {
            match pk.as_str() {
                Some(x) if x == k.as_str().unwrap_or("") => {}
                Some("name") => {}
                Some("when") => when = self.conditions(pv),
                Some("tags") => tags = self.tags(pv),
                Some("vars") => self.vars_into(pv, &mut vars),
                Some(other) => self.unknown_key(
                    pk,
                    other,
                    &["import_playbook", "name", "when", "tags", "vars"],
                    "playbook import",
                ),
                None => {}
            }
        }
        if crate::values::is_template(&name) {
            self.err(
                Diagnostic::at("`import_playbook` needs a literal file name", v.span)
                    .with_help("playbooks are imported before any variable exists"),
            );
            return;
        }
        let path = if Path::new(&name).is_absolute() {
            PathBuf::from(&name)
        } else {
            self.dir.join(&name)
        };
        if self.depth > 20 {
            self.err(Diagnostic::at("playbooks import each other without end", v.span));
            return;
        }
        let Some(root) = self.yaml_file(&path, v.span) else {
            return;
        };
        let Some(items) = root.as_seq() else {
            self.err(Diagnostic::at(
                format!("a playbook must be a list of plays, found {}", root.type_name()),
                root.span,
            ));
            return;
        };
        let saved_dir = std::mem::replace(&mut self.dir, path.parent().map(Path::to_path_buf).unwrap_or_default());
        let saved_base = std::mem::replace(&mut self.base, self.dir.clone());
        self.depth += 1;
        let mut imported = Vec::new();
        self.entries(items, &mut imported);
        self.depth -= 1;
        self.dir = saved_dir;
        self.base = saved_base;
        let vars = Arc::new(vars);
        for mut play in imported {
            if !vars.is_empty() {
                let mut pv = (*play.vars).clone();
                for (k, v) in vars.iter() {
                    pv.insert(k.clone(), v.clone());
                }
                play.vars = Arc::new(pv);
            }
            play.inherit.tags.extend(tags.iter().cloned());
            if !when.is_empty() || !tags.is_empty() {
                for list in [
                    &mut play.pre_tasks,
                    &mut play.tasks,
                    &mut play.post_tasks,
                    &mut play.handlers,
                ] {
                    for t in list.iter_mut() {
                        add_inherited(t, &when, &tags);
                    }
                }
            }
            plays.push(play);
        }
    }

    fn play(&mut self, node: &Node) -> Option<Play> {
        let Some(pairs) = node.as_map() else {
            self.err(
                Diagnostic::at(
                    format!("a play must be a mapping, found {}", node.type_name()),
                    node.span,
                )
                .with_help("a play looks like `- hosts: app` followed by `tasks:`"),
            );
            return None;
        };
        let mut play = Play {
            name: String::new(),
            span: node.span,
            hosts: String::new(),
            patterns: Vec::new(),
            hosts_span: node.span,
            serial: Vec::new(),
            serial_template: None,
            max_fail_template: None,
            order: super::HostOrder::Inventory,
            max_fail_percentage: None,
            any_errors_fatal: false,
            force_handlers: false,
            // Ansible's default; a configured `gathering` is applied once the playbook is read
            // (`Playbook::set_gathering`).
            gather_facts: crate::modules::facts::Gathering::default().gathers(None),
            gather_said: None,
            vars: Arc::default(),
            pre_tasks: Vec::new(),
            tasks: Vec::new(),
            post_tasks: Vec::new(),
            handlers: Vec::new(),
            inherit: Keywords::default(),
            role_defaults: Arc::default(),
            role_exports: Arc::default(),
            dir: self.dir.clone(),
        };
        self.play_roles = PlayRoles::default();
        self.base = self.dir.clone();
        let mut vars = VarMap::new();
        let mut have_hosts = false;
        // Keywords first, so that tasks inherit them whatever the key order in the file.
        for (k, v) in pairs {
            let Some(key) = self.key(k) else { continue };
            match key {
                "name" => play.name = self.string(v, "the play's `name`").unwrap_or_default(),
                "hosts" => {
                    have_hosts = true;
                    play.hosts_span = v.span;
                    play.patterns = match &v.kind {
                        Kind::Seq(items) => items.iter().filter_map(|i| self.string(i, "a host pattern")).collect(),
                        _ => self.string(v, "`hosts`").into_iter().collect(),
                    };
                    play.hosts = play.patterns.join(",");
                    if play.hosts.trim().is_empty() && matches!(v.kind, Kind::Str(_) | Kind::Null | Kind::Seq(_)) {
                        self.err(
                            Diagnostic::at("`hosts` is empty", v.span)
                                .with_help("name a group, a host or a pattern such as `app:!app01`"),
                        );
                    }
                }
                "serial" if v.as_str().is_some_and(crate::values::is_template) => {
                    play.serial_template = Some(v.clone())
                }
                "serial" => play.serial = self.serial(v),
                "max_fail_percentage" if v.as_str().is_some_and(crate::values::is_template) => {
                    play.max_fail_template = Some(v.clone())
                }
                "max_fail_percentage" => match v.kind {
                    Kind::Int(i) if (0..=100).contains(&i) => play.max_fail_percentage = Some(i as f64),
                    Kind::Float(f) if (0.0..=100.0).contains(&f) => play.max_fail_percentage = Some(f),
                    _ => self.err(
                        Diagnostic::at(
                            format!(
                                "`max_fail_percentage` must be a number from 0 to 100, found {}",
                                describe(v)
                            ),
                            v.span,
                        )
                        .with_help("the play stops when more than this share of a batch's hosts has failed"),
                    ),
                },
                "any_errors_fatal" => play.any_errors_fatal = self.bool(v, "any_errors_fatal").unwrap_or(false),
                "force_handlers" => play.force_handlers = self.bool(v, "force_handlers").unwrap_or(false),
                "gather_facts" => {
                    play.gather_said = self.bool(v, "gather_facts");
                    play.gather_facts = crate::modules::facts::Gathering::default().gathers(play.gather_said)
                }
                "vars" => self.vars_into(v, &mut vars),
                "vars_files" => self.vars_files(v, &mut vars),
                "vars_prompt" => self.vars_prompt(v, &mut vars),
                // roll finds its modules by short and qualified name whatever `collections` says.
                "roles" | "collections" => {}
                "module_defaults" => self.module_defaults(v, &mut play.inherit),
                "tags" => play.inherit.tags = self.tags(v),
                "order" => match v.as_str().and_then(super::HostOrder::parse) {
                    Some(o) => play.order = o,
                    None => self.err(
                        Diagnostic::at(format!("unknown `order` {}", describe(v)), v.span)
                            .suggest(v.as_str().unwrap_or(""), super::HostOrder::NAMES.iter().copied())
                            .or_help(&format!("`order` is one of {}", list(super::HostOrder::NAMES))),
                    ),
                },
                "strategy" => {
                    // The linear strategy under each of its names. `free` and `host_pinned` let
                    // each host run ahead on its own; roll's scheduler runs a task on every
                    // host of the batch before the next, so it refuses them rather than run
                    // them linearly.
                    if !matches!(
                        v.as_str(),
                        Some("linear" | "ansible.builtin.linear" | "ansible.legacy.linear")
                    ) {
                        self.err(
                            Diagnostic::at(
                                format!("the {} strategy is not supported; roll runs plays with `linear`", describe(v)),
                                v.span,
                            )
                            .with_help("remove `strategy:` (or write `strategy: linear`): roll runs each task on every host before the next"),
                        );
                    }
                }
                "pre_tasks" | "tasks" | "post_tasks" | "handlers" => {}
                other => {
                    if !self.shared_keyword(other, v, &mut play.inherit) {
                        self.unknown_key(k, other, PLAY_KEYS, "play");
                    }
                }
            }
        }
        if !have_hosts {
            self.err(
                Diagnostic::at("play has no `hosts`", node.span)
                    .with_help("add `hosts: all`, a group name, or a pattern"),
            );
        }
        play.vars = Arc::new(vars);
        self.play_vars = play.vars.clone();
        let inherit = play.inherit.clone();
        // A templated `hosts` is rendered as Ansible renders it while it reads the play: with
        // the play's vars and the extra vars (`{{ target | default('all') }}`).
        if play.patterns.iter().any(|p| crate::values::is_template(p)) {
            let patterns = std::mem::take(&mut play.patterns);
            for p in patterns {
                let rendered = match crate::values::is_template(&p) {
                    true => self.parse_time_name(&p, &inherit, play.hosts_span, "`hosts` pattern"),
                    false => Some(p),
                };
                play.patterns.extend(rendered);
            }
            play.hosts = play.patterns.join(",");
        }
        // Ansible's order: pre_tasks, then roles (each after its dependencies), then tasks.
        let mut role_tasks = Vec::new();
        for section in ["pre_tasks", "roles", "tasks", "post_tasks", "handlers"] {
            let Some(v) = node.get(section) else { continue };
            if section == "roles" {
                match &v.kind {
                    Kind::Seq(items) => {
                        for i in items {
                            role_tasks.extend(self.role_entry(i, &inherit));
                        }
                    }
                    Kind::Null => {}
                    _ => self.err(
                        Diagnostic::at(format!("`roles` must be a list, found {}", v.type_name()), v.span)
                            .with_help("write `roles: [web, db]` or one `- role: NAME` per line"),
                    ),
                }
                continue;
            }
            let tasks = self.task_list(v, &inherit, section == "handlers");
            match section {
                "pre_tasks" => play.pre_tasks = tasks,
                "tasks" => play.tasks = tasks,
                "post_tasks" => play.post_tasks = tasks,
                _ => play.handlers = tasks,
            }
        }
        if !role_tasks.is_empty() {
            role_tasks.append(&mut play.tasks);
            play.tasks = role_tasks;
        }
        let roles = std::mem::take(&mut self.play_roles);
        if !roles.handlers.is_empty() {
            let mut handlers = roles.handlers;
            handlers.append(&mut play.handlers);
            play.handlers = handlers;
        }
        play.role_defaults = Arc::new(roles.defaults);
        play.role_exports = Arc::new(roles.exports);
        if play.name.is_empty() {
            play.name = play.hosts.clone();
        }
        Some(play)
    }

    pub(super) fn key<'n>(&mut self, k: &'n Node) -> Option<&'n str> {
        match k.as_str() {
            Some(s) => Some(s),
            None => {
                self.err(Diagnostic::at(
                    format!("keys must be strings, found {}", k.type_name()),
                    k.span,
                ));
                None
            }
        }
    }

    pub(super) fn unknown_key(&mut self, k: &Node, key: &str, allowed: &[&str], what: &str) {
        let mut d = Diagnostic::at(format!("unknown key `{key}` in {what}"), k.span);
        if let Some(hint) = unsupported(key) {
            d = Diagnostic::at(format!("`{key}` is not supported"), k.span).with_help(hint);
        } else {
            d = d
                .suggest(key, allowed.iter().copied())
                .or_help(&format!("the keys of a {what} are {}", list(allowed)));
        }
        self.err(d);
    }

    /// Keywords that plays, blocks and tasks share. Returns false if `key` is not one.
    pub(super) fn shared_keyword(&mut self, key: &str, v: &Node, kw: &mut Keywords) -> bool {
        match key {
            "when" => kw.when.extend(self.conditions(v)),
            "ignore_errors" => kw.ignore_errors = Some(self.flag(v, key)),
            "no_log" => kw.no_log = Some(self.flag(v, key)),
            "check_mode" => kw.check_mode = Some(self.flag(v, key)),
            "diff" => kw.diff = Some(self.flag(v, key)),
            "run_once" => kw.run_once = Some(self.flag(v, key)),
            "any_errors_fatal" => kw.any_errors_fatal = Some(self.flag(v, key)),
            "become" => kw.r#become = Some(self.flag(v, key)),
            "become_user" => kw.become_user = Some(v.clone()),
            "become_exe" => kw.become_exe = Some(v.clone()),
            "become_flags" => kw.become_flags = Some(v.clone()),
            "become_method" => {
                if v.as_str() != Some("sudo") {
                    self.err(Diagnostic::at("only `become_method: sudo` is supported", v.span));
                }
            }
            "module_defaults" => self.module_defaults(v, kw),
            "remote_user" => kw.remote_user = Some(v.clone()),
            "port" => kw.port = Some(v.clone()),
            "environment" => {
                if !matches!(v.kind, Kind::Map(_)) && !v.as_str().is_some_and(crate::values::is_template) {
                    self.err(
                        Diagnostic::at(
                            format!("`environment` must be a mapping, found {}", v.type_name()),
                            v.span,
                        )
                        .with_help("write `environment: { NAME: value }`"),
                    );
                } else {
                    kw.environment.push(v.clone());
                }
            }
            "delegate_to" => kw.delegate_to = Some(v.clone()),
            "throttle" => {
                match &v.kind {
                    Kind::Int(i) if *i >= 0 => {}
                    Kind::Str(s) if crate::values::is_template(s) => {}
                    _ => self.err(
                        Diagnostic::at(
                            format!("`throttle` must be a whole number, found {}", describe(v)),
                            v.span,
                        )
                        .with_help("`throttle: 2` runs the task on at most two hosts at once; 0 is no limit"),
                    ),
                }
                kw.throttle = Some(v.clone());
            }
            "timeout" => {
                match &v.kind {
                    Kind::Int(i) if *i > 0 => {}
                    Kind::Str(s) if crate::values::is_template(s) => {}
                    _ => self.err(
                        Diagnostic::at(
                            format!("`timeout` must be a whole number of seconds, found {}", describe(v)),
                            v.span,
                        )
                        .with_help("write `timeout: 30`"),
                    ),
                }
                kw.timeout = Some(v.clone());
            }
            "connection" => {
                match v.as_str() {
                    Some("local" | "ssh" | "smart") => {}
                    Some(s) if crate::values::is_template(s) => {}
                    _ => self.err(
                        Diagnostic::at(format!("unknown connection {}", describe(v)), v.span)
                            .with_help("roll connects with `ssh` (the default) or `local`"),
                    ),
                }
                kw.connection = Some(v.clone());
            }
            "tags" => {
                let t = self.tags(v);
                kw.tags.extend(t);
            }
            "vars" => {
                let mut m = VarMap::new();
                self.vars_into(v, &mut m);
                kw.vars.push(Arc::new(m));
            }
            _ => return false,
        }
        true
    }

    pub(super) fn task_list(&mut self, node: &Node, inherit: &Keywords, handlers: bool) -> Vec<Task> {
        match &node.kind {
            Kind::Null => Vec::new(),
            Kind::Seq(items) => items.iter().filter_map(|t| self.task(t, inherit, handlers)).collect(),
            _ => {
                self.err(
                    Diagnostic::at(
                        format!("expected a list of tasks, found {}", node.type_name()),
                        node.span,
                    )
                    .with_help("start each task with `- name:`"),
                );
                Vec::new()
            }
        }
    }

    fn task(&mut self, node: &Node, inherit: &Keywords, handler: bool) -> Option<Task> {
        let Some(pairs) = node.as_map() else {
            self.err(
                Diagnostic::at(
                    format!("a task must be a mapping, found {}", node.type_name()),
                    node.span,
                )
                .with_help("a task looks like `- name: ...` followed by one module, e.g. `command: uptime`"),
            );
            return None;
        };
        if node.get("block").is_some() {
            return self.block(node, pairs, inherit);
        }
        let mut task = Task::new(
            None,
            node.span,
            Body::Block {
                block: vec![],
                rescue: vec![],
                always: vec![],
            },
            inherit.clone(),
        );
        task.role = self.role.clone();
        let mut module: Option<(Node, Node, Action)> = None;
        // `action:` or `local_action:`, once.
        let mut action_key: Option<&Node> = None;
        let mut local = false;
        let mut own_vars: Option<&Node> = None;
        let mut args_node: Option<&Node> = None;
        let mut loop_key: Option<&Node> = None;
        for (k, v) in pairs {
            let Some(key) = self.key(k) else { continue };
            match key {
                "name" => {
                    if self.string(v, "the task's `name`").is_some() {
                        task.name = Some(v.clone());
                    }
                }
                "register" => match v.as_str() {
                    Some(s) if crate::inventory::valid_var_name(s) => task.register = Some(s.to_string()),
                    _ => self.err(
                        Diagnostic::at(
                            format!("`register` must be a variable name, found {}", describe(v)),
                            v.span,
                        )
                        .with_help("variable names start with a letter or `_` and hold only letters, digits and `_`"),
                    ),
                },
                "loop" | "with_items" | "with_list" | "with_dict" | "with_fileglob" | "with_first_found"
                | "with_sequence" | "with_together" | "with_subelements" | "with_nested" | "with_lines"
                | "with_file" | "with_template" | "with_pipe" | "with_env" | "with_vars" | "with_password" => {
                    if let Some(prev) = loop_key {
                        self.err(
                            Diagnostic::at(
                                format!("a task has one loop; `{key}` repeats `{}`", prev.as_str().unwrap_or("")),
                                k.span,
                            )
                            .with_help("keep only one of `loop` and the `with_*` keywords"),
                        );
                        continue;
                    }
                    loop_key = Some(k);
                    // `with_<lookup>` passes its value to the lookup: `with_sequence: start=1 end=3`.
                    // `with_first_found` finds its file in the task's role first (`first_found`).
                    let lookup = key
                        .strip_prefix("with_")
                        .filter(|l| !matches!(*l, "items" | "list" | "dict" | "first_found"))
                        .map(str::to_string);
                    match &v.kind {
                        Kind::Seq(_) | Kind::Map(_) => {}
                        Kind::Str(s) if crate::values::is_template(s) => {}
                        Kind::Str(_) | Kind::Unsafe(_) if lookup.is_some() || key == "with_first_found" => {}
                        _ => {
                            self.err(
                                Diagnostic::at(
                                    format!("`{key}` must be a list or a template, found {}", describe(v)),
                                    v.span,
                                )
                                .with_help("write a YAML list, or `\"{{ my_list }}\"`"),
                            );
                            continue;
                        }
                    }
                    task.loop_ = Some(Loop {
                        items: v.clone(),
                        flatten: key == "with_items",
                        dict: key == "with_dict",
                        first_found: key == "with_first_found",
                        lookup,
                    });
                }
                "loop_control" => task.loop_control = self.loop_control(v),
                "until" => task.until = self.conditions(v).into_iter().next(),
                "retries" | "delay" => {
                    match &v.kind {
                        Kind::Int(i) if *i >= 0 => {}
                        Kind::Str(s) if crate::values::is_template(s) => {}
                        _ => self.err(
                            Diagnostic::at(format!("`{key}` must be a whole number, found {}", describe(v)), v.span)
                                .with_help(if key == "delay" {
                                    "`delay` is the number of seconds between attempts"
                                } else {
                                    "`retries` is how many times `until` is retried"
                                }),
                        ),
                    }
                    if key == "retries" {
                        task.retries = Some(v.clone())
                    } else {
                        task.delay = Some(v.clone())
                    }
                }
                "notify" => {
                    let items = match &v.kind {
                        Kind::Seq(items) => items.iter().collect::<Vec<_>>(),
                        _ => vec![v],
                    };
                    for i in items {
                        if let Some(s) = self.string(i, "a handler name in `notify`") {
                            task.notify.push((s, i.span));
                        }
                    }
                }
                "listen" => {
                    if !handler {
                        self.err(
                            Diagnostic::at("`listen` is only valid on handlers", k.span)
                                .with_help("move this task under `handlers:`"),
                        );
                    }
                    task.listen = self.string_list(v, "`listen`");
                }
                "changed_when" => task.changed_when = Some(self.conditions(v)),
                "failed_when" => task.failed_when = Some(self.conditions(v)),
                "args" => args_node = Some(v),
                "action" | "local_action" => {
                    if let Some(prev) = action_key {
                        self.err(
                            Diagnostic::at("action and local_action are mutually exclusive", k.span).with_help(
                                format!("keep only one of `{}` and `{key}`", prev.as_str().unwrap_or("")),
                            ),
                        );
                        continue;
                    }
                    action_key = Some(k);
                    local = key == "local_action";
                    let Some((name, args)) = self.action_form(key, v) else {
                        continue;
                    };
                    let Some(written) = name.as_str().map(str::to_string) else {
                        continue;
                    };
                    match Self::action(&written) {
                        Some(action) => self.one_module(&mut module, name, args, action),
                        None => self.unknown_action(&name, &written),
                    }
                }
                other => {
                    if other == "vars" {
                        own_vars = Some(v);
                    }
                    if self.shared_keyword(other, v, &mut task.kw) {
                        continue;
                    }
                    match Self::action(other) {
                        Some(action) => self.one_module(&mut module, k.clone(), v.clone(), action),
                        None => self.unknown_action(k, other),
                    }
                }
            }
        }
        if local {
            // `local_action` runs on the controller, whatever `delegate_to` says (as in Ansible).
            task.kw.delegate_to = Some(Node {
                kind: Kind::Str("localhost".into()),
                span: action_key.map_or(node.span, |k| k.span),
            });
        }
        let Some((mk, mv, action)) = module else {
            if self.diags.items.iter().any(|d| {
                d.span
                    .is_some_and(|s| s.start >= node.span.start && s.file == node.span.file)
            }) {
                return None;
            }
            self.err(
                Diagnostic::at("task has no module", node.span)
                    .with_help("add one module to the task, for example `command: uptime` or `debug: { msg: hi }`"),
            );
            return None;
        };
        let (mk, mv) = (&mk, &mv);
        task.body = match action {
            Action::Module(m) => Body::Module(self.module_call(mk, mv, m, args_node, &task.kw.module_defaults)?),
            Action::Meta => Body::Meta(self.meta(mk, mv)?),
            Action::Include(which) => {
                if task.loop_.is_some() && matches!(which, IncludeKey::ImportTasks | IncludeKey::ImportRole) {
                    self.err(
                        Diagnostic::at(format!("`{}` cannot loop", mk.as_str().unwrap_or("")), mk.span).with_help(
                            "imports are read before the play runs; use `include_tasks`/`include_role` to loop",
                        ),
                    );
                    return None;
                }
                self.include_task(which, mk, mv, &mut task, own_vars, inherit)?
            }
        };
        Some(task)
    }

    /// What a task's action key names, if roll has it.
    fn action(name: &str) -> Option<Action> {
        match registry::lookup(name) {
            Some(m) => Some(Action::Module(m)),
            None => match IncludeKey::parse(name) {
                Some(i) => Some(Action::Include(i)),
                None => Meta::is_named(name).then_some(Action::Meta),
            },
        }
    }

    /// Keep a task's action, refusing a second one.
    fn one_module(&mut self, module: &mut Option<(Node, Node, Action)>, k: Node, v: Node, action: Action) {
        if let Some((prev, _, _)) = module {
            self.err(
                Diagnostic::at(
                    format!(
                        "a task runs one module; found `{}` and `{}`",
                        prev.as_str().unwrap_or(""),
                        k.as_str().unwrap_or("")
                    ),
                    k.span,
                )
                .with_help("split this into two tasks"),
            );
            return;
        }
        *module = Some((k, v, action));
    }

    fn unknown_action(&mut self, k: &Node, name: &str) {
        if let Some(hint) = unsupported(name).or_else(|| registry::not_yet(name)) {
            self.err(Diagnostic::at(format!("`{name}` is not supported"), k.span).with_help(hint));
            return;
        }
        let names: Vec<String> = registry::all_names()
            .chain(Meta::NAMES.iter().map(|s| s.to_string()))
            .chain(TASK_KEYS.iter().map(|s| s.to_string()))
            .collect();
        let d = Diagnostic::at(format!("unknown module or task keyword `{name}`"), k.span)
            .suggest(name, names.iter().map(String::as_str))
            .or_help("see `roll play --help` for the modules roll provides");
        self.err(d);
    }

    /// `action: copy src=a dest=b` (or `local_action:`): the module's name, as a key node of
    /// its own, and its arguments; the mapping form names the module under `module:`.
    fn action_form(&mut self, key: &str, v: &Node) -> Option<(Node, Node)> {
        match &v.kind {
            Kind::Str(s) => {
                let text = s.trim_start();
                let name: String = text.chars().take_while(|c| !c.is_whitespace()).collect();
                if name.is_empty() {
                    self.err(
                        Diagnostic::at(format!("`{key}` names no module"), v.span)
                            .with_help(format!("write `{key}: MODULE ARGS`, as in `{key}: command uptime`")),
                    );
                    return None;
                }
                let rest = text[name.len()..].trim_start().to_string();
                // The name's own place: the scalar's start, when it is written plain.
                let at = v.span.start as usize + (s.len() - text.len());
                let name_span = crate::source::Span::new(v.span.file, at, at + name.len());
                Some((
                    Node {
                        kind: Kind::Str(name),
                        span: name_span,
                    },
                    Node {
                        kind: if rest.is_empty() { Kind::Null } else { Kind::Str(rest) },
                        span: v.span,
                    },
                ))
            }
            Kind::Map(pairs) => {
                let Some((mk, mv)) = pairs.iter().find(|(k, _)| k.as_str() == Some("module")) else {
                    self.err(
                        Diagnostic::at(format!("`{key}` names no module"), v.span)
                            .with_help(format!("add `module: NAME` under `{key}`")),
                    );
                    return None;
                };
                let Some(name) = mv.as_str() else {
                    self.err(Diagnostic::at(
                        format!("`module` must be a module name, found {}", describe(mv)),
                        mv.span,
                    ));
                    return None;
                };
                let args: Vec<(Node, Node)> = pairs.iter().filter(|(k, _)| k != mk).cloned().collect();
                Some((
                    Node {
                        kind: Kind::Str(name.to_string()),
                        span: mv.span,
                    },
                    Node {
                        kind: Kind::Map(args),
                        span: v.span,
                    },
                ))
            }
            _ => {
                self.err(
                    Diagnostic::at(
                        format!("`{key}` must be a string or a mapping, found {}", describe(v)),
                        v.span,
                    )
                    .with_help(format!("write `{key}: MODULE ARGS`, as in `{key}: command uptime`")),
                );
                None
            }
        }
    }

    /// `meta: ACTION`: an instruction to the scheduler, not a module.
    fn meta(&mut self, k: &Node, v: &Node) -> Option<Meta> {
        let got = v.as_str().map(str::trim).unwrap_or("");
        match MetaAction::parse(got) {
            Some(action) => Some(Meta {
                action,
                written: k.as_str().unwrap_or("meta").to_string(),
            }),
            None => {
                let names: Vec<&str> = MetaAction::ALL.iter().map(|a| a.name()).collect();
                let d = Diagnostic::at(format!("unknown meta action `{got}`"), v.span)
                    .suggest(got, names.iter().copied())
                    .or_help(&format!("meta actions are {}", list(&names)));
                self.err(d);
                None
            }
        }
    }

    fn block(&mut self, node: &Node, pairs: &[(Node, Node)], inherit: &Keywords) -> Option<Task> {
        let mut kw = inherit.clone();
        let mut name = None;
        for (k, v) in pairs {
            let Some(key) = self.key(k) else { continue };
            match key {
                "block" | "rescue" | "always" | "notify" => {}
                "name" => {
                    if self.string(v, "the block's `name`").is_some() {
                        name = Some(v.clone());
                    }
                }
                other => {
                    if !self.shared_keyword(other, v, &mut kw) {
                        self.unknown_key(k, other, BLOCK_KEYS, "block");
                    }
                }
            }
        }
        let section = |p: &mut Self, key: &str| node.get(key).map(|v| p.task_list(v, &kw, false)).unwrap_or_default();
        let block = section(self, "block");
        let rescue = section(self, "rescue");
        let always = section(self, "always");
        let mut t = Task::new(name, node.span, Body::Block { block, rescue, always }, kw);
        t.role = self.role.clone();
        // `notify` on a block: every task of the block notifies it.
        if let Some(v) = node.get("notify") {
            let items = match &v.kind {
                Kind::Seq(items) => items.iter().collect::<Vec<_>>(),
                _ => vec![v],
            };
            let names: Vec<(String, crate::source::Span)> = items
                .into_iter()
                .filter_map(|i| self.string(i, "a handler name in `notify`").map(|s| (s, i.span)))
                .collect();
            add_notify(&mut t, &names);
        }
        Some(t)
    }

    fn module_call(
        &mut self,
        k: &Node,
        v: &Node,
        module: &'static dyn Module,
        extra: Option<&Node>,
        defaults: &[Node],
    ) -> Option<ModuleCall> {
        let spec = module.spec();
        let written = k.as_str().unwrap_or(spec.name).to_string();
        let mut call = ModuleCall {
            module,
            written: written.clone(),
            name_span: k.span,
            free_form: None,
            args: Vec::new(),
            raw_map: None,
        };
        match &v.kind {
            Kind::Null => {}
            Kind::Map(pairs) => {
                for (pk, pv) in pairs {
                    let Some(name) = self.key(pk) else { continue };
                    call.args.push((name.to_string(), pv.clone()));
                }
                call.raw_map = Some(v.clone());
            }
            Kind::Str(s) => match spec.free_form {
                FreeForm::Yes => {
                    // `command: chdir=/tmp ls -l`: known `key=value` words are parameters.
                    let (params, rest) = split_kv_params(s, |k| spec.param(k).is_some());
                    for (pk, pv) in params {
                        call.args.push((
                            pk,
                            Node {
                                kind: Kind::Str(pv),
                                span: v.span,
                            },
                        ));
                    }
                    call.free_form = Some(Node {
                        kind: Kind::Str(rest),
                        span: v.span,
                    });
                }
                FreeForm::No => {
                    for (pk, pv) in parse_kv(s) {
                        call.args.push((
                            pk,
                            Node {
                                kind: yaml::plain_scalar(pv),
                                span: v.span,
                            },
                        ));
                    }
                    if call.args.is_empty() {
                        self.err(
                            Diagnostic::at(format!("`{written}` takes parameters, not a bare string"), v.span)
                                .with_help(format!("write `{written}:` followed by `key: value` lines")),
                        );
                        return None;
                    }
                }
            },
            _ => {
                self.err(
                    Diagnostic::at(
                        format!(
                            "the parameters of `{written}` must be a mapping, found {}",
                            v.type_name()
                        ),
                        v.span,
                    )
                    .with_help("write `key: value` lines under the module name"),
                );
                return None;
            }
        }
        if let Some(a) = extra {
            match a.as_map() {
                Some(pairs) => {
                    for (pk, pv) in pairs {
                        if let Some(name) = self.key(pk) {
                            call.args.push((name.to_string(), pv.clone()));
                        }
                    }
                }
                None => self.err(Diagnostic::at(
                    format!("`args` must be a mapping, found {}", a.type_name()),
                    a.span,
                )),
            }
        }
        for (name, node) in module_defaults_for(spec, defaults) {
            if !call.args.iter().any(|(n, _)| *n == name) {
                call.args.push((name, node));
            }
        }
        self.check_params(&call, v);
        Some(call)
    }

    /// `module_defaults` of a play, block or task: a mapping, or a list of mappings, from
    /// module names (short or qualified) and `group/NAME` to parameter mappings.
    fn module_defaults(&mut self, v: &Node, kw: &mut Keywords) {
        let maps: Vec<&Node> = match &v.kind {
            Kind::Map(_) => vec![v],
            Kind::Seq(items) => items.iter().collect(),
            Kind::Null => Vec::new(),
            _ => {
                return self.err(
                    Diagnostic::at(
                        format!("`module_defaults` must be a mapping, found {}", v.type_name()),
                        v.span,
                    )
                    .with_help("write `module_defaults: { ansible.builtin.command: { chdir: /srv } }`"),
                );
            }
        };
        for m in maps {
            let Some(pairs) = m.as_map() else {
                self.err(Diagnostic::at(
                    format!("`module_defaults` entries must be mappings, found {}", m.type_name()),
                    m.span,
                ));
                continue;
            };
            for (k, params) in pairs {
                let Some(name) = self.key(k) else { continue };
                if let Some(group) = name.strip_prefix("group/")
                    && crate::modules::spec::action_group(group).is_none()
                {
                    self.err(
                        Diagnostic::at(format!("unknown module_defaults group `{group}`"), k.span).with_help(format!(
                            "the groups are {}",
                            crate::modules::spec::ACTION_GROUPS
                                .iter()
                                .map(|g| format!("`group/{}`", g.0))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                    continue;
                }
                if !matches!(params.kind, Kind::Map(_) | Kind::Null) {
                    self.err(
                        Diagnostic::at(
                            format!(
                                "the defaults of `{name}` must be a mapping, found {}",
                                params.type_name()
                            ),
                            params.span,
                        )
                        .with_help("write `MODULE: { param: value }`"),
                    );
                }
            }
            kw.module_defaults.push(m.clone());
        }
    }

    /// Unknown parameters, missing required ones, literal values outside their choices.
    fn check_params(&mut self, call: &ModuleCall, v: &Node) {
        let spec = call.spec();
        if spec.has(Capability::SetsFacts) {
            for (name, node) in &call.args {
                // A templated name is rendered on the host, as Ansible's set_fact templates its
                // keys, and checked there once it is a name.
                if name != "cacheable" && !crate::values::is_template(name) && !crate::inventory::valid_var_name(name) {
                    self.err(Diagnostic::at(
                        format!("invalid variable name `{name}` in `{}`", spec.name),
                        node.span,
                    ));
                }
            }
            if call.args.is_empty() {
                self.err(
                    Diagnostic::at(format!("`{}` sets no variable", spec.name), v.span)
                        .with_help(format!("write `{}: {{ name: value }}`", spec.name)),
                );
            }
            return;
        }
        let mut seen: Vec<&str> = Vec::new();
        let sources = self.sources;
        // A parameter not written under the module (`args:`, `module_defaults`) is shown where
        // its value is.
        let place = |name: &str, node: &Node| {
            call.raw_map
                .as_ref()
                .and_then(|m| m.as_map())
                .and_then(|pairs| pairs.iter().find(|(k, _)| k.as_str() == Some(name)))
                .map(|(k, _)| k.span)
                // In a `key=value` string: at its `name=`, on its own line.
                .or_else(|| kv_key_span(sources, node.span, name))
                .unwrap_or(node.span)
        };
        // A parameter named by a rule between two of them: at its key, else the module's value.
        let key_span = |name: &str| place(name, v);
        for (name, node) in &call.args {
            let Some(param) = spec.param(name) else {
                if spec.not_yet(name) {
                    self.err(not_yet(&format!("`{name}`"), &call.written, place(name, node), spec));
                    continue;
                }
                let d = Diagnostic::at(
                    format!("unknown parameter `{name}` for module `{}`", call.written),
                    place(name, node),
                )
                .suggest(name, spec.param_names())
                .or_help(&format!(
                    "`{}` takes {}",
                    spec.name,
                    list(&spec.param_names().collect::<Vec<_>>())
                ));
                self.err(d);
                continue;
            };
            seen.push(param.name);
            if !param.choices.is_empty()
                && let Some(s) = node.scalar_text()
                && !crate::values::is_template(&s)
                && !param.choices.contains(&s.as_str())
            {
                if spec.not_yet(&format!("{}={s}", param.name)) {
                    self.err(not_yet(
                        &format!("`{}: {s}`", param.name),
                        &call.written,
                        node.span,
                        spec,
                    ));
                    continue;
                }
                let d = Diagnostic::at(
                    format!("invalid value `{s}` for `{}` of module `{}`", param.name, call.written),
                    node.span,
                )
                .suggest(&s, param.choices.iter().copied())
                .or_help(&format!("`{}` is one of {}", param.name, list(param.choices)));
                self.err(d);
            }
        }
        for param in spec.params.iter().filter(|p| p.required) {
            if !seen.contains(&param.name) {
                self.err(
                    Diagnostic::at(
                        format!(
                            "module `{}` is missing its required parameter `{}`",
                            call.written, param.name
                        ),
                        call.name_span,
                    )
                    .with_help(format!("add `{}:` to the task", param.name)),
                );
            }
        }
        if !spec.one_of.is_empty()
            && call.free_form.as_ref().is_none_or(|f| f.as_str() == Some(""))
            && !spec.one_of.iter().any(|p| seen.contains(p))
        {
            let what = if spec.free_form == FreeForm::Yes {
                format!("a command, as in `{}: uptime`, or {}", call.written, list(spec.one_of))
            } else {
                list(spec.one_of)
            };
            self.err(
                Diagnostic::at(format!("module `{}` needs {what}", call.written), call.name_span)
                    .with_help("give one of them"),
            );
        }
        // A templated value may turn out to be `omit`: such a pair is checked on the host, once
        // rendered (`default(omit)` on both is how playbooks pass optional parameters through).
        let literal = |name: &str| {
            call.args
                .iter()
                .find(|(k, _)| spec.param(k).is_some_and(|p| p.name == name))
                .is_some_and(|(_, n)| n.scalar_text().is_none_or(|s| !crate::values::is_template(&s)))
        };
        for (a, b) in spec.exclusive {
            if seen.contains(a) && seen.contains(b) && literal(a) && literal(b) {
                self.err(
                    Diagnostic::at(
                        format!("`{a}` and `{b}` cannot be used together in `{}`", call.written),
                        key_span(b),
                    )
                    .with_help(format!("remove `{a}` or `{b}`")),
                );
            }
        }
        for (a, b) in spec.required_by {
            if seen.contains(a) && !seen.contains(b) && literal(a) {
                self.err(
                    Diagnostic::at(format!("`{a}` needs `{b}` in `{}`", call.written), key_span(a))
                        .with_help(format!("add `{b}:` to the task")),
                );
            }
        }
    }

    fn loop_control(&mut self, v: &Node) -> LoopControl {
        let mut lc = LoopControl::default();
        let Some(pairs) = v.as_map() else {
            self.err(Diagnostic::at(
                format!("`loop_control` must be a mapping, found {}", v.type_name()),
                v.span,
            ));
            return lc;
        };
        for (k, val) in pairs {
            let Some(key) = self.key(k) else { continue };
            match key {
                "loop_var" => match val.as_str() {
                    Some(s) if crate::inventory::valid_var_name(s) => lc.loop_var = s.to_string(),
                    _ => self.err(Diagnostic::at("`loop_var` must be a variable name", val.span)),
                },
                "index_var" => match val.as_str() {
                    Some(s) if crate::inventory::valid_var_name(s) => lc.index_var = Some(s.to_string()),
                    _ => self.err(Diagnostic::at("`index_var` must be a variable name", val.span)),
                },
                "label" => lc.label = Some(val.clone()),
                "pause" => lc.pause = Some(val.clone()),
                "extended" => lc.extended = self.bool(val, "extended").unwrap_or(false),
                other => self.unknown_key(
                    k,
                    other,
                    &["loop_var", "index_var", "label", "pause", "extended"],
                    "loop_control",
                ),
            }
        }
        lc
    }

    fn serial(&mut self, v: &Node) -> Vec<SerialStep> {
        let items: Vec<&Node> = match &v.kind {
            Kind::Seq(items) if !items.is_empty() => items.iter().collect(),
            Kind::Seq(_) => {
                self.err(
                    Diagnostic::at("`serial` is an empty list", v.span)
                        .with_help("write `serial: [1, \"25%\", \"100%\"]`"),
                );
                return Vec::new();
            }
            _ => vec![v],
        };
        let mut out = Vec::new();
        for i in items {
            let step = match &i.kind {
                Kind::Int(n) if *n >= 1 => Some(SerialStep::Count(*n as usize)),
                Kind::Str(s) => SerialStep::parse(s),
                _ => None,
            };
            match step {
                Some(s) => out.push(s),
                None => self.err(
                    Diagnostic::at(format!("invalid `serial` value {}", describe(i)), i.span)
                        .with_help(format!("`serial` is {}", crate::batches::SERIAL_HELP)),
                ),
            }
        }
        out
    }

    pub(super) fn conditions(&mut self, v: &Node) -> Vec<Node> {
        let items: Vec<&Node> = match &v.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for i in items {
            match &i.kind {
                Kind::Str(_) | Kind::Bool(_) => out.push(i.clone()),
                _ => self.err(
                    Diagnostic::at(
                        format!(
                            "a condition must be an expression or a boolean, found {}",
                            i.type_name()
                        ),
                        i.span,
                    )
                    .with_help("write a Jinja expression without `{{ }}`, e.g. `when: result.rc == 0`"),
                ),
            }
        }
        out
    }

    fn flag(&mut self, v: &Node, key: &str) -> Node {
        match &v.kind {
            Kind::Bool(_) => {}
            Kind::Str(s) if crate::values::is_template(s) => {}
            _ => self.err(
                Diagnostic::at(format!("`{key}` must be a boolean, found {}", describe(v)), v.span)
                    .with_help(format!("write `{key}: true` or `{key}: false`")),
            ),
        }
        v.clone()
    }

    pub(super) fn bool(&mut self, v: &Node, key: &str) -> Option<bool> {
        match v.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.err(
                    Diagnostic::at(format!("`{key}` must be a boolean, found {}", describe(v)), v.span)
                        .with_help(format!("write `{key}: true` or `{key}: false`")),
                );
                None
            }
        }
    }

    pub(super) fn string(&mut self, v: &Node, what: &str) -> Option<String> {
        match &v.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => v.scalar_text(),
            _ => {
                self.err(Diagnostic::at(
                    format!("{what} must be a string, found {}", v.type_name()),
                    v.span,
                ));
                None
            }
        }
    }

    fn string_list(&mut self, v: &Node, what: &str) -> Vec<String> {
        match &v.kind {
            Kind::Seq(items) => items.iter().filter_map(|i| self.string(i, what)).collect(),
            Kind::Null => Vec::new(),
            _ => self.string(v, what).into_iter().collect(),
        }
    }

    pub(super) fn tags(&mut self, v: &Node) -> Vec<String> {
        self.string_list(v, "a tag")
            .iter()
            .flat_map(|s| {
                s.split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub(super) fn vars_into(&mut self, v: &Node, out: &mut VarMap) {
        match &v.kind {
            Kind::Null => {}
            // Older Ansible merged a list of mappings; ansible-core 2.19 refuses it, and so does roll.
            Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => self.err(
                Diagnostic::at("`vars` must be a mapping, found a list of mappings", v.span)
                    .with_help("ansible-core 2.19 no longer merges a list under `vars:`; remove the `- ` so that it is one mapping"),
            ),
            Kind::Map(pairs) => {
                for (k, val) in pairs {
                    match k.as_str() {
                        Some(name) if crate::inventory::valid_var_name(name) => {
                            out.insert(name.to_string(), val.to_value());
                        }
                        _ => self.err(
                            Diagnostic::at(
                                format!("invalid variable name `{}`", k.scalar_text().unwrap_or_default()),
                                k.span,
                            )
                            .with_help(
                                "variable names start with a letter or `_` and hold only letters, digits and `_`",
                            ),
                        ),
                    }
                }
            }
            _ => self.err(
                Diagnostic::at(format!("`vars` must be a mapping, found {}", v.type_name()), v.span)
                    .with_help("write one `name: value` per line under `vars:`"),
            ),
        }
    }

    /// `vars_files`: each entry a file, or a list of files of which the first that exists is read.
    fn vars_files(&mut self, v: &Node, out: &mut VarMap) {
        let entries: Vec<&Node> = match &v.kind {
            Kind::Seq(items) => items.iter().collect(),
            Kind::Null => Vec::new(),
            _ => vec![v],
        };
        for e in entries {
            match &e.kind {
                Kind::Seq(choices) => {
                    let names: Vec<String> = choices.iter().filter_map(|c| self.string(c, "a vars file")).collect();
                    // A templated name is known only per host; roll reads vars files once.
                    match names
                        .iter()
                        .find(|n| !crate::values::is_template(n) && self.dir.join(n).is_file())
                    {
                        Some(n) => self.vars_file(&n.clone(), out),
                        None => self.err(
                            Diagnostic::at("none of these vars files exists", e.span).with_help(format!(
                                "looked for {} in `{}`",
                                list(&names.iter().map(String::as_str).collect::<Vec<_>>()),
                                self.dir.display()
                            )),
                        ),
                    }
                }
                _ => {
                    if let Some(n) = self.string(e, "`vars_files`") {
                        self.vars_file(&n, out);
                    }
                }
            }
        }
    }

    /// `vars_prompt`: roll never reads a terminal for it; a prompt with a `default` takes it, as
    /// Ansible does without a terminal, and one without is an error naming it.
    fn vars_prompt(&mut self, v: &Node, out: &mut VarMap) {
        for p in v.as_seq().unwrap_or_default() {
            let name = p.get("name").and_then(|n| n.as_str()).map(str::to_string);
            match (name, p.get("default")) {
                (Some(n), Some(d)) => {
                    out.insert(n, d.to_value());
                }
                (Some(n), None) => self.err(
                    Diagnostic::at(
                        format!("`vars_prompt` asks for `{n}`, and roll does not prompt"),
                        p.span,
                    )
                    .with_help(format!("give it with `-e {n}=VALUE`, or add `default:` to the prompt")),
                ),
                (None, _) => self.err(Diagnostic::at("a `vars_prompt` entry needs a `name`", p.span)),
            }
        }
    }

    fn vars_file(&mut self, name: &str, out: &mut VarMap) {
        let path = self.dir.join(name);
        match crate::inventory::parse_vars_file(self.sources, &path) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    out.insert(k, v.to_value());
                }
            }
            Err(d) => self.err(d),
        }
    }
}

/// How a value reads in an error: strings quoted, others by type.
pub(crate) fn describe(v: &Node) -> String {
    match &v.kind {
        Kind::Str(s) => format!("`{s}`"),
        Kind::Int(i) => format!("`{i}`"),
        Kind::Float(f) => format!("`{f}`"),
        Kind::Bool(b) => format!("`{b}`"),
        _ => v.type_name().to_string(),
    }
}

pub(crate) fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        0 => "nothing".into(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// `key=value key2="two words"` → pairs. Words without `=` are dropped.
/// Where `name=` starts a word in a `key=value` string (`get_url: url=... sha256sum=...`), so a
/// diagnostic about that parameter points at it rather than at the start of the string.
fn kv_key_span(sources: &Sources, span: Span, name: &str) -> Option<Span> {
    let file = sources.get(span.file);
    let full = file.text.as_str();
    let start = span.start as usize;
    // A plain scalar folded over several lines has a span of its first line only: take in the
    // lines after it that are indented deeper than the line it starts on.
    let line_start = full.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let indent = indent_of(full.get(line_start..)?.lines().next().unwrap_or(""));
    let mut end = (span.end as usize).min(full.len());
    while let Some(nl) = full[end..].find('\n') {
        let next = end + nl + 1;
        let line = full[next..].lines().next().unwrap_or("");
        if line.trim().is_empty() || indent_of(line) <= indent {
            break;
        }
        end = next + line.len();
    }
    let text = full.get(start..end)?;
    let pat = format!("{name}=");
    let mut from = 0;
    while let Some(i) = text[from..].find(&pat) {
        let at = from + i;
        if at == 0 || text[..at].ends_with(char::is_whitespace) {
            let start = span.start as usize + at;
            return Some(Span::new(span.file, start, start + name.len()));
        }
        from = at + pat.len();
    }
    None
}

/// `key=value` words as ansible-core's `parse_kv` reads them: words split at whitespace outside
/// quotes and outside Jinja's `{{ }}`, `{% %}` and `{# #}` (so `name={{ x | default(omit) }}`
/// is one word), a value's quotes removed.
pub fn parse_kv(s: &str) -> Vec<(String, String)> {
    split_args(s)
        .into_iter()
        .filter_map(|w| {
            let w = decode_escapes(&w);
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), unquote(v)))
        })
        .collect()
}

/// Python's string escapes in a `key=value` word, as ansible-core's `_decode_escapes` decodes
/// them (`\"` in `msg="a \"b\""`, also `\n`, `\t`, `\xHH`, `\uHHHH`); other backslashes stay.
fn decode_escapes(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let mut chars = w.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let simple = match chars.peek() {
            Some('\\') => Some('\\'),
            Some('\'') => Some('\''),
            Some('"') => Some('"'),
            Some('a') => Some('\u{7}'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            Some('v') => Some('\u{b}'),
            _ => None,
        };
        if let Some(d) = simple {
            chars.next();
            out.push(d);
            continue;
        }
        let width = match chars.peek() {
            Some('x') => 2,
            Some('u') => 4,
            Some('U') => 8,
            _ => 0,
        };
        let hex: String = chars.clone().skip(1).take(width).collect();
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(d) if width > 0 && hex.len() == width => {
                for _ in 0..=width {
                    chars.next();
                }
                out.push(d);
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// ansible-core's `split_args`, for `key=value` lines: whitespace separates words except
/// inside quotes or a Jinja block.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                continue;
            }
            (None, '\\') => {
                cur.push(c);
                cur.extend(chars.next());
                continue;
            }
            (None, '"' | '\'') if depth == 0 => quote = Some(c),
            (None, '{') if matches!(chars.peek(), Some('{' | '%' | '#')) => {
                depth += 1;
                cur.push(c);
                cur.extend(chars.next());
                continue;
            }
            (None, '}' | '%' | '#') if depth > 0 && chars.peek() == Some(&'}') => {
                depth -= 1;
                cur.push(c);
                cur.extend(chars.next());
                continue;
            }
            (None, c) if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A value without the quotes around it (`"a b"` → `a b`), as ansible-core's `unquote`.
fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Split leading and trailing `key=value` words whose key is a parameter off a command line.
fn split_kv_params(s: &str, is_param: impl Fn(&str) -> bool) -> (Vec<(String, String)>, String) {
    let mut params = Vec::new();
    let mut rest: Vec<String> = Vec::new();
    // A Jinja expression is one word, spaces and all (`chdir={{ app_directory }}`), as in
    // ansible-core's `split_args`; other spacing stays as written.
    let mut words: Vec<String> = Vec::new();
    let open = |w: &str| w.matches("{{").count() > w.matches("}}").count();
    for word in s.split(' ') {
        match words.last_mut() {
            Some(last) if open(last) => {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    for word in words {
        if let Some((k, v)) = word.split_once('=')
            && is_param(k)
            && !v.starts_with(['"', '\''])
        {
            params.push((k.to_string(), v.to_string()));
            continue;
        }
        rest.push(word);
    }
    (params, rest.join(" ").trim().to_string())
}

/// An imported playbook's `when` and `tags`, given to every task of its plays.
fn add_inherited(t: &mut Task, when: &[Node], tags: &[String]) {
    t.kw.when.splice(0..0, when.iter().cloned());
    t.kw.tags.extend(tags.iter().cloned());
    match &mut t.body {
        Body::Block { block, rescue, always } => {
            for c in block.iter_mut().chain(rescue.iter_mut()).chain(always.iter_mut()) {
                add_inherited(c, when, tags);
            }
        }
        Body::Include(i) => {
            i.apply.tags.extend(tags.iter().cloned());
            for c in i.tasks.iter_mut().flatten() {
                add_inherited(c, &[], tags);
            }
        }
        _ => {}
    }
}

/// A block's `notify`, given to every task inside it.
fn add_notify(t: &mut Task, names: &[(String, crate::source::Span)]) {
    match &mut t.body {
        Body::Block { block, rescue, always } => {
            for c in block.iter_mut().chain(rescue.iter_mut()).chain(always.iter_mut()) {
                add_notify(c, names);
            }
        }
        Body::Include(i) => {
            for c in i.tasks.iter_mut().flatten() {
                add_notify(c, names);
            }
        }
        _ => {
            for n in names {
                if !t.notify.iter().any(|(x, _)| x == &n.0) {
                    t.notify.push(n.clone());
                }
            }
        }
    }
}

/// The parameters `module_defaults` gives a module, as ansible-core merges them: the entries of
/// every level in turn (a later level's entry for a name replaces an earlier one's whole), then
/// the groups that hold the module, then the module's own entry over them.
fn module_defaults_for(spec: &'static crate::modules::ModuleSpec, levels: &[Node]) -> Vec<(String, Node)> {
    // Entries by what they name: a module (short and qualified names are one) or a group.
    let mut merged: Vec<(Option<&'static str>, Option<&'static str>, &Node)> = Vec::new();
    for level in levels {
        for (k, params) in level.as_map().unwrap_or_default() {
            let Some(name) = k.as_str() else { continue };
            let (module, group) = match name.strip_prefix("group/") {
                Some(g) => (None, crate::modules::spec::action_group(g).map(|g| g.0)),
                None => (registry::lookup(name).map(|m| m.spec().name), None),
            };
            if module.is_none() && group.is_none() {
                continue;
            }
            merged.retain(|(m, g, _)| !(*m == module && *g == group));
            merged.push((module, group, params));
        }
    }
    let mut out: Vec<(String, Node)> = Vec::new();
    let mut take = |params: &Node| {
        for (pk, pv) in params.as_map().unwrap_or_default() {
            if let Some(n) = pk.as_str() {
                out.retain(|(o, _)| o != n);
                out.push((n.to_string(), pv.clone()));
            }
        }
    };
    for (_, g, params) in &merged {
        if g.is_some_and(|g| crate::modules::spec::in_group(spec, g)) {
            take(params);
        }
    }
    for (m, _, params) in &merged {
        if *m == Some(spec.name) {
            take(params);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_words_split_from_free_form() {
        let (p, rest) = split_kv_params("chdir=/tmp ls -l x=1", |k| k == "chdir");
        assert_eq!(p, [("chdir".to_string(), "/tmp".to_string())]);
        assert_eq!(rest, "ls -l x=1");
        let (p, rest) = split_kv_params("npm test chdir={{ app_directory }}", |k| k == "chdir");
        assert_eq!(p, [("chdir".to_string(), "{{ app_directory }}".to_string())]);
        assert_eq!(rest, "npm test");
        assert_eq!(parse_kv(r#"path=/x state=touch msg="a b""#).len(), 3);
        assert_eq!(
            parse_kv("name={{ pkgs | default(omit) }} state=present msg='a b' x={% if a %}1{% endif %}"),
            vec![
                ("name".to_string(), "{{ pkgs | default(omit) }}".to_string()),
                ("state".to_string(), "present".to_string()),
                ("msg".to_string(), "a b".to_string()),
                ("x".to_string(), "{% if a %}1{% endif %}".to_string()),
            ]
        );
        assert_eq!(
            parse_kv(r#"msg="b {{ x | default(\"undef\") }}" path=C:\d\x41 it=it\'s"#),
            vec![
                ("msg".to_string(), r#"b {{ x | default("undef") }}"#.to_string()),
                ("path".to_string(), r"C:\dA".to_string()),
                ("it".to_string(), "it's".to_string()),
            ]
        );
    }
}

//! Playbooks: the wire YAML turned into plays and tasks (keywords split from the module call),
//! with every value keeping its span for later errors.

pub mod check;
mod parse;
mod plugins;
mod roles;
mod search;

use crate::modules::{Module, ModuleSpec};
use crate::source::Span;
use crate::values::VarMap;
use crate::yaml::Node;
use std::path::PathBuf;
use std::sync::Arc;

pub use parse::{load, load_with, parse, parse_kv as parse_kv_pub, parse_tree};
pub use roles::{add_params, load_include};

#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    /// The playbook's directory: relative `src:` paths and `group_vars/` are looked up here.
    pub dir: PathBuf,
    pub plays: Vec<Play>,
    /// The filters and tests it brings in Python (beside it, in its roles, in collections).
    pub python: Arc<crate::vars::python::PythonPlugins>,
}

#[derive(Debug)]
pub struct Play {
    pub name: String,
    pub span: Span,
    pub hosts: String,
    /// The `hosts:` entries as written: one for a string (`app,db` included), one per item of a
    /// list. `--list-hosts` prints them as Ansible does (`pattern: ['app', 'db']`).
    pub patterns: Vec<String>,
    pub hosts_span: Span,
    pub serial: Vec<crate::batches::SerialStep>,
    /// `serial` or `max_fail_percentage` given as templates: rendered with the play's and the
    /// extra vars when the play starts, as Ansible does.
    pub serial_template: Option<Node>,
    pub max_fail_template: Option<Node>,
    /// `order`: how the play's hosts are ordered before they are batched.
    pub order: HostOrder,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    pub force_handlers: bool,
    /// Whether the play gathers facts first (`gather_facts`, else the `Gathering` default).
    pub gather_facts: bool,
    /// What the play's `gather_facts` says, if anything: a configured `gathering` decides the rest.
    pub gather_said: Option<bool>,
    pub vars: Arc<VarMap>,
    pub pre_tasks: Vec<Task>,
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    /// Keywords every task of the play inherits (tags, become, environment...).
    pub inherit: Keywords,
    /// The defaults of the play's public roles (`roles:`, `import_role`), merged in play order:
    /// the lowest precedence every task of the play sees.
    pub role_defaults: Arc<VarMap>,
    /// The `vars/` of the play's public roles, which Ansible exports to every task of the play
    /// (above play vars and `vars_files`).
    pub role_exports: Arc<VarMap>,
    /// The directory of the playbook file the play is in (an imported playbook's own).
    pub dir: PathBuf,
}

/// A play's `order`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostOrder {
    #[default]
    Inventory,
    ReverseInventory,
    Sorted,
    ReverseSorted,
    Shuffle,
}

impl HostOrder {
    pub const NAMES: &[&str] = &["inventory", "reverse_inventory", "sorted", "reverse_sorted", "shuffle"];

    pub fn parse(s: &str) -> Option<HostOrder> {
        Some(match s {
            "inventory" => HostOrder::Inventory,
            "reverse_inventory" => HostOrder::ReverseInventory,
            "sorted" => HostOrder::Sorted,
            "reverse_sorted" => HostOrder::ReverseSorted,
            "shuffle" => HostOrder::Shuffle,
            _ => return None,
        })
    }
}

/// The role a task came from, with its variables already merged along its dependency chain
/// (read once per role instance at load time).
#[derive(Debug, Default)]
pub struct RoleCtx {
    /// The name as Ansible shows it (`web`, `ns.coll.web`): `TASK [web : ...]`.
    pub name: String,
    /// The role's directory: `templates/` and `files/` are looked up here first.
    pub dir: PathBuf,
    /// `defaults/` of the role's dependencies, its parents, then its own.
    pub defaults: Arc<VarMap>,
    /// `vars/` of its parents and dependencies, its own, then the entry's `vars:`.
    pub vars: Arc<VarMap>,
    /// Role params (`- { role: web, port: 80 }`) of its parents, then its own.
    pub params: Arc<VarMap>,
    /// Ansible's identity of the role (path, params, own `when`/`tags`, files, vars): a role
    /// that has run on a host is skipped there when it comes again, unless `allow_duplicates`.
    pub identity: String,
    pub allow_duplicates: bool,
    /// The roles that imported or included it (name, path), the nearest first: the magic
    /// `ansible_parent_role_names` / `_paths` (a dependency has none, as in Ansible).
    pub parents: Vec<(String, String)>,
}

/// Keywords a task inherits from its play and enclosing blocks.
#[derive(Debug, Clone, Default)]
pub struct Keywords {
    pub tags: Vec<String>,
    pub when: Vec<Node>,
    pub vars: Vec<Arc<VarMap>>,
    pub ignore_errors: Option<Node>,
    pub no_log: Option<Node>,
    pub check_mode: Option<Node>,
    pub diff: Option<Node>,
    pub environment: Vec<Node>,
    pub delegate_to: Option<Node>,
    pub run_once: Option<Node>,
    pub r#become: Option<Node>,
    pub become_user: Option<Node>,
    /// `become_exe` / `become_flags`: the sudo program and its flags (Ansible's sudo become
    /// plugin), below `ansible_become_exe` / `ansible_become_flags`.
    pub become_exe: Option<Node>,
    pub become_flags: Option<Node>,
    pub timeout: Option<Node>,
    pub any_errors_fatal: Option<Node>,
    pub connection: Option<Node>,
    /// `remote_user` and `port`: the connection's user and port where the host's variables
    /// (`ansible_user`, `ansible_port`) name none, as in Ansible (variables beat keywords).
    pub remote_user: Option<Node>,
    pub port: Option<Node>,
    /// `module_defaults` mappings of the play, blocks and task, outermost first.
    pub module_defaults: Vec<Node>,
    /// Include params (`include_tasks`'s `vars:` and loop item, `include_role` params), above
    /// `set_fact`, lowest first.
    pub params: Vec<Arc<VarMap>>,
    /// `throttle`: at most this many hosts run the task at once.
    pub throttle: Option<Node>,
}

/// A dynamic `include_tasks` / `include_role`: decided on each host when the run reaches it.
#[derive(Debug, Clone)]
pub struct Include {
    pub kind: IncludeKind,
    /// The key as written (`include_tasks`, `ansible.builtin.include_role`).
    pub written: String,
    /// The file (or role) name as written; may be templated.
    pub target: Node,
    /// The tasks, read at load time when `target` is not templated.
    pub tasks: Option<Vec<Task>>,
    /// Keywords the included tasks get (`apply:`), already merged with the inherited ones.
    pub apply: Keywords,
    /// The directory a relative file name is read from.
    pub base: PathBuf,
    /// `include_role`'s `tasks_from`/`vars_from`/`defaults_from`/`handlers_from`, `public`.
    pub role: Option<RoleInclude>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKind {
    Tasks,
    Role,
}

/// What `include_role` needs to load its role at run time.
#[derive(Debug, Clone, Default)]
pub struct RoleInclude {
    pub tasks_from: Option<String>,
    pub vars_from: Option<String>,
    pub defaults_from: Option<String>,
    pub handlers_from: Option<String>,
    pub public: bool,
    pub allow_duplicates: bool,
    /// The including role's directory, for its dependencies' search path.
    pub parent_dir: Option<PathBuf>,
    /// The including role and its own parents (name, path), the nearest first.
    pub parents: Vec<(String, String)>,
    pub params: Arc<VarMap>,
}

#[derive(Debug, Clone)]
pub enum Body {
    Module(ModuleCall),
    /// `meta:`: an instruction to the scheduler, decided at parse time.
    Meta(Meta),
    Block {
        block: Vec<Task>,
        rescue: Vec<Task>,
        always: Vec<Task>,
    },
    /// `include_tasks`, `include_role`: dynamic, run on the hosts whose `when` holds.
    Include(Box<Include>),
}

/// A `meta:` task.
#[derive(Debug, Clone)]
pub struct Meta {
    pub action: MetaAction,
    /// The key as written (`meta`, `ansible.builtin.meta`).
    pub written: String,
}

impl Meta {
    /// The names `meta` is written as.
    pub const NAMES: &[&str] = &["meta", "ansible.builtin.meta", "ansible.legacy.meta"];

    pub fn is_named(key: &str) -> bool {
        Meta::NAMES.contains(&key)
    }
}

/// The `meta:` actions roll carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaAction {
    FlushHandlers,
    Noop,
    EndPlay,
    EndHost,
    ClearHostErrors,
    ResetConnection,
    EndBatch,
    EndRole,
    RefreshInventory,
    /// Ansible's marker after a role's tasks; roll deduplicates roles at load time.
    RoleComplete,
}

impl MetaAction {
    pub const ALL: &[MetaAction] = &[
        MetaAction::FlushHandlers,
        MetaAction::Noop,
        MetaAction::EndPlay,
        MetaAction::EndHost,
        MetaAction::ClearHostErrors,
        MetaAction::ResetConnection,
        MetaAction::EndBatch,
        MetaAction::EndRole,
        MetaAction::RefreshInventory,
        MetaAction::RoleComplete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MetaAction::FlushHandlers => "flush_handlers",
            MetaAction::Noop => "noop",
            MetaAction::EndPlay => "end_play",
            MetaAction::EndHost => "end_host",
            MetaAction::ClearHostErrors => "clear_host_errors",
            MetaAction::ResetConnection => "reset_connection",
            MetaAction::EndBatch => "end_batch",
            MetaAction::EndRole => "end_role",
            MetaAction::RefreshInventory => "refresh_inventory",
            MetaAction::RoleComplete => "role_complete",
        }
    }

    pub fn parse(s: &str) -> Option<MetaAction> {
        MetaAction::ALL.iter().copied().find(|a| a.name() == s)
    }
}

#[derive(Debug, Clone)]
pub struct ModuleCall {
    pub module: &'static dyn Module,
    /// The module name as written (`ansible.builtin.command`).
    pub written: String,
    pub name_span: Span,
    /// The bare string form (`command: ls -l`), if used.
    pub free_form: Option<Node>,
    /// Parameters, with `args:` merged in.
    pub args: Vec<(String, Node)>,
    /// The parameters as written, for the spans of their keys.
    pub raw_map: Option<Node>,
}

impl ModuleCall {
    pub fn spec(&self) -> &'static ModuleSpec {
        self.module.spec()
    }
}

#[derive(Debug, Clone)]
pub struct Loop {
    pub items: Node,
    /// `with_items` flattens one level of nested lists.
    pub flatten: bool,
    /// `with_dict` turns a mapping into `{key, value}` items.
    pub dict: bool,
    /// `with_first_found`: the one item is the first of the files that exists.
    pub first_found: bool,
    /// `with_<lookup>` (`with_fileglob`, `with_sequence`, ...): the items are what the lookup
    /// answers for the value, as `query(lookup, *terms)`.
    pub lookup: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoopControl {
    pub loop_var: String,
    pub index_var: Option<String>,
    pub label: Option<Node>,
    pub pause: Option<Node>,
    pub extended: bool,
}

impl Default for LoopControl {
    fn default() -> Self {
        LoopControl {
            loop_var: "item".into(),
            index_var: None,
            label: None,
            pause: None,
            extended: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: Option<Node>,
    pub span: Span,
    pub body: Body,
    /// Own keywords merged with everything inherited from blocks and the play.
    pub kw: Keywords,
    pub register: Option<String>,
    pub loop_: Option<Loop>,
    pub loop_control: LoopControl,
    pub until: Option<Node>,
    pub retries: Option<Node>,
    pub delay: Option<Node>,
    pub notify: Vec<(String, Span)>,
    pub listen: Vec<String>,
    pub changed_when: Option<Vec<Node>>,
    pub failed_when: Option<Vec<Node>>,
    /// The role this task belongs to, if any.
    pub role: Option<Arc<RoleCtx>>,
    /// This block is one use of `role` (its tasks, after its dependencies' blocks).
    pub role_instance: bool,
}

impl Task {
    /// A task with its keywords and no per-task settings yet.
    pub fn new(name: Option<Node>, span: crate::source::Span, body: Body, kw: Keywords) -> Task {
        Task {
            name,
            span,
            body,
            kw,
            register: None,
            loop_: None,
            loop_control: LoopControl::default(),
            until: None,
            retries: None,
            delay: None,
            notify: Vec::new(),
            listen: Vec::new(),
            changed_when: None,
            failed_when: None,
            role: None,
            role_instance: false,
        }
    }

    /// The task's own name, without its role: what `--start-at-task` and `notify` may also use.
    pub fn plain_name(&self) -> String {
        match (&self.name, &self.body) {
            (Some(n), _) => n.scalar_text().unwrap_or_default(),
            (None, Body::Module(m)) => m.written.clone(),
            (None, Body::Meta(m)) => m.written.clone(),
            (None, Body::Include(i)) => i.written.clone(),
            (None, Body::Block { .. }) => "block".into(),
        }
    }

    /// The name shown in `TASK [...]`: the task's name, or the module's name as Ansible shows it.
    pub fn display_name(&self) -> String {
        match &self.role {
            Some(r) => format!("{} : {}", r.name, self.plain_name()),
            None => self.plain_name(),
        }
    }

    /// The name `--list-tasks` shows, as ansible-playbook lists it: a task without a name is
    /// listed by its action alone (`include_tasks`, `debug`), also in a role, and an
    /// `include_role` by its own name without the role it sits in; every other task as its
    /// `TASK [...]` banner names it.
    pub fn list_name(&self) -> String {
        match (&self.body, &self.name) {
            (_, None) => self.plain_name(),
            (Body::Include(i), Some(_)) if matches!(i.kind, IncludeKind::Role) => self.plain_name(),
            _ => self.display_name(),
        }
    }

    /// Whether `name` (from `--start-at-task`) names this task, with or without its role.
    pub fn is_named(&self, name: &str) -> bool {
        self.plain_name() == name || (self.role.is_some() && self.display_name() == name)
    }

    /// Visit this task and the tasks of its blocks and static imports, not those of dynamic
    /// includes (which Ansible knows only when a host reaches them: `--list-tags`).
    pub fn walk_static<'a>(&'a self, f: &mut impl FnMut(&'a Task)) {
        f(self);
        if let Body::Block { block, rescue, always } = &self.body {
            for t in block.iter().chain(rescue).chain(always) {
                t.walk_static(f);
            }
        }
    }

    /// Visit this task and every task nested in its blocks and includes.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Task)) {
        f(self);
        match &self.body {
            Body::Block { block, rescue, always } => {
                for t in block.iter().chain(rescue).chain(always) {
                    t.walk(f);
                }
            }
            Body::Include(i) => {
                for t in i.tasks.iter().flatten() {
                    t.walk(f);
                }
            }
            _ => {}
        }
    }
}

impl Playbook {
    /// Decide `gather_facts` of the plays that do not say it by the configured `gathering`.
    pub fn set_gathering(&mut self, g: crate::modules::facts::Gathering) {
        for play in &mut self.plays {
            play.gather_facts = g.gathers(play.gather_said);
        }
    }
}

impl Play {
    /// Every section's tasks, in run order, followed by the handlers.
    pub fn sections(&self) -> [(&'static str, &[Task]); 4] {
        [
            ("pre_tasks", &self.pre_tasks),
            ("tasks", &self.tasks),
            ("post_tasks", &self.post_tasks),
            ("handlers", &self.handlers),
        ]
    }
}

/// Whether `--tags ONLY --skip-tags SKIP` select a task with `tags` (its own and inherited):
/// ansible-core's `Taggable.evaluate_tags`. A task without tags counts as tagged `untagged`;
/// `always` runs unless skipped by name, `never` only when asked for by name (or by a tag it
/// shares with `--tags`).
pub fn tags_select(tags: &[String], only: &[String], skip: &[String]) -> bool {
    let untagged = tags.is_empty();
    let has = |t: &str| {
        if untagged {
            t == "untagged"
        } else {
            tags.iter().any(|x| x == t)
        }
    };
    let asks = |list: &[String], t: &str| list.iter().any(|x| x == t);
    let mut run = only.is_empty()
        || has("always")
        || (asks(only, "all") && !has("never"))
        || only.iter().any(|o| has(o))
        || (asks(only, "tagged") && !untagged && !has("never"));
    if run && !skip.is_empty() {
        run = if asks(skip, "all") {
            has("always") && !asks(skip, "always")
        } else {
            !(skip.iter().any(|s| has(s)) || (asks(skip, "tagged") && !untagged))
        };
    }
    run
}

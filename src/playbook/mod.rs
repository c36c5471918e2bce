//! Playbooks: the wire YAML turned into plays and tasks (keywords split from the module call),
//! with every value keeping its span for later errors.

pub mod check;
mod parse;

use crate::modules::{Module, ModuleSpec};
use crate::source::Span;
use crate::values::VarMap;
use crate::yaml::Node;
use std::path::PathBuf;
use std::sync::Arc;

pub use parse::{load, parse, parse_kv as parse_kv_pub};

#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    /// The playbook's directory: relative `src:` paths and `group_vars/` are looked up here.
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Debug)]
pub struct Play {
    pub name: String,
    pub span: Span,
    pub hosts: String,
    pub hosts_span: Span,
    pub serial: Vec<crate::batches::SerialStep>,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    pub force_handlers: bool,
    /// Whether the play gathers facts first (`gather_facts`, else the `Gathering` default).
    pub gather_facts: bool,
    pub vars: Arc<VarMap>,
    pub pre_tasks: Vec<Task>,
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    /// Keywords every task of the play inherits (tags, become, environment...).
    pub inherit: Keywords,
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
    pub timeout: Option<Node>,
    pub any_errors_fatal: Option<Node>,
    pub connection: Option<Node>,
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
}

impl MetaAction {
    pub const ALL: &[MetaAction] = &[
        MetaAction::FlushHandlers,
        MetaAction::Noop,
        MetaAction::EndPlay,
        MetaAction::EndHost,
        MetaAction::ClearHostErrors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MetaAction::FlushHandlers => "flush_handlers",
            MetaAction::Noop => "noop",
            MetaAction::EndPlay => "end_play",
            MetaAction::EndHost => "end_host",
            MetaAction::ClearHostErrors => "clear_host_errors",
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
        }
    }

    /// The name shown in `TASK [...]`: the task's name, or the module's name as Ansible shows it.
    pub fn display_name(&self) -> String {
        match (&self.name, &self.body) {
            (Some(n), _) => n.scalar_text().unwrap_or_default(),
            (None, Body::Module(m)) => m.written.clone(),
            (None, Body::Meta(m)) => m.written.clone(),
            (None, Body::Block { .. }) => "block".into(),
        }
    }

    /// Visit this task and every task nested in its blocks.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Task)) {
        f(self);
        if let Body::Block { block, rescue, always } = &self.body {
            for t in block.iter().chain(rescue).chain(always) {
                t.walk(f);
            }
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

//! Modules: each is a type behind the [`Module`] trait that describes itself ([`ModuleSpec`])
//! and answers "what would change?" (`check` → [`Plan`]) before acting; `apply` acts on exactly
//! that answer. Dry run is `check` alone. Every module is listed once, in [`registry`].

/// `impl Apply for T` by an async `fn(T, &Ctx) -> Result<ModuleResult, Failure>` that carries
/// out the planned work.
macro_rules! apply_by {
    ($t:ty, $f:path) => {
        impl $crate::modules::Apply for $t {
            fn apply<'a>(
                self: Box<Self>,
                ctx: &'a $crate::modules::Ctx<'a>,
            ) -> $crate::modules::Step<'a, $crate::modules::ModuleResult> {
                Box::pin($f(*self, ctx))
            }
        }
    };
}

mod accounts;
mod app_claim;
mod apt_sources;
pub(crate) mod argument_spec;
mod assemble;
mod authorized_key;
mod bluegreen;
mod command;
mod control;
mod copy;
mod copy_tree;
mod cron;
pub(crate) mod deploy_lock;
pub(crate) mod docker;
pub mod facts;
mod fetch;
pub(crate) mod files;
mod find;
mod get_url;
mod getent;
mod git;
mod haproxy;
pub(crate) mod history;
pub mod include_vars;
mod ini_file;
pub(crate) mod lines;
pub mod lockstep;
mod mysql;
mod nagios;
pub(crate) mod nginx_switch;
mod npm;
mod other_managers;
mod packages;
mod ping;
mod pip;
mod probe;
pub mod progress;
mod raw;
pub mod registry;
mod selinux;
mod services;
mod setup;
pub mod spec;
pub(crate) mod stat;
mod synchronize;
mod tempfile;
mod unarchive;
mod wait_for_connection;

pub use spec::{Capability, ModuleSpec, ParamKind};

use crate::connection::{ConnError, Connection};
use crate::secrets::Secrets;
use crate::source::{FileId, SourceFile, Sources};
use crate::values::{VarMap, value_to_string};
use crate::vars::{OMIT, Templar};
use indexmap::IndexMap;
use minijinja::Value;
use minijinja::value::ValueKind;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What one run owns that its modules reach: the secrets every report masks and the deploy
/// locks it holds (released when the run ends). It lives in the run, never in a process
/// static: roll is also a library, and two runs in one process must not see each other's.
#[derive(Debug)]
pub struct RunState {
    pub secrets: Arc<Secrets>,
    pub locks: deploy_lock::Locks,
}

impl RunState {
    pub fn new(secrets: Arc<Secrets>) -> RunState {
        RunState {
            secrets,
            locks: deploy_lock::Locks::new(),
        }
    }
}

/// Everything a module may use on one host for one task.
pub struct Ctx<'a> {
    pub conn: &'a Connection,
    pub run: &'a RunState,
    pub check_mode: bool,
    pub diff: bool,
    pub become_user: Option<String>,
    pub timeout: Option<Duration>,
    pub env: Vec<(String, String)>,
    pub templar: &'a Templar,
    pub scope: &'a Value,
    pub playbook_dir: &'a Path,
    /// The directory of the task's role: its `templates/` and `files/` come first.
    pub role_dir: Option<&'a Path>,
    pub sources: &'a Sources,
    pub template_files: &'a HashMap<PathBuf, FileId>,
    /// Whether a person is at a terminal (`pause` without `seconds` waits for Enter only then).
    pub interactive: bool,
    /// The hosts of a lockstep task (`Capability::Lockstep`) step through batches together.
    pub lockstep: Option<&'a lockstep::Lockstep>,
    /// Set when the run is interrupted (SIGINT): long modules stop at a safe point.
    pub cancelled: &'a std::sync::atomic::AtomicBool,
    /// Tells the reports how a long module is getting on (the switch's batches, waits).
    pub progress: &'a (dyn Fn(progress::Progress) + Send + Sync),
    /// Where commands pass their output line by line as it arrives (`roll run`), if anywhere.
    pub lines: Option<crate::connection::LineSink>,
    /// What the run's `--limit` leaves out, for modules whose work spans hosts.
    pub limit: &'a Limit,
    /// Another inventory host's connection, as that host's own variables say (the switch, run
    /// on a proxy, retires each backend's old colour over the backend's own connection).
    pub connect: &'a (dyn Fn(&str) -> Result<Connection, String> + Send + Sync),
    /// The task's `delegate_to` host, if it has one: `conn` is that host's connection, and
    /// modules whose work spans two hosts (`synchronize`) tell it from the task's own host.
    pub delegate_to: Option<&'a str>,
}

/// What a run's `--limit` leaves out. The switch points proxies at app servers and retiring
/// stops containers the proxies use: a limit that keeps one side without the other would pass a
/// dry run and break the run (or the site), so such modules refuse it, in both.
#[derive(Debug, Clone, Default)]
pub struct Limit {
    /// The `--limit` pattern and the inventory hosts it keeps; `None` without a limit.
    pub keeps: Option<(String, std::collections::HashSet<String>)>,
    /// The hosts of the task's play that the limit leaves out.
    pub play_left_out: Vec<String>,
}

impl Limit {
    /// Those of `hosts` (inventory names) that the limit leaves out of the run, in order.
    pub fn left_out<'s>(&self, hosts: impl IntoIterator<Item = &'s str>) -> Vec<String> {
        match &self.keeps {
            None => Vec::new(),
            Some((_, keeps)) => hosts
                .into_iter()
                .filter(|h| !keeps.contains(*h))
                .map(str::to_string)
                .collect(),
        }
    }

    /// `--limit PATTERN`, for messages.
    pub fn flag(&self) -> String {
        match &self.keeps {
            Some((p, _)) => format!("`--limit {p}`"),
            None => "the run".into(),
        }
    }
}

impl Ctx<'_> {
    /// Start a wait that the reports show (`waiting for ...`) until it is dropped.
    pub fn wait(&self, kind: progress::WaitKind, what: String, limit: Option<Duration>) -> progress::Wait<'_> {
        progress::Wait::start(self.progress, kind, what, limit)
    }

    /// A controller file a task names: in its role first, then beside the playbook.
    pub fn find_source(&self, src: &str, dir: crate::source::SourceDir) -> Option<PathBuf> {
        crate::source::find_source_in(self.role_dir, self.playbook_dir, src, dir)
    }

    /// A controller source that is not there when its task runs: the checker left it to the
    /// task (listed only, templated, or an earlier task could have written it).
    pub fn missing_source(&self, src: &str, dir: crate::source::SourceDir) -> String {
        crate::source::missing_on_controller(self.role_dir, self.playbook_dir, src, dir)
    }

    /// A template file on the controller (`template: src:`, the switch's `template:`), as the
    /// checker read it; read now when its name was templated, so the checker could not.
    pub fn template_source(&self, src: &str) -> Result<Arc<SourceFile>, Failure> {
        let path = self
            .find_source(src, crate::source::SourceDir::Templates)
            .ok_or_else(|| self.missing_source(src, crate::source::SourceDir::Templates))?;
        let id = match self.template_files.get(&path) {
            Some(id) => *id,
            None => self
                .sources
                .load_template(&path)
                .map_err(|e| format!("cannot read template `{src}`: {e}"))?,
        };
        Ok(self.sources.get(id))
    }

    /// Render a template file with `scope`; an error names the file and line.
    pub fn render_template(&self, file: &SourceFile, scope: &Value) -> Result<String, String> {
        self.templar.render_string(&file.text, scope).map_err(|e| {
            let at = e.line.map(|l| format!(":{l}")).unwrap_or_default();
            let help = e.help.map(|h| format!(" ({h})")).unwrap_or_default();
            format!("{}{at}: {}{help}", file.path.display(), e.message)
        })
    }
}

/// A module's rendered arguments.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub free: Option<String>,
    pub map: IndexMap<String, Value>,
}

/// A module argument missing, or of the wrong type or value: the task fails with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("missing required parameter `{0}`")]
    Missing(String),
    #[error("`{param}` must be a string, got {kind}")]
    NotAString { param: String, kind: String },
    #[error("`{param}` must be a boolean, got `{got}`")]
    NotABool { param: String, got: String },
    #[error("`{param}` must be a number, got `{got}`")]
    NotANumber { param: String, got: String },
    #[error("`{param}` must be an octal mode such as \"0644\", got `{got}`")]
    NotAMode { param: String, got: String },
}

pub type ArgResult<T> = Result<T, ArgError>;

impl From<ArgError> for Failure {
    fn from(e: ArgError) -> Failure {
        Failure::from(e.to_string())
    }
}

/// Module helpers that report a message (`Result<_, String>`) pass argument errors on as theirs.
impl From<ArgError> for String {
    fn from(e: ArgError) -> String {
        e.to_string()
    }
}

impl Args {
    /// Build from rendered values, mapping aliases to parameter names and dropping `omit`.
    pub fn new(spec: &spec::ModuleSpec, free: Option<String>, raw: Vec<(String, Value)>) -> Args {
        let mut map = IndexMap::new();
        for (k, v) in raw {
            if v.as_str() == Some(OMIT) {
                continue;
            }
            let name = spec.param(&k).map_or(k.clone(), |p| p.name.to_string());
            map.insert(name, v);
        }
        Args {
            free: free.filter(|f| !f.is_empty()),
            map,
        }
    }

    pub fn get(&self, k: &str) -> Option<&Value> {
        self.map.get(k).filter(|v| !v.is_none())
    }

    pub fn str(&self, k: &str) -> ArgResult<Option<String>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => match v.kind() {
                ValueKind::String | ValueKind::Number | ValueKind::Bool => Ok(Some(value_to_string(v))),
                _ => Err(ArgError::NotAString {
                    param: k.to_string(),
                    kind: v.kind().to_string(),
                }),
            },
        }
    }

    /// A `type='list'` parameter as ansible-core reads it: a list's items as strings, or a
    /// string split at commas.
    pub fn list(&self, k: &str) -> Option<Vec<String>> {
        let v = self.get(k)?;
        Some(if v.kind() == ValueKind::Seq {
            v.try_iter()
                .into_iter()
                .flatten()
                .map(|x| value_to_string(&x))
                .collect()
        } else {
            value_to_string(v).split(',').map(str::to_string).collect()
        })
    }

    pub fn req_str(&self, k: &str) -> ArgResult<String> {
        self.str(k)?.ok_or_else(|| ArgError::Missing(k.to_string()))
    }

    pub fn bool(&self, k: &str, default: bool) -> ArgResult<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(v) if v.kind() == ValueKind::Bool => Ok(v.is_true()),
            Some(v) => match value_to_string(v).to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" | "1" | "y" => Ok(true),
                "no" | "false" | "off" | "0" | "n" => Ok(false),
                other => Err(ArgError::NotABool {
                    param: k.to_string(),
                    got: other.to_string(),
                }),
            },
        }
    }

    pub fn f64(&self, k: &str) -> ArgResult<Option<f64>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => value_to_string(v)
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| ArgError::NotANumber {
                    param: k.to_string(),
                    got: v.to_string(),
                }),
        }
    }

    /// A file mode: an octal string (`"0644"`, `"644"`) or a YAML number already read as octal.
    pub fn mode(&self, k: &str) -> ArgResult<Option<u32>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) if v.kind() == ValueKind::Number => {
                let not_a_mode = || ArgError::NotAMode {
                    param: k.to_string(),
                    got: v.to_string(),
                };
                let n = v.as_i64().ok_or_else(not_a_mode)?;
                u32::try_from(n)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .map(Some)
                    .ok_or_else(not_a_mode)
            }
            Some(v) => {
                let s = value_to_string(v);
                u32::from_str_radix(s.trim().trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .map(Some)
                    .ok_or_else(|| ArgError::NotAMode {
                        param: k.to_string(),
                        got: s.clone(),
                    })
            }
        }
    }
}

/// What a change does to the thing it names. The module that plans a change says which, so
/// reports and the plan tally pick symbols from it, never from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Create,
    Update,
    Replace,
    Start,
    Stop,
    Remove,
}

/// A unified diff of one file (or of one path's state).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileDiff {
    pub path: String,
    pub before: String,
    pub after: String,
    pub change: Change,
}

/// A value a planned change depends on (the live colour a switch starts from): a saved plan
/// is stale when it is no longer `before`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Guard {
    pub what: String,
    pub before: String,
    pub after: String,
}

impl FileDiff {
    /// The diff as ansible-core's file modules register it (`copy`, `template`): the texts and
    /// the path as both headers, no `before_header` for a file created.
    pub fn registered(&self) -> Value {
        let mut m = VarMap::new();
        if self.change != Change::Create {
            m.insert("before_header".into(), Value::from(self.path.as_str()));
        }
        m.insert("before".into(), Value::from(self.before.as_str()));
        m.insert("after_header".into(), Value::from(self.path.as_str()));
        m.insert("after".into(), Value::from(self.after.as_str()));
        Value::from_pairs(m)
    }

    /// Unified diff with the destination path in both headers, as `--diff` prints it.
    pub fn render(&self) -> String {
        let diff = similar::TextDiff::from_lines(&self.before, &self.after);
        let mut out = diff
            .unified_diff()
            .context_radius(3)
            .header(&format!("before: {}", self.path), &format!("after: {}", self.path))
            .to_string();
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

/// What a module reports; registered results are built from it.
#[derive(Debug, Clone, Default)]
pub struct ModuleResult {
    pub changed: bool,
    pub failed: bool,
    pub skipped: bool,
    pub msg: Option<String>,
    pub rc: Option<i64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub diffs: Vec<FileDiff>,
    /// Module-specific fields (`dest`, `path`, `cmd`, `status`, `content`...).
    pub data: VarMap,
    /// Variables to set on the host (`set_fact`).
    pub facts: VarMap,
    /// What the log shows for this result (`debug`'s value, `assert`'s message), if the module
    /// shows one.
    pub display: Option<serde_json::Value>,
    /// Check mode: the module would have run (`Capability::WouldRunInCheck`).
    pub would_run: bool,
    /// What the change depends on, for saved plans.
    pub guards: Vec<Guard>,
    /// The task refused before changing anything, because of input found invalid on the host
    /// (another app's claim to the same site or port, a `--limit` that cuts an app from its
    /// proxy). A run whose failures are all refusals and that changed nothing exits as invalid
    /// input (5), in a dry run and in a run alike.
    pub refused: bool,
    /// The task ran in diff mode: only then does `register` store the diffs (as ansible-core's
    /// modules return them only then); the reports read `diffs` either way.
    pub diff_mode: bool,
}

impl ModuleResult {
    pub fn ok() -> ModuleResult {
        ModuleResult::default()
    }

    pub fn changed() -> ModuleResult {
        ModuleResult {
            changed: true,
            ..ModuleResult::default()
        }
    }

    pub fn failed(msg: impl Into<String>) -> ModuleResult {
        ModuleResult {
            failed: true,
            msg: Some(msg.into()),
            ..ModuleResult::default()
        }
    }

    pub fn with_msg(mut self, msg: impl Into<String>) -> ModuleResult {
        self.msg = Some(msg.into());
        self
    }

    pub fn with(mut self, k: &str, v: impl Into<Value>) -> ModuleResult {
        self.data.insert(k.to_string(), v.into());
        self
    }

    /// The result as `register` stores it, shaped as ansible-core's: `skipped` only on a
    /// skipped result (which has no `failed`), and a module's diffs as `diff`, a list of
    /// `before`/`after` texts with their headers (the `before_header` left out for a file that
    /// did not exist), unless the module registers Ansible's own `diff` value itself (`file`'s
    /// states, `lineinfile`'s content and attributes).
    pub fn to_value(&self) -> VarMap {
        let mut m = VarMap::new();
        m.insert("changed".into(), Value::from(self.changed));
        if self.skipped {
            m.insert("skipped".into(), Value::from(true));
        } else {
            m.insert("failed".into(), Value::from(self.failed));
        }
        if let Some(msg) = &self.msg {
            m.insert("msg".into(), Value::from(msg.as_str()));
        }
        if let Some(rc) = self.rc {
            m.insert("rc".into(), Value::from(rc));
        }
        for (k, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if let Some(t) = text {
                m.insert(k.into(), Value::from(t.as_str()));
                let lines: Vec<Value> = t.lines().map(Value::from).collect();
                m.insert(format!("{k}_lines"), Value::from(lines));
            }
        }
        for (k, v) in &self.data {
            m.insert(k.clone(), v.clone());
        }
        if !self.facts.is_empty() {
            m.insert("ansible_facts".into(), Value::from_pairs(self.facts.clone()));
        }
        // A module that reports Ansible's own `diff` value (`git`'s `prepared`) keeps it.
        if self.diff_mode && !self.diffs.is_empty() && !m.contains_key("diff") {
            let diffs: Vec<Value> = self.diffs.iter().map(FileDiff::registered).collect();
            m.insert("diff".into(), Value::from(diffs));
        }
        m
    }
}

/// A boxed future of a module step (`check` or `apply`).
pub type Step<'a, T> = Pin<Box<dyn Future<Output = Result<T, Failure>> + Send + 'a>>;

/// A module: what it is ([`ModuleSpec`]: names, parameters, capabilities) and what it would
/// change on a host. Adding one is a file with a type implementing this, and its line in
/// [`registry::MODULES`].
pub trait Module: Send + Sync {
    fn spec(&self) -> &'static ModuleSpec;

    /// What would change, without changing anything.
    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan>;
}

impl std::fmt::Debug for dyn Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "module `{}`", self.spec().name)
    }
}

/// The exact work `apply` does, as `check` planned it.
pub trait Apply: Send {
    fn apply<'a>(self: Box<Self>, ctx: &'a Ctx<'a>) -> Step<'a, ModuleResult>;
}

/// What `check` found.
pub enum Plan {
    /// Nothing to do; this is the result.
    Unchanged(ModuleResult),
    /// A change: `preview` is reported in check mode, `action` is what `apply` does.
    Change {
        preview: ModuleResult,
        action: Box<dyn Apply>,
    },
    /// No change to the host, but work to do (wait, request, sleep). `in_check` says whether it
    /// also runs in check mode.
    Probe {
        preview: ModuleResult,
        action: Box<dyn Apply>,
        in_check: bool,
    },
}

/// A failure while checking or applying: the host was unreachable, or the task failed.
#[derive(Debug)]
pub enum Failure {
    Unreachable(String),
    Failed(Box<ModuleResult>),
}

impl Failure {
    /// A refusal (see [`ModuleResult::refused`]).
    pub fn refused(msg: impl Into<String>) -> Failure {
        let mut r = ModuleResult::failed(msg);
        r.refused = true;
        Failure::Failed(Box::new(r))
    }
}

impl From<ConnError> for Failure {
    fn from(e: ConnError) -> Failure {
        match e {
            ConnError::Unreachable(m) => Failure::Unreachable(m),
            other => Failure::Failed(Box::new(ModuleResult::failed(other.to_string()))),
        }
    }
}

impl From<&str> for Failure {
    fn from(msg: &str) -> Failure {
        Failure::from(msg.to_string())
    }
}

impl From<String> for Failure {
    fn from(msg: String) -> Failure {
        Failure::Failed(Box::new(ModuleResult::failed(msg)))
    }
}

/// Check, then (unless in check mode or nothing changes) apply exactly what was checked.
pub async fn run(module: &dyn Module, args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let in_diff_mode = |mut r: ModuleResult| {
        r.diff_mode = ctx.diff;
        r
    };
    match checked_and_applied(module, args, ctx).await {
        Ok(r) => Ok(in_diff_mode(r)),
        Err(Failure::Failed(r)) => Err(Failure::Failed(Box::new(in_diff_mode(*r)))),
        Err(e) => Err(e),
    }
}

async fn checked_and_applied(module: &dyn Module, args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    match module.check(args, ctx).await? {
        Plan::Unchanged(r) => Ok(r),
        Plan::Change { mut preview, .. } if ctx.check_mode => {
            if module.spec().has(Capability::WouldRunInCheck) {
                preview.would_run = true;
                preview.data.insert("check_mode".into(), Value::from(true));
            }
            Ok(preview)
        }
        Plan::Probe {
            preview,
            in_check: false,
            ..
        } if ctx.check_mode => Ok(preview),
        Plan::Change { action, preview } => {
            let mut r = action.apply(ctx).await?;
            if r.diffs.is_empty() {
                r.diffs = preview.diffs;
            }
            if r.guards.is_empty() {
                r.guards = preview.guards;
            }
            // What check found (names, resolved IDs) stays in the result unless apply knows better.
            for (k, v) in preview.data {
                r.data.entry(k).or_insert(v);
            }
            Ok(r)
        }
        Plan::Probe { action, .. } => action.apply(ctx).await,
    }
}

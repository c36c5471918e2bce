//! Modules: each answers "what would change?" (`check` → [`Plan`]) before acting, and `apply`
//! acts on exactly that answer. Dry run is `check` alone.

mod command;
mod control;
pub(crate) mod deploy_lock;
pub(crate) mod docker;
pub(crate) mod files;
pub(crate) mod nginx_switch;
mod probe;
pub mod spec;

use crate::connection::{ConnError, Connection};
use crate::inventory::VarMap;
use crate::source::{FileId, Sources};
use crate::vars::{OMIT, Templar, value_to_string};
use indexmap::IndexMap;
use minijinja::Value;
use minijinja::value::ValueKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything a module may use on one host for one task.
pub struct Ctx<'a> {
    pub conn: &'a Connection,
    pub check_mode: bool,
    pub diff: bool,
    pub become_user: Option<String>,
    pub timeout: Option<Duration>,
    pub env: Vec<(String, String)>,
    pub templar: &'a Templar,
    pub scope: &'a Value,
    pub playbook_dir: &'a Path,
    pub sources: &'a Sources,
    pub template_files: &'a HashMap<PathBuf, FileId>,
    /// Whether a person is at a terminal (`pause` without `seconds` waits for Enter only then).
    pub interactive: bool,
    /// The hosts of a lockstep task (`ModuleSpec::lockstep`) step through batches together.
    pub lockstep: Option<&'a crate::exec::lockstep::Lockstep>,
    /// Set when the run is interrupted (SIGINT): long modules stop at a safe point.
    pub cancelled: &'a std::sync::atomic::AtomicBool,
    /// Tells a person at a terminal how a long module is getting on (the switch's batches).
    pub progress: &'a (dyn Fn(&str) + Send + Sync),
}

/// A module's rendered arguments.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub free: Option<String>,
    pub map: IndexMap<String, Value>,
}

/// An argument of the wrong type or value, reported as the task's failure.
pub type ArgResult<T> = Result<T, String>;

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
                _ => Err(format!("`{k}` must be a string, got {}", v.kind())),
            },
        }
    }

    pub fn req_str(&self, k: &str) -> ArgResult<String> {
        self.str(k)?.ok_or_else(|| format!("missing required parameter `{k}`"))
    }

    pub fn bool(&self, k: &str, default: bool) -> ArgResult<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(v) if v.kind() == ValueKind::Bool => Ok(v.is_true()),
            Some(v) => match value_to_string(v).to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" | "1" | "y" => Ok(true),
                "no" | "false" | "off" | "0" | "n" => Ok(false),
                other => Err(format!("`{k}` must be a boolean, got `{other}`")),
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
                .map_err(|_| format!("`{k}` must be a number, got `{v}`")),
        }
    }

    /// A file mode: an octal string (`"0644"`, `"644"`) or a YAML number already read as octal.
    pub fn mode(&self, k: &str) -> ArgResult<Option<u32>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) if v.kind() == ValueKind::Number => {
                let n = v.as_i64().ok_or_else(|| format!("`{k}` must be an octal mode"))?;
                Ok(Some(n as u32))
            }
            Some(v) => {
                let s = value_to_string(v);
                u32::from_str_radix(s.trim().trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .map(Some)
                    .ok_or_else(|| format!("`{k}` must be an octal mode such as \"0644\", got `{s}`"))
            }
        }
    }
}

/// A unified diff of one file (or of one path's state).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileDiff {
    pub path: String,
    pub before: String,
    pub after: String,
}

impl FileDiff {
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

    /// The result as `register` stores it.
    pub fn to_value(&self) -> VarMap {
        let mut m = VarMap::new();
        m.insert("changed".into(), Value::from(self.changed));
        m.insert("failed".into(), Value::from(self.failed));
        m.insert("skipped".into(), Value::from(self.skipped));
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
        if !self.diffs.is_empty() {
            m.insert("diff".into(), crate::vars::from_serde(&self.diffs));
        }
        m
    }
}

/// What `check` found.
pub enum Plan {
    /// Nothing to do; this is the result.
    Unchanged(ModuleResult),
    /// A change: `preview` is reported in check mode, `action` is what `apply` does.
    Change { preview: ModuleResult, action: Action },
    /// No change to the host, but work to do (wait, request, sleep). `in_check` says whether it
    /// also runs in check mode.
    Probe {
        preview: ModuleResult,
        action: Action,
        in_check: bool,
    },
}

/// The exact work `apply` does.
pub enum Action {
    Command(command::Run),
    WriteFile(files::Write),
    File(files::FileOp),
    WaitFor(probe::WaitFor),
    Uri(probe::Uri),
    Sleep(Duration),
    Docker(docker::Action),
    NginxSwitch(Box<nginx_switch::Apply>),
    DeployLock(Box<deploy_lock::LockOp>),
}

/// A failure while checking or applying: the host was unreachable, or the task failed.
#[derive(Debug)]
pub enum Failure {
    Unreachable(String),
    Failed(Box<ModuleResult>),
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
pub async fn run(name: &str, args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let plan = check(name, args, ctx).await?;
    match plan {
        Plan::Unchanged(r) => Ok(r),
        Plan::Change { preview, .. } if ctx.check_mode => Ok(preview),
        Plan::Probe {
            preview,
            in_check: false,
            ..
        } if ctx.check_mode => Ok(preview),
        Plan::Change { action, preview } => {
            let mut r = apply(action, ctx).await?;
            if r.diffs.is_empty() {
                r.diffs = preview.diffs;
            }
            // What check found (names, resolved IDs) stays in the result unless apply knows better.
            for (k, v) in preview.data {
                r.data.entry(k).or_insert(v);
            }
            Ok(r)
        }
        Plan::Probe { action, .. } => apply(action, ctx).await,
    }
}

pub async fn check(name: &str, args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    match name {
        "command" | "shell" => command::check(name == "shell", args, ctx).await,
        "template" => files::check_template(args, ctx).await,
        "copy" => files::check_copy(args, ctx).await,
        "file" => files::check_file(args, ctx).await,
        "wait_for" => probe::check_wait_for(args),
        "uri" => probe::check_uri(args),
        "pause" => control::check_pause(args, ctx),
        "debug" => control::debug(args, ctx).map(Plan::Unchanged),
        "set_fact" => control::set_fact(args).map(Plan::Unchanged),
        "assert" => control::assert(args, ctx).map(Plan::Unchanged),
        "docker_image" => docker::image::check(args, ctx).await,
        "docker_container" => docker::container::check(args, ctx).await,
        "docker_login" => docker::login::check(args, ctx).await,
        "docker_network" => docker::network::check(args, ctx).await,
        "docker_prune_releases" => docker::prune::check(args, ctx).await,
        "docker_container_info" => docker::info::run(args, ctx).await.map(Plan::Unchanged),
        "nginx_switch" => nginx_switch::check(args, ctx).await,
        "deploy_lock" => deploy_lock::check(args, ctx),
        "fail" => Ok(Plan::Unchanged(ModuleResult::failed(
            args.str("msg")?
                .unwrap_or_else(|| "Failed as requested from task".into()),
        ))),
        other => Err(format!("module `{other}` cannot run here").into()),
    }
}

async fn apply(action: Action, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    match action {
        Action::Command(r) => command::apply(r, ctx).await,
        Action::WriteFile(w) => files::apply_write(w, ctx).await,
        Action::File(op) => files::apply_file(op, ctx).await,
        Action::WaitFor(w) => probe::apply_wait_for(w, ctx).await,
        Action::Uri(u) => probe::apply_uri(u, ctx).await,
        Action::Sleep(d) => control::apply_sleep(d, ctx).await,
        Action::Docker(a) => docker::apply(a, ctx).await,
        Action::NginxSwitch(a) => nginx_switch::apply(*a, ctx).await,
        Action::DeployLock(op) => deploy_lock::apply(*op, ctx).await,
    }
}

//! Variables and templating: the minijinja environment (strict undefined, Ansible filters),
//! variable scopes in Ansible's precedence order, and lazy rendering of templated variables.

mod crypt;
pub mod datetime;
pub mod extra_filters;
pub mod filters;
pub mod ipaddr;
pub mod lookups;
pub mod mathstuff;
pub mod more_filters;
pub mod pyjson;
pub mod python;

use crate::inventory::Inventory;
use crate::secrets::Secrets;
use crate::values::{MAX_EXPR_DEPTH, VarMap, is_template, too_deep, value_to_string};
use minijinja::value::{Enumerator, Object, ObjectRepr, ValueKind};
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Ansible's `omit` placeholder: a module argument rendered to it is dropped.
pub const OMIT: &str = "__omit_place_holder__roll__";

/// A template failure, with the line inside the template when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub help: Option<String>,
    /// 1-based line within the template source, for template files.
    pub line: Option<usize>,
    /// Byte range within the template source.
    pub range: Option<std::ops::Range<usize>>,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The most one render may do, in minijinja's fuel (instructions, items iterated, values built;
/// about 64 bytes each, so this also bounds its memory to ~640 MB). An upstream of thousands of
/// backends takes a few hundred thousand; a loop in a loop over `range(100000)` would run for
/// hours, and ends in an error instead.
pub const TEMPLATE_FUEL: u64 = 10_000_000;

/// The template engine of one run, and the run's secrets that its lookups find.
pub struct Templar {
    env: Environment<'static>,
    secrets: Arc<Secrets>,
    /// Whether the engine has a filter or test, by name: a playbook names the same few often.
    plugins: Mutex<std::collections::HashMap<(Plugin, String), bool>>,
    /// The run's vault passwords: the `file` lookup decrypts a vault-encrypted file, as Ansible's.
    vault: Arc<RwLock<crate::vault::Keyring>>,
    /// The filters and tests the playbook brings in Python.
    python: Arc<python::PythonPlugins>,
}

impl Default for Templar {
    fn default() -> Self {
        Templar::new()
    }
}

impl Templar {
    pub fn new() -> Templar {
        Templar::with_secrets(Arc::new(Secrets::new()))
    }

    /// An engine whose lookups and filters add to these secrets (the run's, which its files'
    /// vault values are already in).
    pub fn with_secrets(secrets: Arc<Secrets>) -> Templar {
        Templar::with_plugins(secrets, Arc::default())
    }

    /// [`Templar::with_secrets`], with the playbook's Python filters and tests over the built-in ones.
    pub fn with_plugins(secrets: Arc<Secrets>, python: Arc<python::PythonPlugins>) -> Templar {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Ansible keeps a file's trailing newline; jinja2 in Ansible runs with
        // trim_blocks=True, which minijinja expresses in its syntax config.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_recursion_limit(200);
        env.set_fuel(Some(TEMPLATE_FUEL));
        // Ansible templates are Jinja2 on Python objects, and playbooks call Python's methods
        // on them (`name.startswith('x')`, `s.split(',')`, `d.items()`).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        filters::register(&mut env, secrets.clone());
        let vault = Arc::new(RwLock::new(crate::vault::Keyring::default()));
        lookups::register(&mut env, secrets.clone(), vault.clone());
        more_filters::register(&mut env, secrets.clone());
        mathstuff::register(&mut env, secrets.clone());
        ipaddr::register(&mut env);
        datetime::register(&mut env);
        extra_filters::register(&mut env, secrets.clone());
        python.register(&mut env, &secrets);
        Templar {
            env,
            secrets,
            plugins: Mutex::default(),
            vault,
            python,
        }
    }

    /// Give the run's vault passwords to the lookups.
    pub fn set_vault(&self, keyring: crate::vault::Keyring) {
        *self.vault.write().unwrap_or_else(|e| e.into_inner()) = keyring;
    }

    /// The secrets of the run this engine renders for: every report masks them.
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// Check template syntax without rendering.
    pub fn check(&self, source: &str) -> Result<(), TemplateError> {
        shallow(source, false)?;
        self.env
            .template_from_str(source)
            .map(|_| ())
            .map_err(|e| convert(e, source))
    }

    /// Check a bare expression (`when:`, `changed_when:`).
    pub fn check_expr(&self, expr: &str) -> Result<(), TemplateError> {
        shallow(expr, true)?;
        self.env
            .compile_expression(expr)
            .map(|_| ())
            .map_err(|e| convert(e, expr))
    }

    /// Render a string. A string that is exactly one `{{ expression }}` keeps the expression's
    /// type (a list stays a list, a number a number), as Ansible does.
    pub fn render(&self, source: &str, scope: &Value) -> Result<Value, TemplateError> {
        if !is_template(source) {
            return Ok(Value::from(source));
        }
        shallow(source, false)?;
        if let Some(expr) = single_expression(source) {
            let read = datetime::arithmetic(expr, true);
            let expr = read.as_deref().unwrap_or(expr);
            let compiled = self.env.compile_expression(expr).map_err(|e| convert(e, source))?;
            let v = compiled
                .eval(scope.clone())
                .map_err(|e| self.explain(e, source, scope))?;
            if v.is_undefined() {
                return Err(self.explain(
                    minijinja::Error::new(ErrorKind::UndefinedError, "undefined"),
                    source,
                    scope,
                ));
            }
            return Ok(v);
        }
        // Ansible's trailing newlines: Jinja drops the source's last newline, then ansible-core
        // pads the output up to as many newlines as the source ends with. So a template whose
        // last expression ends in a newline (a nested template lookup) gains no extra one.
        let wanted = source.len() - source.trim_end_matches('\n').len();
        let body = source.strip_suffix('\n').unwrap_or(source);
        let read = datetime::arithmetic(body, false);
        let body = read.as_deref().unwrap_or(body);
        let tmpl = self.env.template_from_str(body).map_err(|e| convert(e, source))?;
        let mut out = tmpl.render(scope.clone()).map_err(|e| self.explain(e, source, scope))?;
        let have = out.len() - out.trim_end_matches('\n').len();
        for _ in have..wanted {
            out.push('\n');
        }
        Ok(Value::from(out))
    }

    /// Render a string to text.
    pub fn render_string(&self, source: &str, scope: &Value) -> Result<String, TemplateError> {
        let v = self.render(source, scope)?;
        Ok(value_to_string(&v))
    }

    /// Render every string inside a value (lists and mappings are walked).
    pub fn render_deep(&self, v: &Value, scope: &Value) -> Result<Value, TemplateError> {
        if !contains_template(v) {
            return Ok(v.clone());
        }
        match v.kind() {
            ValueKind::String => self.render(v.as_str().unwrap_or(""), scope),
            ValueKind::Seq => {
                let mut out = Vec::new();
                for item in v.try_iter().map_err(|e| convert(e, ""))? {
                    out.push(self.render_deep(&item, scope)?);
                }
                Ok(Value::from(out))
            }
            ValueKind::Map => {
                let mut out = Vec::new();
                for k in v.try_iter().map_err(|e| convert(e, ""))? {
                    let item = v.get_item(&k).map_err(|e| convert(e, ""))?;
                    out.push((k.to_string(), self.render_deep(&item, scope)?));
                }
                Ok(Value::from_pairs(out))
            }
            _ => Ok(v.clone()),
        }
    }

    /// Top-level variable names a template reads without defining them itself.
    pub fn undeclared(&self, source: &str) -> Vec<String> {
        if too_deep(source, false).is_some() {
            return Vec::new();
        }
        match self.env.template_from_str(source) {
            Ok(t) => {
                let mut v: Vec<String> = t.undeclared_variables(false).into_iter().collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        }
    }

    /// The filters and tests a template (or, with `expression`, a bare condition) applies that
    /// this engine does not have, each distinct name once with the byte range of its first use.
    /// minijinja looks them up only when it renders, so a playbook that names one would fail on
    /// the hosts; the checker reports them before anything runs. Text that does not compile has
    /// its syntax error reported instead, and yields none.
    pub fn unknown_plugins(&self, source: &str, expression: bool) -> Vec<PluginUse> {
        use minijinja::machinery::{CodeGenerator, Instruction, Instructions, get_compiled_template, parse_expr};
        if too_deep(source, expression).is_some() {
            return Vec::new();
        }
        let mut used: Vec<PluginUse> = Vec::new();
        let mut collect = |ins: &Instructions| {
            let mut idx = 0;
            while let Some(i) = ins.get(idx) {
                let plugin = match i {
                    Instruction::ApplyFilter(name, ..) => Some((Plugin::Filter, *name)),
                    Instruction::PerformTest(name, ..) => Some((Plugin::Test, *name)),
                    // `lookup('NAME', ...)`, `query(...)`, `q(...)` with a literal name.
                    Instruction::CallFunction("lookup" | "query" | "q", _) => ins
                        .get_span(idx)
                        .and_then(|s| source.get(s.start_offset as usize..s.end_offset as usize))
                        .and_then(lookup_name)
                        .map(|n| (Plugin::Lookup, n)),
                    _ => None,
                };
                if let Some((kind, name)) = plugin {
                    let name: String = name.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                    if !used.iter().any(|u| u.kind == kind && u.name == name) {
                        let at = ins
                            .get_span(idx)
                            .map_or(0, |s| s.start_offset as usize)
                            .min(source.len());
                        // The span is the whole `value | name(args)`: the name is its first use
                        // from there on.
                        let start = source
                            .get(at..)
                            .and_then(|rest| rest.find(name.as_str()))
                            .map_or(at, |i| at + i);
                        used.push(PluginUse {
                            kind,
                            range: start..(start + name.len()).min(source.len()),
                            name,
                        });
                    }
                }
                idx += 1;
            }
        };
        if expression {
            let Ok(ast) = parse_expr(source) else { return Vec::new() };
            let mut generator = CodeGenerator::new("<expression>", source);
            generator.compile_expr(&ast);
            collect(&generator.finish().0);
        } else {
            let Ok(tmpl) = self.env.template_from_str(source) else {
                return Vec::new();
            };
            let compiled = get_compiled_template(&tmpl);
            collect(&compiled.instructions);
            for block in compiled.blocks.values() {
                collect(block);
            }
        }
        used.retain(|u| !self.has_plugin(u.kind, &u.name));
        used
    }

    /// Whether this engine has the filter, test or lookup `name`: applied to `none`, it fails for any
    /// reason but being unknown.
    pub fn has_plugin(&self, kind: Plugin, name: &str) -> bool {
        let key = (kind, name.to_string());
        if let Some(known) = self.plugins.lock().ok().and_then(|m| m.get(&key).copied()) {
            return known;
        }
        let known = self.probe_plugin(kind, name);
        if let Ok(mut m) = self.plugins.lock() {
            m.insert(key, known);
        }
        known
    }

    /// The Python plugin files that could not be loaded, with why.
    pub fn python_problems(&self) -> &[(std::path::PathBuf, String)] {
        self.python.problems()
    }

    fn probe_plugin(&self, kind: Plugin, name: &str) -> bool {
        // Known without calling it: a plugin's code runs only when a template applies it.
        if self.python.has(kind, name) {
            return true;
        }
        let probe = match kind {
            Plugin::Filter => format!("none | {name}"),
            Plugin::Test => format!("none is {name}"),
            Plugin::Lookup => return lookups::known(name),
        };
        let Ok(expr) = self.env.compile_expression(&probe) else {
            return false;
        };
        match expr.eval(Value::UNDEFINED) {
            Ok(_) => true,
            Err(e) => !matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest),
        }
    }

    /// Evaluate a bare expression (`when:`), accepting a `{{ }}` wrapper as Ansible does.
    pub fn eval(&self, expr: &str, scope: &Value) -> Result<Value, TemplateError> {
        let e = single_expression(expr).unwrap_or(expr);
        shallow(e, true)?;
        let read = datetime::arithmetic(e, true);
        let e = read.as_deref().unwrap_or(e);
        let compiled = self.env.compile_expression(e).map_err(|err| convert(err, expr))?;
        compiled
            .eval(scope.clone())
            .map_err(|err| self.explain(err, expr, scope))
    }

    /// Evaluate a condition. Like Ansible, a string result is judged by `| bool`.
    pub fn eval_bool(&self, expr: &str, scope: &Value) -> Result<bool, TemplateError> {
        let v = self.eval(expr, scope)?;
        Ok(match v.kind() {
            ValueKind::String => filters::ansible_bool(&v),
            ValueKind::Undefined => {
                return Err(self.explain(
                    minijinja::Error::new(ErrorKind::UndefinedError, "undefined"),
                    expr,
                    scope,
                ));
            }
            _ => v.is_true(),
        })
    }

    /// Turn an error into a message a user can act on. minijinja reports "undefined value"
    /// without the name, so the template is searched for the variable that is missing.
    fn explain(&self, err: minijinja::Error, source: &str, scope: &Value) -> TemplateError {
        if let Some(nested) = scope.downcast_object_ref::<Scope>().and_then(Scope::take_error) {
            return nested;
        }
        if err.kind() == ErrorKind::UndefinedError {
            let src = single_expression(source)
                .map(|e| format!("{{{{ {e} }}}}"))
                .unwrap_or_else(|| source.to_string());
            if let Ok(t) = self.env.template_from_str(&src) {
                let mut paths: Vec<String> = t.undeclared_variables(true).into_iter().collect();
                paths.sort();
                for path in paths {
                    if let Some(mut te) = missing(scope, &path) {
                        te.line = err.line();
                        return te;
                    }
                }
            }
        }
        convert(err, source)
    }
}

/// A Jinja plugin a template names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plugin {
    Filter,
    Test,
    Lookup,
}

impl Plugin {
    pub fn noun(self) -> &'static str {
        match self {
            Plugin::Filter => "filter",
            Plugin::Test => "test",
            Plugin::Lookup => "lookup",
        }
    }
}

/// A filter or test a template applies, and where its name is in the template's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginUse {
    pub kind: Plugin,
    pub name: String,
    pub range: std::ops::Range<usize>,
}

/// The first part of a dotted path that does not resolve in `scope`, as an error.
fn missing(scope: &Value, path: &str) -> Option<TemplateError> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut cur = scope.get_attr(first).ok().filter(|v| !v.is_undefined());
    if cur.is_none() {
        let names: Vec<String> = scope
            .downcast_object_ref::<Scope>()
            .map(Scope::names)
            .unwrap_or_default();
        let help = crate::diagnostic::closest(first, names.iter().map(String::as_str))
            .map(|c| format!("did you mean `{c}`?"))
            .or_else(|| Some("define it in the inventory, group_vars, the play's `vars`, or with `-e`".into()));
        return Some(TemplateError {
            message: format!("undefined variable `{first}`"),
            help,
            line: None,
            range: None,
        });
    }
    let mut walked = first.to_string();
    for p in parts {
        let v = cur?;
        let next = v.get_attr(p).ok().filter(|x| !x.is_undefined());
        if next.is_none() {
            let keys: Vec<String> = if v.kind() == ValueKind::Map {
                v.try_iter()
                    .map(|it| it.map(|k| k.to_string()).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let help = crate::diagnostic::closest(p, keys.iter().map(String::as_str))
                .map(|c| format!("did you mean `{walked}.{c}`?"));
            return Some(TemplateError {
                message: format!("`{walked}` has no attribute `{p}`"),
                help,
                line: None,
                range: None,
            });
        }
        walked.push('.');
        walked.push_str(p);
        cur = next;
    }
    None
}

/// Refuse text that nests deeper than minijinja's recursive parser and compiler can take on
/// the run's stack, before they see it.
fn shallow(source: &str, expression: bool) -> Result<(), TemplateError> {
    match too_deep(source, expression) {
        None => Ok(()),
        Some(at) => Err(TemplateError {
            message: format!("expression nested too deeply (more than {MAX_EXPR_DEPTH} levels)"),
            help: Some(
                "no template needs this many nested operators, lookups or brackets; was it generated by mistake?"
                    .into(),
            ),
            line: Some(source[..at].matches('\n').count() + 1),
            range: Some(at..(at + 1).min(source.len())),
        }),
    }
}

fn convert(e: minijinja::Error, source: &str) -> TemplateError {
    let mut msg = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    let mut help = None;
    if e.kind() == ErrorKind::SyntaxError {
        msg = format!("template syntax error: {msg}");
    } else if e.kind() == ErrorKind::OutOfFuel {
        msg = format!("the template does more than the {TEMPLATE_FUEL} steps a render may take");
        help = Some("is there a loop inside a loop over a large range? render less, or split it".into());
    } else if msg.contains("- operator on unsupported types plain object and plain object") {
        // Most likely two `to_datetime` values in a `{% %}` statement: roll subtracts them into a
        // timedelta only in expressions (`{{ }}`, conditions).
        msg.push_str(
            "; roll subtracts datetimes (to_datetime, now()) in `{{ }}` expressions and conditions, \
             not in `{% %}` statements: compute the difference in a `{{ }}` (or a variable)",
        );
    }
    let range = e.range().filter(|r| r.end <= source.len());
    TemplateError {
        message: msg,
        help,
        line: e.line(),
        range,
    }
}

/// `"{{ expr }}"` (and nothing else) → `expr`.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

/// Whether rendering `v` would change it. `!unsafe` text (`yaml::is_unsafe_text`) is never a
/// template, whatever it holds.
pub fn contains_template(v: &Value) -> bool {
    match v.kind() {
        ValueKind::String => !crate::yaml::is_unsafe_text(v) && is_template(v.as_str().unwrap_or("")),
        ValueKind::Seq | ValueKind::Map => {
            // Scopes and `hostvars` render their own variables lazily; walking them here would
            // recurse through every host's variables.
            if v.downcast_object_ref::<Scope>().is_some() || v.downcast_object_ref::<HostVars>().is_some() {
                return false;
            }
            match v.kind() {
                ValueKind::Seq => v.try_iter().is_ok_and(|mut it| it.any(|i| contains_template(&i))),
                _ => v
                    .try_iter()
                    .is_ok_and(|mut it| it.any(|k| v.get_item(&k).is_ok_and(|i| contains_template(&i)))),
            }
        }
        _ => false,
    }
}

/// `v` with every string in it marked as text that is never rendered (`yaml::unsafe_text`).
pub fn as_data(v: Value) -> Value {
    if v.downcast_object_ref::<Scope>().is_some() || v.downcast_object_ref::<HostVars>().is_some() {
        return v;
    }
    match v.kind() {
        ValueKind::String if !crate::yaml::is_unsafe_text(&v) => crate::yaml::unsafe_text(v.as_str().unwrap_or("")),
        ValueKind::Seq => match v.try_iter() {
            Ok(items) => Value::from(items.map(as_data).collect::<Vec<_>>()),
            Err(_) => v,
        },
        ValueKind::Map => match v.try_iter() {
            Ok(keys) => Value::from_pairs(
                keys.map(|k| {
                    let item = v.get_item(&k).unwrap_or_default();
                    (k, as_data(item))
                })
                .collect::<Vec<_>>(),
            ),
            Err(_) => v,
        },
        _ => v,
    }
}

/// Everything shared by the scopes of one run.
pub struct RunVars {
    pub templar: Templar,
    pub inventory: Arc<Inventory>,
    groups: Value,
    pub extra: Arc<VarMap>,
    /// Registered results and `set_fact`, per host, for the whole run.
    facts: RwLock<Vec<Arc<VarMap>>>,
    /// `include_vars`, per host: below `facts`, above task vars.
    included: RwLock<Vec<Arc<VarMap>>>,
    pub playbook_dir: String,
    pub inventory_dir: String,
    /// What the command line asked for, as the magic variables show it.
    run_info: std::sync::OnceLock<RunInfo>,
}

/// The ansible-core version whose semantics roll follows, as `ansible_version` reports it.
pub const ANSIBLE_VERSION: (u32, u32, u32) = (2, 19, 14);

/// The run's options that magic variables show (`ansible_run_tags`, `ansible_limit`, ...).
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub run_tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub limit: Option<String>,
    pub diff_mode: bool,
    pub forks: usize,
    pub verbosity: u8,
    /// The inventory file (absolute), when the inventory is one.
    pub inventory_file: Option<String>,
    /// The ansible.cfg read (absolute), if any.
    pub config_file: Option<String>,
}

impl RunVars {
    pub fn new(inventory: Arc<Inventory>, extra: VarMap, playbook_dir: String) -> Arc<RunVars> {
        RunVars::with_secrets(inventory, extra, playbook_dir, Arc::new(Secrets::new()), Arc::default())
    }

    /// The run's variables, masking with the run's secrets (`Sources::secrets`, where what the
    /// vault decrypted already is), templated with the playbook's Python plugins.
    pub fn with_secrets(
        inventory: Arc<Inventory>,
        extra: VarMap,
        playbook_dir: String,
        secrets: Arc<Secrets>,
        python: Arc<python::PythonPlugins>,
    ) -> Arc<RunVars> {
        let groups = inventory.groups_value();
        let facts = RwLock::new((0..inventory.hosts.len()).map(|_| Arc::new(VarMap::new())).collect());
        let included = RwLock::new((0..inventory.hosts.len()).map(|_| Arc::new(VarMap::new())).collect());
        let inventory_dir = inventory
            .dir
            .as_ref()
            // Absolute, as in Ansible, so that paths built from it hold from any directory.
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()).display().to_string())
            .unwrap_or_default();
        Arc::new(RunVars {
            templar: Templar::with_plugins(secrets, python),
            inventory,
            groups,
            extra: Arc::new(extra),
            facts,
            included,
            playbook_dir,
            inventory_dir,
            run_info: std::sync::OnceLock::new(),
        })
    }

    /// Give the run's options (once, before the run): the magic variables show them.
    pub fn set_run_info(&self, info: RunInfo) {
        let _ = self.run_info.set(info);
    }

    pub fn facts(&self, host: usize) -> Arc<VarMap> {
        self.facts.read().unwrap_or_else(|e| e.into_inner())[host].clone()
    }

    /// Set a host's variable: a fact (`set_fact`, registered), or an included var.
    pub fn set_var(&self, host: usize, key: &str, value: Value, included: bool) {
        if !included {
            return self.set_fact(host, key, value);
        }
        let mut inc = self.included.write().unwrap_or_else(|e| e.into_inner());
        Arc::make_mut(&mut inc[host]).insert(key.to_string(), value);
    }

    /// Record a registered result or a fact. What a host answered (and what a template
    /// rendered) is data: it is never rendered again as a template, so output such as
    /// `{{ lookup('pipe', ...) }}` in a registered stdout cannot run on the controller
    /// (Ansible's trust boundary). Variables from files (include_vars) are code: not here.
    pub fn set_fact(&self, host: usize, key: &str, value: Value) {
        let value = as_data(value);
        let mut facts = self.facts.write().unwrap_or_else(|e| e.into_inner());
        Arc::make_mut(&mut facts[host]).insert(key.to_string(), value);
    }
}

/// ansible-core 2.19's `ansible_managed` (its `DEFAULT_MANAGED_STR`), which the `template`
/// module and lookup give a template that does not define one.
pub const ANSIBLE_MANAGED: &str = "Ansible managed";

/// The variables ansible-core gives a template file it renders (`template` module and lookup):
/// `template_path` as the task named it, `template_fullpath`, `template_host` (the controller),
/// `template_uid` (the file's owner), `template_mtime` and `template_run_date` (datetimes),
/// `template_destpath`, and `ansible_managed`.
pub fn template_vars(path: &str, fullpath: &std::path::Path, dest: Option<&str>) -> VarMap {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(fullpath).ok();
    let local = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .map(|d| Value::from_object(datetime::DateTime(d.with_timezone(&chrono::Local).naive_local())))
            .unwrap_or(Value::from(()))
    };
    let uid = meta.as_ref().map_or(0, |m| m.uid());
    // The owner's name from the passwd file, as Python's pwd module gives it; else the number.
    let owner = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| Value::from(f[0]))
            })
        })
        .unwrap_or_else(|| Value::from(uid));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut vars = VarMap::new();
    vars.insert("template_host".into(), Value::from(host));
    vars.insert("template_path".into(), Value::from(path));
    vars.insert("template_mtime".into(), local(meta.as_ref().map_or(0, |m| m.mtime())));
    vars.insert("template_uid".into(), owner);
    vars.insert("template_run_date".into(), local(now));
    vars.insert(
        "template_destpath".into(),
        dest.map(Value::from).unwrap_or(Value::from(())),
    );
    vars.insert("template_fullpath".into(), Value::from(fullpath.display().to_string()));
    vars.insert("ansible_managed".into(), Value::from(ANSIBLE_MANAGED));
    vars
}

/// `scope` with `extra` above its own variables (as ansible-core updates a template's variables
/// with its template vars), except that a variable the scope defines (`ansible_managed` set by
/// the user) is kept when `keep` names it.
pub fn with_template_vars(scope: &Value, mut extra: VarMap, keep: &[&str]) -> Value {
    let Some(s) = scope.downcast_object_ref::<Scope>() else {
        return scope.clone();
    };
    extra.retain(|k, _| !(keep.contains(&k.as_str()) && s.raw(k).is_some()));
    let mut inner = s.detach();
    inner.locals.extend(extra);
    Value::from_object(inner)
}

/// The play-level part of a scope.
#[derive(Default)]
pub struct PlayVars {
    pub vars: Arc<VarMap>,
    /// The defaults of the play's public roles: below everything else.
    pub role_defaults: Arc<VarMap>,
    /// The `vars/` the play's public roles export: above `vars` and `vars_files`.
    pub role_exports: Arc<VarMap>,
    /// `ansible_play_hosts_all`: every host of the play.
    pub play_hosts_all: Value,
    /// `ansible_play_batch` / `play_hosts`: the hosts of the current `serial` batch that are still active.
    pub play_batch: Value,
    pub check_mode: bool,
}

/// What a task brings to its scope besides the play and the host, in Ansible's precedence:
/// its role's defaults (above the play's role defaults, below the inventory), its role's vars
/// (above the play's exported role vars), block and task `vars`, then role params and include
/// params (above `set_fact`).
#[derive(Debug, Clone, Default)]
pub struct TaskVars {
    pub role_defaults: Option<Arc<VarMap>>,
    pub role_vars: Option<Arc<VarMap>>,
    /// Block and task `vars`, lowest first.
    pub layers: Vec<Arc<VarMap>>,
    /// Role params, then include params, lowest first.
    pub params: Vec<Arc<VarMap>>,
}

/// Variables as one host sees them at one task, looked up lazily in precedence order.
pub struct Scope {
    run: Arc<RunVars>,
    play: Arc<PlayVars>,
    host: usize,
    /// Block and task `vars`, lowest first.
    layers: Vec<Arc<VarMap>>,
    role_defaults: Option<Arc<VarMap>>,
    role_vars: Option<Arc<VarMap>>,
    params: Vec<Arc<VarMap>>,
    /// Loop variables (`item`, `ansible_loop`, `ansible_loop_var`), above everything but `-e`.
    locals: VarMap,
    facts: Arc<VarMap>,
    included: Arc<VarMap>,
    depth: AtomicUsize,
    error: Mutex<Option<TemplateError>>,
    /// `roll_secret_vars`, read once per scope: every variable lookup consults it.
    secret_vars: std::sync::OnceLock<Vec<String>>,
    /// A host's variables as `hostvars[h]` shows them: without `hostvars` among their names, as
    /// in Ansible, so that walking them (`to_json`, `json_query`) ends.
    in_hostvars: bool,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<vars of {}>", self.run.inventory.hosts[self.host].name)
    }
}

impl Scope {
    pub fn value(
        run: Arc<RunVars>,
        play: Arc<PlayVars>,
        host: usize,
        layers: Vec<Arc<VarMap>>,
        locals: VarMap,
    ) -> Value {
        Scope::for_task(
            run,
            play,
            host,
            TaskVars {
                layers,
                ..TaskVars::default()
            },
            locals,
        )
    }

    /// The scope of a task on a host, with its role's variables and its params.
    pub fn for_task(run: Arc<RunVars>, play: Arc<PlayVars>, host: usize, task: TaskVars, locals: VarMap) -> Value {
        let facts = run.facts(host);
        let included = run.included.read().unwrap_or_else(|e| e.into_inner())[host].clone();
        Value::from_object(Scope {
            included,
            run,
            play,
            host,
            layers: task.layers,
            role_defaults: task.role_defaults,
            role_vars: task.role_vars,
            params: task.params,
            locals,
            facts,
            depth: AtomicUsize::new(0),
            error: Mutex::new(None),
            secret_vars: std::sync::OnceLock::new(),
            in_hostvars: false,
        })
    }

    /// A copy of this scope (its own recursion guard and error slot).
    fn detach(&self) -> Scope {
        Scope {
            run: self.run.clone(),
            play: self.play.clone(),
            host: self.host,
            layers: self.layers.clone(),
            role_defaults: self.role_defaults.clone(),
            role_vars: self.role_vars.clone(),
            params: self.params.clone(),
            locals: self.locals.clone(),
            facts: self.facts.clone(),
            included: self.included.clone(),
            depth: AtomicUsize::new(0),
            error: Mutex::new(None),
            secret_vars: std::sync::OnceLock::new(),
            in_hostvars: self.in_hostvars,
        }
    }

    fn take_error(&self) -> Option<TemplateError> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn magic(&self, key: &str) -> Option<Value> {
        let host = &self.run.inventory.hosts[self.host];
        Some(match key {
            "inventory_hostname" => Value::from(host.name.as_str()),
            "inventory_hostname_short" => Value::from(host.name.split('.').next().unwrap_or("")),
            "group_names" => Value::from(host.groups.clone()),
            "groups" => self.run.groups.clone(),
            "hostvars" => Value::from_object(HostVars {
                run: self.run.clone(),
                play: self.play.clone(),
            }),
            "play_hosts" | "ansible_play_batch" | "ansible_play_hosts" => self.play.play_batch.clone(),
            "ansible_play_hosts_all" => self.play.play_hosts_all.clone(),
            "ansible_check_mode" => Value::from(self.play.check_mode),
            "playbook_dir" => Value::from(self.run.playbook_dir.as_str()),
            // A file inventory's directory, when the inventory gave none of its own.
            "inventory_dir" if self.run.inventory_dir.is_empty() => Value::from(
                self.run
                    .run_info
                    .get()
                    .and_then(|i| i.inventory_file.as_deref())
                    .and_then(|f| std::path::Path::new(f).parent())
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            "inventory_dir" => Value::from(self.run.inventory_dir.as_str()),
            "omit" => Value::from(OMIT),
            "ansible_version" => {
                let (major, minor, revision) = ANSIBLE_VERSION;
                let full = format!("{major}.{minor}.{revision}");
                Value::from_pairs(vec![
                    ("full", Value::from(full.as_str())),
                    ("major", Value::from(major)),
                    ("minor", Value::from(minor)),
                    ("revision", Value::from(revision)),
                    ("string", Value::from(full.as_str())),
                ])
            }
            _ => return self.run_magic(key),
        })
    }

    /// The magic variables that show the command line's options.
    fn run_magic(&self, key: &str) -> Option<Value> {
        let default = RunInfo {
            run_tags: vec!["all".into()],
            forks: 50,
            ..RunInfo::default()
        };
        let info = self.run.run_info.get().unwrap_or(&default);
        Some(match key {
            "ansible_run_tags" => Value::from(info.run_tags.clone()),
            "ansible_skip_tags" => Value::from(info.skip_tags.clone()),
            // Undefined without `--limit`, as in Ansible.
            "ansible_limit" => Value::from(info.limit.clone()?),
            "ansible_diff_mode" => Value::from(info.diff_mode),
            "ansible_forks" => Value::from(info.forks),
            "ansible_verbosity" => Value::from(info.verbosity),
            "inventory_file" => Value::from(info.inventory_file.clone()?),
            // None when no ansible.cfg was read, as in Ansible.
            "ansible_config_file" => Value::from(info.config_file.clone()),
            _ => return None,
        })
    }

    fn raw(&self, key: &str) -> Option<Value> {
        if let Some(v) = self.magic(key) {
            return Some(v);
        }
        if let Some(v) = self.run.extra.get(key) {
            return Some(v.clone());
        }
        if let Some(v) = self.locals.get(key) {
            return Some(v.clone());
        }
        for layer in self.params.iter().rev() {
            if let Some(v) = layer.get(key) {
                return Some(v.clone());
            }
        }
        if let Some(v) = self.facts.get(key) {
            return Some(v.clone());
        }
        if let Some(v) = self.included.get(key) {
            return Some(v.clone());
        }
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.get(key) {
                return Some(v.clone());
            }
        }
        if let Some(v) = self.role_vars.as_ref().and_then(|m| m.get(key)) {
            return Some(v.clone());
        }
        if let Some(v) = self.play.role_exports.get(key) {
            return Some(v.clone());
        }
        if let Some(v) = self.play.vars.get(key) {
            return Some(v.clone());
        }
        let host = &self.run.inventory.hosts[self.host];
        if let Some(v) = host.vars.get(key) {
            return Some(v.clone());
        }
        if let Some(v) = self.role_defaults.as_ref().and_then(|m| m.get(key)) {
            return Some(v.clone());
        }
        if let Some(v) = self.play.role_defaults.get(key) {
            return Some(v.clone());
        }
        // As in Ansible, a host's address is its name unless the inventory says otherwise.
        (key == "ansible_host").then(|| Value::from(host.name.as_str()))
    }

    /// A variable named in `roll_secret_vars` is secret: its value is masked in every report.
    fn note_secret(&self, key: &str, v: &Value) {
        let names = self.secret_vars.get_or_init(|| {
            self.raw("roll_secret_vars")
                .and_then(|list| list.try_iter().ok().map(|it| it.map(|n| value_to_string(&n)).collect()))
                .unwrap_or_default()
        });
        if names.iter().any(|n| n == key) {
            self.run.templar.secrets.add_value(v);
        }
    }

    /// Every variable name visible here (for suggestions).
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            "inventory_hostname",
            "group_names",
            "groups",
            "hostvars",
            "play_hosts",
            "ansible_play_hosts",
            "ansible_check_mode",
            "ansible_diff_mode",
            "ansible_version",
            "ansible_run_tags",
            "ansible_skip_tags",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        out.extend(self.run.extra.keys().cloned());
        out.extend(self.locals.keys().cloned());
        out.extend(self.facts.keys().cloned());
        out.extend(self.included.keys().cloned());
        for l in self.layers.iter().chain(&self.params) {
            out.extend(l.keys().cloned());
        }
        for m in [&self.role_vars, &self.role_defaults].into_iter().flatten() {
            out.extend(m.keys().cloned());
        }
        out.extend(self.play.role_exports.keys().cloned());
        out.extend(self.play.role_defaults.keys().cloned());
        out.extend(self.play.vars.keys().cloned());
        out.extend(self.run.inventory.hosts[self.host].vars.keys().cloned());
        out
    }
}

impl Object for Scope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        let v = self.raw(key)?;
        if !contains_template(&v) {
            self.note_secret(key, &v);
            return Some(v);
        }
        // Variables are templated when used, in the scope of the host using them, as in Ansible.
        if self.depth.fetch_add(1, Ordering::SeqCst) > 40 {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(TemplateError {
                message: format!("recursive loop detected in template of variable `{key}`"),
                help: Some("a variable's template refers back to itself".into()),
                line: None,
                range: None,
            });
            return None;
        }
        let me = Value::from_dyn_object(self.clone());
        let result = self.run.templar.render_deep(&v, &me);
        self.depth.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(v) => {
                self.note_secret(key, &v);
                Some(v)
            }
            Err(e) => {
                let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
                if slot.is_none() {
                    *slot = Some(TemplateError {
                        message: format!("in variable `{key}`: {}", e.message),
                        help: e.help,
                        line: None,
                        range: None,
                    });
                }
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut names = self.names();
        if self.in_hostvars {
            names.retain(|n| n != "hostvars");
        }
        names.sort();
        names.dedup();
        Enumerator::Values(names.into_iter().map(Value::from).collect())
    }
}

/// `hostvars`: every host's variables, as that host sees them in this play.
struct HostVars {
    run: Arc<RunVars>,
    play: Arc<PlayVars>,
}

impl std::fmt::Debug for HostVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hostvars>")
    }
}

impl Object for HostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let host = self.run.inventory.host(key.as_str()?)?;
        let scope = Scope::value(self.run.clone(), self.play.clone(), host, Vec::new(), VarMap::new());
        let mut inner = scope.downcast_object_ref::<Scope>().map(Scope::detach)?;
        inner.in_hostvars = true;
        Some(Value::from_object(inner))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.run
                .inventory
                .hosts
                .iter()
                .map(|h| Value::from(h.name.as_str()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;

/// The literal first argument of a `lookup(...)` call's text: `lookup('env', 'HOME')` → `env`;
/// a name that is an expression is decided when it renders.
fn lookup_name(call: &str) -> Option<&str> {
    let args = call.split_once('(')?.1.trim_start();
    let quote = args.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &args[1..];
    let end = rest.find(quote)?;
    Some(&rest[..end])
}

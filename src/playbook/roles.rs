//! Roles and task files: finding a role (search path, collections), reading its layout once,
//! its dependencies in Ansible's order (deduplicated unless `allow_duplicates`), its variables
//! merged along the dependency chain, and the static (`import_*`) and dynamic (`include_*`)
//! task files, read relative to the file or role that names them.

use super::parse::{IncludeKey, Parser, RoleFiles, describe};
use super::search::{collection_search_path, env_paths, home};
use super::{Body, Include, IncludeKind, Keywords, RoleCtx, RoleInclude, Task};
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::values::VarMap;
use crate::yaml::{self, Kind, Node};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which files of a role an instance reads (`tasks_from` and friends).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct FromFiles {
    pub tasks: Option<String>,
    pub vars: Option<String>,
    pub defaults: Option<String>,
    pub handlers: Option<String>,
}

/// One use of a role, as a `roles:` entry, a dependency or an import/include names it.
pub(super) struct RoleUse<'n> {
    pub name: String,
    pub name_span: Span,
    pub params: VarMap,
    pub entry_vars: VarMap,
    pub kw: Keywords,
    pub from: FromFiles,
    /// `roles:` entries and dependencies run once per play for the same parameters.
    pub dedup: bool,
    /// Its defaults and vars are visible to the whole play (`roles:`, `import_role`).
    pub public: bool,
    /// The roles that import or include it, the nearest first (none for `roles:` and dependencies).
    pub parents: Vec<(String, String)>,
    pub node: &'n Node,
}

/// What an instance of a role contributes besides its tasks.
pub(super) struct Instance {
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    /// Its dependencies' defaults, then its own (`Role.get_default_vars()`).
    pub defaults: Arc<VarMap>,
    /// Its dependencies' exported vars, then its own `vars/` (`get_vars(only_exports)`).
    pub exports: Arc<VarMap>,
}

/// A role being read, for its dependencies: where they are searched and what they inherit.
#[derive(Clone)]
pub(super) struct Frame {
    pub dir: PathBuf,
    pub defaults: Arc<VarMap>,
    /// The role's `vars/` and the entry's `vars:`.
    pub vars: Arc<VarMap>,
    pub params: Arc<VarMap>,
}

const ROLE_ENTRY_KEYWORDS: &[&str] = &[
    "when",
    "tags",
    "become",
    "become_user",
    "become_method",
    "become_exe",
    "become_flags",
    "remote_user",
    "port",
    "module_defaults",
    "environment",
    "ignore_errors",
    "no_log",
    "check_mode",
    "diff",
    "delegate_to",
    "run_once",
    "timeout",
    "any_errors_fatal",
    "connection",
];

/// `ns.coll.role`: a role inside a collection.
fn collection_role(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('.');
    let (ns, coll, role) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !ns.is_empty() && !coll.is_empty() && !role.is_empty()).then_some((ns, coll, role))
}

/// The directories a role name is looked for in, in Ansible's order: `roles/` beside the
/// playbook, `ANSIBLE_ROLES_PATH` (else Ansible's default roles path), the parent role's
/// directory for a dependency, then the playbook's directory itself.
pub(super) fn role_search_path(
    playbook_dir: &Path,
    parent: Option<&Path>,
    configured: Option<&[PathBuf]>,
) -> Vec<PathBuf> {
    let mut out = vec![playbook_dir.join("roles")];
    let configured = configured.map_or_else(|| env_paths("ANSIBLE_ROLES_PATH"), <[PathBuf]>::to_vec);
    if configured.is_empty() {
        if let Some(h) = home() {
            out.push(h.join(".ansible/roles"));
        }
        out.push("/usr/share/ansible/roles".into());
        out.push("/etc/ansible/roles".into());
    } else {
        out.extend(configured);
    }
    if let Some(p) = parent.and_then(Path::parent) {
        out.push(p.to_path_buf());
    }
    out.push(playbook_dir.to_path_buf());
    out
}

/// `a/roles/../../b` as `b`'s path, without asking the filesystem (Python's `normpath`, which
/// ansible-core's `unfrackpath` applies before it looks): `roles/` need not exist.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn find_role(
    playbook_dir: &Path,
    parent: Option<&Path>,
    configured: Option<&[PathBuf]>,
    name: &str,
) -> Result<PathBuf, Vec<PathBuf>> {
    let mut looked = Vec::new();
    if name.contains('/') {
        // A path is looked for along the same search path as a name, `roles/` beside the
        // playbook first (so `../../` from `tests/test.yml` is the role the tests sit in), then
        // as written, as ansible-core's `_load_role_path` does.
        for base in role_search_path(playbook_dir, parent, configured) {
            let p = normalize(&base.join(name));
            if p.is_dir() {
                return Ok(p);
            }
            looked.push(p);
        }
        let p = normalize(Path::new(name));
        if p.is_dir() {
            return Ok(p);
        }
        looked.push(p);
        return Err(looked);
    }
    if let Some((ns, coll, role)) = collection_role(name) {
        for base in collection_search_path(playbook_dir) {
            let p = base
                .join("ansible_collections")
                .join(ns)
                .join(coll)
                .join("roles")
                .join(role);
            if p.is_dir() {
                return Ok(p);
            }
            looked.push(p);
        }
    }
    for base in role_search_path(playbook_dir, parent, configured) {
        let p = base.join(name);
        if p.is_dir() && (p.join("tasks").is_dir() || p.join("meta").is_dir() || base.ends_with("roles")) {
            return Ok(p);
        }
        looked.push(p);
    }
    Err(looked)
}

/// The file `name` (`main` unless a `*_from` says otherwise) of a role's `sub` directory, with
/// Ansible's extensions; `vars/` and `defaults/` may also be a directory of files.
fn role_file(dir: &Path, sub: &str, name: Option<&str>, allow_dir: bool) -> Vec<PathBuf> {
    let base = dir.join(sub);
    let (main, exts): (&str, &[&str]) = match name {
        None => ("main", &[".yml", ".yaml", ".json", ""]),
        Some(n) => (n, &["", ".yml", ".yaml", ".json"]),
    };
    for ext in exts {
        let p = base.join(format!("{main}{ext}"));
        if p.is_file() {
            return vec![p];
        }
        if allow_dir && ext.is_empty() && p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
                .unwrap_or_default();
            files.sort();
            return files;
        }
    }
    Vec::new()
}

fn merge(into: &mut VarMap, from: &VarMap) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

impl Parser<'_> {
    /// Read and parse a YAML file once per run.
    pub(super) fn yaml_file(&mut self, path: &Path, at: Span) -> Option<Arc<Node>> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(n) = self.files.get(&key) {
            return Some(n.clone());
        }
        let file = match self.sources.load(path) {
            Ok(f) => f,
            Err(e) => {
                self.err(Diagnostic::unreadable("file", path, &e).with_span(at));
                return None;
            }
        };
        match yaml::parse(self.sources, file) {
            Ok(n) => {
                let n = Arc::new(n);
                self.files.insert(key, n.clone());
                Some(n)
            }
            Err(d) => {
                self.err(d);
                None
            }
        }
    }

    /// Variables of a role file (`defaults/main.yml`, `vars/main.yml`, a `main/` directory).
    fn role_vars(&mut self, dir: &Path, sub: &str, name: Option<&str>, at: Span) -> VarMap {
        let mut out = VarMap::new();
        let files = role_file(dir, sub, name, true);
        if files.is_empty() && name.is_some() {
            self.err(Diagnostic::at(
                format!("the role has no `{sub}/{}` file", name.unwrap_or("main")),
                at,
            ));
        }
        for f in files {
            if let Some(n) = self.yaml_file(&f, at) {
                self.vars_into(&n, &mut out);
            }
        }
        out
    }

    /// A role's `meta/main.yml`, read once.
    fn role_meta(&mut self, dir: &Path, at: Span) -> Arc<RoleFiles> {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if let Some(r) = self.roles.get(&key) {
            return r.clone();
        }
        let mut rf = RoleFiles::default();
        if let Some(f) = role_file(dir, "meta", None, false).into_iter().next()
            && let Some(n) = self.yaml_file(&f, at)
        {
            rf.argument_specs = n.get("argument_specs").cloned();
            rf.meta = Some((*n).clone());
        }
        if rf.argument_specs.is_none()
            && let Some(f) = role_file(dir, "meta", Some("argument_specs"), false).into_iter().next()
            && let Some(n) = self.yaml_file(&f, at)
        {
            rf.argument_specs = n.get("argument_specs").cloned();
        }
        let rf = Arc::new(rf);
        self.roles.insert(key, rf.clone());
        rf
    }

    /// A `roles:` entry: a name, or a mapping of `role`/`name`, keywords, `vars` and params.
    pub(super) fn role_entry(&mut self, node: &Node, inherit: &Keywords) -> Vec<Task> {
        let Some(mut u) = self.role_use(node, inherit) else {
            return Vec::new();
        };
        u.dedup = true;
        u.public = true;
        self.instantiate(u, &[], true).map(|i| i.tasks).unwrap_or_default()
    }

    /// Read a role reference (a string, or a mapping with `role:`/`name:`, keywords, `vars` and
    /// role params).
    fn role_use<'n>(&mut self, node: &'n Node, inherit: &Keywords) -> Option<RoleUse<'n>> {
        let mut u = RoleUse {
            name: String::new(),
            name_span: node.span,
            params: VarMap::new(),
            entry_vars: VarMap::new(),
            kw: inherit.clone(),
            from: FromFiles::default(),
            dedup: false,
            public: false,
            parents: Vec::new(),
            node,
        };
        match &node.kind {
            Kind::Str(s) => u.name = s.clone(),
            Kind::Map(pairs) => {
                for (k, v) in pairs {
                    let Some(key) = self.key(k) else { continue };
                    match key {
                        "role" | "name" => {
                            u.name = self.string(v, "a role name").unwrap_or_default();
                            u.name_span = v.span;
                        }
                        "vars" => self.vars_into(v, &mut u.entry_vars),
                        k2 if ROLE_ENTRY_KEYWORDS.contains(&k2) => {
                            self.shared_keyword(k2, v, &mut u.kw);
                        }
                        other => {
                            if crate::inventory::valid_var_name(other) {
                                u.params.insert(other.to_string(), v.to_value());
                            } else {
                                self.err(Diagnostic::at(format!("invalid role parameter `{other}`"), k.span));
                            }
                        }
                    }
                }
            }
            _ => {
                self.err(
                    Diagnostic::at(
                        format!("a role must be a name or a mapping, found {}", node.type_name()),
                        node.span,
                    )
                    .with_help("write `- web` or `- { role: web, port: 8080 }`"),
                );
                return None;
            }
        }
        if u.name.is_empty() {
            self.err(
                Diagnostic::at("the role has no name", node.span).with_help("write `role: NAME` (or `name: NAME`)"),
            );
            return None;
        }
        if crate::values::is_template(&u.name) {
            u.name = self.parse_time_name(&u.name, &u.kw, u.name_span, "role name")?;
        }
        Some(u)
    }

    /// A templated role name rendered as Ansible renders it while it reads the play: with the
    /// variables known then (the play's `vars` and `vars_files`, then the extra vars), no
    /// host's.
    pub(super) fn parse_time_name(&mut self, name: &str, kw: &Keywords, at: Span, what: &str) -> Option<String> {
        let mut vars = (*self.play_vars).clone();
        for layer in &kw.vars {
            merge(&mut vars, layer);
        }
        merge(&mut vars, &self.extra);
        vars.insert(
            "playbook_dir".into(),
            minijinja::Value::from(
                std::path::absolute(&self.dir)
                    .unwrap_or_else(|_| self.dir.clone())
                    .display()
                    .to_string(),
            ),
        );
        let templar = crate::vars::Templar::new();
        // A play var may be a template of other play vars or extra vars (`which: "{{ base }}"`):
        // rendered in the same scope, as Ansible's lazy templating would; one that cannot be
        // stays as written.
        let plain = minijinja::Value::from_pairs(vars.clone().into_iter().collect::<Vec<_>>());
        for v in vars.values_mut() {
            if crate::vars::contains_template(v)
                && let Ok(r) = templar.render_deep(v, &plain)
            {
                *v = r;
            }
        }
        let scope = minijinja::Value::from_pairs(vars.into_iter().collect::<Vec<_>>());
        match templar.render_string(name, &scope) {
            Ok(n) if !n.trim().is_empty() => Some(n.trim().to_string()),
            Ok(_) => {
                self.err(Diagnostic::at(format!("the {what} `{name}` renders empty"), at));
                None
            }
            Err(e) => {
                self.err(
                    Diagnostic::at(format!("cannot render the {what} `{name}`: {e}"), at).with_help(
                        "it is rendered when the play is read, with the play's vars, vars_files and extra vars (`-e`), no host's variables; an `include_*` reads a name that comes from a host",
                    ),
                );
                None
            }
        }
    }

    /// Load one use of a role: its dependencies first (each read with this role as parent),
    /// then its own tasks; `chain` holds the roles that depend on it, outermost first.
    pub(super) fn instantiate(&mut self, u: RoleUse<'_>, chain: &[Frame], emit: bool) -> Option<Instance> {
        if chain.len() > 32 {
            self.err(
                Diagnostic::at(format!("role `{}` depends on itself", u.name), u.name_span)
                    .with_help("a role's `meta/main.yml` dependencies lead back to it"),
            );
            return None;
        }
        let parent_dir = chain.last().map(|f| f.dir.clone());
        let dir = match find_role(
            &self.dir,
            parent_dir.as_deref(),
            self.sources.roles_path().as_deref(),
            &u.name,
        ) {
            Ok(d) => {
                self.sources.add_project(&d);
                d
            }
            Err(looked) => {
                let shown: Vec<String> = looked
                    .iter()
                    .take(6)
                    .map(|p| {
                        let shown = crate::source::display_path(p);
                        // The home directory as `~`, as the Ansible docs write the default path.
                        match home().and_then(|h| shown.strip_prefix(&h).ok().map(Path::to_path_buf)) {
                            Some(rest) => format!("`~/{}`", rest.display()),
                            None => format!("`{}`", shown.display()),
                        }
                    })
                    .collect();
                self.err(
                    Diagnostic::at(format!("the role `{}` was not found", u.name), u.name_span).with_help(format!(
                        "looked in {}; set `roles_path` in ansible.cfg (or ANSIBLE_ROLES_PATH) to add a directory",
                        shown.join(", ")
                    )),
                );
                return None;
            }
        };
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        let rf = self.role_meta(&dir, u.name_span);
        let own_defaults = self.role_vars(&dir, "defaults", u.from.defaults.as_deref(), u.name_span);
        let own_vars = self.role_vars(&dir, "vars", u.from.vars.as_deref(), u.name_span);
        let mut params = VarMap::new();
        if let Some(p) = chain.last() {
            merge(&mut params, &p.params);
        }
        merge(&mut params, &u.params);
        let mut role_and_entry = own_vars.clone();
        merge(&mut role_and_entry, &u.entry_vars);
        let frame = Frame {
            dir: dir.clone(),
            defaults: Arc::new(own_defaults.clone()),
            vars: Arc::new(role_and_entry),
            params: Arc::new(params.clone()),
        };
        let allow_duplicates = !u.dedup
            || rf
                .meta
                .as_ref()
                .and_then(|m| m.get("allow_duplicates"))
                .is_some_and(|v| matches!(v.kind, Kind::Bool(true)) || v.as_str() == Some("yes"));
        // Ansible's role identity: the same role with the same parameters, its own conditions and
        // tags, files and vars is one role, which runs once per host and play.
        let own = |key: &str| {
            u.node
                .get(key)
                .map(|n| format!("{:?}", n.to_value()))
                .unwrap_or_default()
        };
        let identity = format!(
            "{}|{:?}|{:?}|{:?}|{}|{}|{}",
            canonical.display(),
            u.params,
            u.entry_vars,
            u.from,
            own("when"),
            own("tags"),
            // `from_include`: an imported role is not the same role as a `roles:` entry.
            !u.dedup
        );

        // Dependencies, in order, each with this role as its parent.
        let mut tasks = Vec::new();
        let mut handlers = Vec::new();
        let mut dep_defaults = VarMap::new();
        let mut dep_exports = VarMap::new();
        let deps: Vec<Node> = rf
            .meta
            .as_ref()
            .and_then(|m| m.get("dependencies"))
            .and_then(|d| d.as_seq())
            .map(<[Node]>::to_vec)
            .unwrap_or_default();
        let mut sub_chain = chain.to_vec();
        sub_chain.push(frame.clone());
        for d in &deps {
            let Some(mut du) = self.role_use(d, &u.kw) else {
                continue;
            };
            du.dedup = true;
            if let Some(inst) = self.instantiate(du, &sub_chain, emit) {
                tasks.extend(inst.tasks);
                handlers.extend(inst.handlers);
                merge(&mut dep_defaults, &inst.defaults);
                merge(&mut dep_exports, &inst.exports);
            }
        }
        if let Some(specs) = &rf.argument_specs {
            self.check_argument_specs(specs, &u, u.from.tasks.as_deref().unwrap_or("main"));
        }

        let mut defaults = dep_defaults.clone();
        for f in chain {
            merge(&mut defaults, &f.defaults);
        }
        merge(&mut defaults, &own_defaults);
        let mut vars = VarMap::new();
        for f in chain {
            merge(&mut vars, &f.vars);
        }
        merge(&mut vars, &dep_exports);
        merge(&mut vars, &own_vars);
        merge(&mut vars, &u.entry_vars);
        let mut magic = params;
        // `role_name`, `role_path`: magic variables of the role's tasks.
        magic.insert("role_name".into(), minijinja::Value::from(u.name.as_str()));
        magic.insert(
            "role_path".into(),
            minijinja::Value::from(canonical.display().to_string()),
        );
        if !u.parents.is_empty() {
            let names: Vec<String> = u.parents.iter().map(|(n, _)| n.clone()).collect();
            let paths: Vec<String> = u.parents.iter().map(|(_, p)| p.clone()).collect();
            magic.insert("ansible_parent_role_names".into(), minijinja::Value::from(names));
            magic.insert("ansible_parent_role_paths".into(), minijinja::Value::from(paths));
        }
        let ctx = Arc::new(RoleCtx {
            name: u.name.clone(),
            dir: dir.clone(),
            defaults: Arc::new(defaults),
            vars: Arc::new(vars),
            params: Arc::new(magic),
            identity,
            allow_duplicates,
            parents: u.parents.clone(),
        });

        if emit {
            let saved_role = self.role.replace(ctx.clone());
            if let Some(f) = role_file(&dir, "tasks", u.from.tasks.as_deref(), false).first() {
                let saved_base = std::mem::replace(&mut self.base, dir.join("tasks"));
                if let Some(n) = self.yaml_file(f, u.name_span) {
                    let entry = u.from.tasks.as_deref().unwrap_or("main");
                    let mut list = match rf
                        .argument_specs
                        .as_ref()
                        .and_then(|s| validation_task(s, entry, &u, &canonical))
                    {
                        Some(v) => self.task_list(&v, &u.kw, false),
                        None => Vec::new(),
                    };
                    list.extend(self.task_list(&n, &u.kw, false));
                    let mut t = Task::new(
                        None,
                        u.node.span,
                        Body::Block {
                            block: list,
                            rescue: Vec::new(),
                            always: Vec::new(),
                        },
                        u.kw.clone(),
                    );
                    t.role = Some(ctx.clone());
                    t.role_instance = true;
                    tasks.push(t);
                }
                self.base = saved_base;
            } else if u.from.tasks.is_some() {
                self.err(Diagnostic::at(
                    format!(
                        "the role `{}` has no `tasks/{}` file",
                        u.name,
                        u.from.tasks.as_deref().unwrap_or("main")
                    ),
                    u.name_span,
                ));
            }
            if let Some(f) = role_file(&dir, "handlers", u.from.handlers.as_deref(), false).first() {
                let saved_base = std::mem::replace(&mut self.base, dir.join("handlers"));
                if let Some(n) = self.yaml_file(f, u.name_span) {
                    let mut hkw = u.kw.clone();
                    hkw.when.clear();
                    handlers.extend(self.task_list(&n, &hkw, true));
                }
                self.base = saved_base;
            }
            self.role = saved_role;
        }
        let mut defaults_pub = dep_defaults;
        merge(&mut defaults_pub, &own_defaults);
        let mut exports = dep_exports;
        merge(&mut exports, &own_vars);
        if u.public {
            merge(&mut self.play_roles.defaults, &defaults_pub);
            merge(&mut self.play_roles.exports, &exports);
            self.add_handlers(handlers.iter().cloned());
        }
        Some(Instance {
            tasks,
            handlers,
            defaults: Arc::new(defaults_pub),
            exports: Arc::new(exports),
        })
    }

    /// `argument_specs` of the entry point: the literal `choices` and types of the parameters
    /// given with the role, checked before anything runs (Ansible checks them when the role
    /// starts, in the task [`validation_task`] puts first).
    fn check_argument_specs(&mut self, specs: &Node, u: &RoleUse<'_>, entry: &str) {
        let Some(options) = specs.get(entry).and_then(|e| e.get("options")).and_then(|o| o.as_map()) else {
            return;
        };
        for (k, spec) in options {
            let Some(name) = k.as_str() else { continue };
            // A required argument may come from any variable (the inventory's too): the role's
            // first task checks that when it runs, as in Ansible.
            let given = u.params.get(name).or_else(|| u.entry_vars.get(name));
            let Some(v) = given else { continue };
            if v.as_str().is_some_and(crate::values::is_template) {
                continue;
            }
            if let Some(choices) = spec.get("choices").and_then(|c| c.as_seq()) {
                let text = crate::values::value_to_string(v);
                if !choices
                    .iter()
                    .any(|c| c.scalar_text().as_deref() == Some(text.as_str()))
                {
                    let shown: Vec<String> = choices.iter().filter_map(|c| c.scalar_text()).collect();
                    self.err(
                        Diagnostic::at(
                            format!("role `{}`: `{name}` is `{text}`, not one of its choices", u.name),
                            u.name_span,
                        )
                        .with_help(format!("`{name}` is one of {}", shown.join(", "))),
                    );
                }
            }
            let ty = spec.get("type").and_then(|t| t.as_str()).unwrap_or("str");
            // The conversions the role's validation task would make (`"a,b"` is a list).
            let ok = crate::modules::argument_spec::type_error(ty, v).is_none();
            if !ok {
                self.err(
                    Diagnostic::at(format!("role `{}`: `{name}` must be of type {ty}", u.name), u.name_span)
                        .with_help("see the role's `meta/argument_specs.yml`"),
                );
            }
        }
    }

    /// A task file an import or include names, relative to the including file, then the role's
    /// `tasks/`, then the playbook's directory.
    pub(super) fn task_file(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        let mut candidates = vec![self.base.join(p)];
        if let Some(r) = &self.role {
            candidates.push(r.dir.join("tasks").join(p));
            candidates.push(r.dir.join(p));
        }
        candidates.push(self.dir.join(p));
        candidates
            .iter()
            .find(|c| c.is_file())
            .cloned()
            .unwrap_or_else(|| candidates[0].clone())
    }

    /// Read a task file's tasks with `kw`, relative includes then starting beside it.
    pub(super) fn tasks_of_file(&mut self, path: &Path, kw: &Keywords, at: Span) -> Option<Vec<Task>> {
        if self.depth > 40 {
            self.err(
                Diagnostic::at("task files include each other without end", at)
                    .with_help("an include or import leads back to a file that includes it"),
            );
            return None;
        }
        if !path.is_file() {
            self.err(
                Diagnostic::at(
                    format!("task file `{}` not found", crate::source::display_path(path).display()),
                    at,
                )
                .with_help("paths are relative to the including file, the role's `tasks/` or the playbook"),
            );
            return None;
        }
        let n = self.yaml_file(path, at)?;
        let saved = std::mem::replace(&mut self.base, path.parent().map(Path::to_path_buf).unwrap_or_default());
        self.depth += 1;
        let list = self.task_list(&n, kw, false);
        self.depth -= 1;
        self.base = saved;
        Some(list)
    }

    /// An `import_*` or `include_*` task; `task` holds its keywords, `v` its value.
    pub(super) fn include_task(
        &mut self,
        which: IncludeKey,
        k: &Node,
        v: &Node,
        task: &mut Task,
        own_vars: Option<&Node>,
        inherit: &Keywords,
    ) -> Option<Body> {
        let written = k.as_str().unwrap_or("include_tasks").to_string();
        let mut file: Option<Node> = None;
        let mut apply = Keywords::default();
        let mut ri = RoleInclude {
            public: which == IncludeKey::ImportRole,
            parent_dir: self.role.as_ref().map(|r| r.dir.clone()),
            parents: self.parents_of_a_role_used_here(),
            ..RoleInclude::default()
        };
        let mut from = FromFiles::default();
        match &v.kind {
            Kind::Str(_) if !which.is_role() => file = Some(v.clone()),
            Kind::Map(pairs) => {
                for (pk, pv) in pairs {
                    let Some(key) = self.key(pk) else { continue };
                    match (key, which.is_role()) {
                        ("file" | "_raw_params", false) | ("name", true) => file = Some(pv.clone()),
                        ("apply", _) if matches!(which, IncludeKey::IncludeTasks | IncludeKey::IncludeRole) => {
                            match pv.as_map() {
                                Some(ap) => {
                                    for (ak, av) in ap {
                                        if let Some(akey) = self.key(ak)
                                            && !self.shared_keyword(akey, av, &mut apply)
                                        {
                                            self.unknown_key(ak, akey, &["tags", "become", "when"], "`apply`");
                                        }
                                    }
                                }
                                None => self.err(Diagnostic::at("`apply` must be a mapping", pv.span)),
                            }
                        }
                        ("tasks_from", true) => from.tasks = self.string(pv, "`tasks_from`"),
                        ("vars_from", true) => from.vars = self.string(pv, "`vars_from`"),
                        ("defaults_from", true) => from.defaults = self.string(pv, "`defaults_from`"),
                        ("handlers_from", true) => from.handlers = self.string(pv, "`handlers_from`"),
                        ("public", true) => ri.public = self.bool(pv, "public").unwrap_or(false),
                        ("allow_duplicates", true) => {
                            ri.allow_duplicates = self.bool(pv, "allow_duplicates").unwrap_or(true)
                        }
                        ("rolespec_validate", true) => {}
                        (other, _) => {
                            let allowed: &[&str] = if which.is_role() {
                                &ROLE_OPTIONS
                            } else {
                                &["file", "apply"]
                            };
                            self.unknown_key(pk, other, allowed, &format!("`{written}`"));
                        }
                    }
                }
            }
            _ => {
                self.err(
                    Diagnostic::at(
                        format!("`{written}` takes a file name or a mapping, found {}", describe(v)),
                        v.span,
                    )
                    .with_help(if which.is_role() {
                        "write `name: ROLE` under it"
                    } else {
                        "write `import_tasks: tasks/setup.yml`"
                    }),
                );
                return None;
            }
        }
        let Some(target) = file else {
            self.err(
                Diagnostic::at(format!("`{written}` names no file"), k.span).with_help(if which.is_role() {
                    "add `name: ROLE`"
                } else {
                    "write `file: tasks/setup.yml`"
                }),
            );
            return None;
        };
        let templated = target.as_str().is_some_and(crate::values::is_template);
        let static_ = matches!(which, IncludeKey::ImportTasks | IncludeKey::ImportRole);
        let mut name = target.scalar_text().unwrap_or_default();
        if static_ && templated {
            // A static import is read before any host variable exists: Ansible renders its
            // name with the play's vars and the extra vars only, and so does roll.
            name = self.parse_time_name(&name, &task.kw, target.span, &format!("`{written}` name"))?;
        }
        match which {
            IncludeKey::ImportTasks => {
                // `vars` on an import are task vars of every imported task (already in kw).
                let path = self.task_file(&name);
                let tasks = self.tasks_of_file(&path, &task.kw, target.span)?;
                Some(Body::Block {
                    block: tasks,
                    rescue: Vec::new(),
                    always: Vec::new(),
                })
            }
            IncludeKey::ImportRole => {
                let u = RoleUse {
                    name,
                    name_span: target.span,
                    params: VarMap::new(),
                    entry_vars: VarMap::new(),
                    kw: task.kw.clone(),
                    from,
                    dedup: false,
                    public: ri.public,
                    parents: ri.parents.clone(),
                    node: v,
                };
                let chain = self.chain();
                let inst = self.instantiate(u, &chain, true)?;
                if !ri.public {
                    self.add_handlers(inst.handlers);
                }
                Some(Body::Block {
                    block: inst.tasks,
                    rescue: Vec::new(),
                    always: Vec::new(),
                })
            }
            IncludeKey::IncludeTasks | IncludeKey::IncludeRole => {
                // `vars` of an include are include params, above `set_fact`.
                let mut params = VarMap::new();
                if let Some(ov) = own_vars {
                    self.vars_into(ov, &mut params);
                    // They are not task vars of the include.
                    task.kw.vars.pop();
                    task.kw.params.push(Arc::new(params.clone()));
                }
                // The include's own keywords are its own; its tasks get only what it inherits,
                // its include params and `apply:`.
                let mut kw = inherit.clone();
                kw.params = task.kw.params.clone();
                merge_keywords(&mut kw, &apply);
                let base = self.base.clone();
                let tasks = if templated {
                    None
                } else if which == IncludeKey::IncludeTasks {
                    let path = self.task_file(&name);
                    Some(self.tasks_of_file(&path, &kw, target.span)?)
                } else {
                    let u = RoleUse {
                        name: name.clone(),
                        name_span: target.span,
                        params: VarMap::new(),
                        entry_vars: VarMap::new(),
                        kw: kw.clone(),
                        from: from.clone(),
                        dedup: false,
                        public: ri.public,
                        parents: ri.parents.clone(),
                        node: v,
                    };
                    let chain = self.chain();
                    let inst = self.instantiate(u, &chain, true)?;
                    if !ri.public {
                        self.add_handlers(inst.handlers);
                    }
                    Some(inst.tasks)
                };
                ri.tasks_from = from.tasks;
                ri.vars_from = from.vars;
                ri.defaults_from = from.defaults;
                ri.handlers_from = from.handlers;
                ri.params = Arc::new(params);
                Some(Body::Include(Box::new(Include {
                    kind: if which == IncludeKey::IncludeTasks {
                        IncludeKind::Tasks
                    } else {
                        IncludeKind::Role
                    },
                    written,
                    target,
                    tasks,
                    apply: kw,
                    base,
                    role: which.is_role().then_some(ri),
                })))
            }
        }
    }

    /// A role's handlers join the play's once, however often the role is used.
    fn add_handlers(&mut self, handlers: impl IntoIterator<Item = Task>) {
        for h in handlers {
            let same = |o: &Task| {
                o.display_name() == h.display_name()
                    && o.role.as_ref().map(|r| &r.dir) == h.role.as_ref().map(|r| &r.dir)
            };
            if !self.play_roles.handlers.iter().any(same) {
                self.play_roles.handlers.push(h);
            }
        }
    }

    /// The parents of a role imported or included by the role being read: that role, then its own.
    fn parents_of_a_role_used_here(&self) -> Vec<(String, String)> {
        match &self.role {
            Some(r) => {
                let path = r.dir.canonicalize().unwrap_or_else(|_| r.dir.clone());
                std::iter::once((r.name.clone(), path.display().to_string()))
                    .chain(r.parents.iter().cloned())
                    .collect()
            }
            None => Vec::new(),
        }
    }

    /// The role being read, as the parent of a role it imports.
    fn chain(&self) -> Vec<Frame> {
        self.role
            .iter()
            .map(|r| Frame {
                dir: r.dir.clone(),
                defaults: Arc::new(VarMap::new()),
                vars: r.vars.clone(),
                params: r.params.clone(),
            })
            .collect()
    }
}

const ROLE_OPTIONS: [&str; 9] = [
    "name",
    "tasks_from",
    "vars_from",
    "defaults_from",
    "handlers_from",
    "apply",
    "public",
    "allow_duplicates",
    "rolespec_validate",
];

/// `apply:` keywords on top of the inherited ones.
fn merge_keywords(kw: &mut Keywords, apply: &Keywords) {
    kw.tags.extend(apply.tags.iter().cloned());
    kw.when.extend(apply.when.iter().cloned());
    kw.vars.extend(apply.vars.iter().cloned());
    kw.environment.extend(apply.environment.iter().cloned());
    let set = |dst: &mut Option<Node>, src: &Option<Node>| {
        if src.is_some() {
            *dst = src.clone();
        }
    };
    set(&mut kw.ignore_errors, &apply.ignore_errors);
    set(&mut kw.no_log, &apply.no_log);
    set(&mut kw.check_mode, &apply.check_mode);
    set(&mut kw.diff, &apply.diff);
    set(&mut kw.delegate_to, &apply.delegate_to);
    set(&mut kw.run_once, &apply.run_once);
    set(&mut kw.r#become, &apply.r#become);
    set(&mut kw.become_user, &apply.become_user);
    set(&mut kw.become_exe, &apply.become_exe);
    set(&mut kw.become_flags, &apply.become_flags);
    set(&mut kw.timeout, &apply.timeout);
    set(&mut kw.any_errors_fatal, &apply.any_errors_fatal);
    set(&mut kw.connection, &apply.connection);
    set(&mut kw.remote_user, &apply.remote_user);
    set(&mut kw.port, &apply.port);
    kw.module_defaults.extend(apply.module_defaults.iter().cloned());
}

/// Give a task (and every task inside it) include params: an include's loop item.
pub fn add_params(t: &mut Task, p: &Arc<VarMap>) {
    t.kw.params.push(p.clone());
    match &mut t.body {
        Body::Block { block, rescue, always } => {
            for c in block.iter_mut().chain(rescue.iter_mut()).chain(always.iter_mut()) {
                add_params(c, p);
            }
        }
        Body::Include(i) => {
            i.apply.params.push(p.clone());
            for c in i.tasks.iter_mut().flatten() {
                add_params(c, p);
            }
        }
        _ => {}
    }
}

/// The tasks of an include whose file (or role) name was templated, read when a host reaches
/// it; a problem in them fails the hosts that include them, with every diagnostic's place.
pub fn load_include(
    sources: &crate::source::Sources,
    play_dir: &Path,
    inc: &Include,
    role: Option<&Arc<RoleCtx>>,
    target: &str,
) -> Result<Vec<Task>, String> {
    let mut p = Parser::new(sources, play_dir.to_path_buf());
    p.base = inc.base.clone();
    let tasks = match inc.kind {
        IncludeKind::Tasks => {
            // A role's task file included by a templated name is still the role's: its tasks
            // see the role's defaults and vars, find sources in its `files/` and `templates/`,
            // and are shown as `ROLE : NAME`, as when the name is known at load time.
            p.role = role.cloned();
            let path = p.task_file(target);
            p.tasks_of_file(&path, &inc.apply, inc.target.span)
        }
        IncludeKind::Role => {
            let ri = inc.role.clone().unwrap_or_default();
            let chain: Vec<Frame> = ri
                .parent_dir
                .iter()
                .map(|d| Frame {
                    dir: d.clone(),
                    defaults: Arc::default(),
                    vars: Arc::default(),
                    params: Arc::default(),
                })
                .collect();
            let node = inc.target.clone();
            let u = RoleUse {
                name: target.to_string(),
                name_span: inc.target.span,
                params: VarMap::new(),
                entry_vars: VarMap::new(),
                kw: inc.apply.clone(),
                from: FromFiles {
                    tasks: ri.tasks_from.clone(),
                    vars: ri.vars_from.clone(),
                    defaults: ri.defaults_from.clone(),
                    handlers: ri.handlers_from.clone(),
                },
                dedup: false,
                public: false,
                parents: ri.parents.clone(),
                node: &node,
            };
            p.instantiate(u, &chain, true).map(|i| i.tasks)
        }
    };
    if !p.diags.is_empty() {
        let msgs: Vec<String> = p
            .diags
            .items
            .iter()
            .map(|d| match d.span {
                Some(s) => format!("{} (at {})", d.message, sources.location(s)),
                None => d.message.clone(),
            })
            .collect();
        return Err(msgs.join("; "));
    }
    tasks.ok_or_else(|| format!("cannot read `{target}`"))
}

/// The task ansible-core puts first in a role whose `argument_specs` name the entry point
/// (`Role._prepend_validation_task`): `validate_argument_spec` with the entry point's options and
/// the role's params, tagged `always`; a one-task list for the parser, spanning the role's name.
fn validation_task(specs: &Node, entry: &str, u: &RoleUse<'_>, path: &Path) -> Option<Node> {
    let spec = specs.get(entry)?;
    let at = u.name_span;
    let node = |kind: Kind| Node { kind, span: at };
    let text = |t: &str| node(Kind::Str(t.to_string()));
    let mut name = format!("Validating arguments against arg spec '{entry}'");
    if let Some(d) = spec.get("short_description").and_then(Node::scalar_text) {
        name.push_str(" - ");
        name.push_str(&d);
    }
    let options = spec
        .get("options")
        .cloned()
        .unwrap_or_else(|| node(Kind::Map(Vec::new())));
    let params: Vec<(Node, Node)> = u
        .node
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| k.as_str().is_some_and(|k| u.params.contains_key(k)))
        .cloned()
        .collect();
    let context = node(Kind::Map(vec![
        (text("argument_spec_name"), text(entry)),
        (text("name"), text(&u.name)),
        (text("path"), text(&path.display().to_string())),
        (text("type"), text("role")),
    ]));
    let args = node(Kind::Map(vec![
        (text("argument_spec"), options),
        (text("provided_arguments"), node(Kind::Map(params))),
        (text("validate_args_context"), context),
    ]));
    let task = node(Kind::Map(vec![
        (text("name"), text(&name)),
        (text("ansible.builtin.validate_argument_spec"), args),
        (text("tags"), node(Kind::Seq(vec![text("always")]))),
    ]));
    Some(node(Kind::Seq(vec![task])))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_role_named_by_path_is_found_from_roles_beside_the_playbook_as_ansible_does() {
        // `roles: [../../]` in `tests/test.yml` of a role's own repository: `tests/roles/../../`,
        // normalised without `tests/roles` existing, is the repository's root.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("tasks")).unwrap();
        std::fs::create_dir_all(d.path().join("tests")).unwrap();
        let found = find_role(&d.path().join("tests"), None, None, "../../").unwrap();
        assert_eq!(found.canonicalize().unwrap(), d.path().canonicalize().unwrap());
        assert_eq!(normalize(Path::new("a/roles/../../b/./c")), PathBuf::from("b/c"));
        assert!(find_role(&d.path().join("tests"), None, None, "../../nope/").is_err());
    }
    use super::*;

    #[test]
    fn role_files_are_found_with_ansibles_extensions_and_main_directories() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "a: 1\n").unwrap();
        };
        w("tasks/main.yaml");
        w("tasks/main");
        w("vars/main/b.yml");
        w("vars/main/a.yml");
        w("tasks/setup.yml");
        assert_eq!(
            role_file(d.path(), "tasks", None, false),
            [d.path().join("tasks/main.yaml")]
        );
        assert_eq!(
            role_file(d.path(), "vars", None, true),
            [d.path().join("vars/main/a.yml"), d.path().join("vars/main/b.yml")]
        );
        assert!(role_file(d.path(), "vars", None, false).is_empty());
        assert_eq!(
            role_file(d.path(), "tasks", Some("setup"), false),
            [d.path().join("tasks/setup.yml")]
        );
        assert_eq!(collection_role("acme.web.site"), Some(("acme", "web", "site")));
        assert_eq!(collection_role("web"), None);
        assert_eq!(collection_role("a.b"), None);
    }
}

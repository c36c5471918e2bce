//! The inventory: hosts, groups and their variables, loaded from Ansible INI or YAML files
//! plus `group_vars/` and `host_vars/`, and host patterns resolved against it.

mod ini;
pub use ini::valid_var_name;
pub use vars_dirs::parse_vars_file;
pub mod pattern;
pub mod range;
mod script;
mod vars_dirs;
mod yaml_inv;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{FileId, Sources, Span};
use crate::yaml::Node;
use indexmap::IndexMap;
use minijinja::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::values::VarMap;

#[derive(Debug)]
pub struct Host {
    pub name: String,
    /// Where the host was first declared, if in a file.
    pub span: Option<Span>,
    /// Inventory-level variables, merged in Ansible's precedence order (group vars, group_vars/,
    /// host vars, host_vars/).
    pub vars: Arc<VarMap>,
    /// `group_names`: the groups the host belongs to, sorted, without `all` and `ungrouped`.
    pub groups: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Group {
    pub name: String,
    pub span: Option<Span>,
    /// Hosts declared directly in this group, in file order.
    pub hosts: Vec<usize>,
    pub children: Vec<String>,
    pub vars: VarMap,
    /// Longest path from `all`; sets the order in which group vars apply.
    pub depth: usize,
}

#[derive(Debug, Default)]
pub struct Inventory {
    pub hosts: Vec<Host>,
    index: HashMap<String, usize>,
    pub groups: IndexMap<String, Group>,
    /// Every templated string found in inventory variables, checked before anything runs.
    pub template_nodes: Vec<Node>,
    /// The directory the inventory was read from (holds `group_vars/` and `host_vars/`).
    pub dir: Option<PathBuf>,
}

impl Inventory {
    pub fn host(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// All hosts of a group and its descendants, in Ansible's order (a group's own hosts first,
    /// then its children's, breadth first, without repeats).
    pub fn group_hosts(&self, group: &str) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen_hosts = HashSet::new();
        let mut seen_groups = HashSet::new();
        let mut queue = std::collections::VecDeque::from([group.to_string()]);
        while let Some(g) = queue.pop_front() {
            if !seen_groups.insert(g.clone()) {
                continue;
            }
            if let Some(grp) = self.groups.get(&g) {
                for &h in &grp.hosts {
                    if seen_hosts.insert(h) {
                        out.push(h);
                    }
                }
                queue.extend(grp.children.iter().cloned());
            }
        }
        out
    }

    /// The implicit `localhost` Ansible provides when the inventory does not name it.
    fn ensure_implicit_localhost(&mut self) -> usize {
        if let Some(i) = self.host("localhost") {
            return i;
        }
        let mut vars = VarMap::new();
        vars.insert("ansible_connection".into(), Value::from("local"));
        if let Some(all) = self.groups.get("all") {
            for (k, v) in all.vars.iter().rev() {
                vars.entry(k.clone()).or_insert(v.clone());
            }
        }
        self.hosts.push(Host {
            name: "localhost".into(),
            span: None,
            vars: Arc::new(vars),
            groups: vec![],
        });
        self.index.insert("localhost".into(), self.hosts.len() - 1);
        self.hosts.len() - 1
    }

    /// `groups` as templates see it: every group name to its host names.
    pub fn groups_value(&self) -> Value {
        Value::from_pairs(self.groups.keys().map(|g| {
            let names: Vec<Value> = self
                .group_hosts(g)
                .into_iter()
                .map(|h| Value::from(self.hosts[h].name.as_str()))
                .collect();
            (g.clone(), Value::from(names))
        }))
    }
}

/// Where the inventory comes from: `-i prod` may name a file, a directory, `inventories/prod`,
/// or a comma-separated host list (`-i web1,web2,`).
pub fn resolve_path(arg: &str) -> Option<PathBuf> {
    let p = PathBuf::from(arg);
    if p.exists() {
        return Some(p);
    }
    let q = Path::new("inventories").join(arg);
    if q.exists() {
        return Some(q);
    }
    None
}

/// `-i ARG` names nothing: suggest the closest of the inventories there are (`-i prd` →
/// `inventories/prod`), and `inventories/ARG` only for a bare name (a path already says where).
fn not_found(arg: &str) -> Diagnostic {
    let d = Diagnostic::error(format!("inventory `{arg}` not found"));
    let mut known: Vec<String> = std::fs::read_dir("inventories")
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    // `-i nope` and `-i inventories/nope` both mean a name under `inventories/`.
    let name = arg.trim_end_matches('/');
    let name = name.strip_prefix("inventories/").unwrap_or(name);
    if !name.contains('/')
        && let Some(c) = crate::diagnostic::closest(name, known.iter().map(String::as_str))
    {
        return d.with_help(format!("did you mean `inventories/{c}`?"));
    }
    let there = if known.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = known.iter().map(|k| format!("`inventories/{k}`")).collect();
        format!(" (here: {})", list.join(", "))
    };
    if arg.contains('/') {
        d.with_help(format!("give the path of an inventory file or directory{there}"))
    } else {
        d.with_help(format!(
            "give a file or directory path, or create `inventories/{arg}`{there}"
        ))
    }
}

/// Load an inventory from its sources, in order (`-i a -i b`, or ansible.cfg's `inventory =
/// a,b`), into one inventory as Ansible merges them: groups and their hosts are the union, a
/// variable a later source sets for the same host or group wins, and each source's directory
/// (a file's parent) is searched for `group_vars/` and `host_vars/` in source order.
/// `extra_vars_dirs` are searched after them (the playbook's directory, in `roll play`).
pub fn load(sources: &Sources, args: &[String], extra_vars_dirs: &[PathBuf]) -> Result<Inventory, Diagnostics> {
    let mut b = Builder::default();
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut first_dir = None;
    let mut missing = Diagnostics::default();
    for arg in args {
        match load_source(sources, arg, &mut b) {
            Ok(Some(dir)) => {
                first_dir.get_or_insert_with(|| dir.clone());
                if !dirs.iter().any(|x| same_dir(x, &dir)) {
                    dirs.push(dir);
                }
            }
            Ok(None) => {}
            Err(d) => missing.push(d),
        }
    }
    if !missing.items.is_empty() {
        return Err(missing);
    }
    for d in extra_vars_dirs {
        if !dirs.iter().any(|x| same_dir(x, d)) {
            dirs.push(d.clone());
        }
    }
    let mut inv = b.finish(sources, &dirs)?;
    check_ports(&inv)?;
    inv.dir = first_dir;
    Ok(inv)
}

/// Read one source into `b`: the directory its `group_vars/` and `host_vars/` are in (none for
/// a host list).
fn load_source(sources: &Sources, arg: &str, b: &mut Builder) -> Result<Option<PathBuf>, Diagnostic> {
    match resolve_path(arg) {
        Some(path) if path.is_dir() => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| Diagnostic::error(format!("cannot read inventory directory `{}`: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !ignored_inventory_file(p))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Diagnostic::error(format!(
                    "inventory directory `{}` holds no inventory file",
                    path.display()
                ))
                .with_help("add a `hosts` (INI) or `hosts.yml` file to it"));
            }
            for f in files {
                load_file(sources, &f, b);
            }
            Ok(Some(path))
        }
        Some(path) => {
            load_file(sources, &path, b);
            Ok(Some(path.parent().map(Path::to_path_buf).unwrap_or_default()))
        }
        // Ansible's `host_list` source: a comma in a name that is no path makes it a list of
        // hosts, even when the parts are paths (`-i a.ini,b.ini` names hosts `a.ini`, `b.ini`).
        None if arg.contains(',') => {
            for name in arg.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                b.add_host(name, None, "ungrouped", Vec::new());
            }
            Ok(None)
        }
        None => Err(not_found(arg)),
    }
}

/// Every host reached over ssh has a port ssh can use: `ansible_port: "22abc"` or `70000` is
/// refused here, at the host, rather than dropped for ssh's default port.
fn check_ports(inv: &Inventory) -> Result<(), Diagnostics> {
    let mut diags = Diagnostics::default();
    for h in &inv.hosts {
        if crate::connection::runs_locally(&h.vars) {
            continue;
        }
        if let Err(e) = crate::connection::ssh::Target::from_vars(&h.name, Some(&h.vars)) {
            let d = match h.span {
                Some(span) => Diagnostic::at(format!("invalid port: {e}"), span),
                None => Diagnostic::error(format!("invalid port: {e}")),
            };
            diags.push(d.with_help("a port is an integer from 1 to 65535, as in `ansible_port=2222`"));
        }
    }
    if diags.items.is_empty() { Ok(()) } else { Err(diags) }
}

/// Parse an inventory from text (YAML when `path` ends in `.yml`/`.yaml`/`.json` or the text
/// looks like YAML, else INI), with no `group_vars/` or `host_vars/`. The fuzz targets use it.
pub fn parse_text(sources: &Sources, path: &Path, text: String) -> Result<Inventory, Diagnostics> {
    let mut b = Builder::default();
    let file = sources.add(path, text);
    parse_file(sources, file, &mut b);
    let inv = b.finish(sources, &[])?;
    check_ports(&inv)?;
    Ok(inv)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    // `hosts` lies in the directory ``, which cannot be canonicalized: it is `.`.
    fn here(p: &Path) -> &Path {
        if p.as_os_str().is_empty() { Path::new(".") } else { p }
    }
    let (a, b) = (here(a), here(b));
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn ignored_inventory_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.')
        || name.ends_with('~')
        // Ansible's INVENTORY_IGNORE_EXTS (a directory may hold a script's README.txt).
        || [
            ".pyc", ".pyo", ".swp", ".bak", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry", ".ini.sample",
        ]
            .iter()
            .any(|s| name.ends_with(s))
        || name == "README"
}

fn load_file(sources: &Sources, path: &Path, b: &mut Builder) {
    // An executable file is a script whose output is the inventory, as Ansible's `script`
    // plugin (tried before the INI and YAML ones) reads it.
    if script::is_script(path) {
        return script::load(path, b);
    }
    let file = match sources.load(path) {
        Ok(f) => f,
        Err(e) => {
            b.diags.push(Diagnostic::unreadable("inventory file", path, &e));
            return;
        }
    };
    parse_file(sources, file, b);
}

/// Parse one inventory file already in `sources`: YAML by extension or by its first line, else
/// INI.
fn parse_file(sources: &Sources, file: FileId, b: &mut Builder) {
    let text = sources.get(file);
    let ext = text.path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let looks_yaml = matches!(ext, "yml" | "yaml" | "json")
        || (ext.is_empty()
            && text
                .text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .is_some_and(|l| l == "---" || (l.ends_with(':') && !l.starts_with('[')) || l.starts_with("all:")));
    if looks_yaml {
        yaml_inv::parse(sources, file, b);
    } else {
        ini::parse(sources, file, b);
    }
}

#[derive(Debug, Default)]
struct RawGroup {
    span: Option<Span>,
    /// In inventory order; a set, so that adding the hosts of a large range stays linear.
    hosts: indexmap::IndexSet<String>,
    children: Vec<(String, Option<Span>)>,
    vars: VarMap,
}

#[derive(Debug, Default)]
struct RawHost {
    span: Option<Span>,
    vars: VarMap,
}

/// Collects what the INI and YAML parsers read, then checks and merges it.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    groups: IndexMap<String, RawGroup>,
    hosts: IndexMap<String, RawHost>,
    template_nodes: Vec<Node>,
    pub(crate) diags: Diagnostics,
}

impl Builder {
    fn group(&mut self, name: &str, span: Option<Span>) -> &mut RawGroup {
        if !self.groups.contains_key("all") {
            self.groups.insert("all".into(), RawGroup::default());
            self.groups.insert("ungrouped".into(), RawGroup::default());
        }
        let g = self.groups.entry(name.to_string()).or_default();
        if g.span.is_none() {
            g.span = span;
        }
        g
    }

    fn add_host(&mut self, name: &str, span: Option<Span>, group: &str, vars: Vec<(String, Value)>) {
        let h = self.hosts.entry(name.to_string()).or_default();
        if h.span.is_none() {
            h.span = span;
        }
        h.vars.extend(vars);
        self.group(group, None).hosts.insert(name.to_string());
    }

    /// A host's own variables (an inventory script's `_meta.hostvars`).
    fn add_vars(&mut self, name: &str, vars: Vec<(String, Value)>) {
        self.hosts.entry(name.to_string()).or_default().vars.extend(vars);
    }

    fn add_child(&mut self, parent: &str, child: &str, span: Option<Span>) {
        self.group(child, span);
        let p = self.group(parent, None);
        if !p.children.iter().any(|(c, _)| c == child) {
            p.children.push((child.to_string(), span));
        }
    }

    fn finish(mut self, sources: &Sources, vars_dirs: &[PathBuf]) -> Result<Inventory, Diagnostics> {
        self.group("all", None);
        // Every group that is nobody's child hangs under `all`; hosts in no group are `ungrouped`.
        let child_names: HashSet<String> = self
            .groups
            .values()
            .flat_map(|g| g.children.iter().map(|(c, _)| c.clone()))
            .collect();
        let roots: Vec<String> = self
            .groups
            .keys()
            .filter(|g| *g != "all" && !child_names.contains(*g))
            .cloned()
            .collect();
        for r in roots {
            self.add_child("all", &r, None);
        }
        // `ungrouped` is `all`'s first child in Ansible, even when a YAML file lists others
        // under `all: children:` first.
        let children = &mut self.groups["all"].children;
        if let Some(i) = children.iter().position(|(c, _)| c == "ungrouped") {
            let u = children.remove(i);
            children.insert(0, u);
        }
        self.check_cycles();
        let grouped: HashSet<String> = self
            .groups
            .iter()
            .filter(|(n, _)| *n != "all" && *n != "ungrouped")
            .flat_map(|(_, g)| g.hosts.iter().cloned())
            .collect();
        // A host another source put in a group leaves `ungrouped`, as Ansible's
        // reconcile_inventory takes it out.
        self.groups["ungrouped"].hosts.retain(|h| !grouped.contains(h));
        let all_hosts = std::mem::take(&mut self.groups["all"].hosts);
        for h in all_hosts {
            if !grouped.contains(&h) {
                self.add_host(&h, None, "ungrouped", Vec::new());
            }
        }
        if !self.diags.is_empty() {
            return Err(self.diags);
        }

        let mut inv = Inventory::default();
        for (name, raw) in &self.hosts {
            inv.index.insert(name.clone(), inv.hosts.len());
            inv.hosts.push(Host {
                name: name.clone(),
                span: raw.span,
                vars: Arc::default(),
                groups: Vec::new(),
            });
        }
        for (name, raw) in &self.groups {
            let hosts = raw.hosts.iter().filter_map(|h| inv.index.get(h).copied()).collect();
            inv.groups.insert(
                name.clone(),
                Group {
                    name: name.clone(),
                    span: raw.span,
                    hosts,
                    children: raw.children.iter().map(|(c, _)| c.clone()).collect(),
                    vars: raw.vars.clone(),
                    depth: 0,
                },
            );
        }
        compute_depths(&mut inv);

        // group_names and the groups that apply to each host, in precedence order.
        let mut host_groups: Vec<Vec<String>> = vec![Vec::new(); inv.hosts.len()];
        let group_names: Vec<String> = inv.groups.keys().cloned().collect();
        for g in &group_names {
            for h in inv.group_hosts(g) {
                host_groups[h].push(g.clone());
            }
        }
        let mut dir_vars = vars_dirs::VarsDirs::load(sources, vars_dirs, &group_names, &self.hosts, &mut self.diags);
        if !self.diags.is_empty() {
            return Err(self.diags);
        }
        self.template_nodes.append(&mut dir_vars.template_nodes);
        for (i, groups) in host_groups.iter_mut().enumerate() {
            groups.sort_by(|a, b| {
                let (ga, gb) = (&inv.groups[a], &inv.groups[b]);
                (ga.depth, &ga.name).cmp(&(gb.depth, &gb.name))
            });
            let name = inv.hosts[i].name.clone();
            let mut vars = VarMap::new();
            for g in groups.iter() {
                vars.extend(inv.groups[g].vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            for layer in dir_vars.group_layers_for(groups) {
                vars.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            vars.extend(self.hosts[&name].vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            for layer in dir_vars.host_layers_for(&name) {
                vars.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            inv.hosts[i].vars = Arc::new(vars);
            inv.hosts[i].groups = groups
                .iter()
                .filter(|g| *g != "all" && *g != "ungrouped")
                .cloned()
                .collect();
            inv.hosts[i].groups.sort();
        }
        inv.template_nodes = self.template_nodes;
        Ok(inv)
    }

    fn check_cycles(&mut self) {
        fn visit(
            g: &str,
            groups: &IndexMap<String, RawGroup>,
            path: &mut Vec<String>,
            done: &mut HashSet<String>,
            out: &mut Option<(Vec<String>, Option<Span>)>,
        ) {
            if out.is_some() || done.contains(g) {
                return;
            }
            path.push(g.to_string());
            if let Some(grp) = groups.get(g) {
                for (c, span) in &grp.children {
                    if let Some(pos) = path.iter().position(|p| p == c) {
                        let mut cycle = path[pos..].to_vec();
                        cycle.push(c.clone());
                        *out = Some((cycle, *span));
                        return;
                    }
                    visit(c, groups, path, done, out);
                }
            }
            path.pop();
            done.insert(g.to_string());
        }
        let mut done = HashSet::new();
        let mut found = None;
        for g in self.groups.keys() {
            visit(g, &self.groups, &mut Vec::new(), &mut done, &mut found);
        }
        if let Some((cycle, span)) = found {
            let mut d = Diagnostic::error(format!(
                "group `{}` is its own ancestor: {}",
                cycle[0],
                cycle.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" → ")
            ))
            .with_help("a group cannot be a child of one of its own children; remove one of these links");
            d.span = span;
            self.diags.push(d);
        }
    }
}

fn compute_depths(inv: &mut Inventory) {
    // Longest distance from `all`: a child is always applied after its parents.
    let names: Vec<String> = inv.groups.keys().cloned().collect();
    let mut depth: HashMap<String, usize> = names.iter().map(|n| (n.clone(), 0)).collect();
    for _ in 0..names.len() {
        let mut changed = false;
        for n in &names {
            let d = depth[n];
            for c in inv.groups[n].children.clone() {
                if depth[&c] < d + 1 {
                    depth.insert(c, d + 1);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (n, g) in inv.groups.iter_mut() {
        g.depth = depth[n];
    }
}

/// Parse an inventory variable value written in INI (`key=value`): numbers, `True`/`False`, JSON
/// lists and mappings, and quoted strings are typed as Ansible types them; anything else is a string.
pub(crate) fn ini_value(raw: &str) -> Value {
    let t = raw.trim();
    if (t.starts_with('"') && t.ends_with('"') && t.len() >= 2)
        || (t.starts_with('\'') && t.ends_with('\'') && t.len() >= 2)
    {
        return Value::from(&t[1..t.len() - 1]);
    }
    match t {
        "True" | "true" => return Value::from(true),
        "False" | "false" => return Value::from(false),
        "None" => return Value::from(()),
        _ => {}
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if t.contains('.')
        && let Ok(f) = t.parse::<f64>()
    {
        return Value::from(f);
    }
    if (t.starts_with('[') || t.starts_with('{'))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(t)
    {
        return crate::values::from_serde(&v);
    }
    Value::from(t)
}

/// Register a parsed variable node for template checking if it holds a template.
pub(crate) fn collect_templates(node: &Node, out: &mut Vec<Node>) {
    match &node.kind {
        crate::yaml::Kind::Str(s) if crate::values::is_template(s) => out.push(node.clone()),
        crate::yaml::Kind::Seq(items) => items.iter().for_each(|n| collect_templates(n, out)),
        crate::yaml::Kind::Map(pairs) => pairs.iter().for_each(|(_, v)| collect_templates(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;

/// The names that mean the controller when the inventory does not name them (ansible-core's
/// `C.LOCALHOST`): a task delegated to one runs locally.
pub fn is_localhost_name(name: &str) -> bool {
    ["localhost", "127.0.0.1", "::1"].contains(&name)
}

//! `group_vars/` and `host_vars/` beside the inventory and the playbook: files (`app.yml`, `app`)
//! or directories of files (`app/main.yml`), read once per run.

use super::{RawHost, VarMap, collect_templates};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::Sources;
use crate::yaml::{self, Kind, Node};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub(super) struct VarsDirs {
    /// Per directory (inventory first, then playbook): group name → variables.
    groups: Vec<HashMap<String, VarMap>>,
    /// Per directory: host name → variables.
    hosts: Vec<HashMap<String, VarMap>>,
    pub template_nodes: Vec<Node>,
}

impl VarsDirs {
    pub fn load(
        sources: &Sources,
        dirs: &[PathBuf],
        groups: &[String],
        hosts: &IndexMap<String, RawHost>,
        diags: &mut Diagnostics,
    ) -> VarsDirs {
        let mut out = VarsDirs::default();
        for dir in dirs {
            let g = read_dir_vars(
                sources,
                &dir.join("group_vars"),
                |n| groups.iter().any(|g| g == n),
                diags,
                &mut out.template_nodes,
            );
            let h = read_dir_vars(
                sources,
                &dir.join("host_vars"),
                |n| hosts.contains_key(n),
                diags,
                &mut out.template_nodes,
            );
            out.groups.push(g);
            out.hosts.push(h);
        }
        out
    }

    /// Group layers for a host whose groups are sorted by depth: every dir's `all`, then every
    /// dir's other groups, as Ansible orders them.
    pub fn group_layers_for<'a>(&'a self, groups: &'a [String]) -> impl Iterator<Item = &'a VarMap> + 'a {
        let alls = self.groups.iter().filter_map(|d| d.get("all"));
        let rest = self
            .groups
            .iter()
            .flat_map(move |d| groups.iter().filter(|g| *g != "all").filter_map(move |g| d.get(g)));
        alls.chain(rest)
    }

    pub fn host_layers_for<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a VarMap> + 'a {
        self.hosts.iter().filter_map(move |d| d.get(host))
    }
}

const EXTS: [&str; 4] = ["yml", "yaml", "json", ""];

fn read_dir_vars(
    sources: &Sources,
    dir: &Path,
    wanted: impl Fn(&str) -> bool,
    diags: &mut Diagnostics,
    templates: &mut Vec<Node>,
) -> HashMap<String, VarMap> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with('.') || file_name.ends_with('~') {
            continue;
        }
        let (stem, ext) = match file_name.rsplit_once('.') {
            Some((s, e)) if EXTS.contains(&e) => (s, e),
            _ => (file_name, ""),
        };
        if path.is_dir() {
            if !wanted(file_name) {
                continue;
            }
            let mut files = Vec::new();
            collect_files(&path, &mut files);
            let vars: &mut VarMap = out.entry(file_name.to_string()).or_default();
            for f in files {
                read_vars_file(sources, &f, vars, diags, templates);
            }
        } else if wanted(stem) && EXTS.contains(&ext) {
            let vars: &mut VarMap = out.entry(stem.to_string()).or_default();
            read_vars_file(sources, &path, vars, diags, templates);
        }
    }
    out
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Read a YAML or JSON file that must hold a mapping of variables; append them to `vars`.
pub(crate) fn read_vars_file(
    sources: &Sources,
    path: &Path,
    vars: &mut VarMap,
    diags: &mut Diagnostics,
    templates: &mut Vec<Node>,
) {
    match parse_vars_file(sources, path) {
        Ok(pairs) => {
            for (k, v) in pairs {
                collect_templates(&v, templates);
                vars.insert(k, v.to_value());
            }
        }
        Err(d) => diags.push(d),
    }
}

/// Parse a variables file into its top-level pairs, keeping the nodes for checking.
pub fn parse_vars_file(sources: &Sources, path: &Path) -> Result<Vec<(String, Node)>, Diagnostic> {
    let file = sources
        .load(path)
        .map_err(|e| Diagnostic::unreadable("variables file", path, &e))?;
    let root = yaml::parse(sources, file)?;
    match root.kind {
        Kind::Null => Ok(Vec::new()),
        Kind::Map(pairs) => {
            let mut out = Vec::new();
            for (k, v) in pairs {
                match k.as_str() {
                    Some(name) if super::ini::valid_var_name(name) => out.push((name.to_string(), v)),
                    _ => {
                        return Err(Diagnostic::at(
                            format!("invalid variable name `{}`", k.scalar_text().unwrap_or_default()),
                            k.span,
                        )
                        .with_help("variable names start with a letter or `_` and hold only letters, digits and `_`"));
                    }
                }
            }
            Ok(out)
        }
        _ => Err(Diagnostic::at(
            format!("a variables file must hold a mapping, found {}", root.type_name()),
            root.span,
        )
        .with_help("write one `name: value` per line")),
    }
}

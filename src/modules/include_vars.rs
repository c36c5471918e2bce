//! `include_vars`: variables from a YAML/JSON file or a directory of them on the controller,
//! found in the task's role (`vars/`) first, then beside the playbook, set on the host.

use super::spec::{BUILTIN, Capability, FreeForm, ModuleSpec, ParamKind, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::source::SourceDir;
use crate::values::VarMap;
use minijinja::Value;
use std::future::ready;
use std::path::{Path, PathBuf};

pub struct IncludeVars;

static INCLUDE_VARS: ModuleSpec = ModuleSpec {
    free_form: FreeForm::Yes,
    free_form_kind: ParamKind::VarsFile,
    params: &[
        p("file").kind(ParamKind::VarsFile),
        p("dir").kind(ParamKind::VarsFile),
        p("name").kind(ParamKind::DefinesVariable),
        p("files_matching"),
        p("ignore_files"),
        p("ignore_unknown_extensions"),
        p("depth"),
        p("extensions"),
        p("hash_behaviour").choices(&["replace", "merge"]),
    ],
    exclusive: &[("file", "dir")],
    capabilities: &[Capability::Controller, Capability::IncludesVars],
    ..ModuleSpec::new("include_vars", BUILTIN)
};

impl Module for IncludeVars {
    fn spec(&self) -> &'static ModuleSpec {
        &INCLUDE_VARS
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(ready(include_vars(args, ctx).map(Plan::Unchanged)))
    }
}

/// Ansible's default extensions of a variables file.
const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

fn include_vars(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let file = args
        .str("file")?
        .or_else(|| args.free.clone().filter(|f| !f.trim().is_empty()));
    let dir = args.str("dir")?;
    let mut files: Vec<PathBuf> = Vec::new();
    match (&file, &dir) {
        (Some(f), _) => match ctx.find_source(f, SourceDir::Vars) {
            Some(path) => files.push(path),
            None => {
                return Err(format!(
                    "could not find or access `{f}` (looked in the role's `vars/` and beside the playbook)"
                )
                .into());
            }
        },
        (None, Some(d)) => {
            let Some(root) =
                crate::source::find_path_in(ctx.role_dir, ctx.playbook_dir, d, SourceDir::Vars).filter(|p| p.is_dir())
            else {
                return Err(
                    format!("`{d}` is not a directory (looked in the role's `vars/` and beside the playbook)").into(),
                );
            };
            let depth = args.f64("depth")?.unwrap_or(0.0) as usize;
            let matching = match args.str("files_matching")? {
                Some(re) => Some(regex::Regex::new(&re).map_err(|e| format!("invalid `files_matching`: {e}"))?),
                None => None,
            };
            let ignore: Vec<String> = list(args.get("ignore_files"));
            let exts: Vec<String> = match args.get("extensions") {
                Some(v) => list(Some(v)),
                None => EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            };
            walk(&root, depth, 1, &mut files);
            files.retain(|f| {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let ext = f
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                exts.contains(&ext) && !ignore.contains(&name) && matching.as_ref().is_none_or(|re| re.is_match(&name))
            });
        }
        (None, None) => {
            return Err("give a file (`include_vars: FILE` or `file:`) or a `dir:`"
                .to_string()
                .into());
        }
    }
    let mut vars = VarMap::new();
    let mut read = Vec::new();
    for f in &files {
        let pairs = crate::inventory::parse_vars_file(ctx.sources, f)
            .map_err(|d| format!("{}: {}", crate::source::display_path(f).display(), d.message))?;
        for (k, v) in pairs {
            vars.insert(k, v.to_value());
        }
        read.push(Value::from(
            f.canonicalize().unwrap_or_else(|_| f.clone()).display().to_string(),
        ));
    }
    let mut r = ModuleResult::ok();
    match args.str("name")? {
        Some(name) => {
            r.facts.insert(name, Value::from_pairs(vars));
        }
        None => r.facts = vars,
    }
    r.data.insert("ansible_included_var_files".into(), Value::from(read));
    Ok(r)
}

fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(v) if v.kind() == minijinja::value::ValueKind::Seq => v
            .try_iter()
            .map(|it| it.map(|x| crate::values::value_to_string(&x)).collect())
            .unwrap_or_default(),
        Some(v) => crate::values::value_to_string(v)
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    }
}

/// Files under `dir`, sorted by name, directories after their level's files; `depth` 0 is
/// unlimited, as in Ansible.
fn walk(dir: &Path, depth: usize, level: usize, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) = entries.into_iter().partition(|p| p.is_dir());
    out.extend(files);
    if depth == 0 || level < depth {
        for d in dirs {
            walk(&d, depth, level + 1, out);
        }
    }
}

/// The variable names a literal `include_vars` defines, for the checker: every variable of the
/// file (or of the directory's files), or the one `name`.
pub fn names_in(path: &Path, sources: &crate::source::Sources) -> Vec<String> {
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, 0, 1, &mut files);
        files.retain(|f| {
            f.extension()
                .is_some_and(|e| EXTENSIONS.contains(&e.to_string_lossy().as_ref()))
        });
    } else {
        files.push(path.to_path_buf());
    }
    files
        .iter()
        .filter_map(|f| crate::inventory::parse_vars_file(sources, f).ok())
        .flatten()
        .map(|(k, _)| k)
        .collect()
}

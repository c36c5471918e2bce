//! Where a playbook's Jinja filters and tests written in Python are: the plugin files found
//! as ansible-core finds them, for `vars::python` to load.

use super::search::{collection_search_path, env_paths, home};
use crate::source::Sources;
use crate::vars::Plugin;
use crate::vars::python::PluginFile;
use std::path::{Path, PathBuf};

/// The plugin files, in ansible-core's search order (a name the first file defines wins):
/// `filter_plugins/` and `test_plugins/` beside the playbook and in each role it uses, then
/// ansible.cfg's `filter_plugins`/`test_plugins` or `ANSIBLE_FILTER_PLUGINS`/`ANSIBLE_TEST_PLUGINS` (by default `~/.ansible/plugins/filter`
/// and `/usr/share/ansible/plugins/filter`, and the same for tests); then the collections'
/// `plugins/filter/` and `plugins/test/`, for the collections beside the playbook and those
/// whose `ns.coll.` the playbook names (a collection is loaded when a name calls on it).
pub(super) fn find(sources: &Sources, playbook_dir: &Path, role_dirs: &[PathBuf]) -> Vec<PluginFile> {
    let mut out = Vec::new();
    for (kind, sub, env, default) in [
        (Plugin::Filter, "filter_plugins", "ANSIBLE_FILTER_PLUGINS", "filter"),
        (Plugin::Test, "test_plugins", "ANSIBLE_TEST_PLUGINS", "test"),
    ] {
        let mut dirs: Vec<PathBuf> = std::iter::once(playbook_dir)
            .chain(role_dirs.iter().map(PathBuf::as_path))
            .map(|d| d.join(sub))
            .collect();
        let configured = sources
            .plugin_path(kind == Plugin::Test)
            .unwrap_or_else(|| env_paths(env));
        if configured.is_empty() {
            dirs.extend(home().map(|h| h.join(".ansible/plugins").join(default)));
            dirs.push(Path::new("/usr/share/ansible/plugins").join(default));
        } else {
            dirs.extend(configured);
        }
        for dir in dirs {
            for path in python_files(&dir) {
                out.push(PluginFile {
                    path,
                    kind,
                    prefix: String::new(),
                    package: None,
                });
            }
        }
    }
    let beside = playbook_dir.join("collections");
    for base in collection_search_path(playbook_dir) {
        for (ns, coll, dir) in collections(&base.join("ansible_collections")) {
            let prefix = format!("{ns}.{coll}.");
            if base != beside && !sources.mention(&prefix) {
                continue;
            }
            for (kind, sub) in [(Plugin::Filter, "filter"), (Plugin::Test, "test")] {
                for path in python_files(&dir.join("plugins").join(sub)) {
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    out.push(PluginFile {
                        package: Some((
                            base.clone(),
                            format!("ansible_collections.{ns}.{coll}.plugins.{sub}.{stem}"),
                        )),
                        path,
                        kind,
                        prefix: prefix.clone(),
                    });
                }
            }
        }
    }
    out
}

/// The `.py` files of a directory (not `__init__.py`), by name.
fn python_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "py") && p.file_name().is_some_and(|n| n != "__init__.py"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The collections under an `ansible_collections/` directory: namespace, name, directory.
fn collections(root: &Path) -> Vec<(String, String, PathBuf)> {
    let names = |d: &Path| -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    for (ns, nsdir) in names(root) {
        for (coll, dir) in names(&nsdir) {
            out.push((ns.clone(), coll, dir));
        }
    }
    out
}

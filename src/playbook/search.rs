//! Where ansible-core looks for what a playbook names: paths from the environment, the home
//! directory, the collections' search path.

use std::path::{Path, PathBuf};

/// A `:`-separated path list from an environment variable (empty entries dropped).
pub(super) fn env_paths(var: &str) -> Vec<PathBuf> {
    std::env::var_os(var)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The directories that hold `ansible_collections/`, in Ansible's order.
pub(super) fn collection_search_path(playbook_dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![playbook_dir.join("collections")];
    let mut configured = env_paths("ANSIBLE_COLLECTIONS_PATH");
    configured.extend(env_paths("ANSIBLE_COLLECTIONS_PATHS"));
    if configured.is_empty() {
        if let Some(h) = home() {
            out.push(h.join(".ansible/collections"));
        }
        out.push("/usr/share/ansible/collections".into());
    } else {
        out.extend(configured);
    }
    out
}

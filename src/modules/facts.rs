//! The facts `gather_facts` provides: their names, the one remote command that reads them, and
//! how its output becomes variables. The checker knows these names before any host is asked.

use crate::values::VarMap;
use minijinja::Value;

/// Facts `gather_facts: true` provides, in the order [`SCRIPT`] prints them.
pub const FACT_NAMES: &[&str] = &[
    "ansible_hostname",
    "ansible_nodename",
    "ansible_fqdn",
    "ansible_architecture",
    "ansible_system",
    "ansible_kernel",
    "ansible_distribution",
    "ansible_distribution_version",
    "ansible_os_family",
    "ansible_user_id",
];

/// One line per fact, in [`FACT_NAMES`] order.
pub const SCRIPT: &str = "hostname; uname -n; hostname -f 2>/dev/null || hostname; uname -m; uname -s; uname -r; \
                  . /etc/os-release 2>/dev/null; echo \"${NAME:-unknown}\"; echo \"${VERSION_ID:-}\"; echo \"${ID_LIKE:-${ID:-}}\"; id -un";

/// The facts in [`SCRIPT`]'s output; a missing line is an empty fact.
pub fn parse(stdout: &str) -> VarMap {
    let lines: Vec<&str> = stdout.lines().collect();
    FACT_NAMES
        .iter()
        .enumerate()
        .map(|(i, k)| (k.to_string(), Value::from(lines.get(i).copied().unwrap_or(""))))
        .collect()
}

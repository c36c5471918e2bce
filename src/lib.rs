//! roll: Ansible-style rollouts of docker web apps behind nginx.
//!
//! # The pipeline
//!
//! Data flows one way, each stage a function from one owned type to the next:
//!
//! ```text
//! load → parse (spans) → check (all diagnostics) → resolve vars → plan → execute → report
//! ```
//!
//! `source` + `yaml` load files and keep spans; `playbook` and `inventory` parse them;
//! `playbook::check` reports every diagnostic before any host is touched; `vars` resolves
//! variables in Ansible's precedence and renders templates; `exec` schedules plays, tasks and
//! hosts over `connection` and runs `modules` (each answers `check` before `apply`); `report`
//! turns the one `exec::events::Event` stream into the human log, JSON Lines and JUnit.
//!
//! # Where to start reading
//!
//! `roll play` is [`commands::play::run`]: it resolves [`settings::Play`] from the command line,
//! calls [`commands::play::load_and_check`] (→ [`playbook::load`], [`inventory::load`],
//! [`playbook::check::check`]), builds [`vars::RunVars`] and an [`exec::Runner`] with its
//! reporters, and runs it. [`exec::Runner::run`] walks plays in `serial` batches and task lists
//! (blocks, handlers, failure policy); `exec::host` takes one task on one host: it renders the
//! task's keywords into a prepared task, opens the connection, and calls [`modules::run`]
//! with the module the parser found in the registry ([`modules::registry`]): its `check`, then
//! `apply` on exactly the plan `check` returned. A module is one file under `src/modules/`
//! plus one line in the registry.
//!
//! # Layers
//!
//! Every top-level module imports only modules below it in this order (a test reads `src/` and
//! fails on an import that runs upward, so the rule cannot silently rot):
//!
//! layers, bottom to top: `exit` `secrets` `vault` `source` `diagnostic` `shell` `clock` `values` `yaml` `batches` `connection` `inventory` `vars` `modules` `playbook` `exec` `report` `cli` `settings` `commands`
//!
//! When two layers need the same thing, it moves down to where both can reach it. Domain code
//! (`playbook`, `exec`, `modules`, `connection`) never prints: only `report` and `commands` do.

pub mod batches;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod connection;
pub mod diagnostic;
pub mod exec;
pub mod exit;
pub mod inventory;
pub mod modules;
pub mod playbook;
pub mod report;
pub mod secrets;
pub mod settings;
pub mod shell;
pub mod source;
pub mod values;
pub mod vars;
pub mod vault;
pub mod yaml;

use clap::{CommandFactory, Parser};

/// Parse the command line and run the subcommand; returns the process exit status.
pub fn run() -> exit::Exit {
    raise_open_files_limit();
    one_malloc_arena();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::Exit::InvalidInput
            } else {
                exit::Exit::Ok
            };
        }
    };
    match cli.command {
        cli::Command::Play(a) => commands::play::run(a),
        cli::Command::Run(a) => commands::run::run(a),
        cli::Command::Inventory(a) => commands::inventory::run(a),
        cli::Command::Vault(a) => commands::vault::run(a),
        cli::Command::Status(a) => commands::status::run(a),
        cli::Command::Lock(a) => commands::lock::run(a),
        cli::Command::Plan(a) => commands::plan::plan(a),
        cli::Command::Apply(a) => commands::plan::apply(a),
        cli::Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when it cannot write, and a reader that
            // stops early (`| head`) is no error.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli::Cli::command(), "roll", &mut script);
            commands::print_out(String::from_utf8_lossy(&script).trim_end_matches('\n'))
        }
    }
}

/// roll's work happens on threads of its own (the play on a thread with a large stack, the
/// hosts on the runtime's workers): with glibc's default, each gets a malloc arena of its own,
/// and the parse and check of a large playbook ran 25% slower in one than in the main arena
/// (`benches/syntax_check.py`: 25.3 ms against 20.0 ms). One arena serves them all; roll
/// allocates little while it waits on hosts. The CLI only: a library caller keeps its own.
fn one_malloc_arena() {
    // SAFETY: mallopt only sets an allocator parameter; called before any thread is started.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// A play holds about four descriptors per host while its connections are open (measured:
/// 2,023 on 500 hosts, benches/fleet_scale.rs), past the usual soft limit of 1,024. Raise the
/// soft limit to the hard one, as cargo and Go programs do; a library caller keeps its own.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod layering {
    //! The layer order in this file's documentation, enforced on every file of `src/`.
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn layers() -> Vec<String> {
        let lib = include_str!("lib.rs");
        let line = lib
            .lines()
            .find(|l| l.starts_with("//! layers, bottom to top:"))
            .expect("lib.rs documents the layers");
        line.split('`').skip(1).step_by(2).map(str::to_string).collect()
    }

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The module path of a file: `src/exec/host.rs` is `[exec, host]`, `src/exec/mod.rs` `[exec]`.
    fn module_path(src: &Path, file: &Path) -> Vec<String> {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        parts
    }

    fn ident(s: &str) -> &str {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        &s[..end]
    }

    /// The top-level modules a file's code names (`crate::x`, `crate::{x, y::z}`, and `super::`
    /// chains that climb to the crate root). Comments are left out.
    fn references(path: &[String], text: &str) -> Vec<String> {
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut out = Vec::new();
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().next_back();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level names of a group: `{a::X, b, c::{Y, Z}}`.
                let mut depth = 0;
                let mut start = true;
                for (k, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            out.push(ident(&group[k..]).to_string());
                            start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                out.push(ident(rest).to_string());
            }
        }
        let mut rest = code.as_str();
        while let Some(i) = rest.find("super::") {
            let before = rest[..i].chars().next_back();
            let mut tail = &rest[i..];
            rest = &rest[i + "super::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut up = 0;
            while let Some(t) = tail.strip_prefix("super::") {
                up += 1;
                tail = t;
            }
            // `use super::*` in a root file's tests names no module.
            if up == path.len() && !ident(tail).is_empty() {
                out.push(ident(tail).to_string());
            }
        }
        out
    }

    #[test]
    fn no_import_runs_up_the_layers() {
        let order = layers();
        let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        all.sort();
        let mut problems = Vec::new();
        for file in &all {
            let path = module_path(&src, file);
            let Some(top) = path.first().filter(|t| *t != "lib" && *t != "main") else {
                continue;
            };
            let shown = file.strip_prefix(src.parent().unwrap()).unwrap().display().to_string();
            let Some(&mine) = rank.get(top.as_str()) else {
                problems.push(format!("{shown}: `{top}` is not in the layer order of src/lib.rs"));
                continue;
            };
            let text = std::fs::read_to_string(file).unwrap();
            for r in references(&path, &text) {
                if r == *top {
                    continue;
                }
                match rank.get(r.as_str()) {
                    Some(&theirs) if theirs < mine => {}
                    Some(_) => problems.push(format!("{shown}: `{top}` imports `{r}`, which is above it")),
                    // Not a module of this crate (`crate::Foo` re-exports, macros): none here.
                    None => problems.push(format!("{shown}: `crate::{r}` names no layer")),
                }
            }
        }
        problems.sort();
        problems.dedup();
        assert!(
            problems.is_empty(),
            "imports that run up the layers (order in src/lib.rs):\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn references_are_read_from_paths_groups_and_super_chains() {
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let text = "use crate::{exec::X, vars, a::{b, c}};\nlet y = crate::clock::utc(0); // crate::commands\nuse super::super::report::Y;";
        assert_eq!(
            references(&p(&["modules", "x"]), text),
            ["exec", "vars", "a", "clock", "report"]
        );
        assert!(references(&p(&["modules", "docker", "x"]), "use super::super::Ctx;").is_empty());
    }
}

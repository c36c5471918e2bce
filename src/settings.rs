//! CLI arguments and the environment turned into resolved settings; no clap types past here.

use crate::diagnostic::Diagnostic;
use crate::source::Sources;
use crate::values::VarMap;
use crate::yaml::{self, Kind};
use std::io::IsTerminal;
use std::path::PathBuf;

/// How output looks.
#[derive(Debug, Clone)]
pub struct Output {
    pub color: bool,
    pub interactive: bool,
    /// Progress bars: stderr is a terminal, not CI.
    pub progress: bool,
}

impl Output {
    pub fn detect() -> Output {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let ci = std::env::var_os("CI").is_some() || std::env::var_os("GITLAB_CI").is_some();
        let tty = std::io::stdout().is_terminal();
        Output {
            color: tty && !no_color && !ci,
            interactive: std::io::stdin().is_terminal() && !ci,
            progress: std::io::stderr().is_terminal() && !ci,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Play {
    pub playbook: PathBuf,
    pub inventory: String,
    pub limit: Option<String>,
    pub extra_vars: VarMap,
    pub opts: crate::exec::Options,
    pub json: bool,
    /// `--junit FILE`: also write the run as a JUnit XML report.
    pub junit: Option<PathBuf>,
    /// `-q`: no progress bars.
    pub quiet: bool,
    pub verbose: u8,
    pub list_hosts: bool,
    pub list_tasks: bool,
    pub list_tags: bool,
    pub syntax_check: bool,
}

impl Play {
    pub fn from_args(a: crate::cli::PlayArgs, sources: &Sources, out: &Output) -> Result<Play, Vec<Diagnostic>> {
        let mut extra_vars = parse_extra_vars(&a.extra_vars, sources)?;
        // Every `roll.deploy_lock` task of the run waits this long for another rollout's lock.
        if let Some(w) = &a.lock_wait {
            extra_vars.insert("roll_lock_wait".into(), minijinja::Value::from(w.as_str()));
        }
        let mut tags: Vec<String> = a
            .tags
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        // `--list-tags` without `--tags` or `--skip-tags` lists every tag, `never` included, as
        // ansible-playbook does (it selects `never,all` then).
        if tags.is_empty() {
            if a.list_tags && a.skip_tags.iter().all(|t| t.trim().is_empty()) {
                tags.push("never".into());
            }
            tags.push("all".into());
        }
        Ok(Play {
            playbook: a.playbook,
            inventory: a.inventory,
            limit: a.limit,
            extra_vars,
            opts: crate::exec::Options {
                check: a.check,
                diff: a.diff,
                forks: a.forks as usize,
                tags,
                skip_tags: a
                    .skip_tags
                    .into_iter()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect(),
                start_at_task: a.start_at_task,
                force_handlers: a.force_handlers,
                interactive: out.interactive,
                ssh: ssh_options(a.ssh),
                command_timeout: (a.command_timeout > 0).then(|| std::time::Duration::from_secs(a.command_timeout)),
            },
            json: a.format == crate::cli::Format::Json,
            junit: a.junit.clone(),
            quiet: a.quiet,
            verbose: a.verbose,
            list_hosts: a.list_hosts,
            list_tasks: a.list_tasks,
            list_tags: a.list_tags,
            syntax_check: a.syntax_check,
        })
    }
}

/// `-e` values in order: `k=v` words, a JSON/YAML mapping, or `@file`.
pub fn parse_extra_vars(items: &[String], sources: &Sources) -> Result<VarMap, Vec<Diagnostic>> {
    let mut vars = VarMap::new();
    let mut errs = Vec::new();
    for item in items {
        let id = if let Some(path) = item.strip_prefix('@') {
            let path = std::path::Path::new(path);
            match sources.load(path) {
                Ok(id) => id,
                Err(e) => {
                    errs.push(Diagnostic::unreadable("extra-vars file", path, &e));
                    continue;
                }
            }
        } else {
            let t = item.trim_start();
            if !(t.starts_with('{') || t.starts_with('[')) {
                for (k, v) in crate::playbook::parse_kv_pub(item) {
                    if !crate::inventory::valid_var_name(&k) {
                        errs.push(
                            Diagnostic::error(format!("invalid variable name `{k}` in `-e {item}`")).with_help(
                                "variable names start with a letter or `_` and hold only letters, digits and `_`",
                            ),
                        );
                        continue;
                    }
                    vars.insert(k, minijinja::Value::from(v));
                }
                if !item.contains('=') {
                    errs.push(
                        Diagnostic::error(format!("cannot read `-e {item}`"))
                            .with_help("write `-e name=value`, `-e '{\"name\": 1}'` or `-e @vars.yml`"),
                    );
                }
                continue;
            }
            sources.add("-e", item.clone())
        };
        match yaml::parse(sources, id) {
            Ok(node) => match &node.kind {
                Kind::Map(pairs) => {
                    for (k, v) in pairs {
                        match k.as_str() {
                            Some(name) if crate::inventory::valid_var_name(name) => {
                                vars.insert(name.to_string(), v.to_value());
                            }
                            _ => errs.push(Diagnostic::at("invalid variable name", k.span)),
                        }
                    }
                }
                Kind::Null => {}
                _ => errs.push(
                    Diagnostic::at(
                        format!("extra vars must be a mapping, found {}", node.type_name()),
                        node.span,
                    )
                    .with_help("write `-e '{\"name\": \"value\"}'`"),
                ),
            },
            Err(d) => errs.push(d),
        }
    }
    if errs.is_empty() { Ok(vars) } else { Err(errs) }
}

/// SSH flags to connection options.
pub fn ssh_options(a: crate::cli::SshArgs) -> crate::connection::ssh::SshOptions {
    crate::connection::ssh::SshOptions {
        config: a.ssh_config,
        known_hosts: a.known_hosts,
        accept_new_host_keys: a.accept_new_host_keys,
        connect_timeout: std::time::Duration::from_secs(a.connect_timeout.max(1)),
        persist: (a.ssh_persist > 0).then(|| std::time::Duration::from_secs(a.ssh_persist)),
        transport: match a.ssh_transport {
            crate::cli::SshTransport::Exec => crate::connection::ssh::Transport::Exec,
            crate::cli::SshTransport::Shell => crate::connection::ssh::Transport::Shell,
        },
        ..Default::default()
    }
}

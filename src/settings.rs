//! CLI arguments and the environment turned into resolved settings; no clap types past here.

use crate::diagnostic::Diagnostic;
use crate::source::Sources;
use crate::values::VarMap;
use crate::yaml::{self, Kind};
use std::io::IsTerminal;
use std::path::PathBuf;

mod ansible_cfg;
pub use ansible_cfg::{AnsibleConfig, Env, ProcessEnv};

/// ansible.cfg (the file Ansible would read) and this process's `ANSIBLE_*` variables.
pub fn ansible_config(sources: &Sources) -> Result<AnsibleConfig, Vec<Diagnostic>> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    ansible_cfg::load(sources, &ProcessEnv, &cwd)
}

/// The inventory sources to read, in order: every `-i` (or ROLL_INVENTORY), else
/// ANSIBLE_INVENTORY / ansible.cfg's `inventory` (a comma-separated list of paths there).
pub fn inventory(args: Vec<String>, cfg: &AnsibleConfig) -> Result<Vec<String>, Diagnostic> {
    if !args.is_empty() {
        return Ok(args);
    }
    if cfg.inventory.is_empty() {
        return Err(Diagnostic::error("no inventory given").with_help(
            "give `-i INVENTORY`, or set `inventory` under `[defaults]` in ansible.cfg (or ANSIBLE_INVENTORY)",
        ));
    }
    Ok(cfg.inventory.iter().map(|p| p.display().to_string()).collect())
}

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

    /// What this terminal and environment allow, with `--color` over it.
    pub fn with_color(when: crate::cli::ColorWhen) -> Output {
        let mut out = Output::detect();
        match when {
            crate::cli::ColorWhen::Always => out.color = true,
            crate::cli::ColorWhen::Never => out.color = false,
            crate::cli::ColorWhen::Auto => {}
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Play {
    pub playbook: PathBuf,
    /// The inventory sources, in order.
    pub inventory: Vec<String>,
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
    /// How plays that do not say `gather_facts` gather (ansible.cfg's `gathering`).
    pub gathering: Option<crate::modules::facts::Gathering>,
    /// The ansible.cfg read, if any (`ansible_config_file`).
    pub config_file: Option<PathBuf>,
}

impl Play {
    /// The run's settings: the command line first, then `cfg` (ansible.cfg and the
    /// `ANSIBLE_*` variables), then roll's defaults.
    pub fn from_args(
        a: crate::cli::PlayArgs,
        cfg: &AnsibleConfig,
        sources: &Sources,
        out: &Output,
    ) -> Result<Play, Vec<Diagnostic>> {
        let inventory = inventory(a.inventory.clone(), cfg).map_err(|d| vec![d])?;
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
            inventory,
            limit: a.limit,
            extra_vars,
            opts: crate::exec::Options {
                check: a.check,
                diff: a.diff,
                forks: a.forks.or(cfg.forks).unwrap_or(50) as usize,
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
                ssh: ssh_options(a.ssh, cfg),
                r#become: cfg.r#become.unwrap_or(false),
                become_user: cfg.become_user.clone(),
                become_exe: cfg.become_exe.clone(),
                become_flags: cfg.become_flags.clone(),
                command_timeout: (a.command_timeout > 0).then(|| std::time::Duration::from_secs(a.command_timeout)),
                stream_output: None,
            },
            json: a.format == crate::cli::Format::Json,
            junit: a.junit.clone(),
            quiet: a.quiet,
            verbose: a.verbose,
            list_hosts: a.list_hosts,
            list_tasks: a.list_tasks,
            list_tags: a.list_tags,
            syntax_check: a.syntax_check,
            gathering: cfg.gathering,
            config_file: cfg.file.clone(),
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

/// SSH flags to connection options; ansible.cfg / `ANSIBLE_*` give what the flags do not
/// (the connection's default user, port and key: a host's own variables still win).
pub fn ssh_options(a: crate::cli::SshArgs, cfg: &AnsibleConfig) -> crate::connection::ssh::SshOptions {
    crate::connection::ssh::SshOptions {
        config: a.ssh_config,
        known_hosts: a.known_hosts,
        accept_new_host_keys: a.accept_new_host_keys,
        host_key_checking: cfg.host_key_checking.unwrap_or(true),
        user: cfg.remote_user.clone(),
        port: cfg.remote_port,
        key: cfg.private_key_file.clone(),
        connect_timeout: std::time::Duration::from_secs(a.connect_timeout.or(cfg.timeout).unwrap_or(10).max(1)),
        persist: (a.ssh_persist > 0).then(|| std::time::Duration::from_secs(a.ssh_persist)),
        transport: match a.ssh_transport {
            crate::cli::SshTransport::Exec => crate::connection::ssh::Transport::Exec,
            crate::cli::SshTransport::Shell => crate::connection::ssh::Transport::Shell,
        },
        ssh_args: cfg.ssh_args.clone(),
        // The command line over the environment and the file, as Ansible's `cli` entries.
        common_args: a.ssh_common_args.or_else(|| cfg.ssh_common_args.clone()),
        extra_args: a.ssh_extra_args.or_else(|| cfg.ssh_extra_args.clone()),
        ..Default::default()
    }
}

/// The run's vault passwords from `--vault-id`, `--vault-password-file`, ANSIBLE_VAULT_PASSWORD_FILE
/// and `--ask-vault-pass`, in Ansible's order. `prompt` asks on the terminal (the command layer's).
pub fn vault_keyring(
    a: &crate::cli::VaultArgs,
    prompt: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<crate::vault::Keyring, Diagnostic> {
    use crate::vault::{DEFAULT_ID, Password};
    let mut slugs: Vec<(String, String)> = Vec::new();
    for id in &a.vault_id {
        match id.split_once('@') {
            Some((label, source)) if !label.is_empty() => slugs.push((label.to_string(), source.to_string())),
            _ => slugs.push((DEFAULT_ID.to_string(), id.trim_start_matches('@').to_string())),
        }
    }
    for f in &a.vault_password_file {
        slugs.push((DEFAULT_ID.to_string(), f.display().to_string()));
    }
    // ANSIBLE_VAULT_PASSWORD_FILE, else ansible.cfg's `vault_password_file`. A configuration
    // that cannot be read is reported by the command that reads it whole.
    if let Some(f) = ansible_config(&Sources::new()).ok().and_then(|c| c.vault_password_file) {
        slugs.push((DEFAULT_ID.to_string(), f.display().to_string()));
    }
    if a.ask_vault_pass {
        slugs.push((DEFAULT_ID.to_string(), "prompt_ask_vault_pass".to_string()));
    }
    let mut passwords = Vec::new();
    for (label, source) in slugs {
        let secret = match source.as_str() {
            "prompt" | "prompt_ask_vault_pass" => {
                let question = if source == "prompt" {
                    format!("Vault password ({label}): ")
                } else {
                    "Vault password: ".to_string()
                };
                prompt(&question).map_err(|e| {
                    Diagnostic::error(format!("cannot ask for the vault password: {e}"))
                        .with_help("on no terminal (CI), give `--vault-password-file FILE` or `--vault-id LABEL@FILE`")
                })?
            }
            path => read_vault_password(std::path::Path::new(path), &label)?,
        };
        if secret.is_empty() {
            return Err(
                Diagnostic::error(format!("the vault password for `{label}` from `{source}` is empty"))
                    .with_help("write the password on the file's first line (or have the script print it)"),
            );
        }
        passwords.push(Password::new(&label, secret));
    }
    Ok(crate::vault::Keyring::new(passwords))
}

/// A vault password from a file (its text, blank space around it removed), or from an
/// executable, which prints it (a `NAME-client` script is asked for the label, as Ansible's
/// vault-id client scripts are).
fn read_vault_password(path: &std::path::Path, label: &str) -> Result<String, Diagnostic> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = crate::source::display_path(path);
    let meta = std::fs::metadata(path).map_err(|e| {
        Diagnostic::error(format!(
            "cannot read the vault password file `{}`: {e}",
            shown.display()
        ))
        .with_help("give an existing file with `--vault-password-file` or `--vault-id LABEL@FILE`")
    })?;
    if !meta.is_file() {
        return Err(Diagnostic::error(format!(
            "the vault password file `{}` is not a regular file",
            shown.display()
        )));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostic::error(format!(
                "cannot read the vault password file `{}`: {e}",
                shown.display()
            ))
        })?;
        return Ok(text.trim().to_string());
    }
    let client = path
        .file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s.ends_with("-client"));
    // A bare name is a file here, not a program to look for in PATH.
    let program = if path.is_relative() && path.components().count() == 1 {
        std::path::Path::new(".").join(path)
    } else {
        path.to_path_buf()
    };
    let mut cmd = std::process::Command::new(program);
    if client {
        cmd.args(["--vault-id", label]);
    }
    let out = cmd.stdin(std::process::Stdio::inherit()).output().map_err(|e| {
        Diagnostic::error(format!(
            "cannot run the vault password script `{}`: {e}",
            shown.display()
        ))
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        return Err(Diagnostic::error(format!(
            "the vault password script `{}` failed ({}){}",
            shown.display(),
            out.status,
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
            }
        ))
        .with_help("an executable password file prints the password on its standard output and exits 0; remove its execute bit if it is the password itself"));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| {
        Diagnostic::error(format!(
            "the vault password script `{}` printed no UTF-8 text",
            shown.display()
        ))
    })?;
    Ok(text.trim_matches(['\r', '\n']).to_string())
}

//! `roll play`: load → parse → check → (list | run) → report.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::exec::{Reporter, Runner};
use crate::exit::Exit;
use crate::inventory;
use crate::playbook::{self, Body, Playbook, Task, check};
use crate::secrets::Secrets;
use crate::settings::{Output, Play};
use crate::source::Sources;
use crate::vars::RunVars;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub fn run(args: crate::cli::PlayArgs) -> Exit {
    run_with(args, None, false).exit
}

/// How a `roll play` ended, and the secrets its run found (for callers that write anything
/// derived from its arguments, as `roll plan` does).
pub struct Played {
    pub exit: Exit,
    pub secrets: Arc<Secrets>,
}

/// `roll play`, with one more view of the events (`roll plan` records them) and, when `quiet`,
/// no log on stdout (`roll apply` checks the world against its plan without printing).
pub fn run_with(args: crate::cli::PlayArgs, extra: Option<Box<dyn Reporter>>, quiet: bool) -> Played {
    // Loading, checking and the run all walk YAML trees and minijinja syntax trees recursively,
    // up to `yaml::MAX_DEPTH` and `values::MAX_EXPR_DEPTH` levels: on a thread whose stack is
    // sized for them, not on the caller's, whose size roll does not know.
    let ran = std::thread::Builder::new()
        .name("roll-play".into())
        .stack_size(RUN_STACK)
        .spawn(move || {
            let mut secrets = Arc::new(Secrets::new());
            let exit = play(args, extra, quiet, &mut secrets);
            Played { exit, secrets }
        });
    match ran.map(|t| t.join()) {
        Ok(Ok(played)) => played,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => {
            eprintln!("error: cannot start the run's thread: {e}");
            Played {
                exit: Exit::Error,
                secrets: Arc::new(Secrets::new()),
            }
        }
    }
}

/// The stack of the thread that loads and checks, and of the run's workers. A 1,000-level
/// expression or YAML tree takes under 8 MiB in a debug build (measured); this leaves room for
/// both at once and for the run's deep futures. Only the pages touched are ever mapped.
pub(crate) const RUN_STACK: usize = 64 << 20;

fn play(args: crate::cli::PlayArgs, extra: Option<Box<dyn Reporter>>, quiet: bool, secrets: &mut Arc<Secrets>) -> Exit {
    let sources = Sources::new();
    let out = Output::with_color(args.color);
    let cfg = match ansible_config(&sources, &out, args.verbose) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let project_inventory = crate::settings::inventory(args.inventory.clone(), &cfg).unwrap_or_default();
    sources.set_project(project_dirs(&args.playbook, &project_inventory));
    if let Some(dirs) = &cfg.roles_path {
        sources.set_roles_path(dirs.clone());
    }
    sources.set_plugin_paths(cfg.filter_plugins.clone(), cfg.test_plugins.clone());
    // Before anything is read: `-e @file`, vars files and inventories may be vault-encrypted.
    match crate::commands::vault::keyring(&args.vault) {
        Ok(k) => sources.set_vault(k),
        Err(d) => return invalid(&sources, d.into(), &out),
    }
    if args.detailed_exitcode && !args.check {
        eprintln!(
            "error: `--detailed-exitcode` says whether a dry run would change anything: it needs `--check`\n  = help: `roll play --check --detailed-exitcode ...`, or `roll plan -o FILE --detailed-exitcode`"
        );
        return Exit::InvalidInput;
    }
    let detailed = args.detailed_exitcode;
    let settings = match Play::from_args(args, &cfg, &sources, &out) {
        Ok(s) => s,
        Err(diags) => return invalid(&sources, Diagnostics { items: diags }, &out),
    };
    let (pb, inv, checked) = match load_and_check(&sources, &settings) {
        Ok(x) => x,
        Err(d) => return invalid(&sources, d, &out),
    };
    let mut stdout = std::io::stdout().lock();
    if settings.syntax_check {
        let _ = writeln!(stdout, "\nplaybook: {}", pb.path.display());
        return Exit::Ok;
    }
    if settings.list_hosts || settings.list_tasks || settings.list_tags {
        let _ = write!(stdout, "{}", listing(&pb, &inv, &checked, &settings));
        return Exit::Ok;
    }
    drop(stdout);
    if let Err(d) = descriptors_suffice(&inv, &checked, settings.opts.forks) {
        return invalid(&sources, d.into(), &out);
    }

    let vars = run_vars(&sources, &pb, inv, &settings);
    *secrets = vars.templar.secrets().clone();
    let log: Box<dyn Reporter> = if quiet {
        Box::new(crate::report::JsonLines::new(std::io::sink()))
    } else if settings.json {
        Box::new(crate::report::JsonLines::new(std::io::stdout()))
    } else {
        Box::new(
            crate::report::Human::new(
                std::io::stdout(),
                out.color,
                settings.verbose,
                settings.opts.diff,
                settings.opts.check,
            )
            .with_sections(std::env::var_os("GITLAB_CI").is_some()),
        )
    };
    // The progress bar wraps the log so that it can clear itself around every line.
    let log: Box<dyn Reporter> = if out.progress && !settings.quiet && !quiet && !settings.json {
        use std::io::IsTerminal;
        Box::new(crate::report::Progress::new(log).with_log_progress(!std::io::stdout().is_terminal()))
    } else {
        log
    };
    let mut views = vec![log];
    if let Some(path) = &settings.junit {
        views.push(Box::new(crate::report::Junit::new(path.clone())));
    }
    views.extend(extra);
    let reporter: Box<dyn Reporter> = Box::new(crate::report::Tee(views));
    let summary = match execute(sources, pb, checked, vars, &settings, reporter, Interrupt::FinishTask) {
        Some(s) => s,
        None => return Exit::Error,
    };
    exit_of(&summary, detailed)
}

/// The run's variables: the inventory's, `-e`, and the magic ones the command line sets.
pub(crate) fn run_vars(sources: &Sources, pb: &Playbook, inv: inventory::Inventory, settings: &Play) -> Arc<RunVars> {
    let inv = Arc::new(inv);
    let playbook_dir = pb.dir.canonicalize().unwrap_or(pb.dir.clone()).display().to_string();
    let vars = RunVars::with_secrets(
        inv,
        settings.extra_vars.clone(),
        playbook_dir,
        sources.secrets().clone(),
        pb.python.clone(),
    );
    vars.templar.set_vault(sources.vault());
    vars.set_run_info(crate::vars::RunInfo {
        run_tags: settings.opts.tags.clone(),
        skip_tags: settings.opts.skip_tags.clone(),
        limit: settings.limit.clone(),
        diff_mode: settings.opts.diff,
        forks: settings.opts.forks,
        verbosity: settings.verbose,
        // The first source's (Ansible names the source each host was first read from).
        inventory_file: settings.inventory.first().and_then(|i| {
            std::path::Path::new(i)
                .is_file()
                .then(|| std::path::absolute(i).ok())
                .flatten()
                .map(|p| p.display().to_string())
        }),
        config_file: settings
            .config_file
            .as_ref()
            .and_then(|p| std::path::absolute(p).ok())
            .map(|p| p.display().to_string()),
    });
    vars
}

/// What the first SIGINT or SIGTERM does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// `roll play`: finish the current task, then stop (a second signal aborts).
    FinishTask,
    /// `roll run`: its one task may never end (`docker logs -f`): stop the remote commands
    /// and close the connections at once.
    StopNow,
}

/// Run a checked playbook with its reporter; `None` when the runtime cannot start.
pub(crate) fn execute(
    sources: Sources,
    pb: Playbook,
    checked: check::Checked,
    vars: Arc<RunVars>,
    settings: &Play,
    reporter: Box<dyn Reporter>,
    on_signal: Interrupt,
) -> Option<crate::exec::Summary> {
    let runner = Arc::new(Runner::new(
        sources,
        Arc::new(pb),
        checked,
        vars,
        settings.opts.clone(),
        reporter,
    ));
    // The hosts' tasks are polled inside the run's future, which is deep (and wide in debug
    // builds), and render templates up to the nesting limit: they run on workers with a stack
    // of known size.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(RUN_STACK)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return None;
        }
    };
    let run = rt.spawn(async move {
        let flag = runner.cancel_flag();
        let aborting = runner.clone();
        tokio::spawn(async move {
            // SIGTERM (a cancelled CI job, systemd) is treated as Ctrl-C: stop cleanly.
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            if on_signal == Interrupt::StopNow {
                if interrupted(&mut term).await {
                    eprintln!("\n[roll] interrupted: stopping the remote commands and closing ssh connections");
                    aborting.silence();
                    tokio::select! {
                        () = aborting.abort() => {}
                        _ = interrupted(&mut term) => {}
                    }
                    std::process::exit(Exit::Interrupted.code() as i32);
                }
                return;
            }
            if interrupted(&mut term).await {
                eprintln!(
                    "\n[roll] interrupted: finishing the current task, then stopping (press Ctrl-C again to abort)"
                );
                flag.store(true, Ordering::SeqCst);
                if interrupted(&mut term).await {
                    // Exiting now leaves the deploy locks held and the masters with their
                    // commands: release and close what can be in a few seconds (a third signal
                    // does not wait for that).
                    eprintln!(
                        "\n[roll] aborting: releasing deploy locks and closing ssh connections (Ctrl-C again to exit now)"
                    );
                    tokio::select! {
                        () = aborting.abort() => {}
                        _ = interrupted(&mut term) => {}
                    }
                    std::process::exit(Exit::Interrupted.code() as i32);
                }
            }
        });
        runner.run().await
    });
    match rt.block_on(run) {
        Ok(summary) => Some(summary),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The exit status of a run, as README and `--help` document it.
pub(crate) fn exit_of(summary: &crate::exec::Summary, detailed: bool) -> Exit {
    if summary.interrupted {
        Exit::Interrupted
    } else if summary.refused {
        // Refused on invalid input found on a host, before anything changed: as for invalid
        // input found before connecting, nothing was run.
        Exit::InvalidInput
    } else if detailed && (summary.any_failed || summary.any_unreachable) {
        // 2 means "would change" here, as in Terraform: a failure is an error.
        Exit::Error
    } else if summary.any_failed {
        Exit::HostFailed
    } else if summary.any_unreachable {
        Exit::Unreachable
    } else if detailed && summary.stats.iter().any(|(_, s)| s.changed > 0) {
        Exit::Changes
    } else {
        Exit::Ok
    }
}

/// ansible.cfg and the `ANSIBLE_*` variables, reported (see [`report_config`]); an invalid one
/// is reported as invalid input.
pub(crate) fn ansible_config(
    sources: &Sources,
    out: &Output,
    verbose: u8,
) -> Result<crate::settings::AnsibleConfig, Exit> {
    let cfg = crate::settings::ansible_config(sources).map_err(|items| invalid(sources, Diagnostics { items }, out))?;
    report_config(&cfg, verbose);
    Ok(cfg)
}

/// What the configuration says about itself: the file read (with `-v`, as ansible-playbook
/// says "Using ... as config file"), the keys roll does not use (with `-v`), and a warning for
/// each setting roll cannot honour.
fn report_config(cfg: &crate::settings::AnsibleConfig, verbose: u8) {
    if verbose > 0 {
        match &cfg.file {
            Some(f) => eprintln!("Using {} as config file", f.display()),
            None => eprintln!("No config file found; using defaults"),
        }
        if !cfg.ignored.is_empty() {
            eprintln!("ansible.cfg settings roll does not use: {}", cfg.ignored.join(", "));
        }
    }
    for w in &cfg.warnings {
        eprintln!("[WARNING]: {w}");
    }
}

/// The hosts a task runs on at once (`--forks`, at most the SSH hosts of the run) each need a
/// master open: when the descriptor limit cannot hold that many, hosts would fail for a local
/// reason, so the run does not start.
pub(crate) fn descriptors_suffice(
    inv: &inventory::Inventory,
    checked: &check::Checked,
    forks: usize,
) -> Result<(), Diagnostic> {
    use crate::connection::ssh::{FDS_PER_MASTER, FDS_RESERVE, descriptor_limit, master_budget};
    let mut ssh_hosts: Vec<usize> = checked
        .play_hosts
        .iter()
        .flatten()
        .copied()
        .filter(|&h| !crate::connection::runs_locally(&inv.hosts[h].vars))
        .collect();
    ssh_hosts.sort_unstable();
    ssh_hosts.dedup();
    let at_once = forks.max(1).min(ssh_hosts.len());
    let limit = descriptor_limit();
    if at_once <= master_budget(limit) {
        return Ok(());
    }
    let needs = at_once as u64 * FDS_PER_MASTER + FDS_RESERVE;
    Err(Diagnostic::error(format!(
        "`--forks {forks}` needs about {needs} open descriptors at once, the limit is {limit}"
    ))
    .with_help(format!(
        "lower -f or raise ulimit -n (each host being worked on holds about {FDS_PER_MASTER})"
    )))
}

/// The project a run reads from: the working directory, the playbook's directory and the
/// inventory's. A file outside them (`vars_files: [/etc/shadow]`) is named in diagnostics but
/// its text is never shown.
pub(crate) fn project_dirs(playbook: &std::path::Path, inventories: &[String]) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![std::path::PathBuf::from(".")];
    let parent = |p: &std::path::Path| {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.to_path_buf())
    };
    dirs.extend(parent(playbook));
    for inv in inventories
        .iter()
        .flat_map(|i| [std::path::PathBuf::from(i), std::path::Path::new("inventories").join(i)])
    {
        if inv.is_dir() {
            dirs.push(inv);
        } else if inv.is_file() {
            dirs.extend(parent(&inv));
        }
    }
    dirs
}

pub(crate) fn invalid(sources: &Sources, d: Diagnostics, out: &Output) -> Exit {
    let color = out.color && std::io::IsTerminal::is_terminal(&std::io::stderr());
    eprint!("{}", d.render(sources, color));
    Exit::InvalidInput
}

/// Everything that must hold before any host is touched.
pub fn load_and_check(
    sources: &Sources,
    s: &Play,
) -> Result<(Playbook, inventory::Inventory, check::Checked), Diagnostics> {
    // Parse the playbook first: its directory holds `group_vars/` too.
    let pb_result = playbook::load_with(sources, &s.playbook, &s.extra_vars);
    let pb_dir = s.playbook.parent().map(|p| {
        if p.as_os_str().is_empty() {
            std::path::PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    });
    let inv_result = inventory::load(sources, &s.inventory, &pb_dir.into_iter().collect::<Vec<_>>());
    let (mut pb, mut inv) = match (pb_result, inv_result) {
        (Ok(pb), Ok(inv)) => (pb, inv),
        (Err(mut a), Err(b)) => {
            a.extend(b);
            return Err(a);
        }
        (Err(a), _) | (_, Err(a)) => return Err(a),
    };
    if let Some(g) = s.gathering {
        pb.set_gathering(g);
    }
    let extra: Vec<String> = s.extra_vars.keys().cloned().collect();
    let checked = check::check(check::CheckInput {
        sources,
        playbook: &pb,
        inventory: &mut inv,
        limit: s.limit.as_deref(),
        extra_vars: &extra,
        start_at_task: s.opts.start_at_task.as_deref(),
        // ansible-playbook's syntax check and listings never look a task's source up.
        purpose: if s.syntax_check || s.list_hosts || s.list_tasks || s.list_tags {
            check::Purpose::Listing
        } else {
            check::Purpose::Run
        },
    })?;
    Ok((pb, inv, checked))
}

/// `--list-hosts`, `--list-tasks` and `--list-tags`, printed as ansible-playbook 2.19 prints them
/// (lib/ansible/cli/playbook.py): the play's tags as a set joined with `,`; each task with its
/// play's, blocks' and own tags merged and sorted; only the tasks `--tags`/`--skip-tags` select,
/// and of a block only its `block:` tasks; handlers never.
fn listing(pb: &Playbook, inv: &inventory::Inventory, checked: &check::Checked, s: &Play) -> String {
    let (only, skip) = (&s.opts.tags, &s.opts.skip_tags);
    let mut out = format!("\nplaybook: {}\n", pb.path.display());
    for (i, play) in pb.plays.iter().enumerate() {
        let mut play_tags: Vec<&str> = Vec::new();
        for t in &play.inherit.tags {
            if !play_tags.contains(&t.as_str()) {
                play_tags.push(t);
            }
        }
        out.push_str(&format!(
            "\n  play #{} ({}): {}\tTAGS: [{}]",
            i + 1,
            play.hosts,
            play.name,
            play_tags.join(",")
        ));
        if s.list_hosts {
            let hosts = &checked.play_hosts[i];
            let patterns: Vec<String> = play.patterns.iter().map(|p| py_str(p)).collect();
            out.push_str(&format!(
                "\n    pattern: [{}]\n    hosts ({}):",
                patterns.join(", "),
                hosts.len()
            ));
            for h in hosts {
                out.push_str(&format!("\n      {}", inv.hosts[*h].name));
            }
        }
        out.push('\n');
        if !(s.list_tasks || s.list_tags) {
            continue;
        }
        let mut listed: Vec<&Task> = Vec::new();
        for tasks in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
            for t in tasks {
                selected_tasks(t, only, skip, &mut listed);
            }
        }
        if s.list_tasks {
            out.push_str("    tasks:\n");
            for t in &listed {
                out.push_str(&format!(
                    "      {}\tTAGS: [{}]\n",
                    t.list_name(),
                    sorted(t.kw.tags.iter().map(String::as_str)).join(", ")
                ));
            }
        }
        if s.list_tags {
            let all = play_tags
                .iter()
                .copied()
                .chain(listed.iter().flat_map(|t| t.kw.tags.iter().map(String::as_str)));
            out.push_str(&format!("      TASK TAGS: [{}]\n", sorted(all).join(", ")));
        }
    }
    out
}

/// The tasks a listing shows, in run order: of a block, only the tasks of its `block:` (Ansible
/// lists neither `rescue:` nor `always:`), each selected by `--tags`/`--skip-tags`.
fn selected_tasks<'a>(t: &'a Task, only: &[String], skip: &[String], out: &mut Vec<&'a Task>) {
    match &t.body {
        Body::Module(_) | Body::Meta(_) | Body::Include(_) => {
            if playbook::tags_select(&t.kw.tags, only, skip) {
                out.push(t);
            }
        }
        Body::Block { block, .. } => {
            for c in block {
                selected_tasks(c, only, skip, out);
            }
        }
    }
}

/// Distinct and sorted, as Ansible prints a task's tags.
fn sorted<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = tags.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A string as Python's `repr` writes it: `--list-hosts` prints the play's patterns as a Python
/// list (`['app', 'db']`).
fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Waits for SIGINT or SIGTERM; false if no signal can be received.
async fn interrupted(term: &mut Option<tokio::signal::unix::Signal>) -> bool {
    let sigterm = async {
        match term {
            Some(t) => t.recv().await.is_some(),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.is_ok(),
        got = sigterm => got,
    }
}

#[cfg(test)]
mod tests {
    use super::py_str;

    #[test]
    fn patterns_are_quoted_as_python_repr_quotes_them() {
        assert_eq!(py_str("app"), "'app'");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_str("tab\there\\"), "'tab\\there\\\\'");
    }
}

//! The scheduler: plays in `serial` batches, each task on every active host at once (up to
//! `--forks`), blocks with rescue/always, handlers, and Ansible's failure policy.

pub mod events;
mod host;

use crate::batches::serial_sizes;
use crate::connection::Connector;
use crate::connection::ssh::SshOptions;
use crate::modules::Capability;
use crate::modules::RunState;
use crate::modules::deploy_lock::{Held, Releaser, release_script};
use crate::modules::lockstep::Lockstep;
use crate::playbook::check::Checked;
use crate::playbook::{Body, MetaAction, Play, Playbook, Task};
use crate::source::Sources;
use crate::values::VarMap;
use crate::vars::{PlayVars, RunVars};
use events::{Event, Stats, Status};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use minijinja::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Receives the run's events (the human, JSON and JUnit reports implement it).
pub trait Reporter: Send {
    fn event(&mut self, e: &Event);
}

#[derive(Debug, Clone)]
pub struct Options {
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub start_at_task: Option<String>,
    pub force_handlers: bool,
    pub interactive: bool,
    pub ssh: SshOptions,
    /// Timeout of a command that has no `timeout:` of its own, so a hung command never hangs
    /// the run.
    pub command_timeout: Option<std::time::Duration>,
    /// Pass commands' output on as `Progress::Output` lines once they have run this long
    /// (`roll run`); `None`: results only.
    pub stream_output: Option<std::time::Duration>,
    /// Whether tasks that do not say `become:` become another user (ansible.cfg's `become`).
    pub r#become: bool,
    /// Whom `become` becomes when the task does not say `become_user:` (else root).
    pub become_user: Option<String>,
    /// ansible.cfg's `become_exe` / `become_flags` (`[privilege_escalation]`).
    pub become_exe: Option<String>,
    pub become_flags: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            check: false,
            diff: false,
            forks: 50,
            tags: vec!["all".into()],
            skip_tags: Vec::new(),
            start_at_task: None,
            force_handlers: false,
            interactive: false,
            ssh: SshOptions::default(),
            command_timeout: Some(std::time::Duration::from_secs(1800)),
            stream_output: None,
            r#become: false,
            become_user: None,
            become_exe: None,
            become_flags: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub stats: Vec<(String, Stats)>,
    pub any_failed: bool,
    pub any_unreachable: bool,
    pub interrupted: bool,
    /// Every failure was a refusal ([`crate::modules::ModuleResult::refused`]) and nothing was
    /// changed: the run stopped on invalid input before touching anything.
    pub refused: bool,
}

pub struct Runner {
    sources: Sources,
    playbook: Arc<Playbook>,
    checked: Arc<Checked>,
    vars: Arc<RunVars>,
    opts: Options,
    reporter: Mutex<Box<dyn Reporter>>,
    stats: Mutex<HashMap<usize, Stats>>,
    /// Hosts in the order they first appeared in the run, for the recap.
    seen: Mutex<Vec<usize>>,
    forks: Arc<Semaphore>,
    started: AtomicBool,
    cancelled: Arc<AtomicBool>,
    connector: Connector,
    /// The run's secrets and deploy locks.
    state: RunState,
    /// Hosts that failed a task by refusing it, and whether any task changed a host.
    refused: Mutex<std::collections::HashSet<usize>>,
    changed: AtomicBool,
    /// No more events reach the reports (`roll run` stopped by a signal: what the closed
    /// connections make of the commands they ran is no result).
    silenced: AtomicBool,
}

/// Per host, within one play.
#[derive(Debug, Default, Clone)]
struct HostState {
    failed: bool,
    unreachable: bool,
    ended: bool,
    /// Handler names and `listen` topics notified and not yet run.
    notified: Vec<String>,
    /// Results other than skipped, counted: a role whose tasks ran on a host has run there.
    ran: u64,
    /// The identities of the roles that have run on the host in this play.
    roles_done: Vec<String>,
    /// `meta: end_role` held the host back until its role's block ends.
    role_ended: bool,
}

pub(crate) struct PlayCtx<'a> {
    play: &'a Play,
    vars: Arc<PlayVars>,
    /// What `--limit` leaves out of the run and of this play.
    limit: Arc<crate::modules::Limit>,
}

/// What happened to one host for one task, applied by the scheduler in host order.
#[derive(Default)]
pub(crate) struct HostOutcome {
    pub host: usize,
    /// Item results and retries, then the task's own result.
    pub events: Vec<Event>,
    pub status: Status,
    pub ignored: bool,
    pub changed: bool,
    pub registered: Option<VarMap>,
    pub facts: VarMap,
    pub meta: Option<MetaAction>,
    /// The failure was a refusal (`ModuleResult::refused`).
    pub refused: bool,
}

impl HostOutcome {
    pub fn new(host: usize) -> HostOutcome {
        HostOutcome {
            host,
            ..HostOutcome::default()
        }
    }
}

impl Runner {
    pub fn new(
        sources: Sources,
        playbook: Arc<Playbook>,
        checked: Checked,
        vars: Arc<RunVars>,
        opts: Options,
        reporter: Box<dyn Reporter>,
    ) -> Runner {
        let started = opts.start_at_task.is_none();
        let state = RunState::new(vars.templar.secrets().clone());
        Runner {
            sources,
            playbook,
            checked: Arc::new(checked),
            vars,
            forks: Arc::new(Semaphore::new(opts.forks.max(1))),
            connector: Connector::new(opts.ssh.clone()),
            state,
            opts,
            reporter: Mutex::new(reporter),
            stats: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
            started: AtomicBool::new(started),
            cancelled: Arc::new(AtomicBool::new(false)),
            refused: Mutex::new(Default::default()),
            changed: AtomicBool::new(false),
            silenced: AtomicBool::new(false),
        }
    }

    /// A flag that stops the run at the next task boundary when set (SIGINT).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// From now on the run's events reach no report.
    pub fn silence(&self) {
        self.silenced.store(true, Ordering::SeqCst);
    }

    fn emit(&self, mut e: Event) {
        if self.silenced.load(Ordering::SeqCst) {
            return;
        }
        // The one way out to every report: secrets are masked here.
        e.mask(&self.state.secrets);
        self.reporter.lock().unwrap_or_else(|p| p.into_inner()).event(&e);
    }

    fn stat(&self, host: usize, f: impl FnOnce(&mut Stats)) {
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if !seen.contains(&host) {
                seen.push(host);
            }
        }
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        f(stats.entry(host).or_default());
    }

    pub async fn run(&self) -> Summary {
        let mut summary = Summary::default();
        let started = std::time::Instant::now();
        self.emit(Event::RunStart {
            playbook: self.playbook.path.display().to_string(),
            check: self.opts.check,
        });
        let plays = async {
            for (i, play) in self.playbook.plays.iter().enumerate() {
                if self.cancelled.load(Ordering::SeqCst) {
                    break;
                }
                let hosts = self.checked.play_hosts[i].clone();
                let stop = self.run_play(play, hosts, self.limit_of(i)).await;
                if stop {
                    break;
                }
            }
        };
        // However the plays end, even by a panic in a task, the locks are released and the
        // connections closed before the run returns (or the panic goes on).
        finally(plays, async {
            self.release_locks().await;
            self.connector.close().await;
        })
        .await;
        summary.interrupted = self.cancelled.load(Ordering::SeqCst);
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut order: Vec<usize> = seen;
        order.sort_by(|a, b| {
            self.vars.inventory.hosts[*a]
                .name
                .cmp(&self.vars.inventory.hosts[*b].name)
        });
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone();
        summary.refused = !refused.is_empty() && !self.changed.load(Ordering::SeqCst);
        for h in order {
            let s = stats.get(&h).copied().unwrap_or_default();
            summary.refused &= s.failed == 0 || refused.contains(&h);
            summary.any_failed |= s.failed > 0;
            summary.any_unreachable |= s.unreachable > 0;
            summary.stats.push((self.vars.inventory.hosts[h].name.clone(), s));
        }
        self.emit(Event::Recap {
            hosts: summary.stats.clone(),
        });
        self.emit(Event::RunEnd {
            duration_ms: started.elapsed().as_millis() as u64,
            failed: summary.any_failed,
            unreachable: summary.any_unreachable,
            interrupted: summary.interrupted,
        });
        summary
    }

    /// Run one play; returns true if the whole run must stop.
    /// What `--limit` leaves out of the run and of play `i`, as modules see it.
    fn limit_of(&self, i: usize) -> Arc<crate::modules::Limit> {
        let name = |h: &usize| self.vars.inventory.hosts[*h].name.clone();
        Arc::new(crate::modules::Limit {
            keeps: self
                .checked
                .limit
                .as_ref()
                .map(|(p, hosts)| (p.clone(), hosts.iter().map(name).collect())),
            play_left_out: self
                .checked
                .limited_out
                .get(i)
                .map(|hs| hs.iter().map(name).collect())
                .unwrap_or_default(),
        })
    }

    async fn run_play(&self, play: &Play, hosts: Vec<usize>, limit: Arc<crate::modules::Limit>) -> bool {
        let names = |hs: &[usize]| {
            hs.iter()
                .map(|h| self.vars.inventory.hosts[*h].name.clone())
                .collect::<Vec<_>>()
        };
        if hosts.is_empty() {
            self.emit(Event::PlayStart {
                name: play.name.clone(),
                hosts: Vec::new(),
            });
            self.emit(Event::NoHostsMatched);
            return false;
        }
        let hosts = self.ordered(play, hosts);
        let all_value = Value::from(names(&hosts));
        let (serial, max_fail) = match self.play_limits(play) {
            Ok(x) => x,
            Err(msg) => {
                // Ansible stops the play at its start: every host fails it.
                self.emit(Event::PlayStart {
                    name: play.name.clone(),
                    hosts: names(&hosts),
                });
                for &h in &hosts {
                    let n = self.vars.inventory.hosts[h].name.clone();
                    self.emit(Event::host(events::HostResult::failed(&n, &msg)));
                    self.stat(h, |s| s.failed += 1);
                }
                return true;
            }
        };
        let mut offset = 0;
        for size in serial_sizes(&serial, hosts.len()) {
            let batch: Vec<usize> = hosts[offset..offset + size].to_vec();
            offset += size;
            self.emit(Event::PlayStart {
                name: play.name.clone(),
                hosts: names(&batch),
            });
            let mut state: HashMap<usize, HostState> = batch.iter().map(|h| (*h, HostState::default())).collect();
            let mut pvars = PlayVars {
                vars: play.vars.clone(),
                role_defaults: play.role_defaults.clone(),
                role_exports: play.role_exports.clone(),
                play_hosts_all: all_value.clone(),
                play_batch: Value::from(names(&batch)),
                check_mode: self.opts.check,
            };
            let mut abort = false;
            // Gathering is tagged `always`, as in Ansible: every `--tags` keeps it, and only
            // `--skip-tags always` skips it. With `--start-at-task`, the plays before the one
            // holding that task gather nothing; that play and the ones after it gather (checked
            // with ansible-core 2.19).
            let start_here = self.opts.start_at_task.as_deref().is_some_and(|n| {
                [&play.pre_tasks, &play.tasks, &play.post_tasks]
                    .iter()
                    .any(|ts| ts.iter().any(|t| contains_start(t, Some(n))))
            });
            if play.gather_facts
                && (self.started.load(Ordering::SeqCst) || start_here)
                && !self.opts.skip_tags.iter().any(|t| t == "always")
            {
                self.gather_facts(&batch, &mut state).await;
                // A host lost while gathering is a failure like any task's: under
                // `any_errors_fatal` the run stops before the first task.
                if play.any_errors_fatal && batch.iter().any(|h| state[h].failed || state[h].unreachable) {
                    abort = abort_batch(&mut state, &batch) == Flow::Abort;
                }
            }
            for tasks in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
                if abort {
                    break;
                }
                let active = self.active(&state, &batch);
                pvars.play_batch = Value::from(names(&active));
                let ctx = PlayCtx {
                    play,
                    vars: Arc::new(clone_play_vars(&pvars)),
                    limit: limit.clone(),
                };
                let flow = self.run_list(&ctx, tasks, &mut state, &batch, false).await;
                abort = flow == Flow::Abort;
                self.flush_handlers(&ctx, &mut state, &batch).await;
                if flow != Flow::Next || self.cancelled.load(Ordering::SeqCst) {
                    break;
                }
            }
            let failed = batch.iter().filter(|h| state[h].failed || state[h].unreachable).count();
            if self.cancelled.load(Ordering::SeqCst) {
                return true;
            }
            if failed == batch.len() {
                self.emit(Event::NoMoreHosts);
                return true;
            }
            if abort {
                return true;
            }
            if let Some(pct) = max_fail
                && (failed as f64) * 100.0 / (batch.len() as f64) > pct
            {
                self.emit(Event::NoMoreHosts);
                return true;
            }
        }
        false
    }

    /// `skipping: [host]` lines of a meta task whose condition does not hold there.
    fn skipping(&self, hosts: &[usize]) {
        for &h in hosts {
            let name = self.vars.inventory.hosts[h].name.clone();
            self.emit(Event::host(events::HostResult::skipped(&name)));
        }
    }

    /// The play's hosts in its `order`.
    fn ordered(&self, play: &Play, mut hosts: Vec<usize>) -> Vec<usize> {
        let name = |h: &usize| self.vars.inventory.hosts[*h].name.clone();
        match play.order {
            crate::playbook::HostOrder::Inventory => {}
            crate::playbook::HostOrder::ReverseInventory => hosts.reverse(),
            crate::playbook::HostOrder::Sorted => hosts.sort_by_key(name),
            crate::playbook::HostOrder::ReverseSorted => {
                hosts.sort_by_key(name);
                hosts.reverse();
            }
            crate::playbook::HostOrder::Shuffle => {
                // A Fisher-Yates shuffle from the clock: no two runs need the same order.
                let mut x = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
                    | 1;
                for i in (1..hosts.len()).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    hosts.swap(i, (x % (i as u64 + 1)) as usize);
                }
            }
        }
        hosts
    }

    /// The play's `serial` and `max_fail_percentage`, rendered when they are templates (with
    /// the play's and the extra vars, as Ansible renders them before any host's).
    fn play_limits(&self, play: &Play) -> Result<(Vec<crate::batches::SerialStep>, Option<f64>), String> {
        let mut serial = play.serial.clone();
        let mut max_fail = play.max_fail_percentage;
        if play.serial_template.is_none() && play.max_fail_template.is_none() {
            return Ok((serial, max_fail));
        }
        let mut vars: VarMap = (*play.vars).clone();
        vars.extend(self.vars.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let scope = Value::from_pairs(vars);
        let render = |n: &crate::yaml::Node| -> Result<Value, String> {
            let src = n.as_str().unwrap_or("");
            let v = self
                .vars
                .templar
                .render(src, &scope)
                .map_err(|e| format!("{} (at {})", e.message, self.sources.location(n.span)))?;
            // A variable that holds a template is rendered once more.
            self.vars.templar.render_deep(&v, &scope).map_err(|e| e.message)
        };
        if let Some(n) = &play.serial_template {
            let v = render(n)?;
            let items: Vec<Value> = match v.kind() {
                minijinja::value::ValueKind::Seq => v.try_iter().map_err(|e| e.to_string())?.collect(),
                _ => vec![v],
            };
            serial = Vec::new();
            for i in items {
                let text = crate::values::value_to_string(&i);
                match crate::batches::SerialStep::parse(&text) {
                    Some(s) => serial.push(s),
                    None => {
                        return Err(format!(
                            "invalid `serial` value `{text}` (at {}): `serial` is {}",
                            self.sources.location(n.span),
                            crate::batches::SERIAL_HELP
                        ));
                    }
                }
            }
        }
        if let Some(n) = &play.max_fail_template {
            let text = crate::values::value_to_string(&render(n)?);
            match text.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => max_fail = Some(p),
                _ => {
                    return Err(format!(
                        "`max_fail_percentage` must be a number from 0 to 100, got `{text}` (at {})",
                        self.sources.location(n.span)
                    ));
                }
            }
        }
        Ok((serial, max_fail))
    }

    fn active(&self, state: &HashMap<usize, HostState>, batch: &[usize]) -> Vec<usize> {
        batch
            .iter()
            .copied()
            .filter(|h| {
                state
                    .get(h)
                    .is_some_and(|s| !s.failed && !s.unreachable && !s.ended && !s.role_ended)
            })
            .collect()
    }

    /// Run tasks on the active hosts of the batch; says whether the play goes on, ends
    /// (`meta: end_play`) or the run stops (`any_errors_fatal`, interrupted). `rescuable`: a
    /// `rescue` section catches failures here, so they are not fatal yet.
    fn run_list<'a>(
        &'a self,
        ctx: &'a PlayCtx<'a>,
        tasks: &'a [Task],
        state: &'a mut HashMap<usize, HostState>,
        batch: &'a [usize],
        rescuable: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Flow> + Send + 'a>> {
        Box::pin(async move {
            for task in tasks {
                if self.cancelled.load(Ordering::SeqCst) {
                    return Flow::Abort;
                }
                let active = self.active(state, batch);
                if active.is_empty() {
                    return Flow::Next;
                }
                match &task.body {
                    Body::Include(inc) => {
                        if !self.started.load(Ordering::SeqCst)
                            && !contains_start(task, self.opts.start_at_task.as_deref())
                        {
                            continue;
                        }
                        if !self.tags_selected(&task.kw.tags) {
                            continue;
                        }
                        let flow = self.run_include(ctx, task, inc, state, batch, &active, rescuable).await;
                        if flow != Flow::Next {
                            return flow;
                        }
                    }
                    Body::Block { .. } if task.role_instance => {
                        // One use of a role: a host it has already run on skips it, unless the
                        // role allows duplicates (Ansible's `role_complete`).
                        let Some(role) = &task.role else { continue };
                        let mut parked = Vec::new();
                        if !role.allow_duplicates {
                            for h in &active {
                                if let Some(s) = state.get_mut(h)
                                    && s.roles_done.contains(&role.identity)
                                {
                                    s.ended = true;
                                    parked.push(*h);
                                }
                            }
                        }
                        let entered: Vec<(usize, u64)> = self
                            .active(state, batch)
                            .into_iter()
                            .map(|h| (h, state[&h].ran))
                            .collect();
                        let mut plain = task.clone();
                        plain.role_instance = false;
                        let flow = self
                            .run_list(ctx, std::slice::from_ref(&plain), state, batch, rescuable)
                            .await;
                        for (h, before) in entered {
                            if let Some(s) = state.get_mut(&h) {
                                s.role_ended = false;
                                if s.ran > before && !s.roles_done.contains(&role.identity) {
                                    s.roles_done.push(role.identity.clone());
                                }
                            }
                        }
                        for h in parked {
                            if let Some(s) = state.get_mut(&h) {
                                s.ended = false;
                            }
                        }
                        if flow != Flow::Next {
                            return flow;
                        }
                    }
                    Body::Block { block, rescue, always } => {
                        if !self.started.load(Ordering::SeqCst)
                            && !contains_start(task, self.opts.start_at_task.as_deref())
                        {
                            continue;
                        }
                        let entered: Vec<usize> = active.clone();
                        let catches = rescuable || !rescue.is_empty();
                        let mut stop = self.run_list(ctx, block, state, batch, catches).await;
                        let failed_in_block: Vec<usize> = entered
                            .iter()
                            .copied()
                            .filter(|h| state[h].failed && !state[h].unreachable)
                            .collect();
                        if stop == Flow::Next && !rescue.is_empty() && !failed_in_block.is_empty() {
                            self.rescue_stats(&failed_in_block);
                            for h in &failed_in_block {
                                if let Some(s) = state.get_mut(h) {
                                    s.failed = false;
                                }
                            }
                            let others: Vec<usize> = entered
                                .iter()
                                .copied()
                                .filter(|h| !failed_in_block.contains(h))
                                .collect();
                            // Hosts that did not fail sit out the rescue section.
                            let mut parked = Vec::new();
                            for h in &others {
                                if let Some(s) = state.get_mut(h)
                                    && !s.ended
                                    && !s.failed
                                    && !s.unreachable
                                {
                                    s.ended = true;
                                    parked.push(*h);
                                }
                            }
                            stop = self.run_list(ctx, rescue, state, batch, rescuable).await;
                            for h in parked {
                                if let Some(s) = state.get_mut(&h) {
                                    s.ended = false;
                                }
                            }
                        }
                        if !always.is_empty() && stop == Flow::Next {
                            // `always` runs on every host that entered the block, failed or not.
                            let mut revived = Vec::new();
                            for h in &entered {
                                if let Some(s) = state.get_mut(h)
                                    && s.failed
                                    && !s.unreachable
                                {
                                    s.failed = false;
                                    revived.push(*h);
                                }
                            }
                            stop = self.run_list(ctx, always, state, batch, rescuable).await;
                            for h in revived {
                                if let Some(s) = state.get_mut(&h) {
                                    s.failed = true;
                                }
                            }
                        }
                        if stop != Flow::Next {
                            return stop;
                        }
                        // An unreachable host is not rescued (as in Ansible), so a failure that
                        // `rescuable` held back is still fatal under any_errors_fatal: once the
                        // block is done, the run stops as it would have outside the block.
                        if !rescuable
                            && let Some(&lost) = entered.iter().find(|h| state[h].unreachable)
                            && self.errors_fatal(ctx, task, lost)
                        {
                            return abort_batch(state, batch);
                        }
                    }
                    Body::Module(_) | Body::Meta(_) => {
                        if !self.started.load(Ordering::SeqCst) {
                            if self.opts.start_at_task.as_deref().is_some_and(|n| task.is_named(n)) {
                                self.started.store(true, Ordering::SeqCst);
                            } else {
                                continue;
                            }
                        }
                        if !self.tags_selected(&task.kw.tags) {
                            continue;
                        }
                        if let Body::Meta(meta) = &task.body {
                            // `end_host` reports per host (run_task announces the task itself
                            // and ends it); every other meta task is started and ended here, so
                            // that a reader of the events sees each `task_start` closed.
                            let own = meta.action != MetaAction::EndHost;
                            let began = std::time::Instant::now();
                            let end = |name: String| Event::TaskEnd {
                                name,
                                duration_ms: began.elapsed().as_millis() as u64,
                            };
                            if own {
                                self.emit(Event::TaskStart {
                                    name: task.display_name(),
                                    handler: false,
                                });
                            }
                            match meta.action {
                                MetaAction::FlushHandlers => self.flush_handlers(ctx, state, batch).await,
                                MetaAction::EndPlay
                                    if active.iter().any(|&h| host::condition_holds(self, ctx, task, h)) =>
                                {
                                    // Ends the play for every host when its condition holds
                                    // for any of them.
                                    self.emit(end(task.display_name()));
                                    return Flow::EndPlay;
                                }
                                MetaAction::ClearHostErrors => {
                                    for s in state.values_mut() {
                                        s.failed = false;
                                    }
                                }
                                MetaAction::EndHost => {
                                    let outs = self.run_task(ctx, task, &active, false).await;
                                    for o in outs {
                                        if o.meta == Some(MetaAction::EndHost)
                                            && let Some(s) = state.get_mut(&o.host)
                                        {
                                            s.ended = true;
                                        }
                                    }
                                }
                                MetaAction::EndBatch => {
                                    let (held, not): (Vec<usize>, Vec<usize>) =
                                        active.iter().partition(|&&h| host::condition_holds(self, ctx, task, h));
                                    if !held.is_empty() {
                                        return Flow::EndPlay;
                                    }
                                    // Shown as Ansible shows it; a skipped meta is not counted.
                                    self.skipping(&not);
                                }
                                MetaAction::EndRole => {
                                    let (held, not): (Vec<usize>, Vec<usize>) =
                                        active.iter().partition(|&&h| host::condition_holds(self, ctx, task, h));
                                    for h in &held {
                                        if let Some(s) = state.get_mut(h) {
                                            s.role_ended = true;
                                        }
                                    }
                                    if !held.is_empty() && !not.is_empty() {
                                        // Ansible's linear strategy runs the meta again for the
                                        // hosts it did not end, under a banner of their own.
                                        self.emit(Event::TaskStart {
                                            name: task.display_name(),
                                            handler: false,
                                        });
                                    }
                                    self.skipping(&not);
                                }
                                MetaAction::ResetConnection => {
                                    // The next command opens a new connection (new groups and
                                    // login settings take effect), as Ansible's reset does.
                                    let names: Vec<String> = active
                                        .iter()
                                        .map(|&h| self.vars.inventory.hosts[h].name.clone())
                                        .collect();
                                    self.connector.reset(&names).await;
                                }
                                // roll's inventory is read once; role completion is tracked
                                // by the role's block.
                                MetaAction::RefreshInventory | MetaAction::RoleComplete => {}
                                MetaAction::EndPlay | MetaAction::Noop => {}
                            }
                            if own {
                                self.emit(end(task.display_name()));
                            }
                            continue;
                        }
                        let outs = self.run_task(ctx, task, &active, false).await;
                        let mut fatal = false;
                        for o in outs {
                            let s = state.entry(o.host).or_default();
                            if o.status != Status::Skipped {
                                s.ran += 1;
                            }
                            match o.status {
                                Status::Failed if !o.ignored => s.failed = true,
                                Status::Unreachable => s.unreachable = true,
                                _ => {}
                            }
                            if o.changed && (matches!(o.status, Status::Changed | Status::Ok) || o.ignored) {
                                for (n, _) in &task.notify {
                                    if !s.notified.contains(n) {
                                        s.notified.push(n.clone());
                                    }
                                }
                            }
                            if (o.status == Status::Failed && !o.ignored) || o.status == Status::Unreachable {
                                fatal |= !rescuable && self.errors_fatal(ctx, task, o.host);
                            }
                        }
                        if fatal {
                            return abort_batch(state, batch);
                        }
                    }
                }
            }
            Flow::Next
        })
    }

    /// An `include_tasks`/`include_role` on the active hosts: its `when` once per host, its
    /// loop, then the included tasks for each group of hosts that got the same file and item,
    /// in the order they first appear (as Ansible groups included files).
    #[allow(clippy::too_many_arguments)]
    async fn run_include(
        &self,
        ctx: &PlayCtx<'_>,
        task: &Task,
        inc: &crate::playbook::Include,
        state: &mut HashMap<usize, HostState>,
        batch: &[usize],
        active: &[usize],
        rescuable: bool,
    ) -> Flow {
        let shown = match (&task.name, inc.kind) {
            (None, crate::playbook::IncludeKind::Role) => {
                format!("{} : {}", inc.written, inc.target.scalar_text().unwrap_or_default())
            }
            _ => host::display_name(self, ctx, task, active[0]),
        };
        self.emit(Event::TaskStart {
            name: shown.clone(),
            handler: false,
        });
        let started = std::time::Instant::now();
        let mut groups: Vec<(String, Option<Value>, Vec<usize>)> = Vec::new();
        let mut fatal = false;
        for &h in active {
            let host_name = self.vars.inventory.hosts[h].name.clone();
            match host::include_targets(self, ctx, task, inc, h) {
                Ok(None) => {
                    self.emit(Event::host(events::HostResult::skipped(&host_name)));
                    self.stat(h, |s| s.skipped += 1);
                }
                Ok(Some(targets)) => {
                    for (target, item) in targets {
                        self.stat(h, |s| s.ok += 1);
                        if let Some(s) = state.get_mut(&h) {
                            s.ran += 1;
                        }
                        match groups.iter_mut().find(|(t, i, _)| *t == target && *i == item) {
                            Some(g) => g.2.push(h),
                            None => groups.push((target, item, vec![h])),
                        }
                    }
                }
                Err(msg) => {
                    self.emit(Event::host(events::HostResult::failed(&host_name, &msg)));
                    self.stat(h, |s| s.failed += 1);
                    if let Some(s) = state.get_mut(&h) {
                        s.failed = true;
                    }
                    fatal |= !rescuable && self.errors_fatal(ctx, task, h);
                }
            }
        }
        for (target, item, hosts) in &groups {
            let shown_target = match inc.kind {
                crate::playbook::IncludeKind::Tasks => {
                    let p = std::path::Path::new(target);
                    let full = if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        inc.base.join(p)
                    };
                    full.canonicalize().unwrap_or(full).display().to_string()
                }
                crate::playbook::IncludeKind::Role => target.clone(),
            };
            self.emit(Event::Included {
                target: shown_target,
                hosts: hosts
                    .iter()
                    .map(|&h| self.vars.inventory.hosts[h].name.clone())
                    .collect(),
                item: item.as_ref().map(crate::values::value_to_string),
            });
        }
        self.emit(Event::TaskEnd {
            name: shown,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        if fatal {
            return abort_batch(state, batch);
        }
        for (target, item, hosts) in groups {
            let tasks = match &inc.tasks {
                Some(t) => t.clone(),
                None => {
                    match crate::playbook::load_include(&self.sources, &ctx.play.dir, inc, task.role.as_ref(), &target)
                    {
                        Ok(t) => t,
                        Err(msg) => {
                            for &h in &hosts {
                                let name = self.vars.inventory.hosts[h].name.clone();
                                self.emit(Event::host(events::HostResult::failed(&name, &msg)));
                                self.stat(h, |s| s.failed += 1);
                                if let Some(s) = state.get_mut(&h) {
                                    s.failed = true;
                                }
                            }
                            continue;
                        }
                    }
                }
            };
            let tasks = match item {
                None => tasks,
                Some(item) => {
                    let mut p = VarMap::new();
                    p.insert(task.loop_control.loop_var.clone(), item.clone());
                    p.insert(
                        "ansible_loop_var".into(),
                        Value::from(task.loop_control.loop_var.as_str()),
                    );
                    let p = Arc::new(p);
                    tasks
                        .into_iter()
                        .map(|mut t| {
                            crate::playbook::add_params(&mut t, &p);
                            t
                        })
                        .collect()
                }
            };
            let mut parked = Vec::new();
            for h in self.active(state, batch) {
                if !hosts.contains(&h)
                    && let Some(s) = state.get_mut(&h)
                {
                    s.ended = true;
                    parked.push(h);
                }
            }
            let flow = self.run_list(ctx, &tasks, state, batch, rescuable).await;
            for h in parked {
                if let Some(s) = state.get_mut(&h) {
                    s.ended = false;
                }
            }
            if flow != Flow::Next {
                return flow;
            }
        }
        Flow::Next
    }

    /// Whether a failure of `host` in `task` stops the run: `any_errors_fatal` on the play or
    /// on the task (or its block).
    fn errors_fatal(&self, ctx: &PlayCtx<'_>, task: &Task, host: usize) -> bool {
        ctx.play.any_errors_fatal
            || task.kw.any_errors_fatal.as_ref().is_some_and(|n| {
                let scope = host::scope(self, ctx, task, host);
                host::flag(self, n, &scope).unwrap_or(false)
            })
    }

    fn tags_selected(&self, tags: &[String]) -> bool {
        crate::playbook::tags_select(tags, &self.opts.tags, &self.opts.skip_tags)
    }

    /// Run one module task on `hosts` and report each host's result in host order.
    async fn run_task(&self, ctx: &PlayCtx<'_>, task: &Task, hosts: &[usize], handler: bool) -> Vec<HostOutcome> {
        let name = host::display_name(self, ctx, task, hosts[0]);
        let started = std::time::Instant::now();
        self.emit(Event::TaskStart {
            name: name.clone(),
            handler,
        });
        let run_once = task.kw.run_once.as_ref().is_some_and(|n| {
            let scope = host::scope(self, ctx, task, hosts[0]);
            host::flag(self, n, &scope).unwrap_or(false)
        });
        let targets: Vec<usize> = if run_once { vec![hosts[0]] } else { hosts.to_vec() };
        // `throttle`: a limit of this task's own, below `--forks`.
        let throttle = task
            .kw
            .throttle
            .as_ref()
            .and_then(|n| {
                let scope = host::scope(self, ctx, task, hosts[0]);
                let v = match n.as_str() {
                    Some(s) => self.vars.templar.render_string(s, &scope).ok()?,
                    None => n.scalar_text()?,
                };
                v.trim().parse::<usize>().ok()
            })
            .filter(|n| *n > 0)
            .map(|n| Arc::new(Semaphore::new(n)));
        // A lockstep task's hosts all run at once: a step waits for every one of them, so
        // holding some behind `--forks` would never finish.
        let lockstep = match &task.body {
            Body::Module(m) if m.spec().has(Capability::Lockstep) => Some(Arc::new(Lockstep::new(targets.len()))),
            _ => None,
        };
        let mut pending: FuturesOrdered<_> = targets
            .iter()
            .map(|&h| {
                let lockstep = lockstep.clone();
                let throttle = throttle.clone();
                async move {
                    let _throttled = match (&throttle, &lockstep) {
                        (Some(t), None) => t.clone().acquire_owned().await.ok(),
                        _ => None,
                    };
                    let _permit = if lockstep.is_none() {
                        self.forks.acquire().await.ok()
                    } else {
                        None
                    };
                    host::run(self, ctx, task, h, lockstep.as_deref()).await
                }
            })
            .collect();
        let mut outs = Vec::new();
        while let Some(o) = pending.next().await {
            self.record(task, &o);
            outs.push(o);
        }
        if run_once && let Some(first) = outs.first() {
            // The one result stands for every host of the batch, as in Ansible.
            for &h in &hosts[1..] {
                if let Some(reg) = &task.register
                    && let Some(v) = &first.registered
                {
                    self.vars.set_fact(h, reg, Value::from_pairs(v.clone()));
                }
                for (k, v) in &first.facts {
                    self.vars.set_var(h, k, v.clone(), includes_vars(task));
                }
            }
            let copies: Vec<HostOutcome> = hosts[1..]
                .iter()
                .map(|&h| HostOutcome {
                    host: h,
                    events: Vec::new(),
                    status: first.status,
                    ignored: first.ignored,
                    changed: first.changed,
                    registered: None,
                    facts: VarMap::new(),
                    meta: first.meta,
                    refused: first.refused,
                })
                .collect();
            outs.extend(copies);
        }
        // A rollout (this run holds a deploy lock) leaves a line in the audit log of every host a
        // task changed.
        if !self.opts.check
            && let Some((app, release)) = self.state.locks.holding()
        {
            let audits = outs
                .iter()
                .filter(|o| o.changed)
                .map(|o| self.audit(ctx, task, o.host, &app, release.as_deref(), &name));
            futures_util::future::join_all(audits).await;
        }
        self.emit(Event::TaskEnd {
            name,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        outs
    }

    /// Emit a host's events, count its stats, store what it registered.
    fn record(&self, task: &Task, o: &HostOutcome) {
        for e in &o.events {
            self.emit(e.clone());
        }
        if o.changed && !self.opts.check {
            self.changed.store(true, Ordering::SeqCst);
        }
        if o.status == Status::Failed && o.refused && !o.ignored {
            self.refused.lock().unwrap_or_else(|p| p.into_inner()).insert(o.host);
        }
        self.stat(o.host, |s| match o.status {
            Status::Ok | Status::Changed => {
                s.ok += 1;
                if o.changed {
                    s.changed += 1;
                }
            }
            Status::Skipped => s.skipped += 1,
            Status::Unreachable => s.unreachable += 1,
            Status::Failed if o.ignored => {
                s.ok += 1;
                s.ignored += 1;
                if o.changed {
                    s.changed += 1;
                }
            }
            Status::Failed => s.failed += 1,
        });
        if let Some(reg) = &task.register
            && let Some(v) = &o.registered
        {
            self.vars.set_fact(o.host, reg, Value::from_pairs(v.clone()));
        }
        // A module's `ansible_facts` are the host's facts (`setup`); `set_fact`'s are variables.
        let gathers = matches!(&task.body, Body::Module(m) if m.spec().has(Capability::GathersFacts));
        let facts = if gathers && !o.facts.is_empty() {
            crate::modules::facts::inject(self.vars.facts(o.host).get("ansible_facts"), &o.facts)
        } else {
            o.facts.clone()
        };
        for (k, v) in facts {
            self.vars.set_var(o.host, &k, v, includes_vars(task));
        }
        // What a `rescue` section reads about the failure that brought it there.
        if o.status == Status::Failed
            && !o.ignored
            && let Some(v) = &o.registered
        {
            let name = task.name.as_ref().and_then(|n| n.scalar_text()).unwrap_or_default();
            self.vars.set_fact(
                o.host,
                "ansible_failed_task",
                Value::from_pairs(vec![("name", Value::from(name))]),
            );
            self.vars
                .set_fact(o.host, "ansible_failed_result", Value::from_pairs(v.clone()));
        }
    }

    /// A failure inside a block with `rescue` counts as rescued, not failed.
    fn rescue_stats(&self, hosts: &[usize]) {
        for &h in hosts {
            self.stat(h, |s| {
                s.failed = s.failed.saturating_sub(1);
                s.rescued += 1;
            });
        }
    }

    async fn flush_handlers(&self, ctx: &PlayCtx<'_>, state: &mut HashMap<usize, HostState>, batch: &[usize]) {
        for handler in &ctx.play.handlers {
            let name = handler.name.as_ref().and_then(|n| n.scalar_text());
            let full = handler.role.as_ref().map(|_| handler.display_name());
            let hosts: Vec<usize> = batch
                .iter()
                .copied()
                .filter(|h| {
                    let s = &state[h];
                    let notified = s
                        .notified
                        .iter()
                        .any(|n| Some(n) == name.as_ref() || Some(n) == full.as_ref() || handler.listen.contains(n));
                    notified
                        && !s.unreachable
                        && !s.ended
                        && (!s.failed || self.opts.force_handlers || ctx.play.force_handlers)
                })
                .collect();
            if hosts.is_empty() {
                continue;
            }
            let outs = self.run_task(ctx, handler, &hosts, true).await;
            for o in outs {
                let s = state.entry(o.host).or_default();
                match o.status {
                    Status::Failed if !o.ignored => s.failed = true,
                    Status::Unreachable => s.unreachable = true,
                    _ => {}
                }
                if o.changed {
                    for (n, _) in &handler.notify {
                        if !s.notified.contains(n) {
                            s.notified.push(n.clone());
                        }
                    }
                }
            }
            for h in &hosts {
                if let Some(s) = state.get_mut(h) {
                    s.notified.retain(|n| {
                        Some(n) != name.as_ref() && Some(n) != full.as_ref() && !handler.listen.contains(n)
                    });
                }
            }
        }
        for s in state.values_mut() {
            s.notified.clear();
        }
    }

    async fn gather_facts(&self, batch: &[usize], state: &mut HashMap<usize, HostState>) {
        let began = std::time::Instant::now();
        self.emit(Event::TaskStart {
            name: "Gathering Facts".into(),
            handler: false,
        });
        let mut pending: FuturesOrdered<_> = batch
            .iter()
            .map(|&h| async move {
                let _permit = self.forks.acquire().await.ok();
                host::gather(self, h).await
            })
            .collect();
        while let Some(o) = pending.next().await {
            if o.status == Status::Unreachable
                && let Some(s) = state.get_mut(&o.host)
            {
                s.unreachable = true;
            }
            if o.status == Status::Failed
                && let Some(s) = state.get_mut(&o.host)
            {
                s.failed = true;
            }
            for e in &o.events {
                self.emit(e.clone());
            }
            self.stat(o.host, |s| match o.status {
                Status::Unreachable => s.unreachable += 1,
                Status::Failed => s.failed += 1,
                _ => s.ok += 1,
            });
            for (k, v) in &o.facts {
                self.vars.set_fact(o.host, k, v.clone());
            }
        }
        self.emit(Event::TaskEnd {
            name: "Gathering Facts".into(),
            duration_ms: began.elapsed().as_millis() as u64,
        });
    }

    /// One audit line on a host (best effort: a host without a writable state directory just
    /// does not get one).
    async fn audit(&self, ctx: &PlayCtx<'_>, task: &Task, h: usize, app: &str, release: Option<&str>, step: &str) {
        let host = &self.vars.inventory.hosts[h];
        let dir = host::scope(self, ctx, task, h)
            .get_attr("roll_state_dir")
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_none())
            .map(|v| crate::values::value_to_string(&v))
            .unwrap_or_else(|| "/var/lib/roll".into());
        let vars = host::connection_vars(self, Some(h));
        let Ok(conn) = self.connector.connect(&host.name, vars.as_deref(), None) else {
            return;
        };
        let step = format!("changed: {step}");
        let line = crate::modules::deploy_lock::audit_line(&dir, app, release, &self.state.secrets.mask(&step));
        let mut cmd = crate::connection::Command::new(format!("mkdir -p {d} && {line}", d = crate::shell::quote(&dir)));
        cmd.timeout = Some(std::time::Duration::from_secs(30));
        let _ = conn.exec(&cmd).await;
    }

    /// The run is aborted (a second Ctrl-C) and the caller exits the process next: the run
    /// stops at once, the deploy locks it holds are released (within a few seconds, every
    /// proxy at once), then every master is told to exit.
    pub async fn abort(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(ABORT_RELEASE_BOUND, self.release_locks()).await;
        self.connector.abort().await;
    }

    /// Deploy locks this run took are released when it ends, however it ended (an error, a
    /// panic in a task, an abort); a run that is killed leaves its locks to expire.
    async fn release_locks(&self) {
        let releases = self.state.locks.take().into_iter().map(|held| self.release(held));
        futures_util::future::join_all(releases).await;
    }

    /// Releases one lock this run holds, where its proxy can be reached.
    async fn release(&self, held: Held) {
        let Some(i) = self.vars.inventory.host(&held.host) else {
            return;
        };
        let host = &self.vars.inventory.hosts[i];
        let vars = host::connection_vars(self, Some(i));
        let Ok(conn) = self.connector.connect(&host.name, vars.as_deref(), None) else {
            return;
        };
        let by = Releaser::Run(self.state.locks.run_id());
        let script = release_script(&held.dir, &held.app, held.release.as_deref(), by, "lock released");
        let mut cmd = crate::connection::Command::new(script);
        cmd.timeout = Some(std::time::Duration::from_secs(30));
        cmd.become_user = held.become_user.clone();
        if let Err(e) = conn.exec(&cmd).await {
            self.emit(Event::Warning {
                message: format!(
                    "could not release the deploy lock of `{}` on {}: {e}; it expires by itself",
                    held.app, host.name
                ),
            });
        }
    }
}

/// How long an aborted run may spend releasing its deploy locks before it exits anyway.
const ABORT_RELEASE_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `work`, then `cleanup`, which runs even when `work` panicked; the panic then goes on.
async fn finally<T>(work: impl std::future::Future<Output = T>, cleanup: impl std::future::Future<Output = ()>) -> T {
    use futures_util::FutureExt;
    let done = std::panic::AssertUnwindSafe(work).catch_unwind().await;
    cleanup.await;
    match done {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Whether the variables a task returns are included vars rather than facts.
fn includes_vars(task: &Task) -> bool {
    matches!(&task.body, Body::Module(m) if m.spec().has(Capability::IncludesVars))
}

/// What a task list tells the play after it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    EndPlay,
    Abort,
}

fn clone_play_vars(p: &PlayVars) -> PlayVars {
    PlayVars {
        vars: p.vars.clone(),
        role_defaults: p.role_defaults.clone(),
        role_exports: p.role_exports.clone(),
        play_hosts_all: p.play_hosts_all.clone(),
        play_batch: p.play_batch.clone(),
        check_mode: p.check_mode,
    }
}

fn contains_start(task: &Task, name: Option<&str>) -> bool {
    let mut found = false;
    task.walk_static(&mut |t: &Task| {
        if name.is_some_and(|n| t.is_named(n)) {
            found = true;
        }
    });
    found
}

/// any_errors_fatal: every host of the batch that is still going stops here, and so does the run.
fn abort_batch(state: &mut HashMap<usize, HostState>, batch: &[usize]) -> Flow {
    for h in batch {
        if let Some(s) = state.get_mut(h)
            && !s.failed
            && !s.unreachable
        {
            s.ended = true;
        }
    }
    Flow::Abort
}

#[cfg(test)]
mod tests {
    use crate::exec::finally;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// No task can be made to panic for real; the guard `Runner::run` puts around its plays is
    /// tested with a work future that panics.
    #[test]
    fn a_mock_panic_in_the_plays_still_runs_the_cleanup_then_goes_on() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let cleaned = AtomicBool::new(false);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(finally(
                async {
                    tokio::task::yield_now().await;
                    panic!("a task panicked");
                },
                async { cleaned.store(true, Ordering::SeqCst) },
            ))
        }));
        assert!(cleaned.load(Ordering::SeqCst), "the cleanup did not run");
        let panic = result.expect_err("the panic went on");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"a task panicked"));
        let cleaned = AtomicBool::new(false);
        let v = rt.block_on(finally(async { 7 }, async { cleaned.store(true, Ordering::SeqCst) }));
        assert_eq!(v, 7);
        assert!(cleaned.load(Ordering::SeqCst));
    }
}

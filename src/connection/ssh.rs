//! SSH through the system `ssh` client (the `openssh` crate, native multiplexing): one master
//! connection per host, opened lazily with a cap on simultaneous starts, shared by every task,
//! each command on its own channel over the control socket (no local process per command).
//! The masters open at once stay within what the descriptor limit allows: past that, the least
//! recently used idle master is closed for the next host, and reopened when its host needs it.
//!
//! Masters die with roll: each is started with a short idle time (`ControlPersist`) and roll
//! holds one mux client connection to it for the whole run, so it is never idle while roll
//! lives and exits seconds after roll's connections close, however roll ended (even SIGKILL).
//! A master still carrying a command is not idle, so a watchdog process, which outlives roll,
//! tells the run's masters to exit as soon as roll is gone.

use super::{Command, ConnError, Output};
use crate::shell::quote;
use crate::values::{VarMap, is_template, port_value, value_to_string};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Channels roll opens at once on one host: below OpenSSH's default `MaxSessions` (10), with one
/// to spare for a person's own session.
pub const CHANNELS_PER_HOST: usize = 8;

/// Descriptors roll holds for one open master: the idle remote shell's three pipes, its
/// control-socket connection, and roll's hold on the master (4 measured for 500 hosts before
/// the hold: 2,023 descriptors).
pub const FDS_PER_MASTER: u64 = 5;

/// Descriptors kept for everything else: the standard streams, the runtime, report files, and
/// the pipes of commands while they run.
pub const FDS_RESERVE: u64 = 48;

/// The process's soft limit on open descriptors (`RLIMIT_NOFILE`).
pub fn descriptor_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok { lim.rlim_cur } else { 1024 }
}

/// How many masters roll holds open at once under a descriptor limit.
pub fn master_budget(limit: u64) -> usize {
    (limit.saturating_sub(FDS_RESERVE) / FDS_PER_MASTER).max(1) as usize
}

/// Seconds a master of this run lives on once no client of its control socket is left. roll
/// holds one for the run ([`Master`]), so this counts only after roll is gone: its masters (and
/// what they run) do not outlive it by more than this, even when it was killed.
const ORPHAN_EXIT_SECS: usize = 3;

/// How long `ssh -O exit` may take on an aborted run before roll exits anyway.
const EXIT_REQUEST_BOUND: Duration = Duration::from_secs(2);

/// How roll connects, from the command line and the environment.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// `-F FILE` for ssh; otherwise the user's own `~/.ssh/config` applies.
    pub config: Option<PathBuf>,
    /// A known_hosts file to use instead of the user's.
    pub known_hosts: Option<PathBuf>,
    /// Accept keys of hosts not yet in known_hosts (changed keys are still refused).
    pub accept_new_host_keys: bool,
    /// Ansible's `host_key_checking`: off, any host key is accepted (`StrictHostKeyChecking=no`).
    pub host_key_checking: bool,
    /// The user, port and key of hosts whose variables name none (ansible.cfg's `remote_user`,
    /// `remote_port`, `private_key_file`).
    pub user: Option<String>,
    pub port: Option<u16>,
    pub key: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    /// Master connections being opened at once.
    pub max_starts: usize,
    /// Keep masters open this long after the run, in a private per-user directory, and reuse
    /// them in the next run (Ansible's ControlPersist). `None`: close them at the end of the run.
    pub persist: Option<Duration>,
    pub transport: Transport,
    /// `[ssh_connection] ssh_args` / ANSIBLE_SSH_ARGS (a host's `ansible_ssh_args` wins):
    /// `None` is Ansible's default, whose only effect, multiplexing, roll provides itself.
    pub ssh_args: Option<String>,
    /// `[ssh_connection] ssh_common_args` / ANSIBLE_SSH_COMMON_ARGS (a host's
    /// `ansible_ssh_common_args` wins).
    pub common_args: Option<String>,
    /// `[ssh_connection] ssh_extra_args` / ANSIBLE_SSH_EXTRA_ARGS (a host's
    /// `ansible_ssh_extra_args` wins).
    pub extra_args: Option<String>,
}

/// How commands travel over a host's master connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A new exec channel per command.
    Exec,
    /// A persistent remote `/bin/sh` per host, commands framed on its stdin.
    Shell,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            config: None,
            known_hosts: None,
            accept_new_host_keys: false,
            host_key_checking: true,
            user: None,
            port: None,
            key: None,
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            max_starts: 30,
            persist: None,
            transport: Transport::Shell,
            ssh_args: None,
            common_args: None,
            extra_args: None,
        }
    }
}

/// Where one inventory host is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The inventory name, for messages.
    pub name: String,
    pub address: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub key: Option<PathBuf>,
    /// The host's `ansible_ssh_args`, `ansible_ssh_common_args` and `ansible_ssh_extra_args`
    /// (over the configuration's: [`SshOptions`]).
    pub ssh_args: Option<String>,
    pub common_args: Option<String>,
    pub extra_args: Option<String>,
}

impl Target {
    /// Where to reach a host, from its connection variables (with or without the `ansible_`
    /// prefix); the host's name is its address unless they say otherwise. A port that is not
    /// 1 to 65535 is an error naming the variable, never dropped for ssh's default.
    pub fn from_vars(host: &str, vars: Option<&VarMap>) -> Result<Target, String> {
        let raw = |k: &str| {
            let prefixed = format!("ansible_{k}");
            vars.and_then(|v| {
                v.get(&prefixed)
                    .map(|x| (prefixed, x))
                    .or_else(|| v.get(k).map(|x| (k.to_string(), x)))
            })
        };
        let get = |k: &str| {
            raw(k)
                .map(|(_, v)| value_to_string(v))
                .filter(|s| !s.is_empty() && !is_template(s))
        };
        let port = match raw("port") {
            Some((name, v)) if !(v.is_none() || is_template(&value_to_string(v))) => {
                Some(port_value(v).map_err(|e| format!("`{name}` of host `{host}`: {e}"))?)
            }
            _ => None,
        };
        Ok(Target {
            name: host.to_string(),
            address: get("host")
                .or_else(|| get("ssh_host"))
                .unwrap_or_else(|| host.to_string()),
            port,
            user: get("user").or_else(|| get("ssh_user")),
            key: get("ssh_private_key_file")
                .or_else(|| get("private_key_file"))
                .map(PathBuf::from),
            // Only with the prefix: Ansible knows these by no other name. An empty value says
            // "none" and wins over the configuration's.
            ssh_args: ssh_arg_var(vars, "ansible_ssh_args"),
            common_args: ssh_arg_var(vars, "ansible_ssh_common_args"),
            extra_args: ssh_arg_var(vars, "ansible_ssh_extra_args"),
        })
    }

    /// The words added to this host's `ssh` command line, in Ansible's order: `ssh_args`, then
    /// `ssh_common_args`, then `ssh_extra_args` (ssh takes the first value it is given of an
    /// option, so `ssh_args` wins over roll's own `-o` settings, which follow it, as it wins
    /// over Ansible's). The `Control*` options are left out: roll runs its own master and
    /// control socket, as Ansible sets its own ControlPath.
    pub fn ssh_words(&self, opts: &SshOptions) -> Result<(Vec<String>, Vec<String>), String> {
        let split = |what: &str, text: Option<&String>| -> Result<Vec<String>, String> {
            let Some(text) = text else { return Ok(Vec::new()) };
            let words = crate::shell::split(text.trim())
                .ok_or_else(|| format!("`{what}` of host `{}` has an unterminated quote: {text}", self.name))?;
            let mut out: Vec<String> = Vec::new();
            let mut it = words
                .into_iter()
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty());
            while let Some(w) = it.next() {
                if w == "-o" {
                    match it.next() {
                        Some(o) if is_control_option(&o) => {}
                        Some(o) => out.extend(["-o".to_string(), o]),
                        None => out.push(w),
                    }
                } else if w.strip_prefix("-o").is_some_and(is_control_option) {
                } else {
                    out.push(w);
                }
            }
            Ok(out)
        };
        let first = split("ssh_args", self.ssh_args.as_ref().or(opts.ssh_args.as_ref()))?;
        let mut last = split(
            "ssh_common_args",
            self.common_args.as_ref().or(opts.common_args.as_ref()),
        )?;
        last.extend(split(
            "ssh_extra_args",
            self.extra_args.as_ref().or(opts.extra_args.as_ref()),
        )?);
        Ok((first, last))
    }
}

/// A host's ssh argument variable, rendered already (a template left is not used).
fn ssh_arg_var(vars: Option<&VarMap>, name: &str) -> Option<String> {
    vars.and_then(|v| v.get(name))
        .filter(|v| !v.is_none() && !v.is_undefined())
        .map(value_to_string)
        .filter(|s| !is_template(s))
}

/// `ControlMaster=...`, `ControlPath ...`, `ControlPersist=...`: options of the multiplexing
/// roll does itself.
fn is_control_option(o: &str) -> bool {
    let name = o.trim_start().split(['=', ' ', '\t']).next().unwrap_or("");
    ["controlmaster", "controlpath", "controlpersist"].contains(&name.to_ascii_lowercase().as_str())
}

/// A host's master and the mux client connection roll holds to it for the run: to OpenSSH an
/// open client counts as a session in use, so ControlPersist's idle timer only starts once
/// this (and every command's own client) is closed, by roll or by the kernel as roll dies.
struct Master {
    session: Arc<Session>,
    _hold: std::os::unix::net::UnixStream,
}

struct Slot {
    target: Target,
    session: tokio::sync::Mutex<Option<Master>>,
    channels: Semaphore,
    /// Idle remote shells (the `shell` transport).
    shells: tokio::sync::Mutex<Vec<RemoteShell>>,
    /// Commands on this host now, waiting or running: its master is not idle.
    busy: AtomicUsize,
    /// When the host last ran a command, in the pool's ticks: the least recently used idle
    /// master is the one closed for another host.
    used: AtomicU64,
    /// One of the pool's `masters` permits, held while this host's master is open.
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

/// Marks a host busy while a command is on its way or running; when it ends the host may be
/// idle, and a host waiting for a master is told.
struct Busy<'a> {
    pool: &'a SshPool,
    slot: &'a Slot,
}

impl<'a> Busy<'a> {
    fn new(pool: &'a SshPool, slot: &'a Slot) -> Busy<'a> {
        slot.busy.fetch_add(1, Ordering::SeqCst);
        Busy { pool, slot }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let tick = self.pool.ticks.fetch_add(1, Ordering::Relaxed);
        self.slot.used.store(tick, Ordering::Relaxed);
        self.slot.busy.fetch_sub(1, Ordering::SeqCst);
        self.pool.idle.notify_waiters();
    }
}

/// Every SSH connection of a run.
pub struct SshPool {
    opts: SshOptions,
    /// A private directory with a short path for the control sockets (socket paths are limited
    /// to about 100 bytes).
    control_dir: tempfile::TempDir,
    starts: Semaphore,
    slots: Mutex<HashMap<Target, Arc<Slot>>>,
    /// Masters open at once, at most: what the descriptor limit allows.
    masters: Arc<Semaphore>,
    /// A command ended: a master may have become idle.
    idle: Notify,
    ticks: AtomicU64,
    /// Set by [`SshPool::abort`]: no master is opened after it.
    aborted: AtomicBool,
    _watchdog: Option<Watchdog>,
}

/// A small process of its own that waits on a pipe from roll; when roll closes it, by ending or
/// by dying, it asks every master of the run to exit (`ssh -O exit`: channels still carrying a
/// command keep a master from going idle) and removes the control directory. Its own process
/// group keeps a terminal's Ctrl-C away from it.
struct Watchdog {
    child: std::process::Child,
}

impl Watchdog {
    const SCRIPT: &'static str = "read _ignored; \
        for s in \"$1\"/.ssh-connection*/master; do \
        [ -S \"$s\" ] && ssh -S \"$s\" -O exit roll >/dev/null 2>&1; done; rm -rf \"$1\"";

    fn start(dir: &Path) -> Option<Watchdog> {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", Watchdog::SCRIPT, "roll-ssh-watchdog"])
            .arg(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .ok()?;
        Some(Watchdog { child })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing the pipe sets it off (the masters are closed by now); it is reaped here.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SshPool({})", self.control_dir.path().display())
    }
}

impl SshPool {
    pub fn new(opts: SshOptions) -> std::io::Result<Arc<SshPool>> {
        let control_dir = tempfile::Builder::new()
            .prefix("roll-")
            .permissions(private())
            .tempdir_in("/tmp")?;
        // Persistent masters are meant to outlive the run: no watchdog for them.
        let watchdog = match opts.persist {
            Some(_) => None,
            None => Watchdog::start(control_dir.path()),
        };
        Ok(Arc::new(SshPool {
            _watchdog: watchdog,
            starts: Semaphore::new(opts.max_starts.max(1)),
            opts,
            control_dir,
            slots: Mutex::default(),
            masters: Arc::new(Semaphore::new(master_budget(descriptor_limit()))),
            idle: Notify::new(),
            ticks: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
        }))
    }

    /// The connection to a target (nothing is opened until the first command).
    pub fn connection(self: &Arc<Self>, target: Target) -> Ssh {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots
            .entry(target.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    target,
                    session: tokio::sync::Mutex::new(None),
                    channels: Semaphore::new(CHANNELS_PER_HOST),
                    shells: tokio::sync::Mutex::new(Vec::new()),
                    busy: AtomicUsize::new(0),
                    used: AtomicU64::new(0),
                    permit: Mutex::new(None),
                })
            })
            .clone();
        Ssh {
            pool: self.clone(),
            slot,
            method: None,
        }
    }

    /// Every host's slot, as they are now.
    fn all_slots(&self) -> Vec<Arc<Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Close the masters of these hosts (`meta: reset_connection`): their next command opens a
    /// new one. A persistent master is closed too, as Ansible's reset closes its socket.
    pub async fn reset(&self, hosts: &[String]) {
        let slots: Vec<Arc<Slot>> = self
            .all_slots()
            .into_iter()
            .filter(|s| hosts.contains(&s.target.name))
            .collect();
        for slot in slots {
            slot.shells.lock().await.clear();
            if let Some(Master { session, _hold }) = slot.session.lock().await.take() {
                drop(_hold);
                close_session(session).await;
            }
            slot.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    /// Close every master connection (persistent masters stay, for the next run).
    pub async fn close(&self) {
        if self.opts.persist.is_some() {
            return;
        }
        let slots = self.all_slots();
        for slot in slots {
            // Idle shells hold the session too; they go first, and so does roll's own hold on
            // the master, which would keep it up.
            slot.shells.lock().await.clear();
            if let Some(Master { session, _hold }) = slot.session.lock().await.take() {
                drop(_hold);
                close_session(session).await;
            }
            slot.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    /// The run is aborted (a second Ctrl-C): every master this run opened is told to exit now,
    /// killing what it runs, within a short bound, and no new one is opened. Persistent masters
    /// (`--ssh-persist`) stay, as asked. Masters this misses exit by themselves once roll is gone.
    pub async fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        if self.opts.persist.is_some() {
            return;
        }
        let slots = self.all_slots();
        // A slot locked now is opening its master: that one is left to its idle exit.
        let sockets: Vec<PathBuf> = slots
            .iter()
            .filter_map(|s| {
                s.session
                    .try_lock()
                    .ok()
                    .and_then(|g| g.as_ref().map(|m| m.session.control_socket().to_path_buf()))
            })
            .collect();
        let exits = sockets.iter().map(|ctl| async move {
            let c = exit_request(ctl).kill_on_drop(true).status();
            let _ = tokio::time::timeout(EXIT_REQUEST_BOUND, c).await;
        });
        futures_util::future::join_all(exits).await;
    }

    async fn session(&self, slot: &Slot) -> Result<Arc<Session>, ConnError> {
        let mut guard = slot.session.lock().await;
        if let Some(m) = guard.as_ref() {
            return Ok(m.session.clone());
        }
        if self.aborted.load(Ordering::SeqCst) {
            return Err(ConnError::Unreachable("the run was aborted".into()));
        }
        let permit = self.master_permit(slot).await?;
        let _start = self
            .starts
            .acquire()
            .await
            .map_err(|_| ConnError::Unreachable("connection pool closed".into()))?;
        let t = &slot.target;
        let mut b = SessionBuilder::default();
        b.known_hosts_check(if !self.opts.host_key_checking {
            KnownHosts::Accept
        } else if self.opts.accept_new_host_keys {
            KnownHosts::Add
        } else {
            KnownHosts::Strict
        })
        .control_directory(self.control_dir.path())
        .connect_timeout(self.opts.connect_timeout)
        .server_alive_interval(self.opts.keepalive)
        .control_persist(ControlPersist::IdleFor(
            NonZeroUsize::new(ORPHAN_EXIT_SECS).unwrap_or(NonZeroUsize::MIN),
        ));
        if let Some(p) = t.port {
            b.port(p);
        }
        if let Some(u) = &t.user {
            b.user(u.clone());
        }
        if let Some(k) = &t.key {
            b.keyfile(k);
        }
        if let Some(c) = &self.opts.config {
            b.config_file(c);
        }
        if let Some(k) = &self.opts.known_hosts {
            b.user_known_hosts_file(k);
        }
        // The master is idle from its start until roll holds it; should it exit in that moment
        // (a machine stalled for seconds), a second one is started.
        let words = t.ssh_words(&self.opts).map_err(ConnError::Unreachable)?;
        let mut tries = 0;
        let master = loop {
            tries += 1;
            let session = match self.opts.persist {
                Some(keep) => self.open_persistent(t, keep, &words).await?,
                // The crate passes no arguments of the user's: this master roll starts itself,
                // in the run's control directory (where the watchdog looks).
                None if !(words.0.is_empty() && words.1.is_empty()) => {
                    let n = self.ticks.fetch_add(1, Ordering::Relaxed);
                    let dir = self.control_dir.path().join(format!(".ssh-connection-args{n}"));
                    std::fs::create_dir(&dir)
                        .and_then(|()| std::fs::set_permissions(&dir, private()))
                        .map_err(|e| ConnError::Unreachable(format!("cannot use the ssh control directory: {e}")))?;
                    let keep = Duration::from_secs(ORPHAN_EXIT_SECS as u64);
                    self.start_master(t, &dir.join("master"), &dir.join("log"), keep, &words)
                        .await?
                }
                None => {
                    let s = b
                        .connect_mux(&t.address)
                        .await
                        .map_err(|e| unreachable(t, &error_text(&e), &self.opts))?;
                    // The crate's directory for this master's socket and log: ours alone too.
                    if let Some(dir) = s.control_socket().parent() {
                        let _ = std::fs::set_permissions(dir, private());
                    }
                    s
                }
            };
            match hold(session.control_socket()).await {
                Ok(h) => {
                    break Master {
                        session: Arc::new(session),
                        _hold: h,
                    };
                }
                Err(e) if tries >= 2 => {
                    return Err(ConnError::Unreachable(format!(
                        "cannot connect to `{}`: its ssh master exited as it started: {e}",
                        t.name
                    )));
                }
                Err(_) => {}
            }
        };
        let session = master.session.clone();
        *guard = Some(master);
        *slot.permit.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
        Ok(session)
    }

    /// A permit to open one more master: at once while the budget has room, else by closing
    /// the least recently used idle master of another host, else when a command ends.
    async fn master_permit(&self, slot: &Slot) -> Result<OwnedSemaphorePermit, ConnError> {
        loop {
            // Registered before looking, so a command that ends meanwhile is not missed.
            let ended = self.idle.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.masters.clone().try_acquire_owned() {
                Ok(p) => return Ok(p),
                Err(tokio::sync::TryAcquireError::Closed) => {
                    return Err(ConnError::Unreachable("connection pool closed".into()));
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => {}
            }
            if !self.close_idle_master(slot).await {
                ended.await;
            }
        }
    }

    /// Close the least recently used master that no command uses (never `except`'s); false if
    /// every open master is busy.
    async fn close_idle_master(&self, except: &Slot) -> bool {
        let mut idle: Vec<Arc<Slot>> = self
            .all_slots()
            .into_iter()
            .filter(|s| !std::ptr::eq(s.as_ref(), except) && s.busy.load(Ordering::SeqCst) == 0)
            .filter(|s| s.permit.lock().unwrap_or_else(|e| e.into_inner()).is_some())
            .collect();
        idle.sort_by_key(|s| s.used.load(Ordering::Relaxed));
        for slot in idle {
            // A master being opened or used holds its lock: not idle after all.
            let Ok(mut guard) = slot.session.try_lock() else {
                continue;
            };
            if slot.busy.load(Ordering::SeqCst) != 0 {
                continue;
            }
            let Some(Master { session, _hold }) = guard.take() else {
                continue;
            };
            slot.shells.lock().await.clear();
            let permit = slot.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(guard);
            drop(_hold);
            close_session(session).await;
            drop(permit);
            return true;
        }
        false
    }

    /// A master that outlives the run: its socket has a fixed name (per target and options) in
    /// a private per-user directory, so the next run finds it. The `openssh` crate names its
    /// sockets at random, so this master is started here and then resumed through the crate.
    async fn open_persistent(
        &self,
        t: &Target,
        keep: Duration,
        words: &(Vec<String>, Vec<String>),
    ) -> Result<Session, ConnError> {
        let dir =
            persist_dir().map_err(|e| ConnError::Unreachable(format!("cannot use the ssh control directory: {e}")))?;
        let ctl = dir.join(format!("cm-{:016x}", self.target_key(t)));
        if ctl.exists() {
            let s = Session::resume_mux(ctl.clone().into_boxed_path(), None);
            if s.check().await.is_ok() {
                return Ok(s);
            }
            let _ = std::fs::remove_file(&ctl);
        }
        let log = ctl.with_extension("log");
        self.start_master(t, &ctl, &log, keep, words).await
    }

    /// Start a master for `t` on the control socket `ctl` that lives `keep` once idle, with the
    /// user's ssh arguments (`words`: before roll's options and after them), then resume it
    /// through the crate.
    async fn start_master(
        &self,
        t: &Target,
        ctl: &Path,
        log: &Path,
        keep: Duration,
        words: &(Vec<String>, Vec<String>),
    ) -> Result<Session, ConnError> {
        let mut c = tokio::process::Command::new("ssh");
        c.arg("-E").arg(log).arg("-S").arg(ctl).args(["-M", "-f", "-N"]);
        c.arg("-o")
            .arg(format!("ControlPersist={}s", keep.as_secs().max(1)))
            .args(["-o", "BatchMode=yes"]);
        c.args(&words.0);
        let strict = if !self.opts.host_key_checking {
            "no"
        } else if self.opts.accept_new_host_keys {
            "accept-new"
        } else {
            "yes"
        };
        c.arg("-o").arg(format!("StrictHostKeyChecking={strict}"));
        c.arg("-o")
            .arg(format!("ConnectTimeout={}", self.opts.connect_timeout.as_secs().max(1)));
        c.arg("-o")
            .arg(format!("ServerAliveInterval={}", self.opts.keepalive.as_secs().max(1)));
        if let Some(p) = t.port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &t.user {
            c.arg("-l").arg(u);
        }
        if let Some(k) = &t.key {
            c.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(k);
        }
        if let Some(f) = &self.opts.config {
            c.arg("-F").arg(f);
        }
        if let Some(k) = &self.opts.known_hosts {
            c.arg("-o").arg(format!("UserKnownHostsFile={}", k.display()));
        }
        c.args(&words.1);
        c.arg("--")
            .arg(&t.address)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let status = c
            .status()
            .await
            .map_err(|e| ConnError::Unreachable(format!("cannot run ssh: {e}")))?;
        if !status.success() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let _ = std::fs::remove_file(log);
            return Err(unreachable(t, &text, &self.opts));
        }
        Ok(Session::resume_mux(
            ctl.to_path_buf().into_boxed_path(),
            Some(log.to_path_buf().into_boxed_path()),
        ))
    }

    /// Same target and same connection options → same master.
    fn target_key(&self, t: &Target) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            t,
            &self.opts.config,
            &self.opts.known_hosts,
            self.opts.accept_new_host_keys,
            self.opts.host_key_checking,
        )
            .hash(&mut h);
        h.finish()
    }

    /// Forget a broken master so that the next command opens a new one.
    async fn drop_session(&self, slot: &Slot, broken: &Arc<Session>) {
        let mut guard = slot.session.lock().await;
        if guard.as_ref().is_some_and(|m| Arc::ptr_eq(&m.session, broken)) {
            *guard = None;
            slot.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

/// Ask a master to exit: through the crate when roll holds the last handle on it, else with
/// `ssh -O exit` (a command was abandoned and still holds it).
async fn close_session(s: Arc<Session>) {
    match Arc::try_unwrap(s) {
        Ok(s) => {
            let _ = s.close().await;
        }
        Err(s) => {
            let _ = exit_request(s.control_socket()).status().await;
        }
    }
}

/// `ssh -O exit` on a master's control socket, quietly.
fn exit_request(ctl: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("ssh");
    c.arg("-S")
        .arg(ctl)
        .args(["-O", "exit", "roll"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// Owner-only permissions, for directories that hold control sockets.
fn private() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o700)
}

/// Opens a mux client connection to the master at `ctl` and says hello (OpenSSH's
/// PROTOCOL.mux); the connection, held open, keeps the master from going idle.
async fn hold(ctl: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    use tokio::io::AsyncReadExt;
    const MUX_MSG_HELLO: u32 = 1;
    const MUX_VERSION: u32 = 4;
    let mut s = tokio::net::UnixStream::connect(ctl).await?;
    let mut hello = Vec::with_capacity(12);
    hello.extend_from_slice(&8u32.to_be_bytes());
    hello.extend_from_slice(&MUX_MSG_HELLO.to_be_bytes());
    hello.extend_from_slice(&MUX_VERSION.to_be_bytes());
    s.write_all(&hello).await?;
    let read = async {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if !(4..=65536).contains(&len) {
            return Err(std::io::Error::other("not an ssh mux master"));
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await?;
        if body[..4] != MUX_MSG_HELLO.to_be_bytes() {
            return Err(std::io::Error::other("not an ssh mux master"));
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| std::io::Error::other("the ssh master did not answer"))??;
    s.into_std()
}

/// The private per-user directory of persistent control sockets.
fn persist_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir());
    let uid = std::fs::metadata("/proc/self")?.uid();
    let dir = match base {
        Some(b) => b.join("roll"),
        None => PathBuf::from(format!("/tmp/roll-{uid}")),
    };
    std::fs::create_dir_all(&dir)?;
    let meta = std::fs::metadata(&dir)?;
    // Another user's directory, or one others can write to, must not hold our sockets.
    if meta.uid() != uid {
        return Err(std::io::Error::other(format!(
            "{} belongs to another user",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

fn error_text(e: &openssh::Error) -> String {
    match e {
        openssh::Error::Connect(io) | openssh::Error::Master(io) => io.to_string(),
        other => other.to_string(),
    }
}

fn unreachable(t: &Target, detail: &str, opts: &SshOptions) -> ConnError {
    let at = match t.port {
        Some(p) => format!("{}:{p}", t.address),
        None => t.address.clone(),
    };
    // ssh names the known_hosts file and line of a changed key ("Offending ED25519 key in
    // FILE:LINE"); an unknown key is not in the file ssh used, which `--known-hosts` names.
    let offending = detail.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Offending ")?;
        let (_, at) = rest.split_once(" key in ")?;
        let (file, line) = at.trim().rsplit_once(':')?;
        Some((file.to_string(), line.to_string()))
    });
    let changed = offending.is_some() || detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED");
    if changed || detail.contains("Host key verification failed") {
        let file = match (&offending, &opts.known_hosts) {
            (Some((f, _)), _) => f.clone(),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => "~/.ssh/known_hosts".to_string(),
        };
        if changed {
            let host = match t.port {
                Some(p) if p != 22 => format!("[{}]:{p}", t.address),
                _ => t.address.clone(),
            };
            let line = offending.as_ref().map(|(_, l)| format!(":{l}")).unwrap_or_default();
            return ConnError::Unreachable(format!(
                "host key of `{}` ({at}) has changed since it was recorded in {file}{line}; if the host \
                 was reinstalled, verify its new key, then remove the old one (`ssh-keygen -R '{host}' -f {file}`) \
                 and connect again with `--accept-new-host-keys`",
                t.name
            ));
        }
        let scan = match t.port {
            Some(p) => format!("ssh-keyscan -p {p} {}", t.address),
            None => format!("ssh-keyscan {}", t.address),
        };
        return ConnError::Unreachable(format!(
            "host key of `{}` ({at}) is unknown: it is not in {file}; verify the key, then add it \
             (`{scan} >> {file}`), or pass `--known-hosts FILE`; `--accept-new-host-keys` accepts keys of new hosts",
            t.name
        ));
    }
    ConnError::Unreachable(format!(
        "cannot connect to `{}` ({at}) over ssh: {}",
        t.name,
        detail.trim()
    ))
}

/// One host's connection: a handle on the pool's master for that host.
#[derive(Clone)]
pub struct Ssh {
    pool: Arc<SshPool>,
    slot: Arc<Slot>,
    /// How `become` runs commands (`None`: roll's default sudo).
    pub(super) method: Option<Arc<super::BecomeMethod>>,
}

impl std::fmt::Debug for Ssh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ssh({})", self.slot.target.name)
    }
}

impl Ssh {
    /// Run `f` with this host's master open, given its control socket, for a controller
    /// program that speaks ssh itself (rsync's `--rsh`): through the socket it reaches the host
    /// exactly as roll does (user, port, key, ssh config, known hosts), with no second login.
    /// The host counts as busy meanwhile, so its master is not closed for another host's.
    pub async fn over_master<F, Fut, T>(&self, f: F) -> Result<T, ConnError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let _busy = Busy::new(&self.pool, &self.slot);
        let _channel = self
            .slot
            .channels
            .acquire()
            .await
            .map_err(|_| ConnError::Unreachable("closed".into()))?;
        let session = self.pool.session(&self.slot).await?;
        let socket = session.control_socket().to_path_buf();
        Ok(f(socket).await)
    }

    /// Where this connection goes (inventory name, address, port, user, key).
    pub fn target(&self) -> &Target {
        &self.slot.target
    }

    pub async fn exec(&self, cmd: &Command) -> Result<Output, ConnError> {
        let _busy = Busy::new(&self.pool, &self.slot);
        let _channel = self
            .slot
            .channels
            .acquire()
            .await
            .map_err(|_| ConnError::Unreachable("closed".into()))?;
        // `/bin/sh -c SCRIPT` runs every command in a process of its own, so no state leaks from
        // one task to the next; with a timeout, coreutils' `timeout` kills the command (and its
        // process group) on the host itself, so nothing keeps running after roll gives up.
        // Environment values are assignments read by the shell that starts the command, not
        // words of its argument list, so `ps` on the host does not show them.
        let (env, script) = cmd.split_env(self.method.as_deref().unwrap_or(&super::BecomeMethod::default()));
        let assign: String = env.iter().map(|(k, v)| format!("{k}={} ", quote(v))).collect();
        let mut line = format!("/bin/sh -c {}", quote(&script));
        if let Some(t) = cmd.timeout {
            line = format!("timeout -k 5 {} {line}", t.as_secs().max(1));
        }
        line = format!("{assign}{line}");
        let streamed = cmd.lines.as_ref().filter(|_| cmd.stdin.is_none());
        if streamed.is_some() {
            line = super::streamed_line(&line);
        }
        let mut retried = false;
        loop {
            let session = self.pool.session(&self.slot).await?;
            let result = match (streamed, self.pool.opts.transport) {
                // A channel of its own: its end is the command's end on the host.
                (Some(sink), _) => self.run_streamed(&session, &line, cmd, sink).await,
                (None, Transport::Shell) => self.run_in_shell(&session, &line, cmd).await,
                (None, Transport::Exec) => self.run_on_channel(&session, &line, cmd).await,
            };
            match result {
                Ok(out) => {
                    if let Some(t) = cmd.timeout
                        && (out.rc == 124 || out.rc == 137)
                    {
                        return Err(ConnError::Timeout(t.as_secs()));
                    }
                    return Ok(out);
                }
                Err(RunError::Timeout) => return Err(ConnError::Timeout(cmd.timeout.map_or(0, |t| t.as_secs()))),
                Err(RunError::Connection { started, msg }) => {
                    self.pool.drop_session(&self.slot, &session).await;
                    // A command that never started is sent again once over a new master (the old
                    // one was killed, or the network blinked); one that started may have acted, so
                    // it is never repeated.
                    if started || retried || session.check().await.is_ok() {
                        return Err(ConnError::Unreachable(format!(
                            "lost the ssh connection to `{}`: {msg}",
                            self.slot.target.name
                        )));
                    }
                    retried = true;
                }
                Err(RunError::Failed(msg)) => return Err(ConnError::Failed(msg)),
            }
        }
    }

    /// One exec channel per command.
    async fn run_on_channel(&self, session: &Session, line: &str, cmd: &Command) -> Result<Output, RunError> {
        let mut c = session.raw_command(line);
        c.stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().await.map_err(|e| classify(e, false))?;
        if let Some(data) = &cmd.stdin
            && let Some(mut stdin) = child.stdin().take()
        {
            let data = data.clone();
            tokio::spawn(async move {
                let _ = stdin.write_all(&data).await;
                let _ = stdin.shutdown().await;
            });
        }
        let wait = child.wait_with_output();
        let out = match cmd.timeout {
            // The host kills the command at its timeout; this local deadline only catches a host
            // that stopped answering altogether.
            Some(t) => tokio::time::timeout(t + Duration::from_secs(15), wait)
                .await
                .map_err(|_| RunError::Timeout)?,
            None => wait.await,
        }
        .map_err(|e| classify(e, true))?;
        Ok(Output {
            rc: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// One exec channel whose output is passed on line by line; its standard input stays open
    /// while roll waits, and closes when roll stops waiting (the future is dropped) or the
    /// master goes, which ends the command on the host (see `streamed_line`).
    async fn run_streamed(
        &self,
        session: &Session,
        line: &str,
        cmd: &Command,
        sink: &super::LineSink,
    ) -> Result<Output, RunError> {
        let mut c = session.raw_command(line);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().await.map_err(|e| classify(e, false))?;
        let _stdin = child.stdin().take();
        let lost = |e: std::io::Error| RunError::Connection {
            started: true,
            msg: e.to_string(),
        };
        let (Some(out), Some(err)) = (child.stdout().take(), child.stderr().take()) else {
            return Err(RunError::Connection {
                started: false,
                msg: "the channel has no pipes".into(),
            });
        };
        let read = super::read_streaming(out, err, sink);
        let (stdout, stderr) = match cmd.timeout {
            Some(t) => tokio::time::timeout(t + Duration::from_secs(15), read)
                .await
                .map_err(|_| RunError::Timeout)?,
            None => read.await,
        }
        .map_err(lost)?;
        let status = child.wait().await.map_err(|e| classify(e, true))?;
        Ok(Output {
            rc: status.code().unwrap_or(-1),
            stdout,
            stderr,
        })
    }

    /// A persistent `/bin/sh` per host (per concurrent command): each command is framed on its
    /// stdin, and its exit code and the ends of its stdout and stderr are marked by a nonce.
    async fn run_in_shell(&self, session: &Arc<Session>, line: &str, cmd: &Command) -> Result<Output, RunError> {
        let idle = {
            let mut idle = self.slot.shells.lock().await;
            // Shells of a master that was replaced are gone with it.
            idle.retain(|s| Arc::ptr_eq(&s.session, session));
            idle.pop()
        };
        let mut shell = match idle {
            Some(s) => s,
            None => RemoteShell::start(session.clone()).await?,
        };
        let deadline = cmd.timeout.map(|t| t + Duration::from_secs(15));
        let run = shell.run(line, cmd.stdin.as_deref());
        let out = match deadline {
            Some(d) => tokio::time::timeout(d, run).await.map_err(|_| RunError::Timeout)?,
            None => run.await,
        }?;
        self.slot.shells.lock().await.push(shell);
        Ok(out)
    }
}

/// A long-lived remote `/bin/sh` reading framed commands.
struct RemoteShell {
    session: Arc<Session>,
    _child: openssh::Child<Arc<Session>>,
    stdin: openssh::ChildStdin,
    stdout: openssh::ChildStdout,
    stderr: openssh::ChildStderr,
    /// Frames are marked with this shell's id and a counter, which no command output can guess.
    id: String,
    next: u64,
}

impl RemoteShell {
    async fn start(session: Arc<Session>) -> Result<RemoteShell, RunError> {
        let mut c = session.clone().arc_raw_command("exec /bin/sh");
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().await.map_err(|e| classify(e, false))?;
        let broken = || RunError::Connection {
            started: false,
            msg: "the remote shell has no pipes".into(),
        };
        let stdin = child.stdin().take().ok_or_else(broken)?;
        let stdout = child.stdout().take().ok_or_else(broken)?;
        let stderr = child.stderr().take().ok_or_else(broken)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("{:x}{nanos:x}", std::process::id());
        Ok(RemoteShell {
            session,
            _child: child,
            stdin,
            stdout,
            stderr,
            id,
            next: 0,
        })
    }

    async fn run(&mut self, line: &str, input: Option<&[u8]>) -> Result<Output, RunError> {
        use base64::Engine as _;
        self.next += 1;
        let nonce = format!("{}_{}", self.id, self.next);
        let mut frame = match input {
            None => format!("{line} </dev/null\n"),
            Some(data) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(data);
                let mut body = String::with_capacity(b64.len() + b64.len() / 76 + 1);
                for chunk in b64.as_bytes().chunks(76) {
                    body.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                    body.push('\n');
                }
                format!("base64 -d <<'__ROLL_IN_{nonce}__' | {line}\n{body}__ROLL_IN_{nonce}__\n")
            }
        };
        frame.push_str(&format!(
            "printf '\\n__ROLL_END_{nonce}_%d\\n' \"$?\"\nprintf '\\n__ROLL_ERR_{nonce}__\\n' >&2\n"
        ));
        let lost = |started: bool| {
            move |e: std::io::Error| RunError::Connection {
                started,
                msg: e.to_string(),
            }
        };
        self.stdin.write_all(frame.as_bytes()).await.map_err(lost(false))?;
        self.stdin.flush().await.map_err(lost(false))?;
        let end = format!("\n__ROLL_END_{nonce}_");
        let err_end = format!("\n__ROLL_ERR_{nonce}__");
        let read_out = async {
            let mut buf = Vec::new();
            let (at, line_end) = read_to_marker(&mut self.stdout, &mut buf, end.as_bytes()).await?;
            let code = std::str::from_utf8(&buf[at + end.len()..line_end])
                .unwrap_or("")
                .parse::<i32>();
            buf.truncate(at);
            Ok::<_, std::io::Error>((buf, code.unwrap_or(-1)))
        };
        let read_err = async {
            let mut buf = Vec::new();
            let (at, _) = read_to_marker(&mut self.stderr, &mut buf, err_end.as_bytes()).await?;
            buf.truncate(at);
            Ok::<_, std::io::Error>(buf)
        };
        let (out, err) = tokio::join!(read_out, read_err);
        let (stdout, rc) = out.map_err(lost(true))?;
        let stderr = err.map_err(lost(true))?;
        Ok(Output { rc, stdout, stderr })
    }
}

/// Read until `marker` and the end of its line have arrived; returns where the marker starts
/// and where its line ends. Only new bytes (and a marker's length before them) are searched, so
/// a command's large output is scanned once.
async fn read_to_marker<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    marker: &[u8],
) -> std::io::Result<(usize, usize)> {
    use tokio::io::AsyncReadExt;
    let mut scanned: usize = 0;
    let mut found: Option<usize> = None;
    loop {
        if found.is_none() {
            let from = scanned.saturating_sub(marker.len());
            found = buf[from..]
                .windows(marker.len())
                .position(|w| w == marker)
                .map(|i| from + i);
            scanned = buf.len();
        }
        if let Some(at) = found
            && let Some(nl) = buf[at + marker.len()..].iter().position(|&b| b == b'\n')
        {
            return Ok((at, at + marker.len() + nl));
        }
        let mut chunk = [0u8; 16384];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the remote shell exited",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

enum RunError {
    Connection { started: bool, msg: String },
    Timeout,
    Failed(String),
}

fn classify(e: openssh::Error, started: bool) -> RunError {
    match e {
        openssh::Error::Disconnected
        | openssh::Error::SshMux(_)
        | openssh::Error::Master(_)
        | openssh::Error::RemoteProcessTerminated
        | openssh::Error::Connect(_) => RunError::Connection {
            started,
            msg: e.to_string(),
        },
        other => RunError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_budget_leaves_the_reserve_and_is_never_zero() {
        assert_eq!(master_budget(1024), 195);
        assert_eq!(master_budget(128), 16);
        assert_eq!(master_budget(10), 1);
        assert_eq!(master_budget(0), 1);
    }

    #[test]
    fn ssh_words_keep_ansibles_order_and_leave_control_options_to_roll() {
        let mut vars = VarMap::new();
        vars.insert(
            "ansible_ssh_common_args".into(),
            minijinja::Value::from("-o 'ProxyJump=bastion' -oControlPath=/x"),
        );
        let t = Target::from_vars("web1", Some(&vars)).unwrap();
        let opts = SshOptions {
            ssh_args: Some("-C -o ControlMaster=auto -o ControlPersist=60s -o SetEnv=A=1".into()),
            extra_args: Some("-A".into()),
            ..SshOptions::default()
        };
        let (first, last) = t.ssh_words(&opts).unwrap();
        assert_eq!(first, ["-C", "-o", "SetEnv=A=1"]);
        assert_eq!(last, ["-o", "ProxyJump=bastion", "-A"]);
        // A host's own ssh_args replace the configuration's, even empty.
        vars.insert("ansible_ssh_args".into(), minijinja::Value::from(""));
        let t = Target::from_vars("web1", Some(&vars)).unwrap();
        assert!(t.ssh_words(&opts).unwrap().0.is_empty());
        vars.insert("ansible_ssh_extra_args".into(), minijinja::Value::from("-o 'Unclosed"));
        let t = Target::from_vars("web1", Some(&vars)).unwrap();
        assert!(t.ssh_words(&opts).unwrap_err().contains("unterminated quote"));
    }
}

//! How commands reach a host: the connection seam. Every file operation is a shell command over
//! `exec`, so local runs, SSH and `become` share one code path.

mod local;
pub mod ssh;

use crate::shell::quote;
use std::time::Duration;

pub use local::Local;

use crate::values::{VarMap, value_to_string};
use ssh::{SshOptions, SshPool, Target};
use std::sync::{Arc, OnceLock};

/// Whether a host's variables make it run on the controller (`ansible_connection=local`).
pub fn runs_locally(vars: &VarMap) -> bool {
    vars.get("ansible_connection")
        .is_some_and(|c| value_to_string(c) == "local")
}

/// The one place a host becomes a connection: `local` when its `ansible_connection` (or the
/// task's `connection:`) says so, else SSH through one pool of masters, opened on first use.
#[derive(Debug)]
pub struct Connector {
    opts: SshOptions,
    pool: OnceLock<Result<Arc<SshPool>, String>>,
}

/// A host that cannot be connected to as its variables say.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot create the ssh control directory: {0}")]
    ControlDir(String),
    #[error("host `{host}` uses the `{kind}` connection; roll connects with `ssh` or `local`")]
    UnsupportedKind { host: String, kind: String },
    #[error("{0}")]
    InvalidPort(String),
}

impl Connector {
    pub fn new(opts: SshOptions) -> Connector {
        Connector {
            opts,
            pool: OnceLock::new(),
        }
    }

    /// The connection to `host`: `kind` when given (a task's `connection:`), else the host's
    /// `ansible_connection`, else SSH to the address its variables name.
    pub fn connect(&self, host: &str, vars: Option<&VarMap>, kind: Option<&str>) -> Result<Connection, ConnectError> {
        let from_vars = || vars.and_then(|v| v.get("ansible_connection")).map(value_to_string);
        let kind = kind.map(str::to_string).or_else(from_vars);
        match kind.as_deref().unwrap_or("ssh") {
            "local" => Ok(Connection::Local(Local::default())),
            "ssh" | "smart" | "paramiko" => {
                let pool = self
                    .pool
                    .get_or_init(|| SshPool::new(self.opts.clone()).map_err(|e| e.to_string()))
                    .clone()
                    .map_err(ConnectError::ControlDir)?;
                let mut target = Target::from_vars(host, vars).map_err(ConnectError::InvalidPort)?;
                // ansible.cfg's defaults, under the host's own variables.
                target.user = target.user.or_else(|| self.opts.user.clone());
                target.port = target.port.or(self.opts.port);
                target.key = target.key.or_else(|| self.opts.key.clone());
                Ok(Connection::Ssh(pool.connection(target)))
            }
            other => Err(ConnectError::UnsupportedKind {
                host: host.to_string(),
                kind: other.to_string(),
            }),
        }
    }

    /// Close the connections of these hosts; the next command reconnects.
    pub async fn reset(&self, hosts: &[String]) {
        if let Some(Ok(pool)) = self.pool.get() {
            pool.reset(hosts).await;
        }
    }

    /// Close every master this connector opened (persistent masters stay, for the next run).
    pub async fn close(&self) {
        if let Some(Ok(pool)) = self.pool.get() {
            pool.close().await;
        }
    }

    /// Tell every master this connector opened to exit now, within a short bound, and open no
    /// more (an aborted run; persistent masters stay).
    pub async fn abort(&self) {
        if let Some(Ok(pool)) = self.pool.get() {
            pool.abort().await;
        }
    }
}

/// A command to run on a host: a POSIX shell script and what surrounds it.
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub script: String,
    pub stdin: Option<Vec<u8>>,
    pub env: Vec<(String, String)>,
    pub chdir: Option<String>,
    pub timeout: Option<Duration>,
    /// Run as this user through `sudo -n`.
    pub become_user: Option<String>,
    /// Pass the output on line by line while the command runs (`roll run`), and end the
    /// command on the host when roll stops waiting for it.
    pub lines: Option<LineSink>,
}

/// Which stream a line of a command's output came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutStream {
    Stdout,
    Stderr,
}

/// Where the lines of a running command go. Lines are held until the command has run `after`
/// (a short command's output is shown whole with its result), then passed on as they arrive.
#[derive(Clone)]
pub struct LineSink {
    pub after: Duration,
    pub sink: Arc<dyn Fn(OutStream, String) + Send + Sync>,
}

impl std::fmt::Debug for LineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LineSink(after {:?})", self.after)
    }
}

/// The remote side of a streamed command: the command runs in a session (process group) of
/// its own, and when its standard input (held open by roll) reaches end of file, because roll
/// stopped waiting, was interrupted or closed the connection, the whole group is killed, so
/// nothing (`docker logs -f`) keeps running on the host.
pub fn streamed_line(line: &str) -> String {
    format!(
        "exec 3<&0; setsid /bin/sh -c {} </dev/null & p=$!; {{ cat <&3 >/dev/null 2>&1; kill -TERM -$p; }} 2>/dev/null & w=$!; wait $p; rc=$?; kill $w 2>/dev/null; exit $rc",
        quote(line)
    )
}

/// How much of a streamed command's output, already passed on, its result keeps at most.
const STREAM_KEEP: usize = 8 << 20;

/// Read a command's stdout and stderr to their ends, passing complete lines to `sink` once the
/// command has run `sink.after`; returns everything read, as a command without a sink would.
pub async fn read_streaming<O, E>(mut out: O, mut err: E, sink: &LineSink) -> std::io::Result<(Vec<u8>, Vec<u8>)>
where
    O: tokio::io::AsyncRead + Unpin,
    E: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut bufs = [Vec::new(), Vec::new()];
    let mut sent = [0usize; 2];
    let mut open = [true, true];
    let mut live = sink.after.is_zero();
    let hold = tokio::time::sleep(sink.after);
    tokio::pin!(hold);
    let pass = |bufs: &[Vec<u8>; 2], sent: &mut [usize; 2], all: bool| {
        for (i, stream) in [OutStream::Stdout, OutStream::Stderr].into_iter().enumerate() {
            let buf = &bufs[i];
            while let Some(nl) = buf[sent[i]..].iter().position(|&b| b == b'\n') {
                let line = &buf[sent[i]..sent[i] + nl];
                (sink.sink)(stream, String::from_utf8_lossy(line).trim_end_matches('\r').to_string());
                sent[i] += nl + 1;
            }
            if all && sent[i] < buf.len() {
                (sink.sink)(stream, String::from_utf8_lossy(&buf[sent[i]..]).into_owned());
                sent[i] = buf.len();
            }
        }
    };
    let (mut a, mut b) = (vec![0u8; 16384], vec![0u8; 16384]);
    while open[0] || open[1] {
        tokio::select! {
            n = out.read(&mut a), if open[0] => {
                let n = n?;
                if n == 0 { open[0] = false } else { bufs[0].extend_from_slice(&a[..n]) }
            }
            n = err.read(&mut b), if open[1] => {
                let n = n?;
                if n == 0 { open[1] = false } else { bufs[1].extend_from_slice(&b[..n]) }
            }
            () = &mut hold, if !live => live = true,
        }
        if live {
            pass(&bufs, &mut sent, false);
            // `docker logs -f` may run for days: what was passed on is not kept past a bound,
            // so the result holds the output since then.
            for (buf, done) in bufs.iter_mut().zip(sent.iter_mut()) {
                if *done > STREAM_KEEP {
                    buf.drain(..*done);
                    *done = 0;
                }
            }
        }
    }
    if live {
        pass(&bufs, &mut sent, true);
    }
    let [o, e] = bufs;
    Ok((o, e))
}

/// How `become` runs a command as another user over one connection: Ansible's sudo become
/// plugin with its `become_exe` and `become_flags` (`None`: roll's `sudo -n -H`, Ansible's
/// defaults without `-S`, as roll asks for no password). The connection carries it, as in
/// Ansible the become plugin is set on the task's connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BecomeMethod {
    pub exe: Option<String>,
    /// Shell words, given to the shell as written (as Ansible joins them into its command).
    pub flags: Option<String>,
}

impl BecomeMethod {
    /// `script` run as `user`: `EXE FLAGS -u USER /bin/sh -c SCRIPT`, as Ansible's sudo
    /// plugin builds it.
    fn wrap(&self, user: &str, script: &str) -> String {
        if self.exe.is_none() && self.flags.is_none() {
            return format!("sudo -n -H -u {} -- /bin/sh -c {}", quote(user), quote(script));
        }
        let exe = self.exe.as_deref().unwrap_or("sudo");
        let flags = self.flags.as_deref().unwrap_or("-H -S -n");
        format!("{exe} {flags} -u {} /bin/sh -c {}", quote(user), quote(script))
    }
}

impl Command {
    pub fn new(script: impl Into<String>) -> Command {
        Command {
            script: script.into(),
            ..Command::default()
        }
    }

    /// The full script, with the working directory, environment and `become` applied.
    /// The environment to set on the process and the script without it, so that values stay
    /// out of argument lists (`ps`); under `become` sudo resets the environment, so the values
    /// go into the script there.
    pub fn split_env(&self, method: &BecomeMethod) -> (Vec<(String, String)>, String) {
        if self.become_user.is_some() || self.env.is_empty() {
            return (Vec::new(), self.wrapped(method));
        }
        let bare = Command {
            env: Vec::new(),
            ..self.clone()
        };
        (self.env.clone(), bare.wrapped(method))
    }

    pub fn wrapped(&self, method: &BecomeMethod) -> String {
        let mut s = String::new();
        for (k, v) in &self.env {
            s.push_str(&format!("export {k}={}\n", quote(v)));
        }
        if let Some(d) = &self.chdir {
            s.push_str(&format!("cd {} || exit 1\n", quote(d)));
        }
        s.push_str(&self.script);
        match &self.become_user {
            Some(user) => method.wrap(user, &s),
            None => s,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConnError {
    /// The host cannot be reached at all: the run treats it as unreachable.
    #[error("{0}")]
    Unreachable(String),
    /// The command did not finish within its timeout and was killed.
    #[error("command timed out after {0} s and was killed")]
    Timeout(u64),
    /// The connection worked but the operation failed.
    #[error("{0}")]
    Failed(String),
}

/// Whether `user` is the user this process runs as.
pub fn is_local_user(user: &str) -> bool {
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    });
    match uid.as_deref() {
        Some("0") => user == "root" || user == "0",
        Some(id) => user == id || std::env::var("USER").is_ok_and(|u| u == user),
        None => false,
    }
}

/// What `stat` found at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    Absent,
    File,
    Directory,
    Link(String),
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub kind: FileKind,
    /// Permission bits, e.g. 0o644.
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
    /// Bytes (a link's own: the length of its target).
    pub size: u64,
    /// Hard links to it.
    pub links: u64,
}

/// A connection to one host.
#[derive(Debug, Clone)]
pub enum Connection {
    Local(Local),
    Ssh(ssh::Ssh),
}

impl Connection {
    /// The same connection, becoming other users as `method` says.
    pub fn with_become(self, method: BecomeMethod) -> Connection {
        let method = (method != BecomeMethod::default()).then(|| Arc::new(method));
        match self {
            Connection::Local(mut l) => {
                l.method = method;
                Connection::Local(l)
            }
            Connection::Ssh(mut s) => {
                s.method = method;
                Connection::Ssh(s)
            }
        }
    }

    /// Run a command. Boxed and never inlined: the SSH state machine is large (~32 KiB of
    /// code), and every module future that awaited it inline carried its own copy.
    #[inline(never)]
    pub fn exec<'a>(
        &'a self,
        cmd: &'a Command,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Output, ConnError>> + Send + 'a>> {
        match self {
            Connection::Local(l) => Box::pin(l.exec(cmd)),
            Connection::Ssh(s) => Box::pin(s.exec(cmd)),
        }
    }

    /// A file's content, or `None` if it does not exist.
    pub async fn read_file(&self, path: &str, become_user: Option<&str>) -> Result<Option<Vec<u8>>, ConnError> {
        let p = quote(path);
        let mut cmd = Command::new(format!("if [ -f {p} ]; then cat {p}; else echo absent >&2; exit 3; fi"));
        cmd.become_user = become_user.map(str::to_string);
        let out = self.exec(&cmd).await?;
        match out.rc {
            0 => Ok(Some(out.stdout)),
            3 if out.stderr == b"absent\n" => Ok(None),
            _ => Err(ConnError::Failed(format!(
                "cannot read `{path}`: {}",
                out.stderr_text().trim()
            ))),
        }
    }

    pub async fn stat(&self, path: &str, become_user: Option<&str>) -> Result<FileStat, ConnError> {
        let mut cmd = Command::new(stat_script(path));
        cmd.become_user = become_user.map(str::to_string);
        let out = self.exec(&cmd).await?;
        if out.rc != 0 {
            return Err(ConnError::Failed(format!(
                "cannot stat `{path}`: {}",
                out.stderr_text().trim()
            )));
        }
        Ok(FileStat::parse(&out.stdout_text()))
    }
}

/// A shell snippet printing what [`FileStat::parse`] reads about `path` (not following a link):
/// its kind (and a link's target), then mode, owner, group, uid, gid, size and link count.
/// Modules that change a path end their own script with it, to report the result in the same
/// round trip (it is a subshell: it ends nothing but itself).
pub fn stat_script(path: &str) -> String {
    let p = quote(path);
    format!(
        "(if [ -L {p} ]; then printf 'link\\n%s\\n' \"$(readlink {p})\"; \
         elif [ -d {p} ]; then printf 'directory\\n'; \
         elif [ -f {p} ]; then printf 'file\\n'; \
         elif [ -e {p} ]; then printf 'other\\n'; \
         else printf 'absent\\n'; exit 0; fi; stat -c '%a %U %G %u %g %s %h' {p})"
    )
}

impl FileStat {
    pub fn absent() -> FileStat {
        FileStat {
            kind: FileKind::Absent,
            mode: 0,
            owner: String::new(),
            group: String::new(),
            uid: 0,
            gid: 0,
            size: 0,
            links: 0,
        }
    }

    /// What [`stat_script`] printed.
    pub fn parse(text: &str) -> FileStat {
        let mut lines = text.lines();
        let kind = match lines.next() {
            Some("link") => FileKind::Link(lines.next().unwrap_or("").to_string()),
            Some("directory") => FileKind::Directory,
            Some("file") => FileKind::File,
            Some("other") => FileKind::Other,
            _ => return FileStat::absent(),
        };
        let meta = lines.next().unwrap_or("");
        let mut parts = meta.split_whitespace();
        let mut next = || parts.next().unwrap_or("");
        let mode = u32::from_str_radix(next(), 8).unwrap_or(0);
        let (owner, group) = (next().to_string(), next().to_string());
        let (uid, gid) = (next().parse().unwrap_or(0), next().parse().unwrap_or(0));
        let (size, links) = (next().parse().unwrap_or(0), next().parse().unwrap_or(0));
        // `stat` prints UNKNOWN for an id without a name; Python's modules show the number.
        let named = |name: String, id: u32| if name == "UNKNOWN" { id.to_string() } else { name };
        FileStat {
            kind,
            mode,
            owner: named(owner, uid),
            group: named(group, gid),
            uid,
            gid,
            size,
            links,
        }
    }
}

/// Mode and ownership to apply to a written file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAttrs {
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::{LineSink, OutStream, read_streaming};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn read(after: Duration, out: &'static [u8], err: &'static [u8]) -> (Vec<(OutStream, String)>, Vec<u8>, Vec<u8>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let sink = LineSink {
            after,
            sink: Arc::new(move |s, l| seen.lock().unwrap().push((s, l))),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (o, e) = rt.block_on(read_streaming(out, err, &sink)).unwrap();
        let lines = got.lock().unwrap().clone();
        (lines, o, e)
    }

    #[test]
    fn lines_are_passed_on_once_live_and_the_output_is_kept_whole() {
        let (lines, out, err) = read(Duration::ZERO, b"a\nb\r\nlast", b"e\n");
        let stdout: Vec<&str> = lines
            .iter()
            .filter(|(s, _)| *s == OutStream::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(stdout, ["a", "b", "last"]);
        assert!(lines.contains(&(OutStream::Stderr, "e".to_string())));
        assert_eq!((out.as_slice(), err.as_slice()), (&b"a\nb\r\nlast"[..], &b"e\n"[..]));
    }

    #[test]
    fn a_command_that_ends_before_the_hold_passes_nothing_on() {
        let (lines, out, _) = read(Duration::from_secs(30), b"quick\n", b"");
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(out, b"quick\n");
    }
}

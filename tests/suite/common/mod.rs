//! Shared helpers for the integration tests: run the real `roll` binary, copy fixtures.
#![allow(dead_code)]

pub mod docker;
pub mod fleet;
pub mod listing;
pub mod load;
pub mod nginx;
pub mod oracle;
pub mod resources;
pub mod sandbox;
pub mod systemd_host;
pub mod testhost;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A port nothing listens on now (the OS's pick on 127.0.0.1).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port held bound on 127.0.0.1 but never listened on, for as long as the value lives:
/// connecting to it is refused, as to a dead server, and no other test can bind it meanwhile
/// (a killed server's port is free for the next `free_port()` of a parallel test to take).
pub struct ClosedPort {
    _fd: std::os::fd::OwnedFd,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        use std::os::fd::FromRawFd;
        // std's listeners always listen (and set SO_REUSEADDR, which would let another
        // bind share the port); a plain bound socket needs the system call itself.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            use std::os::fd::AsRawFd;
            let bound = libc::bind(fd.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, len);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = len;
            let named = libc::getsockname(fd.as_raw_fd(), &mut addr as *mut _ as *mut libc::sockaddr, &mut len);
            assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
            ClosedPort {
                _fd: fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }
}

pub fn roll_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_roll"))
}

/// A `roll` command in `dir`, without colour and outside CI detection.
pub fn roll(dir: &Path) -> Command {
    let mut c = Command::new(roll_bin());
    c.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("GITLAB_CI")
        .env_remove("ROLL_INVENTORY");
    c
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    roll(dir).args(args).output().expect("run roll")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Copy a directory tree, symbolic links as links.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            // As git checks it out (`playbooks/roles` → `../roles`): relative, so it still
            // points into the copy.
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), t).unwrap();
        } else if kind.is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The PLAY RECAP lines of a run, without trailing spaces.
pub fn recap(out: &str) -> Vec<String> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with("PLAY RECAP"));
    lines.next();
    // The host lines only (a dry run's tally line follows them).
    lines
        .filter(|l| l.contains(" : ok="))
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// Every file under `dir` with its content, sorted, for before/after comparisons.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>, u32)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.push((rel + "/", Vec::new(), mode));
                walk(base, &p, out);
            } else if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    std::fs::read_link(&p).unwrap().display().to_string().into_bytes(),
                    mode,
                ));
            } else {
                out.push((rel, std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A running `roll` whose stdout is read line by line, so a test can act at a known point.
pub struct Watched {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    pub fn spawn(mut cmd: Command) -> Watched {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Block until a line containing `needle` is printed (or 60 s pass).
    pub fn wait_for(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            let hit = line.contains(needle);
            self.seen.push(line);
            if hit {
                return;
            }
        }
        panic!("roll never printed {needle:?}; it printed:\n{}", self.seen.join("\n"));
    }

    /// Wait for the end; returns the exit code, all of stdout and stderr.
    pub fn finish(mut self) -> (Option<i32>, String, String) {
        use std::io::Read;
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n") + "\n", err)
    }
}

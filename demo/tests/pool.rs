//! The demo app against a real MariaDB server (Debian package `mariadb-server`), started by the
//! test on a loopback port with a short `wait_timeout`: the pool opens with the first request,
//! serves requests, loses idle connections to the timeout, and `migrate` runs as a one-off.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Maria {
    child: Child,
    sock: String,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Maria {
    fn start() -> Maria {
        assert!(
            Path::new("/usr/sbin/mariadbd").exists(),
            "this test needs a MariaDB server: install the Debian package `mariadb-server`"
        );
        let dir = std::env::temp_dir().join(format!("roll-maria-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        let ok = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "mariadb-install-db failed");
        let port = free_port();
        let sock = dir.join("sock").display().to_string();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={sock}"))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--wait-timeout=3",
                "--skip-log-bin",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let m = Maria {
            child,
            sock,
            port,
            _dir: TempDir(dir),
        };
        let start = Instant::now();
        while m.sql("SELECT 1").is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Anonymous accounts would shadow `app`@`%` for local clients.
        m.sql("DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES; CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON *.* TO 'app'@'%';").unwrap();
        m
    }

    fn sql(&self, q: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-N", "-B", "-u", "root", "-S", &self.sock, "-e", q])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Connections other than this test's own client.
    fn app_connections(&self) -> usize {
        self.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER='app'")
            .unwrap()
            .parse()
            .unwrap()
    }
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_pool_opens_with_traffic_serves_requests_and_drains_through_wait_timeout() {
    let db = Maria::start();
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_roll-demo");
    let mut app = Command::new(bin)
        .env("PORT", port.to_string())
        .env("BIND", "127.0.0.1")
        .env("COLOUR", "green")
        .env("RELEASE", "7")
        .env("DB_ADDR", format!("127.0.0.1:{}", db.port))
        .env("DB_USER", "app")
        .env("DB_PASSWORD", "app-pw")
        .env("DB_POOL", "4")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| TcpStream::connect(("127.0.0.1", port)).is_ok(), "the app to listen");
    assert_eq!(db.app_connections(), 0, "no traffic, no connections");
    let page = get(port, "/");
    assert_eq!(db.app_connections(), 4, "the whole pool opens with the first request");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.ends_with("green 7\n"),
        "{page}"
    );
    assert!(get(port, "/health").starts_with("HTTP/1.1 200"));
    // No traffic: the server closes the idle connections after wait_timeout (3 s).
    wait_for(|| db.app_connections() == 0, "idle connections to time out");
    // Traffic again: a request reconnects the connection it uses.
    assert!(get(port, "/").starts_with("HTTP/1.1 200"));
    assert_eq!(db.app_connections(), 1);
    let _ = app.kill();
    let _ = app.wait();
    let migrate = Command::new(bin)
        .arg("migrate")
        .env("RELEASE", "7")
        .env("DB_ADDR", format!("127.0.0.1:{}", db.port))
        .env("DB_USER", "app")
        .env("DB_PASSWORD", "app-pw")
        .output()
        .unwrap();
    assert!(migrate.status.success());
    assert_eq!(
        String::from_utf8_lossy(&migrate.stdout),
        "roll-demo: migrations of release 7 applied\n"
    );
    let denied = Command::new(bin)
        .arg("migrate")
        .env("DB_ADDR", format!("127.0.0.1:{}", db.port))
        .env("DB_USER", "app")
        .env("DB_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Access denied"));
}

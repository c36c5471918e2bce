//! What a process holds, read from /proc: open descriptors, resident and peak memory, and the
//! processes that mention a string (ssh masters left behind), for the resource tests and benches.
#![allow(dead_code)]

#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub fds: usize,
    pub rss_kib: u64,
    /// The peak resident size since the process started or since `reset_peak`.
    pub peak_kib: u64,
}

/// This process's open descriptors and memory now.
pub fn usage() -> Usage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = |key: &str| status_kib(&status, key).unwrap_or_else(|| panic!("/proc/self/status has no {key}"));
    Usage {
        fds: fd_count(),
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
    }
}

/// A `Key:   1234 kB` line of /proc/PID/status, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The resident KiB of a process (0 once it is gone).
pub fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status_kib(&status, "VmRSS:").unwrap_or(0)
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What this process's descriptors point at (`pipe:[…]`, `socket:[…]`, paths), for messages.
pub fn fd_targets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

/// Start measuring the peak resident size afresh (Linux: `5` to clear_refs resets VmHWM).
pub fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// The processes (other than this one) that have `needle` in their command line.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
        })
        .collect()
}

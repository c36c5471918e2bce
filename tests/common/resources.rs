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
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("/proc/self/status has no {key}"))
    };
    Usage {
        fds: fd_count(),
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
    }
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

/// How many processes have `needle` in their command line (other than this one).
pub fn processes_mentioning(needle: &str) -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()) && n != me)
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).replace('\0', " ").contains(needle))
        .count()
}

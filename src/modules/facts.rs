//! Facts, as `gather_facts` and the `setup` module provide them: the one POSIX sh command that
//! reads a host (no Python on the host), how its output becomes Ansible's fact names and values
//! (`ansible_facts.X` and the injected `ansible_X`), `gather_subset` and `filter`, and when a play
//! gathers at all. The checker knows the names in [`FACT_NAMES`] before any host is asked.

use crate::values::{VarMap, from_serde, value_to_string};
use minijinja::Value;
use serde_json::{Map, Value as J, json};
use std::collections::BTreeMap;

/// Facts a gathering host provides (with the `ansible_` prefix, as injected), besides the
/// per-interface facts (`ansible_eth0`), whose names only the host knows.
pub const FACT_NAMES: &[&str] = &[
    "ansible_hostname",
    "ansible_nodename",
    "ansible_fqdn",
    "ansible_domain",
    "ansible_architecture",
    "ansible_machine",
    "ansible_userspace_architecture",
    "ansible_system",
    "ansible_kernel",
    "ansible_kernel_version",
    "ansible_distribution",
    "ansible_distribution_version",
    "ansible_distribution_major_version",
    "ansible_distribution_minor_version",
    "ansible_distribution_release",
    "ansible_os_family",
    "ansible_lsb",
    "ansible_processor",
    "ansible_processor_count",
    "ansible_processor_cores",
    "ansible_processor_threads_per_core",
    "ansible_processor_vcpus",
    "ansible_processor_nproc",
    "ansible_memtotal_mb",
    "ansible_memfree_mb",
    "ansible_swaptotal_mb",
    "ansible_swapfree_mb",
    "ansible_memory_mb",
    "ansible_env",
    "ansible_user_id",
    "ansible_user_uid",
    "ansible_user_gid",
    "ansible_user_dir",
    "ansible_user_shell",
    "ansible_user_gecos",
    "ansible_date_time",
    "ansible_service_mgr",
    "ansible_pkg_mgr",
    "ansible_mounts",
    "ansible_virtualization_type",
    "ansible_virtualization_role",
    "ansible_virtualization_tech_guest",
    "ansible_virtualization_tech_host",
    "ansible_default_ipv4",
    "ansible_default_ipv6",
    "ansible_all_ipv4_addresses",
    "ansible_all_ipv6_addresses",
    "ansible_interfaces",
    "ansible_dns",
    "ansible_machine_id",
    "ansible_uptime_seconds",
    "ansible_local",
    "gather_subset",
    "module_setup",
];

/// Where `ansible_local` comes from (Ansible's default `fact_path`).
pub const FACT_PATH: &str = "/etc/ansible/facts.d";

/// How plays gather when they do not say (Ansible's `gathering` setting in ansible.cfg /
/// `ANSIBLE_GATHERING`, read by the settings): [`Gathering::gathers`] decides every play.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Gathering {
    /// Gather unless the play says `gather_facts: false` (Ansible's default).
    #[default]
    Implicit,
    /// Gather only where the play says `gather_facts: true`.
    Explicit,
    /// As implicit; Ansible skips hosts whose facts are cached, and roll has no fact cache
    /// (`fact_caching` off), so every host gathers.
    Smart,
}

impl Gathering {
    /// Whether a play gathers, given what it says (`gather_facts`, if anything).
    pub fn gathers(self, play_says: Option<bool>) -> bool {
        play_says.unwrap_or(self != Gathering::Explicit)
    }
}

/// The destinations whose routes decide `default_ipv4` / `default_ipv6` (Ansible's choice).
const ROUTE4: &str = "8.8.8.8";
const ROUTE6: &str = "2404:6800:4003:c00::64";

/// Section marker of [`SCRIPT`]'s output (a line of its own, followed by the section's name).
const MARK: &str = "@@roll-facts@@ ";

/// The one remote command: POSIX sh and the base system's tools, no Python. It prints raw
/// sections that [`parse`] turns into facts, so the host does no interpretation and a missing
/// tool leaves only its section empty.
///
/// It costs the host about as much as one more command over the connection: process starts
/// are what a host spends here, so every file is read by one `grep -aH` (the `files` section,
/// each line prefixed with its file's path), shell builtins read what decides the rest, and
/// only six programs start (grep, date, two getents for the FQDN, ip, stat). Where a tool
/// reads files roll can read itself, roll reads them: `/proc/self/status` for the user and
/// the CPUs a process may use (`nproc`), `/proc/self/mountinfo` for bind mounts (`findmnt`),
/// udev's database for file system UUIDs (`lsblk`), `/etc/os-release` where `lsb_release` is
/// Debian's shell script that only reformats it.
pub const SCRIPT: &str = r#"s() { printf '\n@@roll-facts@@ %s\n' "$1"; }
r() { v=; read -r v 2>/dev/null < "$1"; printf '%s\n' "$v"; }
s files; grep -aH '' /proc/sys/kernel/hostname /proc/sys/kernel/ostype /proc/sys/kernel/osrelease /proc/sys/kernel/version /proc/sys/kernel/arch /etc/os-release /usr/lib/os-release /etc/debian_version /etc/lsb-release /proc/cpuinfo /proc/meminfo /proc/self/status "/proc/$$/environ" /proc/1/cgroup /run/systemd/container /proc/1/environ /sys/devices/virtual/dmi/id/product_name /sys/devices/virtual/dmi/id/sys_vendor /sys/devices/virtual/dmi/id/bios_vendor /etc/mtab /proc/mounts /proc/self/mountinfo /sys/class/block/*/dev /run/udev/data/b* /etc/resolv.conf /etc/machine-id /var/lib/dbus/machine-id /proc/uptime 2>/dev/null
[ -r /proc/sys/kernel/arch ] || { s machine; uname -m; }
s fqdn; read -r h 2>/dev/null < /proc/sys/kernel/hostname; set -- $(getent ahosts "$h" 2>/dev/null); [ -n "${1:-}" ] && getent hosts "$1" 2>/dev/null
s id; u=; g=; while read -r k a _; do case $k in Uid:) u=$a;; Gid:) g=$a; break;; esac; done 2>/dev/null < /proc/self/status; printf 'uid=%s gid=%s\n' "$u" "$g"
s passwd; p=; while IFS=: read -r n x pu pg rest; do [ "$pu" = "$u" ] && { printf '%s:%s:%s:%s:%s\n' "$n" "$x" "$pu" "$pg" "$rest"; p=1; break; }; done 2>/dev/null < /etc/passwd; [ -n "$p" ] || getent passwd "$u" 2>/dev/null
for b in /usr/bin/lsb_release /bin/lsb_release; do [ -x "$b" ] || continue; [ -e /etc/lsb-release ] && break; m=; while IFS= read -r l; do case $l in *"Mimic the output of Debian's Python-based lsb_release"*) m=1; break;; esac; done < "$b"; if [ -n "$m" ]; then s lsb_minimal; else s lsb_bin; "$b" -a 2>/dev/null; fi; break; done
s date; date -f - '+%Y|%m|%d|%H|%M|%S|%s|%Z|%z|%A|%w|%W|%N|%Y%m%dT%H%M%S' 2>/dev/null <<'E' || date '+%Y|%m|%d|%H|%M|%S|%s|%Z|%z|%A|%w|%W|%N|%Y%m%dT%H%M%S'
now
2000-07-01
E
s init; r /proc/1/comm; case $v in init|*sh) readlink /sbin/init 2>/dev/null;; esac
s paths; for f in /run/systemd/system /dev/.run/systemd /dev/.systemd /etc/init /sbin/openrc /etc/init.d /etc/dinit.d /usr/bin/rpm-ostree /usr/bin/yum /usr/bin/dnf-3 /usr/bin/dnf5 /usr/bin/apt-get /usr/bin/zypper /usr/sbin/urpmi /usr/bin/pacman /bin/opkg /sbin/apk /usr/bin/emerge /usr/bin/xbps-install /usr/bin/swupd /usr/bin/rpm /usr/bin/dnf /usr/bin/microdnf /run/ostree-booted /.dockerenv /run/.containerenv /proc/vz /proc/bc /proc/xen /proc/sys/xen /dev/kvm; do [ -e "$f" ] && echo "$f"; done; command -v systemctl initctl 2>/dev/null; true
s statfs; set --; while read -r d m t o x; do case "$d" in /*) set -- "$@" "$m";; esac; done < /proc/mounts; [ $# -gt 0 ] && stat -f -c '%n|%S|%s|%b|%f|%a|%c|%d' "$@" 2>/dev/null
s net; o=$PWD; for d in /sys/class/net/*; do [ -d "$d" ] || continue; a=; m=; fl=; t=; sp=; op=; k=; bi=; st=; br=; l=; read -r a 2>/dev/null < "$d/address"; read -r m 2>/dev/null < "$d/mtu"; read -r fl 2>/dev/null < "$d/flags"; read -r t 2>/dev/null < "$d/type"; read -r sp 2>/dev/null < "$d/speed"; read -r op 2>/dev/null < "$d/operstate"; if [ -e "$d/bridge" ]; then k=bridge; read -r bi 2>/dev/null < "$d/bridge/bridge_id"; read -r st 2>/dev/null < "$d/bridge/stp_state"; for b in "$d"/brif/*; do [ -e "$b" ] && br="$br${b##*/} "; done; fi; [ -e "$d/bonding" ] && k=bonding; [ -e "$d/device" ] && cd -P "$d/device" 2>/dev/null && l=$PWD; printf 'dev|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "${d##*/}" "$a" "$m" "$fl" "$t" "$k" "$sp" "${l##*/}" "$op" "$bi" "$st" "$br"; done; cd "$o" 2>/dev/null
s ip; ip -o -force -batch - 2>/dev/null <<'E'
addr show
route get 8.8.8.8
route get 2404:6800:4003:c00::64
E
"#;

/// [`SCRIPT`] plus the local facts of `fact_path` (`*.fact`: an executable's output, else the
/// file's content), ending with a marker so a truncated output is seen as such.
pub fn script(fact_path: &str) -> String {
    format!(
        "{SCRIPT}for f in {}/*.fact; do [ -f \"$f\" ] || continue; s \"local ${{f##*/}}\"; \
         if [ -x \"$f\" ]; then \"$f\" 2>/dev/null; else cat \"$f\"; fi; done\ns end\n",
        crate::shell::quote(fact_path)
    )
}

/// Whether [`script`]'s output is whole (its last marker arrived).
pub fn complete(stdout: &str) -> bool {
    stdout.contains("\n@@roll-facts@@ end")
}

/// The sections of [`SCRIPT`]'s output, by name.
fn sections(stdout: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in stdout.split('\n') {
        if let Some(name) = line.strip_prefix(MARK) {
            if let Some((n, body)) = cur.take() {
                out.insert(n, body.trim_end_matches('\n').to_string());
            }
            cur = Some((name.to_string(), String::new()));
        } else if let Some((_, body)) = cur.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((n, body)) = cur {
        out.insert(n, body.trim_end_matches('\n').to_string());
    }
    if let Some(files) = out.remove("files") {
        from_files(&mut out, &by_file(&files));
    }
    out
}

/// The `files` section (`grep -aH ''`: every line as `PATH:line`), back into each file's text.
fn by_file(body: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for line in body.split('\n') {
        // udev's database names a device by `bMAJOR:MINOR`: its path has a colon of its own.
        let split = match line.strip_prefix("/run/udev/data/b") {
            Some(rest) => rest
                .find(':')
                .and_then(|i| rest[i + 1..].find(':').map(|j| "/run/udev/data/b".len() + i + 1 + j)),
            None => line.find(':'),
        };
        let Some(i) = split else { continue };
        let text = out.entry(line[..i].to_string()).or_default();
        text.push_str(&line[i + 1..]);
        text.push('\n');
    }
    out
}

/// The sections [`parse`] reads, from the files the script read (a section the script printed
/// itself stays as it is).
fn from_files(sec: &mut BTreeMap<String, String>, files: &BTreeMap<String, String>) {
    let file = |p: &str| files.get(p).map(|t| t.trim_end_matches('\n')).filter(|t| !t.is_empty());
    let first = |ps: &[&str]| ps.iter().find_map(|p| file(p)).unwrap_or("").to_string();
    // `uname -m` where the kernel has no /proc/sys/kernel/arch (before 6.1).
    let machine = file("/proc/sys/kernel/arch")
        .map(str::to_string)
        .or_else(|| sec.get("machine").cloned())
        .unwrap_or_default();
    let mut put = |name: &str, text: String| {
        sec.entry(name.to_string()).or_insert(text);
    };
    let hostname = first(&["/proc/sys/kernel/hostname"]);
    put("hostname", hostname.clone());
    put("nodename", hostname);
    let uname = ["ostype", "osrelease", "version"]
        .iter()
        .map(|k| first(&[&format!("/proc/sys/kernel/{k}")]))
        .chain([machine])
        .collect::<Vec<_>>()
        .join("\n");
    put("uname", uname);
    let os_release = first(&["/etc/os-release", "/usr/lib/os-release"]);
    put("os_release", os_release.clone());
    put("debian_version", first(&["/etc/debian_version"]));
    put("lsb_release", first(&["/etc/lsb-release"]));
    put("cpuinfo", first(&["/proc/cpuinfo"]));
    put("meminfo", first(&["/proc/meminfo"]));
    // nproc: the CPUs this process may run on (sched_getaffinity), as /proc/self/status lists them.
    let status_text = first(&["/proc/self/status"]);
    let status = shell_status(&status_text);
    if let Some(list) = status.get("Cpus_allowed_list") {
        put("nproc", cpu_count(list).to_string());
    }
    // The login's environment, NUL-separated as the kernel keeps it (values may hold newlines).
    if let Some((_, env)) = files
        .iter()
        .find(|(p, _)| p.starts_with("/proc/") && p.ends_with("/environ") && *p != "/proc/1/environ")
    {
        put("env", env.trim_end_matches('\n').to_string());
    }
    put("cgroup", first(&["/proc/1/cgroup"]));
    let container = [
        first(&["/run/systemd/container"]),
        first(&["/proc/1/environ"])
            .split('\0')
            .filter(|v| v.starts_with("container="))
            .collect::<Vec<_>>()
            .join("\n"),
    ];
    put("container", container.join("\n"));
    let dmi = ["product_name", "sys_vendor", "bios_vendor"]
        .iter()
        .map(|k| format!("{k}={}", first(&[&format!("/sys/devices/virtual/dmi/id/{k}")])))
        .collect::<Vec<_>>()
        .join("\n");
    put("dmi", dmi);
    put("mounts", first(&["/etc/mtab", "/proc/mounts"]));
    // Bind mounts: a mount whose root in its file system is not `/` (what findmnt shows as
    // `SOURCE[/dir]`).
    let binds = first(&["/proc/self/mountinfo"])
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            (w.len() > 4 && w[3] != "/").then(|| w[4].to_string())
        })
        .collect::<Vec<_>>()
        .join("\n");
    put("binds", binds);
    // File system UUIDs by device, from udev's database as lsblk reads it (floppies, major 2,
    // left out as `lsblk --exclude 2` does).
    let mut uuids = Vec::new();
    for (path, dev) in files {
        let Some(name) = path
            .strip_prefix("/sys/class/block/")
            .and_then(|p| p.strip_suffix("/dev"))
        else {
            continue;
        };
        let dev = dev.trim();
        if dev.starts_with("2:") {
            continue;
        }
        let uuid = files
            .get(&format!("/run/udev/data/b{dev}"))
            .and_then(|db| db.lines().find_map(|l| l.strip_prefix("E:ID_FS_UUID=")))
            .unwrap_or("");
        uuids.push(format!("/dev/{name} {uuid}"));
    }
    put("lsblk", uuids.join("\n"));
    put("dns", first(&["/etc/resolv.conf"]));
    put("machine_id", first(&["/etc/machine-id", "/var/lib/dbus/machine-id"]));
    put("uptime", first(&["/proc/uptime"]));
}

/// `Key:\tvalue` lines of a `/proc/PID/status` file.
fn shell_status(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// How many CPUs a list such as `0-3,8,10-11` names.
fn cpu_count(list: &str) -> usize {
    list.split(',')
        .filter_map(|r| match r.split_once('-') {
            Some((a, b)) => Some(b.trim().parse::<usize>().ok()? + 1 - a.trim().parse::<usize>().ok()?),
            None => r.trim().parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

/// The node name (`uname -n`, Python's `platform.node()`), if the host printed one.
fn uname_n(sec: &BTreeMap<String, String>) -> Option<String> {
    sec.get("nodename")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `KEY=value` lines of a shell-style file (`/etc/os-release`), quotes removed.
fn shell_vars(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// Which `gather_subset` a fact belongs to (Ansible's collectors, by fact name without the
/// prefix); the rest is `min`.
fn subset_of(name: &str) -> &'static str {
    match name {
        n if n.starts_with("processor") || n.starts_with("mem") || n.starts_with("swap") => "hardware",
        "mounts" | "uptime_seconds" => "hardware",
        n if n.starts_with("virtualization") => "virtual",
        "default_ipv4" | "default_ipv6" | "all_ipv4_addresses" | "all_ipv6_addresses" | "interfaces" => "network",
        _ => "min",
    }
}

/// The facts [`SCRIPT`] printed, by Ansible's names without the `ansible_` prefix (as in
/// `ansible_facts`); per-interface facts are named by their interface (`eth0`).
pub fn parse(stdout: &str) -> Map<String, J> {
    let sec = sections(stdout);
    let get = |k: &str| sec.get(k).map(String::as_str).unwrap_or("");
    let mut f = Map::new();

    // platform
    let hostname = get("hostname").lines().next().unwrap_or("").trim().to_string();
    let uname: Vec<&str> = get("uname").lines().collect();
    let nodename = uname_n(&sec).unwrap_or_else(|| hostname.clone());
    let short = nodename.split('.').next().unwrap_or("").to_string();
    // Python's `socket.getfqdn()`: the node name resolved, then its address resolved back; the
    // first of those names with a dot, else the canonical one.
    let names: Vec<&str> = get("fqdn")
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .collect();
    let fqdn = names
        .iter()
        .find(|n| n.contains('.'))
        .or(names.first())
        .map(|n| n.to_string())
        .unwrap_or_else(|| nodename.clone());
    let domain = fqdn.split_once('.').map(|(_, d)| d.to_string()).unwrap_or_default();
    let machine = uname.get(3).copied().unwrap_or("").to_string();
    f.insert("hostname".into(), json!(short));
    f.insert("nodename".into(), json!(nodename));
    f.insert("fqdn".into(), json!(fqdn));
    f.insert("domain".into(), json!(domain));
    f.insert("system".into(), json!(uname.first().copied().unwrap_or("")));
    f.insert("kernel".into(), json!(uname.get(1).copied().unwrap_or("")));
    f.insert("kernel_version".into(), json!(uname.get(2).copied().unwrap_or("")));
    f.insert("machine".into(), json!(machine));
    f.insert("architecture".into(), json!(machine));
    f.insert("userspace_architecture".into(), json!(machine));
    if let Some(id) = get("machine_id").lines().next().filter(|s| !s.trim().is_empty()) {
        f.insert("machine_id".into(), json!(id.trim()));
    }
    if let Some(up) = get("uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
    {
        f.insert("uptime_seconds".into(), json!(up as i64));
    }

    let lsb_bin = match sec.contains_key("lsb_minimal") {
        true => lsb_minimal(get("os_release")),
        false => get("lsb_bin").to_string(),
    };
    distribution(
        &mut f,
        get("os_release"),
        get("debian_version"),
        get("lsb_release"),
        &lsb_bin,
    );
    hardware(&mut f, get("cpuinfo"), get("nproc"), get("meminfo"));
    user(&mut f, get("id"), get("passwd"));
    f.insert("env".into(), env(get("env")));
    f.insert("date_time".into(), date_time(get("date")));
    let paths: Vec<&str> = get("paths").lines().collect();
    let family = f.get("os_family").and_then(J::as_str).unwrap_or("").to_string();
    let system = f.get("system").and_then(J::as_str).unwrap_or("").to_string();
    f.insert("service_mgr".into(), json!(service_mgr(get("init"), &paths, &system)));
    f.insert("pkg_mgr".into(), json!(pkg_mgr(&paths, &family)));
    virtualization(
        &mut f,
        &paths,
        get("cgroup"),
        get("container"),
        get("dmi"),
        get("cpuinfo"),
    );
    f.insert(
        "mounts".into(),
        mounts(get("mounts"), get("statfs"), get("binds"), get("lsblk")),
    );
    // One `ip -o -batch`: the addresses (`N: dev ...`), then each route by its destination.
    let ip = get("ip");
    let routed = |dest: &str| {
        ip.lines()
            .filter(|l| l.starts_with(dest))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let addr: Vec<&str> = ip
        .lines()
        .filter(|l| l.split_once(": ").is_some_and(|(n, _)| n.parse::<u32>().is_ok()))
        .collect();
    network(&mut f, get("net"), &addr.join("\n"), &routed(ROUTE4), &routed(ROUTE6));
    let nameservers: Vec<&str> = get("dns")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(str::trim)
        .collect();
    let search: Vec<&str> = get("dns")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("search"))
        .flat_map(str::split_whitespace)
        .collect();
    let mut dns = Map::new();
    if !nameservers.is_empty() {
        dns.insert("nameservers".into(), json!(nameservers));
    }
    if !search.is_empty() {
        dns.insert("search".into(), json!(search));
    }
    f.insert("dns".into(), J::Object(dns));

    let mut local = Map::new();
    for (name, body) in &sec {
        if let Some(file) = name.strip_prefix("local ") {
            let key = file.strip_suffix(".fact").unwrap_or(file);
            local.insert(key.to_string(), local_fact(body));
        }
    }
    f.insert("local".into(), J::Object(local));
    f
}

/// A `facts.d` file's content (or an executable's output): JSON, else INI, else Ansible's
/// error string.
fn local_fact(body: &str) -> J {
    if let Ok(v) = serde_json::from_str::<J>(body) {
        return v;
    }
    let mut out = Map::new();
    let mut section: Option<String> = None;
    for line in body.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.insert(name.to_string(), J::Object(Map::new()));
            section = Some(name.to_string());
        } else if let (Some(s), Some((k, v))) = (&section, l.split_once('=').or_else(|| l.split_once(':'))) {
            if let Some(J::Object(m)) = out.get_mut(s) {
                // configparser lower-cases option names.
                m.insert(k.trim().to_lowercase(), json!(v.trim()));
            }
        } else {
            return json!("error loading facts as JSON or ini - please check content");
        }
    }
    J::Object(out)
}

fn distribution(f: &mut Map<String, J>, os_release: &str, debian_version: &str, lsb: &str, lsb_bin: &str) {
    let os = shell_vars(os_release);
    let id = os.get("ID").cloned().unwrap_or_default();
    let name = match id.as_str() {
        "" => "OtherLinux".to_string(),
        "rhel" => "RedHat".into(),
        "centos" => "CentOS".into(),
        "ol" => "OracleLinux".into(),
        "amzn" => "Amazon".into(),
        "almalinux" => "AlmaLinux".into(),
        "arch" => "Archlinux".into(),
        "opensuse-leap" | "opensuse" => "openSUSE Leap".into(),
        "opensuse-tumbleweed" => "openSUSE Tumbleweed".into(),
        "sles" => "SLES".into(),
        "linuxmint" => "Linux Mint".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|h| h.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    };
    let debian_version = debian_version.trim();
    // Debian's point release is only in /etc/debian_version; testing/sid say a codename there.
    let version = if id == "debian" && debian_version.starts_with(|c: char| c.is_ascii_digit()) {
        debian_version.to_string()
    } else {
        os.get("VERSION_ID").cloned().unwrap_or_default()
    };
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("").to_string();
    let minor = parts.next().map(str::to_string);
    let release = os
        .get("VERSION_CODENAME")
        .or_else(|| os.get("UBUNTU_CODENAME"))
        .cloned()
        .unwrap_or_default();
    let family = os_family(&name);
    f.insert("distribution".into(), json!(name));
    f.insert("distribution_version".into(), json!(version));
    f.insert("distribution_major_version".into(), json!(major));
    if let Some(m) = minor {
        f.insert("distribution_minor_version".into(), json!(m));
    }
    f.insert("distribution_release".into(), json!(release));
    f.insert("os_family".into(), json!(family));
    let l = shell_vars(lsb);
    let mut lsbm = Map::new();
    for (k, key) in [
        ("DISTRIB_ID", "id"),
        ("DISTRIB_RELEASE", "release"),
        ("DISTRIB_DESCRIPTION", "description"),
        ("DISTRIB_CODENAME", "codename"),
    ] {
        if let Some(v) = l.get(k) {
            lsbm.insert(key.into(), json!(v));
        }
    }
    // `lsb_release -a`, where installed, is what Ansible reads first.
    let from_bin: Vec<(&str, &str)> = lsb_bin
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(k, v)| {
            let key = match k.trim() {
                "LSB Version" | "Release" => "release",
                "Distributor ID" => "id",
                "Description" => "description",
                "Codename" => "codename",
                _ => return None,
            };
            Some((key, v.trim()))
        })
        .collect();
    if !from_bin.is_empty() {
        lsbm.clear();
        for (k, v) in from_bin {
            lsbm.insert(k.into(), json!(v));
        }
    }
    if let Some(r) = lsbm.get("release").and_then(J::as_str).map(str::to_string) {
        lsbm.insert("major_release".into(), json!(r.split('.').next().unwrap_or("")));
    }
    f.insert("lsb".into(), J::Object(lsbm));
}

/// What Debian's `lsb_release -a` (lsb-release-minimal, a shell script) prints: os-release
/// reformatted, the ID capitalised (or NAME where it differs from ID only in case).
fn lsb_minimal(os_release: &str) -> String {
    let os = shell_vars(os_release);
    let na = |k: &str| {
        os.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "n/a".into())
    };
    let raw = os.get("ID").cloned().unwrap_or_default();
    let mut c = raw.chars();
    let mut id: String = c
        .next()
        .map(|h| h.to_uppercase().chain(c).collect())
        .unwrap_or_default();
    if let Some(name) = os.get("NAME").filter(|n| n.to_lowercase() == id.to_lowercase()) {
        id = name.clone();
    }
    let id = if id.is_empty() { "n/a".to_string() } else { id };
    format!(
        "Distributor ID:\t{id}\nDescription:\t{}\nRelease:\t{}\nCodename:\t{}\n",
        na("PRETTY_NAME"),
        na("VERSION_ID"),
        na("VERSION_CODENAME")
    )
}

/// Ansible's `OS_FAMILY_MAP` for the distributions deploys meet; others are their own family.
fn os_family(distribution: &str) -> String {
    const MAP: &[(&str, &[&str])] = &[
        (
            "RedHat",
            &[
                "RedHat",
                "Fedora",
                "CentOS",
                "Scientific",
                "OracleLinux",
                "Amazon",
                "XenServer",
                "CloudLinux",
                "Rocky",
                "AlmaLinux",
                "EuroLinux",
                "Virtuozzo",
            ],
        ),
        (
            "Debian",
            &[
                "Debian",
                "Ubuntu",
                "Raspbian",
                "Neon",
                "KDE neon",
                "Linux Mint",
                "SteamOS",
                "Devuan",
                "Kali",
                "Cumulus Linux",
                "Pop!_OS",
                "Parrot",
                "Pardus GNU/Linux",
                "Uos",
                "Deepin",
                "OSMC",
            ],
        ),
        (
            "Suse",
            &[
                "SuSE",
                "SLES",
                "SLED",
                "openSUSE",
                "openSUSE Tumbleweed",
                "openSUSE Leap",
                "SLES_SAP",
            ],
        ),
        ("Archlinux", &["Archlinux", "Antergos", "Manjaro"]),
        ("Alpine", &["Alpine"]),
        ("Gentoo", &["Gentoo", "Funtoo"]),
    ];
    MAP.iter()
        .find(|(_, members)| members.contains(&distribution))
        .map(|(fam, _)| fam.to_string())
        .unwrap_or_else(|| distribution.to_string())
}

fn hardware(f: &mut Map<String, J>, cpuinfo: &str, nproc: &str, meminfo: &str) {
    let mut processor: Vec<J> = Vec::new();
    let mut sockets: BTreeMap<String, i64> = BTreeMap::new();
    let (mut vcpus, mut cur_phys) = (0i64, String::new());
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                vcpus += 1;
                processor.push(json!(v));
            }
            "vendor_id" | "model name" => processor.push(json!(v)),
            "physical id" => {
                cur_phys = v.to_string();
                sockets.entry(cur_phys.clone()).or_insert(0);
            }
            "cpu cores" => {
                if let Ok(n) = v.parse() {
                    sockets.insert(cur_phys.clone(), n);
                }
            }
            _ => {}
        }
    }
    let count = sockets.len().max(1) as i64;
    let cores = sockets.values().next().copied().unwrap_or(1);
    f.insert("processor".into(), J::Array(processor));
    f.insert("processor_count".into(), json!(count));
    f.insert("processor_cores".into(), json!(cores));
    f.insert("processor_vcpus".into(), json!(vcpus));
    f.insert(
        "processor_threads_per_core".into(),
        json!((vcpus / (count * cores).max(1)).max(1)),
    );
    if let Ok(n) = nproc.trim().parse::<i64>() {
        f.insert("processor_nproc".into(), json!(n));
    }
    let mem: BTreeMap<&str, i64> = meminfo
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    let mb = |k: &str| mem.get(k).copied().unwrap_or(0) / 1024;
    f.insert("memtotal_mb".into(), json!(mb("MemTotal")));
    f.insert("memfree_mb".into(), json!(mb("MemFree")));
    f.insert("swaptotal_mb".into(), json!(mb("SwapTotal")));
    f.insert("swapfree_mb".into(), json!(mb("SwapFree")));
    let nocache_free = mb("MemFree") + mb("Buffers") + mb("Cached");
    f.insert(
        "memory_mb".into(),
        json!({
            "real": {"total": mb("MemTotal"), "free": mb("MemFree"), "used": mb("MemTotal") - mb("MemFree")},
            "nocache": {"free": nocache_free, "used": mb("MemTotal") - nocache_free},
            "swap": {"total": mb("SwapTotal"), "free": mb("SwapFree"), "used": mb("SwapTotal") - mb("SwapFree"), "cached": mb("SwapCached")},
        }),
    );
}

fn user(f: &mut Map<String, J>, id: &str, passwd: &str) {
    // `id`: `uid=0(root) gid=0(root) groups=...`
    let field = |k: &str| {
        id.split_whitespace().find_map(|w| w.strip_prefix(k)).map(|v| {
            v.split_once('(')
                .map_or((v, ""), |(n, rest)| (n, rest.trim_end_matches(')')))
        })
    };
    let num = |i: usize| field(if i == 1 { "uid=" } else { "gid=" }).and_then(|(n, _)| n.parse::<i64>().ok());
    let pw: Vec<&str> = passwd.lines().next().unwrap_or("").split(':').collect();
    // `uid=0 gid=0` from the script; `uid=0(root) ...` as `id` prints it.
    let name = field("uid=")
        .map(|(_, name)| name)
        .filter(|n| !n.is_empty())
        .unwrap_or(if pw.len() >= 7 { pw[0] } else { "" });
    f.insert("user_id".into(), json!(name));
    if let Some(u) = num(1) {
        f.insert("user_uid".into(), json!(u));
        f.insert("real_user_id".into(), json!(u));
        f.insert("effective_user_id".into(), json!(u));
    }
    if let Some(g) = num(2) {
        f.insert("user_gid".into(), json!(g));
        f.insert("real_group_id".into(), json!(g));
        f.insert("effective_group_id".into(), json!(g));
    }
    if pw.len() >= 7 {
        f.insert("user_gecos".into(), json!(pw[4]));
        f.insert("user_dir".into(), json!(pw[5]));
        f.insert("user_shell".into(), json!(pw[6]));
    }
}

fn env(text: &str) -> J {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    // The kernel's copy (`/proc/PID/environ`): `NAME=value` entries between NULs.
    if text.contains('\0') {
        for entry in text.split('\0') {
            if let Some((k, v)) = entry.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
        return json!(m);
    }
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        // Undo the script's escaping of backslashes and newlines.
        let mut out = String::new();
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(o) => out.push(o),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        // awk's own variables are not the shell's.
        if !matches!(k, "AWKPATH" | "AWKLIBPATH") {
            m.insert(k.to_string(), out);
        }
    }
    json!(m)
}

/// `date`'s fields now and on 2000-07-01 (whose zone name is the summer one, Python's
/// `time.tzname[1]`); the UTC times follow from the epoch.
fn date_time(text: &str) -> J {
    let mut lines = text.lines();
    let p: Vec<&str> = lines.next().unwrap_or("").split('|').collect();
    let summer: Vec<&str> = lines.next().unwrap_or("").split('|').collect();
    let tz_dst = summer.get(7).copied().unwrap_or("");
    if p.len() < 14 {
        return J::Object(Map::new());
    }
    let utc = p[6]
        .parse::<i64>()
        .ok()
        .and_then(|e| chrono::DateTime::from_timestamp(e, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default();
    // `%N` is GNU date; elsewhere it prints itself, and the microseconds are zero.
    let micro: String = if p[12].chars().all(|c| c.is_ascii_digit()) && p[12].len() >= 6 {
        p[12][..6].to_string()
    } else {
        "000000".into()
    };
    let tz_dst = tz_dst.trim();
    json!({
        "year": p[0], "month": p[1], "day": p[2], "hour": p[3], "minute": p[4], "second": p[5],
        "epoch": p[6], "epoch_int": p[6], "date": format!("{}-{}-{}", p[0], p[1], p[2]),
        "time": format!("{}:{}:{}", p[3], p[4], p[5]), "tz": p[7], "tz_offset": p[8],
        "tz_dst": if tz_dst.is_empty() { p[7] } else { tz_dst },
        "weekday": p[9], "weekday_number": p[10], "weeknumber": p[11],
        "iso8601": format!("{utc}Z"), "iso8601_micro": format!("{utc}.{micro}Z"),
        "iso8601_basic": format!("{}{micro}", p[13]), "iso8601_basic_short": p[13],
    })
}

/// Ansible's `service_mgr` collector, for Linux: PID 1's name unless it is `init` or a shell,
/// then systemd's canary directories, upstart, openrc, sysvinit.
fn service_mgr(init: &str, paths: &[&str], system: &str) -> String {
    let mut lines = init.lines().map(str::trim).filter(|l| !l.is_empty());
    let proc1 = lines.next().map(|p| p.rsplit('/').next().unwrap_or(p).to_string());
    if let Some(p) = proc1.filter(|p| p != "init" && !p.ends_with("sh")) {
        return match p.as_str() {
            "procd" => "openwrt_init",
            "runit-init" => "runit",
            "svscan" => "svc",
            "openrc-init" => "openrc",
            other => other,
        }
        .to_string();
    }
    let has = |p: &str| paths.contains(&p);
    let systemctl = paths.iter().any(|p| p.ends_with("/systemctl"));
    let initctl = paths.iter().any(|p| p.ends_with("/initctl"));
    if system != "Linux" {
        return "service".into();
    }
    if systemctl && (has("/run/systemd/system") || has("/dev/.run/systemd") || has("/dev/.systemd")) {
        "systemd"
    } else if initctl && has("/etc/init") {
        "upstart"
    } else if has("/sbin/openrc") {
        "openrc"
    } else if systemctl && lines.next().is_some_and(|l| l.ends_with("systemd")) {
        "systemd"
    } else if has("/etc/init.d") {
        "sysvinit"
    } else if has("/etc/dinit.d") {
        "dinit"
    } else {
        "service"
    }
    .to_string()
}

/// Ansible's `pkg_mgr` collector: the last known package manager present, with the family's
/// default where a family has one.
fn pkg_mgr(paths: &[&str], family: &str) -> String {
    const PKG_MGRS: &[(&str, &str)] = &[
        ("/usr/bin/rpm-ostree", "atomic_container"),
        ("/usr/bin/yum", "dnf"),
        ("/usr/bin/dnf-3", "dnf"),
        ("/usr/bin/dnf5", "dnf5"),
        ("/usr/bin/apt-get", "apt"),
        ("/usr/bin/zypper", "zypper"),
        ("/usr/sbin/urpmi", "urpmi"),
        ("/usr/bin/pacman", "pacman"),
        ("/bin/opkg", "opkg"),
        ("/sbin/apk", "apk"),
        ("/usr/bin/emerge", "portage"),
        ("/usr/bin/xbps-install", "xbps"),
        ("/usr/bin/swupd", "swupd"),
    ];
    let has = |p: &str| paths.contains(&p);
    let mut name = PKG_MGRS
        .iter()
        .rev()
        .find(|(p, _)| has(p))
        .map(|(_, n)| *n)
        .unwrap_or("unknown");
    if family == "RedHat" {
        name = if has("/run/ostree-booted") {
            "atomic_container"
        } else if has("/usr/bin/dnf") || has("/usr/bin/microdnf") {
            "dnf"
        } else {
            "unknown"
        };
    } else if family == "Debian" {
        name = "apt";
    }
    name.to_string()
}

/// Ansible's Linux virtualization collector, for what hosts here meet: containers (docker,
/// podman, lxc, systemd-nspawn, openvz) and the common hypervisors.
fn virtualization(f: &mut Map<String, J>, paths: &[&str], cgroup: &str, container: &str, dmi: &str, cpuinfo: &str) {
    let has = |p: &str| paths.contains(&p);
    let mut guest: Vec<&str> = Vec::new();
    let mut host: Vec<&str> = Vec::new();
    let mut found: Option<(&str, &str)> = None;
    let set = |t: &'static str, r: &'static str, found: &mut Option<(&'static str, &'static str)>| {
        if found.is_none() {
            *found = Some((t, r));
        }
    };
    if has("/proc/vz") && !has("/proc/bc") {
        guest.push("openvz");
        set("openvz", "guest", &mut found);
    }
    if has("/proc/bc") {
        host.push("openvz");
        set("openvz", "host", &mut found);
    }
    if cgroup.contains("/docker/") || cgroup.contains("docker-") || has("/.dockerenv") {
        guest.extend(["docker", "container"]);
        set("docker", "guest", &mut found);
    }
    if cgroup.contains("/lxc/") || cgroup.contains("machine-lxc") {
        guest.extend(["lxc", "container"]);
        set("lxc", "guest", &mut found);
    }
    if has("/run/.containerenv")
        || container
            .lines()
            .any(|l| l.trim() == "container=podman" || l.trim() == "podman")
    {
        guest.extend(["podman", "container"]);
        set("podman", "guest", &mut found);
    }
    for l in container.lines().map(str::trim) {
        let v = l.strip_prefix("container=").unwrap_or(l);
        match v {
            "lxc" | "lxc-libvirt" => {
                guest.extend(["lxc", "container"]);
                set("lxc", "guest", &mut found);
            }
            "systemd-nspawn" => {
                guest.extend(["systemd-nspawn", "container"]);
                set("systemd-nspawn", "guest", &mut found);
            }
            _ => {}
        }
    }
    let dmi: BTreeMap<&str, &str> = dmi.lines().filter_map(|l| l.split_once('=')).collect();
    let product = dmi.get("product_name").copied().unwrap_or("").trim();
    let vendor = dmi.get("sys_vendor").copied().unwrap_or("").trim();
    let vm = if product.contains("KVM") || product.contains("Bochs") || vendor == "QEMU" {
        Some("kvm")
    } else if product.contains("VMware") || vendor.contains("VMware") {
        Some("VMware")
    } else if product == "VirtualBox" || vendor == "innotek GmbH" {
        Some("virtualbox")
    } else if vendor.contains("Microsoft") && product == "Virtual Machine" {
        Some("VirtualPC")
    } else if vendor == "Amazon EC2" || product.starts_with("HVM domU") || vendor == "Google" {
        Some("kvm")
    } else {
        None
    };
    if let Some(t) = vm {
        guest.push(t);
        set(t, "guest", &mut found);
    }
    if has("/dev/kvm") {
        host.push("kvm");
        if vm.is_none() {
            set("kvm", "host", &mut found);
        }
    }
    if found.is_none()
        && cpuinfo
            .lines()
            .any(|l| l.starts_with("flags") && l.contains(" hypervisor"))
    {
        set("NA", "guest", &mut found);
    }
    guest.dedup();
    let (t, r) = found.unwrap_or(("NA", "NA"));
    f.insert("virtualization_type".into(), json!(t));
    f.insert("virtualization_role".into(), json!(r));
    let mut g: Vec<&str> = guest.clone();
    g.sort();
    g.dedup();
    let mut h = host.clone();
    h.sort();
    h.dedup();
    f.insert("virtualization_tech_guest".into(), json!(g));
    f.insert("virtualization_tech_host".into(), json!(h));
}

/// `binds`: the mount points (octal-escaped, as /proc lists them) of bind mounts, to which
/// Ansible adds `bind` in the options (it asks findmnt, which shows them as `SOURCE[/dir]`).
fn mounts(mounts: &str, statfs: &str, binds: &str, lsblk: &str) -> J {
    let binds: Vec<String> = binds.lines().map(unescape_octal).collect();
    let uuids: BTreeMap<&str, &str> = lsblk
        .lines()
        .filter_map(|l| {
            let (n, u) = l.trim().rsplit_once(char::is_whitespace)?;
            Some((n.trim(), u.trim()))
        })
        .collect();
    let sizes: BTreeMap<&str, Vec<i64>> = statfs
        .lines()
        .filter_map(|l| {
            let mut p = l.split('|');
            let m = p.next()?;
            Some((m, p.filter_map(|n| n.trim().parse().ok()).collect()))
        })
        .collect();
    let mut out = Vec::new();
    for line in mounts.lines() {
        let p: Vec<&str> = line.split_whitespace().collect();
        if p.len() < 6 {
            continue;
        }
        let (device, mount, fstype, options) = (p[0], unescape_octal(p[1]), p[2], p[3]);
        // Ansible lists block devices and network file systems only.
        if (!device.starts_with('/') && !device.contains(":/")) || fstype == "none" {
            continue;
        }
        let mut m = Map::new();
        m.insert("mount".into(), json!(mount));
        m.insert("device".into(), json!(unescape_octal(device)));
        m.insert("fstype".into(), json!(fstype));
        let options = if binds.contains(&mount) && !options.split(',').any(|o| o == "bind") {
            format!("{options},bind")
        } else {
            options.to_string()
        };
        m.insert("options".into(), json!(options));
        m.insert("dump".into(), json!(p[4].parse::<i64>().unwrap_or(0)));
        m.insert("passno".into(), json!(p[5].parse::<i64>().unwrap_or(0)));
        let uuid = uuids.get(device).copied().filter(|u| !u.is_empty()).unwrap_or("N/A");
        m.insert("uuid".into(), json!(uuid));
        // stat -f: fundamental block size, block size, blocks, free, available, inodes, free inodes
        if let Some(s) = sizes.get(mount.as_str()).filter(|s| s.len() == 7) {
            let (frsize, bsize, blocks, bfree, bavail, files, ffree) = (s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
            m.insert("size_total".into(), json!(frsize * blocks));
            m.insert("size_available".into(), json!(frsize * bavail));
            m.insert("block_size".into(), json!(bsize));
            m.insert("block_total".into(), json!(blocks));
            m.insert("block_available".into(), json!(bavail));
            m.insert("block_used".into(), json!(blocks - bfree));
            m.insert("inode_total".into(), json!(files));
            m.insert("inode_available".into(), json!(ffree));
            m.insert("inode_used".into(), json!(files - ffree));
        }
        out.push(J::Object(m));
    }
    J::Array(out)
}

/// `/proc/mounts` writes spaces and tabs in paths as octal escapes (`\040`).
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && let Ok(n) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mask4(prefix: u32) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    }
}

fn network(f: &mut Map<String, J>, net: &str, addr: &str, route4: &str, route6: &str) {
    let mut ifaces: BTreeMap<String, Map<String, J>> = BTreeMap::new();
    for line in net.lines() {
        let p: Vec<&str> = line.split('|').collect();
        if p.len() < 13 || p[0] != "dev" {
            continue;
        }
        let flags = i64::from_str_radix(p[4].trim_start_matches("0x"), 16).unwrap_or(0);
        let kind = match (p[5], p[6]) {
            (_, "bridge") => "bridge",
            (_, "bonding") => "bonding",
            ("1", _) => "ether",
            ("32", _) => "infiniband",
            ("512", _) => "ppp",
            ("772", _) => "loopback",
            ("65534", _) => "tunnel",
            _ => "unknown",
        };
        let mut m = Map::new();
        m.insert("device".into(), json!(p[1]));
        if !p[2].is_empty() && p[2] != "00:00:00:00:00:00" {
            m.insert("macaddress".into(), json!(p[2]));
        }
        if let Ok(mtu) = p[3].parse::<i64>() {
            m.insert("mtu".into(), json!(mtu));
        }
        m.insert("active".into(), json!(p[9] != "down"));
        m.insert("promisc".into(), json!(flags & 0x100 != 0));
        m.insert("type".into(), json!(kind));
        if let Ok(speed) = p[7].parse::<i64>() {
            m.insert("speed".into(), json!(speed));
        }
        if !p[8].is_empty() {
            m.insert("pciid".into(), json!(p[8]));
        }
        if p[6] == "bridge" {
            m.insert("interfaces".into(), json!(p[12].split_whitespace().collect::<Vec<_>>()));
            m.insert("id".into(), json!(p[10]));
            m.insert("stp".into(), json!(p[11] == "1"));
        }
        ifaces.insert(p[1].to_string(), m);
    }
    let (mut all4, mut all6) = (Vec::new(), Vec::new());
    // The label of each primary IPv4 address, for `default_ipv4.alias`.
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for line in addr.lines() {
        // `2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft ...`
        let line = line.split('\\').next().unwrap_or("");
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 4 {
            continue;
        }
        let dev = w[1].split('@').next().unwrap_or(w[1]).to_string();
        let Some(iface) = ifaces.get_mut(&dev) else { continue };
        let Some((address, prefix)) = w[3].split_once('/') else {
            continue;
        };
        let word = |k: &str| w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1)).copied();
        let secondary = w.contains(&"secondary");
        match w[2] {
            "inet" => {
                let plen: u32 = prefix.parse().unwrap_or(32);
                let a: std::net::Ipv4Addr = address.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
                let mask = std::net::Ipv4Addr::from(mask4(plen));
                let network = std::net::Ipv4Addr::from(u32::from(a) & mask4(plen));
                let v = json!({
                    "address": address, "broadcast": word("brd").unwrap_or(""),
                    "netmask": mask.to_string(), "network": network.to_string(), "prefix": prefix,
                });
                if !address.starts_with("127.") {
                    all4.push(address.to_string());
                }
                if !secondary && !iface.contains_key("ipv4") {
                    iface.insert("ipv4".into(), v);
                    labels.insert(address.to_string(), w.last().copied().unwrap_or(&dev).to_string());
                } else if let J::Array(s) = iface.entry("ipv4_secondaries").or_insert_with(|| J::Array(Vec::new())) {
                    s.push(v);
                }
            }
            "inet6" => {
                if address != "::1" {
                    all6.push(address.to_string());
                }
                let v = json!({"address": address, "prefix": prefix, "scope": word("scope").unwrap_or("")});
                if let J::Array(s) = iface.entry("ipv6").or_insert_with(|| J::Array(Vec::new())) {
                    s.push(v);
                }
            }
            _ => {}
        }
    }
    let default = |route: &str, v6: bool, ifaces: &BTreeMap<String, Map<String, J>>| -> J {
        let w: Vec<&str> = route.split_whitespace().collect();
        let word = |k: &str| w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1)).copied();
        let Some(dev) = word("dev") else {
            return J::Object(Map::new());
        };
        let mut m = Map::new();
        m.insert("interface".into(), json!(dev));
        if let Some(src) = word("src") {
            m.insert("address".into(), json!(src));
        }
        if let Some(g) = word("via") {
            m.insert("gateway".into(), json!(g));
        }
        if let Some(i) = ifaces.get(dev) {
            if !v6 {
                if let Some(J::Object(a)) = i.get("ipv4") {
                    m.extend(a.clone());
                }
            } else if let Some(J::Array(list)) = i.get("ipv6") {
                let src = word("src");
                if let Some(J::Object(a)) = list
                    .iter()
                    .find(|a| a.get("address").and_then(J::as_str) == src)
                    .or_else(|| list.first())
                {
                    m.extend(a.clone());
                }
            }
            for k in ["macaddress", "mtu", "type"] {
                if let Some(v) = i.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
        }
        if !v6 && let Some(a) = m.get("address").and_then(J::as_str) {
            let alias = labels.get(a).cloned().unwrap_or_else(|| dev.to_string());
            m.insert("alias".into(), json!(alias));
        }
        J::Object(m)
    };
    f.insert("default_ipv4".into(), default(route4, false, &ifaces));
    f.insert("default_ipv6".into(), default(route6, true, &ifaces));
    f.insert("all_ipv4_addresses".into(), json!(all4));
    f.insert("all_ipv6_addresses".into(), json!(all6));
    f.insert("interfaces".into(), json!(ifaces.keys().collect::<Vec<_>>()));
    for (name, m) in ifaces {
        f.insert(name.replace(['-', ':', '.'], "_"), J::Object(m));
    }
}

/// `setup`'s `gather_subset` (`all`, `min`, `hardware`, `network`, `virtual`, negated with `!`)
/// and `filter` (shell-style patterns on the prefixed names, any of which may match); `min` is
/// always kept, as in Ansible.
pub fn select(facts: Map<String, J>, subset: &[String], filter: &[String]) -> Map<String, J> {
    let all = ["hardware", "network", "virtual"];
    let mut want: Vec<&str> = Vec::new();
    let items: Vec<&str> = if subset.is_empty() {
        vec!["all"]
    } else {
        subset.iter().map(String::as_str).collect()
    };
    if items.iter().all(|s| s.starts_with('!')) {
        want.extend(all);
    }
    for s in &items {
        match *s {
            "all" => want.extend(all),
            "!all" => want.clear(),
            x if x.starts_with('!') => want.retain(|w| *w != &x[1..]),
            x => want.push(x),
        }
    }
    let interfaces: Vec<String> = facts
        .get("interfaces")
        .and_then(J::as_array)
        .map(|l| {
            l.iter()
                .filter_map(J::as_str)
                .map(|s| s.replace(['-', ':', '.'], "_"))
                .collect()
        })
        .unwrap_or_default();
    facts
        .into_iter()
        .filter(|(k, _)| {
            let subset = if interfaces.contains(k) {
                "network"
            } else {
                subset_of(k)
            };
            subset == "min" || want.contains(&subset)
        })
        .filter(|(k, _)| {
            filter.is_empty()
                || filter
                    .iter()
                    .any(|p| wildmatch::WildMatch::new(p).matches(&format!("ansible_{k}")))
        })
        .collect()
}

/// What one gathering found, as a module returns it (`setup`'s `ansible_facts`): the chosen
/// facts with the `ansible_` prefix, then `gather_subset` and `module_setup`.
pub fn gathered(stdout: &str, subset: &[String], filter: &[String]) -> VarMap {
    let mut out: VarMap = select(parse(stdout), subset, filter)
        .into_iter()
        .map(|(k, v)| (format!("ansible_{k}"), from_serde(&v)))
        .collect();
    let shown: Vec<String> = if subset.is_empty() {
        vec!["all".into()]
    } else {
        subset.to_vec()
    };
    out.insert("gather_subset".into(), Value::from(shown));
    out.insert("module_setup".into(), Value::from(true));
    out
}

/// A host's facts as variables: `ansible_facts` (what the host already had, updated with
/// `facts`, names without the prefix) and each fact injected as `ansible_X`, as Ansible does
/// with `inject_facts_as_vars` (its default).
pub fn inject(current: Option<&Value>, facts: &VarMap) -> VarMap {
    let mut merged = VarMap::new();
    if let Some(c) = current
        && let Ok(keys) = c.try_iter()
    {
        for k in keys {
            if let Ok(v) = c.get_item(&k) {
                merged.insert(value_to_string(&k), v);
            }
        }
    }
    let mut out = VarMap::new();
    for (k, v) in facts {
        let bare = k.strip_prefix("ansible_").unwrap_or(k);
        merged.insert(bare.to_string(), v.clone());
        // `gather_subset` and `module_setup` keep their names, as in Ansible.
        let var = if matches!(bare, "gather_subset" | "module_setup") {
            bare.to_string()
        } else {
            format!("ansible_{bare}")
        };
        out.insert(var, v.clone());
    }
    out.insert(
        "ansible_facts".into(),
        Value::from_pairs(merged.into_iter().collect::<Vec<_>>()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\n@@roll-facts@@ hostname\nweb1.example.org\n@@roll-facts@@ fqdn\nweb1.example.org\n\
@@roll-facts@@ uname\nLinux\n6.1.0\n#1 SMP\nx86_64\n\
@@roll-facts@@ os_release\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n\
@@roll-facts@@ debian_version\n12.11\n\
@@roll-facts@@ net\ndev|eth0|02:00:00:00:00:01|1500|0x1003|1||1000|virtio0|up|||\ndev|lo|00:00:00:00:00:00|65536|0x9|772|||||unknown|||\n\
@@roll-facts@@ ip\n1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
2: eth0    inet 10.0.1.7/20 brd 10.0.15.255 scope global eth0\\       valid_lft forever\n\
2: eth0    inet 10.0.1.8/20 brd 10.0.15.255 scope global secondary eth0:1\\ x\n\
2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever\n\
8.8.8.8 via 10.0.0.1 dev eth0 src 10.0.1.7 uid 0\n\
@@roll-facts@@ local app.fact\n{\"release\": \"v2\"}\n@@roll-facts@@ local ini.fact\n[main]\nColour=blue\n\
@@roll-facts@@ end\n";

    #[test]
    fn facts_are_read_from_the_scripts_sections() {
        let f = parse(SAMPLE);
        assert_eq!(f["hostname"], "web1");
        assert_eq!(f["nodename"], "web1.example.org");
        assert_eq!(f["domain"], "example.org");
        assert_eq!(f["distribution"], "Debian");
        assert_eq!(f["distribution_version"], "12.11");
        assert_eq!(f["distribution_major_version"], "12");
        assert_eq!(f["distribution_release"], "bookworm");
        assert_eq!(f["os_family"], "Debian");
        let d = &f["default_ipv4"];
        assert_eq!(d["address"], "10.0.1.7");
        assert_eq!(d["gateway"], "10.0.0.1");
        assert_eq!(d["netmask"], "255.255.240.0");
        assert_eq!(d["network"], "10.0.0.0");
        assert_eq!(d["macaddress"], "02:00:00:00:00:01");
        assert_eq!(d["mtu"], 1500);
        assert_eq!(d["type"], "ether");
        assert_eq!(f["all_ipv4_addresses"], json!(["10.0.1.7", "10.0.1.8"]));
        assert_eq!(f["eth0"]["ipv4_secondaries"][0]["address"], "10.0.1.8");
        assert_eq!(f["lo"]["type"], "loopback");
        assert_eq!(f["local"]["app"]["release"], "v2");
        assert_eq!(f["local"]["ini"]["main"]["colour"], "blue");
    }

    /// What `grep -aH ''` printed for a host's files, as the script's `files` section.
    const FILES: &str = "\n@@roll-facts@@ files\n/proc/sys/kernel/hostname:app7\n\
/proc/sys/kernel/ostype:Linux\n/proc/sys/kernel/osrelease:6.1.0-9\n/proc/sys/kernel/version:#1 SMP\n\
/proc/sys/kernel/arch:aarch64\n/usr/lib/os-release:ID=debian\n/usr/lib/os-release:NAME=\"Debian GNU/Linux\"\n\
/usr/lib/os-release:PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n/usr/lib/os-release:VERSION_ID=\"12\"\n\
/usr/lib/os-release:VERSION_CODENAME=bookworm\n/proc/self/status:Name:\tgrep\n/proc/self/status:Cpus_allowed_list:\t0-3,6\n\
/proc/4242/environ:HOME=/root\0NOTE=two\n/proc/4242/environ:lines\0USER=root\0\n\
/proc/1/environ:container=podman\0PATH=/bin\0\n\
/proc/mounts:/dev/vda1 / ext4 rw 0 0\n/proc/mounts:/dev/vda1 /srv/my\\040data ext4 rw 0 0\n\
/proc/self/mountinfo:25 1 254:1 / / rw - ext4 /dev/vda1 rw\n/proc/self/mountinfo:45 25 254:1 /data /srv/my\\040data rw - ext4 /dev/vda1 rw\n\
/sys/class/block/vda1/dev:254:1\n/sys/class/block/fd0/dev:2:0\n\
/run/udev/data/b254:1:S:disk/by-uuid/0f1e\n/run/udev/data/b254:1:E:ID_FS_UUID=0f1e-77\n\
@@roll-facts@@ id\nuid=0 gid=0\n@@roll-facts@@ passwd\nroot:x:0:0:root:/root:/bin/bash\n\
@@roll-facts@@ lsb_minimal\n@@roll-facts@@ date\n2026|12|01|19|30|00|1796149800|CET|+0100|Tuesday|2|48|123456789|20261201T193000\n\
2000|07|01|00|00|00|962402400|CEST|+0200|Saturday|6|26|000000000|20000701T000000\n@@roll-facts@@ end\n";

    #[test]
    fn files_the_script_read_become_the_facts_their_tools_would_give() {
        let f = parse(FILES);
        assert_eq!(f["hostname"], "app7");
        assert_eq!(f["kernel"], "6.1.0-9");
        assert_eq!(f["architecture"], "aarch64");
        assert_eq!(f["distribution"], "Debian");
        assert_eq!(f["processor_nproc"], 5);
        assert_eq!(f["env"]["NOTE"], "two\nlines");
        assert_eq!(f["env"]["USER"], "root");
        assert_eq!(f["user_id"], "root");
        assert_eq!(f["user_dir"], "/root");
        assert_eq!(f["virtualization_type"], "podman");
        assert_eq!(
            f["lsb"],
            json!({"id": "Debian", "description": "Debian GNU/Linux 12 (bookworm)", "release": "12",
                   "codename": "bookworm", "major_release": "12"})
        );
        let mounts = f["mounts"].as_array().unwrap();
        assert_eq!(mounts[0]["uuid"], "0f1e-77");
        assert_eq!(mounts[0]["options"], "rw");
        assert_eq!(mounts[1]["mount"], "/srv/my data");
        assert_eq!(mounts[1]["options"], "rw,bind");
        let dt = &f["date_time"];
        assert_eq!(dt["tz"], "CET");
        assert_eq!(dt["tz_dst"], "CEST");
        assert_eq!(dt["iso8601"], "2026-12-01T18:30:00Z");
        assert_eq!(dt["iso8601_micro"], "2026-12-01T18:30:00.123456Z");
    }

    #[test]
    fn subsets_and_filters_choose_facts_and_min_stays() {
        let f = parse(SAMPLE);
        let min = select(f.clone(), &["!all".into()], &[]);
        assert!(min.contains_key("distribution") && !min.contains_key("default_ipv4") && !min.contains_key("eth0"));
        let net = select(f.clone(), &["!all".into(), "network".into()], &[]);
        assert!(net.contains_key("eth0") && !net.contains_key("memtotal_mb"));
        let only = select(f, &[], &["ansible_distribution*".into()]);
        assert!(only.keys().all(|k| k.starts_with("distribution")) && only.len() >= 3);
    }

    #[test]
    fn injected_facts_update_ansible_facts_and_keep_their_prefix_once() {
        let f = parse(SAMPLE);
        let vars = inject(None, &gathered(SAMPLE, &[], &[]));
        assert_eq!(vars["ansible_hostname"].to_string(), "web1");
        assert_eq!(vars["gather_subset"].to_string(), "['all']");
        assert!(f.contains_key("eth0") && vars.contains_key("ansible_eth0"));
        let extra: VarMap = [("ansible_extra".to_string(), Value::from(1))].into_iter().collect();
        let again = inject(vars.get("ansible_facts"), &extra);
        let af = &again["ansible_facts"];
        assert_eq!(af.get_attr("extra").unwrap().to_string(), "1");
        assert_eq!(af.get_attr("hostname").unwrap().to_string(), "web1");
    }

    #[test]
    fn gathering_defaults_to_implicit() {
        assert!(Gathering::default().gathers(None));
        assert!(!Gathering::default().gathers(Some(false)));
        assert!(!Gathering::Explicit.gathers(None));
    }
}

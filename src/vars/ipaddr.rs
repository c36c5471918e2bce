//! The `ipaddr`, `ipv4` and `ipv6` filters of ansible.utils (also under their FQCNs), for the
//! queries deploy playbooks use, answering as ansible.utils' `ipaddr_utils` does with netaddr.

use crate::values::value_to_string;
use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// What netaddr's `IPNetwork` holds: an address, its prefix length, and whether the text named a
/// network (`a/b`) or a bare address.
#[derive(Debug, Clone, Copy)]
struct Net {
    ip: u128,
    prefix: u32,
    v6: bool,
    network_text: bool,
}

impl Net {
    fn bits(&self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }
    fn max(&self) -> u128 {
        if self.v6 { u128::MAX } else { u32::MAX as u128 }
    }
    fn hostmask(&self) -> u128 {
        let host_bits = self.bits() - self.prefix;
        if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        }
    }
    fn netmask(&self) -> u128 {
        self.max() ^ self.hostmask()
    }
    fn network(&self) -> u128 {
        self.ip & self.netmask()
    }
    /// netaddr: none for a /31, /32 (or /127, /128).
    fn broadcast(&self) -> Option<u128> {
        (self.bits() - self.prefix > 1).then(|| self.ip | self.hostmask())
    }
    /// The number of addresses (saturating for `::/0`).
    fn size(&self) -> u128 {
        self.hostmask().saturating_add(1)
    }
    fn addr(&self, n: u128) -> String {
        if self.v6 {
            Ipv6Addr::from(n).to_string()
        } else {
            Ipv4Addr::from(n as u32).to_string()
        }
    }
    fn ip_text(&self) -> String {
        self.addr(self.ip)
    }
    /// netaddr's `str(IPNetwork)`: the address (not the network) and the prefix.
    fn text(&self) -> String {
        format!("{}/{}", self.ip_text(), self.prefix)
    }
    fn version(&self) -> i64 {
        if self.v6 { 6 } else { 4 }
    }
    fn contains(&self, cidr: &str) -> bool {
        match parse(cidr) {
            Some(n) if n.v6 == self.v6 => self.ip & n.netmask() == n.network(),
            _ => false,
        }
    }
    fn is_global(&self) -> bool {
        let (not_reachable, exceptions): (&[&str], &[&str]) = if self.v6 {
            (
                &[
                    "::1/128",
                    "::/128",
                    "::ffff:0:0/96",
                    "64:ff9b:1::/48",
                    "100::/64",
                    "2001::/23",
                    "2001:db8::/32",
                    "2002::/16",
                    "fc00::/7",
                    "fe80::/10",
                ],
                &[
                    "2001:1::1/128",
                    "2001:1::2/128",
                    "2001:3::/32",
                    "2001:4:112::/48",
                    "2001:20::/28",
                    "2001:30::/28",
                ],
            )
        } else {
            (
                &[
                    "0.0.0.0/8",
                    "10.0.0.0/8",
                    "100.64.0.0/10",
                    "127.0.0.0/8",
                    "169.254.0.0/16",
                    "172.16.0.0/12",
                    "192.0.0.0/24",
                    "192.0.0.170/31",
                    "192.0.2.0/24",
                    "192.168.0.0/16",
                    "198.18.0.0/15",
                    "198.51.100.0/24",
                    "203.0.113.0/24",
                    "240.0.0.0/4",
                    "255.255.255.255/32",
                ],
                &["192.0.0.9/32", "192.0.0.10/32"],
            )
        };
        !not_reachable.iter().any(|c| self.contains(c)) || exceptions.iter().any(|c| self.contains(c))
    }
    fn is_multicast(&self) -> bool {
        self.contains(if self.v6 { "ff00::/8" } else { "224.0.0.0/4" })
    }
    fn is_loopback(&self) -> bool {
        self.contains(if self.v6 { "::1/128" } else { "127.0.0.0/8" })
    }
}

/// netaddr's `IPNetwork(text)`: `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/netmask`, IPv6 likewise.
fn parse(text: &str) -> Option<Net> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let (ip, v6) = match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, false),
        IpAddr::V6(a) => (u128::from(a), true),
    };
    let bits = if v6 { 128 } else { 32 };
    let prefix = match prefix {
        None => bits,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u32 = p.parse().ok()?;
            (n <= bits).then_some(n)?
        }
        // A netmask (255.255.255.0) or, as netaddr also takes, a hostmask (0.0.0.255).
        Some(p) if !v6 => {
            let m = u32::from(p.parse::<Ipv4Addr>().ok()?);
            if m.leading_ones() + m.trailing_zeros() == 32 {
                m.leading_ones()
            } else if m.leading_zeros() + m.trailing_ones() == 32 {
                m.leading_zeros()
            } else {
                return None;
            }
        }
        Some(_) => return None,
    };
    Some(Net {
        ip,
        prefix,
        v6,
        network_text: text.contains('/'),
    })
}

/// One value through `ipaddr(query)`: a string, or `false` (Python's `None` is `none`).
fn ipaddr_one(value: &Value, query: &str, version: Option<i64>, alias: &str) -> Result<Value, Error> {
    let f = || Value::from(false);
    let none = || Value::from(());
    if !value.is_true() || value.kind() == ValueKind::Bool {
        return Ok(f());
    }
    let text = value_to_string(value);
    let v = if text.bytes().all(|b| b.is_ascii_digit()) {
        // An integer is an address: IPv4 when it fits (and ipv6() was not asked), else IPv6.
        let n: u128 = match text.parse() {
            Ok(n) => n,
            Err(_) => return Ok(f()),
        };
        let v6 = version == Some(6) || n > u32::MAX as u128;
        Net {
            ip: n,
            prefix: if v6 { 128 } else { 32 },
            v6,
            network_text: false,
        }
    } else {
        match parse(&text) {
            Some(v) => v,
            None => return Ok(f()),
        }
    };
    let value = Value::from(if text.bytes().all(|b| b.is_ascii_digit()) {
        v.text()
    } else {
        text.clone()
    });
    let network = v.network_text;
    if let Some(want) = version
        && v.version() != want
    {
        return Ok(f());
    }
    let s = |x: String| Value::from(x);
    let not_network = || invalid("Not a network address");
    let first_last = || -> Option<(u128, u128)> {
        match v.size() {
            2 => Some((v.network(), v.network() | v.hostmask())),
            n if n > 1 => Some((v.network() + 1, (v.network() | v.hostmask()) - 1)),
            _ => None,
        }
    };
    Ok(match query {
        "" => {
            if network {
                s(v.text())
            } else {
                s(v.ip_text())
            }
        }
        "address" | "ip" => {
            if v.size() == 1 || v.ip != v.network() || v.broadcast().is_none() || v.v6 {
                s(v.ip_text())
            } else {
                none()
            }
        }
        "host" => {
            if v.size() == 1 || v.ip != v.network() || v.broadcast().is_none() {
                s(v.text())
            } else {
                none()
            }
        }
        "address/prefix" | "host/prefix" | "gateway" | "gw" | "hostnet" | "router" => {
            if v.size() > 2 && (v.ip == v.network() || Some(v.ip) == v.broadcast()) {
                f()
            } else {
                s(v.text())
            }
        }
        "ip/prefix" => {
            if v.size() == 2 || (v.size() > 1 && v.ip != v.network()) {
                s(v.text())
            } else {
                none()
            }
        }
        "bool" => Value::from(true),
        "broadcast" => match v.broadcast() {
            Some(b) if v.size() > 2 => s(v.addr(b)),
            _ => none(),
        },
        "cidr" => s(v.text()),
        "net" => {
            if v.size() > 1 && v.ip == v.network() {
                s(format!("{}/{}", v.addr(v.network()), v.prefix))
            } else {
                none()
            }
        }
        "netmask" => s(v.addr(v.netmask())),
        "hostmask" | "wildcard" => s(v.addr(v.hostmask())),
        "network" | "network_id" => s(v.addr(v.network())),
        "network/prefix" | "subnet" => s(format!("{}/{}", v.addr(v.network()), v.prefix)),
        "network_netmask" => s(format!("{} {}", v.addr(v.network()), v.addr(v.netmask()))),
        "prefix" => Value::from(v.prefix),
        "size" => Value::from(v.size()),
        "size_usable" => Value::from(match v.size() {
            1 => 0,
            2 => 2,
            n => n - 2,
        }),
        "version" => Value::from(v.version()),
        "type" => s(if v.size() > 1 && v.ip == v.network() {
            "network"
        } else {
            "address"
        }
        .into()),
        "int" => {
            if network {
                s(format!("{}/{}", v.ip, v.prefix))
            } else {
                Value::from(v.ip)
            }
        }
        "first_usable" if !network => return Err(not_network()),
        "first_usable" => match first_last() {
            Some((a, _)) => s(v.addr(a)),
            None => none(),
        },
        "last_usable" if !network => return Err(not_network()),
        "last_usable" => match first_last() {
            Some((_, b)) => s(v.addr(b)),
            None => none(),
        },
        "range_usable" if !network => return Err(not_network()),
        "range_usable" => match first_last() {
            Some((a, b)) => s(format!("{}-{}", v.addr(a), v.addr(b))),
            None => none(),
        },
        "next_usable" | "previous_usable" if !network => return Err(not_network()),
        "next_usable" | "previous_usable" => match first_last() {
            Some((a, b)) => {
                let n = if query == "next_usable" {
                    v.ip.checked_add(1)
                } else {
                    v.ip.checked_sub(1)
                };
                match n {
                    Some(n) if n >= a && n <= b => s(v.addr(n)),
                    _ => none(),
                }
            }
            None => none(),
        },
        "private" => {
            if v.is_global() {
                none()
            } else {
                value
            }
        }
        "public" => {
            let mask_like = |x: u128| x & x.wrapping_add(1) == 0;
            if !v.is_multicast() && v.is_global() && !v.is_loopback() && !mask_like(v.ip ^ v.max()) && !mask_like(v.ip)
            {
                value
            } else {
                none()
            }
        }
        "loopback" | "lo" => {
            if v.is_loopback() {
                value
            } else {
                none()
            }
        }
        "multicast" => {
            if v.is_multicast() {
                value
            } else {
                none()
            }
        }
        "unicast" => {
            if v.is_multicast() {
                none()
            } else {
                value
            }
        }
        "link-local" => {
            if v.contains(if v.v6 { "fe80::/10" } else { "169.254.0.0/16" }) {
                value
            } else {
                none()
            }
        }
        "ipv4" | "v4" => {
            if v.v6 {
                // netaddr's `ipv4()`: IPv4-mapped and IPv4-compatible addresses only.
                let high = v.ip >> 32;
                if high == 0 || high == 0xffff {
                    s(format!(
                        "{}/{}",
                        Ipv4Addr::from(v.ip as u32),
                        v.prefix.saturating_sub(96)
                    ))
                } else {
                    f()
                }
            } else {
                value
            }
        }
        "ipv6" | "v6" => {
            if v.v6 {
                value
            } else {
                s(format!(
                    "{}/{}",
                    Ipv6Addr::from(0xffff_0000_0000u128 | v.ip),
                    v.prefix + 96
                ))
            }
        }
        "wrap" => {
            if v.v6 {
                if network {
                    s(format!("[{}]/{}", v.ip_text(), v.prefix))
                } else {
                    s(format!("[{}]", v.ip_text()))
                }
            } else {
                value
            }
        }
        "revdns" => {
            if v.v6 {
                let hex = format!("{:032x}", v.ip);
                let mut parts: Vec<String> = hex.chars().rev().map(|c| c.to_string()).collect();
                parts.push("ip6.arpa.".into());
                s(parts.join("."))
            } else {
                let o = Ipv4Addr::from(v.ip as u32).octets();
                s(format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]))
            }
        }
        q if q.parse::<f64>().is_ok() => {
            if v.size() == 1 {
                if network { s(v.text()) } else { s(v.ip_text()) }
            } else {
                // The nth address of the network (negative from its end), with the prefix.
                let n: i128 = match q.parse() {
                    Ok(n) => n,
                    Err(_) => return Ok(f()),
                };
                let size = v.size() as i128;
                let idx = if n < 0 { size + n } else { n };
                if idx < 0 || idx >= size {
                    f()
                } else {
                    s(format!("{}/{}", v.addr(v.network() + idx as u128), v.prefix))
                }
            }
        }
        q if parse(q).is_some_and(|n| n.network_text) => {
            // `ipaddr('10.0.0.0/8')`: the value when it lies in that network.
            let net = parse(q).unwrap_or(v);
            if net.v6 == v.v6 && v.prefix >= net.prefix && v.ip & net.netmask() == net.network() {
                value
            } else {
                f()
            }
        }
        q => return Err(invalid(format!("{alias}: unknown filter type: {q}"))),
    })
}

/// `ipaddr` on a value or, element by element, on a list (keeping the answers that are true).
fn ipaddr(value: Value, query: Option<Value>, version: Option<i64>, alias: &str) -> Result<Value, Error> {
    let query = query.map(|q| value_to_string(&q)).unwrap_or_default();
    if value.kind() == ValueKind::Seq || value.kind() == ValueKind::Iterable {
        let mut out = Vec::new();
        for item in value.try_iter()? {
            let r = ipaddr_one(&item, &query, version, alias)?;
            if r.is_true() {
                out.push(r);
            }
        }
        return Ok(Value::from(out));
    }
    ipaddr_one(&value, &query, version, alias)
}

pub fn register(env: &mut Environment<'static>) {
    for (names, version, alias) in [
        (
            ["ipaddr", "ansible.utils.ipaddr", "ansible.netcommon.ipaddr"],
            None,
            "ipaddr",
        ),
        (
            ["ipv4", "ansible.utils.ipv4", "ansible.netcommon.ipv4"],
            Some(4),
            "ipv4",
        ),
        (
            ["ipv6", "ansible.utils.ipv6", "ansible.netcommon.ipv6"],
            Some(6),
            "ipv6",
        ),
    ] {
        for name in names {
            env.add_filter(name, move |value: Value, query: Option<Value>| {
                ipaddr(value, query, version, alias)
            });
        }
    }
    for name in ["ipwrap", "ansible.utils.ipwrap"] {
        env.add_filter(name, |value: Value| -> Result<Value, Error> {
            // Anything that is not an address passes through unchanged, as in ansible.utils.
            let wrap = |v: &Value| -> Result<Value, Error> {
                let r = ipaddr_one(v, "wrap", None, "ipwrap")?;
                Ok(if r.is_true() { r } else { v.clone() })
            };
            if value.kind() == ValueKind::Seq {
                return Ok(Value::from(
                    value.try_iter()?.map(|v| wrap(&v)).collect::<Result<Vec<_>, _>>()?,
                ));
            }
            wrap(&value)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_and_prefixes_parse_as_netaddr_does() {
        let n = parse("192.168.1.10/255.255.255.0").unwrap();
        assert_eq!((n.prefix, n.addr(n.network())), (24, "192.168.1.0".to_string()));
        assert_eq!(parse("10.0.0.1/0.0.0.255").unwrap().prefix, 24);
        assert!(parse("10.0.0.1/33").is_none());
        assert!(parse("10.0.0.1/255.0.255.0").is_none());
        assert!(parse("2001:db8::1/64").unwrap().v6);
    }
}

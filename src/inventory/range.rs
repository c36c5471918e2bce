//! Host ranges in inventory names: `app[01:20]`, `db-[a:f]`, `web[1:9:2]`, several per name.

/// More hosts than one inventory line should name: a bound typed with a digit too many must end
/// in a diagnostic, not in millions of hosts (or an exhausted memory).
pub const MAX_HOSTS: u64 = 100_000;

/// Expand every `[start:end(:step)]` in `name`. Names without brackets expand to themselves.
/// More than `MAX_HOSTS` names is an error, found before they are built.
pub fn expand(name: &str) -> Result<Vec<String>, String> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let Some(close_rel) = name[open..].find(']') else {
        return Err("unclosed `[` in host range".into());
    };
    let close = open + close_rel;
    let (head, body, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(format!(
            "host range `[{body}]` must look like `[start:end]` or `[start:end:step]`"
        ));
    }
    let (start, end) = (parts[0], parts[1]);
    let step: usize = match parts.get(2) {
        None => 1,
        Some(s) => match s.parse() {
            Ok(0) | Err(_) => return Err(format!("host range step `{s}` must be a positive integer")),
            Ok(n) => n,
        },
    };
    let items: Vec<String> = if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        if a > b {
            return Err(format!("host range `[{body}]` starts after it ends"));
        }
        let n = (b - a) / step as u64 + 1;
        if n > MAX_HOSTS {
            return Err(too_many(name, n));
        }
        // A leading zero on the start pads every number to the width of the start.
        let width = if start.len() > 1 && start.starts_with('0') {
            start.len()
        } else {
            0
        };
        (a..=b).step_by(step).map(|n| format!("{n:0width$}")).collect()
    } else if start.len() == 1
        && end.len() == 1
        && start.chars().all(|c| c.is_ascii_alphabetic())
        && end.chars().all(|c| c.is_ascii_alphabetic())
    {
        let (a, b) = (start.as_bytes()[0], end.as_bytes()[0]);
        if a > b {
            return Err(format!("host range `[{body}]` starts after it ends"));
        }
        (a..=b).step_by(step).map(|c| (c as char).to_string()).collect()
    } else {
        return Err(format!(
            "host range `[{body}]` must be two numbers (`[01:20]`) or two single letters (`[a:f]`)"
        ));
    };
    let tails = expand(tail)?;
    let n = items.len() as u64 * tails.len() as u64;
    if n > MAX_HOSTS {
        return Err(too_many(name, n));
    }
    let mut out = Vec::with_capacity(items.len() * tails.len());
    for item in &items {
        for t in &tails {
            out.push(format!("{head}{item}{t}"));
        }
    }
    Ok(out)
}

fn too_many(name: &str, n: u64) -> String {
    format!("host range `{name}` names {n} hosts, more than the limit of {MAX_HOSTS}; check its bounds")
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn numeric_ranges_keep_zero_padding() {
        assert_eq!(expand("app[01:03]").unwrap(), ["app01", "app02", "app03"]);
        assert_eq!(expand("w[8:10]").unwrap(), ["w8", "w9", "w10"]);
        assert_eq!(expand("w[1:5:2].x").unwrap(), ["w1.x", "w3.x", "w5.x"]);
    }

    #[test]
    fn alpha_and_nested_ranges() {
        assert_eq!(expand("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(expand("r[1:2]c[a:b]").unwrap(), ["r1ca", "r1cb", "r2ca", "r2cb"]);
        assert_eq!(expand("plain").unwrap(), ["plain"]);
    }

    #[test]
    fn bad_ranges_are_errors() {
        assert_eq!(expand("a[3:1]").unwrap_err(), "host range `[3:1]` starts after it ends");
        assert!(expand("a[1-3]").is_err());
        assert!(expand("a[1:3").is_err());
        assert!(expand("a[a:3]").is_err());
        assert!(expand("a[1:3:0]").is_err());
    }

    #[test]
    fn huge_ranges_are_errors_not_millions_of_hosts() {
        // Found by the inventory_ini fuzz target: `asp[008:51008451]` ran out of memory.
        let e = expand("asp[008:51008451]").unwrap_err();
        assert!(e.contains("names 51008444 hosts, more than the limit of 100000"), "{e}");
        // Two ranges multiply.
        assert!(expand("r[1:1000]n[1:1000]").unwrap_err().contains("1000000 hosts"));
        assert_eq!(expand("n[1:100000]").unwrap().len(), 100_000);
        assert_eq!(expand("n[0:99999999:1000]").unwrap().len(), 100_000);
    }
}

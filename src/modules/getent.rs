//! `getent`: a name service database (`passwd`, `group`, `hosts`, `services`...) read with the
//! host's `getent`, as ansible-core 2.19's module sets it: the fact `getent_<database>`, each
//! entry's key mapped to its other fields (`:`-separated for the colon databases, else
//! whitespace), a repeated key to a list of them.

use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use indexmap::IndexMap;
use minijinja::Value;

/// `getent`: read a database into a fact.
pub struct Getent;

static GETENT: ModuleSpec = ModuleSpec {
    params: &[req("database"), p("key"), p("service"), p("split"), p("fail_key")],
    // The databases glibc's getent reads: the checker knows their facts as defined.
    facts: &[
        "getent_ahosts",
        "getent_ahostsv4",
        "getent_ahostsv6",
        "getent_aliases",
        "getent_ethers",
        "getent_group",
        "getent_gshadow",
        "getent_hosts",
        "getent_initgroups",
        "getent_netgroup",
        "getent_networks",
        "getent_passwd",
        "getent_protocols",
        "getent_rpc",
        "getent_services",
        "getent_shadow",
    ],
    ..ModuleSpec::new("getent", BUILTIN)
};

impl Module for Getent {
    fn spec(&self) -> &'static ModuleSpec {
        &GETENT
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

const COLON: &[&str] = &["passwd", "shadow", "group", "gshadow"];

/// Python's `str.split(sep)`, or `str.split()` (runs of whitespace) without one.
fn split(line: &str, sep: Option<&str>) -> Vec<String> {
    match sep {
        Some(s) if !s.is_empty() => line.split(s).map(str::to_string).collect(),
        _ => line.split_whitespace().map(str::to_string).collect(),
    }
}

/// The fact's value: each key with its fields; a key seen again gets a list of field lists.
fn tree(out: &str, sep: Option<&str>) -> IndexMap<String, Value> {
    let mut seen: IndexMap<String, Vec<Vec<String>>> = IndexMap::new();
    for line in out.lines() {
        let mut rec = split(line, sep);
        if rec.is_empty() {
            rec.push(String::new());
        }
        let key = rec.remove(0);
        seen.entry(key).or_default().push(rec);
    }
    seen.into_iter()
        .map(|(k, recs)| {
            let fields = |r: Vec<String>| Value::from(r.into_iter().map(Value::from).collect::<Vec<_>>());
            let v = if recs.len() == 1 {
                fields(recs.into_iter().next().unwrap_or_default())
            } else {
                Value::from(recs.into_iter().map(fields).collect::<Vec<_>>())
            };
            (k, v)
        })
        .collect()
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let db = args.req_str("database")?;
    let key = args.str("key")?;
    let fail_key = args.bool("fail_key", true)?;
    let sep = args
        .str("split")?
        .or_else(|| COLON.contains(&db.as_str()).then(|| ":".to_string()));
    let mut script = format!("getent {}", quote(&db));
    if let Some(k) = &key {
        script.push_str(&format!(" {}", quote(k)));
    }
    if let Some(s) = args.str("service")? {
        script.push_str(&format!(" -s {}", quote(&s)));
    }
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    let fact = format!("getent_{db}");
    let mut r = ModuleResult::ok();
    let msg = match out.rc {
        0 => {
            let t = tree(&out.stdout_text(), sep.as_deref());
            r.facts.insert(fact, Value::from_pairs(t));
            return Ok(Plan::Unchanged(r));
        }
        1 => "Missing arguments, or database unknown.",
        2 if !fail_key => {
            let msg = "One or more supplied key could not be found in the database.";
            let t = IndexMap::from([(key.unwrap_or_default(), Value::from(()))]);
            r.facts.insert(fact, Value::from_pairs(t));
            return Ok(Plan::Unchanged(r.with_msg(msg)));
        }
        2 => "One or more supplied key could not be found in the database.",
        3 => "Enumeration not supported on this database.",
        _ => "Unexpected failure!",
    };
    Err(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_holds_a_list_of_its_records() {
        let t = tree("127.0.0.1 localhost\n::1 localhost ip6\n127.0.0.1 other\n", None);
        assert_eq!(t["::1"].to_string(), "['localhost', 'ip6']");
        assert_eq!(t["127.0.0.1"].to_string(), "[['localhost'], ['other']]");
        let p = tree("root:x:0:0:root:/root:/bin/bash\n", Some(":"));
        assert_eq!(p["root"].to_string(), "['x', '0', '0', 'root', '/root', '/bin/bash']");
    }
}
